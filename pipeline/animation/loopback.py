"""A loopback frame's input: the previous output, moved, colour-matched and given noise.

In loopback animation (Deforum's 2D mode) frame k+1's img2img input is made from frame
k's output, in this order (Deforum's): the camera step (:func:`warp_2d`), the colour match
to the first output against loopback's drift (``color_coherence``), then the frame's
noise seeded by its seed (:func:`add_noise`). The render strategy
(:mod:`pipeline.render.strategies.loopback`) reads each step's values from the plan row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.animation.color_match import match_colors_lab
from pipeline.animation.motion import add_noise, warp_2d
from pipeline.config.schema import Border, ColorCoherence


@dataclass(frozen=True)
class CameraStep:
    """One frame's 2D camera move (Deforum's units: see :mod:`pipeline.animation.motion`)."""

    zoom: float = 1.0
    angle: float = 0.0
    translation_x: float = 0.0
    translation_y: float = 0.0
    center_x: float = 0.5
    center_y: float = 0.5


class LoopbackInputs:
    """Makes every loopback input after the first from the output before it."""

    def __init__(self, border: Border, color_coherence: ColorCoherence) -> None:
        self.border = border
        self.color_coherence = color_coherence
        self.reference: np.ndarray | None = None  # the first output: colours match it

    def output(self, image: np.ndarray) -> None:
        """A frame's output is known; the first becomes the colour reference."""
        if self.reference is None:
            self.reference = image

    def next_input(
        self, previous: np.ndarray, step: CameraStep, noise: float, seed: int
    ) -> np.ndarray:
        """The input of the frame after ``previous``: moved by ``step``, colour-matched,
        with Gaussian ``noise`` (0..1 units) drawn from ``seed``."""
        image = warp_2d(
            previous,
            zoom=step.zoom,
            angle=step.angle,
            translation_x=step.translation_x,
            translation_y=step.translation_y,
            center_x=step.center_x,
            center_y=step.center_y,
            border=self.border.value,
        )
        if self.color_coherence is ColorCoherence.lab and self.reference is not None:
            image = match_colors_lab(image, self.reference)
        return add_noise(image, noise, seed)
