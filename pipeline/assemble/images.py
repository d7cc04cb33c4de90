"""``output=images``: the rendered frames copied into a folder under their output names.

Bytes are copied, not re-encoded, so every PNG keeps its generation parameters. Frames
of an image folder keep their source file's stem (as A1111's batch img2img does: the
picture is a PNG, which keeps the parameters and alpha); frames of a video are numbered.
A frame gets an alpha channel (the PNG is then re-written with the same text chunks)
where one is given: with ``output.alpha`` its mask, else a photo's own alpha.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePath

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from pipeline.assemble.encode import require_frames
from pipeline.atomic import atomic_path
from pipeline.errors import RotoscopeError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_image_folder(
    frames: Sequence[Path],
    names: Sequence[str] | None,
    out_dir: Path,
    alphas: Sequence[np.ndarray | None] | None = None,
    on_frame: Callable[[], None] | None = None,
) -> list[Path]:
    """Copy the PNG frames into ``out_dir`` byte for byte; return the written paths.

    Bytes are copied, not re-encoded, so PNG text chunks (the generation
    ``parameters``) survive. Names: with ``names`` (source file names from an image
    folder) each frame keeps its source stem with a ``.png`` extension
    (``photo_01.jpg`` -> ``photo_01.png``); without, frames are numbered by their
    position in ``frames`` (``000000.png``, ...), a gap-free sequence like the video.
    Collisions are resolved by :func:`png_names`. Each file is written atomically.
    ``alphas`` gives frames an alpha channel (a grey array at the frame's size: its mask,
    or its source photo's alpha; None where it has none): such a frame is written as
    RGBA with its text chunks kept. ``on_frame`` runs after each file (a safe point to
    stop at).
    """
    require_frames(frames)
    if names is not None and len(names) != len(frames):
        raise ValueError(f"{len(names)} names for {len(frames)} frames")
    if out_dir.resolve() in {Path(p).resolve().parent for p in frames}:
        raise RotoscopeError(
            f"image output folder {out_dir} is the folder holding the rendered frames",
            "choose another run name or output folder",
        )
    if names is None:
        width = max(6, len(str(len(frames) - 1)))
        targets = [f"{i:0{width}d}.png" for i in range(len(frames))]
    else:
        targets = png_names(names)
    written = []
    for number, (src, target) in enumerate(zip(frames, targets, strict=True)):
        alpha = alphas[number] if alphas is not None else None
        if alpha is None:
            written.append(_copy_png(Path(src), out_dir / target))
        else:
            written.append(_png_with_alpha(Path(src), alpha, out_dir / target))
        if on_frame is not None:
            on_frame()
    return written


def png_names(names: Sequence[str]) -> list[str]:
    """Output PNG names for source names: stem + ``.png``, unique, deterministic.

    Rule: every source whose ``stem.png`` is not already taken keeps it, first in
    list order winning (``a.jpg`` before ``a.png`` gets ``a.png``). A later source
    whose name collides gets its original extension folded into the stem
    (``a.png`` -> ``a_png.png``), then a counter if that is taken too
    (``a_png_2.png``, ...). A source never loses its natural name to a renamed one.
    Comparison ignores case, so case-insensitive filesystems (macOS, Windows) cannot
    overwrite either. Directory parts of a name are dropped.
    """
    paths = [PurePath(name) for name in names]
    natural = [f"{path.stem}.png" for path in paths]
    owner: dict[str, int] = {}
    for index, name in enumerate(natural):
        owner.setdefault(name.casefold(), index)
    taken = set(owner)
    result = []
    for index, (path, name) in enumerate(zip(paths, natural, strict=True)):
        if owner[name.casefold()] != index:
            name = next(c for c in _alternatives(path) if c.casefold() not in taken)
            taken.add(name.casefold())
        result.append(name)
    return result


def _alternatives(path: PurePath) -> Iterator[str]:
    """Candidate names for a colliding source, in order of preference."""
    base = f"{path.stem}_{path.suffix[1:].lower()}" if path.suffix else path.stem
    yield f"{base}.png"
    counter = 2
    while True:
        yield f"{base}_{counter}.png"
        counter += 1


def _png_with_alpha(src: Path, alpha: np.ndarray, dst: Path) -> Path:
    """The rendered PNG with ``alpha`` as its alpha channel, its text chunks kept."""
    try:
        with Image.open(src) as image:
            rgb = image.convert("RGB")
            chunks = PngInfo()
            for key, value in getattr(image, "text", {}).items():
                chunks.add_itxt(key, value)
    except OSError as exc:
        raise RotoscopeError(f"cannot read rendered frame {src}: {exc}") from exc
    if alpha.shape != (rgb.height, rgb.width):
        return _copy_png(src, dst)  # the source changed size since: its alpha does not fit
    rgba = np.dstack([np.asarray(rgb), alpha])
    try:
        with atomic_path(dst) as tmp:
            Image.fromarray(rgba, "RGBA").save(tmp, format="PNG", pnginfo=chunks)
    except OSError as exc:
        raise RotoscopeError(f"cannot write {dst}: {exc}") from exc
    return dst


def _copy_png(src: Path, dst: Path) -> Path:
    """Copy one PNG's bytes to ``dst`` through a temporary sibling and a rename."""
    try:
        with src.open("rb") as handle:
            is_png = handle.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE
    except OSError as exc:
        raise RotoscopeError(f"cannot read rendered frame {src}: {exc}") from exc
    if not is_png:
        raise RotoscopeError(f"rendered frame {src} is not a PNG file", "re-render it")
    try:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
    except OSError as exc:
        raise RotoscopeError(f"cannot copy {src} to {dst}: {exc}") from exc
    return dst
