"""Which picture each output frame shows when the delivered rate differs from the render's.

``output.interpolate=N`` delivers N frames per rendered frame, ``output.fps=F`` any rate,
and ``output.slow_motion=S`` plays everything S times slower: output frame ``j`` shows the
moment ``j * rate / (delivered rate * S)`` of the rendered clip, in rendered frames: a
rendered frame where that is a whole number, else the picture a fraction of the way to
the next one. The clip keeps its duration (``count / rate`` seconds, times S): the last
rendered frame is shown for a whole frame time, as before, so the audio stays in sync.
Rates are exact fractions (30000/1001 stays that), so moments land exactly on rendered
frames wherever they should.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from pipeline.config.schema import OutputConfig
from pipeline.errors import RotoscopeError

# A double holding p/q is recovered exactly for any q up to this bound (as in encode).
_MAX_DENOMINATOR = 100_000


@dataclass(frozen=True)
class Moment:
    """One output frame: rendered frame ``first``, or ``fraction`` of the way to the next."""

    first: int
    fraction: Fraction = Fraction(0)


@dataclass(frozen=True)
class Timeline:
    """The output frames of a clip and the rate they play at."""

    moments: list[Moment]
    rate: Fraction

    @property
    def retimed(self) -> bool:
        """Whether the output differs from one frame per rendered frame."""
        return any(moment.fraction or moment.first != number for number, moment in
                   enumerate(self.moments))  # fmt: skip


def exact(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(_MAX_DENOMINATOR)


def delivered_rate(rate: float, output: OutputConfig) -> Fraction:
    """The rate the output plays at: the render's times ``output.interpolate``, or
    ``output.fps``."""
    if output.fps is not None:
        return exact(output.fps)
    return exact(rate) * output.interpolate


def timeline(count: int, rate: float, output: OutputConfig) -> Timeline:
    """The moments of ``count`` rendered frames at ``rate`` under ``output``'s rate,
    interpolation factor and slow motion."""
    played = delivered_rate(rate, output)
    step = exact(rate) / (played * output.slow_motion)  # rendered frames per output frame
    total = max(1, round(count / step))
    moments = []
    for number in range(total):
        position = number * step
        first = math.floor(position)
        if first >= count - 1:  # the last frame holds to the end
            moments.append(Moment(count - 1))
        else:
            moments.append(Moment(first, position - first))
    return Timeline(moments, played)


def check_timing_options(output: OutputConfig) -> None:
    """Refuse frame rate settings that contradict each other or cannot be met."""
    for key, value in (("output.interpolate", output.interpolate),
                       ("output.slow_motion", output.slow_motion)):  # fmt: skip
        if not 1 <= value <= 16:
            raise RotoscopeError(f"{key}={value} must be 1 to 16", f"for example {key}=2")
    if output.fps is not None and not (math.isfinite(output.fps) and 0 < output.fps <= 1000):
        raise RotoscopeError(
            f"output.fps={output.fps} is not a frame rate", "for example output.fps=60"
        )
    if output.fps is not None and output.interpolate > 1:
        raise RotoscopeError(
            f"output.interpolate={output.interpolate} and output.fps={output.fps:g} both set "
            "the delivered frame rate",
            "give one: output.interpolate=2 doubles the render's rate",
        )
