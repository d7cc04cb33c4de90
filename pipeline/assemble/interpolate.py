"""In-between frames: the pictures a retimed clip shows between two delivered frames.

The timeline (:mod:`pipeline.assemble.timeline`) says which moments the output shows; a
moment between two delivered frames is made by ``output.interpolation``:

- ``flow`` (the default, no weights): optical flow both ways, occlusion-aware
  (:mod:`pipeline.animation.between`);
- ``rife``: RIFE 4.6 from a local weights file (:mod:`pipeline.upscale.rife`, torch);
- ``nearest``: no new pictures, the nearer delivered frame (repeated or dropped);
- ``minterpolate``: ffmpeg's filter inside the encode (:mod:`pipeline.assemble.encode`),
  so nothing is made here.

Each in-between frame is a file in ``between/``, named by the keys of its two
neighbours, its moment and the method (:func:`between_key`): a re-encode, a resume or a
change elsewhere in the clip makes only the in-betweens whose neighbours changed. The
flow of a pair is computed once for all of its in-betweens.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.animation import flow as flow_module
from pipeline.animation.between import in_betweens
from pipeline.assemble.encode import ALPHA_FORMATS
from pipeline.assemble.timeline import Timeline
from pipeline.atomic import atomic_path
from pipeline.config.paths import find_weights
from pipeline.config.schema import FrameInterpolation, OutputFormat, RunConfig
from pipeline.errors import RotoscopeError, plural
from pipeline.records.progress import Progress
from pipeline.records.report import JobReport
from pipeline.records.run_folder import RunFolder

log = logging.getLogger("rotoscope")

# Changes whenever the flow method or its settings change, so its frames are made again.
FLOW_METHOD = "flow-v1:" + flow_module.DIS_SETTINGS


class InBetweens(Protocol):
    """A way of making the pictures between two frames."""

    @property
    def identity(self) -> str:
        """What the frames' keys hold of it (its name, settings, weights)."""

    def make(
        self, first: np.ndarray, second: np.ndarray, fractions: Sequence[Fraction]
    ) -> list[np.ndarray]:
        """The pictures ``fractions`` (0..1, exclusive) of the way from ``first`` to
        ``second`` (RGB uint8, one size)."""


class FlowInBetweens:
    """rotoscope's own: optical flow both ways, occlusion-aware (no weights)."""

    identity = FLOW_METHOD

    def make(
        self, first: np.ndarray, second: np.ndarray, fractions: Sequence[Fraction]
    ) -> list[np.ndarray]:
        return in_betweens(first, second, [float(t) for t in fractions])


def in_betweens_for(cfg: RunConfig) -> InBetweens | None:
    """The method that makes in-between pictures here (None: nearest or minterpolate)."""
    method = cfg.output.interpolation
    if method is FrameInterpolation.flow:
        return FlowInBetweens()
    if method is FrameInterpolation.rife:
        from pipeline.upscale.rife import RifeInBetweens  # torch: only for rife

        return RifeInBetweens(rife_weights(cfg), cfg.runtime)
    return None


def rife_weights(cfg: RunConfig) -> Path:
    """``output.interpolation_model``: RIFE's weights file, which rife needs."""
    model = cfg.output.interpolation_model
    if not model:
        raise RotoscopeError(
            "output.interpolation=rife needs output.interpolation_model",
            f"put RIFE 4.6's weights (RIFE46.pkl or flownet.pkl) into {cfg.paths.interpolators} "
            "and set output.interpolation_model=RIFE46, or use output.interpolation=flow",
        )
    return find_weights(
        model, cfg.paths.interpolators, "output.interpolation_model", "paths.interpolators"
    )


def check_interpolation_options(cfg: RunConfig) -> None:
    """Refuse an interpolation that cannot run with the rest of the output settings."""
    output = cfg.output
    method = output.interpolation
    if method is FrameInterpolation.minterpolate and OutputFormat.images in output.format:
        raise RotoscopeError(
            "output.interpolation=minterpolate runs inside ffmpeg's encode, and "
            "output=images encodes nothing",
            "use output.interpolation=flow (or rife) for an image folder",
        )
    alpha = [fmt.value for fmt in output.format if fmt in ALPHA_FORMATS]
    if method is FrameInterpolation.minterpolate and alpha:
        raise RotoscopeError(
            f"output.interpolation=minterpolate cannot carry the alpha of output={alpha[0]} "
            "(ffmpeg's filter drops it)",
            "use output.interpolation=flow (or rife): their in-betweens carry the masks too",
        )
    if method is FrameInterpolation.rife and (output.interpolate > 1 or output.fps is not None
                                              or output.slow_motion > 1):  # fmt: skip
        rife_weights(cfg)


def between_key(method: str, first: str, second: str, fraction: Fraction) -> str:
    """The key of the picture ``fraction`` of the way between the delivered frames keyed
    ``first`` and ``second``, made by ``method``."""
    digest = hashlib.sha256()
    for part in ("between-v1", method, first, second, str(fraction)):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def retimed_frames(
    folder: RunFolder,
    frames: Sequence[Path],
    keys: Sequence[str],
    line: Timeline,
    method: InBetweens | None,
    report: JobReport | None,
    log_every: float,
    on_pair: Callable[[], None] | None = None,
) -> tuple[list[Path], list[str]]:
    """The output's frame files along ``line`` and their keys: delivered frames, and
    in-between pictures made (or found) by ``method`` (None: the nearer frame; between
    two pictures with the same key, that picture). ``on_pair`` runs after the pictures
    between each pair are made (a safe point)."""
    paths: list[Path] = []
    out_keys: list[str] = []
    wanted: dict[int, dict[Fraction, Path]] = defaultdict(dict)  # pair -> missing pictures
    reused = 0
    for moment in line.moments:
        first, fraction = moment.first, moment.fraction
        if not fraction:
            paths.append(frames[first])
            out_keys.append(keys[first])
            continue
        if keys[first] == keys[first + 1]:  # a still matte: nothing moves
            paths.append(frames[first])
            out_keys.append(keys[first])
            continue
        if method is None:
            nearer = first + 1 if fraction >= Fraction(1, 2) else first
            paths.append(frames[nearer])
            out_keys.append(keys[nearer])
            continue
        key = between_key(method.identity, keys[first], keys[first + 1], fraction)
        path = folder.between_frame(keys[first], keys[first + 1], key)
        if path.is_file():
            reused += 1
        else:
            wanted[first][fraction] = path
        paths.append(path)
        out_keys.append(key)
    missing = sum(len(pictures) for pictures in wanted.values())
    if method is not None and (missing or reused):
        log.info("in-between frames: %s to make, %d reused", plural(missing, "frame"), reused)
    if missing and method is not None:
        _make(frames, wanted, method, missing, log_every, on_pair)
    if report is not None:
        report.in_between += missing
        report.in_between_reused += reused
    return paths, out_keys


def _make(
    frames: Sequence[Path],
    wanted: dict[int, dict[Fraction, Path]],
    method: InBetweens,
    missing: int,
    log_every: float,
    on_pair: Callable[[], None] | None,
) -> None:
    progress = Progress(missing, label="in-between", log_every=log_every)
    try:
        for first in sorted(wanted):
            pictures = wanted[first]
            fractions = sorted(pictures)
            made = method.make(_read(frames[first]), _read(frames[first + 1]), fractions)
            for fraction, image in zip(fractions, made, strict=True):
                _write(pictures[fraction], image)
                progress.advance()
            if on_pair is not None:
                on_pair()
    finally:
        progress.close()


def _read(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise RotoscopeError(f"cannot read delivered frame {path}: {exc}") from exc


def _write(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG", compress_level=4, compress_type=zlib.Z_RLE)
