"""Tiled upscaling: the tiles cover every output pixel once, and tiled equals untiled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.models.upscalers import load_upscaler
from pipeline.testing.tiny_finishing import SCALE
from pipeline.upscale.frames import FrameUpscaler, resample
from pipeline.upscale.tiles import run_tiled, spans


@pytest.mark.parametrize(("length", "tile", "overlap"), [(160, 64, 20), (100, 32, 15), (64, 64, 8)])
def test_tile_weights_add_up_to_one_on_every_output_pixel(
    length: int, tile: int, overlap: int
) -> None:
    total = np.zeros(length * SCALE)
    for span in spans(length, tile, overlap, SCALE):
        assert 0 <= span.start < span.stop <= length
        total[span.start * SCALE : span.stop * SCALE] += span.weights
    assert np.allclose(total, 1.0)


def test_tiled_upscaling_equals_the_whole_frame_within_1_in_255(tiny_finishing) -> None:
    upscaler = load_upscaler(tiny_finishing.esrgan, torch.device("cpu"), torch.float32)
    image = np.random.default_rng(1).integers(0, 256, (112, 144, 3), dtype=np.uint8)
    args = (upscaler.scale, upscaler.device, upscaler.dtype)
    whole = run_tiled(upscaler, image, args[0], 0, 0, *args[1:])
    tiled = run_tiled(upscaler, image, args[0], 48, 22, *args[1:])  # 3x3 tiles
    assert whole.shape == (224, 288, 3)
    assert np.abs(whole - tiled).max() <= 1 / 255


def test_a_frame_reaches_its_exact_size_by_model_passes_then_resampling(tiny_finishing) -> None:
    upscaler = load_upscaler(tiny_finishing.esrgan, torch.device("cpu"), torch.float32)
    image = np.random.default_rng(2).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    made = FrameUpscaler(upscaler, tile=32, overlap=8)
    assert made(image, (80, 60)).shape == (60, 80, 3)  # 2x, then Lanczos up to 2.5x
    assert made(image, (120, 90)).shape == (90, 120, 3)  # 2x twice, then area down
    lanczos = FrameUpscaler(None, tile=32, overlap=8)
    assert np.array_equal(lanczos(image, (64, 48)), resample(image, 64, 48))
