"""What a source is: the Source interface, the frames it yields and what it describes.

``SourceInfo`` is also what the plan stage records in the run folder's ``source.json``
and what later stages read back (:meth:`SourceInfo.read`), so the render and assemble
stages know the input's size, rates and audio without probing it again.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from pipeline.atomic import write_text
from pipeline.errors import RotoscopeError


@dataclass(frozen=True)
class FrameMask:
    """Where a frame is rendered: 255 is rendered, 0 keeps the source frame's pixels, grey
    levels blend. ``digest`` is the hash of the pixels (it joins the frame's key, so an
    edited mask re-renders exactly the frames whose mask changed)."""

    pixels: np.ndarray  # (H, W) uint8, the frame's size
    digest: str

    @property
    def empty(self) -> bool:
        """Nothing of the frame is rendered: it is its source frame, with no diffusion."""
        return not self.pixels.any()


@dataclass(frozen=True)
class Frame:
    """One selected input frame.

    ``index`` counts selected frames from 0 (it is the output frame number);
    ``source_index`` is the frame's position in the source before selection;
    ``time`` is its timestamp in seconds in the source; ``name`` is the source file
    name for image inputs (used to keep names when writing an image folder) and
    ``None`` for video; ``image`` is an RGB ``uint8`` array of shape (H, W, 3), already
    resized to the render size. ``digest`` is the hash of its pixels when a reader
    computed it ahead (:class:`pipeline.source.prefetch.Prefetch`), else None. ``mask``
    is where the frame is rendered, when masks are on (:mod:`pipeline.source.masks`).
    """

    index: int
    source_index: int
    time: float
    name: str | None
    image: np.ndarray
    digest: str | None = None
    mask: FrameMask | None = None


class SourceKind(Enum):
    """What the input is."""

    video = "video"  # a video file, decoded by one streaming ffmpeg
    folder = "folder"  # a folder of images, in natural order
    image = "image"  # one image (repeated input.repeat times)
    none = "none"  # no input: a loopback made from noise (pipeline.source.blank)


@dataclass(frozen=True)
class SourceInfo:
    """What the rest of the pipeline needs to know about the input, before decoding."""

    kind: SourceKind
    path: Path
    width: int  # render size after resize (multiples of 8)
    height: int
    source_width: int  # displayed size (after rotation)
    source_height: int
    source_fps: float  # video: average frame rate; images: input.fps
    fps: float  # source_fps / every
    start_time: float  # seconds into the source of the first selected frame
    expected_frames: int | None  # best estimate of how many frames iteration yields
    has_audio: bool
    rotation: int  # degrees (clockwise) applied to make the picture upright
    # A photo folder rendered as images keeps each image's own size and orientation:
    # the render size of each selected frame, in order (None: every frame is width x height)
    frame_sizes: list[tuple[int, int]] | None = None
    # ... and each image's own upright size (None: every frame is source_width x
    # source_height), which such frames are delivered at
    frame_source_sizes: list[tuple[int, int]] | None = None

    def size_of(self, index: int) -> tuple[int, int]:
        """The render size of selected frame ``index``."""
        if self.frame_sizes is not None and index < len(self.frame_sizes):
            return self.frame_sizes[index]
        return self.width, self.height

    def source_size_of(self, index: int) -> tuple[int, int]:
        """The upright size of selected frame ``index`` in the source."""
        if self.frame_source_sizes is not None and index < len(self.frame_source_sizes):
            return self.frame_source_sizes[index]
        return self.source_width, self.source_height

    def write(self, path: Path) -> None:
        """Record this description as JSON (the run folder's ``source.json``)."""
        data = asdict(self)
        data["path"] = str(self.path)
        data["kind"] = self.kind.value
        write_text(path, json.dumps(data, indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> SourceInfo:
        """The description the plan stage recorded at ``path``."""
        if not path.exists():
            raise RotoscopeError(f"no {path.name} in {path.parent}", "run the plan stage first")
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            data["path"] = Path(data["path"])
            data["kind"] = SourceKind(data["kind"])
            for sizes in ("frame_sizes", "frame_source_sizes"):
                if data.get(sizes) is not None:
                    data[sizes] = [(int(w), int(h)) for w, h in data[sizes]]
            return cls(**data)
        except (ValueError, TypeError, KeyError) as exc:
            raise RotoscopeError(
                f"{path} is not a source description ({exc})", "run the plan stage again"
            ) from exc


@dataclass(frozen=True)
class Selection:
    """Which source frames to keep: ``range(start, stop, every)``, at most ``limit``."""

    start: int
    stop: int | None  # exclusive; None reads to the end of the source
    every: int
    limit: int | None

    def indices(self, total: int) -> range:
        """Source frame numbers selected from a source of ``total`` frames."""
        stop = total if self.stop is None else min(self.stop, total)
        return range(self.start, stop, self.every)[: self.limit]

    def count(self, total: int | None) -> int | None:
        """How many frames are selected; None when the source length and stop are unknown."""
        if total is None and self.stop is None:
            return self.limit
        stop = self.stop if total is None else total
        assert stop is not None  # both unknown returned above
        return len(self.indices(stop))


class Source(ABC):
    """A lazily decoded input. Iterate for frames; ``close`` (or ``with``) to clean up.

    Each ``iter()`` starts a new pass from the first selected frame (and ends any
    pass still open). ``frames_read`` counts the frames yielded by the current pass;
    ``ended_early`` becomes True when a video stopped short of
    ``info.expected_frames``.
    """

    def __init__(self, info: SourceInfo, selection: Selection) -> None:
        self.info = info
        self.selection = selection
        self.frames_read = 0
        self.ended_early = False
        self.failures: list[tuple[int, str]] = []  # (frame index, what was wrong) this pass
        self.repeats: list[tuple[int, str]] = []  # ... of those, frames repeated, not skipped
        # Warnings about the input as a whole (files skipped, sizes that differ): the plan
        # stage logs them once, however often the source is opened.
        self.notes: list[str] = []
        self._pass: Generator[Frame, None, None] | None = None

    def __iter__(self) -> Iterator[Frame]:
        self.close()
        self.frames_read = 0
        self.ended_early = False
        self.failures = []
        self.repeats = []
        self._pass = self._frames()
        return self._pass

    def close(self) -> None:
        """End the current pass; for a video this kills ffmpeg if it is still running."""
        if self._pass is not None:
            self._pass.close()
            self._pass = None

    def count_frames(self, on_frame: Callable[[], None] | None = None) -> int:
        """How many frames a full pass yields, for planning (``on_frame`` is called after
        each decoded frame: a safe point to stop at).

        Exact: images are counted from the file list; a video is decoded once (frames
        dropped as they come) because its container duration is only an estimate (an
        audio track that outlasts the picture, a truncated file), and a plan that
        promises frames the video does not have, or misses frames it has, would be
        wrong at the end of the clip. Decoding is cheap next to rendering.
        """
        if self.info.kind is not SourceKind.video and self.info.expected_frames is not None:
            return self.info.expected_frames
        count = 0
        for _ in self:
            count += 1
            if on_frame is not None:
                on_frame()
        self.close()
        return count

    def frame_names(self) -> list[str] | None:
        """The file name of each selected frame, by output index (an image folder's, whose
        frames are keyed by their file); None for a video."""
        return None

    @abstractmethod
    def _frames(self) -> Generator[Frame, None, None]:
        """Yield the selected frames, RGB uint8 at ``info.width`` x ``info.height``."""

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
