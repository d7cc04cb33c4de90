"""Render one plan row on one input frame with the loaded diffusers pipeline.

The renderer is a thin layer over diffusers' img2img call that adds what a frame
sequence needs: a fresh CPU generator per frame seeded from the row (so a frame's noise
depends on its seed alone, never on device, batch or resume point), A1111-weighted
prompt embeddings encoded once per distinct prompt rather than once per frame, blended
between prompt keyframes and switched between steps by prompt editing, the row's LoRA
weights and CLIP skip, A1111's initial noise multiplier per frame
(:mod:`pipeline.render.initial_noise`), and the sampler switched only when a row asks
for a different one. img2img with steps x strength below 1 still runs one step, as
A1111 does.

Several frames can share one call (:meth:`Renderer.render_batch`, ``render.batch_size``):
each keeps its own generator, embeddings, control maps and prompt-editing switches (see
:mod:`pipeline.render.batch`); one frame is called exactly as it always was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from pipeline.config.schema import ControlMode, ModelFamily
from pipeline.errors import RotoscopeError
from pipeline.models.controlnets import control_kwargs, control_pipeline
from pipeline.models.loader import LoadedModel
from pipeline.models.samplers import (
    denoising_steps,
    inference_steps,
    make_scheduler,
    seed_scheduler,
)
from pipeline.plan.rows import PlanRow
from pipeline.render.adapters import Adapters
from pipeline.render.batch import FrameInput, batch_embeddings, conditioning_shapes
from pipeline.render.callbacks import StepCallback, StepCallbacks
from pipeline.render.conditioning import PromptEncoder
from pipeline.render.initial_noise import scaled_initial_noise
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


class FrameHooks(Protocol):
    """Something that acts inside one frame's pipeline call (temporal coherence)."""

    def enter(self, stack: ExitStack, pipe: Any) -> list[StepCallback]:
        """Enter its contexts on ``stack`` for this call; return its step callbacks."""
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
        job: PlanRow,
        image: np.ndarray,
        maps: list[np.ndarray] | None = None,
        hooks: FrameHooks | None = None,
    ) -> np.ndarray:
        """The output frame (RGB uint8, same size as ``image``) for ``job``.

        ``hooks`` (temporal coherence) act inside the pipeline call.
        """
        return self.render_batch([FrameInput(job, image, maps)], hooks)[0]

    def render_batch(
        self, frames: Sequence[FrameInput], hooks: FrameHooks | None = None
    ) -> list[np.ndarray]:
        """The output frames of ``frames``, which share one :func:`call_signature`
        (:class:`pipeline.render.batch.Batcher` makes such batches), in order.

        They go through one pipeline call, or a few when their prompts' chunk counts
        differ or the sampler seeds its own noise (DPM++ SDE: one frame per call). Out
        of GPU memory, the batch is retried with the next memory saver switched on (they
        stay on for the rest of the run); when none is left the error says so, and every
        frame rendered before stays on disk.
        """
        job = frames[0].job
        if job.strength == 0:  # diffusers' strength 0 keeps the input: no step runs
            return [frame.image.copy() for frame in frames]
        while True:
            try:
                return self._render(frames, hooks)
            except torch.cuda.OutOfMemoryError as exc:
                saver = self.savers.next_saver()
                if saver is None:
                    raise RotoscopeError(
                        f"out of GPU memory on frame {job.index} even with "
                        f"{', '.join(self.savers.enabled) or 'every memory saver'}",
                        "lower render.batch_size, input.width/input.height or runtime.dtype, "
                        "or use a bigger GPU; finished frames are kept",
                    ) from exc
                log.warning("out of GPU memory on frame %d: retrying with %s", job.index, saver)

    def _render(self, frames: Sequence[FrameInput], hooks: FrameHooks | None) -> list[np.ndarray]:
        job = frames[0].job
        self._use_sampler(job.sampler)
        pipe = self.control_pipe or self.pipe
        if self.control_pipe is not None:
            self.control_pipe.scheduler = self.pipe.scheduler  # the sampler may have changed
        steps = inference_steps(job.steps, job.strength)
        conditionings = [
            self.conditionings(
                frame.job, lambda: denoising_steps(pipe.scheduler, steps, job.strength)
            )
            for frame in frames
        ]
        # a sampler that seeds its own noise (DPM++ SDE) has one seed per call
        alone = hasattr(pipe.scheduler, "noise_sampler_seed")
        groups: dict[Any, list[int]] = {}
        for number, conditioning in enumerate(conditionings):
            shapes = ("alone", number) if alone else conditioning_shapes(conditioning)
            groups.setdefault(shapes, []).append(number)
        outputs: dict[int, np.ndarray] = {}
        for members in groups.values():
            group = [frames[number] for number in members]
            images = self._call(
                pipe, group, [conditionings[number] for number in members], steps, hooks
            )
            outputs.update(zip(members, images, strict=True))
        return [outputs[number] for number in range(len(frames))]

    def _call(
        self,
        pipe: Any,
        frames: list[FrameInput],
        conditionings: list[StepConditionings],
        steps: int,
        hooks: FrameHooks | None,
    ) -> list[np.ndarray]:
        """One pipeline call; one frame is called exactly as it always was."""
        job = frames[0].job
        arguments = self._call_arguments(frames)
        if len(frames) == 1:
            seed_scheduler(pipe.scheduler, job.seed)
        generators = [torch.Generator(device="cpu").manual_seed(f.job.seed) for f in frames]
        pooled = self.model.family is ModelFamily.sdxl
        embeddings, switch = batch_embeddings(conditionings, pooled)
        arguments.update(embeddings)
        callbacks = StepCallbacks()
        callbacks.add(switch)
        with torch.inference_mode(), ExitStack() as stack:
            multipliers = [frame.job.noise_multiplier for frame in frames]
            if any(multiplier is not None for multiplier in multipliers):
                scales = [1.0 if multiplier is None else multiplier for multiplier in multipliers]
                stack.enter_context(scaled_initial_noise(pipe.scheduler, scales))
            if hooks is not None:
                for callback in hooks.enter(stack, pipe):
                    callbacks.add(callback)
            arguments.update(callbacks.call_arguments())
            result = pipe(
                guidance_scale=job.guidance_scale,
                num_inference_steps=steps,
                generator=generators[0] if len(frames) == 1 else generators,
                output_type="np",
                **arguments,
            )
        return [
            (np.clip(np.asarray(image), 0.0, 1.0) * 255.0).round().astype(np.uint8)
            for image in result.images[: len(frames)]
        ]

    def _call_arguments(self, frames: list[FrameInput]) -> dict[str, Any]:
        """The image arguments of a call (plain or ControlNet): single values for one
        frame, lists in frame order for several."""
        job = frames[0].job

        def one_or_list(images: list[Image.Image]) -> Any:
            return images[0] if len(frames) == 1 else images

        init = one_or_list([Image.fromarray(frame.image) for frame in frames])
        if self.control_pipe is None:
            return {"image": init, "strength": job.strength}
        if any(frame.maps is None or len(frame.maps) != len(self.controlnets) for frame in frames):
            raise ValueError("a control map is needed for every ControlNet unit")
        values = [(job.controls or {})[c.unit] for c in self.controlnets]
        per_unit = [
            one_or_list([Image.fromarray(frame.maps[unit]) for frame in frames])  # type: ignore[index]
            for unit in range(len(self.controlnets))
        ]
        arguments = control_kwargs(
            self.control_img2img,
            init if self.control_img2img else None,
            per_unit,
            [v.weight for v in values],
            [v.start for v in values],
            [v.end for v in values],
            job.width,
            job.height,
        )
        if self.control_img2img:
            arguments["strength"] = job.strength
        return arguments

    def conditionings(self, job: PlanRow, count_steps: Callable[[], int]) -> StepConditionings:
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
