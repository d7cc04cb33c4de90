"""Pick the torch device and dtype a run uses, from ``runtime.device`` / ``runtime.dtype``.

Kept apart from model loading so the choice can be tested (and printed by a dry run)
without touching any weights, and so an unavailable device fails before minutes of
loading, with a message that says what is available instead.
"""

from __future__ import annotations

import torch

from pipeline.config.schema import Dtype
from pipeline.errors import RotoscopeError

_EXPLICIT_DTYPES = {
    Dtype.float32: torch.float32,
    Dtype.float16: torch.float16,
    Dtype.bfloat16: torch.bfloat16,
}


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Names of the devices this machine can run on, for error messages."""
    names = (
        [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    if _mps_available():
        names.append("mps")
    names.append("cpu")
    return names


def resolve_device(name: str) -> torch.device:
    """The device for ``runtime.device``: ``auto`` takes cuda, then mps, then cpu.

    An explicit name (``cuda``, ``cuda:1``, ``mps``, ``cpu``) is checked against what
    the machine has, so a config written for a GPU box fails here with the list of
    usable devices instead of deep inside the first ``.to()`` call.
    """
    text = name.strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise RotoscopeError(
            f"runtime.device '{name}' is not a device name",
            f"use auto, cpu, cuda, cuda:N or mps; available here: {', '.join(available_devices())}",
        ) from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        usable = torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    elif device.type == "mps":
        usable = _mps_available()
    else:
        backend = getattr(torch, device.type, None)
        usable = bool(
            backend is not None and hasattr(backend, "is_available") and backend.is_available()
        )
    if not usable:
        raise RotoscopeError(
            f"runtime.device '{name}' is not available on this machine",
            f"use runtime.device=auto or one of: {', '.join(available_devices())}",
        )
    return device


def describe_device(device: torch.device) -> str:
    """The device for reports: ``cpu``, ``mps``, or ``cuda:0 (NVIDIA H200)``."""
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def resolve_dtype(dtype: Dtype, device: torch.device) -> torch.dtype:
    """The weight dtype for ``runtime.dtype`` on ``device``.

    ``auto`` is float16 on CUDA and float32 on CPU and MPS. float16 halves memory and
    runs on the tensor cores of every CUDA GPU (bfloat16 needs Ampere or newer). The same
    holds for SDXL: its VAE overflows in float16, but diffusers' SDXL pipelines upcast
    the VAE to float32 around encode/decode when the VAE config sets ``force_upcast``
    (the official SDXL VAE does), so the UNet and text encoders still get the fp16
    speed-up. On CPU float16 is slow or unsupported for many ops, and on MPS it has
    produced black/NaN images, so those stay float32. An explicit dtype is used as given.
    """
    if dtype is Dtype.auto:
        return torch.float16 if device.type == "cuda" else torch.float32
    return _EXPLICIT_DTYPES[dtype]
