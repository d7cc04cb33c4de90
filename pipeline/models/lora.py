"""LoRAs loaded into the pipeline through diffusers' own LoRA loading (peft), per-frame weights.

diffusers reads kohya/A1111 files (``lora_unet_*``, ``lora_te_*``, ``lora_te1_*``/
``lora_te2_*`` for SDXL, with their ``.alpha`` scales) and its own format
(``unet.*.lora_A.weight`` ...) for SD 1.x and SDXL, into the UNet and the text encoders.
What this module adds for a frame sequence:

- every file is read by :mod:`pipeline.models.safe_load` (pickles weights-only) and passed
  to diffusers as tensors, so diffusers never unpickles anything itself;
- a LoRA for another base model is named as such before diffusers fails on shapes
  (SDXL's key names; the text-embedding width of its cross-attention layers);
- a LoRA whose weight is the same on every frame of the plan is fused into the weights
  (no LoRA cost per step) and its layers removed; the others stay as peft adapters whose
  weights ``apply`` sets per frame, only when they change. A frame without LoRAs runs
  with the adapters disabled, which is exactly the model without them.

Weights are A1111's multipliers: 0.8 scales the LoRA's change (already scaled by its
alpha/rank) by 0.8. ``Lora hashes`` in the metadata are A1111's short hashes.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.config.schema import ModelFamily
from pipeline.errors import RotoscopeError
from pipeline.models.loader import LoadedModel
from pipeline.models.safe_load import SAFETENSORS, load_weights
from pipeline.models.weights import FAMILY_NAMES, loading

log = logging.getLogger("rotoscope")

# Key names only SDXL LoRAs have: its second text encoder, and the SGM UNet block names
# kohya's SDXL trainer writes.
_SDXL_MARKERS = ("lora_te1_", "lora_te2_", "text_encoder_2.", "te2.")
_SDXL_UNET_BLOCKS = ("input_blocks", "output_blocks", "middle_block")
# The text-embedding width the cross-attention layers take, by base model.
_WIDTH_FAMILIES = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL"}
_DOWN_WEIGHTS = ("lora_down.weight", "lora_A.weight", "lora.down.weight")


@dataclass(frozen=True)
class LoraFile:
    name: str
    path: Path


def lora_short_hash(path: Path, metadata: Mapping[str, str]) -> str:
    """A1111's ``Lora hashes`` value: the hash kohya's trainer stored in the file's metadata,
    else the sha256 of a safetensors file's tensor data (after its header, kohya's
    "addnet" hash) or of a whole pickle file; first 12 hex digits."""
    stored = metadata.get("sshs_model_hash")
    if stored:
        return stored[:12]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        if path.suffix.lower() == SAFETENSORS:
            header = int.from_bytes(handle.read(8), "little")
            handle.seek(8 + header)
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def _cross_attention_width(state: Mapping[str, Any]) -> int | None:
    """The input width of the LoRA's cross-attention key projections, if it has any."""
    for key, value in state.items():
        normalized = key.replace("_", ".")
        if "attn2.to.k" in normalized and key.endswith(_DOWN_WEIGHTS):
            return int(value.shape[1])
    return None


def check_family(name: str, path: Path, state: Mapping[str, Any], model: LoadedModel) -> None:
    """Refuse a LoRA made for another base model, naming both."""
    sdxl = any(
        key.startswith(_SDXL_MARKERS) or any(block in key for block in _SDXL_UNET_BLOCKS)
        for key in state
    )
    model_name = FAMILY_NAMES[model.family]
    if sdxl and model.family is not ModelFamily.sdxl:
        raise RotoscopeError(
            f"LoRA '{name}' ('{path}') is an SDXL LoRA but the model is {model_name}",
            "use a LoRA made for this model's family, or an SDXL model",
        )
    width = _cross_attention_width(state)
    expected = model.pipe.unet.config.cross_attention_dim
    if width is not None and width != expected:
        made_for = _WIDTH_FAMILIES.get(width, f"a model with {width}-wide text embeddings")
        raise RotoscopeError(
            f"LoRA '{name}' ('{path}') is for {made_for} but the model is {model_name} "
            f"({expected}-wide text embeddings)",
            "use a LoRA made for this model's family",
        )


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers logs a "LOAD REPORT" listing the text encoder's own weights as missing
    when peft loads only the LoRA's: true, expected, and alarming on a terminal."""
    from transformers.utils import logging as transformers_logging

    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(level)


class LoraSet:
    """The LoRAs a plan uses, loaded into ``model``'s pipeline.

    ``frame_weights`` are the rows' ``loras`` (None for a row without); a LoRA whose weight
    is the same, non-zero, on every one of them is fused when ``fuse`` is true.
    """

    def __init__(
        self,
        model: LoadedModel,
        files: Iterable[LoraFile],
        frame_weights: list[dict[str, float] | None],
        fuse: bool = True,
    ) -> None:
        self.pipe = model.pipe
        files = sorted(files, key=lambda file: file.name)
        self.hashes: dict[str, str] = {}
        self.adapters: dict[str, str] = {}  # LoRA name -> peft adapter name (varying ones)
        self.fused: dict[str, float] = {}
        self._state: tuple[tuple[str, float], ...] | None = None
        constant = _constant_weights(frame_weights) if fuse else {}
        states = {file.name: self._read(file, model) for file in files}
        to_fuse = [file for file in files if file.name in constant]
        if to_fuse:
            for file in to_fuse:
                self._load(file, states[file.name], f"fused{len(self.fused)}")
                self.fused[file.name] = constant[file.name]
            with torch.no_grad():
                adapters = [f"fused{index}" for index in range(len(to_fuse))]
                self.pipe.set_adapters(adapters, [constant[f.name] for f in to_fuse])
                self.pipe.fuse_lora(adapter_names=adapters, lora_scale=1.0)
                self.pipe.unload_lora_weights()  # the fused change stays in the weights
            log.info("fused LoRA %s (constant over the plan)", ", ".join(self.fused))
        for file in files:
            if file.name not in self.fused:
                adapter = f"lora{len(self.adapters)}"
                self._load(file, states[file.name], adapter)
                self.adapters[file.name] = adapter

    def _read(self, file: LoraFile, model: LoadedModel) -> dict[str, Any]:
        state, metadata = load_weights(file.path, f"LoRA '{file.name}'")
        if not isinstance(state, dict) or not all(
            isinstance(value, torch.Tensor) for value in state.values()
        ):
            raise RotoscopeError(
                f"LoRA '{file.name}' ('{file.path}') is not a LoRA file (no flat tensor table)",
                "use a kohya/A1111 or diffusers LoRA",
            )
        check_family(file.name, file.path, state, model)
        self.hashes[file.name] = lora_short_hash(file.path, metadata)
        return state

    def _load(self, file: LoraFile, state: dict[str, Any], adapter: str) -> None:
        with (
            loading(f"LoRA '{file.name}' ('{file.path}')"),
            _quiet_transformers(),
            warnings.catch_warnings(),
        ):
            # peft warns that a model already holding an adapter gets another: intended
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            self.pipe.load_lora_weights(dict(state), adapter_name=adapter)
        loaded = {name for names in self.pipe.get_list_adapters().values() for name in names}
        if adapter not in loaded:
            raise RotoscopeError(
                f"LoRA '{file.name}' ('{file.path}') matches no layer of the model",
                "it is for another kind of model, or a LoRA type diffusers cannot load",
            )

    def apply(self, weights: Mapping[str, float] | None) -> tuple[tuple[str, float], ...]:
        """Set the adapters to a frame's weights; returns the weights in effect, for caches
        of what the text encoders produce."""
        state = tuple(
            (name, float(weight))
            for name, weight in sorted((weights or {}).items())
            if name in self.adapters
        )
        if state != self._state and self.adapters:
            if state:
                self.pipe.enable_lora()
                self.pipe.set_adapters(
                    [self.adapters[name] for name, _ in state], [weight for _, weight in state]
                )
            else:
                self.pipe.disable_lora()
        self._state = state
        return state


def _constant_weights(frame_weights: list[dict[str, float] | None]) -> dict[str, float]:
    """The LoRAs with one and the same weight on every frame."""
    if not frame_weights:
        return {}
    first = frame_weights[0] or {}
    return {
        name: weight
        for name, weight in first.items()
        if all((weights or {}).get(name) == weight for weights in frame_weights)
    }
