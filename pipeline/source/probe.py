"""Read what a video file holds by parsing ``ffmpeg -i``.

The imageio-ffmpeg wheel ships no ffprobe, so the only portable probe is the stream
summary ffmpeg prints to stderr when it is given an input and no output. That text is
meant for people, so the parser is deliberately tolerant: it reads one stream line at a
time, splits it on top-level commas, and takes each value from the field that has its
shape (``64x48``, ``29.97 fps``, ``12 tbr``) instead of from a fixed position.

The numbers that decide frame identity are kept exact: the frame rate is a Fraction
(``29.97`` is read back as 30000/1001, because ffmpeg prints rates rounded to two
decimals and a rate that is off by 0.003% drifts a frame every half hour).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from pipeline.errors import RotoscopeError
from pipeline.ffmpeg_exe import ffmpeg_exe

# Pixel formats whose frames carry an alpha channel (prefix match on ffmpeg's names).
_ALPHA_PIX_FMTS = ("yuva", "rgba", "bgra", "argb", "abgr", "ya8", "ya16", "gbrap", "pal8")
# ffmpeg's native VP8/VP9 decoders drop the alpha plane that WebM stores on the side;
# only the libvpx decoders return it.
_ALPHA_DECODERS = {"vp8": "libvpx", "vp9": "libvpx-vp9"}
_REMUX_HINT = "remux it with ffmpeg (-c copy) or re-export it"
# Frame rates that cameras record as n*1000/1001 and ffmpeg prints rounded.
_NTSC_BASES = (24, 30, 48, 60, 120, 240)

_STREAM_RE = re.compile(
    r"^(?P<indent>\s*)Stream #\d+:(?P<index>\d+)\S*: (?P<kind>\w+): (?P<desc>.*)$"
)
_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_TAG_DURATION_RE = re.compile(r"^\s*DURATION\s*: (\d+):(\d+):(\d+(?:\.\d+)?)", re.MULTILINE)
_SIZE_RE = re.compile(r"^(\d+)x(\d+)\b")
_SAR_RE = re.compile(r"SAR (\d+):(\d+)")
_RATE_RE = re.compile(r"^(\d+(?:\.\d+)?k?) (fps|tbr)\b")
_DISPLAYMATRIX_RE = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees", re.IGNORECASE)
_ROTATE_TAG_RE = re.compile(r"^\s*rotate\s*: (-?\d+(?:\.\d+)?)\s*$", re.MULTILINE)
_ALPHA_MODE_RE = re.compile(r"^\s*alpha_mode\s*: 1\s*$", re.MULTILINE)


@dataclass(frozen=True)
class VideoProbe:
    """The facts about one video stream that decoding and frame selection need."""

    path: Path
    stream_index: int  # absolute stream number, for ``-map 0:N``
    codec: str
    pix_fmt: str
    coded_width: int
    coded_height: int
    sar: Fraction  # sample (pixel) aspect ratio; 1 for square pixels
    fps: Fraction  # average frame rate (what ffmpeg prints as "fps", else "tbr")
    duration: float | None  # seconds; the video stream's own when the container says
    rotation: int  # clockwise degrees ffmpeg turns the picture to make it upright
    has_audio: bool
    has_alpha: bool
    decoder: str | None  # decoder to force (only to keep VP8/VP9 alpha), else None

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown: square pixels, after rotation."""
        width = max(1, round(self.coded_width * self.sar))
        height = self.coded_height
        if self.rotation in (90, 270):
            return height, width
        return width, height

    @property
    def total_frames(self) -> int | None:
        """Frames in the constant-rate stream at ``fps``, when the duration is known."""
        if self.duration is None:
            return None
        return round(self.duration * self.fps)


def probe_video(path: Path) -> VideoProbe:
    """Run ``ffmpeg -i`` on ``path`` and parse its stream summary."""
    if path.stat().st_size == 0:
        raise RotoscopeError(f"video '{path}' is empty (0 bytes)", "re-copy or re-export the file")
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path.resolve())],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    return parse_probe(result.stderr, path)


def parse_probe(text: str, path: Path) -> VideoProbe:
    """Turn the stderr of ``ffmpeg -i path`` into a VideoProbe (pure, for testing)."""
    blocks = _stream_blocks(text)
    video = next((b for b in blocks if b.kind == "Video" and "(attached pic)" not in b.desc), None)
    if video is None:
        raise RotoscopeError(
            f"cannot read video '{path}': {_probe_failure(text, blocks)}",
            "check that the file plays in a video player; re-export or remux it",
        )
    fields = _split_fields(video.desc)
    size = next((m for f in fields if (m := _SIZE_RE.match(f))), None)
    if size is None:
        raise RotoscopeError(f"cannot read the frame size of video '{path}'", _REMUX_HINT)
    return VideoProbe(
        path=path,
        stream_index=video.index,
        codec=fields[0].split()[0],
        pix_fmt=_pix_fmt(fields),
        coded_width=int(size.group(1)),
        coded_height=int(size.group(2)),
        sar=_sar(video.desc),
        fps=_frame_rate(fields, path),
        duration=_seconds(_TAG_DURATION_RE.search(video.body) or _DURATION_RE.search(text)),
        rotation=_rotation(video.body),
        has_audio=any(b.kind == "Audio" for b in blocks),
        has_alpha=_has_alpha(fields, video.body),
        decoder=_alpha_decoder(fields[0].split()[0], video.body),
    )


def parse_rate(token: str) -> Fraction:
    """Parse ffmpeg's printed rate (``25``, ``29.97``, ``30k``, ``1k``) exactly.

    ffmpeg rounds non-integer rates to two decimals when printing them, so a value
    within 0.01 of an NTSC rate (n*1000/1001) is taken to be that rate.
    """
    scale = 1000 if token.endswith("k") else 1
    value = Fraction(token.removesuffix("k")) * scale
    for base in _NTSC_BASES:
        ntsc = Fraction(base * 1000, 1001)
        if value != base and abs(value - ntsc) < Fraction(1, 100):
            return ntsc
    return value


@dataclass(frozen=True)
class _Block:
    """One ``Stream #0:N`` line plus the indented metadata lines under it."""

    index: int
    kind: str
    desc: str
    body: str


def _stream_blocks(text: str) -> list[_Block]:
    """Group the probe text into stream blocks (metadata is indented under its stream)."""
    found: list[tuple[re.Match[str], list[str]]] = []
    in_block = False
    for line in text.splitlines():
        if match := _STREAM_RE.match(line):
            found.append((match, []))
            in_block = True
        elif in_block and len(line) - len(line.lstrip()) > len(found[-1][0]["indent"]):
            found[-1][1].append(line)
        else:
            in_block = False
    return [
        _Block(int(match["index"]), match["kind"], match["desc"], "\n".join(body))
        for match, body in found
    ]


def _split_fields(desc: str) -> list[str]:
    """Split a stream description on commas that are not inside parentheses/brackets."""
    fields, depth, start = [], 0, 0
    for i, char in enumerate(desc):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            fields.append(desc[start:i].strip())
            start = i + 1
    fields.append(desc[start:].strip())
    return fields


def _pix_fmt(fields: list[str]) -> str:
    """The pixel format is the second field unless the codec field is followed by size."""
    if len(fields) > 1 and not _SIZE_RE.match(fields[1]):
        return fields[1].split("(")[0].strip()
    return ""


def _sar(desc: str) -> Fraction:
    """Sample aspect ratio; 0:1 (unknown) and missing both mean square pixels."""
    match = _SAR_RE.search(desc)
    if not match or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        return Fraction(1)
    return Fraction(int(match.group(1)), int(match.group(2)))


def _frame_rate(fields: list[str], path: Path) -> Fraction:
    """Average rate ("fps"); GIFs and some streams print only the base rate ("tbr")."""
    rates = {m.group(2): m.group(1) for f in fields if (m := _RATE_RE.match(f))}
    token = rates.get("fps") or rates.get("tbr")
    if token is None or parse_rate(token) <= 0:
        raise RotoscopeError(f"cannot read the frame rate of video '{path}'", _REMUX_HINT)
    return parse_rate(token)


def _seconds(match: re.Match[str] | None) -> float | None:
    """Seconds from an ``H:MM:SS.ss`` match (a Matroska stream tag or ``Duration:``)."""
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _rotation(body: str) -> int:
    """Clockwise degrees that ffmpeg's autorotation applies (0, 90, 180 or 270).

    The display matrix states the counter-clockwise angle the picture must be turned
    by (phones write -90 for portrait), old files have a clockwise ``rotate`` tag.
    ffmpeg only autorotates multiples of 90 degrees, so other angles count as 0.
    """
    if match := _DISPLAYMATRIX_RE.search(body):
        degrees = -float(match.group(1))
    elif match := _ROTATE_TAG_RE.search(body):
        degrees = float(match.group(1))
    else:
        return 0
    quarter = round(degrees / 90) * 90
    return quarter % 360 if abs(degrees - quarter) < 1 else 0


def _has_alpha(fields: list[str], body: str) -> bool:
    """Alpha comes from the pixel format, or from WebM's side-channel ``alpha_mode``."""
    return _pix_fmt(fields).startswith(_ALPHA_PIX_FMTS) or bool(_ALPHA_MODE_RE.search(body))


def _alpha_decoder(codec: str, body: str) -> str | None:
    """The libvpx decoder for VP8/VP9 with alpha, since the native ones drop alpha."""
    if _ALPHA_MODE_RE.search(body):
        return _ALPHA_DECODERS.get(codec)
    return None


def _probe_failure(text: str, blocks: list[_Block]) -> str:
    """A short reason for a failed probe, from ffmpeg's last meaningful line."""
    if blocks:
        return "it has no video stream"
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.startswith("At least one output file")
    ]
    return lines[-1] if lines else "ffmpeg printed nothing"
