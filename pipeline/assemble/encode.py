"""Assemble stage: turn the rendered PNG frames of a run into the deliverable.

Inputs are an ordered list of frame paths (numbering may have gaps; the list order is
the output order and every listed frame becomes exactly one output frame). Outputs:

- ``mp4``: H.264 yuv420p, converted *and* tagged BT.709, ``+faststart``, AAC audio;
- ``webm``: VP9 yuv420p, BT.709, Opus audio (Vorbis when the ffmpeg lacks libopus);
- ``gif``: one global palette (palettegen/paletteuse in one graph), loops forever,
  no audio;
- ``prores_alpha``: ProRes 4444 (yuva444p10le) in .mov with each frame's mask as its
  alpha, AAC audio: what editors composite;
- ``webm_alpha``: VP9 with alpha (yuva420p) in .webm, Opus audio;
- ``images``: a folder of PNG copies (:mod:`pipeline.assemble.images`).

The alpha formats are fed rgba: each frame's RGB with its mask as alpha (``alphas``);
a matte (the masks themselves, ``output.matte``) is encoded like any frames.

How frames reach ffmpeg: Python decodes one PNG at a time and pipes raw ``rgb24`` to
ffmpeg's stdin (never the whole clip in memory). Piping was chosen over an ffconcat
list because (1) a rawvideo input at an exact rational ``-framerate`` gives every frame
the timestamp ``k / fps`` by construction, whereas ffconcat needs a per-file decimal
``duration`` that drifts for rates like 30000/1001; (2) the frame count out equals the
number of frames written, whatever the file names or gaps; (3) no list file to escape
paths into; and (4) every frame's size is checked here, with an error naming the file.

Every file is written atomically: ffmpeg writes a hidden temporary sibling, which is
renamed over the final name only after ffmpeg succeeded, so a crash or a failed encode
never leaves a truncated video under the name a user (or a resume) would trust.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import re
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import ffmpeg
from PIL import Image, UnidentifiedImageError

from pipeline.atomic import atomic_path
from pipeline.config.schema import OutputConfig, OutputFormat
from pipeline.errors import RotoscopeError
from pipeline.ffmpeg_exe import ffmpeg_exe

# A double holding p/q is recovered exactly for any q up to this bound (NTSC rates have
# q = 1001, and ``input.every`` multiplies q by at most a small factor), while a rate
# typed as a decimal (24.5) stays that decimal.
MAX_FPS_DENOMINATOR = 100_000

AAC_BITRATE = "192k"
WEBM_AUDIO_BITRATE = "128k"

_VIDEO_FORMATS = (
    OutputFormat.mp4, OutputFormat.webm, OutputFormat.gif, OutputFormat.prores_alpha,
    OutputFormat.webm_alpha,
)  # fmt: skip
# Formats whose frames carry the mask as their alpha channel, and their containers.
ALPHA_FORMATS = (OutputFormat.prores_alpha, OutputFormat.webm_alpha)
_CONTAINERS = {OutputFormat.prores_alpha: "mov", OutputFormat.webm_alpha: "webm"}
_ALPHA_PIXELS = {OutputFormat.prores_alpha: "yuva444p10le", OutputFormat.webm_alpha: "yuva420p"}
_BT709 = {"colorspace": "bt709", "color_primaries": "bt709", "color_trc": "bt709"}
# Lines ffmpeg prints as *consequences* of an error (thread shutdown, summaries): they
# say that something failed but not what, so they are skipped when reporting.
_CONSEQUENCES = (
    "Conversion failed!",
    "Error opening output files",
    "Error opening input files",
    "Error splitting the argument list",
    "Error while filtering",
    "Error while opening encoder - maybe incorrect parameters",
    "Error sending frames to consumers",
    "Could not open encoder before EOF",
    "Task finished with error code",
    "Terminating thread with return code",
    "Nothing was written into output file",
)


@dataclass(frozen=True)
class MotionInterpolation:
    """ffmpeg's ``minterpolate`` inside the encode: frames piped at ``source_rate`` come
    out at ``rate``, ``frames`` of them (``output.interpolation=minterpolate``)."""

    source_rate: Fraction
    rate: Fraction
    frames: int


# minterpolate's motion-compensated mode: bidirectional motion estimation, overlapped
# block motion compensation with variable-size blocks (its best-quality settings).
MINTERPOLATE_OPTIONS = {"mi_mode": "mci", "mc_mode": "aobmc", "me_mode": "bidir", "vsbmc": 1}


@dataclass(frozen=True)
class AudioSpec:
    """Where the soundtrack comes from: a range of the source video's audio."""

    path: Path  # the source video
    start: float  # seconds into the source where the selected range starts
    duration: float  # seconds of the selected range


# Quality scales the encoders accept; outside them x264 and libvpx clamp silently.
CRF_RANGES = {
    OutputFormat.mp4: (0, 51),
    OutputFormat.webm: (0, 63),
    OutputFormat.webm_alpha: (0, 63),
}
X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
    "veryslow", "placebo",
)  # fmt: skip


def check_output_options(output: OutputConfig) -> None:
    """Refuse a crf or preset the encoder would clamp or reject, and an empty or repeated
    list of formats (or two that would write the same file), before anything renders."""
    formats = output.format
    names = [fmt.value if fmt is OutputFormat.images else video_extension(fmt) for fmt in formats]
    if not formats or len(set(names)) != len(names):
        raise RotoscopeError(
            f"output.format={[fmt.value for fmt in formats]} must name each format once "
            "(and no two that write the same file: webm and webm_alpha are both .webm)",
            "for example output=mp4, or output=[mp4,images] for both",
        )
    for fmt in formats:
        limits = CRF_RANGES.get(fmt)
        if limits and not limits[0] <= output.crf <= limits[1]:
            raise RotoscopeError(
                f"output.crf={output.crf} is outside {limits[0]}-{limits[1]} for {fmt.value}",
                "lower is better quality; 18 is the default for mp4, about 30 is typical for webm",
            )
    if OutputFormat.mp4 in formats and output.preset not in X264_PRESETS:
        close = difflib.get_close_matches(output.preset, X264_PRESETS, n=1)
        mean = f"did you mean '{close[0]}'? " if close else ""
        raise RotoscopeError(
            f"output.preset={output.preset} is not an x264 preset",
            f"{mean}choose from {', '.join(X264_PRESETS)}",
        )


def check_mask_outputs(output: OutputConfig, masked: bool) -> None:
    """An alpha format, ``output.alpha`` and ``output.matte`` show the masks: refused
    without them, before anything renders; ``output.alpha`` is for images (the video
    formats with alpha are their own presets)."""
    formats = output.format
    if output.alpha and OutputFormat.images not in formats:
        listed = ", ".join(fmt.value for fmt in formats)
        raise RotoscopeError(
            f"output.alpha=true makes RGBA images, and output.format is {listed}",
            "add images (output=[mp4,images]), or use output=prores_alpha / webm_alpha for "
            "a video with alpha",
        )
    if masked:
        return
    alpha_formats = [fmt for fmt in formats if fmt in ALPHA_FORMATS]
    asked = (
        f"output={alpha_formats[0].value}" if alpha_formats
        else "output.alpha=true" if output.alpha
        else "output.matte=true" if output.matte
        else None
    )  # fmt: skip
    if asked is not None:
        raise RotoscopeError(
            f"{asked} writes each frame's mask, but no mask is given",
            "set mask.path, mask.key or mask.luma, or drop the option",
        )


def video_extension(fmt: OutputFormat) -> str:
    """The file extension of a video format (``mp4``, ``webm``, ``gif``, ``mov``)."""
    if fmt not in _VIDEO_FORMATS:
        raise ValueError(f"{fmt.value} is not a video format")
    return _CONTAINERS.get(fmt, fmt.value)


def exact_rate(fps: float) -> Fraction:
    """The frame rate as an exact fraction, so 29.97002997 becomes 30000/1001.

    ffmpeg is given ``num/den`` instead of a rounded decimal: the timestamps are then
    exact multiples of ``den/num`` and a long clip does not drift against its audio.
    """
    if not (math.isfinite(fps) and fps > 0):
        raise RotoscopeError(f"invalid output frame rate {fps!r}", "set output.fps > 0")
    return Fraction(fps).limit_denominator(MAX_FPS_DENOMINATOR)


def encode_video(
    frames: Sequence[Path],
    out_path: Path,
    fmt: OutputFormat,
    fps: float,
    crf: int = 18,
    preset: str = "medium",
    audio: AudioSpec | None = None,
    alphas: Sequence[Path] | None = None,
    on_frame: Callable[[], None] | None = None,
    motion: MotionInterpolation | None = None,
) -> Path:
    """Encode ``frames`` in order into ``out_path`` and return ``out_path``.

    The video has exactly ``len(frames)`` frames at ``fps``; with ``motion``, the frames
    are read at its source rate and ffmpeg's minterpolate makes its frame count at its
    rate (``fps`` is then unused; no alpha format). With ``audio``, the source's
    first audio stream is cut to the selected range and muxed if it exists (a source
    without audio still encodes, silently); gif never carries audio. ``crf`` applies to
    mp4 and webm, ``preset`` to mp4 only (x264). The alpha formats take each frame's
    alpha from ``alphas`` (grey images, one per frame; opaque without). ``on_frame`` runs
    after each frame is handed to ffmpeg (a safe point: what it raises stops ffmpeg, and
    nothing is left at ``out_path``). Raises :class:`RotoscopeError` for an empty list,
    an unreadable or mis-sized frame, a missing encoder, or an ffmpeg error.
    """
    if fmt not in _VIDEO_FORMATS:
        raise ValueError(f"encode_video writes video formats, not {fmt.value}")
    require_frames(frames)
    if alphas is not None and len(alphas) != len(frames):
        raise ValueError(f"{len(alphas)} alphas for {len(frames)} frames")
    rate = exact_rate(fps)
    size = _png_size(frames[0])
    layers: list[Path | None] | None = None
    if fmt in ALPHA_FORMATS:  # opaque frames where no alpha is given
        layers = list(alphas) if alphas is not None else [None] * len(frames)
    try:
        with atomic_path(out_path) as tmp:
            args = ffmpeg_command(
                tmp, fmt, size, rate, len(frames), crf, preset, audio, motion=motion
            )
            _run_ffmpeg(args, frames, size, out_path, layers, on_frame)
    except OSError as exc:
        raise RotoscopeError(f"cannot write {out_path}: {exc}") from exc
    return out_path


def ffmpeg_command(
    out_file: Path,
    fmt: OutputFormat,
    size: tuple[int, int],
    rate: Fraction,
    frame_count: int,
    crf: int,
    preset: str,
    audio: AudioSpec | None,
    motion: MotionInterpolation | None = None,
) -> list[str]:
    """The full ffmpeg argument list (binary first) reading rgb24 frames from stdin.

    The audio input is cut by *input* options (``-ss`` seeks before decoding, ``-t``
    bounds the read) to at most the video's length. ``-shortest`` is deliberately not
    used: when the source's audio ends before the last frame it would cut the video
    short; capping the audio instead lets the video alone govern the length.
    """
    width, height = size
    pixels = "rgba" if fmt in ALPHA_FORMATS else "rgb24"
    piped = rate if motion is None else motion.source_rate
    video = ffmpeg.input(
        "pipe:", format="rawvideo", pix_fmt=pixels, s=f"{width}x{height}", framerate=str(piped)
    )
    # The muxer is named because the temporary file name has no telling extension.
    options = {"f": _CONTAINERS.get(fmt, fmt.value), **_video_options(fmt, crf, preset)}
    if motion is not None:
        if fmt in ALPHA_FORMATS:
            raise ValueError("minterpolate drops the alpha channel")
        video = video.filter("minterpolate", fps=str(motion.rate), **MINTERPOLATE_OPTIONS)
        options["frames:v"] = motion.frames
        rate, frame_count = motion.rate, motion.frames
    streams = [_video_graph(video, fmt)]
    if audio is not None and fmt is not OutputFormat.gif:
        _require_source(audio.path)
        seconds = min(audio.duration, float(frame_count / rate))
        source = ffmpeg.input(str(audio.path), ss=f"{audio.start:.6f}", t=f"{seconds:.6f}")
        streams.append(source["a:0?"])  # optional: a source without audio still encodes
        options.update(_audio_options(fmt))
    node = ffmpeg.output(*streams, str(out_file), **options)
    node = node.global_args("-hide_banner", "-nostats", "-loglevel", "error")
    return node.overwrite_output().compile(cmd=ffmpeg_exe())


def _video_graph(video: Any, fmt: OutputFormat) -> Any:
    """The filter graph from rgb24 to what the encoder takes.

    For mp4/webm the RGB->YUV conversion is done explicitly with the BT.709 matrix in
    limited (tv) range: swscale's default is BT.601, and players decode HD-style
    content as BT.709, so an untagged or 601-converted file shows shifted colours.
    ``setparams`` stamps primaries and transfer on the frames too: recent ffmpeg takes
    the stream's colour tags from the frames and would otherwise write "unknown" for
    them despite the ``-color_primaries``/``-color_trc`` options (kept for older builds).
    For gif, one palette is computed over the whole clip (``split`` feeds both
    palettegen and paletteuse), which avoids per-frame palette flicker; ffmpeg holds
    the frames until the palette is known, which is acceptable at gif lengths.
    """
    if fmt is OutputFormat.gif:
        branches = video.filter_multi_output("split")
        palette = branches[0].filter("palettegen")
        return ffmpeg.filter([branches[1], palette], "paletteuse")
    yuv = video.filter("scale", out_color_matrix="bt709", out_range="tv").filter(
        "format", _ALPHA_PIXELS.get(fmt, "yuv420p")
    )
    return yuv.filter("setparams", range="tv", **_BT709)


def _video_options(fmt: OutputFormat, crf: int, preset: str) -> dict[str, Any]:
    """Encoder options: x264 for mp4, VP9 in constant-quality mode for webm."""
    if fmt is OutputFormat.gif:
        return {"loop": 0}  # 0 = loop forever
    tags = {**_BT709, "color_range": "tv"}
    if fmt is OutputFormat.mp4:
        _require_encoder("libx264")
        return {"c:v": "libx264", "crf": crf, "preset": preset, "movflags": "+faststart", **tags}
    if fmt is OutputFormat.prores_alpha:  # ProRes has its own fixed quality per profile
        _require_encoder("prores_ks")
        return {"c:v": "prores_ks", "profile:v": "4444", "vendor": "apl0", **tags}
    _require_encoder("libvpx-vp9")
    # -b:v 0 makes -crf a pure quality target (otherwise VP9 caps it at a bitrate).
    return {"c:v": "libvpx-vp9", "crf": crf, "b:v": 0, "row-mt": 1, **tags}


def _audio_options(fmt: OutputFormat) -> dict[str, Any]:
    """Audio codec per container: AAC in mp4 and mov, Opus (or Vorbis) in webm."""
    if fmt in (OutputFormat.mp4, OutputFormat.prores_alpha):
        return {"c:a": "aac", "b:a": AAC_BITRATE}
    return {"c:a": webm_audio_encoder(_encoders()), "b:a": WEBM_AUDIO_BITRATE}


def webm_audio_encoder(encoders: frozenset[str]) -> str:
    """libopus when the ffmpeg has it, else libvorbis (both are valid in webm).

    ffmpeg's native ``opus``/``vorbis`` encoders are experimental, so they are not used.
    """
    for name in ("libopus", "libvorbis"):
        if name in encoders:
            return name
    raise RotoscopeError(
        "this ffmpeg has neither libopus nor libvorbis for webm audio",
        "set output.audio=false, use output.format=mp4, or point IMAGEIO_FFMPEG_EXE "
        "at a full ffmpeg build",
    )


def _require_encoder(name: str) -> None:
    """Fail before encoding when a user-supplied ffmpeg lacks a needed encoder."""
    if name not in _encoders():
        raise RotoscopeError(
            f"this ffmpeg ({ffmpeg_exe()}) has no {name} encoder",
            "point IMAGEIO_FFMPEG_EXE at a full ffmpeg build or pick another output.format",
        )


@lru_cache(maxsize=1)
def _encoders() -> frozenset[str]:
    """Encoder names the ffmpeg binary reports (``ffmpeg -encoders``), read once."""
    listing = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-encoders"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return frozenset(m.group(1) for m in re.finditer(r"^ [VAS][\w.]{5} (\S+)", listing, re.M))


def _require_source(path: Path) -> None:
    """A missing audio source is named here; ffmpeg's own message omits the path."""
    if not Path(path).is_file():
        raise RotoscopeError(
            f"audio source {path} not found", "restore the input video or set output.audio=false"
        )


def require_frames(frames: Sequence[Path]) -> None:
    """Nothing to encode is a user-visible state (render skipped or failed), not a bug."""
    if not frames:
        raise RotoscopeError(
            "no rendered frames to assemble",
            "run the render stage first (stages=[render,assemble]) or check the run folder",
        )


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError) as exc:
        raise RotoscopeError(f"cannot read rendered frame {path}: {exc}") from exc


def _rgb_bytes(path: Path, size: tuple[int, int]) -> bytes:
    """One frame as packed rgb24, checked to be the clip's size."""
    try:
        with Image.open(path) as image:
            if image.size != size:
                raise RotoscopeError(
                    f"rendered frame {path} is {image.size[0]}x{image.size[1]}, "
                    f"expected {size[0]}x{size[1]} like the first frame",
                    "re-render it (all frames of a clip share one size)",
                )
            return image.convert("RGB").tobytes()
    except (OSError, UnidentifiedImageError) as exc:
        raise RotoscopeError(f"cannot read rendered frame {path}: {exc}") from exc


def _rgba_bytes(path: Path, alpha: Path | None, size: tuple[int, int]) -> bytes:
    """One frame as packed rgba: its RGB, and ``alpha``'s grey as alpha (opaque without)."""
    rgb = _rgb_bytes(path, size)
    if alpha is None:
        opacity = bytes([255]) * (size[0] * size[1])
    else:
        try:
            with Image.open(alpha) as image:
                if image.size != size:
                    raise RotoscopeError(
                        f"mask {alpha} is {image.size[0]}x{image.size[1]}, its frame {size[0]}x"
                        f"{size[1]}",
                        "re-render the frame (stages=[render,assemble])",
                    )
                opacity = image.convert("L").tobytes()
        except (OSError, UnidentifiedImageError) as exc:
            raise RotoscopeError(f"cannot read mask {alpha}: {exc}") from exc
    return Image.merge(
        "RGBA", (*Image.frombytes("RGB", size, rgb).split(), Image.frombytes("L", size, opacity))
    ).tobytes()


def _run_ffmpeg(
    args: list[str],
    frames: Sequence[Path],
    size: tuple[int, int],
    out_path: Path,
    alphas: Sequence[Path | None] | None = None,
    on_frame: Callable[[], None] | None = None,
) -> None:
    """Run ffmpeg, stream the frames to it, and turn a failure into one clear line.

    stderr goes to a temporary file rather than a pipe: nobody reads a pipe while
    frames are being written, and a full stderr pipe would deadlock both processes.
    """
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log
        )
        stdin = process.stdin
        assert stdin is not None
        try:
            _feed(stdin, frames, size, alphas, on_frame)
        except BaseException:
            process.kill()  # a bad frame: stop ffmpeg before EOF lets it finish a file
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()  # EOF tells ffmpeg the clip is complete
            process.wait()
        if process.returncode != 0:
            log.seek(0)
            message = last_error_line(log.read().decode("utf-8", "replace"))
            raise RotoscopeError(f"ffmpeg failed writing {out_path}: {message}")


def _feed(
    stdin: IO[bytes],
    frames: Sequence[Path],
    size: tuple[int, int],
    alphas: Sequence[Path | None] | None,
    on_frame: Callable[[], None] | None = None,
) -> None:
    """Write every frame to ffmpeg's stdin, one decoded PNG in memory at a time (rgba,
    with ``alphas``: one per frame); ``on_frame`` after each.

    A broken pipe means ffmpeg has already exited; its exit status and stderr say
    why, so writing simply stops.
    """
    with contextlib.suppress(BrokenPipeError):
        for number, path in enumerate(frames):
            if alphas is None:
                stdin.write(_rgb_bytes(path, size))
            else:
                stdin.write(_rgba_bytes(path, alphas[number], size))
            if on_frame is not None:
                on_frame()


def last_error_line(stderr: str) -> str:
    """ffmpeg's last stderr line that says *what* failed, without pointer noise.

    After the cause, ffmpeg prints a cascade of consequences (threads terminating,
    "Conversion failed!"); those are skipped. ``[vost#0:0/libx264 @ 0x55d0...]``
    style prefixes are reduced to the innermost component name (``libx264: ...``).
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    causes = [line for line in lines if not any(c in line for c in _CONSEQUENCES)]
    line = (causes or lines or ["no error message (exit status only)"])[-1]
    return re.sub(r"^(?:\[([^\]]+?) @ 0x[0-9a-fA-F]+\]\s*)+", r"\1: ", line)
