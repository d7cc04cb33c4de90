"""Depth maps, estimated once per loopback output and kept in the run folder.

The 3D camera moves each frame through the depth of the output before it. Estimating
depth costs a model call, so each map is stored under the key of the frame it was
estimated from (``RunFolder.depth_map``): a resumed or re-run job reads it back instead
of running the model, and a frame whose key changed gets a new map. A map also records
the depth model's identity (the model, its weight files, the blend), so a job that
changes the depth model estimates again rather than reusing another model's depth.

A map is a 16-bit grayscale PNG of nearness (65535 at depth 1, the nearest point; 0 at
depth 2, the farthest), viewable as the depth maps Deforum and ControlNet show. The
depth a frame is moved with is always the stored map's: a freshly estimated map is
stored first and read back through the same rounding, so a resumed job warps with
exactly the depth an uninterrupted one used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from pipeline.atomic import atomic_path

LEVELS = 65535
IDENTITY_KEY = "rotoscope-depth"


def to_levels(depth: np.ndarray) -> np.ndarray:
    """Depth (1 nearest .. 2 farthest) as 16-bit nearness levels."""
    return np.clip(np.rint((2.0 - depth.astype(np.float64)) * LEVELS), 0, LEVELS).astype(np.uint16)


def from_levels(levels: np.ndarray) -> np.ndarray:
    """16-bit nearness levels as depth (float32, 1 nearest .. 2 farthest)."""
    return (2.0 - levels.astype(np.float64) / LEVELS).astype(np.float32)


def preview(path: Path) -> np.ndarray:
    """A stored map as an 8-bit RGB picture (white near, black far), for the depth video."""
    with Image.open(path) as image:
        levels = np.asarray(image, dtype=np.uint16)
    gray = np.rint(levels.astype(np.float64) * (255.0 / LEVELS)).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


class DepthCache:
    """Depth maps by frame key, each in the file ``path_of(key)``, for one depth model."""

    def __init__(self, path_of: Callable[[str], Path], identity: str) -> None:
        self.path_of = path_of
        self.identity = hashlib.sha256(identity.encode()).hexdigest()
        self.estimated = 0  # maps made (not read from disk) by this object
        self.read = 0

    def depth(self, key: str, estimate: Callable[[], np.ndarray]) -> np.ndarray:
        """The depth of the output frame with ``key``: stored, or ``estimate()`` stored now."""
        path = self.path_of(key)
        stored = self._load(path)
        if stored is not None:
            self.read += 1
            return stored
        levels = to_levels(estimate())
        info = PngImagePlugin.PngInfo()
        info.add_text(IDENTITY_KEY, self.identity)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, durable=False) as tmp:
            Image.fromarray(levels).save(tmp, format="PNG", pnginfo=info, compress_level=1)
        self.estimated += 1
        return from_levels(levels)

    def _load(self, path: Path) -> np.ndarray | None:
        """The stored map if this model made it (None: missing, another model's, damaged)."""
        try:
            with Image.open(path) as image:
                if getattr(image, "text", {}).get(IDENTITY_KEY) != self.identity:
                    return None
                return from_levels(np.asarray(image, dtype=np.uint16))
        except (OSError, ValueError):
            return None
