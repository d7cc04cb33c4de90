"""A1111 sampler names: spelling, mapping to diffusers schedulers, and that each one runs."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler
from PIL import Image

from pipeline.config.schema import ModelConfig, RuntimeConfig
from pipeline.errors import RotoscopeError
from pipeline.models.loader import LoadedModel, load_model
from pipeline.models.samplers import (
    SAMPLER_NAMES,
    canonical_sampler,
    make_scheduler,
    seed_scheduler,
)
from pipeline.testing.tiny_models import TinyModels

HAS_TORCHSDE = importlib.util.find_spec("torchsde") is not None
TORCHSDE_SAMPLERS = {"DPM++ SDE", "DPM++ SDE Karras"}
SD_SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "prediction_type": "epsilon",
}


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("DPM++ 2M Karras", "DPM++ 2M Karras"),
        ("dpm++ 2m karras", "DPM++ 2M Karras"),
        ("dpmpp_2m_karras", "DPM++ 2M Karras"),
        ("DPMPP-2M-SDE", "DPM++ 2M SDE"),
        ("Euler a", "Euler a"),
        ("euler_a", "Euler a"),
        ("k_euler_a", "Euler a"),
        ("euler_ancestral", "Euler a"),
        ("k_euler", "Euler"),
        ("k_dpm_2_a", "DPM2 a"),
        ("k_lms", "LMS"),
        ("  unipc ", "UniPC"),
        ("plms", "PLMS"),
    ],
)
def test_sampler_spellings(spelling: str, canonical: str) -> None:
    assert canonical_sampler(spelling) == canonical


def test_canonical_names_are_fixed_points_and_distinct() -> None:
    assert all(canonical_sampler(name) == name for name in SAMPLER_NAMES)
    required = {
        "Euler a", "Euler", "DPM++ 2M", "DPM++ 2M Karras", "DPM++ SDE", "DPM++ SDE Karras",
        "DPM++ 2M SDE", "DPM++ 2M SDE Karras", "DDIM", "UniPC", "LMS", "LMS Karras", "Heun",
        "DPM2", "DPM2 a", "PLMS",
    }  # fmt: skip
    assert required <= set(SAMPLER_NAMES)


def test_unknown_sampler_lists_the_valid_names() -> None:
    with pytest.raises(RotoscopeError) as excinfo:
        canonical_sampler("DPM fast")
    text = str(excinfo.value)
    assert "\n" not in text
    assert text.startswith("unknown sampler 'DPM fast'")
    assert all(name in text for name in SAMPLER_NAMES)
    with pytest.raises(RotoscopeError, match="unknown sampler"):
        make_scheduler("nope", SD_SCHEDULER)


def test_scheduler_keeps_the_model_settings_and_sets_the_sampler_ones() -> None:
    base = {**SD_SCHEDULER, "prediction_type": "v_prediction"}
    karras = make_scheduler("DPM++ 2M Karras", base)
    assert isinstance(karras, DPMSolverMultistepScheduler)
    assert (karras.config.algorithm_type, karras.config.solver_order) == ("dpmsolver++", 2)
    assert karras.config.use_karras_sigmas is True
    assert (karras.config.prediction_type, karras.config.beta_end) == ("v_prediction", 0.012)
    # a base config that is itself Karras does not leak into a plain sampler
    euler = make_scheduler("Euler", dict(karras.config))
    assert isinstance(euler, EulerDiscreteScheduler)
    assert euler.config.use_karras_sigmas is False
    assert make_scheduler("DPM++ 2M SDE", base).config.algorithm_type == "sde-dpmsolver++"


def test_missing_optional_package_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.models.samplers as samplers

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        samplers.importlib.util,
        "find_spec",
        lambda name, *args: None if name in {"torchsde", "scipy"} else real_find_spec(name, *args),
    )
    with pytest.raises(
        RotoscopeError, match=r"needs the Python package 'torchsde'.*pip install torchsde"
    ):
        make_scheduler("DPM++ SDE Karras", SD_SCHEDULER)
    with pytest.raises(RotoscopeError, match="pip install scipy"):
        make_scheduler("LMS", SD_SCHEDULER)


def test_seed_scheduler_sets_the_sde_noise_seed_only() -> None:
    class SdeLike:
        noise_sampler_seed = 0
        noise_sampler = object()

    sde = SdeLike()
    seed_scheduler(sde, 1234)  # type: ignore[arg-type]
    assert (sde.noise_sampler_seed, sde.noise_sampler) == (1234, None)
    euler = make_scheduler("Euler", SD_SCHEDULER)
    seed_scheduler(euler, 1234)
    assert not hasattr(euler, "noise_sampler_seed")


# --- every sampler runs img2img on the tiny models ---


Loaded = tuple[LoadedModel, dict]  # the model and its original scheduler config


@pytest.fixture(scope="module")
def models(tiny_models: TinyModels) -> dict[str, Loaded]:
    runtime = RuntimeConfig(device="cpu", offline=True)
    loaded = {}
    for family in ("sd15", "sdxl"):
        model = load_model(ModelConfig(path=str(getattr(tiny_models, family))), runtime)
        loaded[family] = (model, dict(model.pipe.scheduler.config))
    return loaded


def img2img(loaded: Loaded, sampler: str, seed: int) -> np.ndarray:
    """64x64, 2 denoising steps (4 scheduled, strength 0.5), sampler set as the renderer does."""
    model, base_config = loaded
    model.pipe.scheduler = make_scheduler(sampler, base_config)
    seed_scheduler(model.pipe.scheduler, seed)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    with torch.inference_mode():
        result = model.pipe(
            prompt="a watercolor fox",
            image=image,
            strength=0.5,
            num_inference_steps=4,
            guidance_scale=7.0,
            generator=torch.Generator("cpu").manual_seed(seed),
            output_type="np",
        )
    return np.asarray(result.images[0])


def needs(sampler: str) -> list[pytest.MarkDecorator]:
    if sampler in TORCHSDE_SAMPLERS and not HAS_TORCHSDE:
        return [pytest.mark.skip(reason="torchsde not installed (pip install torchsde)")]
    return []


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
@pytest.mark.parametrize("sampler", [pytest.param(s, marks=needs(s)) for s in SAMPLER_NAMES])
def test_every_sampler_runs_img2img(models: dict[str, Loaded], family: str, sampler: str) -> None:
    out = img2img(models[family], sampler, seed=5)
    assert out.shape == (64, 64, 3)
    assert np.isfinite(out).all()


@pytest.mark.parametrize(
    "sampler", [pytest.param(s, marks=needs(s)) for s in ("Euler a", "DPM++ 2M SDE", "DPM++ SDE")]
)
def test_stochastic_samplers_are_reproducible(models: dict[str, Loaded], sampler: str) -> None:
    first, again, other = (img2img(models["sd15"], sampler, seed) for seed in (11, 11, 12))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
