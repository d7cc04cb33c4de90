"""The assemble stage: the finished frames encoded as a video, or copied as images."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.assemble.encode import AudioSpec, encode_video, video_extension
from pipeline.assemble.images import write_image_folder
from pipeline.config.schema import OutputFormat, RunConfig
from pipeline.errors import RotoscopeError
from pipeline.jobs.manifest import Manifest
from pipeline.jobs.run_folder import RunFolder
from pipeline.plan.rows import read_plan
from pipeline.source.base import SourceInfo

log = logging.getLogger("rotoscope")


def assemble_stage(cfg: RunConfig, folder: RunFolder) -> Path:
    """Encode the finished frames (or copy them into an image folder); print the result."""
    rows = read_plan(folder)
    info = SourceInfo.read(folder.source_json)
    records = Manifest(folder).finished(len(rows))
    if not records:
        raise RotoscopeError(f"no rendered frames in {folder}", "run the render stage first")
    if len(records) < len(rows):
        log.warning("assembling %d of %d planned frames", len(records), len(rows))
    frames = [folder.path / record.file for record in records]
    fmt = cfg.output.format
    if fmt == OutputFormat.images:
        names = [r.source_name for r in records] if info.kind != "video" else None
        write_image_folder(frames, names, folder.images)
        log.info("images: %s (%d files)", folder.images, len(frames))
        print(folder.images)
        return folder.images
    fps = cfg.output.fps or info.fps
    audio = None
    if cfg.output.audio and info.has_audio and fmt != OutputFormat.gif:
        duration = len(records) / info.fps
        audio = AudioSpec(path=info.path, start=info.start_time, duration=duration)
    out = folder.video(cfg.name, video_extension(fmt))
    encode_video(frames, out, fmt, fps, crf=cfg.output.crf, preset=cfg.output.preset, audio=audio)
    log.info(
        "video: %s (%d frames at %g fps%s)", out, len(frames), fps, ", with audio" if audio else ""
    )
    print(out)
    return out
