"""Tiny random-weight ControlNets for the tiny SD 1.x and SDXL models (tests and the demo).

Like :mod:`pipeline.testing.tiny_models`, these are built from nothing because nothing may be
downloaded. Each is diffusers' ``ControlNetModel.from_unet`` of the tiny base UNet, which
is what a real ControlNet is: a trainable copy of the base UNet's encoder plus a small
image encoder for the control map and one "zero convolution" per skip connection.

A freshly made ControlNet has those zero convolutions at exactly zero (training starts
there so the base model is untouched at first), so its control map would have no effect
at all and no test could tell a working control path from a broken one. The builder
therefore re-initialises them with PyTorch's default initialisation, and the map's
encoder with He initialisation and zero biases: with PyTorch's default the signal shrinks
at each of that encoder's eight convolutions, leaving an embedding that hardly depends on
the map. All from a fixed seed, so a different control map gives a visibly (and
reproducibly) different image.

The SD 1.x ControlNet is also written as one ``.safetensors`` file in the layout of
lllyasviel's ControlNet 1.1 files that A1111 users have (``input_blocks.*``,
``zero_convs.*``, ``input_hint_block.*``, ``middle_block_out.*``; no prefix), so the
single-file loading path is exercised with the key conversion a real file needs.
"""

from __future__ import annotations

import copy
import json
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file

from pipeline.testing.checkpoint_export import unet_to_ldm
from pipeline.testing.tiny_models import TINY_FORMAT, TinyModels, save_into_place

if TYPE_CHECKING:
    from diffusers import UNet2DConditionModel

# Bump when the tiny ControlNets change, so builds made by an older version are redone.
CONTROLNET_FORMAT = 1
SEED = 1
_STAMP = "tiny_controlnets.json"
# The parts of an LDM ControlNet that are copies of the UNet encoder, under the UNet's names.
_ENCODER_PREFIXES = ("time_embed.", "label_emb.", "input_blocks.", "middle_block.")


@dataclass(frozen=True)
class TinyControlNets:
    """Where the tiny ControlNets are.

    ``sd15`` and ``sdxl`` are diffusers folders; ``sd15_single`` is the SD 1.x one as an
    A1111-style single file (it loads offline with the tiny SD 1.x model as the base,
    whose UNet gives its config).
    """

    sd15: Path
    sd15_single: Path
    sdxl: Path


def build_tiny_controlnets(out_dir: Path, tiny: TinyModels) -> TinyControlNets:
    """Build ControlNets for ``tiny``'s models under ``out_dir`` (a no-op if already built).

    Deterministic: the weights depend only on the tiny base models (themselves built from
    a fixed seed) and on :data:`SEED`, drawn in a forked RNG so the caller's global torch
    random state is left alone. Files are written under temporary names and the stamp
    last, so an interrupted build is redone rather than half-used.
    """
    from diffusers import UNet2DConditionModel

    out_dir = Path(out_dir)
    paths = TinyControlNets(
        sd15=out_dir / "controlnet_sd15",
        sd15_single=out_dir / "controlnet_sd15.safetensors",
        sdxl=out_dir / "controlnet_sdxl",
    )
    stamp = out_dir / _STAMP
    # the encoder weights are copies of the tiny UNets', so a new tiny format means a rebuild
    version = {"format": CONTROLNET_FORMAT, "tiny_format": TINY_FORMAT}
    if _is_complete(stamp, paths, version):
        return paths
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        sd15_unet = UNet2DConditionModel.from_pretrained(tiny.sd15, subfolder="unet")
        sd15 = _controlnet(sd15_unet)
        save_into_place(paths.sd15, sd15.save_pretrained)
        save_into_place(
            paths.sd15_single, lambda path: export_controlnet_ldm(sd15, sd15_unet, path)
        )
        sdxl = _controlnet(UNet2DConditionModel.from_pretrained(tiny.sdxl, subfolder="unet"))
        save_into_place(paths.sdxl, sdxl.save_pretrained)
    stamp.write_text(json.dumps(version) + "\n")
    return paths


def _is_complete(stamp: Path, paths: TinyControlNets, version: dict[str, int]) -> bool:
    try:
        built = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return built == version and all(path.exists() for path in astuple(paths))


def _controlnet(unet: UNet2DConditionModel) -> Any:
    """A ControlNet for ``unet`` whose control map matters (see the module docstring)."""
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(unet)
    embedding = controlnet.controlnet_cond_embedding
    for conv in (embedding.conv_in, *embedding.blocks, embedding.conv_out):
        torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        torch.nn.init.zeros_(conv.bias)
    for conv in (*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block):
        conv.reset_parameters()
    return controlnet


def export_controlnet_ldm(controlnet: Any, unet: Any, path: Path) -> None:
    """Save an SD 1.x ControlNet in the original (LDM ``cldm``) single-file layout.

    ``controlnet`` and ``unet`` are diffusers' models (typed Any: their parts are
    attributes set at run time). The ControlNet's encoder has the UNet encoder's
    structure and names in both layouts, so its LDM names come from the UNet's mapping:
    the ControlNet's encoder weights are loaded into a copy of ``unet`` and renamed with
    it. The rest is ControlNet's own:
    ``zero_convs[i]`` (a one-layer sequential per skip connection), ``middle_block_out``,
    and ``input_hint_block``, a sequential that puts a SiLU after every conv (so the
    convs sit at even indices: ``conv_in`` at 0, then the blocks, ``conv_out`` last).
    """
    encoder = {
        key: value
        for key, value in controlnet.state_dict().items()
        if not key.startswith("controlnet_")
    }
    carrier = copy.deepcopy(unet)
    unexpected = carrier.load_state_dict(encoder, strict=False).unexpected_keys
    if unexpected:
        raise ValueError(f"ControlNet parameters without a UNet counterpart: {unexpected}")
    converted = {
        key: value
        for key, value in unet_to_ldm(carrier).items()
        if key.startswith(_ENCODER_PREFIXES)
    }
    embedding = controlnet.controlnet_cond_embedding
    hint_convs = [embedding.conv_in, *embedding.blocks, embedding.conv_out]
    routes = [(f"input_hint_block.{2 * index}", conv) for index, conv in enumerate(hint_convs)]
    routes += [
        (f"zero_convs.{index}.0", conv)
        for index, conv in enumerate(controlnet.controlnet_down_blocks)
    ]
    routes.append(("middle_block_out.0", controlnet.controlnet_mid_block))
    for name, conv in routes:
        for kind, value in conv.state_dict().items():
            converted[f"{name}.{kind}"] = value.detach().cpu().contiguous().clone()
    save_file(converted, str(path))
