"""The Source stage: turn ``input.*`` into a lazy stream of selected, resized frames.

``open_source`` validates the config, probes the input and returns a Source whose
``info`` describes the render (size, rates, how many frames to expect) before any
frame is decoded; iterating it decodes one frame at a time. Four kinds:

- ``video``: one streaming ffmpeg process (see ``pipeline.source.video``);
- ``folder``: the images in a folder, in natural order (``2.png`` before ``10.png``);
- ``image``: one image repeated ``input.repeat`` times;
- ``none``: no input (``input.path`` unset): a loopback made from noise
  (:mod:`pipeline.source.blank`).

Selection (``start``/``end``/``every``/``max_frames``) counts frames of the source:
for a video, of its constant-rate stream at the average frame rate; for images, of
the sorted file list (or the repeats), with times at ``input.fps``. ``end`` is
exclusive. The render size comes from the first image of a folder (the first file
in sorted order, whatever the selection), so a folder of mixed sizes renders at one
size and re-running with another selection keeps it; a video needs one size, and the
images that differ are named in a note. With ``own_sizes`` (a photo folder rendered as
images, :func:`keeps_own_sizes`) each image instead keeps its own size and orientation,
resized by the same rules (``SourceInfo.frame_sizes``).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import replace
from pathlib import Path

from pipeline.config.schema import InputConfig, OutputFormat, RunConfig
from pipeline.errors import RotoscopeError
from pipeline.source.base import Selection, Source, SourceInfo, SourceKind
from pipeline.source.blank import open_blank
from pipeline.source.images import (
    IMAGE_EXTENSIONS,
    ImageSource,
    is_image,
    list_images,
    load_image,
    upright_size,
)
from pipeline.source.probe import probe_video
from pipeline.source.resize import parse_color, render_area, target_size
from pipeline.source.video import VideoSource

logger = logging.getLogger(__name__)

# Rounding both sides to multiples of 8 may change the aspect ratio; more than this is
# worth a warning (the frame is then cropped, padded or stretched by input.resize_mode).
ASPECT_TOLERANCE = 0.05
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif"})
_TIME_RE = re.compile(r"^(?:(?:(\d+):)?(\d+):)?(\d+(?:\.\d*)?|\.\d+)(s?)$")


def keeps_own_sizes(cfg: RunConfig) -> bool:
    """Whether a folder's images each keep their own size: only a folder of images out
    can hold frames of different sizes (a video, loopback and external ControlNet
    sources need one)."""
    return (
        set(cfg.output.format) == {OutputFormat.images}
        and not cfg.animation.mode.loops
        and all(unit.source == "input" for unit in cfg.controlnet.units.values())
    )


def is_photo_batch(cfg: RunConfig, kind: SourceKind | None) -> bool:
    """A folder of images rendered as images, without temporal coherence: unrelated
    pictures, not a clip, so there is no frame rate to speak of and no flicker between
    them to measure. (A folder of a clip's frames rendered to a video, or with
    ``coherence`` or a ``cadence``, which carries frames along its motion, is a clip.)"""
    clip = cfg.coherence.attention or cfg.coherence.flow or cfg.cadence.every > 1
    return kind is SourceKind.folder and keeps_own_sizes(cfg) and not clip


def looks_like_input(text: str) -> bool:
    """Whether ``text`` (a word on the command line) is probably an input: an existing
    path, or a file name with a video or image extension."""
    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    return path.exists() or suffix in VIDEO_EXTENSIONS or suffix in IMAGE_EXTENSIONS


def open_source(cfg: InputConfig, own_sizes: bool = False, key: str = "input.path") -> Source:
    """Validate ``input.*``, probe the input and return a Source ready to iterate.

    ``own_sizes``: the images of a folder keep their own sizes (see the module doc).
    ``key`` is the setting the path came from (a ControlNet unit's ``source``), for the
    messages. Raises RotoscopeError, naming the file or config key, for anything unusable.
    """
    _check_numbers(cfg)
    parse_color(cfg.background)
    if cfg.path is None:
        return open_blank(cfg)
    if cfg.frames is not None:
        raise RotoscopeError(
            "input.frames counts the frames made without an input, and input.path is given",
            "leave input.frames unset; input.max_frames limits the frames of an input",
        )
    path = Path(str(cfg.path)).expanduser()
    if not path.exists():
        raise RotoscopeError(
            f"{key} '{cfg.path}' does not exist",
            "give a video file, a folder of images or one image, e.g. input.path=clip.mp4"
            if key == "input.path"
            else "give a video file or a folder of images, aligned with the input by frame",
        )
    if path.is_dir():
        return _open_folder(path, cfg, own_sizes, key)
    if is_image(path):
        return _open_images(SourceKind.image, path, [path] * cfg.repeat, cfg)
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return _open_video(path, cfg)
    raise RotoscopeError(
        f"{key} '{cfg.path}' has an unsupported extension '{path.suffix}'",
        "supported videos: "
        + " ".join(sorted(VIDEO_EXTENSIONS))
        + "; images: "
        + " ".join(sorted(IMAGE_EXTENSIONS))
        + "; or give a folder of images",
    )


def aligned_input(cfg: InputConfig, path: str, size: tuple[int, int]) -> InputConfig:
    """How a second video (or folder, or image) is read alongside the input: the input's
    selection, so its frame k goes with output frame k, at the render size ``size``."""
    return replace(cfg, path=path, frames=None, width=size[0], height=size[1], scale=None)


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
    width, height = render_size(source_w, source_h, cfg)
    info = SourceInfo(
        kind=SourceKind.video,
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
    source = VideoSource(info, selection, probe, cfg)
    note = aspect_note(cfg, source_w, source_h, width, height)
    source.notes += [note] if note else []
    return source


def _open_folder(path: Path, cfg: InputConfig, own_sizes: bool, key: str) -> Source:
    files, skipped = list_images(path)
    if not files:
        raise RotoscopeError(
            f"{key} folder '{path}' contains no images",
            "supported images: " + " ".join(sorted(IMAGE_EXTENSIONS)),
        )
    source = _open_images(SourceKind.folder, path, files, cfg, own_sizes)
    if skipped:
        names = ", ".join(p.name for p in skipped)
        source.notes.append(f"skipping {len(skipped)} non-image file(s) in '{path}': {names}")
    return source


def _open_images(
    kind: SourceKind, path: Path, files: list[Path], cfg: InputConfig, own_sizes: bool = False
) -> Source:
    """Shared by folders and single images: the first file sets the render size."""
    selection = resolve_selection(cfg, cfg.fps, len(files), path)
    selected = [files[i] for i in selection.indices(len(files))]
    for file in set(selected):
        if file.stat().st_size == 0:  # cheap to find now, instead of hours into a run
            raise RotoscopeError(f"image '{file}' is empty (0 bytes)", "re-copy or remove it")
    first = load_image(files[0], parse_color(cfg.background))
    source_h, source_w = first.shape[:2]
    width, height = render_size(source_w, source_h, cfg)
    notes = [note for note in [aspect_note(cfg, source_w, source_h, width, height)] if note]
    sizes = source_sizes = None
    if kind is SourceKind.folder:
        uprights = [upright_size(file) or (source_w, source_h) for file in selected]
        sizes = [render_size(own_w, own_h, cfg) for own_w, own_h in uprights]
        if own_sizes:
            source_sizes = uprights
        else:
            notes += _size_mismatch_note(selected, sizes, (width, height))
            sizes = None
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
        frame_sizes=sizes,
        frame_source_sizes=source_sizes,
    )
    source = ImageSource(info, selection, files, cfg)
    source.notes += notes
    return source


def render_size(source_w: int, source_h: int, cfg: InputConfig) -> tuple[int, int]:
    """The render size of a source picture of ``source_w`` x ``source_h`` under ``input.*``."""
    return target_size(source_w, source_h, cfg.width, cfg.height, cfg.scale, render_area(cfg.size))


def _size_mismatch_note(
    files: list[Path], sizes: list[tuple[int, int]], common: tuple[int, int]
) -> list[str]:
    """Images whose own size or orientation differs from the one size a video gets."""
    odd = [file.name for file, size in zip(files, sizes, strict=True) if size != common]
    if not odd:
        return []
    shown = ", ".join(odd[:3]) + (", ..." if len(odd) > 3 else "")
    return [
        f"{len(odd)} of {len(files)} images ({shown}) differ in size or orientation from the "
        f"first; a video needs one size, so they are fitted to {common[0]}x{common[1]} by "
        "input.resize_mode (output=images keeps each image's own size)"
    ]


def aspect_note(
    cfg: InputConfig, source_w: int, source_h: int, width: int, height: int
) -> str | None:
    """A warning when rounding to multiples of 8 changed the intended aspect ratio (the
    source's, or that of an explicit width and height) noticeably."""
    if cfg.width is not None and cfg.height is not None:
        intended = cfg.width / cfg.height
    else:
        intended = source_w / source_h
    change = abs((width / height) / intended - 1)
    if change <= ASPECT_TOLERANCE:
        return None
    return (
        f"render size {width}x{height} changes the aspect ratio of {source_w}x{source_h} "
        f"by {change:.0%} (sizes are rounded to multiples of 8); give a larger "
        "input.width or input.height"
    )
