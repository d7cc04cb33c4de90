"""2D camera motion and noise for loopback ("Deforum 2D") animation.

In loopback mode frame k's output, moved by a small camera step, becomes frame k+1's
img2img input. These are the pure image functions of that step (RGB uint8 ``HxWx3`` in,
a new array out), with Deforum's 2D semantics so imported Deforum settings move the
picture the way they did there:

- ``zoom`` is a scale factor per frame (1.0 none, > 1 zooms in), ``angle`` is in degrees
  with positive counter-clockwise (as ``cv2.getRotationMatrix2D``), and both act about
  the transform centre given as fractions of width and height.
- ``translation_x``/``translation_y`` are pixels per frame, +x moving the picture right
  and +y down. As in Deforum the translation is applied first and then zoomed and
  rotated with the picture, so with zoom 1.02 a 10 px shift moves the picture 10.2 px.
- Resampling is bilinear, like Deforum's ``cv2.warpPerspective`` call.

One deliberate difference: the centre fraction is measured on the picture's extent
(``cx * W - 0.5`` in pixel-centre coordinates) instead of Deforum's ``cx * W``, so 0.5
is the true middle and a zoom keeps a symmetric picture symmetric. Deforum's point sits
half a pixel right of and below the middle, a difference no single frame shows.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pipeline.errors import RotoscopeError

BORDERS = ("replicate", "reflect", "wrap", "zeros")

# How the area the moved picture uncovers is filled. "reflect" mirrors without repeating
# the edge row (OpenCV's REFLECT_101), so a zoom-out shows no doubled seam line; "zeros"
# is black.
_CV2_BORDERS = {
    "replicate": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT_101,
    "wrap": cv2.BORDER_WRAP,
    "zeros": cv2.BORDER_CONSTANT,
}


def warp_2d(
    image: np.ndarray,
    *,
    zoom: float,
    angle: float,
    translation_x: float,
    translation_y: float,
    center_x: float = 0.5,
    center_y: float = 0.5,
    border: str = "replicate",
    flip: np.ndarray | None = None,
) -> np.ndarray:
    """The picture moved by one frame of 2D camera motion (see the module notes), then
    by ``flip``, a perspective flip's homography (:mod:`pipeline.animation.flip`), if any.

    Identity parameters (zoom 1, angle a multiple of 360, no translation, no flip) return
    an exact copy without resampling, so a still camera does not blur the loop a little
    more on every frame.
    """
    check_rgb(image, "image")
    check_border(border)
    values = {
        "zoom": zoom,
        "angle": angle,
        "translation_x": translation_x,
        "translation_y": translation_y,
        "transform_center_x": center_x,
        "transform_center_y": center_y,
    }
    for name, value in values.items():
        if not math.isfinite(value):
            raise RotoscopeError(f"{name} must be a finite number, got {value}")
    if zoom <= 0:
        raise RotoscopeError(
            f"zoom must be greater than 0, got {zoom}", "zoom is a scale factor: 1.0 keeps the size"
        )
    still = zoom == 1 and angle % 360 == 0 and translation_x == 0 and translation_y == 0
    if still and (flip is None or np.array_equal(flip, np.eye(3))):
        return image.copy()

    height, width = image.shape[:2]
    move = move_matrix(width, height, zoom, angle, translation_x, translation_y, center_x, center_y)
    if flip is not None:  # Deforum's order: the move, then the flip
        return warp_perspective(image, flip @ move, border)
    return cv2.warpAffine(
        image,
        move[:2],
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=_CV2_BORDERS[border],
    )


def move_matrix(
    width: int,
    height: int,
    zoom: float,
    angle: float,
    translation_x: float,
    translation_y: float,
    center_x: float = 0.5,
    center_y: float = 0.5,
) -> np.ndarray:
    """The 3x3 matrix of one frame's 2D move (pixel-centre coordinates, source to
    destination): translated first, then zoomed and rotated about the centre, Deforum's
    order."""
    center = (center_x * width - 0.5, center_y * height - 0.5)
    rotate = np.vstack([cv2.getRotationMatrix2D(center, angle, zoom), [0.0, 0.0, 1.0]])
    shift = np.array([[1.0, 0.0, translation_x], [0.0, 1.0, translation_y], [0.0, 0.0, 1.0]])
    return rotate @ shift


def warp_perspective(image: np.ndarray, matrix: np.ndarray, border: str) -> np.ndarray:
    """``image`` moved by the 3x3 homography ``matrix`` (pixel-centre coordinates, source
    to destination), bilinear, the uncovered area filled as ``border`` says."""
    check_border(border)
    height, width = image.shape[:2]
    return cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=_CV2_BORDERS[border]
    )


def check_border(border: str) -> None:
    if border not in _CV2_BORDERS:
        raise RotoscopeError(f"unknown border mode '{border}'", f"use one of: {', '.join(BORDERS)}")


def add_noise(
    image: np.ndarray, amount: float, seed: int, envelope: np.ndarray | None = None
) -> np.ndarray:
    """``image`` plus zero-mean Gaussian noise of standard deviation ``amount`` (0..1 units),
    times ``envelope`` (``H x W``, Perlin noise's patches) where given.

    Loopback needs a little fresh noise per frame or img2img keeps smoothing the same
    detail away. ``amount`` 0.02 is about 5 levels of 255. The noise comes from numpy's
    PCG64 seeded with ``seed`` alone (the frame's seed), so a frame's noise is the same
    on every machine, in every batch layout and after a resume. Each channel gets its
    own noise, as in Deforum; unlike Deforum's blend towards a noise image, adding
    zero-mean noise leaves the picture's brightness and contrast where they were.
    """
    check_rgb(image, "image")
    if not math.isfinite(amount) or amount < 0:
        raise RotoscopeError(
            f"noise amount must be 0 or more, got {amount}", "0.02 adds about 5 levels of 255"
        )
    if amount == 0:
        return image.copy()
    rng = np.random.Generator(np.random.PCG64(seed))
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    if envelope is not None:
        noise *= envelope.astype(np.float32)[..., None]
    noisy = image.astype(np.float32) + noise * np.float32(amount * 255.0)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def check_rgb(image: np.ndarray, name: str) -> None:
    """Fail early on anything but RGB uint8 ``HxWx3``: OpenCV would take other layouts and
    dtypes without complaint and compute something else."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f"{name} must be a uint8 numpy array")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} must have shape (height, width, 3), got {image.shape}")
