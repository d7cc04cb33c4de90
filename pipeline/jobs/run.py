"""One job: the plan, render and assemble stages over a run folder.

The run folder is the only state the stages share (resolved config, plan, source
description, frames, manifest, log), so each stage can run alone: ``stages=[plan]`` is a
dry run that loads no model, ``stages=[assemble]`` re-encodes what is on disk.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf
from PIL import Image

from pipeline.assemble.encode import AudioSpec, encode_video, output_path, write_image_folder
from pipeline.config.keyframes import apply_keyframes
from pipeline.config.schema import STAGES, AnimationMode, OutputFormat, RunConfig
from pipeline.control.maps import CONTROL_DIR, ControlMaps, check_units, preview_frame
from pipeline.errors import RotoscopeError
from pipeline.jobs.disk import check_free_space
from pipeline.jobs.interrupts import GracefulStop, StopRequested
from pipeline.jobs.lock import RunLock
from pipeline.jobs.manifest import FRAMES_DIR, Manifest
from pipeline.jobs.progress import Progress, format_duration
from pipeline.jobs.report import JobReport
from pipeline.plan.build import Plan, build_plan, read_plan, write_plan
from pipeline.plan.chart import write_plan_chart
from pipeline.source.open import SourceInfo, open_source

if TYPE_CHECKING:  # torch and diffusers load only when a stage renders
    from pipeline.models.loader import LoadedModel
    from pipeline.render.renderer import LoadedControlNet, Renderer

log = logging.getLogger("rotoscope")

LOG_NAME = "rotoscope.log"
CONFIG_NAME = "config.yaml"
SOURCE_JSON = "source.json"
PLAN_CHART = "plan.png"
IMAGES_DIR = "images"


def run_job(
    cfg: RunConfig,
    run_dir: Path,
    explicit: frozenset[str] = frozenset(),
    command: str | None = None,
) -> JobReport:
    """Run the configured stages in order inside ``run_dir``, holding its lock.

    ``explicit`` names the config keys given on the command line: they win over a
    keyframe file's values (which win over presets and defaults). ``command`` is what
    resumes this job; it goes into the report. The report is written whatever happens.
    """
    stages = check_stages(cfg.stages)
    cfg, origins = apply_keyframes(cfg, explicit)
    started = time.monotonic()
    with RunLock(run_dir):
        report = JobReport(run_dir=str(run_dir), resume_command=command)
        try:
            (run_dir / CONFIG_NAME).write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
            log.info("run folder: %s", run_dir)
            if "plan" in stages:
                report.planned = plan_stage(cfg, run_dir, origins)
            if "control" in stages:
                report.outputs.append(str(control_stage(cfg, run_dir)))
            if "render" in stages:
                render_stage(cfg, run_dir, report)
            if "assemble" in stages:
                report.outputs.append(str(assemble_stage(cfg, run_dir)))
            report.status = "done"
        except StopRequested:
            report.status = "interrupted"
            raise
        except BaseException as exc:
            report.status = "failed"
            report.error = str(exc) or type(exc).__name__
            raise
        finally:
            report.finish(time.monotonic() - started)
            report.write(run_dir)
            log.info("%s", report.line())
    return report


def check_stages(stages: list[str]) -> list[str]:
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown or not stages:
        raise RotoscopeError(
            f"stages={list(stages)} is not a list of {', '.join(STAGES)}",
            "for example stages=[plan] for a dry run",
        )
    return [stage for stage in STAGES if stage in stages]


def plan_stage(cfg: RunConfig, run_dir: Path, origins: dict[str, str]) -> int:
    """Probe the source, resolve every schedule and write the plan; no model is loaded."""
    with open_source(cfg.input) as source:
        info = source.info
        count = source.count_frames()
    if cfg.animation.mode is AnimationMode.loopback and cfg.input.max_frames:
        count = cfg.input.max_frames  # loopback needs only the first frame as its start
    if count == 0:
        raise RotoscopeError(f"input.path '{cfg.input.path}' selects no frames", _range_hint())
    if cfg.controlnet.units:
        if cfg.animation.mode is AnimationMode.loopback:
            raise RotoscopeError(
                "controlnet units with animation.mode=loopback are not supported",
                "use controlnet with animation=none, or loopback without controlnet",
            )
        check_units(cfg, count, info.width, info.height)
    plan = build_plan(cfg, count, info.width, info.height, info.fps, origins)
    write_plan(plan, run_dir)
    write_plan_chart(
        plan.series, [(k.frame, k.prompt) for k in plan.prompt_keys], run_dir / PLAN_CHART
    )
    (run_dir / SOURCE_JSON).write_text(json.dumps(_info_dict(info), indent=2))
    log.info("plan: %s", summarize(plan, info, cfg))
    return count


def summarize(plan: Plan, info: SourceInfo, cfg: RunConfig) -> str:
    """One line a user can check before rendering: size, frames, ranges, prompts."""

    def span(values: list[float]) -> str:
        low, high = min(values), max(values)
        return (
            f"{low:g}" if low == high else f"{values[0]:g}..{values[-1]:g} (range {low:g}-{high:g})"
        )

    rows = plan.rows
    seeds = sorted({row.seed for row in rows})
    seed_text = (
        f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds ({cfg.seed_behavior.value})"
    )
    mode = ", loopback" if cfg.animation.mode is AnimationMode.loopback else ""
    size = f"{info.width}x{info.height} at {info.fps:g} fps{mode}"
    return "; ".join(
        [
            f"{len(rows)} frames of {info.path} ({info.kind}, {size})",
            f"{len(plan.prompt_keys)} prompt keyframe(s)",
            f"strength {span([r.strength for r in rows])}",
            f"guidance {span([r.guidance_scale for r in rows])}",
            f"steps {span([float(r.steps) for r in rows])}",
            rows[0].sampler,
            seed_text,
        ]
    )


def _range_hint() -> str:
    return "check input.start / input.end / input.max_frames"


def _info_dict(info: SourceInfo) -> dict[str, Any]:
    data = asdict(info)
    data["path"] = str(info.path)
    return data


def read_source_info(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SOURCE_JSON
    if not path.exists():
        raise RotoscopeError(f"no {SOURCE_JSON} in {run_dir}", "run the plan stage first")
    return json.loads(path.read_text())


def render_stage(cfg: RunConfig, run_dir: Path, report: JobReport) -> None:
    """Render every planned frame whose key is not already in the manifest."""
    from pipeline.models.controlnets import controlnet_identity
    from pipeline.models.loader import model_identity
    from pipeline.render.producer import FrameProducer, render_frames, render_loopback

    rows = read_plan(run_dir)
    report.planned = report.planned or len(rows)
    remove_partial_frames(run_dir)
    manifest = Manifest(run_dir)
    pending = len(rows) - len(manifest.finished(len(rows)))
    check_free_space(run_dir, pending, rows[0].width, rows[0].height)
    progress = Progress(len(rows), log_every=cfg.runtime.log_every)
    started = time.monotonic()
    units = cfg.controlnet.units
    # the ControlNets' weights shape the frame as much as the base model's
    identity = "\n".join(
        [
            model_identity(cfg.model, cfg.runtime),
            *(controlnet_identity(unit.model) for unit in units.values()),
        ]
    )
    try:
        with (
            GracefulStop() as stop,
            open_source(cfg.input) as source,
            ControlMaps(cfg, run_dir, rows[0].width, rows[0].height) as maps,
        ):
            producer = FrameProducer(
                run_dir, manifest, identity, lambda: load_renderer(cfg), progress, report,
                stop, control=maps if units else None,
            )  # fmt: skip
            if cfg.animation.mode is AnimationMode.loopback:
                render_loopback(producer, rows, source, cfg.animation)
            else:
                render_frames(producer, rows, source)
    finally:
        progress.close()
        elapsed = time.monotonic() - started
        per_frame = f", {elapsed / progress.rendered:.2f} s/frame" if progress.rendered else ""
        log.info(
            "render: %d rendered, %d reused, in %s%s",
            progress.rendered, progress.reused, format_duration(elapsed), per_frame,
        )  # fmt: skip


def load_renderer(cfg: RunConfig) -> Renderer:
    """Load the model (and ControlNets): called when the first frame needs rendering."""
    from pipeline.models.loader import load_model
    from pipeline.render.renderer import Renderer

    log.info("loading model %s", cfg.model.path)
    model = load_model(cfg.model, cfg.runtime)
    dtype = str(model.dtype).removeprefix("torch.")
    log.info("model %s on %s (%s)", model.name, model.device, dtype)
    return Renderer(model, load_units(cfg, model), cfg.controlnet.mode)


def load_units(cfg: RunConfig, model: LoadedModel) -> list[LoadedControlNet]:
    """Load each ControlNet unit's weights next to the base model."""
    from pipeline.models.controlnets import controlnet_identity, load_controlnet
    from pipeline.render.renderer import LoadedControlNet

    units = []
    for name, unit in cfg.controlnet.units.items():
        log.info("loading controlnet %s: %s", name, unit.model)
        units.append(
            LoadedControlNet(
                unit=name,
                path=unit.model,
                preprocessor=unit.preprocessor,
                net=load_controlnet(unit.model, model, cfg.runtime.offline),
                identity=controlnet_identity(unit.model),
            )
        )
    return units


def control_stage(cfg: RunConfig, run_dir: Path) -> Path:
    """Compute (or reuse) every control map and write a side-by-side preview video.

    Runs the preprocessors only, no diffusion model, so maps can be checked before
    spending GPU hours; the render stage then reuses the cached maps.
    """
    if not cfg.controlnet.units:
        raise RotoscopeError("stages includes control but no controlnet units are set",
                             "add units, e.g. controlnet=canny")  # fmt: skip
    rows = read_plan(run_dir)
    info = read_source_info(run_dir)
    preview_dir = run_dir / CONTROL_DIR / "preview"
    preview_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress(len(rows), label="control maps", log_every=cfg.runtime.log_every)
    frames = []
    with (
        open_source(cfg.input) as source,
        ControlMaps(cfg, run_dir, rows[0].width, rows[0].height) as maps,
    ):
        for frame in source:
            if frame.index >= len(rows):
                break
            unit_maps = maps.maps(frame.index, frame.image)
            reused = all(unit_map.cached for unit_map in unit_maps)
            composite = preview_frame(frame.image, [unit_map.load() for unit_map in unit_maps])
            path = preview_dir / f"{frame.index:06d}.png"
            Image.fromarray(composite).save(path, compress_level=1)
            frames.append(path)
            progress.advance(reused=reused)
    progress.close()
    out = run_dir / CONTROL_DIR / "preview.mp4"
    encode_video(frames, out, OutputFormat.mp4, info["fps"], crf=cfg.output.crf)
    shutil.rmtree(preview_dir)  # the composites only feed the preview video
    log.info("control preview: %s (input | %s)", out, " | ".join(cfg.controlnet.units))
    return out


def remove_partial_frames(run_dir: Path) -> None:
    """Delete temp files a killed process left mid-write (never a finished frame)."""
    for partial in (run_dir / FRAMES_DIR).glob(".*.tmp"):
        partial.unlink(missing_ok=True)


def assemble_stage(cfg: RunConfig, run_dir: Path) -> Path:
    """Encode the finished frames (or copy them into an image folder)."""
    rows = read_plan(run_dir)
    info = read_source_info(run_dir)
    records = Manifest(run_dir).finished(len(rows))
    if not records:
        raise RotoscopeError(f"no rendered frames in {run_dir}", "run the render stage first")
    if len(records) < len(rows):
        log.warning("assembling %d of %d planned frames", len(records), len(rows))
    frames = [run_dir / record.file for record in records]
    fmt = cfg.output.format
    if fmt == OutputFormat.images:
        names = [r.source_name for r in records] if info["kind"] != "video" else None
        out_dir = run_dir / IMAGES_DIR
        write_image_folder(frames, names, out_dir)
        log.info("images: %s (%d files)", out_dir, len(frames))
        print(out_dir)
        return out_dir
    fps = cfg.output.fps or info["fps"]
    audio = None
    if cfg.output.audio and info["has_audio"] and fmt != OutputFormat.gif:
        duration = len(records) / info["fps"]
        audio = AudioSpec(path=Path(info["path"]), start=info["start_time"], duration=duration)
    out = output_path(run_dir, cfg.name, fmt)
    encode_video(frames, out, fmt, fps, crf=cfg.output.crf, preset=cfg.output.preset, audio=audio)
    log.info(
        "video: %s (%d frames at %g fps%s)", out, len(frames), fps, ", with audio" if audio else ""
    )
    print(out)
    return out
