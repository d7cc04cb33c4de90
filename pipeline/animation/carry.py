"""The previous output carried along the source's motion into the current frame.

Two uses (``coherence.flow_init`` and ``coherence.flow_output``):

* **flow-guided init**: with every frame starting from its own source frame, img2img
  re-invents the look each frame and it boils; starting instead from what was already
  drawn, moved to where the source says it went, lets the denoiser refine rather than
  repaint. The image is the source frame, the result the init picture.
* **output blend**: the rendered frame itself is blended with the carried previous
  output, a plain temporal smoothing along the motion.

Either way::

    m      = soften(reliable)             # 0 where the flow is unknown (occlusions)
    result = image * (1 - w m) + warp(previous_output) * (w m)

so areas the camera reveals, and anything the flow cannot follow, keep the current
image. The mask is eroded and blurred so the seam between carried and fresh content does
not show, and never trusts a pixel the hard mask rejects. The warp is Lanczos: carried
again every frame, a bilinear resampling would blur the picture more each time.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.animation.flow import FlowPair, soften_mask

# Pull the carried region this many pixels away from occlusion edges, and blur its edge.
MASK_ERODE = 1
MASK_BLUR = 1.0


def carry(
    image: np.ndarray, previous_output: np.ndarray, pair: FlowPair, weight: float
) -> np.ndarray:
    """``image`` (RGB uint8, frame ``t``) with the previous output moved onto it blended in,
    ``weight`` of the way where the flow is reliable (softened mask), untouched elsewhere."""
    if weight <= 0.0:
        return image.copy()
    mask = soften_mask(pair.reliable, MASK_ERODE, MASK_BLUR)[..., None] * float(weight)
    carried = pair.warp_previous(previous_output.astype(np.float32), cv2.INTER_LANCZOS4)
    blended = image.astype(np.float32) * (1.0 - mask) + carried * mask
    return np.clip(blended, 0, 255).round().astype(np.uint8)
