"""Textual-inversion embedding files read into vectors, one set per text encoder.

The formats in circulation, all read through :mod:`pipeline.models.safe_load`:

- A1111 ``.pt`` (its textual-inversion training): ``{"string_to_param": {"*": (n, width)}}``
  with bookkeeping entries next to it;
- A1111 / kohya ``.safetensors``: ``{"emb_params": (n, width)}``;
- diffusers (``learned_embeds.safetensors`` / ``.bin``): ``{"<token>": (width,) or (n, width)}``;
- SDXL embeddings: ``{"clip_l": (n, 768), "clip_g": (n, 1280)}``, one set of vectors per
  text encoder.

A1111's ``TI hashes`` metadata entry names each embedding with the first 12 hex digits of
its file's sha256, so :func:`short_hash` computes that.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import RotoscopeError
from pipeline.models.safe_load import load_weights

# The keys of an SDXL embedding, in the order of SDXL's text encoders.
SDXL_KEYS = ("clip_l", "clip_g")
# A1111 cannot place more vectors than fit in one 75-token chunk, and neither can we.
MAX_VECTORS = 75


@dataclass(frozen=True)
class EmbeddingFile:
    """An embedding's vectors: one (count, width) tensor, or one per SDXL text encoder
    (CLIP-L's, then OpenCLIP-G's)."""

    name: str
    path: Path
    vectors: tuple[torch.Tensor, ...]

    @property
    def widths(self) -> list[int]:
        return [int(tensor.shape[1]) for tensor in self.vectors]


def read_embedding(name: str, path: Path) -> EmbeddingFile:
    """Read ``path`` as the embedding called ``name``; a file of another kind is one line."""
    data, _ = load_weights(path, f"embedding '{name}'")
    if isinstance(data, dict) and all(key in data for key in SDXL_KEYS):
        vectors = tuple(_matrix(data[key], name, path) for key in SDXL_KEYS)
        return EmbeddingFile(name, path, vectors)
    return EmbeddingFile(name, path, (_single(data, name, path),))


def _single(data: Any, name: str, path: Path) -> torch.Tensor:
    if isinstance(data, dict) and isinstance(data.get("string_to_param"), dict):
        data = data["string_to_param"]
    elif isinstance(data, dict) and "emb_params" in data:
        data = {"emb_params": data["emb_params"]}
    tensors = list(data.values()) if isinstance(data, dict) else [data]
    if len(tensors) != 1 or not isinstance(tensors[0], torch.Tensor):
        raise RotoscopeError(
            f"embedding '{name}' ('{path}') is not a textual-inversion embedding",
            "expected an A1111 .pt/.safetensors embedding or a diffusers learned_embeds file",
        )
    return _matrix(tensors[0], name, path)


def _matrix(tensor: Any, name: str, path: Path) -> torch.Tensor:
    """The vectors as a (count, width) float32 tensor of their own."""
    if not isinstance(tensor, torch.Tensor) or tensor.ndim not in (1, 2):
        raise RotoscopeError(
            f"embedding '{name}' ('{path}') holds no vectors", "check that it is an embedding"
        )
    matrix = tensor.detach().reshape(-1, tensor.shape[-1]).to(torch.float32).clone()
    if not 1 <= len(matrix) <= MAX_VECTORS:
        raise RotoscopeError(
            f"embedding '{name}' ('{path}') has {len(matrix)} vectors",
            f"an embedding has 1 to {MAX_VECTORS} vectors",
        )
    return matrix


def short_hash(path: Path) -> str:
    """A1111's short hash of an embedding: the first 12 hex digits of the file's sha256."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:12]
