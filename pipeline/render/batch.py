"""Batching: which frames share one pipeline call, and their conditioning side by side.

``render.batch_size=N`` puts up to N frames through one diffusers call, which keeps a
GPU's many cores busy where one 512x512 frame cannot. Frames may share a call only if
the call's own arguments are equal for all of them: sampler and schedule type, steps,
strength, guidance scale, size, txt2img or img2img, LoRA weights (set on the model, not
per sample) and ControlNet weights and windows (one per unit and call). Everything else
stays per frame: each frame has its own ``torch.Generator`` seeded from its row
(diffusers takes a list of generators and draws each sample's VAE sample and noise from
its own, exactly the numbers that frame
draws alone), its own blended prompt embeddings (stacked along the batch), its own
control maps and its own prompt-editing switches (one step callback switches each
frame's embeddings at its own steps).

Batches are cut on a fixed grid of frame numbers (0..N-1, N..2N-1, ...) and at every
row that differs from the one before, so which frames share a call never depends on
where a run was resumed or on which worker renders them: a Ray run and a local run of
the same config make the same batches, hence the same frames.

A frame's key never includes the batch size: a re-run with another size reuses every
frame. Batch N is not bit-identical to batch 1 (see the README, "Speed and scale"): the
same per-frame arithmetic runs, but BLAS and convolution kernels pick their blocking
and summation order by the shape of the whole batch, so results differ in the last
bits of float precision, well under 1/255 after the VAE decodes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from pipeline.plan.rows import PlanRow
from pipeline.render.prompt_schedule import PromptSwitch, StepConditionings, stacked


@dataclass(frozen=True)
class FrameInput:
    """One frame of a pipeline call: its row, its init image and its control maps; with a
    mask, where it is rendered (at the call's size: None renders everywhere) and what
    shows outside it (the source frame; the init image when None)."""

    row: PlanRow
    image: np.ndarray
    maps: list[np.ndarray] | None = None
    mask: np.ndarray | None = None
    source: np.ndarray | None = None


def call_signature(row: PlanRow) -> str:
    """What must be equal for frames to share a pipeline call (one JSON-like string)."""
    controls = sorted((row.controls or {}).items())
    loras = sorted((row.loras or {}).items())
    masked = (row.mask_area, row.mask_fill) if row.masked else ()
    # a schedule type picks another scheduler, txt2img another pipeline
    later = tuple(value for value in (row.scheduler, row.txt2img) if value is not None)
    return repr(
        (row.sampler, row.steps, row.strength, row.guidance_scale, row.width, row.height,
         loras, controls, *masked, *later)
    )  # fmt: skip


class HasJob(Protocol):
    @property
    def row(self) -> PlanRow: ...


Item = TypeVar("Item", bound=HasJob)


class Batcher(Generic[Item]):
    """Groups frames, in frame order, into the batches the renderer gets.

    A frame joins the open batch when it is in the same grid cell (``index //
    batch_size``) and has the same :func:`call_signature`; otherwise the open batch is
    complete and the frame starts a new one.
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size = max(1, batch_size)
        self._open: list[Item] = []

    def add(self, item: Item) -> list[list[Item]]:
        """Add ``item``; the batches it completes (zero, one or two)."""
        done: list[list[Item]] = []
        if self._open and not self._joins(item):
            done.append(self._open)
            self._open = []
        self._open.append(item)
        if len(self._open) == self.batch_size:
            done.append(self._open)
            self._open = []
        return done

    def flush(self) -> list[list[Item]]:
        """The open batch, if any (at the end of the frames)."""
        done, self._open = ([self._open] if self._open else []), []
        return done

    def _joins(self, item: Item) -> bool:
        first = self._open[0].row
        return item.row.index // self.batch_size == first.index // self.batch_size and (
            call_signature(item.row) == call_signature(first)
        )


def conditioning_shapes(conditionings: StepConditionings) -> tuple[Any, ...]:
    """The tensor shapes of every step's conditioning: frames share a call only if these
    are equal and the same at every step (a longer prompt has more 77-token chunks)."""
    shapes = {
        tuple((name, tuple(tensor.shape)) for name, tensor in run.pipeline_kwargs().items())
        for run in conditionings.conditionings
    }
    return tuple(sorted(shapes)) if len(shapes) == 1 else ("alone", id(conditionings))


def batch_embeddings(
    conditionings: Sequence[StepConditionings], pooled: bool
) -> tuple[dict[str, Any], PromptSwitch | None]:
    """The embedding arguments of one call for several frames, stacked along the batch in
    frame order, and the step callback that switches them when any frame's prompt changes
    between steps (None when none does).

    One frame gets exactly the arguments it gets alone. ``pooled``: the pipeline takes
    SDXL's pooled embeddings.
    """
    arguments = stacked([c.conditionings[0] for c in conditionings]).pipeline_kwargs()
    if all(len(c.conditionings) == 1 for c in conditionings):
        return arguments, None
    return arguments, PromptSwitch(conditionings, pooled)
