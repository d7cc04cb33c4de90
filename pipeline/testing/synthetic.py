"""Synthetic clips with known motion, made offline, for coherence tests and benchmarks.

A clip is a virtual camera moving over a large procedurally generated texture (smooth
colour gradients, soft blobs, hard-edged shapes and lines, a little band-limited grain:
edges and structure everywhere, but not pure noise, so optical flow has something to
lock on and a detail measure has something to lose). Each frame is an affine view of
that canvas, so the true motion between frames is known exactly and returned with the
frames.

Conventions (those of :mod:`pipeline.animation.flow`): images are ``H x W x 3`` RGB
``uint8``; a flow is ``H x W x 2`` float32 ``(dx, dy)`` in pixels. ``forward[t]`` maps each
pixel ``x`` of frame ``t-1`` to its position ``x + forward[t](x)`` in frame ``t``;
``backward[t]`` maps each pixel ``y`` of frame ``t`` to ``y + backward[t](y)`` in frame
``t-1``. Index 0 of both lists is ``None`` (frame 0 has no predecessor).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The frames are rendered at this multiple of their size and area-averaged down, so
# edges are anti-aliased the way a camera would blur them.
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class Clip:
    """Frames plus the exact motion that made them."""

    name: str
    frames: list[np.ndarray]
    forward: list[np.ndarray | None]
    backward: list[np.ndarray | None]


def make_texture(size: int, seed: int = 0) -> np.ndarray:
    """A ``size x size`` RGB float32 texture in [0, 1] with edges and blobs.

    Layers, back to front: a smooth colour gradient (low-frequency sinusoids), soft
    Gaussian blobs, hard-edged rectangles, discs and lines, and a faint band-limited
    grain (blurred noise, sigma ~1 px) so flat regions are not featureless.
    """
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    image = np.zeros((size, size, 3), np.float32)
    for channel in range(3):
        for _ in range(3):
            fx, fy = rng.uniform(0.5, 3.0, 2)
            phase = rng.uniform(0, 2 * np.pi)
            image[..., channel] += np.sin(2 * np.pi * (fx * xs + fy * ys) + phase) / 6
    image += 0.5
    for _ in range(int(size * size / 600)):  # soft blobs
        cx, cy = rng.uniform(0, size, 2)
        sigma = rng.uniform(size / 80, size / 25)
        colour = rng.uniform(-0.5, 0.5, 3).astype(np.float32)
        # only within 6 sigma (beyond, a blob adds < 1e-7): the work grows with the
        # texture's area, not its square (a 512x512 clip's texture is 1536 px wide)
        x0, x1 = max(0, int(cx - 6 * sigma)), min(size, int(cx + 6 * sigma) + 1)
        y0, y1 = max(0, int(cy - 6 * sigma)), min(size, int(cy + 6 * sigma) + 1)
        near_x, near_y = xs[y0:y1, x0:x1] * size - cx, ys[y0:y1, x0:x1] * size - cy
        weight = np.exp(-(near_x**2 + near_y**2) / (2 * sigma**2))
        image[y0:y1, x0:x1] += weight[..., None] * colour
    shapes = np.clip(image, 0, 1).astype(np.float32)
    for _ in range(int(size * size / 900)):  # hard-edged shapes
        fill = [float(c) for c in rng.uniform(0, 1, 3)]
        kind = rng.integers(3)
        x0, y0 = (int(v) for v in rng.uniform(0, size, 2))
        extent = int(rng.uniform(size / 60, size / 15))
        if kind == 0:
            cv2.rectangle(shapes, (x0, y0), (x0 + extent, y0 + extent // 2 + 1), fill, -1)
        elif kind == 1:
            cv2.circle(shapes, (x0, y0), extent // 2 + 1, fill, -1, lineType=cv2.LINE_AA)
        else:
            x1, y1 = (int(v) for v in rng.uniform(0, size, 2))
            thickness = int(rng.integers(1, max(2, size // 150)))
            cv2.line(shapes, (x0, y0), (x1, y1), fill, thickness, lineType=cv2.LINE_AA)
    grain = cv2.GaussianBlur(rng.standard_normal((size, size, 3)).astype(np.float32), (0, 0), 1.0)
    return np.clip(shapes + 0.08 * grain, 0.0, 1.0)


def _camera_frames(
    texture: np.ndarray, cameras: list[np.ndarray], width: int, height: int
) -> list[np.ndarray]:
    """Render each camera (a 2x3 affine map frame pixel -> canvas pixel) to uint8 RGB."""
    # supersampled pixel centre -> frame pixel coordinate: x = (x_s + 0.5) / S - 0.5
    offset = 0.5 / _SUPERSAMPLE - 0.5
    to_frame = np.array([[1 / _SUPERSAMPLE, 0, offset], [0, 1 / _SUPERSAMPLE, offset], [0, 0, 1]])
    frames = []
    for camera in cameras:
        big = cv2.warpAffine(
            texture,
            camera @ to_frame,
            (width * _SUPERSAMPLE, height * _SUPERSAMPLE),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,
        )
        small = cv2.resize(big, (width, height), interpolation=cv2.INTER_AREA)
        frames.append((np.clip(small, 0, 1) * 255).round().astype(np.uint8))
    return frames


def _flows(cameras: list[np.ndarray], width: int, height: int):
    """Exact forward/backward flows between consecutive affine cameras."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    points = np.stack([xs, ys, np.ones_like(xs)], axis=-1)
    forward: list[np.ndarray | None] = [None]
    backward: list[np.ndarray | None] = [None]
    full = [np.vstack([c, [0, 0, 1]]) for c in cameras]
    for t in range(1, len(cameras)):
        to_t = np.linalg.inv(full[t]) @ full[t - 1]  # frame t-1 pixel -> frame t pixel
        to_prev = np.linalg.inv(to_t)
        forward.append(
            (points @ to_t.T)[..., :2].astype(np.float32) - points[..., :2].astype(np.float32)
        )
        backward.append(
            (points @ to_prev.T)[..., :2].astype(np.float32) - points[..., :2].astype(np.float32)
        )
    return forward, backward


def _affine_clip(
    name: str,
    cameras: list[np.ndarray],
    width: int,
    height: int,
    texture: np.ndarray,
) -> Clip:
    frames = _camera_frames(texture, cameras, width, height)
    forward, backward = _flows(cameras, width, height)
    return Clip(name, frames, forward, backward)


def pan_clip(
    frames: int = 24,
    width: int = 96,
    height: int = 96,
    velocity: tuple[float, float] = (1.5, 0.5),
    texture_scale: float = 1.0,
    seed: int = 0,
) -> Clip:
    """The camera slides by ``velocity`` frame pixels per frame over the texture.

    Content therefore moves by ``-velocity`` on screen. ``texture_scale`` is canvas
    pixels per frame pixel (1: the texture's own scale).
    """
    size = int(max(width, height) * 3 * texture_scale)
    texture = make_texture(size, seed)
    start = np.array([size / 2 - width * texture_scale / 2, size / 2 - height * texture_scale / 2])
    cameras = []
    for t in range(frames):
        offset = start + np.asarray(velocity) * texture_scale * t
        cameras.append(np.array([[texture_scale, 0, offset[0]], [0, texture_scale, offset[1]]]))
    return _affine_clip("pan", cameras, width, height, texture)


def zoom_clip(
    frames: int = 24,
    width: int = 96,
    height: int = 96,
    rate: float = 1.015,
    texture_scale: float = 1.0,
    seed: int = 1,
) -> Clip:
    """The camera zooms into the frame centre by ``rate`` per frame (content grows)."""
    size = int(max(width, height) * 3 * texture_scale)
    texture = make_texture(size, seed)
    centre_frame = np.array([(width - 1) / 2, (height - 1) / 2])
    centre_canvas = np.array([size / 2, size / 2])
    cameras = []
    for t in range(frames):
        s = texture_scale / rate**t  # canvas pixels per frame pixel shrinks as we zoom in
        offset = centre_canvas - s * centre_frame
        cameras.append(np.array([[s, 0, offset[0]], [0, s, offset[1]]]))
    return _affine_clip("zoom", cameras, width, height, texture)


def static_clip(frames: int = 8, width: int = 96, height: int = 96, seed: int = 2) -> Clip:
    """A camera that does not move (zero flow everywhere)."""
    size = max(width, height) * 3
    texture = make_texture(size, seed)
    camera = np.array([[1.0, 0, size / 3], [0, 1.0, size / 3]])
    return _affine_clip("static", [camera] * frames, width, height, texture)


@dataclass(frozen=True)
class OccluderClip:
    """A clip with a moving occluder and, per frame ``t`` (empty masks at 0), where it breaks
    the correspondence between frames ``t-1`` and ``t``:

    ``disoccluded[t]``, on frame ``t``'s grid: pixels the occluder hid in frame ``t-1``
    (no match there); ``occluded[t]``, on frame ``t-1``'s grid: pixels the occluder
    covers in frame ``t`` (no match there: what the warp error must leave out).
    """

    clip: Clip
    disoccluded: list[np.ndarray]
    occluded: list[np.ndarray]


def occluder_clip(
    frames: int = 6,
    width: int = 96,
    height: int = 96,
    square: int = 28,
    speed: int = 4,
    seed: int = 3,
) -> OccluderClip:
    """A flat-grey square slides right by ``speed`` px/frame over a static textured background.

    The clip's true flow: the square's pixels move, the background does not; with the
    masks of :class:`OccluderClip`. Integer motion, no anti-aliasing, so the masks are
    exact.
    """
    rng = np.random.default_rng(seed)
    background = (
        (make_texture(max(width, height), seed)[:height, :width] * 255).round().astype(np.uint8)
    )
    colour = rng.integers(0, 255, 3).astype(np.uint8)
    top = (height - square) // 2
    frames_out: list[np.ndarray] = []
    boxes = []
    for t in range(frames):
        left = 8 + speed * t
        image = background.copy()
        image[top : top + square, left : left + square] = colour
        # a little texture on the square so the flow can follow it
        ys, xs = np.mgrid[0:square, 0:square]
        stripes = (((xs // 4) + (ys // 4)) % 2 * 40).astype(np.uint8)[..., None]
        image[top : top + square, left : left + square] = np.clip(
            colour.astype(int) + stripes - 20, 0, 255
        ).astype(np.uint8)
        frames_out.append(image)
        boxes.append((left, top))
    forward: list[np.ndarray | None] = [None]
    backward: list[np.ndarray | None] = [None]
    disocclusion = [np.zeros((height, width), bool)]
    occlusion = [np.zeros((height, width), bool)]
    for t in range(1, frames):
        f = np.zeros((height, width, 2), np.float32)
        b = np.zeros((height, width, 2), np.float32)
        (l0, t0), (l1, t1) = boxes[t - 1], boxes[t]
        f[t0 : t0 + square, l0 : l0 + square, 0] = l1 - l0
        b[t1 : t1 + square, l1 : l1 + square, 0] = l0 - l1
        forward.append(f)
        backward.append(b)
        hidden_before = np.zeros((height, width), bool)
        hidden_before[t0 : t0 + square, l0 : l0 + square] = True
        hidden_now = np.zeros((height, width), bool)
        hidden_now[t1 : t1 + square, l1 : l1 + square] = True
        disocclusion.append(hidden_before & ~hidden_now)
        occlusion.append(hidden_now & ~hidden_before)
    return OccluderClip(Clip("occluder", frames_out, forward, backward), disocclusion, occlusion)
