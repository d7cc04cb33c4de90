"""Render one plan row on one input frame with the loaded diffusers pipeline.

The renderer is a thin layer over diffusers' img2img call that adds what a frame
sequence needs: a fresh CPU generator per frame seeded from the row (so a frame's noise
depends on its seed alone, never on device, batch or resume point), A1111-weighted
prompt embeddings encoded once per distinct prompt rather than once per frame, blended
between prompt keyframes and switched between steps by prompt editing, the row's LoRA
weights and CLIP skip, and the sampler switched only when a row asks for a different
one. img2img with steps x strength below 1 still runs one step, as A1111 does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from pipeline.config.schema import ControlMode
from pipeline.errors import RotoscopeError
from pipeline.models.controlnets import control_kwargs, control_pipeline
from pipeline.models.loader import LoadedModel
from pipeline.models.samplers import (
    denoising_steps,
    inference_steps,
    make_scheduler,
    seed_scheduler,
)
from pipeline.plan.rows import FrameJob
from pipeline.render.adapters import Adapters
from pipeline.render.conditioning import PromptEncoder
from pipeline.render.prompt_schedule import StepConditionings, step_conditionings

log = logging.getLogger("rotoscope")


@dataclass(frozen=True)
class LoadedControlNet:
    """A ControlNet unit's loaded weights, with what the frame metadata reports."""

    unit: str
    path: str
    preprocessor: str
    net: Any
    identity: str


STEP_CALLBACK = "callback_on_step_end"
STEP_CALLBACK_INPUTS = "callback_on_step_end_tensor_inputs"


def add_step_callbacks(arguments: dict[str, Any], extra: dict[str, Any]) -> None:
    """Merge ``extra`` pipeline-call arguments into ``arguments``.

    diffusers takes one step callback; when both have one (prompt editing switches the
    embeddings, temporal coherence blends the latents) they run one after the other, the
    second seeing the first's updates, and their tensor inputs are joined.
    """
    extra = dict(extra)
    callback = extra.pop(STEP_CALLBACK, None)
    inputs = extra.pop(STEP_CALLBACK_INPUTS, [])
    arguments.update(extra)
    if callback is None:
        return
    first = arguments.get(STEP_CALLBACK)
    if first is None:
        arguments[STEP_CALLBACK], arguments[STEP_CALLBACK_INPUTS] = callback, list(inputs)
        return

    def both(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        updates = dict(first(pipe, step, timestep, tensors) or {})
        return {**updates, **(callback(pipe, step, timestep, {**tensors, **updates}) or {})}

    arguments[STEP_CALLBACK] = both
    arguments[STEP_CALLBACK_INPUTS] = list(
        dict.fromkeys([*arguments[STEP_CALLBACK_INPUTS], *inputs])
    )


class FrameHooks(Protocol):
    """Something that acts inside one frame's pipeline call (temporal coherence)."""

    def enter(self, stack: ExitStack, pipe: Any) -> dict[str, Any]:
        """Enter its contexts on ``stack`` for this call; return extra call arguments."""
        ...


class Renderer:
    """Turns (row, input frame[, control maps]) into an output frame; holds the caches."""

    def __init__(
        self,
        model: LoadedModel,
        controlnets: list[LoadedControlNet] | None = None,
        control_mode: ControlMode = ControlMode.img2img,
        adapters: Adapters | None = None,
    ) -> None:
        """``adapters`` are the plan's LoRAs and embeddings, loaded into ``model``."""
        self.model = model
        self.pipe = model.pipe
        self._base_scheduler_config = dict(self.pipe.scheduler.config)
        self._sampler: str | None = None
        self.prompts = PromptEncoder(model.pipe, model.family, model.device)
        self.adapters = adapters or Adapters(model)
        self.adapters.install_embeddings(self.prompts)
        self.savers = MemorySavers(model)
        self.controlnets = controlnets or []
        self.control_img2img = control_mode is ControlMode.img2img
        self.control_pipe = (
            control_pipeline(model, [c.net for c in self.controlnets], self.control_img2img)
            if self.controlnets
            else None
        )

    def control_details(self) -> list[dict[str, str]]:
        return [
            {"unit": c.unit, "model": c.path, "preprocessor": c.preprocessor}
            for c in self.controlnets
        ]

    def render(
        self,
        job: FrameJob,
        image: np.ndarray,
        maps: list[np.ndarray] | None = None,
        hooks: FrameHooks | None = None,
    ) -> np.ndarray:
        """The output frame (RGB uint8, same size as ``image``) for ``job``.

        ``hooks`` (temporal coherence) act inside the pipeline call. Out of GPU memory,
        the frame is retried with the next memory saver switched on (they stay on for
        the rest of the run); when none is left the error says so, and every frame
        rendered before stays on disk.
        """
        if job.strength == 0:
            return image.copy()  # diffusers' strength 0 keeps the input: no step runs
        while True:
            try:
                return self._render(job, image, maps, hooks)
            except torch.cuda.OutOfMemoryError as exc:
                saver = self.savers.next_saver()
                if saver is None:
                    raise RotoscopeError(
                        f"out of GPU memory on frame {job.index} even with "
                        f"{', '.join(self.savers.enabled) or 'every memory saver'}",
                        "lower input.width/input.height or runtime.dtype, or use a bigger GPU; "
                        "finished frames are kept",
                    ) from exc
                log.warning("out of GPU memory on frame %d: retrying with %s", job.index, saver)

    def _render(
        self,
        job: FrameJob,
        image: np.ndarray,
        maps: list[np.ndarray] | None,
        hooks: FrameHooks | None,
    ) -> np.ndarray:
        self._use_sampler(job.sampler)
        pipe, arguments = self._call_arguments(job, image, maps)
        seed_scheduler(pipe.scheduler, job.seed)
        generator = torch.Generator(device="cpu").manual_seed(job.seed)
        steps = inference_steps(job.steps, job.strength)
        conditionings = self.conditionings(
            job, lambda: denoising_steps(pipe.scheduler, steps, job.strength)
        )
        arguments.update(conditionings.call_arguments(pooled=self.model.family == "sdxl"))
        with torch.inference_mode(), ExitStack() as stack:
            if hooks is not None:
                add_step_callbacks(arguments, hooks.enter(stack, pipe))
            result = pipe(
                guidance_scale=job.guidance_scale,
                num_inference_steps=steps,
                generator=generator,
                output_type="np",
                **arguments,
            )
        frame = np.asarray(result.images[0])
        return (np.clip(frame, 0.0, 1.0) * 255.0).round().astype(np.uint8)

    def _call_arguments(
        self, job: FrameJob, image: np.ndarray, maps: list[np.ndarray] | None
    ) -> tuple[Any, dict[str, Any]]:
        """The pipeline for this frame and its image arguments (plain or ControlNet)."""
        init = Image.fromarray(image)
        if self.control_pipe is None:
            return self.pipe, {"image": init, "strength": job.strength}
        if maps is None or len(maps) != len(self.controlnets):
            raise ValueError("a control map is needed for every ControlNet unit")
        self.control_pipe.scheduler = self.pipe.scheduler  # the sampler may have changed
        values = [(job.controls or {})[c.unit] for c in self.controlnets]
        arguments = control_kwargs(
            self.control_img2img,
            init if self.control_img2img else None,
            [Image.fromarray(m) for m in maps],
            [v["weight"] for v in values],
            [v["start"] for v in values],
            [v["end"] for v in values],
            job.width,
            job.height,
        )
        if self.control_img2img:
            arguments["strength"] = job.strength
        return self.control_pipe, arguments

    def conditionings(self, job: FrameJob, count_steps: Callable[[], int]) -> StepConditionings:
        """The row's prompt embeddings for each denoising step (its keyframe's, or a blend
        toward the next one, switched by prompt editing), with its LoRA weights set.

        ``count_steps`` gives the number of denoising steps that will run (prompt editing
        counts in them); it is called only for prompts that use prompt editing.
        """
        settings = self.adapters.settings(job)
        do_cfg = job.guidance_scale > 1.0
        return step_conditionings(self.prompts, job, settings, do_cfg, count_steps)

    def _use_sampler(self, name: str) -> None:
        if name != self._sampler:
            self.pipe.scheduler = make_scheduler(name, self._base_scheduler_config)
            self._sampler = name


class MemorySavers:
    """diffusers' memory savers, switched on one at a time, cheapest first."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.enabled: list[str] = []
        pipe = model.pipe
        steps: list[tuple[str, Callable[[], object]]] = [
            ("VAE slicing", pipe.vae.enable_slicing),
            ("VAE tiling", pipe.vae.enable_tiling),
            ("attention slicing", pipe.enable_attention_slicing),
        ]
        if model.device.type == "cuda":  # offload moves weights to the CPU between uses
            steps.append(("model CPU offload", pipe.enable_model_cpu_offload))
        self._pending = steps

    def next_saver(self) -> str | None:
        """Switch on the next saver and free cached memory; None when all are on."""
        if not self._pending:
            return None
        name, enable = self._pending.pop(0)
        enable()
        self.enabled.append(name)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return name
