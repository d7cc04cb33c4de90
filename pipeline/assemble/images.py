"""``output=images``: the rendered frames copied into a folder under their output names.

Bytes are copied, not re-encoded, so every PNG keeps its generation parameters. Frames
of an image folder keep their source file's stem; frames of a video are numbered. With
``output.alpha`` each frame is written as RGBA instead, its mask as alpha, with the
same text chunks.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePath

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from pipeline.assemble.encode import require_frames
from pipeline.atomic import atomic_path
from pipeline.errors import RotoscopeError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_image_folder(
    frames: Sequence[Path],
    names: Sequence[str] | None,
    out_dir: Path,
    alphas: Sequence[Path] | None = None,
) -> list[Path]:
    """Copy the PNG frames into ``out_dir`` byte for byte; return the written paths.

    With ``alphas`` (one grey image per frame) each frame is written as RGBA with that
    alpha instead, keeping its text chunks.

    Bytes are copied, not re-encoded, so PNG text chunks (the generation
    ``parameters``) survive. Names: with ``names`` (source file names from an image
    folder) each frame keeps its source stem with a ``.png`` extension
    (``photo_01.jpg`` -> ``photo_01.png``); without, frames are numbered by their
    position in ``frames`` (``000000.png``, ...), a gap-free sequence like the video.
    Collisions are resolved by :func:`png_names`. Each file is written atomically.
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
    if alphas is not None:
        layers = zip(frames, alphas, targets, strict=True)
        return [_rgba_png(Path(src), Path(alpha), out_dir / name) for src, alpha, name in layers]
    pairs = zip(frames, targets, strict=True)
    return [_copy_png(Path(src), out_dir / target) for src, target in pairs]


def _rgba_png(src: Path, alpha: Path, dst: Path) -> Path:
    """``src`` with ``alpha``'s grey as its alpha channel, its text chunks kept."""
    try:
        with Image.open(src) as frame, Image.open(alpha) as mask:
            if frame.size != mask.size:
                raise RotoscopeError(
                    f"mask {alpha} is not the size of its frame {src}",
                    "re-render the frame (stages=[render,assemble])",
                )
            info = PngImagePlugin.PngInfo()
            for key, value in (getattr(frame, "text", None) or {}).items():
                info.add_itxt(key, value)
            rgba = frame.convert("RGB")
            rgba.putalpha(mask.convert("L"))
            with atomic_path(dst) as tmp:
                rgba.save(tmp, format="PNG", pnginfo=info, compress_level=4)
    except (OSError, UnidentifiedImageError) as exc:
        raise RotoscopeError(f"cannot write {dst} from {src} and {alpha}: {exc}") from exc
    return dst


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
