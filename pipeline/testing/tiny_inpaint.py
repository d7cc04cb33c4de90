"""A tiny inpainting checkpoint (9-channel UNet) for the tests of masked rendering.

Real inpainting checkpoints (``sd-v1-5-inpainting``) are their base model fine-tuned with
five more input channels: the mask and the masked picture's latents. This one is made the
same way from the tiny SD 1.x model (:mod:`pipeline.testing.tiny_models`): its UNet is
the base UNet with ``conv_in`` widened to 9 channels, the base weights on the first four
and random ones (from a fixed seed) on the five new, so the mask and the masked picture
really change the output. Saved as a diffusers folder whose ``model_index.json`` names
``StableDiffusionInpaintPipeline``, the layout a downloaded inpainting model has.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pipeline.testing.tiny_models import TINY_FORMAT, save_into_place

# Bump when the tiny inpainting model changes, so older builds are redone.
INPAINT_FORMAT = 1
SEED = 2
_STAMP = "tiny_inpaint.json"
_EXTRA_CHANNELS = 5  # the mask (1) and the masked picture's latents (4)


def build_tiny_inpaint(out_dir: Path, base: Path) -> Path:
    """The tiny inpainting model made from the tiny SD 1.x folder ``base``, under
    ``out_dir`` (built once; a no-op when a complete build is there)."""
    from diffusers import StableDiffusionInpaintPipeline, UNet2DConditionModel

    out_dir = Path(out_dir)
    folder = out_dir / "sd15_inpaint"
    stamp = out_dir / _STAMP
    version = {"format": INPAINT_FORMAT, "tiny_format": TINY_FORMAT}
    try:
        if json.loads(stamp.read_text()) == version and folder.is_dir():
            return folder
    except (OSError, ValueError):
        pass
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        pipe = StableDiffusionInpaintPipeline.from_pretrained(
            str(base), safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
        unet = pipe.unet
        config = dict(unet.config)
        config["in_channels"] = unet.config.in_channels + _EXTRA_CHANNELS
        widened = UNet2DConditionModel.from_config(config)
        state = unet.state_dict()
        weight = state["conv_in.weight"]
        extra = torch.randn(weight.shape[0], _EXTRA_CHANNELS, *weight.shape[2:]) * weight.std()
        state["conv_in.weight"] = torch.cat([weight, extra], dim=1)
        widened.load_state_dict(state)
        pipe.register_modules(unet=widened)
        save_into_place(folder, pipe.save_pretrained)
    stamp.write_text(json.dumps(version) + "\n")
    return folder
