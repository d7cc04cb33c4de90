"""A1111's initial noise multiplier: img2img's starting noise scaled, per frame.

A1111's ``initial_noise_multiplier`` (and Deforum's ``noise_multiplier_schedule``, which
sets it per frame) multiplies the noise img2img adds to the encoded input before the
first denoising step: above 1 the input is buried deeper and more of it is repainted,
below 1 less. diffusers adds that noise with one call, ``scheduler.add_noise(latents,
noise, timestep)``, inside the pipeline; for one pipeline call the scheduler's
``add_noise`` is wrapped to scale each sample's noise by its own frame's multiplier.

The noise itself is untouched: each frame still draws it from its own generator, seeded
by its row, so a frame gets the same numbers alone or in a batch, after a resume or on
another worker, and frames with different multipliers can share a call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch


@contextmanager
def scaled_initial_noise(scheduler: Any, multipliers: Sequence[float]) -> Iterator[None]:
    """Within the block, ``scheduler.add_noise`` scales the noise of sample ``i`` by
    ``multipliers[i]`` (one per frame of the call, in batch order)."""
    original = scheduler.add_noise

    def add_noise(original_samples: Any, noise: Any, timesteps: Any) -> Any:
        if noise.shape[0] != len(multipliers):
            raise ValueError(f"{noise.shape[0]} noise samples for {len(multipliers)} frames")
        scale = torch.tensor(list(multipliers), dtype=noise.dtype, device=noise.device)
        return original(original_samples, noise * scale.reshape(-1, *[1] * (noise.ndim - 1)),
                        timesteps)  # fmt: skip

    scheduler.add_noise = add_noise
    try:
        yield
    finally:
        del scheduler.add_noise  # the class's own method again
