"""The control stage: every ControlNet map computed (or reused) and a preview video.

It runs the preprocessors only, no diffusion model, so maps can be checked before
spending GPU hours (``stages=[plan,control]``); the render stage then reuses the cached
maps.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from PIL import Image

from pipeline.assemble.encode import encode_video
from pipeline.config.schema import OutputFormat, RunConfig
from pipeline.control.maps import ControlMaps, preview_frame
from pipeline.errors import RotoscopeError
from pipeline.plan.rows import read_plan
from pipeline.records.interrupts import GracefulStop
from pipeline.records.progress import Progress
from pipeline.records.run_folder import RunFolder
from pipeline.source.base import SourceInfo
from pipeline.source.open import open_source

log = logging.getLogger("rotoscope")


def control_stage(
    cfg: RunConfig,
    folder: RunFolder,
    plan_folder: RunFolder | None = None,
    stop: GracefulStop | None = None,
) -> Path:
    """Compute (or reuse) every control map and write ``control/preview.mp4``.

    The maps are cached in ``folder``; the plan is read from ``plan_folder`` (a preview's
    own, or the run folder's). ``stop`` is checked after every frame.
    """
    if not cfg.controlnet.units:
        raise RotoscopeError("stages includes control but no controlnet units are set",
                             "add units, e.g. controlnet=canny")  # fmt: skip
    rows = read_plan(plan_folder or folder)
    info = SourceInfo.read((plan_folder or folder).source_json)
    preview_dir = folder.control / "preview"
    preview_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress(len(rows), label="control maps", log_every=cfg.runtime.log_every)
    frames = []
    with (
        open_source(cfg.input) as source,
        ControlMaps(cfg, folder, rows[0].width, rows[0].height) as maps,
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
            if stop is not None:
                stop.safe_point("control")
    progress.close()
    out = folder.control_preview
    encode_video(frames, out, OutputFormat.mp4, info.fps, crf=cfg.output.crf)
    shutil.rmtree(preview_dir)  # the composites only feed the preview video
    log.info("control preview: %s (input | %s)", out, " | ".join(cfg.controlnet.units))
    return out
