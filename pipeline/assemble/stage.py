"""The assemble stage: the finished frames encoded as a video, or copied as images.

It reads the manifest's current frame of each index, writes the deliverable under a
hidden staging name and then publishes it (:func:`pipeline.records.history.publish`): a
deliverable made from other frames or options than the one it replaces moves the old
one into ``history/`` first, so a new look never destroys the last one.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.assemble.depth_video import write_depth_video
from pipeline.assemble.encode import ALPHA_FORMATS, encode_video, video_extension
from pipeline.assemble.images import write_image_folder
from pipeline.assemble.soundtrack import soundtrack
from pipeline.config.schema import OutputFormat, RunConfig
from pipeline.errors import RotoscopeError, plural
from pipeline.ffmpeg_exe import ffmpeg_exe
from pipeline.plan.rows import read_plan
from pipeline.records.history import clear_staging, publish, recipe_of
from pipeline.records.manifest import FrameRecord, Manifest
from pipeline.records.report import JobReport, frame_ranges
from pipeline.records.run_folder import RunFolder
from pipeline.source.base import SourceInfo, SourceKind

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
    frames = [folder.path / record.file for record in records]
    keys = [record.key for record in records]
    if cfg.animation.save_depth:
        depth = write_depth_video(cfg, folder, records, cfg.output.fps or info.fps)
        if depth is not None and depth[1] is not None and report is not None:
            report.previous_outputs.append(str(depth[1]))
    fmt = cfg.output.format
    alpha = fmt in ALPHA_FORMATS or (fmt is OutputFormat.images and cfg.output.alpha)
    masks = masks_of(folder, records) if alpha or cfg.output.matte else []
    if fmt == OutputFormat.images:
        # a folder (or one still) keeps its file names; a video or a repeated still is
        # numbered like a video
        keep_names = info.kind is SourceKind.folder or (
            info.kind is SourceKind.image and len(records) == 1
        )
        names = [r.source_name or f"{r.index:06d}.png" for r in records] if keep_names else None
        staged = folder.staging(folder.images.name)
        clear_staging(staged)
        write_image_folder(frames, names, staged, masks if alpha else None)
        parts = {"format": fmt.value, "frames": keys, "names": names}
        recipe = recipe_of({**parts, "alpha": True} if alpha else parts)
        _published(folder, staged, folder.images, recipe, report)
        log.info("images: %s (%s)", folder.images, plural(len(frames), "file"))
        if cfg.output.matte:
            staged = folder.staging(folder.mattes.name)
            clear_staging(staged)
            write_image_folder(masks, names, staged)
            recipe = recipe_of({"matte": True, "frames": keys, "names": names})
            _published(folder, staged, folder.mattes, recipe, report)
            log.info("mattes: %s", folder.mattes)
        print(folder.images)
        return folder.images
    fps = cfg.output.fps or info.fps
    audio = soundtrack(cfg.output, info, len(records)) if fmt != OutputFormat.gif else None
    out = folder.video(video_extension(fmt))
    staged = folder.staging(out.name)
    clear_staging(staged)
    options: dict[str, int | str] = {"crf": cfg.output.crf, "preset": cfg.output.preset}
    encode_video(
        frames, staged, fmt, fps, audio=audio, crf=cfg.output.crf, preset=cfg.output.preset,
        alphas=masks if alpha else None,
    )  # fmt: skip
    recipe = recipe_of({
        "format": fmt.value, "fps": fps, "audio": audio, "frames": keys, "ffmpeg": ffmpeg_exe(),
        **options,
    })  # fmt: skip
    _published(folder, staged, out, recipe, report)
    if cfg.output.matte:
        matte = folder.matte_video(video_extension(fmt))
        staged = folder.staging(matte.name)
        clear_staging(staged)
        encode_video(masks, staged, fmt, fps, crf=cfg.output.crf, preset=cfg.output.preset)
        recipe = recipe_of({"matte": True, "format": fmt.value, "fps": fps, "frames": keys,
                            "ffmpeg": ffmpeg_exe(), **options})  # fmt: skip
        _published(folder, staged, matte, recipe, report)
        log.info("matte: %s", matte)
    log.info(
        "video: %s (%s at %g fps%s)",
        out, plural(len(frames), "frame"), fps, ", with audio" if audio else "",
    )  # fmt: skip
    print(out)
    return out


def masks_of(folder: RunFolder, records: list[FrameRecord]) -> list[Path]:
    """The mask of each frame (what alpha channels and mattes show), in frame order."""
    unmasked = [record.index for record in records if not record.mask]
    if unmasked:
        raise RotoscopeError(
            f"frames {frame_ranges(unmasked)} were rendered without a mask, so they have "
            "no alpha or matte",
            "render them with the mask (stages=[plan,render,assemble]), or drop "
            "output.alpha / output.matte / the alpha format",
        )
    masks = [folder.mask(record.mask) for record in records]
    missing = [
        record.index for record, mask in zip(records, masks, strict=True) if not mask.is_file()
    ]
    if missing:
        raise RotoscopeError(
            f"the masks of frames {frame_ranges(missing)} are missing from {folder.masks}",
            "run the render stage again (stages=[plan,render,assemble]): it writes the "
            "mask of every frame it finds current",
        )
    return masks


def _published(
    folder: RunFolder, staged: Path, final: Path, recipe: str, report: JobReport | None
) -> None:
    previous = publish(folder, staged, final, recipe)
    if previous is not None and report is not None:
        report.previous_outputs.append(str(previous))
