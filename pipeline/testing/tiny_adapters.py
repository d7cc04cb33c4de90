"""Tiny LoRAs and textual-inversion embeddings for the tiny SD 1.x and SDXL models.

Nothing may be downloaded, so the tests and the demo get adapter files made here, in the
formats people actually share, and load them through rotoscope's real loading code:

- LoRAs in kohya/A1111 format (``lora_unet_*``/``lora_te_*`` with ``lora_down``,
  ``lora_up`` and ``alpha``; for SDXL ``lora_te1_``/``lora_te2_`` and the UNet's LDM block
  names, ``input_blocks_4_1_...``, as kohya's SDXL trainer writes them) and in diffusers'
  format (``unet.<module>.lora_A.weight`` / ``lora_B.weight``, ``text_encoder.text_model.
  ...``), on the attention projections of the UNet and the text encoders;
- embeddings as A1111 writes them (a ``.pt`` with ``string_to_param`` for SD 1.x; a
  ``.safetensors`` with ``clip_l`` and ``clip_g`` vectors for SDXL) and a diffusers
  ``learned_embeds`` ``.bin`` (``{token: vector}``).

Weights are random, from a fixed seed, large enough that a LoRA or an embedding visibly
changes a 64x64 frame.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from pipeline.testing.checkpoint_export import unet_module_to_ldm
from pipeline.testing.tiny_models import TINY_FORMAT, TinyModels, save_into_place

# Bump when the tiny adapters change, so builds made by an older version are redone.
ADAPTERS_FORMAT = 1
SEED = 2
RANK = 4
ALPHA = 2.0
SCALE = 0.3  # standard deviation of the random LoRA factors
_STAMP = "tiny_adapters.json"
_UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
_TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


@dataclass(frozen=True)
class TinyAdapters:
    """Where the tiny adapters are: a LoRA folder and an embeddings folder (as
    ``model.lora_dir`` and ``model.embeddings_dir``) and each file in them."""

    loras: Path
    embeddings: Path
    sd15_kohya: Path
    sd15_diffusers: Path
    sdxl_kohya: Path
    sdxl_diffusers: Path
    sd15_embedding: Path  # A1111 .pt, activated by the word "sd15_style"
    sd15_learned: Path  # diffusers learned_embeds .bin, "sd15_learned"
    sdxl_embedding: Path  # A1111 SDXL .safetensors (clip_l, clip_g), "sdxl_style"


def build_tiny_adapters(out_dir: Path, tiny: TinyModels) -> TinyAdapters:
    """Build the adapters for ``tiny``'s models under ``out_dir`` (a no-op if built).

    Deterministic, drawn in a forked RNG; files go in under temporary names and the
    stamp is written last, so an interrupted build is redone.
    """
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a "Loading weights" bar per encoder

    out_dir = Path(out_dir)
    loras, embeddings = out_dir / "loras", out_dir / "embeddings"
    paths = TinyAdapters(
        loras=loras,
        embeddings=embeddings,
        sd15_kohya=loras / "sd15_kohya.safetensors",
        sd15_diffusers=loras / "sd15_diffusers.safetensors",
        sdxl_kohya=loras / "sdxl_kohya.safetensors",
        sdxl_diffusers=loras / "sdxl_diffusers.safetensors",
        sd15_embedding=embeddings / "sd15_style.pt",
        sd15_learned=embeddings / "sd15_learned.bin",
        sdxl_embedding=embeddings / "sdxl_style.safetensors",
    )
    stamp = out_dir / _STAMP
    version = {"format": ADAPTERS_FORMAT, "tiny_format": TINY_FORMAT}
    if _is_complete(stamp, paths, version):
        return paths
    loras.mkdir(parents=True, exist_ok=True)
    embeddings.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        unet = UNet2DConditionModel.from_pretrained(tiny.sd15, subfolder="unet")
        text_encoder = CLIPTextModel.from_pretrained(tiny.sd15, subfolder="text_encoder")
        _save(paths.sd15_kohya, _kohya(unet, {"te": text_encoder}, ldm_names=False))
        _save(paths.sd15_diffusers, _diffusers(unet, {"text_encoder": text_encoder}))
        width = text_encoder.config.hidden_size
        save_into_place(
            paths.sd15_embedding,
            lambda path: torch.save(_a1111_embedding("sd15_style", _vectors(2, width)), path),
        )
        save_into_place(
            paths.sd15_learned,
            lambda path: torch.save({"<sd15-learned>": _vectors(1, width)[0]}, path),
        )
        unet = UNet2DConditionModel.from_pretrained(tiny.sdxl, subfolder="unet")
        encoders = {
            "text_encoder": CLIPTextModel.from_pretrained(tiny.sdxl, subfolder="text_encoder"),
            "text_encoder_2": CLIPTextModelWithProjection.from_pretrained(
                tiny.sdxl, subfolder="text_encoder_2"
            ),
        }
        kohya_names = dict(zip(("te1", "te2"), encoders.values(), strict=True))
        _save(paths.sdxl_kohya, _kohya(unet, kohya_names, ldm_names=True))
        _save(paths.sdxl_diffusers, _diffusers(unet, encoders))
        _save(
            paths.sdxl_embedding,
            {
                "clip_l": _vectors(2, encoders["text_encoder"].config.hidden_size),
                "clip_g": _vectors(2, encoders["text_encoder_2"].config.hidden_size),
            },
        )
    stamp.write_text(json.dumps(version) + "\n")
    return paths


def _is_complete(stamp: Path, paths: TinyAdapters, version: dict[str, int]) -> bool:
    try:
        built = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return built == version and all(path.exists() for path in astuple(paths))


def _save(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_into_place(path, lambda partial: save_file(tensors, str(partial)))


def _vectors(count: int, width: int) -> torch.Tensor:
    # about the size of a token embedding of the tiny encoders, so the vectors matter
    return torch.randn(count, width) * 0.5


def _a1111_embedding(name: str, vectors: torch.Tensor) -> dict[str, Any]:
    """What A1111's textual-inversion training saves (``Embedding.save``)."""
    return {
        "string_to_token": {"*": 265},
        "string_to_param": {"*": vectors},
        "name": name,
        "step": 100,
        "sd_checkpoint": None,
        "sd_checkpoint_name": None,
    }


def _targets(model: torch.nn.Module, suffixes: tuple[str, ...]) -> list[tuple[str, Any]]:
    """(module name, Linear) of the layers a LoRA trains, in a fixed order."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.endswith(suffixes)
    ]


def _factors(layer: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (down, up) factors of a rank-``RANK`` change of ``layer``."""
    down = torch.randn(RANK, layer.in_features) * SCALE
    up = torch.randn(layer.out_features, RANK) * SCALE
    return down, up


def _text_module(name: str) -> str:
    """A text encoder module as trained checkpoints name it (with ``text_model.``)."""
    return name if name.startswith("text_model.") else f"text_model.{name}"


def _kohya(
    unet: Any, encoders: Mapping[str, torch.nn.Module], ldm_names: bool
) -> dict[str, torch.Tensor]:
    """A kohya-format LoRA: ``lora_unet_<module>`` and ``lora_<te>_<module>`` with dots as
    underscores; SDXL's UNet modules under their LDM names."""
    weights: dict[str, torch.Tensor] = {}

    def add(key: str, layer: torch.nn.Linear) -> None:
        down, up = _factors(layer)
        weights[f"{key}.lora_down.weight"] = down
        weights[f"{key}.lora_up.weight"] = up
        weights[f"{key}.alpha"] = torch.tensor(ALPHA)

    for name, layer in _targets(unet, _UNET_TARGETS):
        module = unet_module_to_ldm(unet.config, name) if ldm_names else name
        add("lora_unet_" + module.replace(".", "_"), layer)
    for prefix, encoder in encoders.items():
        for name, layer in _targets(encoder, _TEXT_TARGETS):
            add(f"lora_{prefix}_" + _text_module(name).replace(".", "_"), layer)
    return weights


def _diffusers(unet: Any, encoders: Mapping[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """A diffusers-format (peft) LoRA: ``<component>.<module>.lora_A/lora_B.weight``."""
    weights: dict[str, torch.Tensor] = {}
    parts = [("unet", unet, _UNET_TARGETS, str)] + [
        (component, encoder, _TEXT_TARGETS, _text_module) for component, encoder in encoders.items()
    ]
    for component, model, targets, rename in parts:
        for name, layer in _targets(model, targets):
            down, up = _factors(layer)
            weights[f"{component}.{rename(name)}.lora_A.weight"] = down
            weights[f"{component}.{rename(name)}.lora_B.weight"] = up
    return weights
