"""Finishing weights in: upscalers through spandrel and RIFE 4.6, read without running code."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import RotoscopeError
from pipeline.models.rife import load_rife
from pipeline.models.upscalers import load_upscaler
from pipeline.testing.tiny_finishing import SCALE

CPU = torch.device("cpu")


def test_a_tiny_esrgan_loads_through_spandrel_from_both_formats_and_scales_by_its_factor(
    tiny_finishing,
) -> None:
    image = torch.rand(1, 3, 24, 40)
    outputs = []
    for path in (tiny_finishing.esrgan, tiny_finishing.esrgan_pth):
        upscaler = load_upscaler(path, CPU, torch.float32)
        assert (upscaler.architecture, upscaler.scale, upscaler.tiling) == ("ESRGAN", SCALE, True)
        outputs.append(upscaler(image))
    assert outputs[0].shape == (1, 3, 24 * SCALE, 40 * SCALE)
    assert torch.equal(outputs[0], outputs[1])  # the same weights, whatever the file
    assert 0.05 < float(outputs[0].std()) < 0.5  # a picture, not a constant


def test_an_upscaler_is_loaded_at_half_precision_where_its_architecture_runs_it(
    tiny_finishing,
) -> None:
    """What runtime.dtype=auto asks for on CUDA; the frames' keys name the precision."""
    upscaler = load_upscaler(tiny_finishing.esrgan, CPU, torch.float16)
    assert upscaler.dtype is torch.float16
    assert {parameter.dtype for parameter in upscaler.model.model.parameters()} == {torch.float16}


class RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo never",))


def test_an_upscaler_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"model.0.weight": RunsCode()}, path)
    with pytest.raises(RotoscopeError, match=r"evil\.pth' is a pickle that would run code"):
        load_upscaler(path, CPU, torch.float32)


def test_weights_that_are_no_upscaler_are_one_line(tmp_path: Path, tiny_finishing) -> None:
    path = tmp_path / "lora.pth"
    torch.save({"lora_unet_down.alpha": torch.ones(1)}, path)
    with pytest.raises(RotoscopeError, match=r"is not an architecture spandrel .* knows"):
        load_upscaler(path, CPU, torch.float32)
    with pytest.raises(RotoscopeError, match=r"is not RIFE 4\.6's flow network"):
        load_rife(tiny_finishing.esrgan, CPU, torch.float32)


def test_the_tiny_rife_loads_and_makes_frames_of_any_size(tiny_finishing) -> None:
    rife = load_rife(tiny_finishing.rife, CPU, torch.float32)
    rng = np.random.default_rng(0)
    first, second = (rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(2))
    pictures = rife.between(first, second, [0.25, 0.5])
    assert [picture.shape for picture in pictures] == [(40, 56, 3)] * 2
    assert all(picture.dtype == np.uint8 for picture in pictures)
    assert not np.array_equal(pictures[0], pictures[1])  # the moment is an input


def test_the_family_and_its_native_size_are_told_from_files_without_loading(
    tiny_models, tmp_path: Path
) -> None:
    from pipeline.config.schema import ModelConfig, ModelFamily
    from pipeline.models.family import model_family, native_side

    def side(path: Path | str, family: ModelFamily = ModelFamily.auto) -> int | None:
        return native_side(ModelConfig(path=str(path), family=family))

    assert (side(tiny_models.sd15), side(tiny_models.sdxl)) == (512, 1024)
    assert side(tiny_models.sdxl_single) == 1024  # the .safetensors header's names
    checkpoint = tmp_path / "old.ckpt"  # a pickled checkpoint: names read, never unpickled
    torch.save({"state_dict": {"conditioner.embedders.0.x": torch.ones(1)}}, checkpoint)
    assert model_family(ModelConfig(path=str(checkpoint))) is ModelFamily.sdxl
    assert side(tmp_path / "missing") is None  # the render names the problem later
    assert side(tmp_path / "missing", ModelFamily.sdxl) == 1024  # model.family wins
