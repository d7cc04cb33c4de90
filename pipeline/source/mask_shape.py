"""Masks as image operations: made from a frame (chroma key, brightness range) and shaped
(Deforum's contrast and brightness adjustments, invert, threshold, grow, feather).

A mask is a (H, W) uint8 array: 255 where the frame is rendered, 0 where the source frame
is kept, grey levels in between. Everything here is plain numpy/OpenCV on one frame, so
a mask depends only on its inputs and the same frame always gets the same mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.errors import RotoscopeError

# The usual screen colours ("chroma key green" and "chroma key blue" as paint and fabric
# makers give them); any other colour is written #rrggbb.
KEY_COLORS = {"green": (0, 177, 64), "blue": (0, 71, 187)}


@dataclass(frozen=True)
class MaskShape:
    """How one frame's mask is shaped (the frame's plan row holds the numbers)."""

    contrast: float = 1.0  # Deforum's mask_contrast_adjust: 1 keeps the mask
    brightness: float = 1.0  # Deforum's mask_brightness_adjust: 1 keeps the mask
    invert: bool = False
    threshold: float = 0.0  # 0 keeps grey levels; above, pixels >= it turn white
    grow: float = 0.0  # pixels; negative shrinks
    blur: float = 0.0  # pixels of feather on each side of the edge


def parse_key_color(text: str) -> tuple[int, int, int]:
    """``green``, ``blue``, ``#rrggbb`` or ``#rgb`` as an RGB triple."""
    value = text.strip().lower()
    if value in KEY_COLORS:
        return KEY_COLORS[value]
    digits = value.removeprefix("#")
    if value.startswith("#") and len(digits) in (3, 6):
        if len(digits) == 3:
            digits = "".join(ch * 2 for ch in digits)
        try:
            red, green, blue = (int(digits[i : i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            pass
        else:
            return red, green, blue
    raise RotoscopeError(
        f"mask.key '{text}' is not a key colour",
        "use green, blue or the screen's colour as #rrggbb, picked from a frame",
    )


def chroma(image: np.ndarray) -> np.ndarray:
    """The (Cb, Cr) plane of RGB uint8 pixels (BT.601, 0..255 centred on 128), float32."""
    rgb = image.astype(np.float32)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    cb = 128.0 - 0.168736 * red - 0.331264 * green + 0.5 * blue
    cr = 128.0 + 0.5 * red - 0.418688 * green - 0.081312 * blue
    return np.stack([cb, cr], axis=-1)


def key_mask(
    image: np.ndarray, color: tuple[int, int, int], tolerance: float, softness: float
) -> np.ndarray:
    """White where ``image`` (RGB uint8) has the key colour.

    The distance is measured in the chroma plane, so a screen's shading (light falloff,
    creases) keys like its lit parts: pixels within ``tolerance`` (a fraction of 255) of
    the key colour's chroma are white, beyond ``tolerance + softness`` black, a ramp
    between.
    """
    key = chroma(np.array([[color]], np.uint8))[0, 0]
    distance = np.linalg.norm(chroma(image) - key, axis=-1) / 255.0
    if softness <= 0:
        keyed = (distance <= tolerance).astype(np.float32)
    else:
        keyed = np.clip((tolerance + softness - distance) / softness, 0.0, 1.0)
    return np.round(keyed * 255.0).astype(np.uint8)


def luma_mask(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """White where ``image``'s brightness (BT.709 luma, 0..1) lies in [low, high]."""
    rgb = image.astype(np.float32) / 255.0
    luma = 0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.0722 * rgb[..., 2]
    inside = (luma >= low - 1e-6) & (luma <= high + 1e-6)
    return np.where(inside, 255, 0).astype(np.uint8)


def grey(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 picture as a mask: its grey level (a black-and-white matte as it is)."""
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def shape_mask(mask: np.ndarray, shape: MaskShape) -> np.ndarray:
    """``mask`` adjusted, inverted, thresholded, grown and feathered, in that order.

    Brightness then contrast work as Deforum's (torchvision's ``adjust_brightness`` and
    ``adjust_contrast``: scale the values; spread them from the mask's mean). Invert comes
    before the rest, so grow and blur act on the area that is rendered.
    """
    out = mask
    if shape.brightness != 1.0 or shape.contrast != 1.0:
        values = mask.astype(np.float32) * shape.brightness
        values = np.clip(values, 0.0, 255.0)
        if shape.contrast != 1.0:
            mean = float(np.round(values).mean())
            values = np.clip(mean + shape.contrast * (values - mean), 0.0, 255.0)
        out = np.round(values).astype(np.uint8)
    if shape.invert:
        out = 255 - out
    if shape.threshold > 0:
        out = np.where(out.astype(np.float32) >= shape.threshold * 255.0, 255, 0).astype(np.uint8)
    grow = round(shape.grow)
    if grow:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(grow) + 1,) * 2)
        operation = cv2.dilate if grow > 0 else cv2.erode
        out = operation(out, kernel, borderType=cv2.BORDER_REPLICATE)
    return feather(out, shape.blur)


def feather(mask: np.ndarray, pixels: float) -> np.ndarray:
    """``mask``'s edges softened over ``pixels`` on each side (a Gaussian cut at 2 sigma),
    so pixels farther than that from an edge keep their value; 0 changes nothing."""
    if pixels <= 0:
        return np.ascontiguousarray(mask)
    radius = math.ceil(pixels)
    return cv2.GaussianBlur(
        mask, (2 * radius + 1, 2 * radius + 1), pixels / 2.0, borderType=cv2.BORDER_REPLICATE
    )
