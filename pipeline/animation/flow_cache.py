"""Source flow, computed once per pair of frames and kept in the run folder.

Both the render (coherence) and the metrics stage need the flow between every pair of
consecutive source frames; a resumed or re-run job needs it again. Each pair is stored in
one file (the run folder names it: ``RunFolder.flow_pair``) with a key that hashes both
source frames' pixels and the estimator's settings, so a changed input or a new estimator
recomputes it, and a stored pair is used only for the frames it was made from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.animation import flow as flow_module
from pipeline.animation.flow import FlowPair, flow_pair
from pipeline.atomic import atomic_path

# Changes whenever the estimator or its settings change, so cached pairs are redone.
ESTIMATOR = "dis-refined-v1:" + flow_module.DIS_SETTINGS


def pair_key(previous: np.ndarray, current: np.ndarray) -> str:
    """What a stored pair was made from: both frames' exact pixels and the estimator."""
    digest = hashlib.sha256(ESTIMATOR.encode())
    for image in (previous, current):
        digest.update(str(image.shape).encode())
        digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


class FlowCache:
    """Flow pairs by the index of their later frame, each in the file ``path_of(index)``."""

    def __init__(self, path_of: Callable[[int], Path]) -> None:
        self.path_of = path_of
        self.computed = 0  # pairs estimated (not read from disk) by this object

    def pair(self, index: int, previous: np.ndarray, current: np.ndarray) -> FlowPair:
        """The flow between source frames ``index-1`` (``previous``) and ``index``."""
        key = pair_key(previous, current)
        path = self.path_of(index)
        stored = self._read(path, key)
        if stored is not None:
            return stored
        pair = flow_pair(previous, current)
        with atomic_path(path, durable=False) as tmp, tmp.open("wb") as handle:
            np.savez_compressed(
                handle,
                key=np.array(key),
                forward=pair.forward.astype(np.float16),
                backward=pair.backward.astype(np.float16),
            )
        self.computed += 1
        return pair

    def stored(self, index: int) -> FlowPair | None:
        """The pair stored for ``index``, whatever frames it was made from (for tools that
        read a finished run), or None."""
        return self._read(self.path_of(index), None)

    @staticmethod
    def _read(path: Path, key: str | None) -> FlowPair | None:
        """A stored pair made from the frames ``key`` names (any, for None), or None
        (missing, stale or damaged)."""
        try:
            with np.load(path) as stored:
                if key is not None and str(stored["key"]) != key:
                    return None
                return FlowPair(
                    stored["forward"].astype(np.float32), stored["backward"].astype(np.float32)
                )
        except (OSError, KeyError, ValueError):
            return None
