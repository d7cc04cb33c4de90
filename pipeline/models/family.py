"""Which Stable Diffusion family a model is, told from its files without torch, and the
size each family was trained at.

The loader reads the family to pick the pipeline class; ``input.size=auto`` reads it
before anything is rendered (when the config is checked, :mod:`pipeline.run.configure`),
so the render size follows the model: SD 1.x was trained on 512x512 pictures and SDXL on
about a million pixels (1024x1024 and its aspect-ratio buckets), and both repeat their
subject when asked for much more. Telling the family reads a folder's ``model_index.json``
or a single file's tensor names: a ``.safetensors`` header (JSON), or the names stored in
a pickled checkpoint's ``data.pkl`` as plain text; a hub model's ``model_index.json`` comes
from the local cache (or, online, the hub: its weights follow when the render starts).
Nothing is unpickled and no weights are read, so a dry run stays as fast as it was.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

from pipeline.config.schema import NATIVE_SIDE, ModelConfig, ModelFamily
from pipeline.errors import RotoscopeError
from pipeline.models.weights import hub_file, is_hub_id, is_offline

# Tensor name prefixes that tell the families apart in an original-layout checkpoint.
SDXL_PREFIXES = ("conditioner.", "model.diffusion_model.label_emb.")
SD15_PREFIXES = ("cond_stage_model.", "model.diffusion_model.")
# A safetensors header larger than this is not a checkpoint's (it would be the whole file).
_MAX_HEADER = 100_000_000


def family_of_index(index: Path) -> ModelFamily | None:
    """``sd15`` for StableDiffusion*Pipeline (1.x and 2.x), ``sdxl`` for the XL ones."""
    name = str(json.loads(index.read_text(encoding="utf-8")).get("_class_name", ""))
    if name.startswith("StableDiffusionXL"):
        return ModelFamily.sdxl
    if name.startswith("StableDiffusion") and not name.startswith("StableDiffusion3"):
        return ModelFamily.sd15
    return None


def family_of_keys(keys: set[str]) -> ModelFamily | None:
    """Read the architecture from an original-layout checkpoint's tensor names.

    SDXL files hold their text encoders under ``conditioner.embedders.*`` and the
    size/crop conditioning under the UNet's ``label_emb``; SD 1.x/2.x files under
    ``cond_stage_model.*``.
    """
    if any(key.startswith(SDXL_PREFIXES) for key in keys):
        return ModelFamily.sdxl
    if any(key.startswith(SD15_PREFIXES) for key in keys):
        return ModelFamily.sd15
    return None


def model_family(cfg: ModelConfig) -> ModelFamily | None:
    """``model.family``, or the family its files say; None when they cannot tell (a model
    that is not there yet, a file of another kind: the loader names the problem later)."""
    if cfg.family is not ModelFamily.auto:
        return cfg.family
    path = Path(cfg.path).expanduser()
    try:
        if path.is_dir():
            index = path / "model_index.json"
            return family_of_index(index) if index.is_file() else None
        if path.is_file():
            return _family_of_file(path)
        if is_hub_id(cfg.path):  # the cache's index, or the hub's (the render needs it next)
            index = hub_file("model.path", cfg.path, "model_index.json", is_offline())
            return family_of_index(index)
    except (OSError, ValueError, RotoscopeError):
        return None
    return None


def native_side(cfg: ModelConfig) -> int | None:
    """The side of the square area the model renders best at, or None when its family
    cannot be told."""
    family = model_family(cfg)
    return None if family is None else NATIVE_SIDE[family]


def _family_of_file(path: Path) -> ModelFamily | None:
    if path.suffix.lower() == ".safetensors":
        return family_of_keys(_safetensors_names(path))
    if zipfile.is_zipfile(path):
        return _family_of_pickle_archive(path)
    return None


def _safetensors_names(path: Path) -> set[str]:
    """The tensor names in a ``.safetensors`` header (8-byte length, then JSON)."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > _MAX_HEADER:
            raise ValueError(f"{path} has no safetensors header")
        header = json.loads(handle.read(length))
    return {name for name in header if name != "__metadata__"}


def _family_of_pickle_archive(path: Path) -> ModelFamily | None:
    """torch's zip format keeps the state dict's pickle in ``<name>/data.pkl``, where the
    tensor names are stored as plain strings: searched as bytes, never unpickled."""
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
        if not pickles:
            return None
        data = archive.read(pickles[0])
    if any(prefix.encode() in data for prefix in SDXL_PREFIXES):
        return ModelFamily.sdxl
    if any(prefix.encode() in data for prefix in SD15_PREFIXES):
        return ModelFamily.sd15
    return None
