"""The renderer on the tiny models: blending between prompt keyframes, strength 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.config.schema import ModelConfig, RuntimeConfig
from pipeline.models.loader import load_model
from pipeline.plan.rows import PlanRow
from pipeline.render.conditioning import Conditioning
from pipeline.render.renderer import Renderer


def plan_row(**changes: object) -> PlanRow:
    base = dict(
        index=0, prompt="winter forest", negative_prompt="", strength=0.5, guidance_scale=7.0,
        steps=2, sampler="Euler a", seed=1, width=64, height=64,
    )  # fmt: skip
    base.update(changes)
    return PlanRow(**base)  # type: ignore[arg-type]


def first_conditioning(renderer: Renderer, row: PlanRow) -> Conditioning:
    return renderer.conditionings(row, lambda: row.steps).at(0)


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def renderer(request: pytest.FixtureRequest, tiny_models) -> Renderer:
    path = getattr(tiny_models, request.param)
    return Renderer(load_model(ModelConfig(path=str(path)), RuntimeConfig(device="cpu")))


def test_halfway_frame_lies_halfway_between_keyframe_embeddings(renderer: Renderer) -> None:
    start = first_conditioning(renderer, plan_row())
    end = first_conditioning(renderer, plan_row(prompt="summer forest, (sun:1.3)"))
    middle = first_conditioning(
        renderer, plan_row(prompt_to="summer forest, (sun:1.3)", negative_prompt_to="", blend=0.5)
    )
    expected = (start.prompt_embeds + end.prompt_embeds) / 2
    assert torch.allclose(middle.prompt_embeds, expected, atol=1e-6)
    if start.pooled_prompt_embeds is not None:  # SDXL pools blend too
        pooled = (start.pooled_prompt_embeds + end.pooled_prompt_embeds) / 2
        assert torch.allclose(middle.pooled_prompt_embeds, pooled, atol=1e-6)


def test_identical_prompts_are_encoded_once(renderer: Renderer) -> None:
    first_conditioning(renderer, plan_row(prompt="a lighthouse"))
    calls = renderer.prompts.encode_calls
    for _ in range(3):
        first_conditioning(renderer, plan_row(prompt="a lighthouse"))
    assert renderer.prompts.encode_calls == calls


def test_blended_frame_renders_between_its_keys(renderer: Renderer) -> None:
    image = np.full((64, 64, 3), 120, np.uint8)
    a = renderer.render(plan_row(), image).astype(float)
    b = renderer.render(plan_row(prompt="summer forest"), image).astype(float)
    mid = renderer.render(
        plan_row(prompt_to="summer forest", negative_prompt_to="", blend=0.5), image
    )
    assert mid.shape == image.shape
    assert not np.array_equal(a, b)
    assert np.abs(mid - (a + b) / 2).mean() < np.abs(a - b).mean()


def test_strength_zero_copies_the_input(renderer: Renderer) -> None:
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert np.array_equal(renderer.render(plan_row(strength=0.0), image), image)
