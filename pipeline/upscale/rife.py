"""RIFE's in-between frames for the assemble stage (``output.interpolation=rife``).

The assemble stage imports no torch; it reaches RIFE through this class, which loads the
network (:mod:`pipeline.models.rife`) when the first in-between frame is wanted, on
``runtime.device`` at ``runtime.dtype`` (half precision on CUDA by default). Its identity
(the weights file's hash and the precision) goes into the in-between frames' keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.config.schema import RuntimeConfig
from pipeline.upscale.delivery import file_sha256

if TYPE_CHECKING:
    from pipeline.models.rife import LoadedRife


class RifeInBetweens:
    """In-between frames by RIFE 4.6 from ``path``."""

    def __init__(self, path: Path, runtime: RuntimeConfig) -> None:
        from pipeline.models.devices import resolve_device, resolve_dtype

        self.path = path
        self.device = resolve_device(runtime.device)
        self.dtype = resolve_dtype(runtime.dtype, self.device)
        precision = str(self.dtype).removeprefix("torch.")
        self.identity = f"rife-4.6:sha256:{file_sha256(path)}:{precision}"
        self._loaded: LoadedRife | None = None

    def make(
        self, first: np.ndarray, second: np.ndarray, fractions: Sequence[Fraction]
    ) -> list[np.ndarray]:
        if self._loaded is None:
            from pipeline.models.rife import load_rife

            self._loaded = load_rife(self.path, self.device, self.dtype)
        return self._loaded.between(first, second, [float(t) for t in fractions])
