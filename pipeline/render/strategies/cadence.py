"""The cadence strategy on an input video: every n-th frame diffused, the frames between
carried along the source's motion from the diffused frames on either side
(``cadence.every``; the plan says which frames are which: :mod:`pipeline.plan.cadence`).

It composes the other strategies rather than adding to them, in two passes over the
input:

1. **the diffused frames**, as the plain strategy renders frames (batches of
   independent frames) or, with temporal coherence, as the coherent strategy renders
   segments: each segment's diffused frames are one chain (:class:`KeyframeWalk`), each
   rendered from the diffused frame before it along the source's flow composed through
   the frames between, with the anchors of cross-frame attention;
2. **the spans between them**, each one unit of work (one chain, on any worker): the
   frames between two diffused frames, made from both (:mod:`pipeline.animation.cadence`)
   without a UNet call, or with the light repair pass where neither covers enough.

Between the passes the strategy waits for the diffused frames to be recorded
(:meth:`~pipeline.render.strategies.base.Dispatch.wait`); a span reads them from the run
folder, through the current manifest records that travel with it. A carried frame's key
joins the keys of the diffused frames it is made from, the digest of the source frames
of its span (its flow runs through them) and how frames are carried, so a change to a
diffused frame re-renders exactly the frames carried from it, and a resumed or
distributed run carries exactly what an uninterrupted one does.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import groupby, takewhile

import numpy as np
from PIL import Image

from pipeline.animation.cadence import (
    CARRY_METHOD,
    Carried,
    Warped,
    carry_between,
    chain_pairs,
    warp_from_earlier,
    warp_from_later,
)
from pipeline.animation.flow import ConsistencyThresholds, FlowPair
from pipeline.animation.flow_cache import ESTIMATOR, FlowCache
from pipeline.config.schema import RunConfig
from pipeline.plan.rows import PlanRow
from pipeline.records.manifest import FrameRecord, image_digest, same_look
from pipeline.records.run_folder import RunFolder
from pipeline.render.batch import Batcher
from pipeline.render.coherence.chain import CoherenceChain, FrameCoherence, FrameState
from pipeline.render.inputs import open_frames
from pipeline.render.masking.render import MaskedRender
from pipeline.render.producer import FrameProducer
from pipeline.render.strategies.base import Dispatch, RenderStrategy, UnitContext
from pipeline.render.strategies.coherent import ChainWalk, CoherentStrategy, sized
from pipeline.render.units import (
    FrameList,
    FrameOrigin,
    FramesUnit,
    PendingFrame,
    WorkUnit,
)
from pipeline.source.base import Frame, Source

log = logging.getLogger("rotoscope")

# How this version carries frames, with the flow it carries them along: part of every
# carried frame's key.
CARRIED = f"cadence: {CARRY_METHOD}; flow {ESTIMATOR}; consistency {ConsistencyThresholds()}"
# Joins a coherent diffused frame's key: it follows the diffused frame before it (not
# the frame before it) along the composed flow.
KEYFRAME_CHAIN = "cadence: the diffused frame before, along the composed source flow"


class KeyframeWalk(ChainWalk):
    """The chain of one segment's diffused frames (cadence with temporal coherence): each
    follows the diffused frame before it, along the source's flow composed through the
    frames between, which the walk sees pass."""

    def __init__(self, chain: CoherenceChain, flows: FlowCache) -> None:
        super().__init__(chain, flows)
        self.last: tuple[int, np.ndarray] | None = None  # the last source frame seen
        self.since: FlowPair | None = None  # from the previous diffused frame to it
        self.unbroken = False  # every frame since the previous diffused frame was seen

    def takes(self, row: PlanRow) -> bool:
        return row.diffused

    def see(self, row: PlanRow, source: np.ndarray) -> None:
        last = self.last
        if self.unbroken and last is not None and last[0] == row.index - 1:
            if last[1].shape != source.shape:
                self.unbroken = False
            elif self.chain.settings.flow:
                pair = self.flows.pair(row.index, last[1], source)
                self.since = pair if self.since is None else chain_pairs(self.since, pair)
        else:
            self.unbroken = False
        self.last = (row.index, source)

    def follows(self, row: PlanRow) -> bool:
        previous = self.previous
        return (
            previous is not None
            and self.unbroken
            and (self.since is not None or not self.chain.settings.flow)
            and row.segment_start != row.index
            and previous.output.shape[:2] == (row.height, row.width)
        )

    def frame(self, row: PlanRow, source: np.ndarray) -> FrameCoherence:
        """The coherence of ``row`` after the diffused frames this walk has passed."""
        follows = self.follows(row)
        previous, anchor = (self.previous, self.anchor) if follows else (None, None)
        pair = self.since if previous is not None and self.chain.settings.flow else None
        return FrameCoherence(self.chain, row, source, previous, anchor, pair)

    def advance(self, state: FrameState) -> None:
        super().advance(state)
        self.last = (state.index, state.source)
        self.since = None
        self.unbroken = True

    def dependencies(self, row: PlanRow, previous_key: str, anchor_key: str) -> str:
        return f"{super().dependencies(row, previous_key, anchor_key)}|{KEYFRAME_CHAIN}"


class CadenceStrategy(RenderStrategy):
    """Diffused frames first, then the spans carried between them (see the module notes)."""

    def __init__(self, cfg: RunConfig, folder: RunFolder, rows: list[PlanRow]) -> None:
        self.cfg = cfg
        self.folder = folder
        self.flows = FlowCache(folder.flow_pair)
        coherence = cfg.coherence
        self.keyframes: CoherentStrategy | None = None
        if coherence.attention or coherence.flow:
            self.keyframes = CoherentStrategy(coherence, folder, rows, walk=KeyframeWalk)
            self.sequential = CoherentStrategy.sequential

    def feed(
        self, producer: FrameProducer, rows: list[PlanRow], source: Source, dispatch: Dispatch
    ) -> None:
        """The diffused frames, then (once they are recorded) the spans between them."""
        self.feed_diffused(producer, rows, source, dispatch)
        producer.note_source_end(rows, source)
        dispatch.wait()
        if producer.stop is not None:
            producer.stop.check()
        with open_frames(self.cfg, rows) as again:  # the input again, with its masks
            for frames, reads in spans(sized(again, rows), rows):
                dispatch.chain(frames, makes=lambda index: not rows[index].diffused, reads=reads)

    def feed_diffused(
        self, producer: FrameProducer, rows: list[PlanRow], source: Source, dispatch: Dispatch
    ) -> None:
        """Each segment as a chain of its diffused frames (with coherence), or the
        diffused frames in batches."""
        if self.keyframes is not None:
            planned = takewhile(lambda frame: frame.index < len(rows), source)
            for _, segment in groupby(planned, key=lambda frame: rows[frame.index].segment_start):
                dispatch.chain(sized(segment, rows), makes=lambda index: rows[index].diffused)
            return
        batcher: Batcher[PendingFrame] = Batcher(self.cfg.render.batch_size)
        for frame in sized(source, rows):
            row = rows[frame.index]
            if not row.diffused:
                continue
            origin = FrameOrigin.of(source.info, frame)
            found = producer.prepare(row, frame.image, origin, None, frame.digest, frame.mask)
            for batch in batcher.add(found) if isinstance(found, PendingFrame) else []:
                dispatch.frames(batch)
            if producer.stop is not None:
                producer.stop.check()
        for batch in batcher.flush():
            dispatch.frames(batch)

    def render_unit(self, producer: FrameProducer, unit: WorkUnit, context: UnitContext) -> None:
        if isinstance(unit, FramesUnit):
            producer.render_batch(unit.frames)
        elif unit.reads:
            source = FrameList(context.info, context.selection, unit.frames)
            CarriedSpan(producer, context, self.flows, list(sized(source, context.rows))).render()
        else:
            assert self.keyframes is not None, "diffused frames chain only with coherence"
            self.keyframes.render_unit(producer, unit, context)

    def close(self) -> None:
        if self.keyframes is not None:
            self.keyframes.close()


def spans(frames: Iterable[Frame], rows: list[PlanRow]) -> Iterator[tuple[list[Frame], list[int]]]:
    """The spans of carried frames, each with the source frames of the diffused frames it
    is made from (when readable), and the indices of those diffused frames."""
    opening: Frame | None = None  # the last diffused frame passed
    group: list[Frame] = []

    def span(closing: Frame | None) -> tuple[list[Frame], list[int]]:
        row = rows[group[0].index]
        made_from = row.carried_from
        ends = [
            frame for frame in (opening, closing) if frame is not None and frame.index in made_from
        ]
        return sorted([*ends, *group], key=lambda frame: frame.index), made_from

    for frame in frames:
        row = rows[frame.index]
        if row.diffused:
            if group:
                yield span(frame)
                group = []
            opening = frame
            continue
        if group and rows[group[0].index].carried_from != row.carried_from:
            yield span(None)
            group = []
        group.append(frame)
    if group:
        yield span(None)


@dataclass
class Side:
    """A diffused frame a span is carried from: its index, key and output."""

    index: int
    key: str
    output: np.ndarray


class CarriedSpan:
    """One span's carried frames, rendered in order (see the module notes)."""

    def __init__(
        self,
        producer: FrameProducer,
        context: UnitContext,
        flows: FlowCache,
        frames: list[Frame],
    ) -> None:
        self.producer = producer
        self.context = context
        self.rows = context.rows
        self.flows = flows
        self.frames = {frame.index: frame for frame in frames}
        carried = [frame for frame in frames if not self.rows[frame.index].diffused]
        self.carried = carried
        made_from = self.rows[carried[0].index].carried_from
        self.earlier = self.side(made_from[0])
        self.later = self.side(made_from[1]) if len(made_from) > 1 else None
        digest = hashlib.sha256()
        for frame in frames:
            digest.update(f"{frame.index}:{frame.digest or image_digest(frame.image)}".encode())
        self.span_digest = digest.hexdigest()

    def side(self, index: int) -> Side | None:
        """The diffused frame ``index`` as this span finds it: its current record, made
        from the source frame the span has (None: unreadable, or not made)."""
        frame = self.frames.get(index)
        record = self.producer.manifest.records.get(index)
        if frame is None or record is None or not self.current(record, frame):
            return None
        path = self.producer.folder.path / record.file
        try:
            output = np.asarray(Image.open(path).convert("RGB"))
        except OSError:
            return None
        return Side(index, record.key, output)

    def current(self, record: FrameRecord, frame: Frame) -> bool:
        """Whether ``record`` is this plan's diffused frame of ``frame``."""
        digest = frame.digest or image_digest(frame.image)
        return record.input == digest and same_look(record.row, self.rows[frame.index])

    def reaches(self, side: Side | None, index: int) -> bool:
        """Whether frame ``index`` can be carried from ``side``: every source frame between
        them is there (the flow runs through each)."""
        if side is None:
            return False
        low, high = sorted((side.index, index))
        return all(number in self.frames for number in range(low, high + 1))

    def dependencies(self, sides: list[Side]) -> str:
        """What a carried frame is made from besides its row and source: part of its key."""
        names = "|".join(f"{'from' if side is self.earlier else 'to'}={side.key}" for side in sides)
        return f"{CARRIED}|{names}|span={self.span_digest}"

    def render(self) -> None:
        """Key every carried frame, reuse what is current, make the rest."""
        producer = self.producer
        pending: list[tuple[Frame, PendingFrame, list[Side]]] = []
        for frame in self.carried:
            row = self.rows[frame.index]
            sides = [s for s in (self.earlier, self.later) if s and self.reaches(s, frame.index)]
            origin = FrameOrigin.of(self.context.info, frame)
            dependencies = self.dependencies(sides) if sides else ""
            found = producer.prepare(
                row, frame.image, origin, None, frame.digest, frame.mask, dependencies
            )
            if isinstance(found, PendingFrame):
                pending.append((frame, found, sides))
        if not pending:
            return
        later = self.later_warps([(frame.index, sides) for frame, _, sides in pending])
        earlier = self.earlier_warps([(frame.index, sides) for frame, _, sides in pending])
        for frame, found, sides in pending:
            index = frame.index
            if not sides:  # nothing to carry from: the frame is diffused on its own
                log.info("cadence: frame %d has no diffused frame to carry from: diffused", index)
                producer.finish(found, producer.masked.render(found.input()))
            else:
                warps = []
                if index in earlier:
                    warps.append((earlier.pop(index), self.nearness(index, self.earlier)))
                if index in later:
                    warps.append((later.pop(index), self.nearness(index, self.later)))
                output, diffused = self.finished(found, carry_between(warps))
                producer.finish(found, output, diffused=diffused)
            if producer.stop is not None:
                producer.stop.check()

    def nearness(self, index: int, side: Side | None) -> float:
        """How near frame ``index`` is to ``side`` in time (1 at it, 0 at the other side)."""
        assert side is not None
        if self.earlier is None or self.later is None:
            return 1.0
        gap = self.later.index - self.earlier.index
        return 1.0 - abs(index - side.index) / gap

    def pair(self, index: int) -> FlowPair:
        """The source flow between frames ``index - 1`` and ``index``."""
        return self.flows.pair(index, self.frames[index - 1].image, self.frames[index].image)

    def earlier_warps(self, wanted: list[tuple[int, list[Side]]]) -> dict[int, Warped]:
        """The earlier diffused frame warped onto each wanted frame that reaches it."""
        side = self.earlier
        targets = {index for index, sides in wanted if side is not None and side in sides}
        warps: dict[int, Warped] = {}
        if side is None or not targets:
            return warps
        since: FlowPair | None = None
        for index in range(side.index + 1, max(targets) + 1):
            pair = self.pair(index)
            since = pair if since is None else chain_pairs(since, pair)
            if index in targets:
                warps[index] = warp_from_earlier(side.output, since)
        return warps

    def later_warps(self, wanted: list[tuple[int, list[Side]]]) -> dict[int, Warped]:
        """The later diffused frame warped onto each wanted frame that reaches it."""
        side = self.later
        targets = {index for index, sides in wanted if side is not None and side in sides}
        warps: dict[int, Warped] = {}
        if side is None or not targets:
            return warps
        until: FlowPair | None = None  # from the frame to the later diffused frame
        for index in range(side.index - 1, min(targets) - 1, -1):
            pair = self.pair(index + 1)
            until = pair if until is None else chain_pairs(pair, until)
            if index in targets:
                warps[index] = warp_from_later(side.output, until)
        return warps

    def finished(self, found: PendingFrame, carried: Carried) -> tuple[np.ndarray, bool]:
        """The carried frame with what neither diffused frame covers filled (by the repair
        pass where it is on and needed), put into its source frame outside its mask; and
        whether a UNet call made part of it."""
        strength = found.row.repair_strength or 0.0
        repaired = strength > 0 and carried.needs_repair
        if repaired:
            init = carried.filled(found.image)  # the source frame where nothing covers it
            call = replace(found.input(init), row=replace(found.row, strength=strength))
            output = carried.filled(self.producer.masked.render(call))
        else:
            output = carried.finished()
        return MaskedRender.composited(found.input(), output), repaired
