"""Tiny test media made on the fly with ffmpeg's lavfi sources (no files in the repo).

Every frame carries its own number so a test can tell exactly which source frame it
got: frame k is flat gray, the top half at level ``16*(k//16)+8`` and the bottom half
at ``16*(k%16)+8`` (see ``frame_levels``). Levels 16 apart survive lossy codecs,
chroma subsampling and resizing, so ``frame_id`` reads k back from any decoded frame.
Numbers up to 255 are distinct.

Import from tests as ``from support.media import ...`` (pyproject.toml puts ``tests`` on sys.path).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np

from pipeline.ffmpeg_exe import ffmpeg_exe

_LEVEL_STEP = 16
# geq expression for frame N's level (top half: high digit, bottom half: low digit).
_LEVEL_EXPR = "if(lt(Y,H/2),16*floor(N/16)+8,16*mod(N,16)+8)"
_VIDEO_CODECS = {
    ".mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    ".mkv": ["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    ".mov": ["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    ".avi": ["-c:v", "mpeg4", "-q:v", "2"],
    ".webm": ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p"],
}
_ALPHA_CODECS = {
    ".mov": ["-c:v", "png", "-pix_fmt", "rgba"],
    ".webm": ["-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p"],
}
_AUDIO_CODECS = {".webm": "libopus", ".avi": "pcm_s16le"}


def run_ffmpeg(*args: str) -> None:
    """Run the bundled ffmpeg quietly; raise with its stderr if it fails."""
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {result.stderr}")


def frame_levels(k: int) -> tuple[int, int]:
    """Gray levels (top half, bottom half) that encode frame number ``k``."""
    return _LEVEL_STEP * (k // _LEVEL_STEP) + 8, _LEVEL_STEP * (k % _LEVEL_STEP) + 8


def frame_id(image: np.ndarray) -> int:
    """The frame number encoded in an upright RGB frame (see the module docstring)."""
    height, width = image.shape[:2]
    margin_y, margin_x = max(1, height // 8), max(1, width // 8)
    top = image[margin_y : height // 2 - margin_y, margin_x:-margin_x].mean()
    bottom = image[height // 2 + margin_y : height - margin_y, margin_x:-margin_x].mean()
    return round((top - 8) / _LEVEL_STEP) * _LEVEL_STEP + round((bottom - 8) / _LEVEL_STEP)


def identity_image(k: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """An RGB frame carrying number ``k``, like the frames of ``make_video``."""
    width, height = size
    top, bottom = frame_levels(k)
    image = np.empty((height, width, 3), np.uint8)
    image[: height // 2] = top
    image[height // 2 :] = bottom
    return image


def vfr_times(frames: int, fps: float) -> list[float]:
    """Timestamps of ``make_video(vfr=True)``: first half at 2x rate, rest at 2/3 rate."""
    half = frames // 2
    return [
        round(n / (2 * fps) if n < half else half / (2 * fps) + (n - half) * 1.5 / fps, 3)
        for n in range(frames)
    ]


def make_video(
    path: Path,
    frames: int = 12,
    fps: float = 12,
    size: tuple[int, int] = (64, 48),
    *,
    audio: bool = False,
    rotation: int = 0,
    vfr: bool = False,
    alpha: bool = False,
    sar: str | None = None,
    gop: int = 5,
    faststart: bool = True,
) -> Path:
    """A clip whose frame k carries number k (see ``frame_id``); container from suffix.

    ``rotation`` is the clockwise turn a player applies (a phone's portrait clip is
    90), written as display-matrix side data. ``vfr`` spaces the frames unevenly
    (``vfr_times``); ``alpha`` makes the left half fully transparent (mov: PNG, webm:
    VP9 with alpha); ``sar`` sets non-square pixels (``"2/1"``). ``gop`` is the
    keyframe interval, short so that seeking lands between keyframes.
    """
    suffix = path.suffix.lower()
    width, height = size
    layout = "rgba" if alpha else "rgb24"
    chain = [f"format={layout}", f"geq=r='{_LEVEL_EXPR}':g='{_LEVEL_EXPR}':b='{_LEVEL_EXPR}'"]
    if alpha:
        chain[-1] += ":a='if(lt(X,W/2),0,255)'"
    if vfr:
        half = frames // 2
        chain += [
            "settb=1/1000",
            f"setpts='if(lt(N,{half}),N/(2*{fps}),{half}/(2*{fps})+(N-{half})*1.5/{fps})/TB'",
        ]
    if sar:
        chain.append(f"setsar={sar}")
    # A finite source: GIF's palettegen only emits its palette at the end of input.
    source = f"color=black:size={width}x{height}:rate={fps}:duration={frames / fps}"
    args = ["-f", "lavfi", "-i", source]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    args += ["-vf", ",".join(chain), "-frames:v", str(frames)]
    if suffix == ".gif":
        args[-4:-2] = ["-filter_complex", _gif_graph(chain)]
    else:
        args += (_ALPHA_CODECS if alpha else _VIDEO_CODECS)[suffix]
        args += ["-g", str(gop)]
    if audio:
        args += ["-c:a", _AUDIO_CODECS.get(suffix, "aac"), "-t", f"{frames / fps:.3f}"]
    if vfr:  # no B-frames: with them the mp4 muxer misstates a VFR clip's duration
        args += ["-fps_mode", "vfr", "-enc_time_base", "1:1000", "-bf", "0"]
    if suffix in (".mp4", ".mov") and faststart:
        args += ["-movflags", "+faststart"]
    target = path if not rotation else path.with_name(f"unrotated_{path.name}")
    run_ffmpeg(*args, str(target))
    if rotation:  # the display matrix angle is counter-clockwise
        run_ffmpeg("-display_rotation", str(-rotation), "-i", str(target), "-c", "copy", str(path))
        target.unlink()
    return path


def _gif_graph(chain: list[str]) -> str:
    """GIF needs a palette; one made from the clip itself keeps the gray levels exact."""
    return f"{','.join(chain)},split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse"


def write_image(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB (H, W, 3), RGBA (H, W, 4) or gray (H, W) array with OpenCV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if rgb.ndim == 3 and rgb.shape[2] == 4:
        data = cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA)
    elif rgb.ndim == 3:
        data = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    else:
        data = rgb
    if not cv2.imwrite(str(path), data):
        raise RuntimeError(f"could not write {path}")
    return path


def make_image_folder(
    folder: Path, names: list[str], size: tuple[int, int] = (64, 48)
) -> list[Path]:
    """Write ``names`` into ``folder``; the i-th name's image carries number i."""
    return [write_image(folder / name, identity_image(i, size)) for i, name in enumerate(names)]


def half_transparent(size: tuple[int, int], rgb: tuple[int, int, int]) -> np.ndarray:
    """RGBA image of colour ``rgb``: left half fully transparent, right half opaque."""
    width, height = size
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., :3] = rgb
    rgba[:, width // 2 :, 3] = 255
    return rgba


def truncate(path: Path, fraction: float) -> Path:
    """Keep only the first ``fraction`` of the file's bytes, like an interrupted copy."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def make_pan_folder(folder: Path, frames: int, size: int = 64) -> Path:
    """A frame sequence (a folder of PNGs ``000.png``, ...) of a camera panning over a
    texture (``pipeline.testing.synthetic.pan_clip``): real motion for coherence."""
    from PIL import Image

    from pipeline.testing.synthetic import pan_clip

    folder.mkdir(parents=True)
    for index, frame in enumerate(pan_clip(frames=frames, width=size, height=size).frames):
        Image.fromarray(frame).save(folder / f"{index:03d}.png")
    return folder
