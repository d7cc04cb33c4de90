"""The loopback strategy (Deforum's 2D mode): frame 0 from the first source frame, every
later frame from the output before it, moved by the row's camera step.

Each later input is made by :class:`pipeline.animation.loopback.LoopbackInputs`. In
loopback the input pixels come from the previous output, so a change to one frame
changes the keys of every frame after it, and only those re-render. The whole animation
is one chain: one unit, on one worker.
"""

from __future__ import annotations

from pipeline.animation.loopback import CameraStep, LoopbackInputs
from pipeline.config.schema import AnimationConfig
from pipeline.errors import RotoscopeError
from pipeline.plan.rows import PlanRow
from pipeline.render.producer import FrameProducer, check_size
from pipeline.render.strategies.base import Dispatch, RenderStrategy, UnitContext
from pipeline.render.units import ChainUnit, FrameOrigin, WorkUnit
from pipeline.source.base import Source


def camera_step(row: PlanRow) -> CameraStep:
    """The row's 2D camera move (unset values: no move)."""
    defaults = CameraStep()

    def value(given: float | None, default: float) -> float:
        return default if given is None else given

    return CameraStep(
        zoom=value(row.zoom, defaults.zoom),
        angle=value(row.angle, defaults.angle),
        translation_x=value(row.translation_x, defaults.translation_x),
        translation_y=value(row.translation_y, defaults.translation_y),
        center_x=value(row.transform_center_x, defaults.center_x),
        center_y=value(row.transform_center_y, defaults.center_y),
    )


class LoopbackStrategy(RenderStrategy):
    """Every frame from the one before (see the module notes)."""

    sequential = "loopback renders each frame from the one before"

    def __init__(self, animation: AnimationConfig) -> None:
        self.animation = animation

    def feed(
        self, producer: FrameProducer, rows: list[PlanRow], source: Source, dispatch: Dispatch
    ) -> None:
        """The first source frame and every row, as one chain."""
        first = next(iter(source), None)
        source.close()  # the rest of the source is not read
        if first is None:
            raise RotoscopeError(f"input.path '{source.info.path}' has no frame to start from")
        check_size(rows[0], first.image.shape)
        dispatch.chain([first], [row.index for row in rows])

    def render_unit(self, producer: FrameProducer, unit: WorkUnit, context: UnitContext) -> None:
        assert isinstance(unit, ChainUnit), "the loopback strategy makes one chain"
        first = next(iter(unit.frames))
        info = context.info
        inputs = LoopbackInputs(self.animation.border, self.animation.color_coherence)
        previous = None
        for index in unit.indices:
            row = context.rows[index]
            if previous is None:
                image = first.image
                origin = FrameOrigin(str(info.path), first.source_index, 0.0, first.name, None)
            else:
                image = inputs.next_input(previous, camera_step(row), row.noise or 0.0, row.seed)
                origin = FrameOrigin(
                    str(info.path), -1, index / info.fps if info.fps else 0.0, first.name, index - 1
                )
            previous = producer.produce(row, image, origin, need_output=True)
            assert previous is not None  # asked for
            inputs.output(previous)
