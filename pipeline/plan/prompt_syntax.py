"""AUTOMATIC1111's prompt attention syntax, parsed into (text, weight) pieces.

Users bring prompts written for A1111, so the same text must weigh the same here:
``(word)`` multiplies the attention on ``word`` by 1.1, ``((word))`` by 1.21, ``[word]``
by 1/1.1, ``(word:1.3)`` by 1.3; nesting multiplies; ``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\``
are the literal characters; a bracket left open is closed at the end of the prompt; a
``)`` or ``]`` that closes nothing is plain text; ``BREAK`` (uppercase, a word of its own)
starts a new 75-token chunk. The weights are computed with A1111's float arithmetic (a
piece is multiplied once per bracket, innermost first, at the moment the bracket closes;
brackets left open are closed round ones first, then square ones, each in the order they
were opened), so the numbers match A1111's to the last bit, not merely approximately.

This module is pure text: the encoder (``pipeline.render.conditioning``) turns the pieces into
tokens, and the plan can call :func:`parse_attention` to reject a bad prompt before a run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import RotoscopeError

ROUND_MULTIPLIER = 1.1
# Multiplying by 1/1.1 (not dividing by 1.1) is what A1111 does; the two differ in the
# last bit for some weights, and the weights are meant to match A1111's exactly.
SQUARE_MULTIPLIER = 1 / 1.1
BREAK = ("BREAK", -1.0)
"""The piece :func:`parse_attention` yields for a ``BREAK`` keyword."""

_ESCAPABLE = frozenset("()[]\\")
_SYNTAX = frozenset("()[]\\:")
# "(text:1.3)": the weight may be signed and padded with whitespace, as A1111 accepts.
_WEIGHTED_CLOSE = re.compile(r":\s*([+-]?[.\d]+)\s*\)")
# BREAK as a word of its own; the whitespace around it belongs to the break, not the text.
_BREAK_WORD = re.compile(r"\s*\bBREAK\b\s*")


class PromptSyntaxError(RotoscopeError):
    """A prompt A1111 would also refuse (an explicit weight that is not a number)."""


@dataclass
class _Piece:
    text: str
    weight: float
    is_break: bool = False


def parse_attention(text: str) -> list[tuple[str, float]]:
    """``text`` as (text, weight) pieces in order, with ``BREAK`` as the item ("BREAK", -1.0).

    Adjacent pieces of equal weight are merged, so ``(a)(b)`` gives [("ab", 1.1)]; an
    empty prompt gives [("", 1.0)]. Whitespace is kept as written (the tokenizer
    normalises it). Raises :class:`PromptSyntaxError` for a weight that is not a number,
    such as ``(word:1.2.3)``.
    """
    pieces: list[_Piece] = []
    open_round: list[int] = []  # for each open bracket, the index of its first piece
    open_square: list[int] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char == "\\":
            escaped = text[position + 1 : position + 2]
            if escaped and escaped in _ESCAPABLE:
                pieces.append(_Piece(escaped, 1.0))
                position += 2
            else:
                position += 1  # a backslash escaping nothing is dropped, as in A1111
        elif char == "(":
            open_round.append(len(pieces))
            position += 1
        elif char == "[":
            open_square.append(len(pieces))
            position += 1
        elif char == ")" and open_round:
            _scale(pieces, open_round.pop(), ROUND_MULTIPLIER)
            position += 1
        elif char == "]" and open_square:
            _scale(pieces, open_square.pop(), SQUARE_MULTIPLIER)
            position += 1
        elif char == ":":
            weighted = _WEIGHTED_CLOSE.match(text, position)
            if weighted and open_round:
                _scale(pieces, open_round.pop(), _weight(weighted, text))
                position = weighted.end()
            else:
                # a weight that closes no bracket is text, like a stray ")"
                end = weighted.end() if weighted else position + 1
                _add_text(pieces, text[position:end])
                position = end
        else:
            end = position + 1 if char in ")]" else _run_end(text, position)
            _add_text(pieces, text[position:end])
            position = end
    # Brackets never closed apply to the rest of the prompt: round ones first, then
    # square ones, each outermost first (A1111's order, which fixes the float results).
    for start in open_round:
        _scale(pieces, start, ROUND_MULTIPLIER)
    for start in open_square:
        _scale(pieces, start, SQUARE_MULTIPLIER)
    return _merged(pieces)


def _run_end(text: str, start: int) -> int:
    """Where the plain text starting at ``start`` ends: at the next syntax character."""
    end = start
    while end < len(text) and text[end] not in _SYNTAX:
        end += 1
    return end


def _add_text(pieces: list[_Piece], text: str) -> None:
    """Append plain text at weight 1.0, turning each BREAK word in it into a break.

    The text around a BREAK is kept even when empty (as A1111 does), so the pieces, once
    merged, are A1111's exactly.
    """
    for index, part in enumerate(_BREAK_WORD.split(text)):
        if index:
            pieces.append(_Piece(*BREAK, is_break=True))
        pieces.append(_Piece(part, 1.0))


def _scale(pieces: list[_Piece], start: int, multiplier: float) -> None:
    """Multiply the weights of every piece from ``start`` on (a bracket that closes).

    A break is no text and keeps its marker weight. (A1111 scales it too, which turns a
    BREAK written inside brackets into the literal word "BREAK" with a negative weight.)
    """
    for piece in pieces[start:]:
        if not piece.is_break:
            piece.weight *= multiplier


def _weight(match: re.Match[str], text: str) -> float:
    number = match.group(1)
    try:
        return float(number)
    except ValueError:
        raise PromptSyntaxError(
            f"attention weight '{number}' at character {match.start(1) + 1} of prompt "
            f"'{text}' is not a number",
            "write it like (word:1.2)",
        ) from None


def _merged(pieces: list[_Piece]) -> list[tuple[str, float]]:
    """The pieces as (text, weight), neighbours of equal weight joined; breaks never join."""
    merged: list[_Piece] = []
    for piece in pieces:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and not previous.is_break
            and not piece.is_break
            and previous.weight == piece.weight
        ):
            previous.text += piece.text
        else:
            merged.append(piece)
    if not merged:
        return [("", 1.0)]
    return [(piece.text, piece.weight) for piece in merged]
