"""Inside a masked frame's diffusion call: the latents outside the mask kept from the init
(a regular checkpoint), and A1111's latent fills.

With a regular (4-channel) checkpoint img2img runs as always, and after every step a
step callback puts the init latents back outside the mask, noised to the level of the
next step (the clean init after the last one), as A1111 does with a regular model and
diffusers' inpainting pipeline with a 4-channel UNet: the masked area is denoised in the
context of the untouched rest of the frame. With an all-white mask nothing is changed,
so the frame is its plain img2img render to the bit. An inpainting checkpoint (9-channel
UNet) sees the mask itself; only the fills below apply there.

The mask reaches the latents at their resolution (one cell per 8x8 pixels): a cell is
rendered when at least half of its pixels are, the rounding A1111 uses.

A1111's "latent noise" and "latent nothing" replace the init latents inside the mask by
the frame's own noise or by zeros before img2img noises them, so nothing of the masked
subject's picture is left to start from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

import cv2
import numpy as np
import torch

from pipeline.config.schema import MaskFill
from pipeline.render.callbacks import StepCallback
from pipeline.render.coherence.fusion import replaced

# How this version renders masks, with every choice that shapes the result: it joins the
# keys of masked frames, so a change here re-renders them.
MASK_METHOD = "latent mask: 8x8 cells rendered at >= 1/2, init noised to the next step"


def latent_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """``mask`` (H, W uint8) as latent cells (``height`` x ``width``), 1 where rendered."""
    cells = cv2.resize(
        mask.astype(np.float32) / 255.0, (width, height), interpolation=cv2.INTER_AREA
    )
    return (cells >= 0.5).astype(np.float32)


class LatentMask:
    """The masks of one call's frames inside the call (see the module notes).

    ``masks`` holds each frame's mask (None: rendered everywhere), ``fills`` each frame's
    masked content; ``keep_init`` puts the init back outside the mask every step (a
    regular checkpoint; an inpainting one keeps it itself).
    """

    tensor_inputs: tuple[str, ...] = ("latents",)  # what it reads, as a step callback

    def __init__(
        self, masks: Sequence[np.ndarray | None], fills: Sequence[MaskFill], keep_init: bool
    ) -> None:
        self.masks = masks
        self.fills = fills
        self.keep_init = keep_init
        self.cells: torch.Tensor | None = None  # B x 1 x h x w, made at the first noise
        self.init: torch.Tensor | None = None
        self.noise: torch.Tensor | None = None
        self._add_noise: Callable[..., torch.Tensor] | None = None

    @classmethod
    def needed(
        cls, masks: Sequence[np.ndarray | None], fills: Sequence[MaskFill], keep_init: bool
    ) -> LatentMask | None:
        """The hook for these frames, or None when it would change nothing (no frame has a
        mask that leaves anything out, and none fills its latents)."""
        partial = keep_init and any(m is not None and not (m == 255).all() for m in masks)
        latent_fill = any(
            mask is not None and fill in (MaskFill.latent_noise, MaskFill.latent_nothing)
            for mask, fill in zip(masks, fills, strict=True)
        )
        return cls(masks, fills, keep_init) if partial or latent_fill else None

    def enter(self, stack: ExitStack, pipe: Any) -> list[StepCallback]:
        """Catch (and fill) the init latents where img2img noises them; the step callback."""
        original = pipe.scheduler.add_noise
        self._add_noise = original

        def add_noise(samples: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
            if self.init is None:
                samples = self._filled(samples, noise)
                self.init, self.noise = samples.detach().clone(), noise.detach().clone()
            return original(samples, noise, timesteps)

        stack.enter_context(replaced(pipe.scheduler, "add_noise", add_noise))
        return [self] if self.keep_init else []

    def _cells(self, like: torch.Tensor) -> torch.Tensor:
        if self.cells is None:
            _, _, height, width = like.shape
            ones = np.ones((height, width), np.float32)
            self.cells = torch.from_numpy(
                np.stack(
                    [ones if m is None else latent_mask(m, width, height) for m in self.masks]
                )[:, None]
            )
        return self.cells.to(like)

    def _filled(self, samples: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The init latents with each frame's latent fill inside its mask."""
        if not any(f in (MaskFill.latent_noise, MaskFill.latent_nothing) for f in self.fills):
            return samples
        cells = self._cells(samples)
        filled = []
        for number, fill in enumerate(self.fills):
            sample, cell = samples[number : number + 1], cells[number : number + 1]
            if fill is MaskFill.latent_noise:
                sample = sample * (1.0 - cell) + noise[number : number + 1] * cell
            elif fill is MaskFill.latent_nothing:
                sample = sample * (1.0 - cell)
            filled.append(sample)
        return torch.cat(filled)

    def __call__(
        self, pipe: Any, step: int, timestep: Any, tensors: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        latents = tensors["latents"]
        if self.init is None or self.noise is None or self._add_noise is None:
            return {}  # img2img noised nothing (no init): nothing to keep
        init = self.init.to(latents)
        count = pipe.num_timesteps
        if step < count - 1:
            following = pipe.scheduler.timesteps[-count:][step + 1].reshape(1)
            kept = self._add_noise(init, self.noise.to(latents), following)
        else:
            kept = init
        cells = self._cells(latents)
        return {"latents": kept * (1.0 - cells) + latents * cells}
