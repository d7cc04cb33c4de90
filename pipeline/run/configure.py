"""The configuration a job runs with: composed, its keyframe file applied, every rule
that spans several keys checked, once, before anything is written.

Each rule lives with the package that knows it (which encoder options exist, which
render strategies combine) and is run here, where the config is composed, so a refused
command changes nothing in a run folder and the stages receive a checked config. The
command line runs it before Hydra starts a job (the error comes at once) and the job
runs it again on the config Hydra composed for it.

A keyframe file may be rotoscope's own YAML or a Deforum settings file; the latter is
converted here (by :mod:`pipeline.interop.deforum`), so ``config`` never depends on a
foreign format.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.assemble.encode import check_mask_outputs, check_output_options
from pipeline.assemble.interpolate import check_interpolation_options
from pipeline.assemble.soundtrack import check_soundtrack
from pipeline.assemble.timeline import check_timing_options
from pipeline.config.keyframes import (
    KeyframeFile,
    apply_keyframe_file,
    keyframe_file,
    read_keyframe_data,
)
from pipeline.config.paths import find_keyframes
from pipeline.config.schema import NATIVE_SIDE, STAGES, ModelFamily, RunConfig
from pipeline.errors import RotoscopeError
from pipeline.interop.a1111.parameters import import_png
from pipeline.interop.deforum.importer import import_deforum, is_deforum_settings
from pipeline.models.family import native_side
from pipeline.plan.build import check_sampling
from pipeline.plan.checks import check_strategies
from pipeline.render.stage import check_speed_options
from pipeline.source.base import SourceKind
from pipeline.source.open import is_photo_batch
from pipeline.source.resize import AUTO_SIZE, render_area
from pipeline.upscale.delivery import check_upscale_options

log = logging.getLogger("rotoscope")


@dataclass(frozen=True)
class JobConfig:
    """A config ready to run."""

    cfg: RunConfig  # with the keyframe file's values applied
    origins: dict[str, str]  # config key -> the keyframe file its value came from
    stages: list[str]  # the stages to run, in their fixed order


def configure(cfg: RunConfig, explicit: Iterable[str]) -> JobConfig:
    """``cfg`` with its keyframe file applied (``explicit``: the keys given on the command
    line, which win over the file) and checked; a problem is one RotoscopeError."""
    explicit = set(explicit)
    stages = check_stages(cfg.stages)
    cfg, origins = apply_keyframes(cfg, explicit)
    cfg = resolve_render_area(cfg)
    check_sampling(cfg)
    if "metrics" in stages and "stages" not in explicit and is_photo_batch(cfg, input_kind(cfg)):
        log.info(
            "metrics: not measured, the photos of a folder are not frames of one motion "
            "(for a clip's frames: stages=[plan,render,upscale,assemble,metrics])"
        )
        stages.remove("metrics")
    check_strategies(cfg)
    check_speed_options(cfg)
    check_timing_options(cfg.output)
    if "upscale" in stages or "assemble" in stages:  # not after hours of rendering
        check_upscale_options(cfg)
    if "assemble" in stages:
        check_output_options(cfg.output)
        check_interpolation_options(cfg)
        check_mask_outputs(cfg.output, cfg.mask.active)
        check_soundtrack(cfg.output)
    return JobConfig(cfg, origins, stages)


def input_kind(cfg: RunConfig) -> SourceKind | None:
    """What the input is, from its path alone (None for a file: a video or an image; none
    without a path: a loopback's txt2img start)."""
    if cfg.input.path is None:
        return SourceKind.none
    return SourceKind.folder if Path(cfg.input.path).expanduser().is_dir() else None


def resolve_render_area(cfg: RunConfig) -> RunConfig:
    """``cfg`` with ``input.size=auto`` as its model family's side (512 for SD 1.x, 1024
    for SDXL), the number ``config.yaml`` then records; SD 1.x's where the model's files
    cannot tell (it is not there yet: the render names the problem)."""
    render_area(cfg.input.size)  # anything else must be a size rotoscope knows
    if cfg.input.size.strip().lower() != AUTO_SIZE:
        return cfg
    side = native_side(cfg.model)
    if side is None:
        side = NATIVE_SIDE[ModelFamily.sd15]
        log.info(
            "input.size=auto: model.path's family cannot be told from its files, so frames "
            "larger than SD 1.x's 512x512 area are rendered at that area (set model.family)"
        )
    return dataclasses.replace(cfg, input=dataclasses.replace(cfg.input, size=str(side)))


def check_stages(stages: list[str]) -> list[str]:
    """The requested stages in their fixed order; an unknown or empty list is refused, and
    so is planning without rendering before assemble or metrics: a plan no render made
    frames for would be encoded or measured (see :mod:`pipeline.run.job`)."""
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown or not stages:
        close = [difflib.get_close_matches(stage, STAGES, n=1) for stage in unknown]
        mean = "; ".join(
            f"did you mean '{c[0]}' for '{u}'?" for u, c in zip(unknown, close, strict=True) if c
        )
        raise RotoscopeError(
            f"stages={list(stages)} is not a list of {', '.join(STAGES)}",
            f"{mean + ' ' if mean else ''}for example stages=[plan] for a dry run",
        )
    ordered = [stage for stage in STAGES if stage in stages]
    later = [stage for stage in ("upscale", "assemble", "metrics") if stage in ordered]
    if "plan" in ordered and "render" not in ordered and later:
        raise RotoscopeError(
            f"stages={ordered} plans without rendering, then runs {' and '.join(later)} on "
            "frames no render of that plan made",
            f"stages=[plan,render,{','.join(later)}] (frames on disk are reused), or "
            f"stages=[{','.join(later)}] for the last render",
        )
    return ordered


def load_keyframes(path_text: str | Path) -> KeyframeFile:
    """Read and check a keyframe file (YAML, a JSON prompt object, Deforum settings, or a
    PNG with A1111's generation parameters)."""
    path = find_keyframes(str(path_text))
    if path.suffix.lower() == ".png":
        parameters = import_png(path)
        for warning in parameters.warnings:
            log.warning("%s: %s", path, warning)
        return keyframe_file(path, parameters.keyframes)
    data = read_keyframe_data(path)
    if is_deforum_settings(data):
        converted = import_deforum(path)
        for warning in converted.warnings:
            log.warning("%s: %s", path, warning)
        data = converted.keyframes
    return keyframe_file(path, data)


def apply_keyframes(cfg: RunConfig, explicit: Iterable[str]) -> tuple[RunConfig, dict[str, str]]:
    """``cfg`` with its keyframe file's values for every key not given on the command line
    (``explicit``), and the origin of each value the file supplied."""
    if not cfg.keyframes:
        return cfg, {}
    return apply_keyframe_file(cfg, load_keyframes(cfg.keyframes), explicit)
