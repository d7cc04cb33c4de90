"""Prompt editing during a render, and few-step img2img, on the tiny models.

The UNet is watched with a forward pre-hook, so each test sees the text embeddings every
denoising step really got.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from pipeline.config.schema import ControlMode, ModelConfig, ModelFamily, PromptBlend, RuntimeConfig
from pipeline.models.controlnets import load_controlnet
from pipeline.models.loader import load_model
from pipeline.models.samplers import SAMPLER_NAMES, denoising_steps, make_scheduler
from pipeline.plan.rows import ControlValues, PlanRow
from pipeline.render.conditioning import Conditioning, blend
from pipeline.render.renderer import LoadedControlNet, Renderer, editing_length
from pipeline.testing.tiny_models import TinyModels

IMAGE = np.full((64, 64, 3), 120, np.uint8)
IMAGE[8:40, 20:56] = (30, 160, 220)


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def renderer(request: pytest.FixtureRequest, tiny_models: TinyModels) -> Renderer:
    path = getattr(tiny_models, request.param)
    return Renderer(load_model(ModelConfig(path=str(path)), RuntimeConfig(device="cpu")))


def plan_row(**changes: Any) -> PlanRow:
    """Strength 0.6 of 5 steps: 3 denoising steps run (0, 1, 2)."""
    base = dict(
        index=0, prompt="cat", negative_prompt="", strength=0.6, guidance_scale=7.0, steps=5,
        sampler="Euler", seed=11, width=64, height=64,
    )  # fmt: skip
    base.update(changes)
    return PlanRow(**base)  # type: ignore[arg-type]


@contextmanager
def watched_unet(renderer: Renderer) -> Iterator[list[dict[str, torch.Tensor]]]:
    """Every UNet call's text conditioning: the positive half of the guided batch."""
    calls: list[dict[str, torch.Tensor]] = []

    def record(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        hidden = kwargs["encoder_hidden_states"]
        seen = {"prompt_embeds": hidden[-1:].clone()}
        added = kwargs.get("added_cond_kwargs") or {}
        if "text_embeds" in added:
            seen["pooled"] = added["text_embeds"][-1:].clone()
        calls.append(seen)

    handle = renderer.pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


def encoded(renderer: Renderer, prompt: str, **changes: Any) -> Conditioning:
    return renderer.conditionings(plan_row(prompt=prompt, **changes), lambda: 3).at(0)


def assert_steps(
    renderer: Renderer, calls: list[dict[str, torch.Tensor]], expected: list[Conditioning]
) -> None:
    assert len(calls) == len(expected)
    for step, (call, conditioning) in enumerate(zip(calls, expected, strict=True)):
        torch.testing.assert_close(
            call["prompt_embeds"], conditioning.prompt_embeds, msg=f"step {step}"
        )
        if "pooled" in call:
            assert conditioning.pooled_prompt_embeds is not None
            torch.testing.assert_close(call["pooled"], conditioning.pooled_prompt_embeds)


@pytest.mark.parametrize(("prompt"), ["[cat:dog:1]", "[cat:dog:0.5]"])
def test_prompt_editing_switches_at_the_right_step(renderer: Renderer, prompt: str) -> None:
    """3 steps run, so 0.5 means int(1.5) = step 1: cat for steps 0-1, dog for step 2
    (A1111 switches after step 'when', counting from 0, over the steps that run)."""
    cat, dog = encoded(renderer, "cat"), encoded(renderer, "dog")
    with watched_unet(renderer) as calls:
        renderer.render(plan_row(prompt=prompt), IMAGE)
    assert_steps(renderer, calls, [cat, cat, dog])


@pytest.mark.parametrize(
    ("sampler", "prompt", "ours", "a1111"),
    [
        # 3 steps run. rotoscope: int(0.5 x 3) = 1 / A1111's schedule over 5: int(2.5) = 2
        ("Euler", "[cat:dog:0.5]", "ccd", "ccc"),
        # int(0.3 x 3) = 0: dog from the first step, as A1111's [cat:dog:0] / int(1.5) = 1
        ("Euler", "[cat:dog:0.3]", "ddd", "ccd"),
        # Heun: 3 steps are 5 model calls; int(0.3 x 5) = 1 / A1111: over 2 x 5 = 10, 3
        ("Heun", "[cat:dog:0.3]", "ccddd", "ccccd"),
    ],
)
def test_prompt_editing_steps_counts_as_the_row_says(
    renderer: Renderer, sampler: str, prompt: str, ours: str, a1111: str
) -> None:
    """The same prompt, counted over the steps that run (the default) and as A1111's
    img2img counts (``prompt_editing_steps=a1111``, which the plan puts in the row)."""
    by_letter = {"c": encoded(renderer, "cat"), "d": encoded(renderer, "dog")}
    for counting, expected in ((None, ours), ("a1111", a1111)):
        with watched_unet(renderer) as calls:
            renderer.render(
                plan_row(prompt=prompt, sampler=sampler, prompt_editing_steps=counting), IMAGE
            )
        assert_steps(renderer, calls, [by_letter[letter] for letter in expected])


# A1111's samplers whose steps are two model calls each ("second_order" in its table).
A1111_SECOND_ORDER = {"Heun", "DPM2", "DPM2 Karras", "DPM2 a", "DPM2 a Karras"}
A1111_SECOND_ORDER |= {"DPM++ SDE", "DPM++ SDE Karras"}


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_a1111_counting_builds_its_schedule_over_its_total_steps(
    renderer: Renderer, sampler: str
) -> None:
    """A1111 builds the schedule over ``steps``, twice that for its second-order samplers
    (its ``total_steps``); rotoscope's count is the iterations that run."""
    if sampler.startswith("DPM++ SDE"):
        pytest.importorskip("torchsde")
    scheduler = make_scheduler(sampler, renderer.pipe.scheduler.config)
    twice = 2 if sampler in A1111_SECOND_ORDER else 1
    assert (
        editing_length(scheduler, plan_row(steps=7, prompt_editing_steps="a1111"), 7) == 7 * twice
    )
    assert editing_length(scheduler, plan_row(steps=7), 7) == denoising_steps(scheduler, 7, 0.6)


def test_alternation_with_weights(renderer: Renderer) -> None:
    cat, dog = encoded(renderer, "(cat:1.3)"), encoded(renderer, "dog")
    with watched_unet(renderer) as calls:
        renderer.render(plan_row(prompt="[(cat:1.3)|dog]"), IMAGE)
    assert_steps(renderer, calls, [cat, cat, dog])  # A1111's alternation counts from 1


def test_prompt_editing_inside_a_keyframe_blend(renderer: Renderer) -> None:
    """Each step blends that step's text toward the next keyframe's."""
    bird = encoded(renderer, "bird")

    def toward_bird(prompt: str) -> Conditioning:
        return blend(
            *renderer.prompts.align(encoded(renderer, prompt), bird), 0.25, PromptBlend.linear
        )

    row = plan_row(prompt="[cat:dog:1]", prompt_to="bird", negative_prompt_to="", blend=0.25)
    with watched_unet(renderer) as calls:
        renderer.render(row, IMAGE)
    assert_steps(renderer, calls, [toward_bird("cat"), toward_bird("cat"), toward_bird("dog")])


def test_lora_tags_never_reach_the_text_encoder(renderer: Renderer) -> None:
    torch.testing.assert_close(
        encoded(renderer, "a cat, <lora:ink:0.5> [(red:1.2):blue:2]").prompt_embeds,
        encoded(renderer, "a cat,  (red:1.2)").prompt_embeds,
    )


def test_a_plain_prompt_gets_no_step_callback(renderer: Renderer) -> None:
    assert renderer.conditionings(plan_row(), lambda: 3).switch(pooled=True) is None


def test_the_prompt_switch_reads_only_its_own_tensors(renderer: Renderer) -> None:
    """Composed with coherence's latent fusion, the switch sees the latents too."""
    runs = renderer.conditionings(plan_row(prompt="[cat:dog:1]"), lambda: 3)
    pooled = renderer.model.family is ModelFamily.sdxl
    switch = runs.switch(pooled)
    assert switch is not None
    first = runs.at(0)
    tensors = {"prompt_embeds": torch.cat([first.negative_prompt_embeds, first.prompt_embeds])}
    if pooled:
        tensors["add_text_embeds"] = torch.cat(
            [first.negative_pooled_prompt_embeds, first.pooled_prompt_embeds]
        )
    step = runs.last_steps[0]  # the last step of the first run: the switch comes after it
    changed = switch(SimpleNamespace(do_classifier_free_guidance=True), step, 0,
                     {**tensors, "latents": torch.zeros(1, 4, 8, 8)})  # fmt: skip
    assert set(changed) == set(tensors)
    torch.testing.assert_close(changed["prompt_embeds"][1:], runs.at(step + 1).prompt_embeds)


def test_matches_a_hand_made_two_stage_render(tiny_models: TinyModels) -> None:
    """``[cat:dog:1]`` equals diffusers' img2img written out by hand: the init latents
    noised as the pipeline does, steps 0-1 guided by "cat", step 2 by "dog"."""
    model = load_model(ModelConfig(path=str(tiny_models.sd15)), RuntimeConfig(device="cpu"))
    renderer = Renderer(model)
    ours = renderer.render(plan_row(prompt="[cat:dog:1]"), IMAGE)

    pipe = model.pipe
    scheduler = make_scheduler("Euler", pipe.scheduler.config)  # the renderer's, fresh
    scheduler.set_timesteps(5)
    timesteps = scheduler.timesteps[2:]  # int(5 * 0.6) = 3 steps of 5 run
    scheduler.set_begin_index(2)
    cat, dog, empty = (
        renderer.prompts.encode(text, "", False).prompt_embeds for text in ("cat", "dog", "")
    )
    generator = torch.Generator("cpu").manual_seed(11)
    with torch.inference_mode():
        image = pipe.image_processor.preprocess(Image.fromarray(IMAGE))
        latents = pipe.vae.encode(image).latent_dist.sample(generator)
        latents = latents * pipe.vae.config.scaling_factor
        noise = randn_tensor(latents.shape, generator=generator)
        latents = scheduler.add_noise(latents, noise, timesteps[:1])
        for step, timestep in enumerate(timesteps):
            text = cat if step <= 1 else dog
            batch = scheduler.scale_model_input(torch.cat([latents] * 2), timestep)
            prediction = pipe.unet(batch, timestep, encoder_hidden_states=torch.cat([empty, text]))
            unguided, guided = prediction.sample.chunk(2)
            prediction = unguided + 7.0 * (guided - unguided)
            latents = scheduler.step(prediction, timestep, latents).prev_sample
        decoded = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
        by_hand = pipe.image_processor.postprocess(decoded, output_type="np")[0]
    by_hand = (np.clip(by_hand, 0, 1) * 255).round().astype(np.uint8)
    assert np.abs(ours.astype(int) - by_hand.astype(int)).max() <= 1
    plain = renderer.render(plan_row(prompt="cat"), IMAGE)
    assert (ours != plain).any()  # the switch matters


# --- few steps ---


def test_steps_times_strength_below_one_runs_one_step(renderer: Renderer) -> None:
    for steps, strength in [(1, 0.35), (2, 0.3)]:
        with watched_unet(renderer) as calls:
            frame = renderer.render(
                plan_row(steps=steps, strength=strength, sampler="Euler a"), IMAGE
            )
        assert len(calls) == 1
        assert frame.shape == IMAGE.shape and not np.array_equal(frame, IMAGE)


def test_lcm_runs_few_steps_at_low_guidance(renderer: Renderer) -> None:
    row = plan_row(sampler="LCM", steps=4, strength=0.5, guidance_scale=1.0)
    with watched_unet(renderer) as calls:
        first = renderer.render(row, IMAGE)
    assert len(calls) == 2  # int(4 * 0.5)
    assert np.array_equal(first, renderer.render(row, IMAGE))  # seeded: the same frame


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_the_step_count_prompt_editing_uses_is_the_pipelines(
    renderer: Renderer, sampler: str
) -> None:
    """Second-order samplers (Heun, DPM2) run more iterations than steps; prompt editing
    counts the iterations, as A1111 counts its sampler's model calls."""
    if sampler.startswith("DPM++ SDE"):
        pytest.importorskip("torchsde")
    with watched_unet(renderer) as calls:
        renderer.render(plan_row(sampler=sampler, prompt="[cat:dog:0.5]"), IMAGE)
    counted = denoising_steps(renderer.pipe.scheduler, 5, 0.6)
    assert counted == renderer.pipe.num_timesteps == len(calls)


@pytest.mark.parametrize("mode", [ControlMode.img2img, ControlMode.txt2img])
def test_prompt_editing_with_controlnet(
    renderer: Renderer, tiny_controlnets, mode: ControlMode
) -> None:
    """The ControlNet pipelines take the same step callback."""
    family = renderer.model.family.value
    net = load_controlnet(str(getattr(tiny_controlnets, family)), renderer.model, offline=True)
    unit = LoadedControlNet("edges", "tiny", "none", net, "tiny")
    controlled = Renderer(renderer.model, [unit], mode)
    strength = 0.6 if mode is ControlMode.img2img else 1.0
    row = plan_row(
        prompt="[cat:dog:1]", strength=strength, steps=5 if strength < 1 else 3,
        controls={"edges": ControlValues(weight=1.0, start=0.0, end=1.0)},
    )  # fmt: skip
    cat, dog = encoded(controlled, "cat"), encoded(controlled, "dog")
    with watched_unet(controlled) as calls:
        controlled.render(row, IMAGE, [IMAGE[..., ::-1].copy()])
    assert_steps(controlled, calls, [cat, cat, dog])
