"""Inpainting checkpoints: telling them apart, and the diffusers pipelines that drive them.

An inpainting checkpoint (``sd-v1-5-inpainting``, the SDXL inpainting ones) has a UNet
with 9 input channels: the noisy latents, the mask and the masked picture's latents. It
loads like any model (:mod:`pipeline.models.loader`), but img2img cannot run it: a frame
goes through diffusers' inpainting pipeline of its family instead, built around the very
same components (``from_pipe``, no weights copied), with or without ControlNets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.config.schema import ModelFamily
from pipeline.models.loader import LoadedModel, Pipeline
from pipeline.models.weights import loading

if TYPE_CHECKING:
    from diffusers import ControlNetModel

# The input channels of an inpainting UNet: latents, mask, masked picture's latents.
INPAINT_CHANNELS = 9


def is_inpainting(model: LoadedModel) -> bool:
    """Whether ``model`` is an inpainting checkpoint (its UNet also reads the mask)."""
    return int(model.pipe.unet.config.in_channels) == INPAINT_CHANNELS


def inpaint_pipeline(
    base: LoadedModel, controlnets: list[ControlNetModel] | None = None
) -> Pipeline:
    """The inpainting pipeline of ``base``'s family (with ``controlnets``, the ControlNet
    one), sharing ``base.pipe``'s components; the dtype is given for the reason
    :func:`pipeline.models.controlnets.control_pipeline` gives it."""
    from diffusers import (
        StableDiffusionControlNetInpaintPipeline,
        StableDiffusionInpaintPipeline,
        StableDiffusionXLControlNetInpaintPipeline,
        StableDiffusionXLInpaintPipeline,
    )

    classes = {
        (ModelFamily.sd15, False): StableDiffusionInpaintPipeline,
        (ModelFamily.sd15, True): StableDiffusionControlNetInpaintPipeline,
        (ModelFamily.sdxl, False): StableDiffusionXLInpaintPipeline,
        (ModelFamily.sdxl, True): StableDiffusionXLControlNetInpaintPipeline,
    }
    cls = classes[(base.family, bool(controlnets))]
    extra = {}
    if controlnets:
        extra["controlnet"] = controlnets[0] if len(controlnets) == 1 else list(controlnets)
    with loading("the inpainting pipeline"):
        pipe = cls.from_pipe(base.pipe, torch_dtype=base.dtype, **extra)
    pipe.set_progress_bar_config(disable=True)
    return pipe
