"""The assemble stage: the finished frames encoded as videos, or copied as images.

It reads the manifest's current frame of each index, at its delivered size (the upscale
stage's frame where the delivery rules ask for one, :mod:`pipeline.upscale.delivery`),
retimes them where the output's rate differs (in-between frames,
:mod:`pipeline.assemble.interpolate`), and makes every format ``output.format`` lists
from those same frames (``output=[mp4,images]``: a video and a folder of PNGs). Each
deliverable is written under a hidden staging name and then published
(:func:`pipeline.records.history.publish`) with its provenance sidecar: one made from
other frames or options than the one it replaces moves the old one into ``history/``
first, so a new look never destroys the last one. A deliverable this
assemble did not make (an ``images/`` folder after a render to mp4) moves to history
too: the top of the run folder holds the outputs of the last assemble.

With masks, an alpha format (``prores_alpha``, ``webm_alpha``) or ``output.alpha`` with
images takes each frame's mask as its alpha, and ``output.matte`` writes the masks beside
each output; the masks follow the frames: retimed by the same in-between method, and
brought to the delivered size (Lanczos) when that differs from the render's. With
``animation.save_depth``, the loopback's depth maps become a video beside it too
(:mod:`pipeline.assemble.depth_video`), of the rendered frames at their rate and size.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.assemble.depth_video import write_depth_video
from pipeline.assemble.encode import (
    ALPHA_FORMATS,
    MotionInterpolation,
    encode_video,
    video_extension,
)
from pipeline.assemble.images import write_image_folder
from pipeline.assemble.interpolate import InBetweens, in_betweens_for, retimed_frames
from pipeline.assemble.soundtrack import soundtrack
from pipeline.assemble.timeline import exact, timeline
from pipeline.config.schema import FrameInterpolation, OutputFormat, RunConfig
from pipeline.errors import RotoscopeError, plural
from pipeline.ffmpeg_exe import ffmpeg_exe
from pipeline.plan.rows import read_plan
from pipeline.records.history import clear_staging, publish, recipe_of, retire_others
from pipeline.records.interrupts import GracefulStop
from pipeline.records.manifest import FrameRecord, Manifest
from pipeline.records.provenance import Provenance
from pipeline.records.report import JobReport, frame_ranges
from pipeline.records.run_folder import RunFolder
from pipeline.records.upscaled import UpscaledFrames
from pipeline.source.base import SourceInfo, SourceKind
from pipeline.source.images import source_alpha
from pipeline.upscale.delivery import finishing_of

log = logging.getLogger("rotoscope")


def assemble_stage(
    cfg: RunConfig,
    folder: RunFolder,
    report: JobReport | None = None,
    stop: GracefulStop | None = None,
    command: str | None = None,
) -> list[Path]:
    """Make every output format from the finished frames; print each result's path.

    Where the deliverables it replaced went (if anywhere) is added to the report's
    ``previous_outputs``. ``stop`` is checked between frames; ``command`` goes into each
    deliverable's sidecar.
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
    with tempfile.TemporaryDirectory(prefix="rotoscope-masks-") as scratch:
        made = Assembly(cfg, folder, info, records, report, stop, command, Path(scratch))
        outputs = [made.output(fmt) for fmt in cfg.output.format]
        if cfg.output.matte:
            outputs += [made.matte(fmt) for fmt in cfg.output.format]
        if cfg.animation.save_depth:
            outputs += made.depth_video()
    for kept in retire_others(folder, outputs):
        if report is not None:
            report.previous_outputs.append(str(kept))
    return outputs


class Assembly:
    """The deliverables of one assemble stage, all from the same frames: the delivered
    frames (upscaled where the delivery rules say), retimed along the output's timeline
    (in-between frames made or found, or ffmpeg's minterpolate inside each encode), and
    their masks along with them."""

    def __init__(
        self,
        cfg: RunConfig,
        folder: RunFolder,
        info: SourceInfo,
        records: list[FrameRecord],
        report: JobReport | None,
        stop: GracefulStop | None,
        command: str | None,
        scratch: Path,
    ) -> None:
        self.cfg, self.folder, self.info, self.records = cfg, folder, info, records
        self.report, self.stop, self.command = report, stop, command
        delivered, delivered_keys = delivered_frames(cfg, folder, info, records)
        self.line = timeline(len(delivered), info.fps, cfg.output)
        self.retimed = self.line.retimed
        # the rate the rendered frames play at (the depth video's), and the output's
        render_rate = exact(info.fps) / cfg.output.slow_motion
        self.render_fps = float(render_rate)
        self.fps = float(self.line.rate) if self.retimed else cfg.output.fps or info.fps
        self.motion: MotionInterpolation | None = None
        self.in_betweens: InBetweens | None = None
        if self.retimed and cfg.output.interpolation is FrameInterpolation.minterpolate:
            self.motion = MotionInterpolation(render_rate, self.line.rate, len(self.line.moments))
        elif self.retimed:
            self.in_betweens = in_betweens_for(cfg)
        self.frames, self.keys = self._retimed(delivered, delivered_keys, report)
        masks_shown = cfg.output.matte or cfg.output.alpha
        masks_shown = masks_shown or any(fmt in ALPHA_FORMATS for fmt in cfg.output.format)
        self.masks = self._delivered_masks(scratch) if masks_shown else []

    def _retimed(
        self, frames: list[Path], keys: list[str], report: JobReport | None
    ) -> tuple[list[Path], list[str]]:
        """``frames`` (and their keys) along the output's timeline."""
        if not self.retimed:
            return frames, keys
        if self.motion is not None:
            # the last frame holds for its whole frame time; minterpolate makes frames only
            # up to its next-to-last input frame, so it gets the last one twice more
            return [*frames, frames[-1], frames[-1]], keys
        return retimed_frames(
            self.folder, frames, keys, self.line, self.in_betweens, report,
            self.cfg.runtime.log_every, self._safe_point,
        )  # fmt: skip

    def _delivered_masks(self, scratch: Path) -> list[Path]:
        """Each output frame's mask: the frames' masks, retimed like them (keyed by the
        masks' digests), at the output frame's size (resized into ``scratch`` where the
        frame was upscaled)."""
        masks = masks_of(self.folder, self.records)
        self._check_mask_sizes(masks)
        masks, _ = self._retimed(masks, [record.mask for record in self.records], None)
        delivered = []
        for number, (mask, frame) in enumerate(zip(masks, self.frames, strict=True)):
            size = _png_size(frame)
            with Image.open(mask) as image:
                if image.size == size:
                    delivered.append(mask)
                    continue
                resized = scratch / f"{number:06d}.png"
                image.convert("L").resize(size, Image.Resampling.LANCZOS).save(resized)
            delivered.append(resized)
        return delivered

    def output(self, fmt: OutputFormat) -> Path:
        """Make and publish one format; return where it is."""
        if fmt is OutputFormat.images:
            return self._images()
        return self._video(fmt)

    def matte(self, fmt: OutputFormat) -> Path:
        """``output.matte``: the masks beside the output of ``fmt`` (a folder of grey
        PNGs beside images, a video of the same format beside a video)."""
        folder, options = self.folder, self._options()
        if fmt is OutputFormat.images:
            staged = folder.staging(folder.mattes.name)
            clear_staging(staged)
            names = self._names()
            write_image_folder(self.masks, names, staged, on_frame=self._safe_point)
            recipe = recipe_of(
                {"matte": True, "frames": self.keys, "names": names, **self._timing()}
            )
            self._publish(staged, folder.mattes, recipe, {"matte": "images", "names": names})
            log.info("mattes: %s", folder.mattes)
            return folder.mattes
        matte = folder.matte_video(video_extension(fmt))
        staged = folder.staging(matte.name)
        clear_staging(staged)
        encode_video(
            self.masks, staged, fmt, self.fps, crf=self.cfg.output.crf,
            preset=self.cfg.output.preset, on_frame=self._safe_point, motion=self.motion,
        )  # fmt: skip
        recipe = recipe_of({"matte": True, "format": fmt.value, "fps": self.fps,
                            "frames": self.keys, "ffmpeg": ffmpeg_exe(), **options,
                            **self._timing()})  # fmt: skip
        self._publish(staged, matte, recipe, {"matte": fmt.value, "fps": self.fps, **options})
        log.info("matte: %s", matte)
        return matte

    def depth_video(self) -> list[Path]:
        """``animation.save_depth``: the depth maps as a video (none when a map is
        missing: a warning says which), in the first video format asked for."""
        videos = [fmt for fmt in self.cfg.output.format if fmt is not OutputFormat.images]
        fmt = videos[0] if videos else OutputFormat.mp4
        output = {"depth": fmt.value, "fps": self.render_fps}
        final = self.folder.depth_video(video_extension(fmt))
        made = write_depth_video(
            self.cfg, self.folder, self.records, self.render_fps, fmt,
            self._provenance(final, output),
        )  # fmt: skip
        if made is None:
            return []
        video, previous = made
        if previous is not None and self.report is not None:
            self.report.previous_outputs.append(str(previous))
        return [video]

    def _safe_point(self) -> None:
        if self.stop is not None:
            self.stop.safe_point("assemble")

    def _options(self) -> dict[str, int | str]:
        return {"crf": self.cfg.output.crf, "preset": self.cfg.output.preset}

    def _timing(self) -> dict[str, str]:
        """What a retimed deliverable's recipe adds (nothing for one frame per frame, so
        the recipes of earlier deliverables stay the same)."""
        if not self.retimed:
            return {}
        return {
            "interpolation": self.cfg.output.interpolation.value,
            "moments": recipe_of([(m.first, str(m.fraction)) for m in self.line.moments]),
        }

    def _described(self) -> dict[str, object]:
        """What a sidecar says of the retiming, besides the rate."""
        if not self.retimed:
            return {}
        output = self.cfg.output
        return {"interpolation": output.interpolation.value, "slow_motion": output.slow_motion}

    def _names(self) -> list[str] | None:
        """Output file names: a folder (or one still) keeps its file names; a video, a
        repeated still or a retimed clip is numbered like a video (None)."""
        info, records = self.info, self.records
        keep_names = not self.retimed and (
            info.kind is SourceKind.folder or (info.kind is SourceKind.image and len(records) == 1)
        )
        return [r.source_name or f"{r.index:06d}.png" for r in records] if keep_names else None

    def _images(self) -> Path:
        folder = self.folder
        names = self._names()
        alphas: list[np.ndarray | None] | None = None
        if self.cfg.output.alpha:  # the masks, as the matte shows them
            alphas = [np.asarray(Image.open(mask).convert("L")) for mask in self.masks]
        elif self.info.kind is SourceKind.folder and not self.retimed:
            alphas = self._alphas()  # each photo's own alpha, where it has one
        staged = folder.staging(folder.images.name)
        clear_staging(staged)
        write_image_folder(self.frames, names, staged, alphas, self._safe_point)
        has_alpha = [alpha is not None for alpha in alphas] if alphas else None
        recipe = recipe_of({
            "format": "images", "frames": self.keys, "names": names, "alpha": has_alpha,
            **self._timing(),
        })  # fmt: skip
        described = {"format": "images", "names": names, **self._described()}
        self._publish(staged, folder.images, recipe, described)
        log.info("images: %s (%s)", folder.images, plural(len(self.frames), "file"))
        print(folder.images)
        return folder.images

    def _check_mask_sizes(self, masks: list[Path]) -> None:
        """Each mask is its rendered frame's size (anything else is a damaged run folder)."""
        for record, mask in zip(self.records, masks, strict=True):
            with Image.open(mask) as image:
                size = image.size
            wanted = (int(record.row.get("width", 0)), int(record.row.get("height", 0)))
            if size != wanted:
                raise RotoscopeError(
                    f"mask {mask} is not the size of frame {record.index} ({wanted[0]}x"
                    f"{wanted[1]})",
                    "re-render the frame (stages=[plan,render,assemble])",
                )

    def _alphas(self) -> list[np.ndarray | None]:
        """Each photo's own alpha (None for a photo without), at its delivered frame's size."""
        alphas: list[np.ndarray | None] = []
        for record, frame in zip(self.records, self.frames, strict=True):
            width, height = _png_size(frame)
            path = self.info.path / (record.source_name or "")
            found = record.source_name is not None and path.is_file()
            alphas.append(
                source_alpha(path, int(width), int(height), self.cfg.input) if found else None
            )
        return alphas

    def _video(self, fmt: OutputFormat) -> Path:
        cfg, folder, info = self.cfg, self.folder, self.info
        fps = self.fps
        audio = soundtrack(cfg.output, info, len(self.records)) if fmt != OutputFormat.gif else None
        if audio is not None and cfg.output.slow_motion > 1:
            log.info("slow motion: the audio is left out (it would not fit the picture)")
            audio = None
        out = folder.video(video_extension(fmt))
        staged = folder.staging(out.name)
        clear_staging(staged)
        options = self._options()
        encode_video(
            self.frames, staged, fmt, fps, audio=audio, crf=cfg.output.crf,
            preset=cfg.output.preset, alphas=self.masks if fmt in ALPHA_FORMATS else None,
            on_frame=self._safe_point, motion=self.motion,
        )  # fmt: skip
        recipe = recipe_of({
            "format": fmt.value, "fps": fps, "audio": audio, "frames": self.keys,
            "ffmpeg": ffmpeg_exe(), **options, **self._timing(),
        })  # fmt: skip
        described: dict[str, object] = {
            "format": fmt.value,
            "fps": fps,
            "audio": audio is not None,
            **options,
            **self._described(),
        }
        self._publish(staged, out, recipe, described)
        count = self.motion.frames if self.motion else len(self.frames)
        log.info(
            "video: %s (%s at %g fps%s)",
            out, plural(count, "frame"), fps, ", with audio" if audio else "",
        )  # fmt: skip
        print(out)
        return out

    def _provenance(self, final: Path, output: dict[str, Any]) -> dict[str, Any]:
        """The sidecar of the deliverable ``final``: what made it (see records.provenance)."""
        source = {**asdict(self.info), "path": str(self.info.path), "kind": self.info.kind.value}
        provenance = Provenance.of(final.name, self.cfg, self.command, self.records, source, output)
        return provenance.to_dict()

    def _publish(self, staged: Path, final: Path, recipe: str, output: dict[str, Any]) -> None:
        previous = publish(self.folder, staged, final, recipe, self._provenance(final, output))
        if previous is not None and self.report is not None:
            self.report.previous_outputs.append(str(previous))


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
        found = None if recipe is None else upscaled.current(record.key, recipe)
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


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size
