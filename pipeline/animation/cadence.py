"""Frames made from diffused frames along the source's motion (cadence on an input video).

With ``cadence.every=N`` only every N-th frame (and every segment start) is diffused; each
frame between two diffused frames is made from both, the idea of Rerender-A-Video's
keyframe propagation with optical flow in place of its patch synthesis:

1. **the flow to each diffused frame**, accumulated through the frames between from the
   consecutive pairs of the flow cache (:func:`chain_pairs`): the flow from frame ``a``
   to ``c`` is the flow from ``a`` to ``b`` followed by the flow from ``b`` to ``c``,
   sampled where the first one lands, in both directions;
2. **each diffused frame warped onto the frame** along that flow (Lanczos, once: the
   flows are composed, the pictures resampled a single time), with its **reliability**,
   the forward-backward consistency of the composed flows (a pixel hidden from the
   diffused frame, or that the flow cannot follow, fails it);
3. **the blend** (:func:`carry_between`): each warp weighted by its temporal nearness and
   its reliability, so a frame a quarter of the way from ``a`` to ``b`` is mostly
   ``a``'s, and a pixel only one of them sees is that one's;
4. **what neither covers** (a disocclusion both diffused frames miss, a failed flow) is
   filled from the nearer diffused frame's warp, or, with a repair pass, from the source
   frame through a light img2img (the render strategy runs it: see :class:`Carried`).

Everything here is numpy and OpenCV and deterministic: the same flows and diffused frames
give the same pixels, so a resumed run carries exactly what an uninterrupted one did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.animation.flow import FlowPair, backward_warp, soften_mask

# The reliability mask of each warp is eroded this many pixels and blurred (like
# carry.py's): the seam between what a diffused frame covers and what it does not is
# soft, and pixels at occlusion edges, where flow is least trustworthy, count less.
RELIABLE_ERODE = 1
RELIABLE_BLUR = 1.5
# The repair pass runs only where it has something to paint: more than this share of
# the frame's pixels is mostly uncovered (each pass is a UNet call).
REPAIR_MIN_AREA = 0.002
# Blending two diffused frames averages away the fine texture where they differ (two
# uncorrelated textures mixed half and half keep half their variance): the blend's
# detail (what a blur of this sigma removes) is scaled back up to the weighted mean of
# the sides' local detail energy (measured over this sigma), by at most this gain. Where
# the sides agree the gain is 1 and the blend is untouched.
DETAIL_SIGMA = 1.5
ENERGY_SIGMA = 4.0
MAX_DETAIL_GAIN = 2.0
# How a carried frame is made, with every setting that shapes it: it joins the keys of
# carried frames, so a change here re-renders them.
CARRY_METHOD = (
    f"composed source flow, lanczos, nearness x reliability (erode {RELIABLE_ERODE} "
    f"blur {RELIABLE_BLUR}), detail kept (sigma {DETAIL_SIGMA}/{ENERGY_SIGMA}, gain <= "
    f"{MAX_DETAIL_GAIN}), repair above {REPAIR_MIN_AREA}"
)


def chain_pairs(earlier: FlowPair, later: FlowPair) -> FlowPair:
    """The flow between frames ``a`` and ``c`` from the flows ``a``-``b`` (``earlier``) and
    ``b``-``c`` (``later``), as a :class:`FlowPair` (``forward`` on ``a``'s grid,
    ``backward`` on ``c``'s).

    A pixel ``x`` of ``a`` goes to ``x + f_ab(x)`` in ``b``, and on to that point plus
    ``f_bc`` there; a pixel ``y`` of ``c`` goes back to ``y + b_cb(y)`` in ``b``, and on
    with ``b_ba`` there. Where a flow points outside its frame, the border's flow is used
    (those pixels fail the consistency test anyway).
    """
    forward = earlier.forward + backward_warp(later.forward, earlier.forward)
    backward = later.backward + backward_warp(earlier.backward, later.backward)
    return FlowPair(forward, backward)


@dataclass(frozen=True)
class Warped:
    """One diffused frame moved onto a carried frame: float32 RGB, and how far each pixel
    can be trusted (0..1, softened)."""

    image: np.ndarray
    reliable: np.ndarray


def warp_from_earlier(output: np.ndarray, flow: FlowPair) -> Warped:
    """A diffused frame ``a``'s ``output`` moved onto frame ``c``, with ``flow`` from ``a``
    to ``c`` (``a`` earlier)."""
    image = backward_warp(output.astype(np.float32), flow.backward, cv2.INTER_LANCZOS4)
    return Warped(image, soften_mask(flow.reliable, RELIABLE_ERODE, RELIABLE_BLUR))


def warp_from_later(output: np.ndarray, flow: FlowPair) -> Warped:
    """A diffused frame ``c``'s ``output`` moved onto frame ``a``, with ``flow`` from ``a``
    to ``c`` (``c`` later)."""
    image = backward_warp(output.astype(np.float32), flow.forward, cv2.INTER_LANCZOS4)
    return Warped(image, soften_mask(flow.reliable_previous, RELIABLE_ERODE, RELIABLE_BLUR))


@dataclass(frozen=True)
class Carried:
    """A carried frame before its holes are filled: the blend of the warps (float32 RGB),
    ``hole`` (0..1: how little either warp covers each pixel) and the nearer warp (what
    fills the holes without a repair pass)."""

    blend: np.ndarray
    hole: np.ndarray
    nearer: np.ndarray

    @property
    def needs_repair(self) -> bool:
        """Enough is uncovered for a repair pass to be worth its UNet call."""
        return float(np.mean(self.hole > 0.5)) > REPAIR_MIN_AREA

    def filled(self, fill: np.ndarray) -> np.ndarray:
        """The frame (RGB uint8) with ``fill`` (float or uint8 RGB) where nothing covers it."""
        hole = self.hole[..., None]
        out = self.blend * (1.0 - hole) + fill.astype(np.float32) * hole
        return np.clip(out, 0, 255).round().astype(np.uint8)

    def finished(self) -> np.ndarray:
        """The frame with its holes filled from the nearer diffused frame."""
        return self.filled(self.nearer)


def carry_between(
    sides: Sequence[tuple[Warped, float]],
) -> Carried:
    """The blend of diffused frames warped onto one frame: ``sides`` pairs each warp with
    its temporal nearness (1 at the diffused frame, 0 at the other one; a frame carried
    from one diffused frame alone has one side, of nearness 1).

    Each warp counts nearness x reliability, with the fine detail the mix averages away
    restored (:func:`detail_kept_blend`); where neither is reliable the nearer warp
    stands in, and ``hole`` says how much of each pixel neither covers.
    """
    if not sides:
        raise ValueError("a carried frame needs at least one diffused frame")
    nearest = max(sides, key=lambda side: side[1])[0]
    weights = [warped.reliable * nearness for warped, nearness in sides]
    total = np.sum(weights, axis=0)
    covered = total > 1e-6
    shares = [w / np.where(covered, total, 1.0) for w in weights]
    blend = detail_kept_blend([warped.image for warped, _ in sides], shares)
    blend = np.where(covered[..., None], blend, nearest.image)
    coverage = np.max([warped.reliable for warped, _ in sides], axis=0)
    return Carried(blend.astype(np.float32), (1.0 - coverage).astype(np.float32), nearest.image)


def detail_kept_blend(images: Sequence[np.ndarray], shares: Sequence[np.ndarray]) -> np.ndarray:
    """``images`` (float32 RGB) mixed by per-pixel ``shares`` (summing to 1), with the
    mix's fine detail scaled back to the shares' mean of the images' local detail energy
    (see :data:`DETAIL_SIGMA`): a cross-fade between two differently textured diffused
    frames stays as detailed as either, and one between equal frames is that frame."""
    if len(images) == 1:
        return images[0] * shares[0][..., None]
    low = np.zeros_like(images[0])
    fine = np.zeros_like(images[0])
    target = np.zeros(images[0].shape[:2], np.float32)
    for image, share in zip(images, shares, strict=True):
        smooth = cv2.GaussianBlur(image, (0, 0), DETAIL_SIGMA)
        detail = image - smooth
        low += share[..., None] * smooth
        fine += share[..., None] * detail
        target += share * local_energy(detail)
    gain = np.sqrt(target / np.maximum(local_energy(fine), 1e-6))
    gain = np.clip(gain, 1.0, MAX_DETAIL_GAIN)
    return low + fine * gain[..., None]


def local_energy(detail: np.ndarray) -> np.ndarray:
    """The mean squared detail (over the channels) around each pixel."""
    return cv2.GaussianBlur(np.mean(detail**2, axis=-1), (0, 0), ENERGY_SIGMA)


def mean_motion(flow: FlowPair) -> float:
    """How far a frame's pixels moved since an earlier frame, on average, as a fraction of
    the frame's width (``flow`` from the earlier to this one)."""
    magnitude = np.sqrt(np.sum(flow.backward**2, axis=-1))
    return float(magnitude.mean()) / flow.backward.shape[1]


def occluded_share(flow: FlowPair) -> float:
    """The share of a frame's pixels with no reliable match in an earlier frame (``flow``
    from the earlier to this one)."""
    return 1.0 - float(flow.reliable.mean())
