"""Where the upscale stage's frames are made: this process (:class:`UpscaleHere`), or Ray
workers (:mod:`pipeline.upscale.workers`), behind one interface.

An executor is given the frames to make and a commit function; it calls the function
with each frame's record once the frame's file is durable (the stage writes the record),
and stops between frames when asked. It also says which precision the upscaler runs at
where it runs, which the frames' keys hold.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from pipeline.config.schema import RunConfig
from pipeline.records.interrupts import GracefulStop
from pipeline.records.progress import Progress
from pipeline.records.run_folder import RunFolder
from pipeline.records.upscaled import UpscaledFrame
from pipeline.upscale.delivery import Upscaler
from pipeline.upscale.frames import FrameUpscaler
from pipeline.upscale.jobs import UpscaleJob, make_upscaled

log = logging.getLogger("rotoscope")

# What an executor calls with each frame it finished (its file durable), in any order.
Commit = Callable[[UpscaledFrame], None]


class Executor(Protocol):
    """Where frames are upscaled: this process, or Ray workers (:mod:`.workers`)."""

    precision: str  # what the model runs at there: part of the frames' keys

    def run(
        self,
        folder: RunFolder,
        jobs: Sequence[UpscaleJob],
        upscaler: Upscaler,
        commit: Commit,
        stop: GracefulStop,
        progress: Progress,
    ) -> None:
        """Upscale ``jobs``, committing each once its file is durable; check ``stop``
        between frames."""


class UpscaleHere:
    """Upscales in this process, one frame at a time (the model loaded when the first
    frame needs it)."""

    def __init__(self, cfg: RunConfig, upscaler: Upscaler) -> None:
        self.cfg = cfg
        self.precision = "" if upscaler.path is None else precision_of(cfg)

    def run(
        self,
        folder: RunFolder,
        jobs: Sequence[UpscaleJob],
        upscaler: Upscaler,
        commit: Commit,
        stop: GracefulStop,
        progress: Progress,
    ) -> None:
        with progress.excluding():  # loading weights is not frame time
            upscale = frame_upscaler(self.cfg, upscaler)
        for job in jobs:
            commit(make_upscaled(job, folder, upscale, upscaler.name))
            stop.safe_point("upscale")


def frame_upscaler(cfg: RunConfig, upscaler: Upscaler) -> FrameUpscaler:
    """The frame upscaler of ``upscaler`` on ``runtime.device`` at ``runtime.dtype``:
    Lanczos loads nothing and needs no torch."""
    if upscaler.path is None:
        return FrameUpscaler(None, cfg.upscale.tile, cfg.upscale.tile_overlap)
    from pipeline.models.devices import resolve_device, resolve_dtype
    from pipeline.models.upscalers import load_upscaler

    device = resolve_device(cfg.runtime.device)
    model = load_upscaler(upscaler.path, device, resolve_dtype(cfg.runtime.dtype, device))
    precision = str(model.dtype).removeprefix("torch.")
    log.info(
        "upscaler: %s (%s, %dx) on %s at %s",
        model.name, model.architecture, model.scale, device, precision,
    )  # fmt: skip
    return FrameUpscaler(model, cfg.upscale.tile, cfg.upscale.tile_overlap)


def precision_of(cfg: RunConfig) -> str:
    """The precision a model upscaler is asked to run at (``runtime.dtype`` on
    ``runtime.device``): part of the frames' keys, as a render's dtype is of its frames'."""
    from pipeline.models.devices import resolve_device, resolve_dtype

    dtype = resolve_dtype(cfg.runtime.dtype, resolve_device(cfg.runtime.device))
    return str(dtype).removeprefix("torch.")
