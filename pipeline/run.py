"""One job: the plan, render and assemble stages over a run folder.

The run folder is the only state the stages share (resolved config, plan, source
description, frames, manifest, log), so each stage can run alone: ``stages=[plan]`` is a
dry run that loads no model, ``stages=[assemble]`` re-encodes what is on disk.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from pipeline import __version__
from pipeline.assemble import AudioSpec, encode_video, output_path, write_image_folder
from pipeline.config import STAGES, OutputFormat, RunConfig
from pipeline.errors import RotoscopeError
from pipeline.manifest import FrameRecord, Manifest, frame_file, frame_key
from pipeline.plan import FrameJob, build_plan, read_plan, write_plan
from pipeline.pngmeta import a1111_parameters, write_png
from pipeline.progress import Progress, format_duration
from pipeline.sources import Source, SourceInfo, open_source

log = logging.getLogger("rotoscope")

LOG_NAME = "rotoscope.log"
CONFIG_NAME = "config.yaml"
SOURCE_JSON = "source.json"
IMAGES_DIR = "images"


@dataclass
class JobResult:
    """What a job did, for the closing summary (and for queues of jobs)."""

    run_dir: Path
    planned: int = 0
    rendered: int = 0
    reused: int = 0
    output: Path | None = None


def run_job(cfg: RunConfig, run_dir: Path) -> JobResult:
    """Run the configured stages in order inside ``run_dir``."""
    stages = check_stages(cfg.stages)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_NAME).write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    log.info("run folder: %s", run_dir)
    result = JobResult(run_dir=run_dir)
    if "plan" in stages:
        result.planned = plan_stage(cfg, run_dir)
    if "render" in stages:
        render_stage(cfg, run_dir, result)
    if "assemble" in stages:
        result.output = assemble_stage(cfg, run_dir)
    return result


def check_stages(stages: list[str]) -> list[str]:
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown or not stages:
        raise RotoscopeError(
            f"stages={list(stages)} is not a list of {', '.join(STAGES)}",
            "for example stages=[plan] for a dry run",
        )
    return [stage for stage in STAGES if stage in stages]


def plan_stage(cfg: RunConfig, run_dir: Path) -> int:
    """Probe the source and write the plan; no model is loaded."""
    with open_source(cfg.input) as source:
        info = source.info
        count = source.count_frames()
    if count == 0:
        raise RotoscopeError(f"input.path '{cfg.input.path}' selects no frames", _range_hint())
    rows = build_plan(cfg, count, info.width, info.height)
    write_plan(rows, run_dir)
    (run_dir / SOURCE_JSON).write_text(json.dumps(_info_dict(info), indent=2))
    log.info(
        "plan: %d frames of %s (%s, %dx%d at %g fps), %d steps %s, strength %g, seed %d",
        count, info.path, info.kind, info.width, info.height, info.fps,
        cfg.steps, rows[0].sampler, cfg.strength, cfg.seed,
    )  # fmt: skip
    return count


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


def render_stage(cfg: RunConfig, run_dir: Path, result: JobResult) -> None:
    """Render every planned frame whose key is not already in the manifest."""
    from pipeline.model_loader import load_model  # torch/diffusers import only when rendering
    from pipeline.render import Renderer

    rows = read_plan(run_dir)
    manifest = Manifest(run_dir)
    progress = Progress(len(rows), log_every=cfg.runtime.log_every)
    started = time.monotonic()
    log.info("loading model %s", cfg.model.path)
    model = load_model(cfg.model, cfg.runtime)
    renderer = Renderer(model)
    log.info(
        "model %s on %s (%s)", model.name, model.device, str(model.dtype).removeprefix("torch.")
    )
    with open_source(cfg.input) as source:
        for frame in source:
            if frame.index >= len(rows):
                break
            job = rows[frame.index]
            _check_size(job, frame.image.shape, run_dir)
            key = frame_key(job, frame.image, model.identity)
            if manifest.current(frame.index, key):
                progress.advance(reused=True)
                continue
            image = renderer.render(job, frame.image)
            details = {
                "rotoscope": __version__,
                "key": key,
                "plan": asdict(job),
                "source": {
                    "path": str(source.info.path),
                    "index": frame.source_index,
                    "time": frame.time,
                    "name": frame.name,
                },
                "model": {"name": model.name, "identity": model.identity, "hash": model.model_hash},
            }
            parameters = a1111_parameters(job, model.name, model.model_hash)
            write_png(run_dir / frame_file(frame.index), image, parameters, details)
            manifest.add(
                FrameRecord(
                    index=frame.index,
                    file=frame_file(frame.index),
                    key=key,
                    source_index=frame.source_index,
                    source_name=frame.name,
                    time=frame.time,
                )
            )
            progress.advance()
        progress.close()
        _report_short_source(source, len(rows))
    result.rendered, result.reused = progress.rendered, progress.reused
    elapsed = time.monotonic() - started
    per_frame = f", {elapsed / progress.rendered:.2f} s/frame" if progress.rendered else ""
    log.info(
        "render: %d rendered, %d reused, in %s%s",
        progress.rendered, progress.reused, format_duration(elapsed), per_frame,
    )  # fmt: skip


def _check_size(job: FrameJob, shape: tuple[int, ...], run_dir: Path) -> None:
    if (shape[1], shape[0]) != (job.width, job.height):
        raise RotoscopeError(
            f"frame {job.index} is {shape[1]}x{shape[0]} but the plan in {run_dir} "
            f"says {job.width}x{job.height}",
            "the input or its size changed: rerun with the plan stage",
        )


def _report_short_source(source: Source, planned: int) -> None:
    if source.frames_read < planned:
        log.warning(
            "input %s ended after %d of %d planned frames; rendered the frames it has",
            source.info.path, source.frames_read, planned,
        )  # fmt: skip


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
