"""Render one plan row on one input frame with the loaded diffusers pipeline.

The renderer is a thin layer over diffusers' img2img call that adds what a frame
sequence needs: a fresh CPU generator per frame seeded from the row (so a frame's noise
depends on its seed alone, never on device, batch or resume point), A1111-weighted
prompt embeddings encoded once per distinct prompt rather than once per frame and
blended between prompt keyframes, and the sampler switched only when a row asks for a
different one.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from pipeline.conditioning import Conditioning, PromptEncoder, blend
from pipeline.model_loader import LoadedModel
from pipeline.plan import FrameJob
from pipeline.samplers import make_scheduler, seed_scheduler


class Renderer:
    """Turns (row, input frame) into an output frame; holds the per-run caches."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.pipe = model.pipe
        self._base_scheduler_config = dict(self.pipe.scheduler.config)
        self._sampler: str | None = None
        self.prompts = PromptEncoder(model.pipe, model.family, model.device)

    def render(self, job: FrameJob, image: np.ndarray) -> np.ndarray:
        """The output frame (RGB uint8, same size as ``image``) for ``job``."""
        if job.strength == 0:
            return image.copy()  # diffusers' strength 0 keeps the input: no step runs
        self._use_sampler(job.sampler)
        seed_scheduler(self.pipe.scheduler, job.seed)
        generator = torch.Generator(device="cpu").manual_seed(job.seed)
        with torch.inference_mode():
            result = self.pipe(
                image=Image.fromarray(image),
                strength=job.strength,
                guidance_scale=job.guidance_scale,
                num_inference_steps=job.steps,
                generator=generator,
                output_type="np",
                **self.conditioning(job).pipeline_kwargs(),
            )
        frame = np.asarray(result.images[0])
        return (np.clip(frame, 0.0, 1.0) * 255.0).round().astype(np.uint8)

    def conditioning(self, job: FrameJob) -> Conditioning:
        """The row's prompt embeddings: its keyframe's, or a blend toward the next one."""
        do_cfg = job.guidance_scale > 1.0
        current = self.prompts.encode(job.prompt, job.negative_prompt, do_cfg)
        if job.prompt_to is None or job.blend <= 0.0:
            return current
        following = self.prompts.encode(job.prompt_to, job.negative_prompt_to or "", do_cfg)
        return blend(*self.prompts.align(current, following), job.blend, job.blend_mode)

    def _use_sampler(self, name: str) -> None:
        if name != self._sampler:
            self.pipe.scheduler = make_scheduler(name, self._base_scheduler_config)
            self._sampler = name
