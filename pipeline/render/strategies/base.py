"""The render-strategy interface: how a way of making frames splits into units of work.

A strategy is one way of making frames (plain, loopback, coherent, cadence), one class
each. Both executors drive it through the same two calls, so a new strategy needs
no branch in either:

* :meth:`RenderStrategy.feed` runs where the run lock is held (the driver): it walks the
  source in frame order, reuses what is current, and hands the rest to a
  :class:`Dispatch` as units of work: a batch of independent frames
  (:class:`~pipeline.render.units.FramesUnit`) or a chain of frames that depend on
  each other (:class:`~pipeline.render.units.ChainUnit`);
* :meth:`RenderStrategy.render_unit` renders one unit, in the driver's process (the local
  executor's dispatch calls it at once) or on a Ray worker (the unit was shipped there).

The local dispatch hands a chain its frames lazily, as they are decoded; the Ray
dispatch decodes a chain's frames into the unit before shipping it. A strategy whose
units depend on other units' frames (cadence: the frames between two diffused frames
are made from both) hands over the units they depend on first, waits for them
(:meth:`Dispatch.wait`), and names what it reads (``reads``).

Masks are not a strategy beside these but a composition every strategy renders through:
a frame's mask comes with the frame (:mod:`pipeline.source.masks`), a strategy hands it
to the producer with the frame, and the producer renders through
:class:`pipeline.render.masking.render.MaskedRender`. So masks compose with plain
batches, coherent chains and a cadence strategy alike (its in-between frames, made
without a diffusion call, are put into their source frames by
:meth:`~pipeline.render.masking.render.MaskedRender.composited`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from pipeline.plan.rows import PlanRow
from pipeline.render.producer import FrameProducer
from pipeline.render.units import PendingFrame, WorkUnit
from pipeline.source.base import Frame, Selection, Source, SourceInfo


class Dispatch(Protocol):
    """Where a strategy's units go: rendered here at once, or shipped to a worker."""

    def frames(self, batch: list[PendingFrame]) -> None:
        """Independent frames (already keyed, their writer places taken), as one batch."""
        ...

    def chain(
        self,
        frames: Iterable[Frame],
        indices: Sequence[int] | None = None,
        makes: Callable[[int], bool] | None = None,
        reads: Sequence[int] = (),
        maps_ahead: bool = True,
    ) -> None:
        """Frames that render in order, one after the other; ``indices`` are the output
        frames the chain makes (by default the frames' own, those ``makes`` accepts when
        given); ``reads`` the frames earlier units made that it reads (their current
        records travel with it: call :meth:`wait` first). ``maps_ahead``: the control
        maps can be made from ``frames`` before the chain renders (not for a loopback,
        whose maps read each frame's img2img input: its worker makes them)."""
        ...

    def wait(self) -> None:
        """Return once every unit handed over so far is rendered and its frames are
        recorded in the manifest: a strategy whose later units read frames earlier units
        made (a cadence's carried frames, made from its diffused ones) waits between them."""
        ...


@dataclass(frozen=True)
class UnitContext:
    """What rendering a unit needs besides its frames: the plan's rows, the input's
    description and selection (a chain's frames become a source with them), and a way to
    read the unit's source frames again (a coherence chain replays to rebuild lost
    state)."""

    rows: list[PlanRow]
    info: SourceInfo
    selection: Selection
    reopen: Callable[[], AbstractContextManager[Source]]


class RenderStrategy(ABC):
    """One way of making frames (see the module notes)."""

    # Why frames of this strategy render one per pipeline call (``render.batch_size``
    # cannot apply), for the log; None where they batch.
    sequential: str | None = None

    @abstractmethod
    def feed(
        self, producer: FrameProducer, rows: list[PlanRow], source: Source, dispatch: Dispatch
    ) -> None:
        """Walk ``source`` and hand every frame that needs rendering to ``dispatch``."""

    @abstractmethod
    def render_unit(self, producer: FrameProducer, unit: WorkUnit, context: UnitContext) -> None:
        """Render one unit this strategy's :meth:`feed` made."""

    def close(self) -> None:  # noqa: B027 (most strategies hold nothing)
        """The render is over (or stopped): release what the strategy holds."""
