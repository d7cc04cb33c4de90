"""Render one plan row on one input frame with the loaded diffusers pipeline.

The renderer is a thin layer over diffusers' img2img call that adds what a frame
sequence needs: a fresh CPU generator per frame seeded from the row (so a frame's noise
depends on its seed alone, never on device, batch or resume point), A1111-weighted
prompt embeddings encoded once per distinct prompt rather than once per frame, blended
between prompt keyframes and switched between steps by prompt editing, the row's LoRA
weights and CLIP skip, A1111's variation seed, seed resize and initial noise multiplier
per frame (:mod:`pipeline.render.initial_noise`), the sampler and its schedule type
switched only when a row asks for others, and a txt2img call for a frame made from
noise alone (a loopback's first frame without an input image). img2img with steps x
strength below 1 still runs one step, as A1111 does.

Several frames can share one call (:meth:`Renderer.render_batch`, ``render.batch_size``):
each keeps its own generator, embeddings, control maps and prompt-editing switches (see
:mod:`pipeline.render.batch`); one frame is called exactly as it always was.

A frame with a mask is rendered through it inside the call (:mod:`pipeline.render.masking`):
with a regular checkpoint img2img keeps the init latents outside the mask at every step;
an inpainting checkpoint (9-channel UNet) runs diffusers' inpainting pipeline, which reads
the mask itself, for every frame (an unmasked one is masked everywhere). What happens
around the call (empty masks, the crop, the composite) is
:class:`pipeline.render.masking.render.MaskedRender`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from pipeline.config.schema import ControlMode, MaskFill, ModelFamily
from pipeline.control.preprocessors import INPAINT_PREPROCESSOR
from pipeline.errors import RotoscopeError
from pipeline.models.controlnets import control_kwargs, control_pipeline
from pipeline.models.inpainting import inpaint_pipeline, is_inpainting
from pipeline.models.loader import LoadedModel
from pipeline.models.samplers import (
    denoising_steps,
    inference_steps,
    make_scheduler,
    seed_scheduler,
)
from pipeline.plan.prompt_editing import schedule_steps
from pipeline.plan.rows import PlanRow
from pipeline.render.adapters import Adapters
from pipeline.render.batch import FrameInput, batch_embeddings, conditioning_shapes
from pipeline.render.callbacks import StepCallback, StepCallbacks
from pipeline.render.conditioning import PromptEncoder
from pipeline.render.initial_noise import FrameNoise, initial_noise, starting_latents
from pipeline.render.masking.control import inpaint_control_image
from pipeline.render.masking.latent import LatentMask
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

    def finish(self, output: np.ndarray) -> np.ndarray:
        """The decoded frame, finished (before a mask puts the source back around it)."""
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
        self._sampler: tuple[str, str | None] | None = None  # and its schedule type
        self.prompts = PromptEncoder(model.pipe, model.family, model.device)
        self.adapters = adapters or Adapters(model)
        self.adapters.install_embeddings(self.prompts)
        self.savers = MemorySavers(model)
        self.controlnets = controlnets or []
        # an inpainting checkpoint runs the inpainting pipelines, which start from the frame
        self.inpainting = is_inpainting(model)
        self.control_img2img = control_mode is ControlMode.img2img or self.inpainting
        nets = [c.net for c in self.controlnets]
        self.call_pipe = model.pipe
        if self.inpainting:
            self.call_pipe = inpaint_pipeline(model, nets)
        elif self.controlnets:
            self.call_pipe = control_pipeline(model, nets, self.control_img2img)
        self._txt2img_pipe: Any = None  # made when a row first asks for txt2img

    def pipe_for(self, row: PlanRow) -> Any:
        """The pipeline a row renders with: the run's (img2img, inpainting or ControlNet),
        or for a frame made from noise alone the txt2img one (an inpainting checkpoint
        makes it with its own pipeline, masked everywhere at strength 1, as A1111 does)."""
        if not row.txt2img or self.inpainting or self.generates:
            return self.call_pipe
        if self._txt2img_pipe is None:
            from pipeline.models.txt2img import txt2img_pipeline

            self._txt2img_pipe = txt2img_pipeline(self.model, [c.net for c in self.controlnets])
        return self._txt2img_pipe

    def from_noise(self, row: PlanRow) -> bool:
        """Whether a row's call starts from noise alone (no img2img ``add_noise``)."""
        return bool(row.txt2img) or self.generates or (self.inpainting and row.strength >= 1)

    @property
    def generates(self) -> bool:
        """Every frame is generated from noise, guided by ControlNet maps alone."""
        return bool(self.controlnets) and not self.control_img2img

    @property
    def native_size(self) -> int:
        """The side, in pixels, of the square the model was trained at (512 for SD 1.5)."""
        return int(self.pipe.unet.config.sample_size) * int(self.pipe.vae_scale_factor)

    def control_details(self) -> list[dict[str, str]]:
        return [
            {"unit": c.unit, "model": c.path, "preprocessor": c.preprocessor}
            for c in self.controlnets
        ]

    def render(
        self,
        row: PlanRow,
        image: np.ndarray,
        maps: list[np.ndarray] | None = None,
        hooks: FrameHooks | None = None,
    ) -> np.ndarray:
        """The output frame (RGB uint8, same size as ``image``) for ``row``.

        ``hooks`` (temporal coherence) act inside the pipeline call.
        """
        return self.render_batch([FrameInput(row, image, maps)], hooks)[0]

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
        row = frames[0].row
        if row.strength == 0:  # diffusers' strength 0 keeps the input: no step runs
            return self._finished([frame.image.copy() for frame in frames], hooks)
        while True:
            try:
                return self._finished(self._render(frames, hooks), hooks)
            except torch.cuda.OutOfMemoryError as exc:
                saver = self.savers.next_saver()
                if saver is None:
                    raise RotoscopeError(
                        f"out of GPU memory on frame {row.index} even with "
                        f"{', '.join(self.savers.enabled) or 'every memory saver'}",
                        "lower render.batch_size, input.width/input.height or runtime.dtype, "
                        "or use a bigger GPU; finished frames are kept",
                    ) from exc
                log.warning("out of GPU memory on frame %d: retrying with %s", row.index, saver)

    @staticmethod
    def _finished(outputs: list[np.ndarray], hooks: FrameHooks | None) -> list[np.ndarray]:
        return [hooks.finish(output) for output in outputs] if hooks is not None else outputs

    def _render(self, frames: Sequence[FrameInput], hooks: FrameHooks | None) -> list[np.ndarray]:
        row = frames[0].row
        self._use_sampler(row.sampler, row.scheduler)
        pipe = self.pipe_for(row)
        if pipe is not self.pipe:
            pipe.scheduler = self.pipe.scheduler  # the sampler may have changed
        steps = inference_steps(row.steps, row.strength)
        conditionings = [
            self.conditionings(frame.row, partial(editing_length, pipe.scheduler, frame.row, steps))
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
        row = frames[0].row
        arguments = self._call_arguments(frames)
        if len(frames) == 1:
            seed_scheduler(pipe.scheduler, row.seed)
        generators = [torch.Generator(device="cpu").manual_seed(f.row.seed) for f in frames]
        pooled = self.model.family is ModelFamily.sdxl
        embeddings, switch = batch_embeddings(conditionings, pooled)
        arguments.update(embeddings)
        callbacks = StepCallbacks()
        callbacks.add(switch)
        with torch.inference_mode(), ExitStack() as stack:
            noises = [FrameNoise.of(frame.row) for frame in frames]
            factor = int(self.pipe.vae_scale_factor)
            if self.from_noise(row):
                shape = (int(self.pipe.vae.config.latent_channels), row.height // factor,
                         row.width // factor)  # fmt: skip
                latents = starting_latents(
                    noises, generators, shape, self.model.dtype, self.model.device, factor
                )
                if latents is not None:
                    arguments["latents"] = latents
            else:
                stack.enter_context(initial_noise(pipe.scheduler, noises, factor))
            if hooks is not None:
                for callback in hooks.enter(stack, pipe):
                    callbacks.add(callback)
            masked = LatentMask.needed(
                [frame.mask for frame in frames],
                [frame.row.mask_fill or MaskFill.original for frame in frames],
                keep_init=not self.inpainting,
            )
            if masked is not None:  # last: the latents outside the mask are the init's
                for callback in masked.enter(stack, pipe):
                    callbacks.add(callback)
            arguments.update(callbacks.call_arguments())
            result = pipe(
                guidance_scale=row.guidance_scale,
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
        """The image arguments of a call (plain, inpainting or ControlNet): single values
        for one frame, lists in frame order for several."""
        row = frames[0].row

        def one_or_list(images: list[Any]) -> Any:
            return images[0] if len(frames) == 1 else images

        init = one_or_list([Image.fromarray(frame.image) for frame in frames])
        masks: dict[str, Any] = {}
        # a frame from noise alone (not on an inpainting checkpoint, which paints it
        # masked everywhere): no init picture
        txt2img = bool(row.txt2img) and not self.inpainting
        if txt2img and not self.controlnets:
            return {"width": row.width, "height": row.height}
        if self.inpainting:  # an unmasked frame is rendered everywhere
            everywhere = np.full(frames[0].image.shape[:2], 255, np.uint8)
            masks["mask_image"] = one_or_list(
                [Image.fromarray(everywhere if f.mask is None else f.mask) for f in frames]
            )
            # the inpainting pipelines default to the model's size, not the picture's
            masks.update(width=row.width, height=row.height)
        if not self.controlnets:
            return {"image": init, "strength": row.strength, **masks}
        if any(frame.maps is None or len(frame.maps) != len(self.controlnets) for frame in frames):
            raise ValueError("a control map is needed for every ControlNet unit")
        values = [(row.controls or {})[c.unit] for c in self.controlnets]
        per_unit = [
            one_or_list([self._control_image(unit, frame) for frame in frames])
            for unit in range(len(self.controlnets))
        ]
        img2img = self.control_img2img and not txt2img
        arguments = control_kwargs(
            img2img,
            init if img2img else None,
            per_unit,
            [v.weight for v in values],
            [v.start for v in values],
            [v.end for v in values],
            row.width,
            row.height,
        )
        if img2img:
            arguments["strength"] = row.strength
        return {**arguments, **masks}

    def _control_image(self, unit: int, frame: FrameInput) -> Any:
        """A unit's control image for ``frame``: its map, or for an inpaint unit the map
        with the frame's masked pixels marked (the tensor those ControlNets read)."""
        assert frame.maps is not None
        if self.controlnets[unit].preprocessor == INPAINT_PREPROCESSOR and frame.mask is not None:
            return inpaint_control_image(frame.maps[unit], frame.mask)
        return Image.fromarray(frame.maps[unit])

    def conditionings(self, row: PlanRow, schedule_length: Callable[[], int]) -> StepConditionings:
        """The row's prompt embeddings for each denoising step (its keyframe's, or a blend
        toward the next one, switched by prompt editing), with its LoRA weights set.

        ``schedule_length`` gives the number of steps prompt editing's schedule is built
        over (:func:`editing_length`); it is called only for prompts that use prompt
        editing.
        """
        settings = self.adapters.settings(row)
        do_cfg = row.guidance_scale > 1.0
        return step_conditionings(self.prompts, row, settings, do_cfg, schedule_length)

    def _use_sampler(self, name: str, schedule: str | None) -> None:
        if (name, schedule) != self._sampler:
            self.pipe.scheduler = make_scheduler(
                name, self._base_scheduler_config, schedule, self.model.family
            )
            self._sampler = (name, schedule)


def editing_length(scheduler: Any, row: PlanRow, num_inference_steps: int) -> int:
    """The number of steps the row's prompt-editing schedule is built over, as its
    ``prompt_editing_steps`` counts: the iterations diffusers' img2img loop runs for
    ``num_inference_steps`` at the row's strength, or A1111's count."""
    steps_run = denoising_steps(scheduler, num_inference_steps, row.strength)
    return schedule_steps(row.prompt_editing_steps, row.steps, steps_run, scheduler.order)


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
