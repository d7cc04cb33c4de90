"""Deforum's cadence in a loopback: the frames between diffused frames, tweened.

With ``diffusion_cadence`` N (``cadence.every``) Deforum diffuses frames 0, N, 2N, ...
and makes every frame from one diffused frame ``k`` up to the next from two pictures
moved along by the camera (its "turbo" frames):

- ``next``, the diffused frame ``k``, moved by each frame's camera step after ``k``;
- ``prev``, the picture before the span (frame ``k-1`` as shown, which is the diffused
  frame before ``k`` moved along to there), moved by each frame's step from ``k`` on;

and shows frame ``t`` as ``prev * (1 - w) + next * w`` with ``w = (t - k + 1) / N``: a
diffused frame first shows with a weight of ``1/N``, and the last frame of its span is
``next`` alone (the frame the next diffusion starts from). The first span has no
``prev``: frame 0 is the diffused frame, frames 1 to N-1 are it moved along.

With optical flow cadence (``cadence.flow``) the flow ``F`` from ``prev`` to ``next`` at
the span's start, itself moved along by the camera, moves both pictures towards each
other: ``prev`` by ``w f F`` and ``next`` back by ``(1 - w) f F`` (``f``: the frame's
``cadence.flow_factor``), so the tween morphs along the motion instead of cross-fading.
(Deforum's code means the same; it moves ``next`` back by half the flow and then nudges
both pictures each frame by a flow normalised to at most a pixel, which this does not
copy.)

In 3D each picture carries its depth along with it (the diffused frame's depth, moved
with the picture by the same camera steps), so the 3D camera moves a tween through the
depth of the diffused frame it came from, and no depth is estimated on a tween.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.animation.flow import backward_warp


@dataclass(frozen=True)
class Moving:
    """A picture moved along by the camera (RGB uint8), with the depth it carries (3D)."""

    image: np.ndarray
    depth: np.ndarray | None = None


class Camera:
    """How a span's pictures move at each frame (the loopback strategy supplies it)."""

    def __init__(
        self,
        move: Callable[[Moving, int], Moving],
        move_flow: Callable[[np.ndarray, np.ndarray | None, int], np.ndarray],
    ) -> None:
        """``move(picture, index)``: the picture moved by frame ``index``'s camera step;
        ``move_flow(flow, depth, index)``: a flow field moved the same way."""
        self.move = move
        self.move_flow = move_flow


def tween_weight(index: int, start: int, every: int) -> float:
    """How much of ``next`` frame ``index`` shows in the span from ``start`` (Deforum's)."""
    return (index - start + 1) / every


class TurboSpan:
    """One span's two pictures, moved along frame by frame (see the module notes)."""

    def __init__(
        self,
        start: int,
        every: int,
        camera: Camera,
        previous: Moving | None,
        diffused: Moving,
        flow: np.ndarray | None = None,
    ) -> None:
        """``previous``: the picture before the span (None in the first span); ``diffused``
        the diffused frame ``start``; ``flow`` from ``previous`` to it, for flow cadence."""
        self.start = start
        self.every = every
        self.camera = camera
        self.previous = previous
        self.next = diffused
        self.flow = flow
        self.at = start - 1  # the pictures are where they are before frame ``start``

    def to(self, index: int) -> None:
        """Move the pictures along up to frame ``index`` (frames of the span, in order):
        ``prev`` and the flow by every frame's step, ``next`` by those after ``start``."""
        if index < self.at:
            raise ValueError(f"a span moves forward only: at {self.at}, asked {index}")
        for frame in range(self.at + 1, index + 1):
            if self.previous is not None:
                self.previous = self.camera.move(self.previous, frame)
            if frame > self.start:
                self.next = self.camera.move(self.next, frame)
            if self.flow is not None:
                depth = self.previous.depth if self.previous is not None else None
                self.flow = self.camera.move_flow(self.flow, depth, frame)
        self.at = max(self.at, index)

    def shown(self, index: int, flow_factor: float | None) -> np.ndarray:
        """Frame ``index`` as Deforum shows it (``flow_factor``: the frame's, with flow)."""
        self.to(index)
        weight = tween_weight(index, self.start, self.every)
        if self.previous is None or weight >= 1.0:
            return self.next.image
        before = self.previous.image.astype(np.float32)
        after = self.next.image.astype(np.float32)
        if self.flow is not None and flow_factor is not None:
            before = displaced(before, self.flow * (weight * flow_factor))
            after = displaced(after, self.flow * (-(1.0 - weight) * flow_factor))
        blend = before * (1.0 - weight) + after * weight
        return np.clip(np.rint(blend), 0, 255).astype(np.uint8)

    def end(self) -> Moving:
        """``next`` at the span's last frame: the picture before the next span."""
        self.to(self.start + self.every - 1)
        return self.next


def displaced(image: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """``image`` with its content moved by ``motion`` (``out(x) = image(x - motion(x))``)."""
    return backward_warp(image, -motion)
