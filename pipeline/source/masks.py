"""Masks, a source of their own: every frame's mask, aligned with the input and shaped.

A frame's mask comes from one of (``mask.*``, :class:`~pipeline.config.schema.MaskConfig`):

* ``mask.path``, a video, a folder of images or one image, aligned with the input by
  the input's own selection: the mask frame of input frame ``n`` is frame ``n`` of the
  mask (a folder in natural order, like the input), except a mask video at another frame
  rate than an input video, whose frame at the input frame's time is taken; one image
  serves every frame. Mask frames are resized to the frame's size by the input's
  ``resize_mode`` (padding black: nothing rendered there; enlarged linearly, so no
  ringing reaches past an edge), so a matte exported at half the resolution lines up;
* ``mask.key``, a chroma key of each source frame, or ``mask.luma``, its brightness range;

then combined by ``mask.expression`` (Deforum's composable masks,
:mod:`pipeline.source.mask_expression`) and shaped by the frame's plan values
(:mod:`pipeline.source.mask_shape`). White is what is rendered.

:class:`MaskedSource` attaches each frame's mask to the frame itself, so a prefetching
reader makes the masks ahead of the renderer, and a mask travels with its frame to
whichever worker renders it. :func:`check_masks` is the plan stage's look at everything
that can be wrong with them, before anything renders. The render stage keeps each mask
in the run folder under its digest (:func:`save_mask`), named by its frame's manifest
line, where the assemble stage (alpha, mattes) and the metrics stage read it back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pipeline.atomic import atomic_path
from pipeline.config.schema import BadFramePolicy, InputConfig, MaskConfig
from pipeline.errors import RotoscopeError
from pipeline.records.manifest import image_digest
from pipeline.source.base import Frame, FrameMask, Selection, Source, SourceInfo, SourceKind
from pipeline.source.images import is_image, list_images, load_image, upright_size
from pipeline.source.mask_expression import KeyedMasks, MaskLookup, parse_keyed_masks
from pipeline.source.mask_shape import (
    MaskShape,
    grey,
    key_mask,
    luma_mask,
    parse_key_color,
    shape_mask,
)
from pipeline.source.probe import VideoProbe, probe_video
from pipeline.source.resize import flatten_alpha, resize_frame
from pipeline.source.video import VideoReader

BLACK = (0, 0, 0)
# A mask whose aspect ratio differs more than this from the input's cannot line up with it.
ASPECT_TOLERANCE = 0.01
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif"})


def check_mask_options(cfg: MaskConfig) -> None:
    """What is wrong with ``mask.*`` on its face (no file is read): run where the config is
    composed."""
    given = [key for key in ("path", "key", "luma") if getattr(cfg, key) is not None]
    if len(given) > 1:
        raise RotoscopeError(
            f"mask.{given[0]} and mask.{given[1]} both give the frame's mask",
            "choose one, and combine others with mask.expression, e.g. {mask} & [other.png]",
        )
    if cfg.key is not None:
        parse_key_color(cfg.key)
    for name in ("key_tolerance", "key_softness"):
        value = getattr(cfg, name)
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise RotoscopeError(f"mask.{name}={value:g} is outside 0..1", "a share of 255")
    if cfg.luma is not None and not (
        len(cfg.luma) == 2 and 0.0 <= cfg.luma[0] <= cfg.luma[1] <= 1.0
    ):
        raise RotoscopeError(
            f"mask.luma={list(cfg.luma)} is not a brightness range",
            "give [low, high] within 0..1, for example mask.luma=[0.8,1.0] for the highlights",
        )
    if cfg.padding < 0:
        raise RotoscopeError(f"mask.padding={cfg.padding} is negative", "pixels, 0 or more")
    if cfg.expression is not None:
        expression = parse_keyed_masks(cfg.expression)
        if expression.uses_own_mask() and not given:
            raise RotoscopeError(
                f"mask.expression '{cfg.expression}' uses {{mask}}, but no mask is given",
                "set mask.path, mask.key or mask.luma, or combine only [image files]",
            )


def mask_input(cfg: InputConfig, path: str) -> InputConfig:
    """The input config that opens ``mask.path`` whole, at its own size (mask frames are
    picked and resized per input frame)."""
    return replace(
        cfg, path=path, start=None, end=None, every=1, max_frames=None, repeat=1, width=None,
        height=None, scale=None, background="#000000", on_bad_frame=BadFramePolicy.stop,
    )  # fmt: skip


@dataclass(frozen=True)
class MaskFile:
    """``mask.path``: what it is, and which of its frames goes with which input frame."""

    path: Path
    kind: SourceKind
    files: tuple[Path, ...]  # a folder's images in natural order (one for an image)
    probe: VideoProbe | None  # a video's
    by_time: bool  # a video at another rate than the input video: picked by time

    @classmethod
    def open(cls, text: str, info: SourceInfo) -> MaskFile:
        """Look at ``mask.path`` (headers only); a one-line error for what is unusable."""
        path = Path(text).expanduser()
        if not path.exists():
            raise RotoscopeError(
                f"mask.path '{text}' does not exist",
                "give a matte video, a folder of mask images or one mask image",
            )
        if path.is_dir():
            files, _ = list_images(path)
            if not files:
                raise RotoscopeError(f"mask.path folder '{text}' contains no images")
            return cls(path, SourceKind.folder, tuple(files), None, False)
        if is_image(path):
            return cls(path, SourceKind.image, (path,), None, False)
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise RotoscopeError(
                f"mask.path '{text}' is neither an image nor a video ({path.suffix})",
                "give a matte video, a folder of mask images or one mask image",
            )
        probe = probe_video(path)
        by_time = info.kind is SourceKind.video and float(probe.fps) != info.source_fps
        return cls(path, SourceKind.video, (), probe, by_time)

    def number(self, source_index: int, time: float) -> int:
        """The mask frame of the input frame at ``source_index`` (``time`` s)."""
        if self.kind is SourceKind.image:
            return 0
        if self.by_time:
            assert self.probe is not None
            return math.floor(time * float(self.probe.fps) + 1e-6)
        return source_index

    def size(self) -> tuple[int, int] | None:
        """The mask's displayed size (its first image's, for a folder)."""
        if self.probe is not None:
            return self.probe.display_size
        return upright_size(self.files[0])

    def count(self) -> int:
        """How many frames the mask has (a video is decoded once to count them exactly)."""
        if self.probe is None:
            return len(self.files) if self.kind is SourceKind.folder else 1
        return sum(1 for _ in self.reader())

    def reader(self) -> VideoReader:
        assert self.probe is not None
        return VideoReader(self.probe, 0, None, 1, None)


def check_masks(cfg: MaskConfig, info: SourceInfo, selection: Selection, count: int) -> None:
    """The plan stage's checks of the masks of ``count`` frames: ``mask.path`` readable, as
    long as the input's selection, each mask of its frame's aspect ratio; the expression's
    files."""
    check_mask_options(cfg)
    if cfg.expression is not None:
        for file in parse_keyed_masks(cfg.expression).files():
            _check_image(file, "mask.expression", info, 0)
    if cfg.path is None:
        return
    mask = MaskFile.open(cfg.path, info)
    sources = [selection.start + index * selection.every for index in range(count)]
    numbers = [mask.number(source, source / info.source_fps) for source in sources]
    have = mask.count()
    if numbers[-1] >= have:
        raise RotoscopeError(
            f"mask.path '{cfg.path}' has {have} frames but the input's {count} selected "
            f"frames need {numbers[-1] + 1}",
            "give a mask frame for every input frame, or trim the input (input.end, "
            "input.max_frames)",
        )
    if mask.kind is SourceKind.folder:
        _check_numbering(cfg.path, mask.files[: numbers[-1] + 1])
        for index, number in enumerate(numbers):
            _check_image(mask.files[number], "mask.path", info, index)
    else:
        _check_aspect(mask.path, mask.size(), info, 0, "mask.path")


def _check_numbering(folder: str, files: Sequence[Path]) -> None:
    """Masks pair with frames by their order in the folder: where the files are numbered
    and a number is missing, every frame after the gap would take the next frame's mask,
    so a gap among the files in use is refused rather than rendered misaligned."""
    numbers = [_trailing_number(file.stem) for file in files]
    if None in numbers:
        return  # not a numbered sequence: the natural order is all there is
    for position in range(1, len(files)):
        before, after = numbers[position - 1], numbers[position]
        assert before is not None and after is not None
        if after - before != 1:
            raise RotoscopeError(
                f"mask.path '{folder}': the numbered masks skip from {files[position - 1].name} "
                f"to {files[position].name}, so every frame after the gap would take another "
                "frame's mask",
                "give every frame its mask file (a copy of a neighbour's will do), or trim the "
                "input before the gap (input.end, input.max_frames)",
            )


def _trailing_number(stem: str) -> int | None:
    """The number a file name ends with (``mask_0042`` -> 42), or None."""
    digits = len(stem) - len(stem.rstrip("0123456789"))
    return int(stem[-digits:]) if digits else None


def _check_image(file: Path, key: str, info: SourceInfo, index: int) -> None:
    """A mask image exists, reads, and can line up with frame ``index``."""
    if not file.is_file():
        raise RotoscopeError(f"{key}: mask image '{file}' does not exist")
    size = upright_size(file)
    if size is None or file.stat().st_size == 0:
        raise RotoscopeError(
            f"{key}: mask image '{file}' cannot be read", "check that it opens in an image viewer"
        )
    _check_aspect(file, size, info, index, key)


def _check_aspect(
    file: Path, size: tuple[int, int] | None, info: SourceInfo, index: int, key: str
) -> None:
    """A mask must have its frame's aspect ratio (at any size) to line up with it: the
    input's, or a photo's own (rendered at a size rounded to 8, which the tolerance
    allows for)."""
    if size is None:
        return
    width, height = info.source_width, info.source_height
    tolerance = ASPECT_TOLERANCE
    if info.frame_sizes is not None:
        width, height = info.size_of(index)
        tolerance += 8 / min(width, height)
    if abs((size[0] / size[1]) / (width / height) - 1) > tolerance:
        raise RotoscopeError(
            f"{key}: mask '{file}' is {size[0]}x{size[1]} but its frame is {width}x{height}: "
            "the mask cannot line up with it",
            "export the mask at the input's aspect ratio (any size: it is resized)",
        )


class MaskFrames:
    """The frames of ``mask.path`` by input frame, decoded once each, in order."""

    def __init__(self, mask: MaskFile, resize: Callable[[np.ndarray, Frame], np.ndarray]) -> None:
        self.mask = mask
        self.resize = resize
        self._video: Iterator[np.ndarray] | None = None
        self._reader: VideoReader | None = None
        self._last: tuple[int, np.ndarray] | None = None  # (number, decoded picture)

    def grey(self, frame: Frame) -> np.ndarray:
        """The mask of ``frame``, at its size."""
        number = self.mask.number(frame.source_index, frame.time)
        if self._last is None or self._last[0] != number:
            self._last = (number, self._decode(number, frame))
        return grey(self.resize(self._last[1], frame))

    def _decode(self, number: int, frame: Frame) -> np.ndarray:
        mask = self.mask
        if mask.kind is not SourceKind.video:
            if number >= len(mask.files):
                raise self._short(len(mask.files), number, frame)
            return load_image(mask.files[number], BLACK)
        if self._last is not None and number < self._last[0]:
            self.close()  # a new pass
        if self._video is None:
            self._reader = mask.reader()
            self._video = iter(self._reader)
            self._last = None
        at = -1 if self._last is None else self._last[0]
        picture = None if self._last is None else self._last[1]
        while at < number:
            picture = next(self._video, None)
            if picture is None:
                raise self._short(at + 1, number, frame)
            at += 1
        assert picture is not None
        return flatten_alpha(picture, BLACK) if picture.shape[2] == 4 else picture

    def _short(self, have: int, number: int, frame: Frame) -> RotoscopeError:
        return RotoscopeError(
            f"mask.path '{self.mask.path}' has {have} frames; input frame {frame.index} needs "
            f"frame {number + 1}",
            "give a mask frame for every input frame, or trim the input",
        )

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = self._video = None
        self._last = None


class FrameMasks:
    """Every frame's mask for one pass over the input (see the module notes).

    ``shapes`` holds each frame's shaping, by frame index (the plan's values).
    """

    def __init__(
        self,
        cfg: MaskConfig,
        input_cfg: InputConfig,
        info: SourceInfo,
        shapes: Sequence[MaskShape],
    ) -> None:
        self.cfg = cfg
        self.input_cfg = input_cfg
        self.shapes = shapes
        self.key = parse_key_color(cfg.key) if cfg.key is not None else None
        self.expression: KeyedMasks | None = (
            parse_keyed_masks(cfg.expression) if cfg.expression is not None else None
        )
        self.frames = (
            MaskFrames(MaskFile.open(cfg.path, info), self._resized)
            if cfg.path is not None
            else None
        )
        self._files: dict[tuple[Path, tuple[int, ...]], np.ndarray] = {}

    def mask(self, frame: Frame) -> FrameMask:
        """``frame``'s mask, shaped by its frame's values."""
        shape = self.shapes[frame.index] if frame.index < len(self.shapes) else MaskShape()
        if self.expression is None:
            combined = self.own(frame)
        else:
            node = self.expression.at(frame.index)
            size = frame.image.shape[:2]
            combined = node.evaluate(
                MaskLookup(lambda: self.own(frame), size, lambda path: self._file(path, frame))
            )
        pixels = np.ascontiguousarray(shape_mask(combined, shape))
        pixels.setflags(write=False)
        return FrameMask(pixels, image_digest(pixels))

    def own(self, frame: Frame) -> np.ndarray:
        """The frame's mask before combining and shaping: mask.path's, the key's or the
        brightness range's."""
        if self.frames is not None:
            return self.frames.grey(frame)
        if self.key is not None:
            return key_mask(frame.image, self.key, self.cfg.key_tolerance, self.cfg.key_softness)
        if self.cfg.luma is not None:
            low, high = self.cfg.luma
            return luma_mask(frame.image, low, high)
        raise AssertionError("check_mask_options refuses {mask} without a mask")

    def _file(self, path: Path, frame: Frame) -> np.ndarray:
        """An expression's image file, at the frame's size (read once per size)."""
        cached = (path, frame.image.shape)
        if cached not in self._files:
            self._files[cached] = grey(self._resized(load_image(path, BLACK), frame))
        return self._files[cached]

    def _resized(self, picture: np.ndarray, frame: Frame) -> np.ndarray:
        height, width = frame.image.shape[:2]
        return resize_frame(
            picture, width, height, self.input_cfg.resize_mode, BLACK, cv2.INTER_LINEAR
        )

    def close(self) -> None:
        if self.frames is not None:
            self.frames.close()


class MaskedSource(Source):
    """``source``'s frames, each with its mask attached (:class:`FrameMasks`)."""

    def __init__(self, source: Source, masks: FrameMasks) -> None:
        super().__init__(source.info, source.selection)
        self.source = source
        self.masks = masks
        self.notes = source.notes

    def _frames(self) -> Generator[Frame, None, None]:
        passing = iter(self.source)  # a new pass: the source's lists start over
        self.masks.close()  # and so does the mask video
        try:
            for frame in passing:
                self._sync()
                self.frames_read += 1
                yield replace(frame, mask=self.masks.mask(frame))
        finally:
            self._sync()
            self.ended_early = self.source.ended_early

    def _sync(self) -> None:
        """The source's unreadable and repeated frames, in this pass's own lists (a
        prefetching reader holds those lists, so they are filled, not replaced)."""
        self.failures[:] = self.source.failures
        self.repeats[:] = self.source.repeats

    def close(self) -> None:
        super().close()
        self.source.close()
        self.masks.close()


def save_mask(path: Path, pixels: np.ndarray) -> None:
    """Keep a frame's mask in the run folder (a grey PNG), unless it is there already."""
    if path.is_file():
        return
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG", compress_level=4)


def load_mask(path: Path) -> np.ndarray:
    """A mask :func:`save_mask` kept, as (H, W) uint8."""
    if not path.is_file():
        raise RotoscopeError(
            f"mask {path} is missing from the run folder",
            "run the render stage again (stages=[render,assemble]) to rewrite it",
        )
    decoded = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if decoded is None:
        raise RotoscopeError(f"mask {path} cannot be read", "delete it and run the render stage")
    return decoded
