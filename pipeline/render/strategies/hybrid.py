"""A loopback's hybrid video: its frames by output frame number, the flow between them
(kept in the run folder), and what it does to each loopback input and output (see
:mod:`pipeline.animation.hybrid` for Deforum's order and the image operations).

The hybrid video is read with the input's selection (start, every, end) at the
animation's size, so its frame k goes with output frame k; one image is every frame.
What it changes before img2img shows in the frame's input pixels, hence in its key; a
composite onto the output after img2img joins the key as a dependency (the video frame's
digest and the composite's settings).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.animation.flow_cache import FlowCache
from pipeline.animation.hybrid import (
    HybridStep,
    composite,
    composite_mask,
    fitted_motion,
    flow_motion,
    matrix_motion,
)
from pipeline.config.schema import (
    Border,
    HybridComposite,
    HybridConfig,
    HybridMask,
    HybridMotion,
    RunConfig,
)
from pipeline.errors import RotoscopeError
from pipeline.plan.rows import PlanRow
from pipeline.records.manifest import image_digest
from pipeline.records.run_folder import RunFolder
from pipeline.source.base import SourceKind
from pipeline.source.open import aligned_input, open_source

# The 2D border rule as OpenCV's, for the perspective and affine motions
CV2_BORDERS = {
    Border.replicate: cv2.BORDER_REPLICATE,
    Border.reflect: cv2.BORDER_REFLECT_101,
    Border.wrap: cv2.BORDER_WRAP,
    Border.zeros: cv2.BORDER_CONSTANT,
}


def hybrid_step(row: PlanRow) -> HybridStep:
    """The row's hybrid values (unset: the defaults, which its settings do not use)."""
    defaults = HybridStep()

    def value(given: float | None, default: float) -> float:
        return default if given is None else given

    return HybridStep(
        flow_factor=value(row.hybrid_flow_factor, defaults.flow_factor),
        alpha=value(row.hybrid_alpha, defaults.alpha),
        mask_contrast=value(row.hybrid_mask_contrast, defaults.mask_contrast),
        mask_blend_alpha=value(row.hybrid_mask_blend_alpha, defaults.mask_blend_alpha),
        mask_cutoff_low=value(row.hybrid_mask_cutoff_low, defaults.mask_cutoff_low),
        mask_cutoff_high=value(row.hybrid_mask_cutoff_high, defaults.mask_cutoff_high),
    )


@dataclass(frozen=True)
class Previous:
    """The output a loopback frame is made from, and its key."""

    output: np.ndarray
    key: str


# The depth of a picture: of an output by its key, or of any picture (a video frame)
DepthOf = Callable[[str, np.ndarray], np.ndarray]


class HybridVideo:
    """A loopback's hybrid video (see the module notes)."""

    def __init__(
        self,
        settings: HybridConfig,
        frames: Iterator[np.ndarray],
        flows: FlowCache,
        border: Border,
        depth_of: DepthOf | None,
    ) -> None:
        self.settings = settings
        self.frames = frames
        self.flows = flows
        self.border = CV2_BORDERS[border]
        self.depth_of = depth_of
        self.read: dict[int, np.ndarray] = {}  # the two newest frames, by number

    @classmethod
    def open(
        cls,
        cfg: RunConfig,
        folder: RunFolder,
        stack: ExitStack,
        size: tuple[int, int],
        depth_of: DepthOf | None,
    ) -> HybridVideo:
        path = cfg.animation.hybrid.video or cfg.input.path
        assert path is not None, "configure refuses hybrid video without a video"
        source = stack.enter_context(open_source(aligned_input(cfg.input, path, size)))
        images: Iterator[np.ndarray] = (frame.image for frame in source)
        if source.info.kind is SourceKind.image:  # one picture for every frame
            images = itertools.repeat(next(images))
        flows = FlowCache(folder.hybrid_flow_pair)
        return cls(cfg.animation.hybrid, images, flows, cfg.animation.border, depth_of)

    def frame(self, index: int) -> np.ndarray:
        """The video's frame ``index`` (frames are asked for in order, each at most one
        frame after the last asked)."""
        while index not in self.read:
            image = next(self.frames, None)
            if image is None:
                raise RotoscopeError(
                    f"the hybrid video ends before frame {index}",
                    "give a longer animation.hybrid.video, or fewer frames",
                )
            number = max(self.read, default=-1) + 1
            self.read = {n: frame for n, frame in self.read.items() if n >= number - 1}
            self.read[number] = image
        return self.read[index]

    def before_img2img(
        self, index: int, row: PlanRow, previous: Previous
    ) -> Callable[[np.ndarray], np.ndarray]:
        """What the hybrid video does to loopback input ``index`` after its camera step:
        composite before motion, the motion, composite normal."""
        settings, step = self.settings, hybrid_step(row)

        def apply(image: np.ndarray) -> np.ndarray:
            if settings.composite is HybridComposite.before_motion:
                image = self.composited(image, index, step, previous)
            if settings.motion is not HybridMotion.none:
                image = self.moved(image, index, step)
            if settings.composite is HybridComposite.normal:
                image = self.composited(image, index, step, previous)
            return image

        return apply

    def after_generation(
        self, index: int, row: PlanRow, previous: Previous
    ) -> tuple[Callable[[np.ndarray], np.ndarray], str] | None:
        """The composite onto output ``index`` and what it adds to the frame's key; None
        when the composite is not after generation."""
        settings = self.settings
        if settings.composite is not HybridComposite.after_generation:
            return None
        step = hybrid_step(row)
        video = self.frame(index)
        dependency = (
            f"hybrid composite {image_digest(video)} mask {settings.mask.value} "
            f"invert {settings.mask_invert} equalize {settings.mask_equalize.value} "
            f"auto contrast {settings.mask_auto_contrast}"
        )
        return (lambda output: self.composited(output, index, step, previous)), dependency

    def moved(self, image: np.ndarray, index: int, step: HybridStep) -> np.ndarray:
        """``image`` moved by the video's motion into frame ``index`` (from its frame
        before, or from ``image`` itself with ``motion_from_output``)."""
        settings = self.settings
        current = self.frame(index)
        start = image if settings.motion_from_output else self.frame(index - 1)
        pair = self.flows.pair(index, start, current)
        if settings.motion is HybridMotion.optical_flow:
            return flow_motion(
                image, pair, step.flow_factor, settings.flow_consistency, settings.consistency_blur
            )
        return matrix_motion(image, fitted_motion(pair, settings.motion), self.border)

    def composited(
        self, picture: np.ndarray, index: int, step: HybridStep, previous: Previous
    ) -> np.ndarray:
        """The video's frame ``index`` composited into ``picture``."""
        settings = self.settings
        video = self.frame(index)
        depth = None
        if settings.mask is HybridMask.depth:
            assert self.depth_of is not None
            depth = self.depth_of(previous.key, previous.output)
        elif settings.mask is HybridMask.video_depth:
            assert self.depth_of is not None
            depth = self.depth_of(f"video-{image_digest(video)}", video)
        mask = composite_mask(
            settings.mask, picture, video, step, depth, settings.mask_invert,
            settings.mask_equalize, settings.mask_auto_contrast,
        )  # fmt: skip
        return composite(picture, video, mask, step.alpha)
