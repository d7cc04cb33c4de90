"""One frame's upscale: what it reads, what it makes, and where that goes.

The same code runs in the stage's own process and on Ray workers: a job names the
rendered frame, its delivered size and the key of the result; :func:`make_upscaled`
reads the frame, upscales it and writes the result atomically under its key, carrying
the rendered frame's PNG text (A1111's parameters, rotoscope's details) along with a
line saying how it was upscaled.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from pipeline.atomic import atomic_path
from pipeline.errors import RotoscopeError
from pipeline.records.run_folder import RunFolder
from pipeline.records.upscaled import UpscaledFrame
from pipeline.upscale.frames import FrameUpscaler

# The PNG text chunk an upscaled frame adds to its rendered frame's.
UPSCALE_KEY = "rotoscope-upscale"


@dataclass(frozen=True)
class UpscaleJob:
    """Frame ``index``'s rendered file made into ``key`` at ``size``."""

    index: int
    frame: str  # the rendered frame's key
    rendered: str  # its file, relative to the run folder
    recipe: str
    key: str
    size: tuple[int, int]

    def record(self) -> UpscaledFrame:
        return UpscaledFrame(
            index=self.index,
            frame=self.frame,
            recipe=self.recipe,
            key=self.key,
            file=RunFolder.upscaled_name(self.key),
            width=self.size[0],
            height=self.size[1],
        )


def make_upscaled(
    job: UpscaleJob, folder: RunFolder, upscale: FrameUpscaler, upscaler_name: str
) -> UpscaledFrame:
    """Upscale ``job``'s frame and write it durably; its record (not yet in the index)."""
    source = folder.path / job.rendered
    try:
        with Image.open(source) as image:
            text = dict(getattr(image, "text", {}) or {})
            pixels = np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise RotoscopeError(
            f"cannot read rendered frame {source}: {exc}", "render it again (stages=[render])"
        ) from exc
    result = upscale(pixels, job.size)
    record = job.record()
    write_upscaled(folder.path / record.file, result, text, upscaler_name, job.frame)
    return record


def write_upscaled(
    path: Path, image: np.ndarray, text: dict[str, str], upscaler: str, frame: str
) -> None:
    """Write an upscaled frame with its rendered frame's text chunks, atomically
    (compressed as rendered frames are: see :mod:`pipeline.render.pngmeta`)."""
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_itxt(key, value)
    how = {"upscaler": upscaler, "size": [image.shape[1], image.shape[0]], "frame": frame}
    info.add_itxt(UPSCALE_KEY, json.dumps(how, sort_keys=True))
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(
            tmp, format="PNG", pnginfo=info, compress_level=4, compress_type=zlib.Z_RLE
        )
