"""The local executor: every frame rendered in this process, the GPU kept busy.

Three things overlap here. Decoding runs ahead of the renderer in a thread
(:class:`pipeline.source.prefetch.Prefetch`); the render loop computes keys, reuses
what is current and renders the rest (in batches where frames can share a pipeline
call); and each rendered frame's PNG compression and fsync, then its manifest line,
happen in the writer's pool (:class:`pipeline.jobs.writer.FrameWriter`) while the
next frame renders. A chain (loopback, temporal coherence) needs the previous output
before its next frame starts: it has it in memory, the renderer's own output array, so
the writer never holds it up.
"""

from __future__ import annotations

import logging
import time
from functools import partial

from pipeline.config.schema import AnimationMode, RunConfig
from pipeline.control.maps import ControlMaps
from pipeline.jobs.manifest import image_digest
from pipeline.jobs.writer import FrameWriter
from pipeline.render.executors.work import RenderWork, is_coherent
from pipeline.render.renderer import Renderer
from pipeline.source.open import keeps_own_sizes, open_source
from pipeline.source.prefetch import PREFETCH_FRAMES, Prefetch

log = logging.getLogger("rotoscope")

# Threads compressing and writing frames. Two keep up with a GPU at ~100 ms per frame
# (a noise-like 512x512 PNG takes ~30 ms of one core), and leave cores for decoding.
WRITE_THREADS = 2


def render_locally(work: RenderWork) -> None:
    """Render ``work`` in this process."""
    from pipeline.models.devices import describe_device, resolve_device
    from pipeline.render.coherence.chain import CoherenceChain
    from pipeline.render.coherence.strategy import render_coherent
    from pipeline.render.producer import (
        FrameProducer,
        manifest_commit,
        render_frames,
        render_loopback,
    )

    cfg, rows = work.cfg, work.rows
    work.report.device = describe_device(resolve_device(cfg.runtime.device))
    units = cfg.controlnet.units
    depth = max(PREFETCH_FRAMES, 2 * cfg.render.batch_size)
    with (
        open_source(cfg.input, keeps_own_sizes(cfg)) as source,
        ControlMaps(cfg, work.folder, rows[0].width, rows[0].height) as maps,
        FrameWriter(manifest_commit(work.manifest, work.folder), WRITE_THREADS) as writer,
        # closed first: its thread stops before the source it reads from closes
        Prefetch(source, depth, digest=image_digest) as feed,
    ):
        producer = FrameProducer(
            work.folder, work.manifest, work.identity, lambda: timed_load(work), work.progress,
            work.report, work.stop, control=maps if units else None, writer=writer,
        )  # fmt: skip
        if cfg.animation.mode is AnimationMode.loopback:
            note_sequential(cfg, "loopback renders each frame from the one before")
            render_loopback(producer, rows, feed, cfg.animation)
        elif is_coherent(cfg):
            note_sequential(cfg, "coherence renders each segment's frames in order")
            chain = CoherenceChain(cfg.coherence, work.folder, rows)
            reopen = partial(open_source, cfg.input, keeps_own_sizes(cfg))
            render_coherent(producer, rows, feed, chain, reopen)
        else:
            render_frames(producer, rows, feed, cfg.render.batch_size)


def note_sequential(cfg: RunConfig, why: str) -> None:
    """One log line when ``render.batch_size`` cannot apply: frames of a chain wait for
    each other's output."""
    if cfg.render.batch_size > 1:
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
    return renderer
