"""A frame's initial noise as A1111 shapes it: the variation seed (a slerp toward the
subseed's noise), seed resize (the noise of another size at the centre) and the noise
multiplier; each frame alike alone and in a batch, drawn from its own generator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers import EulerAncestralDiscreteScheduler, EulerDiscreteScheduler

from pipeline.config.schema import ModelConfig, RuntimeConfig
from pipeline.models.loader import load_model
from pipeline.plan.rows import PlanRow
from pipeline.render.batch import FrameInput
from pipeline.render.initial_noise import FrameNoise, NoiseDraw, centred, initial_noise, slerp
from pipeline.render.pngmeta import a1111_parameters
from pipeline.render.renderer import Renderer


def plan_row(**changes: object) -> PlanRow:
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


@pytest.fixture
def noises(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """The noise each img2img call hands Euler's ``add_noise`` (after any shaping)."""
    seen: list[torch.Tensor] = []
    original = EulerDiscreteScheduler.add_noise

    def spy(self, samples, noise, timesteps):  # type: ignore[no-untyped-def]
        seen.append(noise.clone())
        return original(self, samples, noise, timesteps)

    monkeypatch.setattr(EulerDiscreteScheduler, "add_noise", spy)
    return seen


def hand_slerp(t: float, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The slerp of every column (all rows of one channel and x) of two (C, H, W) arrays,
    written out with plain loops: angle from the unit vectors' dot product, then
    sin((1-t) angle)/sin(angle) of one plus sin(t angle)/sin(angle) of the other."""
    out = np.empty_like(low)
    for c in range(low.shape[0]):
        for x in range(low.shape[2]):
            a, b = low[c, :, x], high[c, :, x]
            angle = math.acos(float(np.dot(a / np.linalg.norm(a), b / np.linalg.norm(b))))
            out[c, :, x] = (math.sin((1 - t) * angle) * a + math.sin(t * angle) * b) / math.sin(
                angle
            )
    return out


def test_slerp_matches_a_hand_computed_slerp_and_its_ends() -> None:
    generator = torch.Generator().manual_seed(0)
    low, high = torch.randn(4, 8, 8, generator=generator), torch.randn(4, 8, 8, generator=generator)
    for t in (0.25, 0.7):
        expected = hand_slerp(t, low.double().numpy(), high.double().numpy())
        assert np.allclose(slerp(t, low, high).numpy(), expected, atol=1e-5)
    assert torch.equal(slerp(0.0, low, high), low)  # strength 0: the seed's noise, exactly
    assert torch.equal(slerp(1.0, low, high), high)  # strength 1: the subseed's
    # the same noise on both sides (subseed = seed) stays itself
    assert torch.allclose(slerp(0.4, low, low), low)


def test_the_variation_noise_a_render_uses_is_the_slerp_of_both_seeds_noises(
    renderer: Renderer, image: np.ndarray, noises: list[torch.Tensor]
) -> None:
    renderer.render(plan_row(sampler="Euler", seed=3), image)
    renderer.render(plan_row(sampler="Euler", seed=9), image)
    renderer.render(plan_row(sampler="Euler", seed=3, subseed=9, subseed_strength=0.3), image)
    own, other, varied = (noise[0] for noise in noises)
    expected = hand_slerp(0.3, own.double().numpy(), other.double().numpy())
    assert np.allclose(varied.numpy(), expected, atol=1e-5)


def test_strength_0_is_no_variation_and_1_is_the_subseeds_frame(
    renderer: Renderer, image: np.ndarray
) -> None:
    plain = renderer.render(plan_row(), image)
    assert np.array_equal(renderer.render(plan_row(subseed=9, subseed_strength=0.0), image), plain)
    varied = renderer.render(plan_row(subseed=9, subseed_strength=0.5), image)
    assert not np.array_equal(varied, plain)
    # from noise alone (a txt2img frame), Euler draws nothing else: strength 1 renders
    # exactly the subseed's frame
    start = {"sampler": "Euler", "txt2img": True, "strength": 1.0}
    blank = np.zeros_like(image)
    subseeds = renderer.render(plan_row(**start, seed=3, subseed=9, subseed_strength=1.0), blank)
    assert np.array_equal(subseeds, renderer.render(plan_row(**start, seed=9), blank))
    assert not np.array_equal(subseeds, renderer.render(plan_row(**start, seed=3), blank))


def test_seed_resize_keeps_the_noise_centre(renderer: Renderer, noises: list[torch.Tensor]) -> None:
    small, wide = np.zeros((64, 64, 3), np.uint8), np.zeros((64, 128, 3), np.uint8)
    renderer.render(plan_row(sampler="Euler", seed=5), small)
    renderer.render(plan_row(sampler="Euler", seed=5, width=128), wide)
    renderer.render(
        plan_row(sampler="Euler", seed=5, width=128, seed_resize_from_w=64, seed_resize_from_h=64),
        wide,
    )  # fmt: skip
    at_64, at_128, resized = (noise[0] for noise in noises)
    # the 64x64 noise (8x8 latents) fills the centre of the 16x8 latents, the seed's own
    # 128-wide noise the sides
    assert torch.equal(resized[:, :, 4:12], at_64)
    assert torch.equal(resized[:, :, :4], at_128[:, :, :4])
    assert torch.equal(resized[:, :, 12:], at_128[:, :, 12:])


def test_a_larger_noise_is_cropped_at_its_centre() -> None:
    big = torch.arange(4 * 6 * 6, dtype=torch.float32).reshape(4, 6, 6)
    frame = torch.zeros(4, 4, 2)
    assert torch.equal(centred(big, frame), big[:, 1:5, 2:4])
    draw = NoiseDraw(0, torch.float32, torch.float32)
    generator = torch.Generator().manual_seed(11)
    assert torch.equal(draw.draw(11, (4, 2, 2)), torch.randn(1, 4, 2, 2, generator=generator)[0])


def test_variation_and_resize_shape_each_frame_alike_alone_and_in_a_batch(
    renderer: Renderer, image: np.ndarray
) -> None:
    rows = [
        plan_row(subseed=9, subseed_strength=0.4),
        plan_row(index=1, seed=4, seed_resize_from_w=32, seed_resize_from_h=48),
        plan_row(index=2, seed=5),
    ]
    alone = [renderer.render(row, image) for row in rows]
    together = renderer.render_batch([FrameInput(row, image) for row in rows])
    for one, batched in zip(alone, together, strict=True):
        assert np.abs(one.astype(int) - batched).max() <= 1  # within 1/255


def test_each_sample_gets_its_own_multiplier_and_the_scheduler_is_restored() -> None:
    scheduler = EulerAncestralDiscreteScheduler()
    latents, noise = torch.zeros(2, 4, 8, 8), torch.ones(2, 4, 8, 8)
    timestep = torch.tensor([scheduler.timesteps[0]] * 2)
    plain = scheduler.add_noise(latents, noise, timestep)
    with initial_noise(scheduler, [FrameNoise(1, 0.5), FrameNoise(2, 2.0)], 8):
        scaled = scheduler.add_noise(latents, noise, timestep)
    assert torch.allclose(scaled[0], plain[0] * 0.5) and torch.allclose(scaled[1], plain[1] * 2)
    assert "add_noise" not in vars(scheduler)  # the class's method again
    assert torch.equal(scheduler.add_noise(latents, noise, timestep), plain)


def test_a_multiplier_of_1_renders_exactly_as_none(renderer: Renderer, image: np.ndarray) -> None:
    assert np.array_equal(
        renderer.render(plan_row(noise_multiplier=1.0), image), renderer.render(plan_row(), image)
    )


def test_the_multiplier_changes_the_frame_alike_alone_and_in_a_batch(
    renderer: Renderer, image: np.ndarray
) -> None:
    plain = renderer.render(plan_row(), image)
    less = renderer.render(plan_row(noise_multiplier=0.5), image)
    more = renderer.render(plan_row(noise_multiplier=1.5, seed=4, index=1), image)
    assert not np.array_equal(less, plain)
    assert np.array_equal(less, renderer.render(plan_row(noise_multiplier=0.5), image))
    batch = renderer.render_batch(
        [FrameInput(plan_row(noise_multiplier=0.5), image),
         FrameInput(plan_row(noise_multiplier=1.5, seed=4, index=1), image)]
    )  # fmt: skip
    for alone, together in zip((less, more), batch, strict=True):
        assert np.abs(alone.astype(int) - together).max() <= 1  # within 1/255


def test_the_a1111_parameters_carry_the_noise_settings() -> None:
    assert "Noise multiplier: 1.05" in a1111_parameters(plan_row(noise_multiplier=1.05), "m", None)
    text = a1111_parameters(plan_row(), "m", None)
    assert "Noise multiplier" not in text and "Variation seed" not in text
    varied = a1111_parameters(
        plan_row(subseed=77, subseed_strength=0.25, seed_resize_from_w=512, seed_resize_from_h=768),
        "m", None,
    )  # fmt: skip
    assert "Variation seed: 77, Variation seed strength: 0.25" in varied
    assert "Seed resize from: 512x768" in varied
