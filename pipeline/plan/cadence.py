"""Cadence in the plan: which frames are diffused, and what each other frame is made from.

``cadence.every=N`` diffuses every N-th frame. On an input video the frames between are
carried along the source's motion from the diffused frames before and after them
(:mod:`pipeline.animation.cadence`); a segment start (a prompt switch, a scene cut: see
:mod:`.segments`) is always diffused, a frame is never carried across one, and a frame
whose size differs from the one before starts afresh too. With adaptive keyframes
(``cadence.max_motion``, ``cadence.max_occluded``) a frame is also diffused where the
source moved too far, or hid too much, since the last diffused frame: the plan measures
that from the flow between consecutive source frames (the same flow cache the render
carries along).

In loopback (Deforum's ``diffusion_cadence``) frames 0, N, 2N, ... are diffused, and
every frame from one diffused frame up to the next is tweened between the two diffused
before it (Deforum's turbo frames), so a diffused frame itself is shown blended with the
one before: its row names both.

Everything is decided here, so the plan, its chart and each frame's key say which frames
are diffused and which are carried, and from which frames.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence

import numpy as np

from pipeline.animation.cadence import chain_pairs, mean_motion, occluded_share
from pipeline.animation.flow import FlowPair
from pipeline.animation.flow_cache import FlowCache
from pipeline.config.schema import CadenceConfig

# The flow between source frames ``index - 1`` and ``index`` (None: not known, because a
# frame is missing or changes size there).
PairOf = Callable[[int], FlowPair | None]


def video_keyframes(
    frame_count: int,
    cadence: CadenceConfig,
    starts: Sequence[int],
    pair_of: PairOf | None = None,
) -> list[int]:
    """The frames diffused on an input video: every ``cadence.every``-th, every segment
    start (``starts``), and with adaptive keyframes (``pair_of`` gives the source's flow)
    each frame where the motion or the hidden area since the last diffused frame passes
    its threshold."""
    fixed = set(range(0, frame_count, cadence.every)) | set(starts)
    adaptive = pair_of is not None and (cadence.max_motion > 0 or cadence.max_occluded > 0)
    if not adaptive:
        return sorted(frame for frame in fixed if 0 <= frame < frame_count)
    assert pair_of is not None
    chosen = []
    since: FlowPair | None = None  # the flow from the last diffused frame to this one
    for index in range(frame_count):
        if index > 0 and index not in fixed:
            pair = pair_of(index)
            since = None if pair is None else (pair if since is None else chain_pairs(since, pair))
            if since is None or too_far(since, cadence):
                fixed.add(index)  # after a gap, or moved or hidden too much
        if index in fixed:
            chosen.append(index)
            since = None
    return chosen


def too_far(since: FlowPair, cadence: CadenceConfig) -> bool:
    """Whether a frame has moved or hidden too much since the last diffused frame."""
    return (cadence.max_motion > 0 and mean_motion(since) > cadence.max_motion) or (
        cadence.max_occluded > 0 and occluded_share(since) > cadence.max_occluded
    )


def video_fields(index: int, keyframes: Sequence[int], starts: Sequence[int]) -> dict[str, int]:
    """A frame's cadence fields on an input video: none for a diffused frame; for a
    carried one the diffused frames before and after it (the later only within its
    segment). ``keyframes`` and ``starts`` are sorted."""
    position = bisect_left(keyframes, index)
    if position < len(keyframes) and keyframes[position] == index:
        return {}
    earlier = keyframes[position - 1]
    fields = {"cadence_from": earlier}
    if position < len(keyframes):
        later = keyframes[position]
        if not starts or bisect_right(starts, later) == bisect_right(starts, index):
            fields["cadence_to"] = later
    return fields


def loopback_fields(index: int, every: int) -> dict[str, int]:
    """A frame's cadence fields in loopback (Deforum's turbo): frames from diffused frame
    ``k`` up to the next are tweened between the diffused frame before ``k`` and ``k``;
    the first ``every`` frames follow frame 0 alone."""
    start = index - index % every
    if index == 0:
        return {}
    if start == 0:
        return {"cadence_from": 0}
    return {"cadence_from": start - every, "cadence_to": start}


def size_changes(frame_sizes: Sequence[tuple[int, int]] | None) -> list[int]:
    """Frames whose size differs from the frame before (a folder of photos rendered at
    their own sizes): no frame is carried across one."""
    if not frame_sizes:
        return []
    return [
        index
        for index in range(1, len(frame_sizes))
        if frame_sizes[index] != frame_sizes[index - 1]
    ]


class MotionPairs:
    """The source's flow between consecutive frames, for adaptive keyframes: measured as
    the plan's pass decodes the frames (:meth:`add`), kept in the run folder's flow cache
    (where the render finds it again), read back by index (calling the object)."""

    def __init__(self, flows: FlowCache) -> None:
        self.flows = flows
        self.measured: set[int] = set()
        self._previous: tuple[int, np.ndarray] | None = None

    def add(self, index: int, image: np.ndarray) -> None:
        previous = self._previous
        if previous is not None and previous[0] == index - 1 and previous[1].shape == image.shape:
            self.flows.pair(index, previous[1], image)
            self.measured.add(index)
        self._previous = (index, image)

    def __call__(self, index: int) -> FlowPair | None:
        return self.flows.stored(index) if index in self.measured else None
