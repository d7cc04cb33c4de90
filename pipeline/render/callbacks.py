"""Step callbacks: what acts at the end of each denoising step, composed as one list.

A diffusers pipeline call takes one ``callback_on_step_end``. Several things act there
in one frame: prompt editing switches the embeddings (:mod:`.prompt_schedule`, one switch
per batch, :mod:`.batch`), temporal coherence carries the previous frame's residual into
the latents (:class:`pipeline.render.coherence.fusion.ResidualFusion`). Each is a
:class:`StepCallback` naming the tensors it reads; :class:`StepCallbacks` runs them in
order, each seeing what the ones before it changed, and hands diffusers the union of their
tensor inputs, the composition diffusers' own ``MultiPipelineCallbacks`` makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch


class StepCallback(Protocol):
    """One step callback: the tensors it reads, and those it changes (returned)."""

    @property
    def tensor_inputs(self) -> Sequence[str]: ...

    def __call__(
        self, pipe: Any, step: int, timestep: Any, tensors: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]: ...


class StepCallbacks:
    """The step callbacks of one pipeline call, in the order they run."""

    def __init__(self, callbacks: Sequence[StepCallback] = ()) -> None:
        self.callbacks = list(callbacks)

    def add(self, callback: StepCallback | None) -> None:
        if callback is not None:
            self.callbacks.append(callback)

    @property
    def tensor_inputs(self) -> list[str]:
        """Every tensor any callback reads, each once, in first-use order."""
        return list(dict.fromkeys(name for cb in self.callbacks for name in cb.tensor_inputs))

    def __call__(
        self, pipe: Any, step: int, timestep: Any, tensors: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        changed: dict[str, torch.Tensor] = {}
        for callback in self.callbacks:
            changed.update(callback(pipe, step, timestep, {**tensors, **changed}))
        return changed

    def call_arguments(self) -> dict[str, Any]:
        """The pipeline call's callback arguments (none when there is no callback)."""
        if not self.callbacks:
            return {}
        return {
            "callback_on_step_end": self,
            "callback_on_step_end_tensor_inputs": self.tensor_inputs,
        }
