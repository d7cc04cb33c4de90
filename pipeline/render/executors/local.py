"""The local executor: every frame rendered in this process, the GPU kept busy.

Three things overlap here. Decoding runs ahead of the renderer in a thread
(:class:`pipeline.source.prefetch.Prefetch`); the render loop computes keys, reuses
what is current and renders the rest (in batches where frames can share a pipeline
call); and each rendered frame's PNG compression and fsync, then its manifest line,
happen in the writer's pool (:class:`pipeline.records.writer.FrameWriter`) while the
next frame renders. A chain (loopback, temporal coherence) needs the previous output
before its next frame starts: it has it in memory, the renderer's own output array, so
the writer never holds it up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial

from pipeline.config.schema import RunConfig
from pipeline.control.maps import ControlMaps
from pipeline.records.manifest import image_digest
from pipeline.records.writer import FrameWriter
from pipeline.render.executors.work import RenderWork
from pipeline.render.inputs import open_frames
from pipeline.render.loading import keep_for_next_job
from pipeline.render.producer import FrameProducer, manifest_commit
from pipeline.render.renderer import Renderer
from pipeline.render.strategies import strategy_for
from pipeline.render.strategies.base import RenderStrategy, UnitContext
from pipeline.render.units import ChainUnit, FramesUnit, PendingFrame
from pipeline.source.base import Frame
from pipeline.source.prefetch import PREFETCH_FRAMES, Prefetch

log = logging.getLogger("rotoscope")

# Threads compressing and writing frames. Two keep up with a GPU at ~100 ms per frame
# (a noise-like 512x512 PNG takes ~30 ms of one core), and leave cores for decoding.
WRITE_THREADS = 2


def render_locally(work: RenderWork) -> None:
    """Render ``work`` in this process."""
    from pipeline.models.devices import describe_device, resolve_device

    cfg, rows = work.cfg, work.rows
    work.report.device = describe_device(resolve_device(cfg.runtime.device))
    depth = max(PREFETCH_FRAMES, 2 * cfg.render.batch_size)
    strategy = strategy_for(cfg, work.folder, rows)
    note_sequential(cfg, strategy.sequential)
    with (
        open_frames(cfg, rows) as source,
        ControlMaps(cfg, work.folder, rows[0].width, rows[0].height) as maps,
        FrameWriter(manifest_commit(work.manifest, work.folder), WRITE_THREADS) as writer,
        # closed first: its thread stops before the source it reads from closes
        Prefetch(source, depth, digest=image_digest) as feed,
    ):
        producer = FrameProducer(
            work.folder, work.manifest, work.identity, lambda: timed_load(work), work.progress,
            work.report, work.stop, control=maps if cfg.controlnet.units else None, writer=writer,
        )  # fmt: skip
        reopen = partial(open_frames, cfg, rows)
        context = UnitContext(rows, source.info, source.selection, reopen)
        try:
            strategy.feed(producer, rows, feed, RenderHere(strategy, producer, context))
        finally:
            strategy.close()
    keep_for_next_job(producer.loaded)  # a local queue's next job may use the same model


class RenderHere:
    """The local dispatch: every unit is rendered at once, in this process (a chain's
    frames as the source decodes them)."""

    def __init__(
        self, strategy: RenderStrategy, producer: FrameProducer, context: UnitContext
    ) -> None:
        self.strategy = strategy
        self.producer = producer
        self.context = context

    def frames(self, batch: list[PendingFrame]) -> None:
        self.strategy.render_unit(self.producer, FramesUnit(0, batch), self.context)

    def chain(
        self,
        frames: Iterable[Frame],
        indices: Sequence[int] | None = None,
        makes: Callable[[int], bool] | None = None,
        reads: Sequence[int] = (),
        maps_ahead: bool = True,
    ) -> None:
        """The chain, rendered now (what it reads is this process's manifest's; every map
        is made as its frame renders, whatever ``maps_ahead`` says)."""
        unit = ChainUnit(0, frames, list(indices or []), reads=list(reads))
        self.strategy.render_unit(self.producer, unit, self.context)

    def wait(self) -> None:
        """Every unit is rendered when handed over: wait for the writer's lines."""
        self.producer.writer.drain()


def note_sequential(cfg: RunConfig, why: str | None) -> None:
    """One log line when ``render.batch_size`` cannot apply: frames of a chain wait for
    each other's output (``why``; None where frames batch)."""
    if why is not None and cfg.render.batch_size > 1:
        log.info(
            "render.batch_size=%d: %s, one frame per call (with runtime.workers, segments "
            "render side by side)",
            cfg.render.batch_size, why,
        )  # fmt: skip


def timed_load(work: RenderWork) -> Renderer:
    """Load the renderer; its load time is not frame time (rate, ETA, s/frame)."""
    from pipeline.render.loading import load_renderer

    started = time.monotonic()
    renderer = load_renderer(work.cfg, work.rows, work.networks)
    seconds = time.monotonic() - started
    work.progress.exclude(seconds)
    work.report.model_load_seconds = round(seconds, 3)
    work.stop.check()  # a Ctrl-C during a long load stops before the first frame
    return renderer
