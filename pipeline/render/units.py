"""Work units: what one worker renders, carrying everything it needs to do so alone.

The driver of a render (the process holding the run lock) reads the input, computes
control maps and frame keys, and decides what is reused; a worker only renders. What a
worker gets is one of:

* :class:`FramesUnit`: independent frames (a plain run), one batch of them; each is a
  :class:`PendingFrame`, whose key, input pixels and control maps the driver already
  has.
* :class:`ChainUnit`: frames that depend on each other and must render in order on
  one worker: a coherence segment (its frames' keys chain, so the worker computes
  them), or the whole of a loopback animation (every frame is made from the one
  before, so it is a single unit).

Which units a render makes is its strategy's choice (:mod:`pipeline.render.strategies`).
Shipped units carry pixels, not paths: the input is decoded once, by the driver, however
many workers there are. They are plain picklable data (numpy arrays, plan rows, manifest
records), which is what Ray ships; in the driver's own process a chain's frames are
handed over lazily, as they are decoded.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.control.maps import UnitMap
from pipeline.plan.rows import PlanRow
from pipeline.records.manifest import FrameRecord
from pipeline.render.batch import FrameInput
from pipeline.source.base import Frame, FrameMask, Selection, Source, SourceInfo


@dataclass(frozen=True)
class FrameOrigin:
    """Where a frame's input came from, as its metadata and manifest line say."""

    path: str  # the input
    index: int  # the source frame's number in the input (-1: made from an earlier output)
    time: float  # seconds into the input
    name: str | None  # the source file's name (image inputs)
    loopback_from: int | None = None  # loopback: the frame whose output this one moves

    @classmethod
    def of(cls, info: SourceInfo, frame: Frame) -> FrameOrigin:
        """The origin of a frame rendered from its own source frame."""
        return cls(str(info.path), frame.source_index, frame.time, frame.name)

    def metadata(self) -> dict[str, object]:
        """As the PNG's ``rotoscope`` chunk records it (``loopback_from`` when set)."""
        fields = asdict(self)
        if self.loopback_from is None:
            del fields["loopback_from"]
        return fields


@dataclass
class PendingFrame:
    """A frame that needs rendering, with everything its file and manifest line record."""

    row: PlanRow
    image: np.ndarray  # the input frame (the init image, unless a chain replaces it)
    origin: FrameOrigin
    digest: str  # of ``image``
    control: str  # its control maps' keys
    dependencies: str  # temporal coherence: the earlier frames it is made from
    key: str
    reason: str  # why it is rendered ("new", "changed strength", ...)
    maps: list[np.ndarray] | None = None  # control map pixels, one per ControlNet unit
    mask: FrameMask | None = None  # where it is rendered, with a mask

    @property
    def blank(self) -> bool:
        """Its mask is empty: the frame is its source frame, with no diffusion."""
        return self.mask is not None and self.mask.empty

    def input(self, init: np.ndarray | None = None) -> FrameInput:
        """The frame as the render takes it, from ``init`` (default: its own input)."""
        return FrameInput(
            self.row,
            self.image if init is None else init,
            self.maps,
            self.mask.pixels if self.mask is not None else None,
            self.image,
        )


@dataclass
class FramesUnit:
    """Independent frames rendered as one batch."""

    number: int
    frames: list[PendingFrame]

    @property
    def indices(self) -> list[int]:
        return [frame.row.index for frame in self.frames]


@dataclass
class ShippedMap:
    """One unit's control map for one frame, computed by the driver."""

    key: str
    path: Path  # where the driver cached it
    pixels: np.ndarray

    def as_unit_map(self) -> UnitMap:
        return UnitMap(self.key, self.path, False, lambda: self.pixels)


@dataclass
class ChainUnit:
    """Frames rendered in order, one after the other: a coherence segment, or a loopback.

    ``frames`` are the source frames (a loopback has only its first; a list once
    shipped); ``indices`` the output frames the chain makes; ``maps`` the control maps
    by frame index; ``records`` the manifest records of these frames a worker may reuse
    (a segment is shipped whole, and its current frames are reused there, so the
    chain's earlier frames are at hand when a later one renders), with the current
    records of ``reads``, frames made by earlier units that this one reads (a cadence's
    diffused frames, for the frames carried between them).
    """

    number: int
    frames: Iterable[Frame]
    indices: list[int]
    maps: dict[int, list[ShippedMap]] = field(default_factory=dict)
    records: list[FrameRecord] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)

    def without(self, done: set[int], records: Sequence[FrameRecord]) -> ChainUnit:
        """The unit again after a worker died part way through: whole (a chain restarts
        from its first frame), with the records of the frames it did finish, so they
        are reused instead of rendered twice."""
        return ChainUnit(
            self.number, self.frames, self.indices, self.maps,
            [*self.records, *(record for record in records if record.index in done)],
            self.reads,
        )  # fmt: skip


WorkUnit = FramesUnit | ChainUnit


class ShippedMaps:
    """The control maps of a :class:`ChainUnit`, served like ``ControlMaps`` serves them;
    a frame shipped without maps (a loopback's: they read its img2img input) has its
    maps made by ``fallback`` (the worker's own ``ControlMaps``)."""

    def __init__(
        self, maps: dict[int, list[ShippedMap]], fallback: ControlSource | None = None
    ) -> None:
        self._maps = maps
        self.fallback = fallback

    def maps(self, index: int, input_image: np.ndarray) -> list[UnitMap]:
        if index not in self._maps and self.fallback is not None:
            return self.fallback.maps(index, input_image)
        return [shipped.as_unit_map() for shipped in self._maps.get(index, [])]


class ControlSource(Protocol):
    """Where a frame's control maps come from: ``ControlMaps`` in the driver, the maps
    shipped with a work unit on a worker (:class:`ShippedMaps`)."""

    def maps(self, index: int, input_image: np.ndarray) -> list[UnitMap]: ...


class FrameList(Source):
    """A chain's frames as a :class:`Source` (a worker's share of the input, or the frames
    of a segment as the driver decodes them).

    ``info`` and ``selection`` are the whole input's, so sizes and rates read the same.
    """

    def __init__(self, info: SourceInfo, selection: Selection, frames: Iterable[Frame]) -> None:
        super().__init__(info, selection)
        self.frames = frames

    def _frames(self) -> Generator[Frame, None, None]:
        for frame in self.frames:
            self.frames_read += 1
            yield frame
