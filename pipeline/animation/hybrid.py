"""Hybrid video (Deforum's): a second video's motion and picture in a loopback animation.

A loopback frame is made from the previous output. With hybrid video, that output also
moves the way a second video moves between its frames k-1 and k (``motion``), and the
video's frame k is composited into it (``composite``), before img2img renders frame k;
or composited into each output after it is rendered. Deforum's order, for frame k > 0:

1. the camera step (2D or 3D, :mod:`pipeline.animation.loopback`);
2. composite "before motion";
3. the hybrid motion: dense optical flow between the video's frames k-1 and k (scaled by
   the frame's flow factor, optionally only where the flow is consistent both ways), or
   a perspective (homography) or affine (rotation, scale, translation) fitted to it;
   "from output": the motion from the moved output to the video's frame k instead;
4. composite "normal";
5. the colour match, contrast, anti-blur and noise of every loopback input;
6. after img2img, composite "after generation" onto the output.

The flow is rotoscope's own (:mod:`pipeline.animation.flow`, OpenCV DIS, kept in the run
folder by :class:`pipeline.animation.flow_cache.FlowCache`), so the output is carried
along the backward flow (each pixel of frame k pulled from where it was in k-1) rather
than Deforum's negated forward flow; the affine and perspective motions are fitted with
RANSAC to that flow's reliable pixels rather than to tracked corners.

A composite blends the video frame into the picture by the frame's ``alpha`` (the video's
share), through a mask when one is chosen: the previous output's depth or the video
frame's (white far), a blend or the difference of their greys; inverted, equalized,
contrast-scaled about its mean and auto-contrasted between percentiles as Deforum does.
Where the mask is white the picture stays, where black the video shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.animation.flow import FlowPair, backward_warp, soften_mask
from pipeline.config.schema import HybridEqualize, HybridMask, HybridMotion

# The grid step (pixels) of the flow samples a perspective or affine motion is fitted to,
# and RANSAC's reprojection threshold (pixels), Deforum's for its homography.
FIT_STEP = 4
RANSAC_THRESHOLD = 5.0
# Fewer reliable samples than this: no motion can be fitted (a still frame, a cut)
MIN_SAMPLES = 8


@dataclass(frozen=True)
class HybridStep:
    """One frame's hybrid values (its plan row's schedules)."""

    flow_factor: float = 1.0
    alpha: float = 0.5  # the video's share of the composite
    mask_contrast: float = 1.0
    mask_blend_alpha: float = 0.5
    mask_cutoff_low: float = 0.0  # percentiles of the auto contrast
    mask_cutoff_high: float = 100.0


def flow_motion(
    image: np.ndarray, pair: FlowPair, factor: float, consistent_only: bool, blur: float
) -> np.ndarray:
    """``image`` (on the grid of the pair's first frame) carried along the pair's motion,
    ``factor`` of the way; with ``consistent_only`` only where the flow agrees both ways
    (feathered by ``blur`` pixels), the rest staying where it is."""
    flow = pair.backward * factor
    if consistent_only:
        flow = flow * soften_mask(pair.reliable, erode=0, blur=blur)[..., None]
    return backward_warp(image, flow, cv2.INTER_LINEAR, cv2.BORDER_REFLECT_101)


def fitted_motion(pair: FlowPair, motion: HybridMotion) -> np.ndarray:
    """The perspective (3x3) or affine (2x3: rotation, uniform scale, translation) that
    carries the pair's first frame onto its second, fitted with RANSAC to a grid of its
    reliable flow; the identity where too little of it is reliable."""
    identity = np.eye(3) if motion is HybridMotion.perspective else np.eye(3)[:2]
    height, width = pair.forward.shape[:2]
    ys, xs = np.mgrid[FIT_STEP // 2 : height : FIT_STEP, FIT_STEP // 2 : width : FIT_STEP]
    reliable = pair.reliable_previous[ys, xs]
    if int(reliable.sum()) < MIN_SAMPLES:
        return identity
    points = np.stack([xs[reliable], ys[reliable]], axis=-1).astype(np.float32)
    moved = points + pair.forward[ys[reliable], xs[reliable]]
    if motion is HybridMotion.perspective:
        matrix, _ = cv2.findHomography(points, moved, cv2.RANSAC, RANSAC_THRESHOLD)
    else:
        matrix, _ = cv2.estimateAffinePartial2D(
            points, moved, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_THRESHOLD
        )
    return identity if matrix is None else np.asarray(matrix, np.float64)


def matrix_motion(image: np.ndarray, matrix: np.ndarray, border: int) -> np.ndarray:
    """``image`` moved by a fitted perspective (3x3) or affine (2x3) matrix."""
    height, width = image.shape[:2]
    if matrix.shape == (3, 3):
        return cv2.warpPerspective(image, matrix, (width, height), borderMode=border)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=border)


def grey(image: np.ndarray) -> np.ndarray:
    """Luma (ITU-R 601, as PIL's ``convert("L")``) as float32."""
    red, green, blue = (image[..., c].astype(np.float32) for c in range(3))
    return red * 0.299 + green * 0.587 + blue * 0.114


def depth_mask(depth: np.ndarray) -> np.ndarray:
    """A depth map (1 nearest .. 2 farthest) as a 0..255 mask, white where farthest."""
    low, high = float(depth.min()), float(depth.max())
    return (depth.astype(np.float32) - low) / max(high - low, 1e-8) * 255.0


def equalized(mask: np.ndarray) -> np.ndarray:
    return cv2.equalizeHist(np.clip(np.rint(mask), 0, 255).astype(np.uint8)).astype(np.float32)


def composite_mask(
    kind: HybridMask,
    picture: np.ndarray,
    video: np.ndarray,
    step: HybridStep,
    depth: np.ndarray | None,
    invert: bool,
    equalize: HybridEqualize,
    auto_contrast: bool,
) -> np.ndarray | None:
    """The 0..255 mask a composite goes through (None: no mask), shaped as Deforum shapes
    it: inverted, equalized before, contrast about its mean, auto contrast between the
    cutoff percentiles, equalized after. ``depth`` is the depth the mask kind reads."""
    if kind is HybridMask.none:
        return None
    if kind in (HybridMask.depth, HybridMask.video_depth):
        assert depth is not None, "a depth mask needs its depth"
        mask = depth_mask(depth)
    elif kind is HybridMask.blend:
        weight = step.mask_blend_alpha
        mask = grey(picture) * (1 - weight) + grey(video) * weight
    else:  # difference
        mask = np.abs(grey(picture) - grey(video))
    mask = np.clip(np.rint(mask), 0, 255)
    if invert:
        mask = 255.0 - mask
    if equalize in (HybridEqualize.before, HybridEqualize.both):
        mask = equalized(mask)
    mean = np.floor(mask.mean() + 0.5)  # PIL's contrast: about the mean grey
    mask = np.clip(np.rint(mean + step.mask_contrast * (mask - mean)), 0, 255)
    if auto_contrast:
        low = np.percentile(mask, step.mask_cutoff_low)
        high = np.percentile(mask, step.mask_cutoff_high)
        mask = np.clip(255.0 * (mask - low) / max(float(high - low), 1e-8), 0, 255).astype(
            np.float32
        )
    if equalize in (HybridEqualize.after, HybridEqualize.both):
        mask = equalized(mask)
    return mask.astype(np.float32)


def composite(
    picture: np.ndarray, video: np.ndarray, mask: np.ndarray | None, alpha: float
) -> np.ndarray:
    """The video frame composited into ``picture``: through ``mask`` (white keeps the
    picture) if any, then blended in by ``alpha`` (0 the picture alone, 1 the composite)."""
    pictured = picture.astype(np.float32)
    layer: np.ndarray = video.astype(np.float32)
    if mask is not None:
        share = mask[..., None] / np.float32(255.0)
        layer = pictured * share + layer * (1.0 - share)
    blended = pictured * (1.0 - alpha) + layer * alpha
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
