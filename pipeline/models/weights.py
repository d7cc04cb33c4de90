"""Weights on disk or on the hub, inspected without loading them, and load errors explained.

What the base-model loader and the ControlNet loader share: the checkpoint suffixes and
family names, hub ids resolved through the local cache (strictly offline when asked),
cheap fingerprints that change whenever the weights do (file sizes and mtimes, hub
commits: no content is read), and :func:`loading`, which turns whatever a diffusers load
call raises into one line naming the setting.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from pipeline.config.schema import ModelFamily
from pipeline.errors import RotoscopeError

# The folder under paths.models the offline demo models are built into.
TINY_MODELS_FOLDER = "tiny"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
FAMILY_NAMES = {ModelFamily.sd15: "SD 1.x/2.x", ModelFamily.sdxl: "SDXL"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
VERBOSE_HINT = "run with runtime.verbose=true for the full traceback"
_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}  # as huggingface_hub reads HF_HUB_OFFLINE


def enable_offline_mode() -> None:
    """Refuse network access for the rest of the process.

    huggingface_hub reads ``HF_HUB_OFFLINE`` once, at import, and torch/diffusers are
    imported before the config is read, so the module constant is set as well as the
    variable (which covers subprocesses).
    """
    import huggingface_hub.constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    huggingface_hub.constants.HF_HUB_OFFLINE = True


def is_offline() -> bool:
    """Offline by ``runtime.offline`` or by ``HF_HUB_OFFLINE`` set in the environment."""
    from huggingface_hub import is_offline_mode

    return is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE_VALUES


def not_found(field: str, value: str) -> RotoscopeError:
    """The error for weights that are not there; the demo models get their build command."""
    path = Path(value).expanduser().absolute()
    if TINY_MODELS_FOLDER in path.parts:
        hint = "build the offline demo models with: python scripts/make_tiny_models.py"
    else:
        hint = f"check the path; relative paths are read from {Path.cwd()}"
    return RotoscopeError(f"{field} '{value}' not found", hint)


def is_hub_id(value: str) -> bool:
    return (
        bool(_HUB_ID.match(value)) and ".." not in value and not value.endswith(CHECKPOINT_SUFFIXES)
    )


# How long the hub may take to accept a connection before it counts as unreachable.
HUB_PROBE_SECONDS = 3.0


@lru_cache(maxsize=1)
def hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached from here (None when it can).

    One TCP connection to the hub's endpoint, a few seconds at most, once per process:
    without it, huggingface_hub retries every request five times with back-off (25 s and
    a screenful of warnings) before falling back to its cache. Behind an HTTP proxy the
    direct connection says nothing, so it is not tried.
    """
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY")):
        return None
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((endpoint.hostname or "", port), HUB_PROBE_SECONDS):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def hub_file(field: str, repo_id: str, filename: str, offline: bool) -> Path:
    """A file of a hub repo from the local cache (offline) or the hub; errors explained.

    Without a network (:func:`hub_unreachable`) the process goes offline at once: the
    cache is used, and a file not in it is one line, not minutes of retries.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    unreachable = None if offline or is_offline() else hub_unreachable()
    if unreachable is not None:
        enable_offline_mode()  # diffusers' own loading then reads the cache only, too
        offline = True
    try:
        return Path(hf_hub_download(repo_id, filename, local_files_only=offline))
    except LocalEntryNotFoundError as exc:
        if unreachable is not None:
            raise RotoscopeError(
                f"{field} '{repo_id}' is not a local path, nor in the local Hugging Face "
                f"cache, and the hub cannot be reached ({unreachable})",
                f"download it once with network access (hf download {repo_id}), or give a "
                "local folder or file",
            ) from exc
        if not offline:
            raise RotoscopeError(
                f"{field} '{repo_id}' is not a local path, and the Hugging Face hub is unreachable",
                "check the network and the path, or download the model and point at its folder",
            ) from exc
        raise RotoscopeError(
            f"{field} '{repo_id}' is not a local path, and as a hub id it is not in the local "
            "Hugging Face cache (offline mode)",
            f"download it once with network access: hf download {repo_id}; or give a local folder",
        ) from exc
    except RepositoryNotFoundError as exc:
        raise RotoscopeError(
            f"{field} '{repo_id}' is neither a local path nor a model on the Hugging Face hub",
            "check the spelling; gated models also need `hf auth login`",
        ) from exc
    except (OSError, ValueError) as exc:
        raise RotoscopeError(
            f"{field} '{repo_id}': could not fetch {filename} ({first_line(exc)})",
            "check the network, or use a local folder with runtime.offline=true",
        ) from exc


def file_fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def folder_fingerprint(path: Path) -> str:
    """Every file's name, size and mtime: no file content is read (folders hold gigabytes)."""
    root = path.resolve()
    lines = [f"folder:{root}"]
    for file in sorted(root.rglob("*")):
        relative = file.relative_to(root)
        if file.is_file() and not any(part.startswith(".") for part in relative.parts):
            stat = file.stat()
            lines.append(f"{relative.as_posix()}:{stat.st_size}:{stat.st_mtime_ns}")
    return "\n".join(lines)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


@contextmanager
def loading(what: str) -> Iterator[None]:
    """Around diffusers load calls: whatever they raise becomes one line naming ``what``.

    Also hides diffusers' deprecation warning for ``torch_dtype``: it is the argument
    every diffusers release since our floor (0.30) accepts; only newer ones prefer
    ``dtype``.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
        try:
            yield
        except RotoscopeError:
            raise
        except Exception as exc:
            raise RotoscopeError(f"could not load {what}: {first_line(exc)}", VERBOSE_HINT) from exc


def own_aligned_memory(components: Iterable[object]) -> None:
    """Give every CPU weight of ``components`` (the torch modules among them) its own
    64-byte-aligned memory.

    diffusers and transformers leave loaded weights inside the memory-mapped
    .safetensors file, at whatever offset the file's layout puts them, except tensors a
    single-file conversion builds afresh (SDXL's transposed ``text_projection``). Some of
    MKL's CPU kernels round differently depending on alignment (its SSE4.2 path for a
    one-row matmul, such as the pooled-text projection, gives other low bits when the
    weight is not 16-byte aligned), so the same weights gave images that differed by
    ~4e-6 depending on whether they came from a folder or a single file. Only misaligned
    tensors are copied; on a GPU ``to()`` has already copied everything.
    """
    import torch

    for component in components:
        if isinstance(component, torch.nn.Module):
            for tensor in itertools.chain(component.parameters(), component.buffers()):
                if tensor.device.type == "cpu" and tensor.data_ptr() % 64:
                    tensor.data = tensor.data.clone()
