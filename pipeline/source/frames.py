"""Plain data passed between the source, the renderer and the writer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One selected input frame.

    ``index`` counts selected frames from 0 (it is the output frame number);
    ``source_index`` is the frame's position in the source before selection;
    ``time`` is its timestamp in seconds in the source; ``name`` is the source file
    name for image inputs (used to keep names when writing an image folder) and
    ``None`` for video; ``image`` is an RGB ``uint8`` array of shape (H, W, 3), already
    resized to the render size.
    """

    index: int
    source_index: int
    time: float
    name: str | None
    image: np.ndarray
