"""A frame's conditioning at every denoising step: prompt editing over keyframe blends.

A row's four texts (prompt and negative, and the next keyframe's pair it blends toward)
may each use prompt editing or alternation (:mod:`pipeline.plan.prompt_editing`), so
the conditioning can change between steps. :func:`step_conditionings` cuts the steps
into runs over which no text changes, encodes each run's texts once (the encoder caches
them) and blends them by the row's weight, so editing, keyframe blending and attention
weights combine. Before encoding, ``<lora:...>`` tags are removed from the texts (the
LoRA weights are in the row) and ``embedding:name`` becomes ``name``.

diffusers' pipelines take the first run's embeddings as arguments; at the end of each
step a :class:`PromptSwitch` (a step callback, :mod:`pipeline.render.callbacks`) hands the
next step's embeddings in (``prompt_embeds``, and SDXL's pooled ``add_text_embeds``,
concatenated negative-first as the pipelines do). A row whose texts never change gets no
callback: its frame is rendered exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from pipeline.plan.networks import strip_network_tags
from pipeline.plan.prompt_editing import has_prompt_editing, prompt_schedule, text_at_step
from pipeline.plan.rows import PlanRow
from pipeline.render.conditioning import Conditioning, PromptEncoder, TextSettings, blend


@dataclass(frozen=True)
class StepConditionings:
    """Runs of steps with their conditioning: run ``k`` covers the steps up to and
    including ``last_steps[k]`` (counted from 0) not covered by an earlier run."""

    last_steps: tuple[int, ...]
    conditionings: tuple[Conditioning, ...]

    def at(self, step: int) -> Conditioning:
        for last, conditioning in zip(self.last_steps, self.conditionings, strict=True):
            if step <= last:
                return conditioning
        return self.conditionings[-1]

    def switch(self, pooled: bool) -> PromptSwitch | None:
        """The step callback that switches the embeddings between runs (None: one run).

        ``pooled``: the pipeline takes SDXL's pooled embeddings (``add_text_embeds``).
        """
        return PromptSwitch([self], pooled) if len(self.conditionings) > 1 else None


class PromptSwitch:
    """A step callback: at the end of each step, the next step's embeddings of every frame
    of the call, when any of them changes (frames stacked along the batch, in order)."""

    def __init__(self, frames: Sequence[StepConditionings], pooled: bool) -> None:
        self.frames = list(frames)
        self.tensor_inputs = ["prompt_embeds", *(["add_text_embeds"] if pooled else [])]

    def __call__(
        self, pipe: Any, step: int, timestep: Any, tensors: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        following = [frame.at(step + 1) for frame in self.frames]
        if all(f is frame.at(step) for f, frame in zip(following, self.frames, strict=True)):
            return {}
        guided = pipe.do_classifier_free_guidance
        current = {name: tensors[name] for name in self.tensor_inputs}
        return as_pipeline_tensors(stacked(following), guided, current)


def stacked(conditionings: Sequence[Conditioning]) -> Conditioning:
    """Several frames' conditionings as one, stacked along the batch in order."""
    if len(conditionings) == 1:
        return conditionings[0]
    parts: dict[str, Any] = {}
    for part in fields(Conditioning):
        tensors = [getattr(c, part.name) for c in conditionings]
        parts[part.name] = None if tensors[0] is None else torch.cat(tensors)
    return Conditioning(**parts)


def as_pipeline_tensors(
    conditioning: Conditioning, guided: bool, current: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``conditioning`` as the denoising loop holds it: negative and positive concatenated
    along the batch when guided, on the device and in the dtype of what it replaces."""
    pairs = {
        "prompt_embeds": (conditioning.negative_prompt_embeds, conditioning.prompt_embeds),
        "add_text_embeds": (
            conditioning.negative_pooled_prompt_embeds,
            conditioning.pooled_prompt_embeds,
        ),
    }
    replaced = {}
    for name, old in current.items():
        negative, positive = pairs[name]
        assert positive is not None, f"no {name} to switch to"
        tensor = torch.cat([negative, positive]) if guided and negative is not None else positive
        replaced[name] = tensor.to(device=old.device, dtype=old.dtype)
    return replaced


def step_conditionings(
    encoder: PromptEncoder,
    row: PlanRow,
    settings: TextSettings,
    do_cfg: bool,
    schedule_length: Callable[[], int],
) -> StepConditionings:
    """The row's conditioning for each denoising step (counted from 0, the first that runs).

    ``schedule_length`` gives the number of steps the texts' schedules are built over
    (:func:`pipeline.plan.prompt_editing.schedule_steps`); it is asked only when a text
    uses prompt editing.
    """
    texts = [row.prompt, row.negative_prompt]
    if row.prompt_to is not None and row.blend > 0.0:
        texts += [row.prompt_to, row.negative_prompt_to or ""]
    texts = [strip_network_tags(text) for text in texts]
    if any(has_prompt_editing(text) for text in texts):
        steps = schedule_length()
        schedules = [prompt_schedule(text, steps) for text in texts]
        last_steps = sorted({end for schedule in schedules for end, _ in schedule})
        runs = [[text_at_step(schedule, end) for schedule in schedules] for end in last_steps]
    else:
        last_steps, runs = [0], [texts]
    conditionings: list[Conditioning] = []
    ends: list[int] = []
    for index, (end, run) in enumerate(zip(last_steps, runs, strict=True)):
        if index and run == runs[index - 1]:  # e.g. [a|a]: the same texts go on
            ends[-1] = end
        else:
            conditionings.append(_blended(encoder, run, row, settings, do_cfg))
            ends.append(end)
    return StepConditionings(tuple(ends), tuple(conditionings))


def _blended(
    encoder: PromptEncoder,
    texts: list[str],
    row: PlanRow,
    settings: TextSettings,
    do_cfg: bool,
) -> Conditioning:
    current = encoder.encode(texts[0], texts[1], do_cfg, settings)
    if len(texts) == 2:
        return current
    following = encoder.encode(texts[2], texts[3], do_cfg, settings)
    return blend(*encoder.align(current, following, settings), row.blend, row.blend_mode)
