"""Image files: which files in a folder are frames, in what order, and how to decode one.

Decoding uses OpenCV with ``IMREAD_UNCHANGED`` so 16-bit, grayscale and alpha images
arrive as they are stored (the default flags would drop alpha and cut 16-bit to
8-bit by truncation). That flag also skips the EXIF orientation, which phone photos
rely on, so the orientation tag is read separately (with Pillow, header only) and
applied here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Generator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pipeline.config.schema import BadFramePolicy, InputConfig
from pipeline.errors import RotoscopeError
from pipeline.source.base import Frame, Selection, Source, SourceInfo
from pipeline.source.resize import flatten_alpha, parse_color, resize_frame

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
_EXIF_ORIENTATION = 0x0112
_DIGITS = re.compile(r"(\d+)")

# EXIF orientation value -> the numpy view that shows the picture upright.
_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def is_image(path: Path) -> bool:
    """Whether the file name has one of the supported image extensions (any case)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders digit runs by value: ``frame_2`` before ``frame_10``.

    Each part is tagged (0 for numbers, 1 for text) so that a number is never compared
    with text, and numbers sort before letters as they do in file managers.
    """
    parts = _DIGITS.split(name.casefold())  # odd positions hold the digit runs
    return tuple((0, int(p)) if i % 2 else (1, p) for i, p in enumerate(parts) if p)


def list_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """The image files in ``folder`` in natural order, and the other files (skipped).

    Hidden files (``.DS_Store``) and subfolders are skipped silently: they are never
    meant as frames and warning about them would be noise.
    """
    images: list[Path] = []
    skipped: list[Path] = []
    for entry in folder.iterdir():
        if entry.name.startswith(".") or entry.is_dir():
            continue
        (images if is_image(entry) else skipped).append(entry)
    return sorted(images, key=lambda p: (natural_key(p.name), p.name)), sorted(skipped)


def upright_size(path: Path) -> tuple[int, int] | None:
    """An image's displayed width and height (EXIF rotation applied), from its header
    alone; None when Pillow cannot read the header (the frame may still decode later)."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            turned = int(img.getexif().get(_EXIF_ORIENTATION, 1)) in (5, 6, 7, 8)
    except (OSError, ValueError, SyntaxError):
        return None
    return (height, width) if turned else (width, height)


def load_image(path: Path, background_rgb: tuple[int, int, int]) -> np.ndarray:
    """Decode an image file to upright RGB uint8, alpha flattened onto the background."""
    data = np.fromfile(path, np.uint8)  # np.fromfile + imdecode: non-ASCII paths work
    if data.size == 0:
        raise RotoscopeError(f"image '{path}' is empty (0 bytes)", "re-copy or remove the file")
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise RotoscopeError(
            f"cannot decode image '{path}'", "check that it opens in an image viewer, or remove it"
        )
    rgb = _to_rgb8(_to_uint8(decoded, path), background_rgb)
    orient = _ORIENT.get(_exif_orientation(path))
    return np.ascontiguousarray(orient(rgb)) if orient else rgb


def source_alpha(path: Path, width: int, height: int, cfg: InputConfig) -> np.ndarray | None:
    """The alpha channel of the image at ``path``, upright and brought to ``width`` x
    ``height`` exactly as its pixels were (``input.resize_mode``; the padding of ``fit``
    is transparent); None for an image without alpha, or one that no longer decodes.

    Diffusion makes RGB frames; a photo batch puts each photo's own alpha back on its
    output (``output=images``), so a cut-out stays cut out.
    """
    try:
        with Image.open(path) as header:  # most photos have none: decode only those that do
            if "A" not in header.getbands() and "transparency" not in header.info:
                return None
        decoded = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    except (OSError, ValueError, SyntaxError):
        return None
    if decoded is None or decoded.ndim != 3 or decoded.shape[2] != 4:
        return None
    alpha = _to_uint8(decoded[..., 3], path)
    orient = _ORIENT.get(_exif_orientation(path))
    if orient is not None:
        alpha = orient(alpha)
    planes = np.ascontiguousarray(np.repeat(alpha[..., None], 3, axis=2))
    return resize_frame(planes, width, height, cfg.resize_mode, (0, 0, 0))[..., 0].copy()


def _to_uint8(img: np.ndarray, path: Path) -> np.ndarray:
    """Scale 16-bit images to 8 bits (65535 -> 255); reject other sample types."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return np.rint(img / 257.0).astype(np.uint8)
    raise RotoscopeError(
        f"image '{path}' has {img.dtype} samples, which are not supported",
        "convert it to an 8- or 16-bit PNG",
    )


def _to_rgb8(img: np.ndarray, background_rgb: tuple[int, int, int]) -> np.ndarray:
    """OpenCV's gray, BGR or BGRA layout to RGB, flattening alpha onto the background."""
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return flatten_alpha(cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA), background_rgb)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _exif_orientation(path: Path) -> int:
    """The EXIF orientation tag (1 = upright), read from the header only."""
    try:
        with Image.open(path) as img:
            return int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except (OSError, ValueError):  # Pillow cannot parse it: cv2 still decoded it
        return 1


class ImageSource(Source):
    """Frames from image files: a folder's images, or one image repeated."""

    def __init__(
        self, info: SourceInfo, selection: Selection, files: list[Path], cfg: InputConfig
    ) -> None:
        super().__init__(info, selection)
        self._files = files  # one entry per source frame (a single image appears n times)
        self._cfg = cfg
        self._background = parse_color(cfg.background)

    def frame_names(self) -> list[str]:
        return [self._files[i].name for i in self.selection.indices(len(self._files))]

    def _frames(self) -> Generator[Frame, None, None]:
        previous: tuple[Path, np.ndarray] | None = None
        for index, source_index in enumerate(self.selection.indices(len(self._files))):
            path = self._files[source_index]
            if previous is None or previous[0] != path:  # decode a repeated image once
                try:
                    previous = (path, self._render(path, index))
                except RotoscopeError as exc:
                    if not self._bad_frame(index, path, exc, previous is not None):
                        continue
                    assert previous is not None  # repeat: keep the last good image
            frame = Frame(
                index=index,
                source_index=source_index,
                time=source_index / self._cfg.fps,
                name=path.name,
                image=self._sized(previous[1], index).copy(),
            )
            self.frames_read += 1
            yield frame

    def _bad_frame(self, index: int, path: Path, exc: RotoscopeError, can_repeat: bool) -> bool:
        """Apply input.on_bad_frame to an unreadable image; True means repeat the last one."""
        policy = self._cfg.on_bad_frame
        if policy is BadFramePolicy.stop:
            raise RotoscopeError(
                f"frame {index}: {exc.message}",
                "finished frames are kept; fix or remove the file, or set "
                "input.on_bad_frame=skip / repeat",
            ) from exc
        repeat = policy is BadFramePolicy.repeat and can_repeat
        action = "repeating the previous frame" if repeat else "skipping it"
        logger.warning("frame %d: %s; %s (input.on_bad_frame)", index, exc.message, action)
        (self.repeats if repeat else self.failures).append((index, f"{path.name}: {exc.message}"))
        return repeat

    def _render(self, path: Path, index: int) -> np.ndarray:
        width, height = self.info.size_of(index)
        image = load_image(path, self._background)
        return resize_frame(image, width, height, self._cfg.resize_mode, self._background)

    def _sized(self, image: np.ndarray, index: int) -> np.ndarray:
        """``image`` at frame ``index``'s size (a repeated frame may come from another)."""
        width, height = self.info.size_of(index)
        return resize_frame(image, width, height, self._cfg.resize_mode, self._background)
