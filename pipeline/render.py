"""Render one plan row on one input frame with the loaded diffusers pipeline.

The renderer is a thin layer over diffusers' img2img call that adds what a frame
sequence needs: a fresh CPU generator per frame seeded from the row (so a frame's noise
depends on its seed alone, never on device, batch or resume point), prompt embeddings
encoded once per distinct prompt rather than once per frame, and the sampler switched
only when a row asks for a different one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

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
        self._embeddings: dict[tuple[str, str, bool], dict[str, Any]] = {}

    def render(self, job: FrameJob, image: np.ndarray) -> np.ndarray:
        """The output frame (RGB uint8, same size as ``image``) for ``job``."""
        if job.strength == 0:
            return image.copy()  # diffusers' strength 0 keeps the input: no step runs
        self._use_sampler(job.sampler)
        seed_scheduler(self.pipe.scheduler, job.seed)
        do_cfg = job.guidance_scale > 1.0
        generator = torch.Generator(device="cpu").manual_seed(job.seed)
        with torch.inference_mode():
            result = self.pipe(
                image=Image.fromarray(image),
                strength=job.strength,
                guidance_scale=job.guidance_scale,
                num_inference_steps=job.steps,
                generator=generator,
                output_type="np",
                **self._prompt_embeddings(job.prompt, job.negative_prompt, do_cfg),
            )
        frame = np.asarray(result.images[0])
        return (np.clip(frame, 0.0, 1.0) * 255.0).round().astype(np.uint8)

    def _use_sampler(self, name: str) -> None:
        if name != self._sampler:
            self.pipe.scheduler = make_scheduler(name, self._base_scheduler_config)
            self._sampler = name

    def _prompt_embeddings(self, prompt: str, negative: str, do_cfg: bool) -> dict[str, Any]:
        """Embeddings for a prompt pair, encoded on first use and then reused."""
        key = (prompt, negative, do_cfg)
        if key not in self._embeddings:
            with torch.inference_mode():
                self._embeddings[key] = self._encode(prompt, negative, do_cfg)
        return self._embeddings[key]

    def _encode(self, prompt: str, negative: str, do_cfg: bool) -> dict[str, Any]:
        encoded = self.pipe.encode_prompt(
            prompt=prompt,
            device=self.model.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=do_cfg,
            negative_prompt=negative or None,
        )
        if self.model.family == "sdxl":
            embeds, negative_embeds, pooled, negative_pooled = encoded
            return {
                "prompt_embeds": embeds,
                "negative_prompt_embeds": negative_embeds,
                "pooled_prompt_embeds": pooled,
                "negative_pooled_prompt_embeds": negative_pooled,
            }
        embeds, negative_embeds = encoded
        return {"prompt_embeds": embeds, "negative_prompt_embeds": negative_embeds}
