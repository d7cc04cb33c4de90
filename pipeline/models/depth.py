"""Depth models for the 3D camera, from local files, giving depth in Deforum's units.

``animation.depth.model`` picks one:

- ``midas``: MiDaS v3 DPT-Hybrid, the ``dpt_hybrid-midas-501f0c75.pt`` file the depth
  ControlNet preprocessor loads from the annotators folder (lllyasviel/Annotators),
  through controlnet_aux's own classes; imported for Deforum's "Midas-3-Hybrid" (which
  loads DPT-Large);
- ``zoe``: ZoeDepth (``ZoeD_M12_N.pt``, same folder, same route);
- ``depth_anything``: Depth Anything V2 through transformers, from a local folder as the
  hub has it (``depth-anything/Depth-Anything-V2-Small-hf`` and its Base/Large
  siblings, relative or metric);
- ``tiny``: a tiny random-weight Depth Anything the tiny-model builder makes
  (``models/tiny/depth``), loaded through the same code as ``depth_anything``;
- ``none``: no model, every pixel at the same depth (Deforum's ``use_depth_warping``
  off).

Whatever a model outputs (MiDaS and relative Depth Anything: inverse depth, larger is
nearer; Zoe and metric Depth Anything: metres), the 3D camera gets Deforum's depth: the
output scaled to 0..1, histogram-equalised (each value replaced by the share of pixels
nearer than it, over 1024 bins), and laid out from 1 at the nearest point to 2 at the
farthest (exactly: Deforum's equalised range stops a bin short at one end). A map that
is flat or not finite becomes flat depth 1, as in Deforum. ``animation.depth.blend``
names a second model whose depth is mixed in, ``midas_weight`` of the first to
``1 - midas_weight`` of the second: Deforum's MiDaS/AdaBins blend, with any two of these
models.

A missing weights file is one line naming the file and where to put it; nothing is ever
downloaded.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.schema import DepthConfig, DepthModel
from pipeline.errors import RotoscopeError
from pipeline.models.weights import (
    TINY_MODELS_FOLDER,
    file_fingerprint,
    first_line,
    folder_fingerprint,
    loading,
)

MIDAS_FILE = "dpt_hybrid-midas-501f0c75.pt"
ZOE_FILE = "ZoeD_M12_N.pt"
TINY_DEPTH_FOLDER = "depth"  # under models/tiny
# Depth Anything V2 folders, as the hub has them: the weights in either format
TRANSFORMERS_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
EQUALIZATION_BINS = 1024
# MiDaS runs at about 384 pixels on its side closest to that (Deforum's and MiDaS's
# "minimal" resize), in multiples of 32; Zoe at most 512 on its longer side.
MIDAS_SIZE = 384
ZOE_SIZE = 512


@dataclass(frozen=True)
class DepthWeights:
    """Where one depth model's weights are: a file (MiDaS, Zoe) or a folder."""

    model: DepthModel
    path: Path

    def missing(self) -> RotoscopeError | None:
        """The one-line error for weights that are not there, or None."""
        name = self.model.value
        if self.model in (DepthModel.midas, DepthModel.zoe):
            if self.path.is_file():
                return None
            return RotoscopeError(
                f"animation.depth.model={name} needs {self.path.name} in {self.path.parent}, "
                "which is not there",
                "put the file from the lllyasviel/Annotators repository there (the depth "
                "ControlNet preprocessor uses the same one), or set "
                "animation.depth.annotators to the folder that holds it",
            )
        absent = [
            file
            for file in ("config.json", "preprocessor_config.json")
            if not (self.path / file).is_file()
        ]
        if not any((self.path / file).is_file() for file in TRANSFORMERS_WEIGHTS):
            absent.append(TRANSFORMERS_WEIGHTS[0])
        if not absent:
            return None
        if self.model is DepthModel.tiny:
            hint = "build the offline demo models with: python scripts/make_tiny_models.py"
        else:
            hint = (
                "download depth-anything/Depth-Anything-V2-Small-hf (or Base, Large) into "
                "that folder, or set animation.depth.folder to the folder that holds it"
            )
        return RotoscopeError(
            f"animation.depth.model={name} needs {', '.join(absent)} in {self.path}, "
            "which is not there",
            hint,
        )

    def identity(self) -> str:
        """What the weights are, cheaply (sizes and times, no content read)."""
        if self.path.is_file():
            return f"{self.model.value}:{file_fingerprint(self.path)}"
        return f"{self.model.value}:{folder_fingerprint(self.path)}"


def depth_weights(model: DepthModel, depth: DepthConfig, models_folder: str) -> DepthWeights:
    """Where ``model``'s weights are, by ``animation.depth`` and ``paths.models``."""
    if model is DepthModel.midas:
        return DepthWeights(model, Path(depth.annotators).expanduser() / MIDAS_FILE)
    if model is DepthModel.zoe:
        return DepthWeights(model, Path(depth.annotators).expanduser() / ZOE_FILE)
    if model is DepthModel.tiny:
        folder = Path(models_folder).expanduser() / TINY_MODELS_FOLDER / TINY_DEPTH_FOLDER
        return DepthWeights(model, folder)
    if model is DepthModel.depth_anything:
        return DepthWeights(model, Path(depth.folder).expanduser())
    raise ValueError(f"depth model {model.value} has no weights")


def used_models(depth: DepthConfig) -> list[DepthModel]:
    """The models a depth config runs (none for flat depth)."""
    return [model for model in (depth.model, depth.blend) if model is not DepthModel.none]


def check_depth_weights(depth: DepthConfig, models_folder: str) -> None:
    """Fail now, in one line, if a depth model's weights are not where the config says."""
    for model in used_models(depth):
        problem = depth_weights(model, depth, models_folder).missing()
        if problem is not None:
            raise problem


def depth_identity(depth: DepthConfig, models_folder: str) -> str:
    """Everything that shapes a depth map: the models, their weights, the blend weight."""
    models = used_models(depth)
    parts = [depth_weights(model, depth, models_folder).identity() for model in models]
    if len(models) == 2:
        parts.append(f"midas_weight={depth.midas_weight!r}")
    return "\n".join(parts) or "flat"


Estimate = Callable[[np.ndarray], np.ndarray]


def load_depth(depth: DepthConfig, models_folder: str, device: Any) -> Estimate:
    """A function from an RGB uint8 frame to its depth (float32, 1 nearest .. 2 farthest),
    with the configured model (and blend) loaded on ``device``."""
    models = used_models(depth)
    if not models:
        return flat_depth
    check_depth_weights(depth, models_folder)
    estimators = [_load(depth_weights(model, depth, models_folder), device) for model in models]
    if len(estimators) == 1:
        return estimators[0]
    first, second = estimators
    weight = np.float32(depth.midas_weight)

    def blended(image: np.ndarray) -> np.ndarray:
        return weight * first(image) + (np.float32(1) - weight) * second(image)

    return blended


def flat_depth(image: np.ndarray) -> np.ndarray:
    """Every pixel at depth 1: the 3D camera without a depth model."""
    return np.ones(image.shape[:2], dtype=np.float32)


def deforum_depth(raw: np.ndarray, larger_is_nearer: bool) -> np.ndarray:
    """A model's raw output as Deforum's depth: scaled to 0..1, histogram-equalised, laid
    out from 1 (nearest) to 2 (farthest); flat (1) when it is flat or not finite."""
    values = np.asarray(raw, dtype=np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if not (np.isfinite(values).all() and high > low):
        return np.ones(values.shape, dtype=np.float32)
    scaled = (values - low) / (high - low)
    counts, edges = np.histogram(scaled, bins=EQUALIZATION_BINS, range=(0.0, 1.0))
    share = np.cumsum(counts) / scaled.size
    equalized = np.interp(scaled, edges[1:], share)  # the share of pixels at or below
    # spread back over 0..1 (the lowest value's share is above 0), so the nearest point is
    # at exactly 1 and the farthest at exactly 2
    equalized = (equalized - equalized.min()) / (equalized.max() - equalized.min())
    farness = 1.0 - equalized if larger_is_nearer else equalized
    return (1.0 + farness).astype(np.float32)


def working_size(width: int, height: int, target: int, nearest_to_one: bool) -> tuple[int, int]:
    """A model's input size: the frame scaled to ``target`` pixels on the side whose scale
    is nearest 1 (``nearest_to_one``, MiDaS's "minimal" resize) or on its longer side, in
    multiples of 32."""
    scales = (target / width, target / height)
    scale = min(scales, key=lambda s: abs(1 - s)) if nearest_to_one else min(scales)
    return (max(32, round(width * scale / 32) * 32), max(32, round(height * scale / 32) * 32))


def _load(weights: DepthWeights, device: Any) -> Estimate:
    if weights.model is DepthModel.midas:
        return _midas(weights, device)
    if weights.model is DepthModel.zoe:
        return _zoe(weights, device)
    return _depth_anything(weights, device)


def _resized_tensor(image: np.ndarray, size: tuple[int, int], device: Any) -> Any:
    """The frame at ``size`` (bicubic), as a float32 ``1 x 3 x h x w`` tensor in 0..1."""
    import cv2
    import torch

    pixels = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].to(device)


def _to_frame(prediction: Any, height: int, width: int) -> np.ndarray:
    """A model's ``h x w`` (or ``1 x h x w``) output resized to the frame (bicubic)."""
    import torch

    resized = torch.nn.functional.interpolate(
        prediction.reshape(1, 1, *prediction.shape[-2:]).float(),
        size=(height, width), mode="bicubic", align_corners=False,
    )  # fmt: skip
    return resized[0, 0].cpu().numpy()


def _midas(weights: DepthWeights, device: Any) -> Estimate:
    import torch

    aux = _controlnet_aux()
    with loading(f"MiDaS depth weights {weights.path}"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # timm's notices about the backbone it builds
        detector = aux.MidasDetector.from_pretrained(
            str(weights.path.parent), model_type="dpt_hybrid", filename=weights.path.name
        )
    network = detector.model.to(device).eval()

    def estimate(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        size = working_size(width, height, MIDAS_SIZE, nearest_to_one=True)
        sample = _resized_tensor(image, size, device) * 2.0 - 1.0  # MiDaS reads -1..1
        with torch.inference_mode():
            prediction = network(sample)
        return deforum_depth(_to_frame(prediction, height, width), larger_is_nearer=True)

    return estimate


def _zoe(weights: DepthWeights, device: Any) -> Estimate:
    import torch

    aux = _controlnet_aux()
    with loading(f"ZoeDepth weights {weights.path}"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = aux.ZoeDetector.from_pretrained(
            str(weights.path.parent), filename=weights.path.name
        )
    network = detector.model.to(device).eval()

    def estimate(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        size = working_size(width, height, ZOE_SIZE, nearest_to_one=False)
        with torch.inference_mode():
            prediction = network.infer(_resized_tensor(image, size, device))
        return deforum_depth(_to_frame(prediction, height, width), larger_is_nearer=False)

    return estimate


def _depth_anything(weights: DepthWeights, device: Any) -> Estimate:
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its "Loading weights" bar, mid-progress-line
    with loading(f"animation.depth.model={weights.model.value} ({weights.path})"):
        processor = AutoImageProcessor.from_pretrained(str(weights.path), local_files_only=True)
        network = AutoModelForDepthEstimation.from_pretrained(
            str(weights.path), local_files_only=True
        )
    network = network.to(device).eval()
    metric = getattr(network.config, "depth_estimation_type", "relative") == "metric"

    def estimate(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        inputs = processor(images=Image.fromarray(image), return_tensors="pt").to(device)
        with torch.inference_mode():
            prediction = network(**inputs).predicted_depth
        return deforum_depth(_to_frame(prediction, height, width), larger_is_nearer=not metric)

    return estimate


def _controlnet_aux() -> Any:
    """controlnet_aux, imported only when MiDaS or Zoe is used (its import is heavy and
    fragile: see pipeline.control.detectors); a broken install is one line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import controlnet_aux
    except Exception as exc:
        raise RotoscopeError(
            f"the controlnet_aux package could not be imported: {first_line(exc)}",
            "MiDaS and Zoe depth need it: pip install controlnet-aux",
        ) from exc
    return controlnet_aux
