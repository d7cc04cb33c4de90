"""A1111 prompt editing and alternation as text, step by step (no model needed)."""

from __future__ import annotations

import pytest

from pipeline.errors import RotoscopeError
from pipeline.plan.prompt_editing import (
    check_composable,
    has_prompt_editing,
    prompt_schedule,
    schedule_steps,
    text_at_step,
)


# A1111's own examples (modules/prompt_parser.py doctests), over 10 steps
@pytest.mark.parametrize(
    ("prompt", "schedule"),
    [
        ("test", [(10, "test")]),
        ("a [b:3]", [(3, "a "), (10, "a b")]),
        ("a [b: 3]", [(3, "a "), (10, "a b")]),
        ("a [[[b]]:2]", [(2, "a "), (10, "a [[b]]")]),
        ("[(a:2):3]", [(3, ""), (10, "(a:2)")]),
        ("a [b : c : 1] d", [(1, "a b  d"), (10, "a  c  d")]),
        ("a[b:[c:d:2]:1]e", [(1, "abe"), (2, "ace"), (10, "ade")]),
        ("a [unbalanced", [(10, "a [unbalanced")]),
        ("a [b:.5] c", [(5, "a  c"), (10, "a b c")]),
        ("((a][:b:c [d:3]", [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
        ("[a|(b:1.1)]", [(k, "a" if k % 2 else "(b:1.1)") for k in range(1, 11)]),
        ("[fe|]male", [(k, "female" if k % 2 else "male") for k in range(1, 11)]),
        ("[fe|||]male", [(k, "female" if k % 4 == 1 else "male") for k in range(1, 11)]),
    ],
)
def test_a1111_examples(prompt: str, schedule: list[tuple[int, str]]) -> None:
    assert prompt_schedule(prompt, 10) == schedule


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("[cat:dog:0.5]", ["cat"] * 4 + ["dog"] * 2),  # int(0.5 * 6) = 3: steps 0-3 are cat
        ("[cat:dog:2]", ["cat"] * 3 + ["dog"] * 3),
        ("[cat::2]", ["cat"] * 3 + [""] * 3),
        ("[:dog:2]", [""] * 3 + ["dog"] * 3),
        ("[cat:dog:1.0]", ["cat"] * 6),  # a decimal point makes it a fraction: all steps
        ("[cat:dog:0]", ["dog"] * 6),
        ("[cat|dog]", ["cat", "cat", "dog", "cat", "dog", "cat"]),  # A1111 counts from 1
    ],
)
def test_text_at_each_step(prompt: str, expected: list[str]) -> None:
    """Steps count from 0; the text of step i is the first whose last step is >= i."""
    schedule = prompt_schedule(prompt, 6)
    assert [text_at_step(schedule, step) for step in range(6)] == expected


def test_constructs_keep_attention_syntax_and_text_around_them() -> None:
    schedule = prompt_schedule("a (red:1.2) [(cat:1.3):dog:0.5], [sun|moon]", 4)
    texts = {text for _, text in schedule}
    assert texts == {
        "a (red:1.2) (cat:1.3), sun",
        "a (red:1.2) (cat:1.3), moon",
        "a (red:1.2) dog, sun",
        "a (red:1.2) dog, moon",
    }


@pytest.mark.parametrize(
    "prompt",
    ["plain words", "(weighted:1.2) [less]", "[a:b:c]", "a | b [c:d:2]", "broken\\"],
)
def test_text_that_does_not_change(prompt: str) -> None:
    """No construct, a bracket that is not one ([a:b:c]), or a prompt A1111's grammar
    does not parse (a '|' outside brackets): the same text at every step."""
    assert not has_prompt_editing(prompt)
    assert prompt_schedule(prompt, 8) == [(8, prompt)]


def test_editing_is_detected() -> None:
    assert has_prompt_editing("a [b:c:0.5]")
    assert has_prompt_editing("[a|b]")
    assert has_prompt_editing("(x [b:2])")


def test_and_is_refused_in_one_line() -> None:
    check_composable("cats and dogs, ANDROID", "command line")  # not the word AND
    with pytest.raises(RotoscopeError) as info:
        check_composable("a cat AND a dog:0.5", "keyframes/a.yaml")
    message = str(info.value)
    assert "\n" not in message
    assert "keyframes/a.yaml" in message and "AND" in message


# --- which steps are counted: prompt_editing_steps ---


def texts(runs: str) -> list[str]:
    """``"a3 b2"`` is ``["a", "a", "a", "b", "b"]``: a hand-written run of texts by step."""
    return [run[0] for run in runs.split() for _ in range(int(run[1:]))]


# (prompt, steps, steps that run, model calls per step, rotoscope's texts, A1111's texts).
# The steps that run are diffusers' img2img: int(steps x strength) steps, a second-order
# sampler (Heun) 2 x that - 1 model calls; worked out by hand in the comments.
COUNTING = [
    # 20 x 0.5: 10 run. rotoscope: int(0.5 x 10) = 5, a for steps 0-5; A1111 builds the
    # schedule over 20: int(0.5 x 20) = 10, a for steps 0-10: never switches in 0-9
    ("[a:b:0.5]", 20, 10, 1, "a6 b4", "a10"),
    # int(0.25 x 10) = 2 / int(0.25 x 20) = 5
    ("[a:b:0.25]", 20, 10, 1, "a3 b7", "a6 b4"),
    # a switch at step 0 is the second text from the first step (A1111's [a:b:0]):
    # int(0.05 x 10) = 0 / int(0.05 x 20) = 1
    ("[a:b:0.05]", 20, 10, 1, "b10", "a2 b8"),
    # a step number means the same step either way; one past the steps that run, never
    ("[a:b:3]", 20, 10, 1, "a4 b6", "a4 b6"),
    ("[a:b:12]", 20, 10, 1, "a10", "a10"),
    # 30 x 0.4: 12 run. int(0.5 x 12) = 6 / int(0.5 x 30) = 15
    ("[a:b:0.5]", 30, 12, 1, "a7 b5", "a12"),
    # int(0.2 x 12) = 2 / int(0.2 x 30) = 6
    ("[b:0.2]", 30, 12, 1, "_3 b9", "_7 b5"),
    # nested: outer int(0.1 x 12) = 1, inner int(0.3 x 12) = 3 / outer 3, inner 9
    ("[a:[b:c:0.3]:0.1]", 30, 12, 1, "a2 b2 c8", "a4 b6 c2"),
    # alternation counts every step from the first that runs, the same way in both
    ("[a|b]", 20, 10, 1, "a2 b1 a1 b1 a1 b1 a1 b1 a1", "a2 b1 a1 b1 a1 b1 a1 b1 a1"),
    # Heun, 10 x 0.5: 5 steps, 9 model calls. int(0.5 x 9) = 4 / A1111's schedule over
    # 2 x 10 = 20 calls: int(0.5 x 20) = 10, never; int(0.3 x 9) = 2 / int(0.3 x 20) = 6
    ("[a:b:0.5]", 10, 9, 2, "a5 b4", "a9"),
    ("[a:b:0.3]", 10, 9, 2, "a3 b6", "a7 b2"),
    # strength 1 runs every step: both count the same
    ("[a:b:0.5]", 8, 8, 1, "a5 b3", "a5 b3"),
    # 1.0 is a fraction: the switch comes after the last step
    ("[a:b:1.0]", 20, 10, 1, "a10", "a10"),
]


@pytest.mark.parametrize(("prompt", "steps", "run", "order", "ours", "a1111"), COUNTING)
def test_each_count_against_hand_computed_schedules(
    prompt: str, steps: int, run: int, order: int, ours: str, a1111: str
) -> None:
    for counting, expected in ((None, ours), ("a1111", a1111)):
        schedule = prompt_schedule(prompt, schedule_steps(counting, steps, run, order))
        got = [text_at_step(schedule, step) or "_" for step in range(run)]
        assert got == texts(expected), counting
