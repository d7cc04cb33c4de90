"""Read weight files that came from other people without running their code.

Embeddings, LoRAs, checkpoints, upscalers and RIFE are shared as ``.safetensors`` (plain
tensors) or as pickles (``.pt``, ``.ckpt``, ``.bin``, ``.pth``, RIFE's ``.pkl``), and
unpickling can run any code the file's author chose. So pickles are read only by torch's
weights-only unpickler, which rebuilds tensors and plain containers and refuses
everything else; a file that would need more is refused with one line naming it, before
any of its code could run.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

from pipeline.errors import RotoscopeError
from pipeline.models.weights import first_line

SAFETENSORS = ".safetensors"
PICKLE_SUFFIXES = (".pt", ".ckpt", ".bin", ".pth", ".pkl")
# torch names the callable a refused pickle wanted: "Unsupported global: GLOBAL posix.system"
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_pickle(path: Path, what: str) -> Any:
    """The object in a pickled weight file, read by torch's weights-only loader."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise refused_pickle(what, path, exc) from exc
    except Exception as exc:  # zip/EOF/runtime errors of a damaged file share no base class
        raise RotoscopeError(
            f"{what} '{path}' is not a readable weight file ({first_line(exc)})",
            "the file is probably truncated or corrupt: download it again",
        ) from exc


def refused_pickle(what: str, path: Path, exc: pickle.UnpicklingError) -> RotoscopeError:
    """The error for a pickle torch's weights-only loader refused (it wanted to call code)."""
    needed = _GLOBAL.search(str(exc))
    detail = f" (it calls {needed.group(1)})" if needed else ""
    return RotoscopeError(
        f"{what} '{path}' is a pickle that would run code to load, so it is refused{detail}",
        "use a .safetensors version of it, or convert it where you trust the file",
    )


def load_safetensors(path: Path, what: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The tensors of a ``.safetensors`` file and its text metadata."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            # a safe_open handle is not iterable, hence .keys()
            return {key: handle.get_tensor(key) for key in handle.keys()}, metadata  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own and OS errors
        raise RotoscopeError(
            f"{what} '{path}' is not a readable .safetensors file ({first_line(exc)})",
            "the file is probably truncated or corrupt: download it again",
        ) from exc


def load_weights(path: Path, what: str) -> tuple[Any, dict[str, str]]:
    """A weight file's content (a dict of tensors, or whatever plain structure a pickle
    holds) and its safetensors metadata ({} for pickles), read safely."""
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS:
        return load_safetensors(path, what)
    if suffix in PICKLE_SUFFIXES:
        return load_pickle(path, what), {}
    raise RotoscopeError(
        f"{what} '{path}' is not a weight file",
        f"use a {SAFETENSORS} file (or {', '.join(PICKLE_SUFFIXES)})",
    )
