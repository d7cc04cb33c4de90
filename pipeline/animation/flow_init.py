"""Flow-guided init: the previous output, carried along the source's motion, as img2img's
starting picture where the motion is known.

With every frame starting from its own source frame, img2img re-invents the look each
frame and it boils. Starting instead from what was already drawn, moved to where the
source says it went, lets the denoiser refine rather than repaint::

    m    = soften(reliable)               # 0 where the flow is unknown (occlusions)
    init = source * (1 - w m) + warp(previous_output) * (w m)

so areas the camera reveals, and anything the flow cannot follow, start from the source
frame. The mask is eroded and blurred so the seam between carried and fresh content
does not show, and never trusts a pixel the hard mask rejects.
"""

from __future__ import annotations

import numpy as np

from pipeline.animation.flow import FlowPair, soften_mask

# Pull the carried region this many pixels away from occlusion edges, and blur its edge.
MASK_ERODE = 1
MASK_BLUR = 1.0


def flow_init_image(
    source: np.ndarray, previous_output: np.ndarray, pair: FlowPair, weight: float
) -> np.ndarray:
    """The init image (RGB uint8) of frame ``t``: ``source`` is source frame ``t``,
    ``previous_output`` output frame ``t-1``, ``pair`` the source flow between them,
    ``weight`` in [0, 1] how much of the carried output goes in."""
    if weight <= 0.0:
        return source.copy()
    mask = soften_mask(pair.reliable, MASK_ERODE, MASK_BLUR)[..., None] * float(weight)
    carried = pair.warp_previous(previous_output.astype(np.float32))
    init = source.astype(np.float32) * (1.0 - mask) + carried * mask
    return np.clip(init, 0, 255).round().astype(np.uint8)
