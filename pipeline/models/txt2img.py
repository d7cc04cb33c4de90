"""The text-to-image pipeline of a loaded model: a frame made from noise alone.

A loopback animation without an input image starts, as Deforum's does without an init
image, from a txt2img render of its first frame. The pipeline is diffusers' txt2img one
of the model's family (with ControlNets, the ControlNet one), built around the loaded
model's own components (``from_pipe``: no weights copied, the dtype given for the reason
:func:`pipeline.models.controlnets.control_pipeline` gives it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.config.schema import ModelFamily
from pipeline.models.controlnets import control_pipeline
from pipeline.models.loader import LoadedModel, Pipeline
from pipeline.models.weights import loading

if TYPE_CHECKING:
    from diffusers import ControlNetModel


def txt2img_pipeline(base: LoadedModel, controlnets: list[ControlNetModel]) -> Pipeline:
    """``base``'s txt2img pipeline, with ``controlnets`` the ControlNet one."""
    if controlnets:
        return control_pipeline(base, controlnets, img2img=False)
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    cls = StableDiffusionXLPipeline if base.family is ModelFamily.sdxl else StableDiffusionPipeline
    with loading("the txt2img pipeline"):
        pipe = cls.from_pipe(base.pipe, torch_dtype=base.dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe
