"""``animation.save_depth``: the depth of every output frame as a video beside the output.

The loopback strategy keeps each output's depth map in the run folder under the frame's
key (:mod:`pipeline.animation.depth_cache`); this encodes the maps of the current frames,
in order, as an 8-bit grayscale video (white near, black far) named
``<folder>-depth.<ext>``, in the first video format the output lists (mp4 when it lists only
an image folder). Like every deliverable it is written under a hidden name first and replaces an
earlier, different depth video only after moving it to ``history/``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from pipeline.animation.depth_cache import preview
from pipeline.assemble.encode import encode_video, video_extension
from pipeline.config.schema import OutputFormat, RunConfig
from pipeline.errors import plural
from pipeline.records.history import clear_staging, publish, recipe_of
from pipeline.records.manifest import FrameRecord
from pipeline.records.report import frame_ranges
from pipeline.records.run_folder import RunFolder

log = logging.getLogger("rotoscope")


def write_depth_video(
    cfg: RunConfig,
    folder: RunFolder,
    records: list[FrameRecord],
    fps: float,
    fmt: OutputFormat,
    provenance: dict[str, Any],
) -> tuple[Path, Path | None] | None:
    """Encode the current frames' depth maps as a ``fmt`` video with its ``provenance``
    sidecar, like every deliverable; the video and the earlier one it moved to
    ``history/`` (if any), or None when a map is missing (a warning says which)."""
    maps = [folder.depth_map(record.key) for record in records]
    missing = [
        record.index for record, path in zip(records, maps, strict=True) if not path.is_file()
    ]
    if missing:
        log.warning(
            "no depth video: %s lack a depth map (frames %s); run the render stage with "
            "animation.save_depth=true", plural(len(missing), "frame"), frame_ranges(missing),
        )  # fmt: skip
        return None
    out = folder.depth_video(video_extension(fmt))
    staged = folder.staging(out.name)
    clear_staging(staged)
    with tempfile.TemporaryDirectory(prefix="rotoscope-depth-") as work:
        frames = []
        for number, path in enumerate(maps):
            frame = Path(work) / f"{number:06d}.png"
            Image.fromarray(preview(path)).save(frame, compress_level=1)
            frames.append(frame)
        encode_video(frames, staged, fmt, fps, crf=cfg.output.crf, preset=cfg.output.preset)
    recipe = recipe_of({"depth of": [record.key for record in records], "format": fmt.value,
                        "fps": fps, "crf": cfg.output.crf})  # fmt: skip
    previous = publish(folder, staged, out, recipe, provenance)
    log.info("depth video: %s (%s)", out, plural(len(records), "frame"))
    return out, previous
