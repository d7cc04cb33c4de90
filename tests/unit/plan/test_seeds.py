"""Seed behaviours: closed-form per frame, so batch, resume or device cannot shift them."""

from __future__ import annotations

import pytest

from pipeline.config.schema import SeedBehavior
from pipeline.plan.seeds import frame_seeds


@pytest.mark.parametrize(
    ("behavior", "expected"),
    [
        (SeedBehavior.fixed, [7, 7, 7, 7, 7, 7]),
        (SeedBehavior.iter, [7, 8, 9, 10, 11, 12]),
        (SeedBehavior.ladder, [7, 9, 8, 10, 9, 11]),
        (SeedBehavior.alternate, [7, 8, 7, 8, 7, 8]),
    ],
)
def test_behaviours(behavior: SeedBehavior, expected: list[int]) -> None:
    assert frame_seeds(behavior, 7, 6) == expected


def test_iter_every_n_frames() -> None:
    assert frame_seeds(SeedBehavior.iter, 100, 7, iter_n=3) == [100, 100, 100, 101, 101, 101, 102]


def test_random_is_reproducible_and_independent_of_length() -> None:
    long = frame_seeds(SeedBehavior.random, 5, 20)
    assert frame_seeds(SeedBehavior.random, 5, 8) == long[:8]
    assert len(set(long)) == 20
    assert frame_seeds(SeedBehavior.random, 6, 8) != long[:8]
    assert all(0 <= seed < 2**32 for seed in long)


def test_schedule_rounds_half_up() -> None:
    assert frame_seeds(SeedBehavior.schedule, 0, 4, scheduled=[1.5, 2.49, 2.5, 3.0]) == [2, 2, 3, 3]


@pytest.mark.parametrize("behavior", list(SeedBehavior))
def test_prefix_does_not_depend_on_frame_count(behavior: SeedBehavior) -> None:
    values = [float(v) for v in range(30)]
    full = frame_seeds(behavior, 11, 30, iter_n=2, scheduled=values)
    assert frame_seeds(behavior, 11, 9, iter_n=2, scheduled=values[:9]) == full[:9]
