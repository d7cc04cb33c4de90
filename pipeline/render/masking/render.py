"""The masked render: a composition around the renderer's call, whatever strategy calls it.

A frame with a mask (:attr:`FrameInput.mask`, where it is rendered; ``source``, what
shows elsewhere) is made in three steps:

1. **around the call, before**: an empty mask makes the frame its source frame, with no
   diffusion at all (the model is not even loaded for it); ``mask.fill=fill`` paints the
   masked area of the init picture from its surroundings; ``mask.area=masked`` cuts the
   mask's bounding box plus ``mask.padding`` out of the init picture, the control maps
   and the mask, enlarged to the model's native size when smaller (a small subject gets
   the model's full detail, and a 10% subject renders a fraction of the frame's pixels);
2. **the call** (:class:`~pipeline.render.renderer.Renderer`), which renders through the
   mask inside it (:mod:`.latent`) and finishes the frame with its hooks (temporal
   coherence's output blend);
3. **around the call, after**: a crop is scaled back and pasted in place, and the source
   frame is put back outside the mask (``mask.composite``, feathered across
   ``mask.overlay_blur``), so those pixels are the source's exactly.

Every strategy renders through this one composition (the producer holds it): plain
batches, coherent chains (whose hooks act inside step 2, so the composite comes after
their output blend), and later cadence, whose in-between frames are not diffused but
must still be put back into the source frame: :meth:`MaskedRender.composited` is that
last step alone, for frames made without a call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

from pipeline.config.schema import MaskArea, MaskFill
from pipeline.render.batch import FrameInput
from pipeline.render.masking.pixels import (
    composite,
    crop_box,
    crop_render_size,
    fill_masked,
    resized,
)

if TYPE_CHECKING:  # the renderer (torch, diffusers) loads only when a frame is diffused
    from pipeline.render.renderer import FrameHooks, Renderer


class MaskedRender:
    """Frames rendered through their masks (see the module notes); ``renderer`` gives the
    loaded renderer, and is called only when a frame needs diffusion."""

    def __init__(self, renderer: Callable[[], Renderer]) -> None:
        self.renderer = renderer

    def render(self, frame: FrameInput, hooks: FrameHooks | None = None) -> np.ndarray:
        return self.render_batch([frame], hooks)[0]

    def render_batch(
        self, frames: Sequence[FrameInput], hooks: FrameHooks | None = None
    ) -> list[np.ndarray]:
        """The finished frames of ``frames``: one call for those rendered whole (frames
        without a mask are called exactly as they always were), a call of its own for
        each crop, none for an empty mask."""
        outputs: dict[int, np.ndarray] = {}
        whole: list[int] = []
        for number, frame in enumerate(frames):
            if frame.mask is None:
                whole.append(number)
            elif not frame.mask.any():
                outputs[number] = source_of(frame).copy()
            elif frame.row.mask_area is MaskArea.masked:
                outputs[number] = self._cropped(frame, hooks)
            else:
                whole.append(number)
        if whole:
            called = [filled(frames[number]) for number in whole]
            outputs.update(zip(whole, self.renderer().render_batch(called, hooks), strict=True))
        return [self.composited(frame, outputs[number]) for number, frame in enumerate(frames)]

    def _cropped(self, frame: FrameInput, hooks: FrameHooks | None) -> np.ndarray:
        """The frame rendered in its mask's box only, at the model's size, pasted back
        into its source frame."""
        assert frame.mask is not None
        box = crop_box(frame.mask, frame.row.mask_padding or 0)
        width, height = crop_render_size(box, self.renderer().native_size)

        def cut(image: np.ndarray, enlarge: int = cv2.INTER_LANCZOS4) -> np.ndarray:
            return resized(box.cut(image), width, height, enlarge)

        crop = FrameInput(
            replace(frame.row, width=width, height=height),
            cut(filled(frame).image),
            [cut(control_map) for control_map in frame.maps] if frame.maps else None,
            cut(frame.mask, cv2.INTER_LINEAR),
        )
        output = self.renderer().render_batch([crop], hooks)[0]
        return box.paste(source_of(frame), resized(output, box.width, box.height))

    @staticmethod
    def composited(frame: FrameInput, output: np.ndarray) -> np.ndarray:
        """``output`` with the source frame put back outside the frame's mask (unless
        ``mask.composite`` is off); unmasked frames as they are."""
        if frame.mask is None or not frame.row.mask_composite:
            return output
        return composite(source_of(frame), output, frame.mask, frame.row.mask_overlay_blur or 0.0)


def source_of(frame: FrameInput) -> np.ndarray:
    """What shows outside the frame's mask."""
    return frame.source if frame.source is not None else frame.image


def filled(frame: FrameInput) -> FrameInput:
    """``frame`` with its init picture painted from the surroundings inside its mask, if
    ``mask.fill=fill`` asks for it."""
    if frame.mask is None or frame.row.mask_fill is not MaskFill.fill:
        return frame
    return replace(frame, image=fill_masked(frame.image, frame.mask))
