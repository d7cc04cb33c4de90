"""The assemble stage: the finished frames encoded as a video, or copied as images.

It reads the manifest's current frame of each index (at its delivered size: the upscale
stage's frame where the delivery rules ask for one, :mod:`pipeline.upscale.delivery`),
retimes them where the output's rate differs (in-between frames,
:mod:`pipeline.assemble.interpolate`), writes the deliverable under a hidden staging name
and then publishes it (:func:`pipeline.records.history.publish`): a deliverable made from
other frames or options than the one it replaces moves the old one into ``history/``
first, so a new look never destroys the last one.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.assemble.encode import AudioSpec, MotionInterpolation, encode_video, video_extension
from pipeline.assemble.images import write_image_folder
from pipeline.assemble.interpolate import in_betweens_for, retimed_frames
from pipeline.assemble.timeline import Timeline, exact, timeline
from pipeline.config.schema import FrameInterpolation, OutputFormat, RunConfig
from pipeline.errors import RotoscopeError, plural
from pipeline.ffmpeg_exe import ffmpeg_exe
from pipeline.plan.rows import read_plan
from pipeline.records.history import clear_staging, publish, recipe_of
from pipeline.records.manifest import FrameRecord, Manifest
from pipeline.records.report import JobReport, frame_ranges
from pipeline.records.run_folder import RunFolder
from pipeline.records.upscaled import UpscaledFrames
from pipeline.source.base import SourceInfo, SourceKind
from pipeline.upscale.delivery import finishing_of

log = logging.getLogger("rotoscope")


def assemble_stage(cfg: RunConfig, folder: RunFolder, report: JobReport | None = None) -> Path:
    """Encode the finished frames (or copy them into an image folder); print the result.

    Where the deliverable it replaced went (if anywhere) is added to the report's
    ``previous_outputs``.
    """
    rows = read_plan(folder)
    info = SourceInfo.read(folder.source_json)
    records, outdated = Manifest(folder).finished(rows)
    if outdated:
        log.warning(
            "left out %s made for an earlier plan (frames %s): run the render stage to "
            "render them for this one",
            plural(len(outdated), "frame"), frame_ranges(outdated),
        )  # fmt: skip
    if not records:
        raise RotoscopeError(f"no rendered frames in {folder}", "run the render stage first")
    if len(records) < len(rows):
        log.warning("assembling %d of %s", len(records), plural(len(rows), "planned frame"))
    frames, keys = delivered_frames(cfg, folder, info, records)
    line = timeline(len(frames), info.fps, cfg.output)
    motion = None
    if line.retimed and cfg.output.interpolation is FrameInterpolation.minterpolate:
        motion = MotionInterpolation(
            exact(info.fps) / cfg.output.slow_motion, line.rate, len(line.moments)
        )
        # the last frame holds for its whole frame time; minterpolate makes frames only up
        # to its next-to-last input frame, so it gets the last one twice more
        frames = [*frames, frames[-1], frames[-1]]
    elif line.retimed:
        frames, keys = retimed_frames(
            folder, frames, keys, line, in_betweens_for(cfg), report, cfg.runtime.log_every
        )
    timing = _timing(cfg, line)
    fmt = cfg.output.format
    if fmt == OutputFormat.images:
        # a folder (or one still) keeps its file names; a video, a repeated still or a
        # retimed clip is numbered like a video
        keep_names = not line.retimed and (
            info.kind is SourceKind.folder or (info.kind is SourceKind.image and len(records) == 1)
        )
        names = [r.source_name or f"{r.index:06d}.png" for r in records] if keep_names else None
        staged = folder.staging(folder.images.name)
        clear_staging(staged)
        write_image_folder(frames, names, staged)
        recipe = recipe_of({"format": fmt.value, "frames": keys, "names": names, **timing})
        _published(folder, staged, folder.images, recipe, report)
        log.info("images: %s (%s)", folder.images, plural(len(frames), "file"))
        print(folder.images)
        return folder.images
    fps = float(line.rate) if line.retimed else cfg.output.fps or info.fps
    audio = None
    if cfg.output.audio and info.has_audio and fmt != OutputFormat.gif:
        if cfg.output.slow_motion > 1:
            log.info("slow motion: the source's audio is left out (it would not fit the picture)")
        else:
            duration = len(records) / info.fps
            audio = AudioSpec(path=info.path, start=info.start_time, duration=duration)
    out = folder.video(video_extension(fmt))
    staged = folder.staging(out.name)
    clear_staging(staged)
    options: dict[str, int | str] = {"crf": cfg.output.crf, "preset": cfg.output.preset}
    encode_video(
        frames, staged, fmt, fps, audio=audio, crf=cfg.output.crf, preset=cfg.output.preset,
        motion=motion,
    )  # fmt: skip
    recipe = recipe_of({
        "format": fmt.value, "fps": fps, "audio": audio, "frames": keys, "ffmpeg": ffmpeg_exe(),
        **options, **timing,
    })  # fmt: skip
    _published(folder, staged, out, recipe, report)
    count = motion.frames if motion else len(frames)
    log.info(
        "video: %s (%s at %g fps%s)",
        out, plural(count, "frame"), fps, ", with audio" if audio else "",
    )  # fmt: skip
    print(out)
    return out


def _timing(cfg: RunConfig, line: Timeline) -> dict[str, str]:
    """What a retimed deliverable's recipe adds (nothing for one frame per frame, so the
    recipes of earlier deliverables stay the same)."""
    if not line.retimed:
        return {}
    return {
        "interpolation": cfg.output.interpolation.value,
        "moments": recipe_of([(m.first, str(m.fraction)) for m in line.moments]),
    }


def delivered_frames(
    cfg: RunConfig, folder: RunFolder, info: SourceInfo, records: list[FrameRecord]
) -> tuple[list[Path], list[str]]:
    """Each finished frame's file at its delivered size, and its key: the rendered frame,
    or the upscale stage's frame made from it by the current upscaler and size."""
    finishing = finishing_of(cfg, info, [record.index for record in records])
    if not finishing.active:
        return [folder.path / r.file for r in records], [r.key for r in records]
    upscaled = UpscaledFrames(folder)
    frames, keys, missing = [], [], []
    for record in records:
        recipe = finishing.recipe(record.index)
        found = None if recipe is None else upscaled.current(record.index, record.key, recipe)
        if recipe is not None and found is None:
            missing.append(record.index)
        elif found is not None:
            frames.append(folder.path / found.file)
            keys.append(found.key)
        else:
            frames.append(folder.path / record.file)
            keys.append(record.key)
    if missing:
        assert finishing.upscaler is not None
        width, height = finishing.sizes[missing[0]]
        raise RotoscopeError(
            f"{plural(len(missing), 'frame')} ({frame_ranges(missing)}) have no {width}x{height} "
            f"version made by {finishing.upscaler.name} yet",
            "run the upscale stage before assembling: stages=[upscale,assemble]",
        )
    return frames, keys


def _published(
    folder: RunFolder, staged: Path, final: Path, recipe: str, report: JobReport | None
) -> None:
    previous = publish(folder, staged, final, recipe)
    if previous is not None and report is not None:
        report.previous_outputs.append(str(previous))
