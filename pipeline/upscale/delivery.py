"""Each frame's delivered size, and what brings the rendered frame to it.

A model renders best near the size it was trained at, and a video is wanted at its
source's size, so the two differ by default (``input.size=auto``). The rules:

1. ``upscale.model`` given (a weights file or ``lanczos``): ``upscale.to`` decides: the
   source's size (the default), a factor of the render size, or a size ``WxH``.
2. No model, and the render size was chosen by area (no ``input.width``/``height``/
   ``scale``) and brought a larger source down: the source's size, by Lanczos.
3. Otherwise the render size is the delivered size (an explicit width and height are
   what A1111 users get back).

The source's size, for a render of another aspect ratio (explicit width and height), is
the largest size of the render's aspect ratio inside the source's, so nothing is
stretched; shapes within 5% of each other (rounding sizes to multiples of 8 changes a
small frame's shape that much) are the same. Frames for a video get even sizes (their
4:2:0 chroma needs them), also when images are made from the same frames.

Imports no torch: the assemble stage reads these rules to find the delivered frames.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path

from pipeline.config.paths import find_weights
from pipeline.config.schema import OutputFormat, RunConfig
from pipeline.errors import RotoscopeError
from pipeline.source.base import SourceInfo
from pipeline.source.open import ASPECT_TOLERANCE
from pipeline.source.resize import render_area

LANCZOS = "lanczos"
MAX_DELIVERED = 16384  # pixels per side
_FACTOR = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)x?$")
_SIZE = re.compile(r"^(\d+)x(\d+)$")


class TargetKind(Enum):
    """What ``upscale.to`` names."""

    source = "source"  # the input's own size
    factor = "factor"  # the render size times a number
    size = "size"  # a width and height


@dataclass(frozen=True)
class UpscaleTarget:
    kind: TargetKind
    factor: float = 1.0
    size: tuple[int, int] = (0, 0)


def parse_target(text: str) -> UpscaleTarget:
    """``upscale.to``: ``source``, a factor (``2``, ``1.5``, ``4x``) or a size (``1920x1080``)."""
    value = str(text).strip().lower()
    if value == TargetKind.source.value:
        return UpscaleTarget(TargetKind.source)
    if size := _SIZE.match(value):
        width, height = int(size.group(1)), int(size.group(2))
        if min(width, height) >= 8 and max(width, height) <= MAX_DELIVERED:
            return UpscaleTarget(TargetKind.size, size=(width, height))
    elif factor := _FACTOR.match(value):
        number = float(factor.group(1))
        if 0 < number <= 16:
            return UpscaleTarget(TargetKind.factor, factor=number)
    raise RotoscopeError(
        f"upscale.to={text} is not source, a factor or a size",
        "for example upscale.to=source, upscale.to=2 or upscale.to=1920x1080",
    )


@dataclass(frozen=True)
class Upscaler:
    """What brings frames to their delivered size: a weights file, or Lanczos (None)."""

    path: Path | None
    identity: str  # lanczos, or the weights file's sha256: what the frames' keys hold

    @property
    def name(self) -> str:
        return LANCZOS if self.path is None else self.path.name


LANCZOS_UPSCALER = Upscaler(None, LANCZOS)


def upscaler_of(cfg: RunConfig) -> Upscaler | None:
    """``upscale.model`` as an Upscaler (its file found and hashed), or None when unset."""
    model = cfg.upscale.model
    if model is None:
        return None
    if model.strip().lower() == LANCZOS:
        return LANCZOS_UPSCALER
    path = find_weights(model, cfg.paths.upscalers, "upscale.model", "paths.upscalers")
    return Upscaler(path, f"sha256:{file_sha256(path)}")


def file_sha256(path: Path) -> str:
    """The content hash of a weights file (cached while its size and time stay the same)."""
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def chosen_by_area(cfg: RunConfig, source: tuple[int, int]) -> bool:
    """Whether ``input.size`` brought a source of this size down (rule 2)."""
    given = cfg.input
    if given.width is not None or given.height is not None or given.scale is not None:
        return False
    side = render_area(given.size)
    return side is not None and source[0] * source[1] > side * side


def delivered_size(
    cfg: RunConfig, render: tuple[int, int], source: tuple[int, int]
) -> tuple[int, int]:
    """The size a frame rendered at ``render`` from a source picture of ``source`` is
    delivered at (the module's rules)."""
    if cfg.upscale.model is None:
        if not chosen_by_area(cfg, source):
            return render
        target = UpscaleTarget(TargetKind.source)
    else:
        target = parse_target(cfg.upscale.to)
    if target.kind is TargetKind.size:
        width, height = target.size
    elif target.kind is TargetKind.factor:
        width, height = round(render[0] * target.factor), round(render[1] * target.factor)
    else:
        width, height = _source_shaped(render, source)
    if max(width, height) > MAX_DELIVERED:
        raise RotoscopeError(
            f"upscale.to={cfg.upscale.to} delivers {width}x{height}, larger than {MAX_DELIVERED}",
            "give a smaller factor or size",
        )
    if any(fmt is not OutputFormat.images for fmt in cfg.output.format):
        width, height = _even(width), _even(height)  # the same frames feed every format
    return width, height


def _source_shaped(render: tuple[int, int], source: tuple[int, int]) -> tuple[int, int]:
    """The source's size, or for a render of another shape the largest size of the
    render's shape inside it."""
    (render_w, render_h), (source_w, source_h) = render, source
    if abs((render_w / render_h) / (source_w / source_h) - 1) <= ASPECT_TOLERANCE:
        return source  # the same shape, but for rounding to multiples of 8
    factor = min(source_w / render_w, source_h / render_h)
    return max(1, round(render_w * factor)), max(1, round(render_h * factor))


def _even(value: int) -> int:
    return max(2, round(value / 2) * 2)


@dataclass(frozen=True)
class Finishing:
    """What the upscale stage makes and the assemble stage delivers: each frame's
    delivered size, and the upscaler (None when every frame is delivered as rendered)."""

    upscaler: Upscaler | None
    sizes: dict[int, tuple[int, int]]  # frame index -> delivered size
    render_sizes: dict[int, tuple[int, int]]

    def recipe(self, index: int) -> str | None:
        """What makes frame ``index``'s delivered picture (None: the rendered one as is)."""
        size = self.sizes[index]
        if self.upscaler is None:
            return None
        if self.upscaler.path is None and size == self.render_sizes[index]:
            return None  # Lanczos to the same size changes nothing
        return f"{self.upscaler.identity}:{size[0]}x{size[1]}"

    @property
    def active(self) -> bool:
        return any(self.recipe(index) is not None for index in self.sizes)


def finishing_of(cfg: RunConfig, info: SourceInfo, indices: list[int]) -> Finishing:
    """The finishing of frames ``indices`` of a run whose source is ``info``."""
    render = {index: info.size_of(index) for index in indices}
    sizes = {
        index: delivered_size(cfg, render[index], info.source_size_of(index)) for index in indices
    }
    upscaler = upscaler_of(cfg)
    if upscaler is None and any(sizes[index] != render[index] for index in indices):
        upscaler = LANCZOS_UPSCALER
    return Finishing(upscaler, sizes, render)


def check_upscale_options(cfg: RunConfig) -> None:
    """Refuse upscale settings that cannot work, before anything renders."""
    upscale = cfg.upscale
    parse_target(upscale.to)
    if upscale.tile < 0 or 0 < upscale.tile < 32:
        raise RotoscopeError(
            f"upscale.tile={upscale.tile} must be 0 (the whole frame) or at least 32",
            "512 keeps a GPU's memory low for every model",
        )
    if upscale.tile_overlap < 0 or (upscale.tile and upscale.tile_overlap * 2 >= upscale.tile):
        raise RotoscopeError(
            f"upscale.tile_overlap={upscale.tile_overlap} must be 0 or more and less than "
            "half of upscale.tile",
            "32 hides the seams of most models",
        )
    if not _is_zero(upscale.refine_strength):
        raise RotoscopeError(
            f"upscale.refine_strength={upscale.refine_strength}: the refine pass at the "
            "upscaled size is not supported yet",
            "set upscale.refine_strength=0; render at a larger input.size (with coherence) "
            "for more detail",
        )
    upscaler_of(cfg)  # the file is there


def _is_zero(text: str) -> bool:
    try:
        return float(str(text).strip()) == 0.0
    except ValueError:
        return False
