"""The Source stage: turn ``input.*`` into a lazy stream of selected, resized frames.

``open_source`` validates the config, probes the input and returns a Source whose
``info`` describes the render (size, rates, how many frames to expect) before any
frame is decoded; iterating it decodes one frame at a time. Three kinds:

- ``video``: one streaming ffmpeg process (see ``pipeline.source.video``);
- ``folder``: the images in a folder, in natural order (``2.png`` before ``10.png``);
- ``image``: one image repeated ``input.repeat`` times.

Selection (``start``/``end``/``every``/``max_frames``) counts frames of the source:
for a video, of its constant-rate stream at the average frame rate; for images, of
the sorted file list (or the repeats), with times at ``input.fps``. ``end`` is
exclusive. The render size comes from the first image of a folder (the first file
in sorted order, whatever the selection), so a folder of mixed sizes renders at one
size and re-running with another selection keeps it.
"""

from __future__ import annotations

import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from pipeline.config.schema import BadFramePolicy, InputConfig
from pipeline.errors import RotoscopeError
from pipeline.source.frames import Frame
from pipeline.source.images import IMAGE_EXTENSIONS, is_image, list_images, load_image
from pipeline.source.probe import VideoProbe, probe_video
from pipeline.source.resize import flatten_alpha, parse_color, resize_frame, target_size
from pipeline.source.video import VideoReader

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif"})
# A clip one frame shorter than its container duration promises is normal (rounding,
# audio that outlasts the video by a few milliseconds); more than that is not.
_SHORTFALL_SLACK = 1

_TIME_RE = re.compile(r"^(?:(?:(\d+):)?(\d+):)?(\d+(?:\.\d*)?|\.\d+)(s?)$")


@dataclass(frozen=True)
class SourceInfo:
    """What the rest of the pipeline needs to know about the input, before decoding."""

    kind: str  # "video" | "folder" | "image"
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
        return len(self.indices(self.stop if total is None else total))


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
        self._pass: Generator[Frame, None, None] | None = None

    def __iter__(self) -> Iterator[Frame]:
        self.close()
        self.frames_read = 0
        self.ended_early = False
        self.failures = []
        self._pass = self._frames()
        return self._pass

    def close(self) -> None:
        """End the current pass; for a video this kills ffmpeg if it is still running."""
        if self._pass is not None:
            self._pass.close()
            self._pass = None

    def count_frames(self) -> int:
        """How many frames a full pass yields, for planning.

        Exact: images are counted from the file list; a video is decoded once (frames
        dropped as they come) because its container duration is only an estimate (an
        audio track that outlasts the picture, a truncated file), and a plan that
        promises frames the video does not have, or misses frames it has, would be
        wrong at the end of the clip. Decoding is cheap next to rendering.
        """
        if self.info.kind != "video" and self.info.expected_frames is not None:
            return self.info.expected_frames
        count = sum(1 for _ in self)
        self.close()
        return count

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


class VideoSource(Source):
    """Frames of a video file, decoded by one ffmpeg process per pass."""

    def __init__(
        self, info: SourceInfo, selection: Selection, probe: VideoProbe, cfg: InputConfig
    ) -> None:
        super().__init__(info, selection)
        self.probe = probe
        self._cfg = cfg
        self._background = parse_color(cfg.background)

    def _frames(self) -> Generator[Frame, None, None]:
        sel = self.selection
        reader = VideoReader(self.probe, sel.start, sel.stop, sel.every, sel.count(None))
        try:
            for raw in reader:
                source_index = sel.start + self.frames_read * sel.every
                frame = Frame(
                    index=self.frames_read,
                    source_index=source_index,
                    time=float(source_index / self.probe.fps),
                    name=None,
                    image=self._to_render(raw),
                )
                self.frames_read += 1
                yield frame
            self._check_end(reader)
        finally:
            reader.close()

    def _to_render(self, raw: np.ndarray) -> np.ndarray:
        """Decoded pixels (RGB or RGBA at display size) to the render frame."""
        rgb = flatten_alpha(raw, self._background) if raw.shape[2] == 4 else raw
        info = self.info
        return resize_frame(rgb, info.width, info.height, self._cfg.resize_mode, self._background)

    def _check_end(self, reader: VideoReader) -> None:
        """After ffmpeg's last frame: fail if it decoded nothing, warn if it stopped short."""
        path = self.info.path
        if self.frames_read == 0 and reader.returncode != 0:
            raise RotoscopeError(
                f"ffmpeg could not decode video '{path}': {reader.stderr_head or 'no output'}",
                "check that the file plays in a video player; re-export or remux it",
            )
        expected = self.info.expected_frames
        if expected is not None and self.frames_read < expected - _SHORTFALL_SLACK:
            self.ended_early = True
            logger.warning(
                "video '%s' ended early: got %d of %d expected frames "
                "(the file may be truncated); rendering the frames it has%s",
                path, self.frames_read, expected,
                f" [ffmpeg: {reader.stderr_head}]" if reader.stderr_head else "",
            )  # fmt: skip


class ImageSource(Source):
    """Frames from image files: a folder's images, or one image repeated."""

    def __init__(
        self, info: SourceInfo, selection: Selection, files: list[Path], cfg: InputConfig
    ) -> None:
        super().__init__(info, selection)
        self._files = files  # one entry per source frame (a single image appears n times)
        self._cfg = cfg
        self._background = parse_color(cfg.background)

    def _frames(self) -> Generator[Frame, None, None]:
        previous: tuple[Path, np.ndarray] | None = None
        for index, source_index in enumerate(self.selection.indices(len(self._files))):
            path = self._files[source_index]
            if previous is None or previous[0] != path:  # decode a repeated image once
                try:
                    previous = (path, self._render(path))
                except RotoscopeError as exc:
                    if not self._bad_frame(index, path, exc, previous is not None):
                        continue
                    assert previous is not None  # repeat: keep the last good image
            frame = Frame(
                index=index,
                source_index=source_index,
                time=source_index / self._cfg.fps,
                name=path.name,
                image=previous[1].copy(),
            )
            self.frames_read += 1
            yield frame

    def _bad_frame(self, index: int, path: Path, exc: RotoscopeError, can_repeat: bool) -> bool:
        """Apply input.on_bad_frame to an unreadable image; True means repeat the last one."""
        policy = self._cfg.on_bad_frame
        if policy is BadFramePolicy.stop:
            raise RotoscopeError(
                f"frame {index}: {exc.message}",
                "finished frames are kept; fix or remove the file, or set "
                "input.on_bad_frame=skip / repeat",
            ) from exc
        repeat = policy is BadFramePolicy.repeat and can_repeat
        action = "repeating the previous frame" if repeat else "skipping it"
        logger.warning("frame %d: %s; %s (input.on_bad_frame)", index, exc.message, action)
        self.failures.append((index, f"{path.name}: {exc.message}"))
        return repeat

    def _render(self, path: Path) -> np.ndarray:
        info = self.info
        image = load_image(path, self._background)
        return resize_frame(image, info.width, info.height, self._cfg.resize_mode, self._background)


def open_source(cfg: InputConfig) -> Source:
    """Validate ``input.*``, probe the input and return a Source ready to iterate.

    Raises RotoscopeError, naming the file or config key, for anything unusable.
    """
    _check_numbers(cfg)
    parse_color(cfg.background)
    path = Path(str(cfg.path)).expanduser()
    if not path.exists():
        raise RotoscopeError(
            f"input.path '{cfg.path}' does not exist",
            "give a video file, a folder of images or one image, e.g. input.path=clip.mp4",
        )
    if path.is_dir():
        return _open_folder(path, cfg)
    if is_image(path):
        return _open_images("image", path, [path] * cfg.repeat, cfg)
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return _open_video(path, cfg)
    raise RotoscopeError(
        f"input.path '{cfg.path}' has an unsupported extension '{path.suffix}'",
        "supported videos: "
        + " ".join(sorted(VIDEO_EXTENSIONS))
        + "; images: "
        + " ".join(sorted(IMAGE_EXTENSIONS))
        + "; or give a folder of images",
    )


def parse_position(text: str, key: str, fps: float) -> int:
    """A frame number (``12``) or a time (``2.5s``, ``1:02.5``, ``00:01:02.5``) -> frame.

    A time selects the first frame at or after it, so ``start=1s`` and ``end=2s``
    keep the frames whose timestamps lie in [1 s, 2 s).
    """
    value = str(text).strip()
    if value.isascii() and value.isdigit():
        return int(value)
    match = _TIME_RE.match(value)
    if match is None or (":" not in value and not match.group(4)):
        raise RotoscopeError(
            f"{key} '{text}' is neither a frame number nor a time",
            "write a frame number (12) or a time (2.5s, 1:02.5, 00:01:02.5)",
        )
    hours, minutes, seconds, _ = match.groups()
    total = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds)
    return math.ceil(round(total * fps, 6))


def resolve_selection(cfg: InputConfig, fps: float, total: int | None, path: Path) -> Selection:
    """Turn ``start``/``end``/``every``/``max_frames`` into frame numbers and check them."""
    start = 0 if cfg.start is None else parse_position(cfg.start, "input.start", fps)
    stop = None if cfg.end is None else parse_position(cfg.end, "input.end", fps)
    if stop is not None and stop <= start:
        raise RotoscopeError(
            f"input.end '{cfg.end}' (frame {stop}) is not after input.start "
            f"'{cfg.start or 0}' (frame {start})",
            "input.end is exclusive: give a later end, or leave it unset to read to the end",
        )
    if total is not None and start >= total:
        raise RotoscopeError(
            f"input.start '{cfg.start}' (frame {start}) is past the end of '{path}' "
            f"({total} frames)",
            f"give a start below frame {total}",
        )
    return Selection(start=start, stop=stop, every=cfg.every, limit=cfg.max_frames)


def _check_numbers(cfg: InputConfig) -> None:
    """Reject counts and rates that cannot select anything, naming the key."""
    minimums = {"input.every": cfg.every, "input.repeat": cfg.repeat}
    if cfg.max_frames is not None:
        minimums["input.max_frames"] = cfg.max_frames
    for key, value in minimums.items():
        if value < 1:
            raise RotoscopeError(f"{key} is {value}; it must be 1 or more")
    if not (math.isfinite(cfg.fps) and cfg.fps > 0):
        raise RotoscopeError(f"input.fps is {cfg.fps}; it must be above 0", "for example 24")


def _open_video(path: Path, cfg: InputConfig) -> Source:
    probe = probe_video(path)
    fps = float(probe.fps)
    selection = resolve_selection(cfg, fps, probe.total_frames, path)
    source_w, source_h = probe.display_size
    width, height = target_size(source_w, source_h, cfg.width, cfg.height, cfg.scale)
    info = SourceInfo(
        kind="video",
        path=path,
        width=width,
        height=height,
        source_width=source_w,
        source_height=source_h,
        source_fps=fps,
        fps=fps / cfg.every,
        start_time=float(selection.start / probe.fps),
        expected_frames=selection.count(probe.total_frames),
        has_audio=probe.has_audio,
        rotation=probe.rotation,
    )
    return VideoSource(info, selection, probe, cfg)


def _open_folder(path: Path, cfg: InputConfig) -> Source:
    files = list_images(path)
    if not files:
        raise RotoscopeError(
            f"input.path folder '{path}' contains no images",
            "supported images: " + " ".join(sorted(IMAGE_EXTENSIONS)),
        )
    return _open_images("folder", path, files, cfg)


def _open_images(kind: str, path: Path, files: list[Path], cfg: InputConfig) -> Source:
    """Shared by folders and single images: the first file sets the render size."""
    selection = resolve_selection(cfg, cfg.fps, len(files), path)
    for file in {files[i] for i in selection.indices(len(files))}:
        if file.stat().st_size == 0:  # cheap to find now, instead of hours into a run
            raise RotoscopeError(f"image '{file}' is empty (0 bytes)", "re-copy or remove it")
    first = load_image(files[0], parse_color(cfg.background))
    source_h, source_w = first.shape[:2]
    width, height = target_size(source_w, source_h, cfg.width, cfg.height, cfg.scale)
    info = SourceInfo(
        kind=kind,
        path=path,
        width=width,
        height=height,
        source_width=source_w,
        source_height=source_h,
        source_fps=cfg.fps,
        fps=cfg.fps / cfg.every,
        start_time=selection.start / cfg.fps,
        expected_frames=selection.count(len(files)),
        has_audio=False,
        rotation=0,
    )
    return ImageSource(info, selection, files, cfg)
