"""One frame brought to its delivered size: by an upscaler model (tiled, as many passes as
it takes), then resampled to the exact size; or by Lanczos alone.

A 4x model asked for 2.8x runs once and the result is brought down with area averaging
(sharper than asking Lanczos for the whole way); a 2x model asked for 4x runs twice, as
A1111 does. Resampling down uses area averaging (no aliasing), up uses Lanczos.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from pipeline.models.upscalers import LoadedUpscaler

# A small-factor model is applied at most this many times to reach a larger size.
MAX_PASSES = 4


def resample(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` (uint8, or float32 in [0, 1]) at ``width`` x ``height``: area averaging
    when it shrinks, Lanczos when it grows; uint8 out."""
    if (image.shape[1], image.shape[0]) != (width, height):
        shrinking = width * height < image.shape[0] * image.shape[1]
        method = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
        image = cv2.resize(image, (width, height), interpolation=method)
    return to_uint8(image)


def to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


class FrameUpscaler:
    """Makes delivered frames with one loaded upscaler (or Lanczos when None)."""

    def __init__(self, model: LoadedUpscaler | None, tile: int, overlap: int) -> None:
        self.model = model
        self.tile = tile if model is None or model.tiling else 0
        self.overlap = overlap

    def __call__(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """``image`` (H x W x 3 uint8) at ``size`` (width, height)."""
        if self.model is None:
            return resample(image, *size)
        from pipeline.upscale.tiles import run_tiled

        model = self.model
        current: np.ndarray = image
        for number in range(MAX_PASSES):
            if number:  # the next pass reads what an 8-bit frame would hold
                current = to_uint8(current)
            current = run_tiled(
                model, current, model.scale, self.tile, self.overlap, model.device, model.dtype
            )
            big_enough = current.shape[1] >= size[0] and current.shape[0] >= size[1]
            if model.scale == 1 or big_enough:
                break
        return resample(current, *size)
