"""A1111 prompt editing and alternation as text, step by step (no model needed)."""

from __future__ import annotations

import pytest

from pipeline.errors import RotoscopeError
from pipeline.plan.prompt_editing import (
    check_composable,
    has_prompt_editing,
    prompt_schedule,
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
