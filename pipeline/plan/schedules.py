"""Keyframe schedules: every numeric per-frame value, written in Deforum's syntax.

Strength, guidance scale, steps, seed, zoom, angle, translation, noise and ControlNet
weights are all schedule strings, so what users paste from Deforum works here and one set
of rules covers every value. The rules below are the contract; the README repeats them.

Syntax
    ``0:(0.65), 60:(0.45)``: comma-separated ``key:(value)`` pairs. Whitespace (line
    breaks included) may go anywhere and a trailing comma is allowed. A value is written in
    parentheses, as in Deforum; a bare number is also accepted (``0:0.5``), but any other
    bare expression must be parenthesised. A schedule that is just a number (``"0.5"``,
    ``"7"``) is a constant. Schedules are tokenized and parsed, not split on commas, so
    ``0:(clamp(t/10, 0, 1))`` works.

Keys
    A key is a frame number or an expression of ``max_f`` (last frame index), ``fps``,
    ``s`` (base seed) and seconds (``2.5s`` is ``2.5 * fps`` frames), e.g. ``max_f/2``
    or ``1s + 12``; ``t`` cannot be used in a key. Keys may be wrapped in quotes
    (``"max_f-1":(s)``, as in Deforum's default seed schedule). A key is evaluated when
    the schedule is parsed and rounded to the nearest integer, halves away from zero.
    Negative keys and keys past the last frame are kept and shape the curve: over 50
    frames, ``0:(0), 100:(1)`` ends at 0.49 (Deforum drops such keys; over the same 50
    frames it would hold 0). When the same frame is keyed twice, the later one wins.

Values
    Expressions of ``t`` (frame index), ``max_f``, ``s``, ``fps``; numbers (``1e-3``,
    ``.5``), seconds (``2s`` = ``2 * fps``), unary ``+ -``, ``+ - * / % **`` (``**`` is
    right-associative and binds tighter than a unary minus on its left, as in Python:
    ``-2**2 = -4``; ``%`` takes the divisor's sign), comparisons ``< <= > >= == !=``
    giving 1.0 or 0.0 (chains like ``0 < t < 10`` as in Python), constants ``pi`` and
    ``e``, and functions sin, cos, tan, asin, acos, atan, atan2(y, x), sqrt, abs, exp,
    log (natural), log10, floor, ceil, round (halves away from zero), min and max (two or
    more arguments), clamp(x, lo, hi) = min(max(x, lo), hi), and where(cond, a, b)
    (``a`` where ``cond != 0``; only the chosen branch has to be defined, so
    ``where(t > 0, 1/t, 0)`` is fine on frame 0). numexpr's spellings arcsin, arccos,
    arctan and arctan2 are accepted too. All arithmetic is float64; seeds above 2**53
    lose precision inside expressions.

    A value that is a plain number (optionally signed) is a numeric key; anything else,
    even a constant like ``1/2`` or ``pi``, is an expression key (as in Deforum).

Interpolation between keys (``linear`` by default, ``hold`` or ``cubic``)
    - linear: straight lines between neighbouring keys;
    - hold: a step function, the value of the last key at or before the frame;
    - cubic: a cubic Hermite curve through every key, with Catmull-Rom tangents
      ``(y[i+1] - y[i-1]) / (x[i+1] - x[i-1])`` at interior keys and zero tangents at the
      first and last keys. Two keys therefore give an ease-in/ease-out, not a line. The
      curve can overshoot between keys (past the keys' range) where values change
      direction or spacing is uneven; use linear or hold where a bound matters.

Expression keys
    An expression key is evaluated on every frame from its key up to (not including) the
    next key. Its value at its own key frame is its anchor: frames between an earlier key
    and an expression key interpolate toward that anchor, and cubic tangents use it.
    After the last key, a numeric last key holds flat and an expression last key keeps
    being evaluated to the end. An expression key must be defined on its own frame.

Before the first key
    Every frame before the first key takes the first key's value (for an expression key,
    its value at its key frame).

Errors
    Everything a user can get wrong raises :class:`ScheduleError`: the first line is
    ``<where>: <schedule name>: <problem> at column N``, then the schedule text, a caret
    under the position, and what is allowed there. Errors that happen on a frame
    (``sqrt(-1)``, ``log(0)``, division by zero, overflow) name the frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.config.schema import Interpolation
from pipeline.errors import RotoscopeError
from pipeline.plan.expressions import (
    Expression,
    ExpressionError,
    Token,
    TokenStream,
    parse_expression,
    read_expression,
    render_error,
    round_half_away_from_zero,
    unexpected,
)

__all__ = [
    "Expression",
    "Keyframe",
    "Schedule",
    "ScheduleError",
    "evaluate_schedule",
    "parse_expression",
    "parse_schedule",
    "schedule_values",
]

_SCHEDULE_HELP = "a schedule is key:(value) pairs, e.g. 0:(0.65), 60:(0.45), or one number"
_SEPARATOR_HELP = (
    "separate keyframes with commas: 0:(0.65), 60:(0.45); "
    "wrap a whole expression in parentheses: 0:(t/10)"
)
_KEY_HELP = "keys may use numbers, max_f, fps, s, seconds like 2.5s and arithmetic"


class ScheduleError(RotoscopeError):
    """A schedule the user wrote cannot be parsed or evaluated.

    ``str(err)``: ``<where>: <name>: <problem> at column N``, then the schedule text and a
    caret under the position, then what is allowed. ``where`` is the file the schedule
    came from, or "command line".
    """

    def __init__(
        self,
        where: str,
        name: str,
        problem: str,
        source: str | None = None,
        position: int | None = None,
        allowed: str | None = None,
    ) -> None:
        self.where = where
        self.name = name
        self.problem = problem
        self.source = source
        self.position = position
        self.allowed = allowed
        super().__init__(render_error(f"{where}: {name}: {problem}", source, position, allowed))

    @classmethod
    def from_expression(cls, error: ExpressionError, name: str, where: str) -> ScheduleError:
        """Reword an expression error for a schedule, naming the frame it failed on."""
        problem = error.problem
        if "t" in error.at:
            problem = f"{problem} on frame {int(error.at['t'])}"
        return cls(where, name, problem, error.source, error.position, error.allowed)


@dataclass(frozen=True)
class Keyframe:
    """One ``key:(value)`` pair; ``value`` is None when the value is an expression.

    ``expression`` is the parsed value (positions into the whole schedule text, so errors
    on a frame point into what the user wrote); it is filled for expression keys by
    :func:`parse_schedule`, and parsed from ``text`` when a Keyframe is built by hand.
    """

    frame: int
    text: str
    value: float | None
    expression: Expression | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: keyframes sorted by frame, one per frame (the later one won).

    ``where`` (the file it came from, or "command line") is kept so that errors found
    while evaluating still say where to look.
    """

    name: str
    text: str
    keyframes: tuple[Keyframe, ...]
    where: str = "command line"


# ---------------------------------------------------------------------------- parsing


def parse_schedule(
    text: str, name: str, where: str = "command line", *, fps: float, max_f: int, seed: int
) -> Schedule:
    """Parse schedule ``text`` (named ``name``, from ``where``) into sorted keyframes.

    Keys are evaluated here with ``max_f``, ``fps`` and ``s = seed``, and rounded; values
    are only parsed. Raises ScheduleError with a caret at the problem.
    """
    key_variables = {"max_f": float(max_f), "fps": float(fps), "s": float(seed)}
    try:
        keyframes = _read_keyframes(text, key_variables)
    except ExpressionError as error:
        raise ScheduleError.from_expression(error, name, where) from error
    return Schedule(name, text, keyframes, where)


def _read_keyframes(text: str, key_variables: dict[str, float]) -> tuple[Keyframe, ...]:
    """``key:(value), ...`` or one plain number, read from a single token stream so that
    commas inside values (function arguments) never split a keyframe."""
    stream = TokenStream(text)
    if stream.peek().kind == "end":
        raise stream.error("empty schedule", len(text) - len(text.lstrip()), _SCHEDULE_HELP)
    if _is_plain_number(stream.tokens[:-1]):
        constant = read_expression(stream).evaluate({})
        return (Keyframe(0, text.strip(), float(constant)),)
    by_frame: dict[int, Keyframe] = {}
    literal_keys: dict[int, str] = {}  # frame -> its key, where written as a number
    while True:
        key_start = stream.index
        key = _read_key(stream)
        colon = stream.peek()
        if not stream.at_op(":"):
            problem = f"expected ':' after the key, found {colon.describe()}"
            raise stream.error(problem, colon.position, _SCHEDULE_HELP)
        literal = _is_plain_number(
            [token for token in stream.tokens[key_start : stream.index] if token.kind != "op"
             or token.text in ("+", "-")]
        )  # fmt: skip
        stream.next()
        frame = _key_frame(stream, key, key_variables)
        if literal and frame in literal_keys:  # 4 and 4.0: which one was meant?
            first = stream.tokens[key_start]
            problem = f"frame {frame} has two keyframes ('{literal_keys[frame]}' and '{key.text}')"
            raise stream.error(problem, first.position, "keep one of them")
        if literal:
            literal_keys[frame] = key.text
        # an expression key landing on a frame another key names (max_f on a one-frame
        # clip) replaces it: the later one wins, as in Deforum
        by_frame[frame] = _read_value(stream, frame, colon)
        after = stream.next()
        if after.kind == "end" or (after.text == "," and stream.peek().kind == "end"):
            return tuple(by_frame[number] for number in sorted(by_frame))
        if after.text != ",":
            problem = f"unexpected {after.describe()} after the value"
            raise stream.error(problem, after.position, _SEPARATOR_HELP)


def _is_plain_number(tokens: list[Token]) -> bool:
    """A numeric literal with an optional sign: what interpolates as a number."""
    if tokens and tokens[0].kind == "op" and tokens[0].text in ("+", "-"):
        tokens = tokens[1:]
    return len(tokens) == 1 and tokens[0].kind == "number"


def _read_key(stream: TokenStream) -> Expression:
    """The key expression, optionally in quotes (Deforum writes ``"max_f-1":(s)``)."""
    token = stream.peek()
    if token.kind == "op" and token.text not in ("+", "-", "(", '"', "'"):
        raise stream.error(f"expected a key (a frame), found {token.describe()}", token.position)
    quote = stream.next() if stream.at_op('"', "'") else None
    expression = read_expression(stream)
    if quote is not None:
        if not stream.at_op(quote.text):
            problem = f"missing closing {quote.text} for the key"
            raise stream.error(problem, stream.peek().position, _KEY_HELP)
        stream.next()
    return expression


def _key_frame(stream: TokenStream, key: Expression, key_variables: dict[str, float]) -> int:
    """The frame a key stands for: evaluated now, rounded half away from zero."""
    if "t" in key.variables:
        problem = "a key cannot use t (the frame index)"
        raise stream.error(problem, key.position_of("t"), _KEY_HELP)
    return round_half_away_from_zero(float(key.evaluate(key_variables)))


def _read_value(stream: TokenStream, frame: int, colon: Token) -> Keyframe:
    """The value after ``colon``: ``(expression)``, or a bare signed number.

    Whether it is a plain number is decided on its tokens, not its value, so ``1/2`` and
    ``pi`` stay expression keys (evaluated per frame, as Deforum does).
    """
    source = stream.source
    token = stream.peek()
    first = stream.index
    if stream.at_op("("):
        open_paren = stream.next()
        first = stream.index
        expression = read_expression(stream)
        last = stream.index
        close = stream.peek()
        if not stream.at_op(")"):
            if close.kind == "end":
                problem = "unbalanced parentheses: this '(' is never closed"
                raise stream.error(problem, open_paren.position)
            raise unexpected(stream, close, "')' to end the value")
        stream.next()
        text = source[open_paren.end : close.position].strip()
    elif token.kind == "number" or stream.at_op("+", "-"):
        expression = read_expression(stream)
        last = stream.index
        text = expression.text
        if not _is_plain_number(stream.tokens[first:last]):
            problem = "an expression value must be in parentheses"
            raise stream.error(problem, token.position, f"write it as {frame}:({text})")
    else:
        found = "the text ends" if token.kind == "end" else f"found {token.describe()}"
        problem = f"expected a value in parentheses after ':', but {found}"
        raise stream.error(problem, token.position if token.kind != "end" else colon.end)
    if _is_plain_number(stream.tokens[first:last]):
        return Keyframe(frame, text, float(expression.evaluate({})))
    return Keyframe(frame, text, None, expression)


# ------------------------------------------------------------------------- evaluation


def evaluate_schedule(
    schedule: Schedule,
    frame_count: int,
    *,
    fps: float,
    seed: int,
    interpolation: Interpolation = Interpolation.linear,
) -> np.ndarray:
    """One float64 value per frame ``0 .. frame_count - 1`` (see the module docstring).

    ``max_f`` inside values is ``frame_count - 1``; parse with the same ``max_f`` so keys
    and values agree (:func:`schedule_values` does both). Raises ScheduleError for a
    value that is not a finite number on some frame.
    """
    if frame_count < 0:
        raise ValueError(f"frame_count must be >= 0, got {frame_count}")
    by_frame = {key.frame: key for key in schedule.keyframes}  # a hand-built one may repeat
    keys = [by_frame[frame] for frame in sorted(by_frame)]
    if not keys:
        raise ScheduleError(schedule.where, schedule.name, "empty schedule", allowed=_SCHEDULE_HELP)
    variables = {"max_f": float(frame_count - 1), "fps": float(fps), "s": float(seed)}
    expressions = [_expression_of(schedule, key) for key in keys]
    anchors = np.array(
        [
            key.value
            if expression is None
            else _evaluate(schedule, expression, variables, key.frame)
            for key, expression in zip(keys, expressions, strict=True)
        ],
        dtype=np.float64,
    )
    frames = np.arange(frame_count, dtype=np.float64)
    key_frames = np.array([key.frame for key in keys], dtype=np.float64)
    values = _interpolate(key_frames, anchors, frames, interpolation)
    for index, (key, expression) in enumerate(zip(keys, expressions, strict=True)):
        if expression is None:
            continue
        stop = keys[index + 1].frame if index + 1 < len(keys) else frame_count
        lo, hi = max(key.frame, 0), min(stop, frame_count)
        if lo < hi:
            values[lo:hi] = _evaluate(schedule, expression, variables, frames[lo:hi])
    not_finite = np.flatnonzero(~np.isfinite(values))
    if not_finite.size:
        problem = f"the interpolated value is not a finite number on frame {not_finite[0]}"
        raise ScheduleError(schedule.where, schedule.name, problem)
    return values


def schedule_values(
    text: str,
    name: str,
    frame_count: int,
    *,
    fps: float,
    seed: int,
    interpolation: Interpolation = Interpolation.linear,
    where: str = "command line",
) -> np.ndarray:
    """Parse and evaluate in one call, with ``max_f = frame_count - 1``."""
    schedule = parse_schedule(text, name, where, fps=fps, max_f=frame_count - 1, seed=seed)
    return evaluate_schedule(schedule, frame_count, fps=fps, seed=seed, interpolation=interpolation)


def _expression_of(schedule: Schedule, key: Keyframe) -> Expression | None:
    """The parsed value of an expression key (None for a numeric one)."""
    if key.value is not None or key.expression is not None:
        return key.expression
    try:
        return parse_expression(key.text)
    except ExpressionError as error:
        raise ScheduleError.from_expression(error, schedule.name, schedule.where) from error


def _evaluate(
    schedule: Schedule,
    expression: Expression,
    variables: dict[str, float],
    t: float | np.ndarray,
) -> float | np.ndarray:
    """Evaluate a value at frame(s) ``t``; failures become ScheduleErrors naming the frame."""
    try:
        return expression.evaluate({**variables, "t": t})
    except ExpressionError as error:
        raise ScheduleError.from_expression(error, schedule.name, schedule.where) from error


def _interpolate(
    key_frames: np.ndarray, anchors: np.ndarray, frames: np.ndarray, interpolation: Interpolation
) -> np.ndarray:
    """Values at ``frames`` from (key frame, anchor) points, flat outside the keys."""
    if interpolation is Interpolation.hold:
        index = np.clip(np.searchsorted(key_frames, frames, side="right") - 1, 0, None)
        return anchors[index]
    if interpolation is Interpolation.linear or len(key_frames) == 1:
        return np.interp(frames, key_frames, anchors)
    return _cubic(key_frames, anchors, frames)


def _cubic(xs: np.ndarray, ys: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Cubic Hermite through every point: Catmull-Rom tangents inside, zero at the ends.

    Zero end tangents make the curve ease into its first and out of its last key, and
    make it flat where it meets the constant value held outside the keys.
    """
    slopes = np.zeros_like(ys)
    slopes[1:-1] = (ys[2:] - ys[:-2]) / (xs[2:] - xs[:-2])
    x = np.clip(frames, xs[0], xs[-1])
    k = np.clip(np.searchsorted(xs, x, side="right") - 1, 0, len(xs) - 2)
    width = xs[k + 1] - xs[k]
    u = (x - xs[k]) / width
    h00 = (1 + 2 * u) * (1 - u) ** 2
    h10 = u * (1 - u) ** 2
    h01 = u**2 * (3 - 2 * u)
    h11 = u**2 * (u - 1)
    return h00 * ys[k] + h10 * width * slopes[k] + h01 * ys[k + 1] + h11 * width * slopes[k + 1]
