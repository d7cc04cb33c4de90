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


def frame_subseeds(values: np.ndarray, base: int) -> list[int]:
    """A1111's variation seeds for frames 0..len(values)-1 from the ``subseed`` schedule's
    values: rounded half up; -1 a subseed drawn from (base seed, frame) alone, as A1111
    draws a random one for each generation (so each frame gets its own, and the same one
    on every run)."""
    rounded = [int(np.floor(value + 0.5)) for value in values]
    return [
        _random_seed(base, frame, SUBSEED_STREAM) if value == -1 else value % SEED_LIMIT
        for frame, value in enumerate(rounded)
    ]


# Keys the random subseeds apart from the random seeds of seed_behavior=random.
SUBSEED_STREAM = 1


def _random_seed(base: int, frame: int, *stream: int) -> int:
    """A seed drawn from (base, frame) alone: PCG64 keyed by both numbers (and a stream
    number, for the subseeds)."""
    key = [base, frame, *stream]
    return int(np.random.Generator(np.random.PCG64(key)).integers(RANDOM_SEED_RANGE))
