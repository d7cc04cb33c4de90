"""Bring decoded pixels to the render size: target size, resize modes, alpha, colours.

Every source kind (video, folder, single image) goes through these functions after
decoding, so a frame is resized the same way whatever it came from. Sizes are
multiples of 8 because Stable Diffusion's VAE downsamples by 8.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import ImageColor

from pipeline.config.schema import NATIVE_SIDE, ModelFamily, ResizeMode
from pipeline.errors import RotoscopeError

MAX_SIZE = 8192  # larger frames do not fit any GPU's memory for SD anyway
_MULTIPLE = 8
# input.size: the model family's area (resolved to a number when the config is checked,
# pipeline.run.configure), or the source's own size.
AUTO_SIZE = "auto"
SOURCE_SIZE = "source"
_MIN_AREA_SIDE = 64


def render_area(size: str) -> int | None:
    """``input.size`` as the side of the square whose area frames are rendered at, or
    None for the source's own size.

    Every job's ``auto`` is its model family's number by then
    (:func:`pipeline.run.configure.configure` resolves it); one left unresolved is the
    default model's (SD 1.x).
    """
    text = str(size).strip().lower()
    if text == SOURCE_SIZE:
        return None
    if text == AUTO_SIZE:
        return NATIVE_SIDE[ModelFamily.sd15]
    if text.isascii() and text.isdigit() and _MIN_AREA_SIDE <= int(text) <= MAX_SIZE:
        return int(text)
    raise RotoscopeError(
        f"input.size={size} is not auto, source or a side in pixels ({_MIN_AREA_SIDE}-{MAX_SIZE})",
        "auto renders at the model's native area; 768 renders at the area of 768x768",
    )


def target_size(
    src_w: int,
    src_h: int,
    width: int | None,
    height: int | None,
    scale: float | None,
    area_side: int | None = None,
) -> tuple[int, int]:
    """Render size from the source size and ``input.width/height/scale/size``.

    Both width and height: used as given. One of them: the other follows the source
    aspect ratio. ``scale`` alone multiplies the source size. Nothing: the source size,
    brought down to the area of ``area_side`` squared at the source's aspect ratio when
    it is larger (``input.size``: a model renders best near the area it was trained at,
    and repeats its subject above it), never up. The result is rounded to the nearest
    multiple of 8 (at least 8).
    """
    _check_requested(width, height, scale)
    size: tuple[float, float]
    if width is not None and height is not None:
        size = (width, height)
    elif width is not None:
        size = (width, width * src_h / src_w)
    elif height is not None:
        size = (height * src_w / src_h, height)
    elif scale is not None:
        size = (src_w * scale, src_h * scale)
    elif area_side is not None and src_w * src_h > area_side * area_side:
        factor = math.sqrt(area_side * area_side / (src_w * src_h))
        size = (src_w * factor, src_h * factor)
    else:
        size = (src_w, src_h)
    out_w, out_h = _round8(size[0]), _round8(size[1])
    if max(out_w, out_h) > MAX_SIZE:
        raise RotoscopeError(
            f"render size {out_w}x{out_h} is larger than {MAX_SIZE}",
            "set a smaller input.width, input.height or input.scale",
        )
    return out_w, out_h


def resize_frame(
    img: np.ndarray,
    width: int,
    height: int,
    mode: ResizeMode,
    background_rgb: tuple[int, int, int],
    enlarge: int = cv2.INTER_LANCZOS4,
) -> np.ndarray:
    """Resize an RGB uint8 image to ``width`` x ``height``.

    ``crop`` scales to cover the target and cuts the overflow evenly on both sides,
    ``fit`` scales to fit inside and pads with ``background_rgb``, ``stretch`` scales
    each axis on its own. An image already at the target size is returned unchanged.
    ``enlarge`` is the interpolation when enlarging (a mask takes a linear one: Lanczos
    rings past an edge, which would render a little of what the mask leaves out).
    """
    src_h, src_w = img.shape[:2]
    if (src_w, src_h) == (width, height):
        return img
    mode = ResizeMode(mode)  # also accepts the plain string a hand-made config may hold
    if mode is ResizeMode.stretch:
        return _scale(img, width, height, enlarge)
    if mode is ResizeMode.crop:
        factor = max(width / src_w, height / src_h)
        scaled = _scale(
            img, max(width, round(src_w * factor)), max(height, round(src_h * factor)), enlarge
        )
        top = (scaled.shape[0] - height) // 2
        left = (scaled.shape[1] - width) // 2
        return np.ascontiguousarray(scaled[top : top + height, left : left + width])
    factor = min(width / src_w, height / src_h)
    scaled = _scale(
        img,
        min(width, max(1, round(src_w * factor))),
        min(height, max(1, round(src_h * factor))),
        enlarge,
    )
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = background_rgb
    top = (height - scaled.shape[0]) // 2
    left = (width - scaled.shape[1]) // 2
    canvas[top : top + scaled.shape[0], left : left + scaled.shape[1]] = scaled
    return canvas


def flatten_alpha(rgba: np.ndarray, background_rgb: tuple[int, int, int]) -> np.ndarray:
    """Composite an RGBA uint8 image over a solid colour and return RGB uint8.

    Stable Diffusion has no notion of transparency; flattening onto a chosen colour
    (white by default, like A1111) is what makes transparent areas predictable.
    """
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    background = np.asarray(background_rgb, np.float32)
    blended = rgba[..., :3].astype(np.float32) * alpha + background * (1.0 - alpha)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def parse_color(text: str) -> tuple[int, int, int]:
    """Parse ``#rrggbb``, ``#rgb``, a CSS colour name (``white``) or ``r,g,b``."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) == 3:
            rgb = tuple(int(p) for p in parts)
            if all(0 <= c <= 255 for c in rgb):
                return rgb[0], rgb[1], rgb[2]
        elif len(parts) == 1:
            red, green, blue = ImageColor.getrgb(parts[0])[:3]
            return red, green, blue
    except ValueError:
        pass
    raise RotoscopeError(
        f"input.background '{text}' is not a colour",
        "use #rrggbb, a name such as white or black, or r,g,b with values 0-255",
    )


def _check_requested(width: int | None, height: int | None, scale: float | None) -> None:
    """Reject sizes that cannot be rendered, naming the config key."""
    for key, value in (("input.width", width), ("input.height", height)):
        if value is not None and not _MULTIPLE <= value <= MAX_SIZE:
            raise RotoscopeError(
                f"{key} is {value}; it must be between {_MULTIPLE} and {MAX_SIZE}",
                f"give a size in pixels; it is rounded to a multiple of {_MULTIPLE}",
            )
    if scale is not None and not (math.isfinite(scale) and scale > 0):
        raise RotoscopeError(f"input.scale is {scale}; it must be above 0", "for example 0.5")
    if scale is not None and (width is not None or height is not None):
        raise RotoscopeError(
            "input.scale cannot be combined with input.width or input.height",
            "set either a scale factor or a size",
        )


def _round8(value: float) -> int:
    """Nearest multiple of 8 (halves round up), never below 8."""
    return max(_MULTIPLE, math.floor(value / _MULTIPLE + 0.5) * _MULTIPLE)


def _scale(
    img: np.ndarray, width: int, height: int, enlarge: int = cv2.INTER_LANCZOS4
) -> np.ndarray:
    """cv2.resize with area averaging when shrinking and ``enlarge`` (Lanczos) when
    enlarging.

    INTER_AREA avoids the aliasing (moire, shimmering between video frames) that
    other filters give when shrinking; Lanczos keeps edges sharp when enlarging.
    """
    if (img.shape[1], img.shape[0]) == (width, height):
        return img
    shrinking = width * height < img.shape[0] * img.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else enlarge
    return cv2.resize(img, (width, height), interpolation=interpolation)
