"""Free-disk checks: refuse to start a job that cannot fit, stop cleanly when full.

A render that dies at 3 a.m. because the disk filled is worse than one that refuses to
start, so the render stage compares free space with a deliberately generous estimate
before the first frame. Disks also fill for other reasons mid-run; writes then fail with
ENOSPC, which the frame writer turns into a clean stop (nothing half-written is kept).
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from pipeline.errors import RotoscopeError

MIB = 2**20


def estimate_bytes(frames: int, width: int, height: int) -> int:
    """Upper-bound guess: raw RGB size per PNG frame (PNG rarely exceeds it), the optical
    flow the metrics stage and coherence keep per frame (two half-precision flows), plus
    the encoded video (a few bits per pixel at high quality) and a fixed margin."""
    frame = width * height * 3 + 4096 + width * height * 8
    video = frames * width * height // 2
    return frames * frame + video + 16 * MIB


def check_free_space(folder: Path, frames: int, width: int, height: int) -> None:
    """Fail before rendering when ``folder``'s disk cannot hold ``frames`` more frames."""
    if frames <= 0:
        return
    needed = estimate_bytes(frames, width, height)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise RotoscopeError(
            f"not enough free disk for {frames} frames in {folder}: about "
            f"{needed / MIB:.0f} MiB needed, {free / MIB:.0f} MiB free",
            "free some space or set output.root to another disk",
        )


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
