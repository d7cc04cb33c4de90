"""Thumbnails of frames and their source frames, for the report page.

The page shows a contact sheet of every frame and plays the source beside the output;
full-size PNGs would make a page of a thousand frames load for minutes. So each frame
gets a small JPEG once, under its key (a new look gets new thumbnails, an unchanged
frame never makes one again): the render makes them from the pixels it already holds,
in the frame writer's pool (:mod:`pipeline.records.writer`), so the renderer never
waits for them. Frames made before thumbnails existed (or by a path that made none) get
theirs from their PNG when the page is built.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.atomic import atomic_path
from pipeline.records.run_folder import RunFolder

# The longer side of a thumbnail: sharp on a contact sheet and in the side-by-side
# player of a page, a few kilobytes each.
THUMBNAIL_SIZE = 256
QUALITY = 75


def write_thumbnail(path: Path, image: np.ndarray | Image.Image) -> Path:
    """Write ``image`` (RGB or RGBA array, or a Pillow image) as a thumbnail at ``path``
    (atomically, not fsynced: a lost thumbnail is made again from its frame)."""
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    if picture.mode != "RGB":
        picture = picture.convert("RGB")
    # a box reduction by a whole factor first: a fifth of the time of resampling the
    # full frame (this runs once per frame, beside the renderer)
    factor = max(picture.size) // THUMBNAIL_SIZE
    if factor > 1:
        picture = picture.reduce(factor)
    picture.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.BILINEAR)
    with atomic_path(path, durable=False) as temporary:
        picture.save(temporary, format="JPEG", quality=QUALITY)
    return path


def write_frame_thumbnails(
    folder: RunFolder, key: str, output: np.ndarray, source: np.ndarray | None
) -> None:
    """A rendered frame's thumbnail and its source frame's (called in the writer's pool)."""
    write_thumbnail(folder.thumbnail(key), output)
    if source is not None:
        write_thumbnail(folder.thumbnail(key, of_source=True), source)


def ensure_thumbnail(folder: RunFolder, key: str, frame_file: Path) -> Path | None:
    """The thumbnail of the frame with ``key``, made from its PNG if it has none yet;
    None when the frame's file is gone."""
    path = folder.thumbnail(key)
    if path.is_file():
        return path
    try:
        with Image.open(frame_file) as picture:
            return write_thumbnail(path, picture)
    except (OSError, ValueError):
        return None
