"""Where the ffmpeg binary comes from.

imageio-ffmpeg ships a static ffmpeg inside its wheel, so ``pip install`` alone gives a
working encoder and decoder; ``IMAGEIO_FFMPEG_EXE`` (honoured by imageio-ffmpeg itself)
points at another binary. The wheel has no ffprobe, so probing parses ``ffmpeg -i``.
"""

from __future__ import annotations

from functools import lru_cache

from pipeline.errors import RotoscopeError


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Return the path of the ffmpeg binary, or fail with a one-line fix."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a broken install
        raise RotoscopeError(
            "imageio-ffmpeg is not installed", "pip install imageio-ffmpeg"
        ) from exc
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise RotoscopeError(
            f"no ffmpeg binary found: {exc}",
            "set IMAGEIO_FFMPEG_EXE to an ffmpeg binary or reinstall imageio-ffmpeg",
        ) from exc
