"""The pixel steps around a masked frame's diffusion call: A1111's fill, crop and
paste, and the composite with the source frame.

A mask is (H, W) uint8, 255 where the frame is rendered (:mod:`pipeline.source.masks`);
its shaping is :mod:`pipeline.source.mask_shape`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.source.mask_shape import feather

# A1111's "fill": the masked area is painted from its surroundings by blurs of the kept
# pixels at these radii (pixels), coarse to fine, each layer over the last.
FILL_RADII = (256, 64, 16, 4, 2)


def composite(
    source: np.ndarray, render: np.ndarray, mask: np.ndarray, overlay_blur: float
) -> np.ndarray:
    """``render`` inside ``mask``, ``source`` outside, feathered across ``overlay_blur``
    pixels on each side of the mask's edge (A1111's overlay, Deforum's ``overlay_mask``).

    Where the feathered mask is 0 the result is ``source`` exactly, where it is 255
    ``render`` exactly: pixels farther than ``overlay_blur`` outside the mask are the
    source frame's own, to the bit.
    """
    alpha = feather(mask, overlay_blur)
    if not alpha.any():
        return source.copy()
    weight = alpha.astype(np.float32)[..., None] / 255.0
    mixed = source.astype(np.float32) + (render.astype(np.float32) - source) * weight
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def fill_masked(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` with the masked area painted from the colours around it (A1111's
    "Masked content: fill"), so the render starts from the surroundings, not the subject.

    Each layer is a normalised blur of the kept pixels (blur of the pixels weighted by
    "kept", divided by the blur of "kept"), so only kept colours spread; finer layers are
    laid over coarser ones where they have enough kept pixels nearby.
    """
    kept = (mask < 128).astype(np.float32)
    if not kept.any():
        return image.copy()
    result = image.astype(np.float32)
    filled = np.full_like(result, result[kept > 0].mean(axis=0))
    weighted = result * kept[..., None]
    for radius in FILL_RADII:
        size = 2 * radius + 1
        sigma = radius / 2.0
        weight = cv2.GaussianBlur(kept, (size, size), sigma, borderType=cv2.BORDER_REFLECT)
        colour = cv2.GaussianBlur(weighted, (size, size), sigma, borderType=cv2.BORDER_REFLECT)
        reliable = np.clip(weight * 4.0, 0.0, 1.0)[..., None]
        layer = colour / np.maximum(weight, 1e-6)[..., None]
        filled = filled * (1.0 - reliable) + layer * reliable
    inside = (1.0 - kept)[..., None]
    out = result * (1.0 - inside) + filled * inside
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Box:
    """A rectangle of a frame: columns ``left:right``, rows ``top:bottom``."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def cut(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image[self.top : self.bottom, self.left : self.right])

    def paste(self, base: np.ndarray, patch: np.ndarray) -> np.ndarray:
        """``base`` with ``patch`` (this box's size) put in this box."""
        out = base.copy()
        out[self.top : self.bottom, self.left : self.right] = patch
        return out


def crop_box(mask: np.ndarray, padding: int) -> Box:
    """The mask's bounding box grown by ``padding`` on every side, inside the frame (A1111's
    "Only masked" area). An empty mask has no box: the caller renders nothing then."""
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("an empty mask has no bounding box")
    height, width = mask.shape
    return Box(
        left=max(0, int(columns[0]) - padding),
        top=max(0, int(rows[0]) - padding),
        right=min(width, int(columns[-1]) + 1 + padding),
        bottom=min(height, int(rows[-1]) + 1 + padding),
    )


def crop_render_size(box: Box, native: int, multiple: int = 8) -> tuple[int, int]:
    """The size a crop is rendered at: the crop's own size, enlarged (aspect kept) to the
    model's native area (``native`` x ``native``) when it is smaller, so a small subject
    gets the model's full detail; multiples of ``multiple``."""
    scale = max(1.0, math.sqrt(native * native / (box.width * box.height)))

    def rounded(value: float) -> int:
        return max(multiple, round(value / multiple) * multiple)

    return rounded(box.width * scale), rounded(box.height * scale)


def resized(
    image: np.ndarray, width: int, height: int, enlarge: int = cv2.INTER_LANCZOS4
) -> np.ndarray:
    """``image`` at ``width`` x ``height``: area averaging down, ``enlarge`` (Lanczos) up
    (a mask goes up linearly: Lanczos rings past its edges)."""
    if (image.shape[1], image.shape[0]) == (width, height):
        return image
    shrinking = width * height < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else enlarge
    return cv2.resize(image, (width, height), interpolation=interpolation)
