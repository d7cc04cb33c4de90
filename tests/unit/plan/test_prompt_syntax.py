"""A1111 attention syntax: the documented examples, with A1111's exact float weights.

The expected values are the ones A1111 documents (the doc-comment examples of its
``parse_prompt_attention`` and the "Attention/emphasis" section of its wiki), compared
with ``==``: prompts written for A1111 must weigh exactly the same here.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import RotoscopeError
from pipeline.plan.prompt_syntax import BREAK, PromptSyntaxError, parse_attention

A1111_DOC_EXAMPLES = [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    (
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [
            ("a ", 1.0),
            ("house", 1.5730000000000004),
            (" ", 1.1),
            ("on", 1.0),
            (" a ", 1.1),
            ("hill", 0.55),
            (", sun, ", 1.1),
            ("sky", 1.4641000000000006),
            (".", 1.1),
        ],
    ),
]

A1111_WIKI_EXAMPLES = [
    ("a (word)", [("a ", 1.0), ("word", 1.1)]),
    ("a ((word))", [("a ", 1.0), ("word", 1.1 * 1.1)]),
    ("a [word]", [("a ", 1.0), ("word", 1 / 1.1)]),
    ("a (word:1.5)", [("a ", 1.0), ("word", 1.5)]),
    ("a (word:0.25)", [("a ", 1.0), ("word", 0.25)]),
    ("a \\(word\\)", [("a (word)", 1.0)]),
    ("anime_\\(character\\)", [("anime_(character)", 1.0)]),
]


@pytest.mark.parametrize(("prompt", "expected"), A1111_DOC_EXAMPLES + A1111_WIKI_EXAMPLES)
def test_documented_examples(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert parse_attention(prompt) == expected


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("unbalanced", [("unbalanced", 1.0)]),
        ("[unbalanced", [("unbalanced", 0.9090909090909091)]),
        ("unbalanced]", [("unbalanced]", 1.0)]),
        ("unbalanced)", [("unbalanced)", 1.0)]),
        ("a [[[bracket", [("a ", 1.0), ("bracket", 0.7513148009015777)]),
        # brackets left open close round first, then square, each outermost first
        ("[a (b", [("a ", 1 / 1.1), ("b", 1.1 * (1 / 1.1))]),
        ("(a [b", [("a ", 1.1), ("b", 1.1 * (1 / 1.1))]),
        # a stray closer of the other kind is text inside the open bracket
        ("(a] b)", [("a] b", 1.1)]),
    ],
)
def test_unbalanced_brackets(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert parse_attention(prompt) == expected


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        # nesting multiplies, innermost bracket first
        ("((a:1.5))", [("a", 1.5 * 1.1)]),
        ("[(a)]", [("a", 1.1 * (1 / 1.1))]),
        ("[[a]]", [("a", (1 / 1.1) * (1 / 1.1))]),
        ("(a [b] c)", [("a ", 1.1), ("b", (1 / 1.1) * 1.1), (" c", 1.1)]),
        # the weight may be signed and padded with whitespace
        ("(a: 1.3 )", [("a", 1.3)]),
        ("(a:-1)", [("a", -1.0)]),
        ("(a:+2)", [("a", 2.0)]),
        ("(a:.5)", [("a", 0.5)]),
        # an explicit weight only closes round brackets
        ("[a:1.3]", [("a:1.3", 1 / 1.1)]),
        # a colon that is no weight, and a weight that closes nothing, are text
        ("a: b", [("a: b", 1.0)]),
        ("(a:b)", [("a:b", 1.1)]),
        ("a:1.3) b", [("a:1.3) b", 1.0)]),
        ("(a:1.3", [("a:1.3", 1.1)]),
        # equal weights merge, however they were written
        ("a (b:1.0) c", [("a b c", 1.0)]),
        ("(a)(b)", [("ab", 1.1)]),
        # empty brackets weigh nothing
        ("a () b", [("a  b", 1.0)]),
        ("", [("", 1.0)]),
        ("()", [("", 1.0)]),
    ],
)
def test_weights(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert parse_attention(prompt) == expected


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a \\\\ b", [("a \\ b", 1.0)]),
        ("\\[a\\]", [("[a]", 1.0)]),
        ("(a \\) b)", [("a ) b", 1.1)]),
        ("(a\\:1.3)", [("a", 1.3)]),  # a colon has no escape: the backslash is dropped
        ("a \\b", [("a b", 1.0)]),  # a backslash escaping nothing is dropped (A1111)
        ("a \\", [("a ", 1.0)]),
    ],
)
def test_escapes(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert parse_attention(prompt) == expected


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a BREAK b", [("a", 1.0), BREAK, ("b", 1.0)]),
        ("a, BREAK, b", [("a,", 1.0), BREAK, (", b", 1.0)]),
        ("BREAK", [("", 1.0), BREAK, ("", 1.0)]),
        ("a BREAK BREAK b", [("a", 1.0), BREAK, ("", 1.0), BREAK, ("b", 1.0)]),
        ("(a) BREAK [b]", [("a", 1.1), ("", 1.0), BREAK, ("", 1.0), ("b", 1 / 1.1)]),
        # only the uppercase word on its own
        ("a Break b", [("a Break b", 1.0)]),
        ("BREAKING news", [("BREAKING news", 1.0)]),
        ("a_BREAK", [("a_BREAK", 1.0)]),
        # inside brackets it still breaks (A1111 would scale the marker into a word)
        ("(a BREAK b)", [("a", 1.1), BREAK, ("b", 1.1)]),
    ],
)
def test_break(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert parse_attention(prompt) == expected


def test_a_weight_that_is_no_number_is_a_one_line_error() -> None:
    with pytest.raises(PromptSyntaxError) as excinfo:
        parse_attention("a (cat:1.2.3)")
    assert isinstance(excinfo.value, RotoscopeError)
    assert "'1.2.3'" in str(excinfo.value)
    assert "character 8" in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def _escaped(text: str) -> str:
    return "".join("\\" + char if char in "()[]\\" else char for char in text)


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00")))
def test_escaped_text_is_literal(text: str) -> None:
    """Any text, with A1111's escapes applied, parses back to itself at weight 1.0."""
    pieces = parse_attention(_escaped(text))
    if "BREAK" in text:
        pieces = [piece for piece in pieces if piece != BREAK]
        assert all(weight == 1.0 for _, weight in pieces)
    else:
        assert pieces == [(text, 1.0)]


@given(st.text(alphabet="ab ()[]:1.\\"))
def test_any_text_parses(text: str) -> None:
    """Whatever a user types parses; only an explicit weight that is no number raises."""
    try:
        pieces = parse_attention(text)
    except PromptSyntaxError:
        return
    assert pieces
    assert all(isinstance(piece, str) and isinstance(weight, float) for piece, weight in pieces)


def test_spaces_around_a_weights_colon_weigh_like_a1111() -> None:
    # A1111's attention pattern reads ":\s*([+-]?[.\d]+)\s*\)" as the weight, so the
    # space before the colon stays in the text and the weight still applies.
    assert parse_attention("(word : 1.3)") == [("word ", 1.3)]
    assert parse_attention("(word: 1.3 )") == [("word", 1.3)]
