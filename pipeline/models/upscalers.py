"""Upscaler weights in: any architecture spandrel recognises, read without running code.

Upscalers are shared as ``.pth`` pickles more often than as ``.safetensors``, and
spandrel's own file loader would unpickle them with a restricted unpickler (and try a
``.pt`` as TorchScript, which is code). Here the state dict is read by
:mod:`pipeline.models.safe_load` (safetensors, or torch's weights-only unpickler) and only
then handed to spandrel, which recognises the architecture from the tensor names and
shapes (ESRGAN, Real-ESRGAN and its compact ``realesr-animevideov3``, SwinIR, HAT, DAT,
...) and builds the network. On CUDA the model runs in half precision by default
(``runtime.dtype=auto``) where the architecture supports it (bfloat16 where only that
is), as every upscaler UI does: twice as fast, half the memory, and no visible
difference in 8-bit output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import RotoscopeError
from pipeline.models.safe_load import load_weights
from pipeline.models.weights import first_line


@dataclass
class LoadedUpscaler:
    """A spandrel image model ready to run, and what frames' keys and logs say about it."""

    model: Any  # spandrel.ImageModelDescriptor
    name: str  # the file's name
    architecture: str  # spandrel's name for it (ESRGAN, Compact, SwinIR, ...)
    scale: int  # output pixels per input pixel, per side
    device: torch.device
    dtype: torch.dtype
    tiling: bool  # False where the model works on the whole picture (spandrel says)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` (1, 3, H, W) in [0, 1] on the model's device and dtype, upscaled."""
        result: torch.Tensor = self.model(image)
        return result


def load_upscaler(path: Path, device: torch.device, dtype: torch.dtype) -> LoadedUpscaler:
    """Load the upscaler in ``path`` on ``device`` at ``dtype`` (``runtime.dtype``: half on
    CUDA by default), or the nearest precision its architecture supports; a file spandrel
    does not know, or one that is not an RGB upscaler, is one line naming it."""
    import spandrel

    state, _ = load_weights(path, "upscale.model")
    if not isinstance(state, dict):
        raise RotoscopeError(
            f"upscale.model '{path}' holds no weights (a {type(state).__name__})",
            "give an upscaler's .pth or .safetensors file",
        )
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(
            spandrel.canonicalize_state_dict(state)
        )
    except spandrel.UnsupportedModelError as exc:
        raise RotoscopeError(
            f"upscale.model '{path}' is not an architecture spandrel {spandrel.__version__} knows",
            "use an ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT (...) model, or upscale.model=lanczos",
        ) from exc
    except Exception as exc:  # a recognised architecture whose tensors do not fit it
        raise RotoscopeError(
            f"upscale.model '{path}' could not be built ({first_line(exc)})",
            "the file is probably damaged or of an unusual variant: try another copy",
        ) from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.input_channels != 3:
        raise RotoscopeError(
            f"upscale.model '{path}' is a {descriptor.architecture.name} model for "
            f"{descriptor.purpose}, not an RGB upscaler",
            "give a super-resolution model (4x-UltraSharp, RealESRGAN_x4plus, ...)",
        )
    dtype = _supported(descriptor, dtype)
    descriptor.to(device=device, dtype=dtype).eval()
    return LoadedUpscaler(
        model=descriptor,
        name=path.name,
        architecture=descriptor.architecture.name,
        scale=descriptor.scale,
        device=device,
        dtype=dtype,
        tiling=descriptor.tiling is not spandrel.ModelTiling.INTERNAL,
    )


def _supported(descriptor: Any, wanted: torch.dtype) -> torch.dtype:
    """``wanted``, or the nearest precision the architecture supports."""
    if wanted is torch.float16 and not descriptor.supports_half:
        return torch.bfloat16 if descriptor.supports_bfloat16 else torch.float32
    return wanted
