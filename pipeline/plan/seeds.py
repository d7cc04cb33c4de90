"""Per-frame seeds from a behaviour, a base seed and the frame index, nothing else.

Deforum advances its seed with mutable state as frames render, so a resumed run or a
different batch layout can drift. Here every behaviour is a closed-form function of the
frame index, which makes a frame's seed (and so its noise) the same whether it is
rendered first, last, alone, in a batch, after a resume, or on another machine.
"""

from __future__ import annotations

import numpy as np

from pipeline.config.schema import SeedBehavior

SEED_LIMIT = 2**64  # torch generators take seeds below 2**64; larger values wrap
RANDOM_SEED_RANGE = 2**32  # drawn seeds stay 32-bit, the range A1111 and Deforum use


def frame_seeds(
    behavior: SeedBehavior,
    base: int,
    count: int,
    iter_n: int = 1,
    scheduled: np.ndarray | None = None,
) -> list[int]:
    """Seeds for frames 0..count-1; ``scheduled`` is needed for ``schedule``."""
    if iter_n < 1:
        raise ValueError("seed_iter_n must be at least 1")
    frames = range(count)
    if behavior is SeedBehavior.random:
        return [_random_seed(base, k) for k in frames]
    if behavior is SeedBehavior.schedule:
        if scheduled is None:
            raise ValueError("seed behaviour 'schedule' needs the seed schedule's values")
        # half up, the same rounding as steps; Python ints so large seeds cannot overflow
        return [int(np.floor(value + 0.5)) % SEED_LIMIT for value in scheduled]
    offset = {
        SeedBehavior.fixed: lambda k: 0,
        SeedBehavior.iter: lambda k: k // iter_n,
        SeedBehavior.ladder: lambda k: k // 2 + 2 * (k % 2),
        SeedBehavior.alternate: lambda k: k % 2,
    }[behavior]
    return [(base + offset(k)) % SEED_LIMIT for k in frames]


def _random_seed(base: int, frame: int) -> int:
    """A seed drawn from (base, frame) alone: PCG64 keyed by both numbers."""
    return int(np.random.Generator(np.random.PCG64([base, frame])).integers(RANDOM_SEED_RANGE))
