"""Latent fusion: during the first steps, each step's latents lean on the previous frame's
latents at the same step, carried along the source's motion.

Flow-guided init fixes where a frame starts; the sampler can still wander off from
there. Blending the latents after each of the first ``fraction`` of the steps with the
previous frame's latents at the same step (warped by the source flow brought to latent
resolution, in the reliable areas) keeps the trajectories of consecutive frames
together while the picture forms. A frame records its own per-step latents for the
next one: ``steps x 4 x h/8 x w/8`` values, a few hundred kB at 512x512.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from pipeline.animation.flow import FlowPair, backward_warp, resize_flow, resize_mask, soften_mask
from pipeline.render.coherence.attention import steps_covered


def warp_latents(latents: torch.Tensor, pair: FlowPair) -> torch.Tensor:
    """``B x C x h x w`` latents of frame ``t-1`` moved onto frame ``t``'s latent grid."""
    _, channels, height, width = latents.shape
    flow = resize_flow(pair.backward, width, height)
    array = latents.detach().float().cpu().numpy()
    warped = np.stack(
        [
            np.stack([backward_warp(image[c], flow, cv2.INTER_LINEAR) for c in range(channels)])
            for image in array
        ]
    )
    return torch.from_numpy(warped).to(device=latents.device, dtype=latents.dtype)


@dataclass
class LatentFusion:
    """A ``callback_on_step_end`` that blends each early step's latents with the previous
    frame's (warped) and records this frame's latents after every step.

    ``previous`` is the previous frame's :attr:`recorded`, empty on a segment's first
    frame (which only records). ``weight`` is the blend where the flow is fully
    reliable, ``fraction`` the share of the steps, from the first, that blend.
    """

    weight: float
    fraction: float
    pair: FlowPair | None = None
    previous: list[torch.Tensor] = field(default_factory=list)
    recorded: list[torch.Tensor] = field(default_factory=list)

    def __call__(
        self, pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]
    ) -> dict[str, Any]:
        latents = tensors["latents"]
        active = step < steps_covered(self.fraction, int(getattr(pipe, "num_timesteps", 0) or 0))
        if active and self.weight > 0 and self.pair is not None and step < len(self.previous):
            carried = warp_latents(self.previous[step].to(latents.device, latents.dtype), self.pair)
            mask = self._mask(latents) * float(self.weight)
            latents = latents * (1.0 - mask) + carried * mask
        self.recorded.append(latents.detach().clone())
        return {"latents": latents}

    def _mask(self, latents: torch.Tensor) -> torch.Tensor:
        """The reliable share of each latent cell (softened at pixel resolution first)."""
        assert self.pair is not None
        _, _, height, width = latents.shape
        cells = resize_mask(soften_mask(self.pair.reliable, 0, 0.0), width, height)
        return torch.from_numpy(cells)[None, None].to(device=latents.device, dtype=latents.dtype)
