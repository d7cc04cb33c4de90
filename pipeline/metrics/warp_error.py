"""The warp error of Lai et al. 2018 ("Learning Blind Video Temporal Consistency").

Flicker is what changes between two frames beyond what the motion explains. The flow is
estimated between consecutive *source* frames (estimating it between outputs would
reward flicker the flow can explain away); output frame ``t`` is backward-warped onto
frame ``t-1`` with the forward flow ``t-1 -> t``, and the squared difference to output
frame ``t-1``, over RGB in [0, 1], is averaged over the pixels of frame ``t-1`` whose
flow is reliable (forward-backward consistent and landing inside frame ``t``). The
same number for the source itself is the reference: what interpolation and flow error
leave on a clip that does not flicker. It is not a floor: a smooth output (coherence
carries detail along the flow, img2img softens texture) often scores below it.

A frozen or blurred video would score well, so :func:`detail` (the variance of the
Laplacian of the grey image) goes with it: coherence must keep the picture's detail.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.animation.flow import FlowPair


def as_float(image: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] as float32 (uint8 images are scaled)."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32)


def pair_warp_error(
    previous: np.ndarray,
    current: np.ndarray,
    pair: FlowPair,
    region: np.ndarray | None = None,
) -> float | None:
    """The warp error of one pair of frames (``pair`` is the *source* flow between them),
    over the pixels of ``region`` (a boolean mask of frame ``t-1``) if given.

    None when no pixel's flow is reliable (a cut, a blank frame, a whip pan): there is
    nothing to compare, and counting such a pair as perfectly steady would pull the
    average down.
    """
    mask = pair.reliable_previous if region is None else pair.reliable_previous & region
    if not mask.any():
        return None
    warped = pair.warp_current(as_float(current))
    squared = np.mean((as_float(previous) - warped) ** 2, axis=-1)
    return float(squared[mask].mean())


def detail(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image in [0, 1]: near 0 for blur and flat
    colour, higher for texture and edges."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(grey / 255.0, cv2.CV_64F).var())
