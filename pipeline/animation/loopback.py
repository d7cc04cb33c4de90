"""A loopback frame's input: the previous output, moved, colour-matched, sharpened and
given noise.

In loopback animation (Deforum's 2D and 3D modes) frame k+1's img2img input is made
from frame k's output, in Deforum's order:

1. the camera step: a 2D move (:func:`~pipeline.animation.motion.warp_2d`), or the 3D
   camera through the output's depth (:func:`~pipeline.animation.camera3d.warp_3d`),
   with the perspective flip (:mod:`pipeline.animation.flip`) if it is on (after the 2D
   move; before the 3D one, as Deforum does); then hybrid video's motion and composite
   (:mod:`pipeline.animation.hybrid`), when the loopback has one;
2. the colour match to a reference (``color_coherence``: frame 0's output, or a video's
   frame), against loopback's drift;
3. the contrast multiplier and the anti-blur unsharp mask
   (:mod:`pipeline.animation.sharpen`);
4. the frame's noise, seeded by its seed, Gaussian or under a Perlin envelope
   (:func:`~pipeline.animation.motion.add_noise`, :mod:`pipeline.animation.perlin`).

The render strategy (:mod:`pipeline.render.strategies.loopback`) reads each step's values
from the plan row and supplies the depth maps and video references.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.animation.camera3d import CameraStep3D, sample_3d, warp_3d
from pipeline.animation.color_match import match_colors
from pipeline.animation.flip import flip_matrix
from pipeline.animation.motion import add_noise, move_matrix, warp_2d, warp_perspective
from pipeline.animation.perlin import perlin_envelope
from pipeline.animation.sharpen import scale_values, unsharp_mask
from pipeline.config.schema import Border, ColorCoherence, PaddingMode, SamplingMode


@dataclass(frozen=True)
class CameraStep:
    """One frame's 2D camera move (Deforum's units: see :mod:`pipeline.animation.motion`)."""

    zoom: float = 1.0
    angle: float = 0.0
    translation_x: float = 0.0
    translation_y: float = 0.0
    center_x: float = 0.5
    center_y: float = 0.5


@dataclass(frozen=True)
class AntiBlur:
    """One frame's unsharp mask (see :func:`pipeline.animation.sharpen.unsharp_mask`)."""

    amount: float
    kernel: int
    sigma: float
    threshold: float


@dataclass(frozen=True)
class PerspectiveFlip:
    """One frame's perspective flip, in degrees (see :mod:`pipeline.animation.flip`)."""

    theta: float
    phi: float
    gamma: float
    fv: float


@dataclass(frozen=True)
class PerlinShape:
    """One frame's Perlin envelope: octaves and their persistence."""

    octaves: int
    persistence: float


@dataclass(frozen=True)
class InputTools:
    """What one loopback input gets besides its camera step."""

    noise: float = 0.0  # standard deviation, 0..1 image units
    perlin: PerlinShape | None = None  # None: plain Gaussian noise
    contrast: float = 1.0
    anti_blur: AntiBlur | None = None
    flip: PerspectiveFlip | None = None


@dataclass(frozen=True)
class LoopbackSettings:
    """What stays the same for every frame of a loopback."""

    border: Border = Border.replicate
    color_coherence: ColorCoherence = ColorCoherence.none
    padding_mode: PaddingMode = PaddingMode.border
    sampling_mode: SamplingMode = SamplingMode.bicubic
    perlin_cells: tuple[int, int] = (8, 8)  # across the width, across the height
    device: str = "cpu"  # where the 3D warp runs


# The colour space each colour-coherence mode matches in (a video's frames: LAB, as
# Deforum's maintain_colors falls back to for them).
COLOR_SPACES = {
    ColorCoherence.lab: "lab",
    ColorCoherence.hsv: "hsv",
    ColorCoherence.rgb: "rgb",
    ColorCoherence.video: "lab",
}


class LoopbackInputs:
    """Makes every loopback input after the first from the output before it."""

    def __init__(self, settings: LoopbackSettings) -> None:
        self.settings = settings
        self.reference: np.ndarray | None = None  # the first output: colours match it

    def output(self, image: np.ndarray) -> None:
        """A frame's output is known; the first becomes the colour reference."""
        if self.reference is None:
            self.reference = image

    def next_input(
        self,
        previous: np.ndarray,
        step: CameraStep | CameraStep3D,
        tools: InputTools,
        seed: int,
        depth: np.ndarray | None = None,
        reference: np.ndarray | None = None,
        after_move: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> np.ndarray:
        """The input of the frame after ``previous``: moved by ``step`` (through ``depth``,
        1 nearest .. 2 farthest, for a 3D step), then ``after_move`` (hybrid video's
        motion and composite, :mod:`pipeline.animation.hybrid`), colour-matched to
        ``reference`` (by default frame 0's output), its values scaled and sharpened,
        with noise drawn from ``seed``."""
        image = self.move(previous, step, tools.flip, depth)
        if after_move is not None:
            image = after_move(image)
        space = COLOR_SPACES.get(self.settings.color_coherence)
        target = reference if reference is not None else self.reference
        if space is not None and target is not None:
            image = match_colors(image, target, space)
        if tools.contrast != 1:
            image = scale_values(image, tools.contrast)
        if tools.anti_blur is not None:
            blur = tools.anti_blur
            image = unsharp_mask(image, blur.amount, blur.kernel, blur.sigma, blur.threshold)
        envelope = None
        if tools.perlin is not None and tools.noise > 0:
            cells_x, cells_y = self.settings.perlin_cells
            height, width = image.shape[:2]
            envelope = perlin_envelope(
                height, width, cells_x, cells_y, tools.perlin.octaves, tools.perlin.persistence,
                seed,
            )  # fmt: skip
        return add_noise(image, tools.noise, seed, envelope)

    def move(
        self,
        previous: np.ndarray,
        step: CameraStep | CameraStep3D,
        flip: PerspectiveFlip | None,
        depth: np.ndarray | None,
    ) -> np.ndarray:
        """The camera step alone (with the perspective flip)."""
        border = self.settings.border.value
        height, width = previous.shape[:2]
        matrix = (
            flip_matrix(width, height, flip.theta, flip.phi, flip.gamma, flip.fv)
            if flip is not None
            else None
        )
        if isinstance(step, CameraStep3D):
            image = previous if matrix is None else warp_perspective(previous, matrix, border)
            return warp_3d(
                image, depth, step, padding_mode=self.settings.padding_mode.value,
                sampling_mode=self.settings.sampling_mode.value, device=self.settings.device,
            )  # fmt: skip
        return warp_2d(
            previous, zoom=step.zoom, angle=step.angle, translation_x=step.translation_x,
            translation_y=step.translation_y, center_x=step.center_x, center_y=step.center_y,
            border=border, flip=matrix,
        )  # fmt: skip

    def move_maps(
        self,
        maps: np.ndarray,
        step: CameraStep | CameraStep3D,
        flip: PerspectiveFlip | None,
        depth: np.ndarray | None,
    ) -> np.ndarray:
        """Float maps (``H x W`` or ``H x W x C``: the depth a picture carries along, a flow
        field) moved by the camera step as :meth:`move` moves the picture (through
        ``depth`` in 3D), bilinear, the border's values where the move uncovers."""
        height, width = maps.shape[:2]
        layered = maps.reshape(height, width, -1).astype(np.float32)
        matrix = (
            flip_matrix(width, height, flip.theta, flip.phi, flip.gamma, flip.fv)
            if flip is not None
            else None
        )
        if isinstance(step, CameraStep3D):
            if matrix is not None:
                layered = perspective_maps(layered, matrix)
            moved = sample_3d(layered, depth, step, device=self.settings.device)
        else:
            move = move_matrix(
                width, height, step.zoom, step.angle, step.translation_x, step.translation_y,
                step.center_x, step.center_y,
            )  # fmt: skip
            moved = perspective_maps(layered, move if matrix is None else matrix @ move)
        return moved.reshape(maps.shape)


def perspective_maps(maps: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Float maps (``H x W x C``) moved by the 3x3 homography ``matrix``, bilinear, the edge
    repeated where the move uncovers."""
    height, width = maps.shape[:2]
    flags, border = cv2.INTER_LINEAR, cv2.BORDER_REPLICATE
    layers = [
        cv2.warpPerspective(layer, matrix, (width, height), flags=flags, borderMode=border)
        for layer in (np.ascontiguousarray(maps[..., c]) for c in range(maps.shape[2]))
    ]
    return np.stack(layers, axis=-1)
