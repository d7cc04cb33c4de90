"""The plain strategy: every frame from its own source frame, independent of the others.

Stylizing a clip or a folder. Frames that can share a pipeline call go in batches of up
to ``render.batch_size`` (see :mod:`pipeline.render.batch`); each batch is one unit, so
the Ray executor spreads batches over its workers.
"""

from __future__ import annotations

from pipeline.plan.rows import PlanRow
from pipeline.render.batch import Batcher
from pipeline.render.producer import FrameProducer, check_size
from pipeline.render.strategies.base import Dispatch, RenderStrategy, UnitContext
from pipeline.render.units import FrameOrigin, FramesUnit, PendingFrame, WorkUnit
from pipeline.source.base import Source


class PlainStrategy(RenderStrategy):
    """Independent frames, batched where they can share a call."""

    def __init__(self, batch_size: int = 1) -> None:
        self.batch_size = batch_size

    def feed(
        self, producer: FrameProducer, rows: list[PlanRow], source: Source, dispatch: Dispatch
    ) -> None:
        """Key every frame, reuse what is current, batch the rest; a stop request is
        honoured between frames."""
        batcher: Batcher[PendingFrame] = Batcher(self.batch_size)
        for frame in source:
            if frame.index >= len(rows):
                break
            row = rows[frame.index]
            check_size(row, frame.image.shape)
            found = producer.prepare(
                row, frame.image, FrameOrigin.of(source.info, frame), None, frame.digest,
                frame.mask,
            )  # fmt: skip
            for batch in batcher.add(found) if isinstance(found, PendingFrame) else []:
                dispatch.frames(batch)
            if producer.stop is not None:
                producer.stop.safe_point("render")
        for batch in batcher.flush():
            dispatch.frames(batch)
        producer.note_source_end(rows, source)

    def render_unit(self, producer: FrameProducer, unit: WorkUnit, context: UnitContext) -> None:
        assert isinstance(unit, FramesUnit), "the plain strategy makes batches only"
        producer.render_batch(unit.frames)
