"""Frames between two frames, from optical flow both ways, with occlusions told apart.

The method (no weights; after the flow projection of Baker et al. 2011, "A Database and
Evaluation Methodology for Optical Flow", section 3.3, with a forward-backward check):

1. DIS flow ``a -> b`` and ``b -> a`` (:mod:`pipeline.animation.flow`), the pixels of each
   frame that have a match in the other (forward-backward consistent: visible in both),
   and how well each pixel's colour matches where its flow lands.
2. Every pixel of ``a`` moves to where it is at time ``t`` (``x + t * F_ab(x)``), carrying
   its flow; every pixel of ``b`` likewise (``y + (1 - t) * F_ba(y)``). Where several land
   on one pixel, the one that is visible in both frames wins over one that is about to be
   covered, then the better colour match, then the larger motion (usually the nearer
   object): a z-buffer without depth.
3. At each pixel of the new frame, a pixel that is visible in both frames samples both
   along its flow and blends them by time; one seen only in ``a`` (about to be covered)
   samples ``a`` alone, one seen only in ``b`` (just uncovered) samples ``b`` alone. So a
   moving object does not leave a half-transparent copy of itself at either end: it is
   where it is at ``t``, and the background it uncovers comes from the frame that shows it.
   Pixels nothing landed on take the flow of the nearest pixel that something did.

Two frames with almost nothing in common (a scene cut) get no in-betweens: the earlier
frame holds until halfway, then the later one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from pipeline.animation.flow import (
    backward_warp,
    consistency_mask,
    estimate_flow,
    resize_flow,
)

# Below this share of consistent pixels both ways, two frames are a cut, not a motion.
CUT_CONSISTENT = 0.2
# A pixel whose colour differs more than this (mean over channels, 0..1) from where its
# flow lands is not the same surface in the other frame, whatever the flows say.
MATCHING = 0.1
# Where an unreliable pixel looks for a reliable neighbour's flow: 8 directions, 3 radii.
_CANDIDATE_OFFSETS = [
    (dy * radius, dx * radius)
    for radius in (6, 12, 24)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1))
]
REPAIR_ROUNDS = 1
_REPAIR_TILE = 96  # pixels; the repair works only on tiles with unreliable pixels
_WINDOW = 5
# Flow is measured on frames no larger than this (pixels on the long side).
FLOW_MAX_SIDE = 960
# Priority of a splatted pixel: visible in both frames, then colour match, then motion.
_VISIBLE_BOTH = 2.0
_MOTION_WEIGHT = 0.01
_MOTION_SCALE = 50.0  # pixels of motion that earn the whole motion weight


@dataclass(frozen=True)
class Splat:
    """One frame's pixels moved to time ``t``: at each pixel of the new frame, the flow
    of the pixel that landed there and whether it is visible in both frames."""

    flow: np.ndarray  # H x W x 2: the winner's flow (towards the other frame)
    both: np.ndarray  # H x W bool: the winner is visible in both frames
    hit: np.ndarray  # H x W bool: something landed here


@dataclass(frozen=True)
class PairFlow:
    """What every in-between frame of one pair needs, computed once per pair."""

    forward: np.ndarray  # a -> b on a's grid
    backward: np.ndarray  # b -> a on b's grid
    both_a: np.ndarray  # a's pixels visible in b
    both_b: np.ndarray  # b's pixels visible in a
    priority_a: np.ndarray
    priority_b: np.ndarray

    @property
    def is_cut(self) -> bool:
        return bool(self.both_a.mean() < CUT_CONSISTENT and self.both_b.mean() < CUT_CONSISTENT)


def pair_flow(a: np.ndarray, b: np.ndarray) -> PairFlow:
    """Flow both ways between ``a`` and ``b`` (RGB uint8), repaired at occlusions, and
    each pixel's visibility and priority. Frames larger than ``FLOW_MAX_SIDE`` are
    measured at that size and the flow scaled up: motion does not need every pixel, and
    the repair's cost grows with the area."""
    height, width = a.shape[:2]
    factor = min(1.0, FLOW_MAX_SIDE / max(height, width))
    small_a, small_b = (_smaller(image, factor) for image in (a, b))
    forward = estimate_flow(small_a, small_b)
    backward = estimate_flow(small_b, small_a)
    unit_a, unit_b = _unit(small_a), _unit(small_b)
    for _ in range(REPAIR_ROUNDS):  # each way, with what the other's repair made reliable
        reliable_b = _reliable(unit_b, unit_a, backward, forward)
        reliable_a = _reliable(unit_a, unit_b, forward, backward)
        forward = _repaired(unit_a, unit_b, forward, reliable_a, backward, reliable_b)
        reliable_a = _reliable(unit_a, unit_b, forward, backward)
        backward = _repaired(unit_b, unit_a, backward, reliable_b, forward, reliable_a)
    if factor < 1.0:
        forward = resize_flow(forward, width, height)
        backward = resize_flow(backward, width, height)
    mismatch_a = _mismatch(a, b, forward)
    mismatch_b = _mismatch(b, a, backward)
    both_a = consistency_mask(forward, backward) & (mismatch_a < MATCHING)
    both_b = consistency_mask(backward, forward) & (mismatch_b < MATCHING)
    return PairFlow(
        forward,
        backward,
        both_a,
        both_b,
        _priority(forward, both_a, mismatch_a),
        _priority(backward, both_b, mismatch_b),
    )


def _smaller(image: np.ndarray, factor: float) -> np.ndarray:
    if factor >= 1.0:
        return image
    size = (round(image.shape[1] * factor), round(image.shape[0] * factor))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _unit(image: np.ndarray) -> np.ndarray:
    """RGB as float32 in [0, 1], what the repair compares."""
    unit: np.ndarray = image.astype(np.float32) / 255.0
    return unit


def _difference(image: np.ndarray, landed: np.ndarray) -> np.ndarray:
    """Mean absolute difference over the channels of two float RGB images."""
    channels = cv2.absdiff(image, landed)  # numpy's sum over a 3-wide last axis is slow
    difference: np.ndarray = (channels[..., 0] + channels[..., 1] + channels[..., 2]) / 3.0
    return difference


def _reliable(
    image: np.ndarray, other: np.ndarray, flow: np.ndarray, reverse: np.ndarray
) -> np.ndarray:
    """Pixels whose flow is confirmed by ``reverse`` and by the colour it lands on."""
    landed = backward_warp(other, flow)
    return consistency_mask(flow, reverse) & (_difference(image, landed) < MATCHING)


def _repaired(
    image: np.ndarray,
    other: np.ndarray,
    flow: np.ndarray,
    reliable: np.ndarray,
    other_flow: np.ndarray,
    other_reliable: np.ndarray,
) -> np.ndarray:
    """``flow`` with each unreliable pixel given the reliable flow around it (or none)
    that matches its neighbourhood best.

    DIS's patches drag an object's motion a few pixels into the still background around
    it; those background pixels then fail the checks and would be moved with the object.
    Trying the flows of reliable pixels nearby (a PatchMatch-like propagation, by
    colour over a 5x5 window) gives them their own surface's motion back. A pixel
    hidden in the other frame matches nothing well; what hid it is the reliable pixel at
    its place in the other frame (``other_flow``, ``other_reliable``), which moved away,
    and that occluder's motion is never the hidden pixel's own: it is ruled out, so the
    pixel takes the motion of the surface it belongs to.
    """
    if reliable.all():
        return flow
    height, width = image.shape[:2]
    speed = cv2.magnitude(other_flow[..., 0], other_flow[..., 1])
    moving = other_reliable & (speed > 1.0)
    near = np.maximum(1.0, 0.25 * speed)  # a candidate this close is the occluder's motion
    unreliable = ~reliable
    margin = _WINDOW // 2  # the cost of a pixel looks this far around it
    pad = max(max(abs(dy), abs(dx)) for dy, dx in _CANDIDATE_OFFSETS) + margin
    padded_flow = np.pad(flow, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    padded_reliable = np.pad(reliable, pad, mode="edge")
    best = flow.copy()
    # only the tiles holding unreliable pixels are worked on (with a margin for the window)
    for top in range(0, height, _REPAIR_TILE):
        for left in range(0, width, _REPAIR_TILE):
            bottom, right = min(height, top + _REPAIR_TILE), min(width, left + _REPAIR_TILE)
            if not unreliable[top:bottom, left:right].any():
                continue
            y0, y1 = max(0, top - margin), min(height, bottom + margin)
            x0, x1 = max(0, left - margin), min(width, right + margin)
            area = (slice(y0, y1), slice(x0, x1))
            ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)

            def cost_of(candidate: np.ndarray) -> np.ndarray:
                landed = cv2.remap(
                    other, xs + candidate[..., 0], ys + candidate[..., 1],  # noqa: B023
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
                )  # fmt: skip
                difference = _difference(image[area], landed)  # noqa: B023
                cost = cv2.blur(difference, (_WINDOW, _WINDOW), borderType=cv2.BORDER_REPLICATE)
                # the occluder's flow seen from here is -other_flow
                occluder = other_flow[area]  # noqa: B023
                apart = cv2.magnitude(
                    candidate[..., 0] + occluder[..., 0], candidate[..., 1] + occluder[..., 1]
                )
                cost[moving[area] & (apart < near[area])] += 1.0  # noqa: B023
                return np.asarray(cost)

            region = flow[area].copy()
            region_cost = cost_of(region)
            wanted = unreliable[area]
            for dy, dx in _CANDIDATE_OFFSETS:
                rows = slice(y0 + pad + dy, y1 + pad + dy)
                cols = slice(x0 + pad + dx, x1 + pad + dx)
                candidate = padded_flow[rows, cols].copy()
                candidate[~padded_reliable[rows, cols]] = 0.0  # no reliable one: stand still
                cost = cost_of(candidate)
                better = (cost < region_cost) & wanted
                np.copyto(region, candidate, where=better[..., None])
                np.copyto(region_cost, cost, where=better)
            best[top:bottom, left:right] = region[top - y0 : bottom - y0, left - x0 : right - x0]
    return best


def _mismatch(image: np.ndarray, other: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """How far each pixel's colour is from where its flow lands in ``other`` (0..1)."""
    landed = backward_warp(other, flow).astype(np.float32)
    mismatch: np.ndarray = np.abs(image.astype(np.float32) - landed).mean(axis=-1) / 255.0
    return mismatch


def _priority(flow: np.ndarray, both: np.ndarray, mismatch: np.ndarray) -> np.ndarray:
    """Visible in both frames first, then the colour match, then how far it moves."""
    motion = np.minimum(np.hypot(flow[..., 0], flow[..., 1]), _MOTION_SCALE) / _MOTION_SCALE
    priority: np.ndarray = _VISIBLE_BOTH * both - mismatch + _MOTION_WEIGHT * motion
    return priority


def in_betweens(a: np.ndarray, b: np.ndarray, fractions: Sequence[float]) -> list[np.ndarray]:
    """The frames at ``fractions`` (0 < t < 1) of the way from ``a`` to ``b`` (RGB uint8)."""
    pair = pair_flow(a, b)
    return [in_between(a, b, pair, t) for t in fractions]


def in_between(a: np.ndarray, b: np.ndarray, pair: PairFlow, t: float) -> np.ndarray:
    """The frame at time ``t`` between ``a`` (0) and ``b`` (1), from their ``pair`` flow."""
    if pair.is_cut:
        return a.copy() if t < 0.5 else b.copy()
    from_a = _splat(pair.forward, pair.both_a, pair.priority_a, t)
    from_b = _splat(pair.backward, pair.both_b, pair.priority_b, 1.0 - t)
    # a winner visible in both frames outranks one the other splat says is hidden there
    use_a = from_a.hit & (from_a.both | ~(from_b.hit & from_b.both))
    use_b = from_b.hit & (from_b.both | ~(from_a.hit & from_a.both))
    neither = ~(use_a | use_b)  # nothing landed: the nearest landed flows, both frames
    use_a |= neither
    use_b |= neither
    seen_a = _filled(from_a)
    seen_b = _filled(from_b)
    # what each splat says the pixel looks like, from the frames that show it
    estimate_a = _sample(a, b, seen_a.flow, seen_a.both | neither, t)
    estimate_b = _sample(b, a, seen_b.flow, seen_b.both | neither, 1.0 - t)
    weight_a = (1.0 - t) * use_a
    weight_b = t * use_b
    total = np.maximum(weight_a + weight_b, 1e-6)[..., None]
    out = (estimate_a * weight_a[..., None] + estimate_b * weight_b[..., None]) / total
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _splat(flow: np.ndarray, both: np.ndarray, priority: np.ndarray, t: float) -> Splat:
    """Each pixel moved ``t`` of its ``flow``, to the nearest pixel; the highest priority
    wins where several land together."""
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    tx = np.rint(xs + t * flow[..., 0]).astype(np.int64).ravel()
    ty = np.rint(ys + t * flow[..., 1]).astype(np.int64).ravel()
    inside = np.flatnonzero((tx >= 0) & (tx < width) & (ty >= 0) & (ty < height))
    target = ty[inside] * width + tx[inside]
    order = np.lexsort((priority.ravel()[inside], target))  # by target, then priority
    target, source = target[order], inside[order]
    winner = np.r_[target[1:] != target[:-1], True]  # the last (highest) of each target
    target, source = target[winner], source[winner]
    out_flow = np.zeros((height * width, 2), np.float32)
    out_both = np.zeros(height * width, bool)
    hit = np.zeros(height * width, bool)
    out_flow[target] = flow.reshape(-1, 2)[source]
    out_both[target] = both.ravel()[source]
    hit[target] = True
    return Splat(
        out_flow.reshape(height, width, 2),
        out_both.reshape(height, width),
        hit.reshape(height, width),
    )


def _filled(splat: Splat) -> Splat:
    """``splat`` with the pixels nothing landed on given the nearest landed pixel's flow."""
    if splat.hit.all() or not splat.hit.any():
        return splat
    rows, cols = ndimage.distance_transform_edt(
        ~splat.hit, return_distances=False, return_indices=True
    )
    return Splat(splat.flow[rows, cols], splat.both[rows, cols], splat.hit)


def _sample(
    near: np.ndarray, far: np.ndarray, flow: np.ndarray, both: np.ndarray, t: float
) -> np.ndarray:
    """The colour at each pixel of the new frame, ``t`` of the way from ``near`` to
    ``far``, for pixels whose motion from ``near`` to ``far`` is ``flow``: ``near`` sampled
    back along ``t`` of it, blended with ``far`` sampled ahead along ``1 - t`` of it
    where the pixel is visible in both."""
    from_near = backward_warp(near, -t * flow, cv2.INTER_LINEAR).astype(np.float32)
    from_far = backward_warp(far, (1.0 - t) * flow, cv2.INTER_LINEAR).astype(np.float32)
    blended = (1.0 - t) * from_near + t * from_far
    return np.where(both[..., None], blended, from_near)
