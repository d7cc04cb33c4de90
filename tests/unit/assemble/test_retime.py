"""Retiming: which picture each output frame shows (count, rate, duration), and the
in-between frames cached by the keys of their two neighbours."""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.assemble.interpolate import check_interpolation_options, retimed_frames
from pipeline.assemble.timeline import Moment, check_timing_options, timeline
from pipeline.config.schema import FrameInterpolation, OutputConfig, OutputFormat, RunConfig
from pipeline.errors import RotoscopeError
from pipeline.records.run_folder import RunFolder


@pytest.mark.parametrize(
    ("rate", "output", "frames", "played"),
    [
        (24, OutputConfig(interpolate=2), 20, Fraction(48)),
        (24, OutputConfig(interpolate=3), 30, Fraction(72)),
        (24, OutputConfig(fps=60), 25, Fraction(60)),
        (24, OutputConfig(fps=12), 5, Fraction(12)),  # fewer frames, same duration
        (30000 / 1001, OutputConfig(interpolate=2), 20, Fraction(60000, 1001)),
        (24, OutputConfig(), 10, Fraction(24)),
    ],
)
def test_the_output_keeps_the_clips_duration(
    rate: float, output: OutputConfig, frames: int, played: Fraction
) -> None:
    line = timeline(10, rate, output)
    assert (len(line.moments), line.rate) == (frames, played)
    rendered = Fraction(10) / Fraction(rate).limit_denominator(100_000)
    assert abs(Fraction(len(line.moments)) / line.rate - rendered) <= 1 / (2 * line.rate)
    assert line.retimed is (frames != 10)


def test_moments_land_on_rendered_frames_and_halfway_between() -> None:
    line = timeline(3, 30000 / 1001, OutputConfig(interpolate=2))
    half = Fraction(1, 2)
    assert line.moments == [
        Moment(0),
        Moment(0, half),
        Moment(1),
        Moment(1, half),
        Moment(2),
        Moment(2),
    ]
    assert [m.first for m in timeline(10, 24, OutputConfig(fps=12)).moments] == [0, 2, 4, 6, 8]


def test_slow_motion_makes_more_frames_at_the_same_rate() -> None:
    line = timeline(10, 24, OutputConfig(interpolate=2, slow_motion=2))
    assert (len(line.moments), line.rate) == (40, 48)  # twice as long
    assert line.moments[1] == Moment(0, Fraction(1, 4))


@pytest.mark.parametrize(
    ("output", "key"),
    [
        (OutputConfig(interpolate=0), "output.interpolate=0"),
        (OutputConfig(slow_motion=40), "output.slow_motion=40"),
        (OutputConfig(fps=-5), "output.fps=-5"),
        (OutputConfig(fps=60, interpolate=2), "output.interpolate=2 and output.fps=60"),
    ],
)
def test_contradicting_rates_are_refused(output: OutputConfig, key: str) -> None:
    with pytest.raises(RotoscopeError, match=key.replace(".", r"\.")):
        check_timing_options(output)


class CountingInBetweens:
    """Grey pictures between two frames, counting the pairs it is asked for."""

    identity = "counting"

    def __init__(self) -> None:
        self.pairs: list[tuple[int, int]] = []

    def make(
        self, first: np.ndarray, second: np.ndarray, fractions: Sequence[Fraction]
    ) -> list[np.ndarray]:
        self.pairs.append((int(first[0, 0, 0]), int(second[0, 0, 0])))
        return [np.full_like(first, 128) for _ in fractions]


def test_in_between_frames_are_cached_by_their_neighbours_keys(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    frames = []
    for number in range(4):
        path = tmp_path / f"{number}.png"
        Image.fromarray(np.full((8, 8, 3), number, np.uint8)).save(path)
        frames.append(path)
    keys = [f"{number:064x}" for number in range(4)]
    line = timeline(4, 24, OutputConfig(interpolate=2))
    method = CountingInBetweens()
    paths, out_keys = retimed_frames(folder, frames, keys, line, method, None, 60.0)
    assert method.pairs == [(0, 1), (1, 2), (2, 3)] and len(paths) == 8
    assert paths[0::2] == frames and all(p.parent == folder.between for p in paths[1:7:2])
    method.pairs.clear()
    again, _ = retimed_frames(folder, frames, keys, line, method, None, 60.0)
    assert method.pairs == [] and again == paths  # all found by key
    keys[1] = "f" * 64  # frame 1 changed: its two pairs are made again, no other
    retimed_frames(folder, frames, keys, line, method, None, 60.0)
    assert method.pairs == [(0, 1), (1, 2)]
    assert out_keys[-1] == out_keys[-2] == "0" * 63 + "3"  # the last frame holds its time


@pytest.mark.parametrize(
    ("formats", "refusal"),
    [
        ([OutputFormat.mp4, OutputFormat.images], "output=images encodes nothing"),
        ([OutputFormat.prores_alpha], "cannot carry the alpha of output=prores_alpha"),
    ],
)
def test_minterpolate_is_refused_where_it_cannot_make_every_format(
    formats: list[OutputFormat], refusal: str
) -> None:
    output = OutputConfig(format=formats, interpolate=2)
    output.interpolation = FrameInterpolation.minterpolate
    with pytest.raises(RotoscopeError, match=re.escape(refusal)):
        check_interpolation_options(RunConfig(output=output))
    output.interpolation = FrameInterpolation.flow
    check_interpolation_options(RunConfig(output=output))
