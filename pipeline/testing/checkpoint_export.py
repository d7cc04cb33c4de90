"""Write diffusers SD 1.x weights in the original CompVis/LDM single-file layout.

A1111 users hold their models as one ``.safetensors`` file whose keys follow the
original latent-diffusion code (``model.diffusion_model.*``, ``first_stage_model.*``,
``cond_stage_model.transformer.*``). To test that path offline we need such a file, and
the only way to get one without a download is to write our own tiny model in that
layout. The key mapping below is derived from how the LDM modules are built:

UNet (``ldm.modules.diffusionmodules.openaimodel.UNetModel``)
    ``input_blocks[0]`` is the input conv; then per resolution level, one
    ``TimestepEmbedSequential(ResBlock[, SpatialTransformer])`` per res block and, on
    every level but the last, a ``Downsample`` whose conv is called ``op``.
    ``middle_block`` is ResBlock, SpatialTransformer, ResBlock. ``output_blocks`` walk
    the levels in reverse with one more res block per level, each
    ``TimestepEmbedSequential(ResBlock[, SpatialTransformer][, Upsample])`` with the
    upsampler on the level's last block. ``time_embed`` and ``label_emb[0]`` (SDXL) are
    Linear, SiLU, Linear; ``out`` is GroupNorm, SiLU, conv. A ResBlock keeps its layers
    in ``in_layers`` (GroupNorm, SiLU, conv), ``emb_layers`` (SiLU, Linear),
    ``out_layers`` (GroupNorm, SiLU, Dropout, conv) and ``skip_connection``.
    SpatialTransformer and diffusers' Transformer2DModel share their parameter names.
VAE (``ldm.modules.diffusionmodules.model.Encoder/Decoder``)
    ``down[i].block[j]`` / ``down[i].downsample``, ``mid.block_1``, ``mid.attn_1``,
    ``mid.block_2``, ``norm_out``. The decoder's ``up`` list is indexed by resolution
    (``up[0]`` is the full-size level) while diffusers' ``up_blocks[0]`` runs first at the
    lowest resolution, so the order is reversed. ``AttnBlock`` uses 1x1 convs named
    q/k/v/proj_out where diffusers uses Linear layers: weights gain two unit dims.
Text encoders (``FrozenCLIPEmbedder``, SDXL's ``conditioner.embedders``)
    CLIP-L is a transformers ``CLIPTextModel`` held as ``transformer``; its state dict
    keys carry the ``text_model.`` prefix that transformers >= 5.6 no longer puts in the
    model's own. SDXL's second encoder is an OpenCLIP text tower (``model``):
    ``token_embedding``, ``positional_embedding``, ``transformer.resblocks[i]`` with
    ``ln_1``, ``attn`` (a ``torch.nn.MultiheadAttention``: q, k and v stacked in one
    ``in_proj``), ``ln_2``, ``mlp.c_fc``/``mlp.c_proj``, then ``ln_final`` and a
    ``text_projection`` matrix applied as ``x @ P`` (the transpose of a Linear weight).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_ENCODER_PREFIX = "cond_stage_model.transformer."
SDXL_TEXT_ENCODER_PREFIX = "conditioner.embedders.0.transformer."
SDXL_TEXT_ENCODER_2_PREFIX = "conditioner.embedders.1.model."

_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}
_NO_RENAMES: dict[str, str] = {}

# (diffusers module path, LDM module path, renames of the module's children)
_Route = tuple[str, str, Mapping[str, str]]


def _per_block(value: int | Iterable[int], count: int) -> list[int]:
    return [value] * count if isinstance(value, int) else list(value)


def _unet_routes(config: Mapping) -> list[_Route]:
    down_types = list(config["down_block_types"])
    up_types = list(config["up_block_types"])
    layers = _per_block(config["layers_per_block"], len(down_types))
    routes: list[_Route] = [
        ("conv_in", "input_blocks.0.0", _NO_RENAMES),
        ("time_embedding.linear_1", "time_embed.0", _NO_RENAMES),
        ("time_embedding.linear_2", "time_embed.2", _NO_RENAMES),
        ("add_embedding.linear_1", "label_emb.0.0", _NO_RENAMES),
        ("add_embedding.linear_2", "label_emb.0.2", _NO_RENAMES),
        ("mid_block.resnets.0", "middle_block.0", _UNET_RESNET),
        ("mid_block.attentions.0", "middle_block.1", _NO_RENAMES),
        ("mid_block.resnets.1", "middle_block.2", _UNET_RESNET),
        ("conv_norm_out", "out.0", _NO_RENAMES),
        ("conv_out", "out.2", _NO_RENAMES),
    ]
    index = 1
    for block in range(len(down_types)):
        for layer in range(layers[block]):
            routes.append(
                (f"down_blocks.{block}.resnets.{layer}", f"input_blocks.{index}.0", _UNET_RESNET)
            )
            routes.append(
                (f"down_blocks.{block}.attentions.{layer}", f"input_blocks.{index}.1", _NO_RENAMES)
            )
            index += 1
        if block < len(down_types) - 1:
            routes.append(
                (
                    f"down_blocks.{block}.downsamplers.0.conv",
                    f"input_blocks.{index}.0.op",
                    _NO_RENAMES,
                )
            )
            index += 1
    index = 0
    for block, (block_type, count) in enumerate(zip(up_types, reversed(layers), strict=True)):
        upsampler_slot = 2 if "CrossAttn" in block_type else 1
        for layer in range(count + 1):
            routes.append(
                (f"up_blocks.{block}.resnets.{layer}", f"output_blocks.{index}.0", _UNET_RESNET)
            )
            routes.append(
                (f"up_blocks.{block}.attentions.{layer}", f"output_blocks.{index}.1", _NO_RENAMES)
            )
            if layer == count and block < len(up_types) - 1:
                routes.append(
                    (
                        f"up_blocks.{block}.upsamplers.0.conv",
                        f"output_blocks.{index}.{upsampler_slot}.conv",
                        _NO_RENAMES,
                    )
                )
            index += 1
    return routes


def _vae_routes(config: Mapping) -> list[_Route]:
    routes: list[_Route] = [
        ("quant_conv", "quant_conv", _NO_RENAMES),
        ("post_quant_conv", "post_quant_conv", _NO_RENAMES),
    ]
    for part in ("encoder", "decoder"):
        routes += [
            (f"{part}.conv_in", f"{part}.conv_in", _NO_RENAMES),
            (f"{part}.conv_out", f"{part}.conv_out", _NO_RENAMES),
            (f"{part}.conv_norm_out", f"{part}.norm_out", _NO_RENAMES),
            (f"{part}.mid_block.resnets.0", f"{part}.mid.block_1", _VAE_RESNET),
            (f"{part}.mid_block.resnets.1", f"{part}.mid.block_2", _VAE_RESNET),
            (f"{part}.mid_block.attentions.0", f"{part}.mid.attn_1", _VAE_ATTENTION),
        ]
    for block in range(len(config["down_block_types"])):
        routes.append(
            (f"encoder.down_blocks.{block}.resnets", f"encoder.down.{block}.block", _VAE_RESNET)
        )
        routes.append(
            (
                f"encoder.down_blocks.{block}.downsamplers.0.conv",
                f"encoder.down.{block}.downsample.conv",
                _NO_RENAMES,
            )
        )
    levels = len(config["up_block_types"])
    for block in range(levels):
        level = levels - 1 - block
        routes.append(
            (f"decoder.up_blocks.{block}.resnets", f"decoder.up.{level}.block", _VAE_RESNET)
        )
        routes.append(
            (
                f"decoder.up_blocks.{block}.upsamplers.0.conv",
                f"decoder.up.{level}.upsample.conv",
                _NO_RENAMES,
            )
        )
    return routes


def _rename(key: str, routes: list[_Route]) -> str:
    """The LDM key for a diffusers key: longest matching module path, then its children."""
    best = max(
        (route for route in routes if key.startswith(route[0] + ".")),
        key=lambda r: len(r[0]),
        default=None,
    )
    if best is None:
        raise ValueError(f"no LDM name for diffusers parameter '{key}'")
    source, target, renames = best
    rest = key[len(source) + 1 :]
    for old, new in renames.items():
        # children are matched as whole path components: "to_out.0.weight", "1.conv1.bias"
        head, _, tail = rest.partition(old + ".")
        if tail and (head == "" or head.endswith(".")):
            rest = f"{head}{new}.{tail}"
            break
    return f"{target}.{rest}"


def _tensor(value: torch.Tensor) -> torch.Tensor:
    # own, contiguous memory: safetensors refuses tensors that share storage
    return value.detach().to("cpu").contiguous().clone()


# The models below are diffusers' and transformers' (typed Any): their configs and
# submodules are attributes set at run time, which no static type describes.
def unet_to_ldm(unet: Any) -> dict[str, torch.Tensor]:
    """A diffusers ``UNet2DConditionModel``'s weights under LDM names (no prefix)."""
    routes = _unet_routes(unet.config)
    return {_rename(key, routes): _tensor(value) for key, value in unet.state_dict().items()}


def unet_module_to_ldm(config: Mapping, module: str) -> str:
    """The LDM name of a diffusers UNet module (``down_blocks.1.attentions.0...`` ->
    ``input_blocks.4.1...``), as SDXL LoRAs from kohya's trainer name their layers."""
    return _rename(f"{module}.weight", _unet_routes(config)).removesuffix(".weight")


def vae_to_ldm(vae: Any) -> dict[str, torch.Tensor]:
    """A diffusers ``AutoencoderKL``'s weights under LDM names, as in standalone VAE files."""
    routes = _vae_routes(vae.config)
    converted = {}
    for key, value in vae.state_dict().items():
        name = _rename(key, routes)
        if ".mid.attn_1." in name and value.ndim == 2:
            value = value[:, :, None, None]  # Linear (out, in) -> 1x1 conv (out, in, 1, 1)
        converted[name] = _tensor(value)
    return converted


def text_encoder_to_ldm(text_encoder: Any) -> dict[str, torch.Tensor]:
    """A transformers ``CLIPTextModel``'s weights as LDM's CLIP embedder holds them."""
    return {
        (key if key.startswith("text_model.") else f"text_model.{key}"): _tensor(value)
        for key, value in text_encoder.state_dict().items()
    }


def open_clip_to_ldm(text_encoder: Any) -> dict[str, torch.Tensor]:
    """A transformers ``CLIPTextModelWithProjection``'s weights as an OpenCLIP text tower."""
    weights = {k.removeprefix("text_model."): v for k, v in text_encoder.state_dict().items()}
    converted = {
        "token_embedding.weight": weights.pop("embeddings.token_embedding.weight"),
        "positional_embedding": weights.pop("embeddings.position_embedding.weight"),
        "ln_final.weight": weights.pop("final_layer_norm.weight"),
        "ln_final.bias": weights.pop("final_layer_norm.bias"),
        "text_projection": weights.pop("text_projection.weight").T,
    }
    for layer in range(text_encoder.config.num_hidden_layers):
        source, target = f"encoder.layers.{layer}.", f"transformer.resblocks.{layer}."
        for kind in ("weight", "bias"):
            converted[f"{target}attn.in_proj_{kind}"] = torch.cat(
                [weights.pop(f"{source}self_attn.{name}_proj.{kind}") for name in "qkv"]
            )
            for ours, theirs in (
                ("self_attn.out_proj", "attn.out_proj"),
                ("layer_norm1", "ln_1"),
                ("layer_norm2", "ln_2"),
                ("mlp.fc1", "mlp.c_fc"),
                ("mlp.fc2", "mlp.c_proj"),
            ):
                converted[f"{target}{theirs}.{kind}"] = weights.pop(f"{source}{ours}.{kind}")
    if weights:
        raise ValueError(f"no OpenCLIP name for parameters {sorted(weights)}")
    return {key: _tensor(value) for key, value in converted.items()}


def _prefixed(prefix: str, weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + key: value for key, value in weights.items()}


def export_sd15_checkpoint(
    unet: torch.nn.Module, vae: torch.nn.Module, text_encoder: torch.nn.Module, path: Path
) -> None:
    """Save an SD 1.x pipeline's three models as one A1111-style ``.safetensors`` file."""
    weights = {
        **_prefixed(UNET_PREFIX, unet_to_ldm(unet)),
        **_prefixed(VAE_PREFIX, vae_to_ldm(vae)),
        **_prefixed(TEXT_ENCODER_PREFIX, text_encoder_to_ldm(text_encoder)),
    }
    save_file(weights, str(path))


def export_sdxl_checkpoint(
    unet: torch.nn.Module,
    vae: torch.nn.Module,
    text_encoder: torch.nn.Module,
    text_encoder_2: torch.nn.Module,
    path: Path,
) -> None:
    """Save an SDXL pipeline's four models as one A1111-style ``.safetensors`` file."""
    weights = {
        **_prefixed(UNET_PREFIX, unet_to_ldm(unet)),
        **_prefixed(VAE_PREFIX, vae_to_ldm(vae)),
        **_prefixed(SDXL_TEXT_ENCODER_PREFIX, text_encoder_to_ldm(text_encoder)),
        **_prefixed(SDXL_TEXT_ENCODER_2_PREFIX, open_clip_to_ldm(text_encoder_2)),
    }
    save_file(weights, str(path))


def export_vae_checkpoint(vae: torch.nn.Module, path: Path) -> None:
    """Save a VAE alone in the layout of A1111's VAE files (``encoder.*``, ``decoder.*``)."""
    save_file(vae_to_ldm(vae), str(path))
