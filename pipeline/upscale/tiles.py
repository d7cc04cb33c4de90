"""An upscaler run over a frame tile by tile, so its memory does not grow with the frame.

A convolutional upscaler needs working memory in proportion to the pixels it sees at
once: a 4x ESRGAN on a whole 1024x1024 frame holds gigabytes of activations, on a
512x512 tile a quarter of that, whatever the frame's size. Each tile is given
``overlap`` pixels of context on every side; where two tiles meet, the result
cross-fades between them over the middle of their shared context, so each tile's output
is used only at least ``overlap / 2`` pixels away from the edge it was cut at. For a
model whose receptive field reaches no further than that, the tiled result equals the
whole-frame result (up to float rounding); for larger ones the cross-fade hides the
seam. The weights of overlapping tiles sum to one along each axis, so their separable
products cover every pixel exactly once.

The result is accumulated in float32 on the CPU and rounded once at the end, like the
untiled result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

Model = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Span:
    """One tile along one axis: the input pixels it reads, and the weight of each of
    its output pixels."""

    start: int  # first input pixel read (its core plus context, clamped to the frame)
    stop: int
    weights: np.ndarray  # float32, one per output pixel: (stop - start) * scale


def spans(length: int, tile: int, overlap: int, scale: int) -> list[Span]:
    """The tiles along an axis of ``length`` input pixels: cores of ``tile`` pixels,
    read with ``overlap`` pixels of context on each side."""
    if tile <= 0 or length <= tile:
        return [Span(0, length, np.ones(length * scale, np.float32))]
    bounds = list(range(tile, length, tile))  # where one core ends and the next begins
    cores = list(zip([0, *bounds], [*bounds, length], strict=True))
    result = []
    for number, (core_start, core_stop) in enumerate(cores):
        start, stop = max(0, core_start - overlap), min(length, core_stop + overlap)
        out = (np.arange(start * scale, stop * scale, dtype=np.float64) + 0.5) / scale
        weight = np.ones(out.shape, np.float64)
        if number > 0:
            weight *= _ramp(out, core_start, overlap)
        if number < len(cores) - 1:
            weight *= 1.0 - _ramp(out, core_stop, overlap)
        result.append(Span(start, stop, weight.astype(np.float32)))
    return result


def _ramp(positions: np.ndarray, boundary: int, overlap: int) -> np.ndarray:
    """0 before the band of width ``overlap`` centred on ``boundary``, 1 after, linear in it."""
    if overlap == 0:
        return (positions >= boundary).astype(np.float64)
    return np.clip((positions - (boundary - overlap / 2)) / overlap, 0.0, 1.0)


def run_tiled(
    model: Model,
    image: np.ndarray,
    scale: int,
    tile: int,
    overlap: int,
    device: torch.device,
    dtype: torch.dtype,
) -> np.ndarray:
    """``model`` (scaling by ``scale``) applied to ``image`` (H x W x 3 uint8) tile by tile:
    the upscaled frame, float32 in [0, 1], ``H*scale`` x ``W*scale`` x 3. ``tile`` 0 runs
    the whole frame at once."""
    height, width = image.shape[:2]
    out = np.zeros((height * scale, width * scale, 3), np.float32)
    for rows in spans(height, tile, overlap, scale):
        for cols in spans(width, tile, overlap, scale):
            patch = image[rows.start : rows.stop, cols.start : cols.stop]
            upscaled = _run(model, patch, device, dtype)
            expected = ((rows.stop - rows.start) * scale, (cols.stop - cols.start) * scale)
            if upscaled.shape[:2] != expected:
                raise ValueError(
                    f"the upscaler made {upscaled.shape[1]}x{upscaled.shape[0]} from "
                    f"{patch.shape[1]}x{patch.shape[0]}, not {scale}x"
                )
            weight = rows.weights[:, None, None] * cols.weights[None, :, None]
            out[rows.start * scale : rows.stop * scale, cols.start * scale : cols.stop * scale] += (
                upscaled * weight
            )
    return out


@torch.inference_mode()
def _run(model: Model, patch: np.ndarray, device: torch.device, dtype: torch.dtype) -> np.ndarray:
    tensor = torch.from_numpy(patch.copy()).to(device)  # a writable copy of the slice
    tensor = tensor.permute(2, 0, 1).unsqueeze(0).to(dtype) / 255.0
    result = model(tensor).clamp(0, 1)
    return result[0].permute(1, 2, 0).float().cpu().numpy()
