"""ControlNets on the tiny models: loading, the four control pipelines, and that the map matters.

Every render goes the way the renderer's will: ``control_pipeline`` around the loaded
base model, ``control_kwargs`` for the ControlNet arguments, the base model's A1111-style
prompt embeddings and a seeded CPU generator; 64x64, two steps.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.config.schema import ModelConfig, ModelFamily, RuntimeConfig
from pipeline.errors import RotoscopeError
from pipeline.models.controlnets import (
    control_kwargs,
    control_pipeline,
    controlnet_identity,
    load_controlnet,
)
from pipeline.models.loader import LoadedModel, load_model
from pipeline.render.conditioning import PromptEncoder

SIZE = 64


def picture(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))


FRAME = picture(0)
MAP_A = picture(1)
MAP_B = Image.fromarray(np.full((SIZE, SIZE, 3), 255, np.uint8))  # a blank (white) map


@dataclass
class Rig:
    """A loaded base model, its ControlNet and the prompt embeddings every render uses."""

    base: LoadedModel
    controlnet: Any
    prompt: dict[str, torch.Tensor]
    pipes: dict[tuple[bool, int], Any]

    def pipe(self, img2img: bool, units: int = 1) -> Any:
        key = (img2img, units)
        if key not in self.pipes:
            self.pipes[key] = control_pipeline(self.base, [self.controlnet] * units, img2img)
        return self.pipes[key]

    def render(
        self,
        img2img: bool,
        maps: list[Image.Image],
        scales: list[float] | None = None,
        ends: list[float] | None = None,
        seed: int = 1,
    ) -> np.ndarray:
        units = len(maps)
        kwargs = control_kwargs(
            img2img,
            FRAME if img2img else None,
            maps,
            scales or [1.0] * units,
            [0.0] * units,
            ends or [1.0] * units,
            SIZE,
            SIZE,
        )
        if img2img:
            kwargs["strength"] = 0.6
        with torch.inference_mode():
            result = self.pipe(img2img, units)(
                **kwargs,
                **self.prompt,
                generator=torch.Generator(device="cpu").manual_seed(seed),
                num_inference_steps=2,
                guidance_scale=7.0,
                output_type="np",
            )
        return np.asarray(result.images[0])


@pytest.fixture(scope="module")
def bases(tiny_models) -> dict[str, LoadedModel]:
    runtime = RuntimeConfig(device="cpu", offline=True)
    return {
        family: load_model(ModelConfig(path=str(getattr(tiny_models, family))), runtime)
        for family in ("sd15", "sdxl")
    }


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def rig(request: pytest.FixtureRequest, bases, tiny_controlnets) -> Rig:
    family = request.param
    base = bases[family]
    controlnet = load_controlnet(str(getattr(tiny_controlnets, family)), base, offline=True)
    encoder = PromptEncoder(base.pipe, ModelFamily(family), base.device)
    prompt = encoder.encode("a lighthouse at dusk", "blurry", True).pipeline_kwargs()
    return Rig(base, controlnet, prompt, {})


# --- loading ---


def test_single_file_loads_the_same_weights_as_the_folder(bases, tiny_controlnets) -> None:
    base = bases["sd15"]
    folder = load_controlnet(str(tiny_controlnets.sd15), base, offline=True)
    single = load_controlnet(str(tiny_controlnets.sd15_single), base, offline=True)
    expected, loaded = folder.state_dict(), single.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)
    assert next(single.parameters()).dtype == base.dtype
    assert single.device == base.device


def test_sdxl_controlnet_has_the_size_conditioning(bases, tiny_controlnets) -> None:
    controlnet = load_controlnet(str(tiny_controlnets.sdxl), bases["sdxl"], offline=True)
    assert controlnet.config.addition_embed_type == "text_time"
    assert (
        controlnet.config.cross_attention_dim == bases["sdxl"].pipe.unet.config.cross_attention_dim
    )


def test_missing_controlnet_is_named(bases, tmp_path: Path) -> None:
    missing = str(tmp_path / "control_canny.safetensors")
    with pytest.raises(RotoscopeError, match=re.escape(f"controlnet '{missing}' not found")):
        load_controlnet(missing, bases["sd15"], offline=True)
    with pytest.raises(RotoscopeError, match="not found"):
        controlnet_identity(missing)


def test_folder_without_config_and_uncached_hub_id_are_explained(bases, tmp_path: Path) -> None:
    with pytest.raises(RotoscopeError, match=r"folder without config\.json"):
        load_controlnet(str(tmp_path), bases["sd15"], offline=True)
    with pytest.raises(RotoscopeError, match="not in the local Hugging Face cache"):
        load_controlnet("rotoscope-tests/no-such-controlnet", bases["sd15"], offline=True)


@pytest.mark.parametrize(
    ("controlnet", "base", "families"),
    [
        ("sd15", "sdxl", ("SD 1.x/2.x ControlNet", "model is SDXL")),
        ("sd15_single", "sdxl", ("SD 1.x/2.x ControlNet", "model is SDXL")),
        ("sdxl", "sd15", ("SDXL ControlNet", "model is SD 1.x/2.x")),
    ],
)
def test_controlnet_of_another_family_is_refused(
    bases, tiny_controlnets, controlnet: str, base: str, families: tuple[str, str]
) -> None:
    path = str(getattr(tiny_controlnets, controlnet))
    with pytest.raises(RotoscopeError) as error:
        load_controlnet(path, bases[base], offline=True)
    message = str(error.value)
    assert f"'{path}'" in message
    assert all(family in message for family in families)


def test_identity_is_stable_and_follows_the_files(tiny_controlnets, tmp_path: Path) -> None:
    folder = tmp_path / "controlnet"
    shutil.copytree(tiny_controlnets.sd15, folder)
    first = controlnet_identity(str(folder))
    assert controlnet_identity(str(folder)) == first
    assert controlnet_identity(str(tiny_controlnets.sd15_single)) != first
    weights = next(folder.glob("*.safetensors"))
    os.utime(weights, ns=(0, weights.stat().st_mtime_ns + 1_000_000_000))
    assert controlnet_identity(str(folder)) != first


# --- control pipelines ---


@pytest.mark.parametrize(
    ("img2img", "units"), [(True, 1), (True, 2), (False, 1)], ids=["img2img", "multi", "txt2img"]
)
def test_control_render_is_deterministic(rig: Rig, img2img: bool, units: int) -> None:
    maps = [MAP_A, MAP_B][:units]
    first = rig.render(img2img, maps)
    assert first.shape == (SIZE, SIZE, 3)
    assert np.array_equal(rig.render(img2img, maps), first)
    assert not np.array_equal(rig.render(img2img, maps, seed=2), first)
    if units > 1:
        assert type(rig.pipe(img2img, units).controlnet).__name__ == "MultiControlNetModel"


@pytest.mark.parametrize("img2img", [True, False], ids=["img2img", "txt2img"])
def test_the_control_map_steers_the_image(rig: Rig, img2img: bool) -> None:
    # clearly, not by rounding noise (float rounding is ~1e-7): a twentieth of a grey level
    # on average at least (with img2img the init image, which the tiny models' VAE keeps,
    # dominates the tiny SDXL ControlNet's effect)
    difference = np.abs(rig.render(img2img, [MAP_A]) - rig.render(img2img, [MAP_B])).mean()
    assert difference > 2e-4
    ignored = rig.render(img2img, [MAP_B], scales=[0.0])
    assert np.array_equal(rig.render(img2img, [MAP_A], scales=[0.0]), ignored)
    assert np.array_equal(rig.render(img2img, [MAP_A], ends=[0.0]), ignored)


def test_each_unit_of_several_steers_the_image(rig: Rig) -> None:
    both = rig.render(True, [MAP_A, MAP_A])
    assert not np.array_equal(rig.render(True, [MAP_A, MAP_B]), both)
    assert not np.array_equal(rig.render(True, [MAP_B, MAP_A]), both)
    # a unit at scale 0 is ignored whatever its map
    assert np.array_equal(
        rig.render(True, [MAP_A, MAP_A], scales=[1.0, 0.0]),
        rig.render(True, [MAP_A, MAP_B], scales=[1.0, 0.0]),
    )


def test_control_pipeline_shares_the_base_model(rig: Rig) -> None:
    base = rig.base.pipe
    names = ["unet", "vae", "text_encoder", "tokenizer", "scheduler"]
    if rig.base.family == "sdxl":
        names += ["text_encoder_2", "tokenizer_2"]
    for img2img in (True, False):
        pipe = rig.pipe(img2img)
        assert all(getattr(pipe, name) is getattr(base, name) for name in names)
        assert pipe.controlnet is rig.controlnet
    assert rig.pipe(True, 2).controlnet.nets[0] is rig.controlnet
    if rig.base.family == "sd15":
        assert rig.pipe(True).safety_checker is None
    assert rig.base.pipe.unet.dtype == rig.base.dtype
    with torch.inference_mode():
        result = base(
            image=FRAME,
            strength=0.6,
            num_inference_steps=2,
            guidance_scale=7.0,
            generator=torch.Generator(device="cpu").manual_seed(1),
            output_type="np",
            **rig.prompt,
        )
    assert np.asarray(result.images[0]).shape == (SIZE, SIZE, 3)


def test_control_pipeline_keeps_a_half_precision_base_in_half_precision(
    tiny_models, tiny_controlnets
) -> None:
    # diffusers' from_pipe casts the new pipeline, shared modules included, to float32
    # unless told otherwise
    base = load_model(ModelConfig(path=str(tiny_models.sd15)), RuntimeConfig(device="cpu"))
    base.pipe.to(torch.float16)
    base = dataclasses.replace(base, dtype=torch.float16)
    controlnet = load_controlnet(str(tiny_controlnets.sd15_single), base, offline=True)
    pipe = control_pipeline(base, [controlnet], img2img=True)
    assert pipe.unet.dtype == pipe.vae.dtype == pipe.controlnet.dtype == torch.float16


# --- control_kwargs ---


def test_one_unit_gets_single_values_and_several_get_lists() -> None:
    one = control_kwargs(True, FRAME, [MAP_A], [1], [0.0], [0.5], 64, 48)
    assert one == {
        "image": FRAME,
        "control_image": MAP_A,
        "controlnet_conditioning_scale": 1.0,
        "control_guidance_start": 0.0,
        "control_guidance_end": 0.5,
        "width": 64,
        "height": 48,
    }
    assert isinstance(one["controlnet_conditioning_scale"], float)  # diffusers insists
    several = control_kwargs(
        False, None, [MAP_A, MAP_B], [0.5, 1.0], [0.0, 0.2], [1.0, 0.8], 64, 64
    )
    assert several["image"] == [MAP_A, MAP_B]
    assert "control_image" not in several
    assert several["controlnet_conditioning_scale"] == [0.5, 1.0]
    assert several["control_guidance_start"] == [0.0, 0.2]
    assert several["control_guidance_end"] == [1.0, 0.8]


def test_an_empty_guidance_window_becomes_scale_zero() -> None:
    kwargs = control_kwargs(True, FRAME, [MAP_A, MAP_B], [1.0, 0.7], [0.0, 0.5], [0.0, 1.0], 64, 64)
    assert kwargs["controlnet_conditioning_scale"] == [0.0, 0.7]
    assert kwargs["control_guidance_start"] == [0.0, 0.5]
    assert kwargs["control_guidance_end"] == [1.0, 1.0]


def test_control_kwargs_refuse_mismatched_units() -> None:
    with pytest.raises(ValueError, match="2 maps, 1 scales"):
        control_kwargs(True, FRAME, [MAP_A, MAP_B], [1.0], [0.0, 0.0], [1.0, 1.0], 64, 64)
    with pytest.raises(ValueError, match="init_image"):
        control_kwargs(True, None, [MAP_A], [1.0], [0.0], [1.0], 64, 64)
