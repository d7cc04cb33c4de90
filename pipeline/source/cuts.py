"""Scene cuts: where consecutive source frames stop showing the same shot.

Temporal coherence carries each frame's look into the next; across a hard cut that
would paint the new shot with the old one's colours. A cut is found the classic way:
the colour histograms (hue-saturation, in HSV) of consecutive frames are compared, and
a Bhattacharyya distance above a threshold (0 = same distribution, 1 = disjoint) marks
a cut. It is cheap (a 32x32-bin histogram per frame), needs no weights, and is
insensitive to motion within a shot, which moves pixels but keeps their colours.
"""

from __future__ import annotations

import cv2
import numpy as np

HUE_BINS, SATURATION_BINS = 32, 32


def colour_histogram(image: np.ndarray) -> np.ndarray:
    """The normalised hue-saturation histogram of an RGB uint8 frame."""
    hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1], None, [HUE_BINS, SATURATION_BINS], [0, 180, 0, 256])
    return np.asarray(cv2.normalize(histogram, np.empty_like(histogram), 1.0, 0.0, cv2.NORM_L1))


class CutDetector:
    """Fed frames in order, remembers which ones start a new shot."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.cuts: list[int] = []
        self._previous: np.ndarray | None = None

    def add(self, index: int, image: np.ndarray) -> None:
        histogram = colour_histogram(image)
        if self._previous is not None:
            distance = cv2.compareHist(self._previous, histogram, cv2.HISTCMP_BHATTACHARYYA)
            if distance > self.threshold:
                self.cuts.append(index)
        self._previous = histogram
