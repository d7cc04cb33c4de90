"""ControlNet inpaint units: the control image an inpaint ControlNet reads.

An inpaint ControlNet (``control_v11p_sd15_inpaint``) was trained on the frame with its
masked pixels marked as -1 (every other pixel in 0..1): it sees what is to be repainted
and the surroundings it must match, as A1111's ``inpaint_only`` preprocessor gives it.
Such a unit is configured with ``preprocessor: inpaint`` (its map is the frame itself,
cached like any map); the mask is put into it here, for the call, at the call's size.
"""

from __future__ import annotations

import numpy as np
import torch


def inpaint_control_image(picture: np.ndarray, mask: np.ndarray) -> torch.Tensor:
    """``picture`` (RGB uint8) as a 1 x 3 x H x W tensor in 0..1, -1 where ``mask`` is at
    least half white (where the frame is rendered)."""
    image = torch.from_numpy(picture.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    masked = torch.from_numpy(mask >= 128)[None, None].expand_as(image)
    return torch.where(masked, torch.tensor(-1.0), image)
