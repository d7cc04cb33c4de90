"""The coherent strategy: each frame from its own source frame and the frames before it in
its segment (``coherence=attention|flow|full``).

Frames still render one at a time, in order; each segment (from one anchor to the next)
is one chain, one unit of work, so the Ray executor renders segments side by side. Each
frame's key joins the keys of the earlier frames it is rendered from
(:meth:`ChainSettings.dependencies`), so resume and change-aware re-render follow the one
manifest rule, and a change re-renders exactly the rest of its segment. What a frame
hands on is written before its manifest line (:class:`CoherenceChain`) and read back only
when a later frame actually renders.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from itertools import groupby, takewhile

import numpy as np

from pipeline.animation.flow_cache import FlowCache
from pipeline.config.schema import CoherenceConfig
from pipeline.plan.rows import PlanRow
from pipeline.records.run_folder import RunFolder
from pipeline.render.batch import FrameInput
from pipeline.render.coherence.chain import CoherenceChain, FrameCoherence, FrameState
from pipeline.render.producer import FrameProducer, check_size
from pipeline.render.strategies.base import Dispatch, RenderStrategy, UnitContext
from pipeline.render.units import ChainUnit, FrameList, FrameOrigin, WorkUnit
from pipeline.source.base import Frame, Source

log = logging.getLogger("rotoscope")


class ChainWalk:
    """A pass over the frames in order: the previous frame's and the anchor's state, and
    the coherence of the next frame from them.

    Every frame of the chain's input passes :meth:`see`; the frames the walk
    :meth:`takes` are rendered in it (all of them here; a cadence's diffused frames alone
    in :class:`pipeline.render.strategies.cadence.KeyframeWalk`).
    """

    def __init__(self, chain: CoherenceChain, flows: FlowCache) -> None:
        self.chain = chain
        self.flows = flows
        self.previous: FrameState | None = None
        self.anchor: FrameState | None = None

    def takes(self, row: PlanRow) -> bool:
        """Whether ``row``'s frame is rendered in this chain (else only seen)."""
        return True

    def see(self, row: PlanRow, source: np.ndarray) -> None:
        """``row``'s source frame is next in the input (before it renders, if taken)."""

    def dependencies(self, row: PlanRow, previous_key: str, anchor_key: str) -> str:
        """The part of ``row``'s key that names the frames it is rendered from."""
        return self.chain.settings.dependencies(row, previous_key, anchor_key)

    def follows(self, row: PlanRow) -> bool:
        """Whether ``row`` continues the chain (else it starts one: a segment's first
        frame, the frame after a gap left by an unreadable input frame, or an image of
        another size)."""
        previous = self.previous
        return (
            previous is not None
            and previous.index == row.index - 1
            and row.segment_start != row.index
            and previous.output.shape[:2] == (row.height, row.width)
        )

    def frame(self, row: PlanRow, source: np.ndarray) -> FrameCoherence:
        """The coherence of ``row`` rendered after the frames this walk has passed."""
        follows = self.follows(row)
        previous, anchor = (self.previous, self.anchor) if follows else (None, None)
        pair = None
        if previous is not None and self.chain.settings.flow:
            pair = self.flows.pair(row.index, previous.source, source)
        return FrameCoherence(self.chain, row, source, previous, anchor, pair)

    def advance(self, state: FrameState) -> None:
        """``state``'s frame is done: it is the previous frame now (and maybe the anchor)."""
        if state.anchor:
            self.anchor = state
        self.previous = state


class ChainedFrame:
    """One frame of a chain, as the producer sees it (``ChainedInput``)."""

    def __init__(
        self,
        row: PlanRow,
        source: np.ndarray,
        walk: ChainWalk,
        rebuild: Callable[[list[FrameState]], None],
        is_blank: bool = False,
    ) -> None:
        """``is_blank``: the frame's mask is empty (it is its source frame)."""
        self.row = row
        self.source = source
        self.walk = walk
        self.rebuild = rebuild
        self.is_blank = is_blank
        follows = walk.follows(row)
        self.previous = walk.previous if follows else None
        self.anchor = walk.anchor if follows else None
        self.dependencies = walk.dependencies(
            row,
            self.previous.key if self.previous else "",
            self.anchor.key if self.anchor else "",
        )
        self.coherence: FrameCoherence | None = None
        self.state: FrameState | None = None

    def prepare(self) -> tuple[np.ndarray, FrameCoherence]:
        self.rebuild([state for state in (self.anchor, self.previous) if state is not None])
        self.coherence = self.walk.frame(self.row, self.source)
        return self.coherence.init_image(), self.coherence

    def rendered(self, key: str, output: np.ndarray) -> np.ndarray:
        assert self.coherence is not None  # its hooks finished the output in the call
        self.state = self.coherence.state(key, output)
        self.walk.chain.store(self.state)
        self.walk.advance(self.state)
        return output

    def blank(self, key: str, output: np.ndarray) -> np.ndarray:
        self.state = FrameState(
            self.row.index, key, self.previous is None, self.source, output, blank=True
        )
        self.walk.advance(self.state)
        return output

    def committed(self) -> None:
        if self.state is not None:
            self.walk.chain.committed(self.previous)

    def reused(self, key: str, output: np.ndarray) -> None:
        # its recordings are read from disk only if a later frame renders
        state = FrameState(self.row.index, key, self.previous is None, self.source, output)
        state.blank = self.is_blank
        self.walk.advance(state)


class CoherentStrategy(RenderStrategy):
    """Segments rendered as chains (see the module notes)."""

    sequential = "coherence renders each segment's frames in order"

    def __init__(
        self,
        config: CoherenceConfig,
        folder: RunFolder,
        rows: list[PlanRow],
        walk: type[ChainWalk] = ChainWalk,
    ) -> None:
        """``walk``: how a chain passes its frames (which it renders, and from what)."""
        self.chain = CoherenceChain(config, folder, rows)
        self.flows = FlowCache(folder.flow_pair)
        self.walk = walk

    def feed(
        self, producer: FrameProducer, rows: list[PlanRow], source: Source, dispatch: Dispatch
    ) -> None:
        """Each segment's frames, as they are decoded, as one chain."""
        planned = takewhile(lambda frame: frame.index < len(rows), source)
        for _, segment in groupby(planned, key=lambda frame: rows[frame.index].segment_start):
            dispatch.chain(sized(segment, rows))
        producer.note_source_end(rows, source)

    def render_unit(self, producer: FrameProducer, unit: WorkUnit, context: UnitContext) -> None:
        """Render one segment in order, reusing its current frames.

        ``context.reopen`` reads the source again, for the rare replay that rebuilds a
        recording (see :func:`rebuild_states`).
        """
        assert isinstance(unit, ChainUnit), "the coherent strategy makes chains"
        rows, chain = context.rows, self.chain
        walk = self.walk(chain, self.flows)
        restored: set[int] = set()  # frames whose recordings are in memory

        def rebuild(states: list[FrameState]) -> None:
            missing = [state for state in states if state.index not in restored]
            if missing:
                replay = self.walk(chain, self.flows)
                rebuild_states(producer, rows, replay, context.reopen, missing)
                restored.update(state.index for state in missing)

        source = FrameList(context.info, context.selection, unit.frames)
        try:
            for frame in sized(source, rows):
                row = rows[frame.index]
                walk.see(row, frame.image)
                if not walk.takes(row):
                    continue
                blank = frame.mask is not None and frame.mask.empty
                chained = ChainedFrame(row, frame.image, walk, rebuild, blank)
                origin = FrameOrigin.of(context.info, frame)
                producer.produce(row, frame.image, origin, chained=chained, mask=frame.mask)
                if chained.state is not None:
                    restored.add(row.index)
        finally:
            chain.close()


def sized(frames: Iterable[Frame], rows: list[PlanRow]) -> Iterator[Frame]:
    """``frames`` up to the plan's last, each checked to have the plan's size."""
    for frame in frames:
        if frame.index >= len(rows):
            return
        check_size(rows[frame.index], frame.image.shape)
        yield frame


def rebuild_states(
    producer: FrameProducer,
    rows: list[PlanRow],
    walk: ChainWalk,
    reopen: Callable[[], AbstractContextManager[Source]],
    states: list[FrameState],
) -> None:
    """Fill ``states`` (frames of one segment reused from disk) with the recordings a
    later frame needs; ``walk`` is a fresh walk of the chain's kind.

    They come from the run folder when kept there; otherwise the frames from the
    segment's first one up to the last of ``states`` are rendered again, which gives the
    same recordings (rendering is deterministic); their outputs are already on disk and
    are not rewritten.
    """
    chain = walk.chain
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
    with reopen() as again:
        for frame in again:
            if frame.index < start:
                continue
            if frame.index > last:
                break
            row = rows[frame.index]
            check_size(row, frame.image.shape)
            walk.see(row, frame.image)
            if not walk.takes(row):
                continue
            if frame.mask is not None and frame.mask.empty:  # it hands on nothing
                walk.advance(FrameState(row.index, "", walk.previous is None, frame.image,
                                        frame.image, blank=True))  # fmt: skip
                continue
            coherence = walk.frame(row, frame.image)
            maps = producer.control.maps(row.index, frame.image) if producer.control else []
            pixels = frame.mask.pixels if frame.mask is not None else None
            rendered = FrameInput(
                row, coherence.init_image(), producer.control_maps(maps), pixels, frame.image
            )
            rebuilt = coherence.state("", producer.masked.render(rendered, coherence))
            if row.index in missing:
                missing[row.index].attention = rebuilt.attention
                missing[row.index].latents = rebuilt.latents
            walk.advance(rebuilt)
