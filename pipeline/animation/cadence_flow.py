"""The optical flow between two diffused frames of a loopback (Deforum's optical flow
cadence, ``cadence.flow``), by the methods Deforum offers for it.

Deforum estimates it between the two pictures its in-between frames are made from, and
moves those frames along it. The methods, with Deforum's settings for them:

- ``dis_medium``: OpenCV's DIS at its medium preset;
- ``dis_fine``: DIS at full resolution, 8 px patches every 4 px, 192 gradient descent
  iterations;
- ``farneback``: OpenCV's Farneback (pyramid scale 0.5, 5 levels, a 21 px window, 5
  iterations, polynomials of 7 px at sigma 1.2);
- ``raft``: torchvision's RAFT (large), with weights read from a local file only
  (``cadence.raft_weights``): nothing is downloaded.

Flows follow :mod:`pipeline.animation.flow`'s convention: ``flow(a, b)`` is on ``a``'s grid,
``a(x) ~ b(x + F(x))``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.config.schema import CadenceFlow
from pipeline.errors import RotoscopeError


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def cadence_flow(
    a: np.ndarray,
    b: np.ndarray,
    method: CadenceFlow,
    raft_weights: str = "",
    device: str = "cpu",
) -> np.ndarray:
    """The flow from RGB picture ``a`` to ``b`` (float32 ``H x W x 2``) by ``method``."""
    if method is CadenceFlow.dis_medium:
        dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flow = dis.calc(grey(a), grey(b), None)  # type: ignore[call-overload]
    elif method is CadenceFlow.dis_fine:
        dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        dis.setFinestScale(0)
        dis.setPatchSize(8)
        dis.setPatchStride(4)
        dis.setGradientDescentIterations(192)
        flow = dis.calc(grey(a), grey(b), None)  # type: ignore[call-overload]
    elif method is CadenceFlow.farneback:
        flow = cv2.calcOpticalFlowFarneback(grey(a), grey(b), None, 0.5, 5, 21, 5, 7, 1.2, 0)  # type: ignore[call-overload]
    elif method is CadenceFlow.raft:
        flow = raft_flow(a, b, raft_weights, device)
    else:
        raise ValueError(f"no flow for cadence.flow={method.value}")
    return np.asarray(flow, dtype=np.float32)


# The smallest side RAFT takes: it works at 1/8 of the picture, in a four-level pyramid
# whose smallest level must still be 2 pixels across.
RAFT_MIN_SIDE = 128


def raft_flow(a: np.ndarray, b: np.ndarray, weights: str, device: str) -> np.ndarray:
    """RAFT's flow from ``a`` to ``b`` with the weights at ``weights``: the pictures are
    padded to a multiple of 8 pixels, and to at least :data:`RAFT_MIN_SIDE` (its
    correlation pyramid needs that many), then the flow is cropped back."""
    import torch
    import torch.nn.functional as F

    model = load_raft(str(Path(weights).expanduser()), device)
    height, width = a.shape[:2]
    pad_h = max(RAFT_MIN_SIDE, height + -height % 8) - height
    pad_w = max(RAFT_MIN_SIDE, width + -width % 8) - width

    def tensor(image: np.ndarray) -> torch.Tensor:
        pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        pixels = F.pad(pixels, (0, pad_w, 0, pad_h), mode="replicate")
        return (pixels / 127.5 - 1.0).to(device)

    with torch.inference_mode():
        predictions = model(tensor(a), tensor(b))
    flow = predictions[-1][0, :, :height, :width].permute(1, 2, 0)
    return np.ascontiguousarray(flow.float().cpu().numpy())


@cache
def load_raft(path: str, device: str) -> Any:
    """torchvision's RAFT (large) with the state dict at ``path``, once per process."""
    import torch
    from torchvision.models.optical_flow import raft_large  # type: ignore[import-untyped]

    if not Path(path).is_file():
        raise RotoscopeError(
            f"cadence.flow=raft needs RAFT's weights: '{path}' is not a file",
            "set cadence.raft_weights to torchvision's raft_large weights, or use "
            "cadence.flow=dis_medium",
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = raft_large(weights=None, progress=False)
        model.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RotoscopeError(
            f"cadence.raft_weights '{path}' is not a RAFT (large) state dict: {first}",
            "use torchvision's raft_large weights (raft_large_C_T_SKHT_V2-ff5fadd5.pth)",
        ) from exc
    return model.eval().to(device)
