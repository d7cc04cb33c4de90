"""The schedule language: Deforum syntax, a safe expression evaluator, interpolation.

Expected values are worked out by hand (or with ``math`` on the same formula) so that a
wrong evaluator cannot agree with itself; Deforum cases come from its documented
defaults and its wiki's worked examples.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config.schema import Interpolation
from pipeline.errors import RotoscopeError
from pipeline.plan.expressions import ExpressionError
from pipeline.plan.schedules import (
    Keyframe,
    Schedule,
    ScheduleError,
    evaluate_schedule,
    parse_expression,
    parse_schedule,
    schedule_values,
)

FPS = 24.0
SEED = 42


def values(text: str, frames: int = 10, **kwargs: object) -> np.ndarray:
    options = {"fps": FPS, "seed": SEED, **kwargs}
    return schedule_values(text, "strength", frames, **options)  # type: ignore[arg-type]


def error(text: str, frames: int = 10, **kwargs: object) -> ScheduleError:
    with pytest.raises(ScheduleError) as caught:
        values(text, frames, **kwargs)
    return caught.value


def assert_points_at(err: ScheduleError, text: str, column: int, problem: str) -> None:
    """The report's first line names where, the schedule and the problem at the column;
    the second shows the text and the third has a caret under that column."""
    first, excerpt, caret = str(err).splitlines()[:3]
    assert first.startswith("command line: strength: ")
    assert problem in first
    assert first.endswith(f" at column {column}")
    assert excerpt == f"    {text}"
    assert caret == " " * (4 + column - 1) + "^"


# ------------------------------------------------------------------ Deforum defaults


def test_deforum_default_zoom_is_evaluated_on_every_frame() -> None:
    got = values("0: (1.0025+0.002*sin(1.25*3.14*t/30))", 40)
    for frame in (0, 12, 24, 39):
        assert got[frame] == pytest.approx(1.0025 + 0.002 * math.sin(1.25 * 3.14 * frame / 30))
    assert got[12] == pytest.approx(1.0045, abs=1e-6)  # sin(1.57), the crest


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0:(0)", 0.0), ("0: (0.65)", 0.65), ("0: (7)", 7.0), ("0: (25)", 25.0), ("0: (0.08)", 0.08)],
)
def test_deforum_constant_defaults(text: str, expected: float) -> None:
    np.testing.assert_array_equal(values(text, 30), np.full(30, expected))


def test_seed_variable_is_the_base_seed() -> None:
    np.testing.assert_array_equal(values("0:(s)", 5, seed=1234), np.full(5, 1234.0))
    np.testing.assert_array_equal(values("0:(s + t)", 3, seed=10), [10.0, 11.0, 12.0])


def test_deforum_default_seed_schedule_with_quoted_max_f_keys() -> None:
    # 120 frames: max_f = 119, so the quoted keys land on 117 and 118.
    got = values('0:(s), 1:(-1), "max_f-2":(-1), "max_f-1":(s)', 120, seed=7)
    np.testing.assert_array_equal(got, [7.0] + [-1.0] * 117 + [7.0, 7.0])


def test_several_numeric_keys_tween_linearly() -> None:
    got = values("0:(0), 30:(10), 60:(0)", 80)
    assert got[15] == pytest.approx(5.0)
    assert got[30] == 10.0
    assert got[45] == pytest.approx(5.0)
    assert got[60] == 0.0
    np.testing.assert_array_equal(got[60:], 0.0)  # held after the last key


def test_deforum_wiki_worked_examples() -> None:
    # "0:(-2), 100:(4) ... During frame50 ... a value of 1.0"
    assert values("0:(-2), 100:(4)", 101)[50] == pytest.approx(1.0)
    # "0:(0), 1:(1), 5:(5), 10:(10)": frame i has value i.
    np.testing.assert_allclose(values("0:(0), 1:(1), 5:(5), 10:(10)", 11), np.arange(11.0))


def test_deforum_default_phi_and_2d_zoom() -> None:
    np.testing.assert_array_equal(values("0:(t%15)", 32)[[0, 14, 15, 16, 31]], [0, 14, 0, 1, 1])
    assert values("0:(1.02+0.02*sin(2*3.14*t/20))", 6)[5] == pytest.approx(
        1.02 + 0.02 * math.sin(2 * 3.14 * 5 / 20)
    )


# ------------------------------------------------------------------------ expressions


def test_where_switches_on_a_condition() -> None:
    got = values("0:(where(t<10, 0.2, 0.6))", 12)
    np.testing.assert_array_equal(got, [0.2] * 10 + [0.6] * 2)


def test_where_only_needs_the_chosen_branch_to_be_defined() -> None:
    got = values("0:(where(t > 0, 1/t, 0))", 3)
    np.testing.assert_allclose(got, [0.0, 1.0, 0.5])


def test_clamp_min_max_atan2_and_commas_inside_calls() -> None:
    got = values("0:(clamp(t/10, 0, 1)), 20:(max(0.5, 0.25, 0.125))", 25)
    assert got[5] == pytest.approx(0.5)
    assert got[15] == pytest.approx(1.0)
    assert got[20] == 0.5
    assert values("0:(min(3, t, 5, 1.5))", 3).tolist() == [0.0, 1.0, 1.5]
    assert values("0:(atan2(1, -1))", 1)[0] == pytest.approx(3 * math.pi / 4)
    assert values("0:(arctan2(1, 1))", 1)[0] == pytest.approx(math.pi / 4)  # numexpr's name


def test_sqrt_is_not_corrupted_by_t() -> None:
    got = values("0:(t*sqrt(t))", 17)
    assert got[16] == pytest.approx(64.0)
    assert got[9] == pytest.approx(27.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-2**2", -4.0),
        ("(-2)**2", 4.0),
        ("2**3**2", 512.0),
        ("2**-1", 0.5),
        ("2*3**2", 18.0),
        ("1+2*3", 7.0),
        ("(1+2)*3", 9.0),
        ("10-4-3", 3.0),
        ("12/3/2", 2.0),
        ("-1 % 3", 2.0),
        ("7 % 3", 1.0),
        ("--2", 2.0),
        ("+.5", 0.5),
        ("1e-3", 0.001),
        ("5.", 5.0),
        ("1E+2", 100.0),
        ("pi", math.pi),
        ("e", math.e),
        ("2 < 3", 1.0),
        ("3 <= 2", 0.0),
        ("2 == 2", 1.0),
        ("2 != 2", 0.0),
        ("1 < 2 < 3", 1.0),
        ("1 < 3 < 2", 0.0),
        ("1 + (2 > 1)", 2.0),
        ("round(2.5)", 3.0),
        ("round(-2.5)", -3.0),
        ("round(0.49999999999999994)", 0.0),
        ("floor(-1.5) + ceil(1.2)", 0.0),
        ("abs(-3) + exp(0) + log(e) + log10(100)", 7.0),
        ("asin(1) + acos(1) + atan(0)", math.pi / 2),
        ("tan(0) + cos(0)", 1.0),
    ],
)
def test_operators_precedence_and_functions(text: str, expected: float) -> None:
    assert parse_expression(text).evaluate({}) == pytest.approx(expected)
    assert values(f"0:({text})", 1)[0] == pytest.approx(expected)


def test_comparisons_yield_one_or_zero_per_frame() -> None:
    assert values("0:(t < 3)", 5).tolist() == [1, 1, 1, 0, 0]
    assert values("0:(t == 2)", 4).tolist() == [0, 0, 1, 0]
    assert values("0:(1 < t <= 3)", 5).tolist() == [0, 0, 1, 1, 0]


def test_expression_evaluation_is_vectorised_over_t() -> None:
    expression = parse_expression("t * 2 + max_f")
    assert expression.variables == {"t", "max_f"}
    np.testing.assert_array_equal(expression.evaluate({"t": np.arange(3), "max_f": 9}), [9, 11, 13])
    assert expression.evaluate({"t": 1.0, "max_f": 0.0}) == 2.0


def test_fps_and_max_f_variables_and_seconds_in_values() -> None:
    assert values("0:(max_f)", 5).tolist() == [4.0] * 5
    assert values("0:(fps)", 1, fps=30)[0] == 30.0
    got = values("0:(where(t < 1s, 0, 1))", 4, fps=2)
    assert got.tolist() == [0, 0, 1, 1]


def test_nothing_outside_the_grammar_is_reachable() -> None:
    err = error('0:(__import__("os"))')
    assert "unknown function '__import__'" in str(err)


# ------------------------------------------------------------------------------- keys


def test_time_keys_are_seconds_times_fps_rounded() -> None:
    schedule = parse_schedule("0:(0), 2.5s:(1)", "strength", fps=24, max_f=99, seed=0)
    assert [key.frame for key in schedule.keyframes] == [0, 60]
    schedule = parse_schedule("0:(0), 2.5s:(1)", "strength", fps=25, max_f=99, seed=0)
    assert [key.frame for key in schedule.keyframes] == [0, 63]  # 62.5, half away from zero
    schedule = parse_schedule("1s + 12:(1)", "strength", fps=24, max_f=99, seed=0)
    assert schedule.keyframes[0].frame == 36


def test_key_expressions_use_max_f() -> None:
    got = values("0:(0), max_f/2:(1), max_f:(0)", 101)
    assert got[50] == 1.0
    assert got[25] == pytest.approx(0.5)
    schedule = parse_schedule("'max_f-1':(2)", "x", fps=24, max_f=9, seed=0)
    assert schedule.keyframes == (Keyframe(8, "2", 2.0),)


def test_keys_beyond_the_last_frame_shape_the_curve() -> None:
    got = values("0:(0), 100:(1)", 50)
    assert got[-1] == pytest.approx(0.49)
    assert values("-10:(0), 10:(1)", 11)[0] == pytest.approx(0.5)


def test_two_keys_written_as_one_frame_are_refused_and_an_expression_key_wins() -> None:
    with pytest.raises(ScheduleError) as caught:  # which one did the user mean?
        parse_schedule("0:(1), 4:(3), 4.0:(2)", "strength", fps=24, max_f=9, seed=0)
    assert "frame 4 has two keyframes ('4' and '4.0')" in str(caught.value)
    assert str(caught.value).splitlines()[2].index("^") == 4 + len("0:(1), 4:(3), ")
    # max_f lands on a written key only on some clips: the later one wins, as in Deforum
    schedule = parse_schedule("0:(1), max_f:(3), 9:(2)", "x", fps=24, max_f=9, seed=0)
    assert [(key.frame, key.value) for key in schedule.keyframes] == [(0, 1.0), (9, 2.0)]


# --------------------------------------------------------------------------- syntax


def test_whitespace_trailing_comma_bare_numbers_and_plain_constants() -> None:
    assert values(" 0 : ( 1 ) ,\n 4 : ( 5 ) , ", 5).tolist() == [1, 2, 3, 4, 5]
    assert values("0:0.5, 5: -1", 6).tolist() == pytest.approx([0.5, 0.2, -0.1, -0.4, -0.7, -1])
    assert values("0.5", 3).tolist() == [0.5] * 3
    assert values(" -7 ", 2).tolist() == [-7.0] * 2
    assert parse_schedule("7", "steps", fps=24, max_f=9, seed=0).keyframes == (
        Keyframe(0, "7", 7.0),
    )


def test_keyframe_value_is_none_for_expressions() -> None:
    schedule = parse_schedule("0:(0.65), 10:(t/2), 20:(1/2)", "x", fps=24, max_f=30, seed=0)
    assert schedule.keyframes == (
        Keyframe(0, "0.65", 0.65),
        Keyframe(10, "t/2", None),
        Keyframe(20, "1/2", None),
    )


def test_constant_expression_is_an_expression_key_as_in_deforum() -> None:
    # 1/2 is not a plain number: it holds until the next key instead of tweening.
    assert values("0:(1/2), 4:(1)", 5).tolist() == [0.5, 0.5, 0.5, 0.5, 1.0]


# --------------------------------------------------------------------- interpolation


def test_hold_steps_at_keys() -> None:
    got = values("0:(1), 5:(2), 8:(0)", 10, interpolation=Interpolation.hold)
    assert got.tolist() == [1] * 5 + [2] * 3 + [0] * 2


def test_cubic_with_two_keys_is_an_ease() -> None:
    got = values("0:(0), 100:(1)", 101, interpolation=Interpolation.cubic)
    assert got[25] < 0.25
    assert got[25] == pytest.approx(0.15625)  # 3u^2 - 2u^3 at u = 1/4
    assert got[50] == pytest.approx(0.5)
    assert got[75] > 0.75
    assert np.all(np.diff(got) >= 0)
    assert got[1] - got[0] < got[51] - got[50]  # slow start: zero tangent at the first key


def test_cubic_uses_catmull_rom_tangents_inside() -> None:
    # Tangent at frame 10 is (30 - 0) / (20 - 0) = 1.5; zero at both ends.
    got = values("0:(0), 10:(10), 20:(30)", 21, interpolation=Interpolation.cubic)
    assert got[5] == pytest.approx(5 - 0.125 * 10 * 1.5)
    assert got[15] == pytest.approx(5 + 0.125 * 10 * 1.5 + 15)
    assert got[[0, 10, 20]].tolist() == [0, 10, 30]


def test_cubic_may_overshoot_between_keys() -> None:
    # Documented: uneven spacing lets the curve leave the keys' range.
    got = values("0:(0), 2:(1), 20:(1), 22:(0)", 23, interpolation=Interpolation.cubic)
    assert got.max() > 1.0


def test_expression_key_runs_until_the_next_key() -> None:
    got = values("0:(0), 10:(t), 20:(5)", 25)
    assert got[5] == pytest.approx(5.0)  # toward t at frame 10, i.e. 10
    np.testing.assert_array_equal(got[10:20], np.arange(10.0, 20.0))
    np.testing.assert_array_equal(got[20:], 5.0)


def test_numeric_key_interpolates_toward_the_expression_anchor() -> None:
    got = values("0:(0), 10:(2*t)", 15)
    assert got[5] == pytest.approx(10.0)  # halfway to 2*10
    np.testing.assert_array_equal(got[10:], 2 * np.arange(10.0, 15.0))  # last key keeps going


def test_expression_first_key_holds_its_own_value_before_it() -> None:
    got = values("5:(t*2), 10:(0)", 12)
    assert got.tolist() == [10.0] * 5 + [10, 12, 14, 16, 18] + [0.0, 0.0]


def test_expression_keys_work_with_hold_and_cubic() -> None:
    held = values("0:(1), 4:(t), 6:(0)", 8, interpolation=Interpolation.hold)
    assert held.tolist() == [1, 1, 1, 1, 4, 5, 0, 0]
    eased = values("0:(0), 10:(t)", 12, interpolation=Interpolation.cubic)
    assert eased[5] == pytest.approx(5.0)
    assert eased[10:].tolist() == [10.0, 11.0]


def test_hand_built_schedule_parses_expression_text() -> None:
    schedule = Schedule("x", "", (Keyframe(3, "t*10", None), Keyframe(0, "1", 1.0)))
    got = evaluate_schedule(schedule, 5, fps=24, seed=0)
    np.testing.assert_allclose(got, [1, 1 + 29 / 3, 1 + 58 / 3, 30, 40])


def test_zero_frames_gives_an_empty_array() -> None:
    assert values("0:(1)", 0).shape == (0,)


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("text", "column", "problem"),
    [
        ("", 1, "empty schedule"),
        ("0 (0.5)", 3, "expected ':' after the key"),
        ("t/10", 5, "expected ':' after the key"),
        ("0:(sin(t)", 3, "unbalanced parentheses: this '(' is never closed"),
        ("0:(t))", 6, "unexpected ')' after the value"),
        ("0:(0.5) x", 9, "unexpected 'x' after the value"),
        ("0:(1) 5:(2)", 7, "unexpected '5' after the value"),
        ("0:(1),,", 7, "expected a key"),
        ("0:", 3, "expected a value in parentheses"),
        ("0:()", 4, "expected a value, found ')'"),
        ("0: t/2", 4, "expected a value in parentheses after ':', but found 't'"),
        ("0: 0.5*t", 4, "an expression value must be in parentheses"),
        ("0:(1, 2)", 5, "expected ')' to end the value"),
        ("0:(2 t)", 6, "missing operator before 't'"),
        ("0:(sqr(t))", 4, "unknown function 'sqr' (did you mean 'sqrt'?)"),
        ("0:(x + 1)", 4, "unknown name 'x'"),
        ("0:(sin)", 4, "sin is a function"),
        ("0:(t(2))", 4, "t is not a function"),
        ("0:(clamp(t, 1))", 4, "clamp(x, lo, hi) takes 3 arguments, got 2"),
        ("0:(sin())", 4, "sin(x) takes 1 argument, got 0"),
        ("0:(max(1))", 4, "max(a, b, ...) takes at least 2 arguments, got 1"),
        ("0:(t^2)", 5, "write powers as x**2"),
        ("0:(t = 2)", 6, "compare with =="),
        ("0:(1e400)", 4, "number is too large"),
        ("t:(1)", 1, "a key cannot use t"),
        ('"5:(1)', 3, 'missing closing " for the key'),
        ("max_f/0:(1)", 6, "division by zero"),
        ("0:(1/(t-3))", 5, "division by zero on frame 3"),
        ("0:(1 % (t-2))", 6, "modulo by zero on frame 2"),
        ("0:(sqrt(t-5))", 4, "sqrt(-5) is undefined: sqrt of a negative number on frame 0"),
        ("0:(1), 4:(log(t-4))", 11, "log(0) is undefined: log needs x > 0 on frame 4"),
        ("0:(asin(t))", 4, "asin(2) is undefined: asin needs -1 <= x <= 1 on frame 2"),
        ("0:((t-1)**0.5)", 9, "a negative number to a fractional power on frame 0"),
        ("0:(0**(t-1))", 5, "zero to a negative power on frame 0"),
        ("0:(exp(t*1000))", 4, "exp(1000) is too large on frame 1"),
        ("0:(10**(t*400))", 6, "10 ** 400 is too large on frame 1"),
    ],
)
def test_errors_point_at_the_problem(text: str, column: int, problem: str) -> None:
    assert_points_at(error(text), text, column, problem)


def test_errors_name_the_file_and_line_and_say_what_is_allowed() -> None:
    text = "0: (0.65),\n60: (sqr(t))"
    with pytest.raises(ScheduleError) as caught:
        schedule_values(text, "strength", 90, fps=24, seed=0, where="keyframes/walk.yaml")
    lines = str(caught.value).splitlines()
    assert lines[0] == (
        "keyframes/walk.yaml: strength: unknown function 'sqr' (did you mean 'sqrt'?) "
        "at line 2, column 6"
    )
    assert lines[1:3] == ["    60: (sqr(t))", "         ^"]
    assert lines[3].startswith("known functions: abs(x), acos(x)")
    assert isinstance(caught.value, RotoscopeError)


def test_error_on_a_later_frame_after_parsing_names_the_schedule() -> None:
    schedule = parse_schedule("0:(1/(t-7))", "zoom", "zoom.txt", fps=24, max_f=9, seed=0)
    with pytest.raises(ScheduleError, match=r"^zoom\.txt: zoom: division by zero on frame 7"):
        evaluate_schedule(schedule, 10, fps=24, seed=0)


def test_long_schedules_show_a_window_around_the_error() -> None:
    text = ", ".join(f"{i}:({i})" for i in range(40)) + ", 99:(oops)"
    lines = str(error(text)).splitlines()
    assert lines[1].startswith("    ...") and len(lines[1]) <= 4 + 3 + 80 + 3
    assert lines[1][lines[2].index("^") :].startswith("oops")


def test_pathological_nesting_is_an_error_not_a_crash() -> None:
    assert "nested too deeply" in str(error("0:(" + "(" * 60 + "1" + ")" * 60 + ")"))
    assert "too long" in str(error("0:(" + "+".join(["1"] * 300) + ")"))


def test_parse_expression_reports_column() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression("sqrt(t) +")
    assert str(caught.value).splitlines()[:3] == [
        "expected a value, but the text ends at column 10",
        "    sqrt(t) +",
        "             ^",
    ]
    with pytest.raises(ExpressionError, match=r"sqrt\(-2\) is undefined.*\(t=-2\)"):
        parse_expression("sqrt(t)").evaluate({"t": np.arange(-2.0, 2.0)})


# ------------------------------------------------------------------ property tests

keys = st.integers(min_value=-30, max_value=130)
key_values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
# two keys written as one frame are refused (test_two_keys_on_one_frame_...)
key_lists = st.lists(
    st.tuples(keys, key_values), min_size=1, max_size=8, unique_by=lambda pair: pair[0]
)
frame_counts = st.integers(min_value=1, max_value=120)


def render(pairs: list[tuple[int, float]], style: int) -> str:
    """Write pairs in one of several equivalent spellings users paste."""
    if style == 0:
        return ", ".join(f"{k}:({v!r})" for k, v in pairs)
    if style == 1:
        return ",\n".join(f" {k} : ( {v!r} ) " for k, v in pairs) + ","
    return ",".join(f"{k}:{v!r}" for k, v in pairs)


@given(key_lists, st.integers(min_value=0, max_value=2))
def test_round_trip_keys_and_values(pairs: list[tuple[int, float]], style: int) -> None:
    schedule = parse_schedule(render(pairs, style), "x", fps=24, max_f=99, seed=0)
    expected = dict(pairs)
    assert [(k.frame, k.value) for k in schedule.keyframes] == sorted(expected.items())
    assert all(float(k.text) == k.value for k in schedule.keyframes)


@given(key_lists, frame_counts)
def test_linear_stays_between_neighbouring_keys(pairs: list[tuple[int, float]], n: int) -> None:
    table = dict(sorted(dict(pairs).items()))
    got = values(render(pairs, 0), n)
    frames = list(table)
    for frame, value in enumerate(got):
        before = [f for f in frames if f <= frame]
        after = [f for f in frames if f >= frame]
        lo_key = before[-1] if before else after[0]
        hi_key = after[0] if after else before[-1]
        lo, hi = sorted((table[lo_key], table[hi_key]))
        assert lo - 1e-6 <= value <= hi + 1e-6


@given(key_lists, frame_counts)
def test_hold_changes_only_at_keys(pairs: list[tuple[int, float]], n: int) -> None:
    table = dict(sorted(dict(pairs).items()))
    got = values(render(pairs, 0), n, interpolation=Interpolation.hold)
    for frame in range(n):
        at_or_before = [f for f in table if f <= frame]
        expected = table[at_or_before[-1]] if at_or_before else next(iter(table.values()))
        assert got[frame] == expected
        if frame and got[frame] != got[frame - 1]:
            assert frame in table


@settings(max_examples=60, deadline=None)  # timing belongs to benchmarks, not tests
@given(key_lists, frame_counts, st.sampled_from(list(Interpolation)))
def test_flat_before_the_first_and_after_the_last_key(
    pairs: list[tuple[int, float]], n: int, interpolation: Interpolation
) -> None:
    table = dict(sorted(dict(pairs).items()))
    got = values(render(pairs, 0), n, interpolation=interpolation)
    first, last = min(table), max(table)
    assert np.all(got[: max(first + 1, 0)] == table[first])
    assert np.all(got[max(last, 0) :] == table[last])


@settings(max_examples=60, deadline=None)  # timing belongs to benchmarks, not tests
@given(key_lists)
def test_cubic_passes_through_every_key(pairs: list[tuple[int, float]]) -> None:
    table = dict(pairs)
    got = values(render(pairs, 0), 131, interpolation=Interpolation.cubic)
    for frame, value in table.items():
        if 0 <= frame < 131:
            assert got[frame] == pytest.approx(value, rel=1e-9, abs=1e-6)


def arithmetic() -> st.SearchStrategy[tuple[str, float]]:
    """Random fully parenthesised arithmetic with its value computed alongside."""
    leaves = st.integers(min_value=-50, max_value=50).map(lambda n: (f"({n})", float(n)))

    def combine(children: st.SearchStrategy[tuple[str, float]]) -> st.SearchStrategy:
        ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
        return st.tuples(children, st.sampled_from(sorted(ops)), children).map(
            lambda c: (f"({c[0][0]} {c[1]} {c[2][0]})", ops[c[1]](c[0][1], c[2][1]))
        )

    return st.recursive(leaves, combine, max_leaves=12)


@given(arithmetic())
def test_parser_agrees_with_arithmetic(case: tuple[str, float]) -> None:
    text, expected = case
    assert parse_expression(text).evaluate({}) == pytest.approx(expected)
