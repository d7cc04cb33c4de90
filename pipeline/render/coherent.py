"""The third input strategy: each frame from its own source frame and the frames before
it in its segment (temporal coherence, ``coherence=attention|flow|full``).

Frames still render one at a time, in order. Each frame's key joins its predecessor's
and its segment anchor's keys (:func:`pipeline.render.coherence.chain.dependencies`),
so resume and change-aware re-render follow the one manifest rule, and a change
re-renders exactly the rest of its segment. What a frame hands on is written before its
manifest line (:class:`pipeline.render.coherence.chain.CoherenceChain`), and read back
only when a later frame actually renders.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np

from pipeline.animation.flow_cache import FlowCache
from pipeline.plan.rows import FrameJob
from pipeline.render.coherence.chain import (
    CoherenceChain,
    FrameCoherence,
    FrameState,
    dependencies,
)
from pipeline.render.producer import FrameProducer, check_size, frame_origin
from pipeline.source.base import Source

log = logging.getLogger("rotoscope")


class ChainCursor:
    """Where a pass over the frames stands: the previous frame's and the anchor's state."""

    def __init__(self) -> None:
        self.previous: FrameState | None = None
        self.anchor: FrameState | None = None
        self.restored: set[int] = set()  # frames whose recordings are in memory

    def follows(self, job: FrameJob) -> bool:
        """Whether ``job`` continues the chain (else it starts one: a segment's first
        frame, the frame after a gap left by an unreadable input frame, or an image of
        another size)."""
        previous = self.previous
        return (
            previous is not None
            and previous.index == job.index - 1
            and job.segment_start != job.index
            and previous.output.shape[:2] == (job.height, job.width)
        )

    def advance(self, state: FrameState) -> None:
        if state.anchor:
            self.anchor = state
        self.previous = state


class ChainedFrame:
    """One frame of a chain, as the producer sees it (``ChainedInput``)."""

    def __init__(
        self,
        job: FrameJob,
        source: np.ndarray,
        cursor: ChainCursor,
        chain: CoherenceChain,
        flows: FlowCache,
        rebuild: Callable[[list[FrameState]], None],
    ) -> None:
        self.job = job
        self.source = source
        self.cursor = cursor
        self.chain = chain
        self.flows = flows
        self.rebuild = rebuild
        follows = cursor.follows(job)
        self.previous = cursor.previous if follows else None
        self.anchor = cursor.anchor if follows else None
        self.dependencies = dependencies(
            chain.settings,
            job,
            self.previous.key if self.previous else "",
            self.anchor.key if self.anchor else "",
        )
        self.coherence: FrameCoherence | None = None

    def prepare(self) -> tuple[np.ndarray, FrameCoherence]:
        self.rebuild([state for state in (self.anchor, self.previous) if state is not None])
        pair = None
        if self.previous is not None:
            pair = self.flows.pair(self.job.index, self.previous.source, self.source)
        self.coherence = FrameCoherence(
            self.chain, self.job, self.source, self.previous, self.anchor, pair
        )
        return self.coherence.init_image(), self.coherence

    def rendered(self, key: str, output: np.ndarray) -> np.ndarray:
        assert self.coherence is not None
        output = self.coherence.finish(output)
        state = self.coherence.state(key, output)
        self.chain.store(state, self.previous)
        self.cursor.restored.add(state.index)
        self.cursor.advance(state)
        return output

    def reused(self, key: str, output: np.ndarray) -> None:
        state = FrameState(
            self.job.index, key, self.previous is None, self.source, output
        )  # recordings are read from disk only if a later frame renders
        self.cursor.advance(state)


def render_coherent(
    producer: FrameProducer,
    rows: list[FrameJob],
    source: Source,
    chain: CoherenceChain,
    reopen: Callable[[], AbstractContextManager[Source]],
) -> None:
    """Render the planned frames as chains, one segment after another.

    ``reopen`` opens the source again, for the rare replay that rebuilds a recording
    (see :func:`rebuild_state`).
    """
    flows = FlowCache(producer.folder.flow)
    cursor = ChainCursor()

    def rebuild(states: list[FrameState]) -> None:
        missing = [state for state in states if state.index not in cursor.restored]
        if missing:
            rebuild_states(producer, rows, chain, flows, reopen, missing)
            cursor.restored.update(state.index for state in missing)

    for frame in source:
        if frame.index >= len(rows):
            break
        job = rows[frame.index]
        check_size(job, frame.image.shape)
        chained = ChainedFrame(job, frame.image, cursor, chain, flows, rebuild)
        producer.produce(job, frame.image, frame_origin(source, frame), chained=chained)
    producer.note_source_end(rows, source)


def rebuild_states(
    producer: FrameProducer,
    rows: list[FrameJob],
    chain: CoherenceChain,
    flows: FlowCache,
    reopen: Callable[[], AbstractContextManager[Source]],
    states: list[FrameState],
) -> None:
    """Fill ``states`` (frames of one segment reused from disk) with the recordings a
    later frame needs.

    They come from the run folder when kept there; otherwise the frames from the
    segment's first one up to the last of ``states`` are rendered again, which gives the
    same recordings (rendering is deterministic); their outputs are already on disk and
    are not rewritten.
    """
    device = producer.renderer.model.device
    missing = {state.index: state for state in states if not chain.restore(state, device)}
    if not missing:
        return
    last = max(missing)
    start = rows[last].segment_start or 0
    log.info(
        "coherence: rebuilding the state of frame %d by rendering frames %d-%d again",
        last, start, last,
    )  # fmt: skip
    cursor = ChainCursor()
    with reopen() as again:
        for frame in again:
            if frame.index < start:
                continue
            if frame.index > last:
                break
            job = rows[frame.index]
            follows = cursor.follows(job)
            previous, anchor = (cursor.previous, cursor.anchor) if follows else (None, None)
            pair = flows.pair(job.index, previous.source, frame.image) if previous else None
            coherence = FrameCoherence(chain, job, frame.image, previous, anchor, pair)
            maps = producer.control.maps(job.index, frame.image) if producer.control else []
            output = producer.renderer.render(
                job, coherence.init_image(), producer.control_maps(maps), coherence
            )
            rebuilt = coherence.state("", coherence.finish(output))
            if job.index in missing:
                missing[job.index].attention = rebuilt.attention
                missing[job.index].latents = rebuilt.latents
            cursor.advance(rebuilt)
