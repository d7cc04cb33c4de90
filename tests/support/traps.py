"""Booby-trapped weight files: pickles whose unpickling would run a shell command that
leaves a marker file, so a test can prove a loader refused one before its code ran.

Import from tests as ``from support.traps import save_trap``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path


class Trap:
    """Unpickling this runs ``touch MARKER`` (the pickle names ``posix.system``, not this
    class, so it needs nothing from the tests to go off)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def save_trap(
    path: Path, marker: Path, layout: Callable[[Trap], object] = lambda trap: {"x": trap}
) -> Path:
    """Write a pickled weight file at ``path`` (``torch.save``: any of .pt, .ckpt, .bin,
    .pth) holding ``layout(trap)``: where the trap sits in the file's structure."""
    import torch

    torch.save(layout(Trap(marker)), path)
    return path
