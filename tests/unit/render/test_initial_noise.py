"""A1111's initial noise multiplier: each frame's starting noise scaled by its own value,
in a batch as alone, the noise still drawn from the frame's own generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import EulerAncestralDiscreteScheduler

from pipeline.config.schema import ModelConfig, RuntimeConfig
from pipeline.models.loader import load_model
from pipeline.plan.rows import PlanRow
from pipeline.render.batch import FrameInput
from pipeline.render.initial_noise import scaled_initial_noise
from pipeline.render.pngmeta import a1111_parameters
from pipeline.render.renderer import Renderer


def job(**changes: object) -> PlanRow:
    base = dict(
        index=0, prompt="a lighthouse", negative_prompt="", strength=0.6, guidance_scale=7.0,
        steps=4, sampler="Euler a", seed=3, width=64, height=64,
    )  # fmt: skip
    base.update(changes)
    return PlanRow(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def renderer(tiny_models) -> Renderer:
    return Renderer(
        load_model(ModelConfig(path=str(tiny_models.sd15)), RuntimeConfig(device="cpu"))
    )


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def test_each_sample_gets_its_own_multiplier_and_the_scheduler_is_restored() -> None:
    scheduler = EulerAncestralDiscreteScheduler()
    latents, noise = torch.zeros(2, 4, 8, 8), torch.ones(2, 4, 8, 8)
    timestep = torch.tensor([scheduler.timesteps[0]] * 2)
    plain = scheduler.add_noise(latents, noise, timestep)
    with scaled_initial_noise(scheduler, [0.5, 2.0]):
        scaled = scheduler.add_noise(latents, noise, timestep)
    assert torch.allclose(scaled[0], plain[0] * 0.5) and torch.allclose(scaled[1], plain[1] * 2)
    assert "add_noise" not in vars(scheduler)  # the class's method again
    assert torch.equal(scheduler.add_noise(latents, noise, timestep), plain)


def test_a_multiplier_of_1_renders_exactly_as_none(renderer: Renderer, image: np.ndarray) -> None:
    assert np.array_equal(
        renderer.render(job(noise_multiplier=1.0), image), renderer.render(job(), image)
    )


def test_the_multiplier_changes_the_frame_alike_alone_and_in_a_batch(
    renderer: Renderer, image: np.ndarray
) -> None:
    plain = renderer.render(job(), image)
    less = renderer.render(job(noise_multiplier=0.5), image)
    more = renderer.render(job(noise_multiplier=1.5, seed=4, index=1), image)
    assert not np.array_equal(less, plain)
    assert np.array_equal(less, renderer.render(job(noise_multiplier=0.5), image))
    batch = renderer.render_batch(
        [FrameInput(job(noise_multiplier=0.5), image),
         FrameInput(job(noise_multiplier=1.5, seed=4, index=1), image)]
    )  # fmt: skip
    for alone, together in zip((less, more), batch, strict=True):
        assert np.abs(alone.astype(int) - together).max() <= 1  # within 1/255


def test_the_multiplier_is_in_the_a1111_parameters() -> None:
    assert "Noise multiplier: 1.05" in a1111_parameters(job(noise_multiplier=1.05), "m", None)
    assert "Noise multiplier" not in a1111_parameters(job(), "m", None)
