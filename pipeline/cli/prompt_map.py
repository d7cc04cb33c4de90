"""Keyframed prompts on the command line: ``prompts='{0: a cat, 10: a dog}'``.

Hydra's own dict syntax would take that apart (a comma or bracket inside a prompt ends
it; a prompt must be quoted inside the braces), so ``prompts=`` values are read here:

- keys are frame numbers (``10``), times (``2.5s``) or expressions of ``max_f``/``fps``
  (``max_f/2``), optionally quoted (``"10"``, as Deforum and FizzNodes write them);
- values run to the next ``, <key>:`` or the closing brace, so commas, brackets and
  A1111 weights need no quoting (``{0: a cat, (oil:1.2), 10: a dog --neg blurry}``);
  a value may also be quoted (``'a cat'``, ``"a cat"``, JSON style).

The result goes back to Hydra as a dict whose values are quoted verbatim.
"""

from __future__ import annotations

import re

from pipeline.errors import RotoscopeError

# A bare key: a number or time, or an expression that mentions max_f or fps.
_BARE_KEY = r"\d+(?:\.\d+)?s?|[\w.+\-*/]*\b(?:max_f|fps)\b[\w.+\-*/]*"
_KEY = re.compile(r"\s*(?:\"([^\"]*)\"|'([^']*)'|(" + _BARE_KEY + r"))\s*:\s*")
_NEXT_KEY = re.compile(r",\s*(?:\"[^\"]*\"|'[^']*'|(?:" + _BARE_KEY + r"))\s*:")
_HYDRA_KEY = re.compile(r"[\w.+\-*/]+")
EXAMPLE = "prompts='{0: a cat, 10: a dog}'"


def parse_prompt_map(text: str) -> dict[str, str]:
    """``{key: prompt, ...}`` as typed on the command line -> {key: prompt}.

    ``{}`` (or nothing) is an empty map: no keyframed prompts.
    """
    body = text.strip() or "{}"
    if not (body.startswith("{") and body.endswith("}")):
        raise RotoscopeError(
            f"prompts={text} is not a map of frames to prompts", f"for example {EXAMPLE}"
        )
    body = body[1:-1].strip()
    result: dict[str, str] = {}
    position = 0
    while position < len(body):
        match = _KEY.match(body, position)
        if match is None:
            raise RotoscopeError(
                f"prompts: expected a frame key at '{body[position : position + 30]}'",
                f"keys are frame numbers, times (2.5s) or max_f expressions: {EXAMPLE}",
            )
        key = next(group for group in match.groups() if group is not None).strip()
        value, position = _value(body, match.end())
        result[key] = value
    return result


def _value(body: str, start: int) -> tuple[str, int]:
    """The prompt starting at ``start`` and where the next entry starts."""
    quoted = _quoted_value(body, start)
    if quoted is not None:
        return quoted
    following = _NEXT_KEY.search(body, start)
    end = following.start() if following else len(body)
    return body[start:end].strip(), (end + 1 if following else end)


def _quoted_value(body: str, start: int) -> tuple[str, int] | None:
    """A value that is one quoted string followed by the next entry (or the end)."""
    if start >= len(body) or body[start] not in "'\"":
        return None
    quote = body[start]
    index, chars = start + 1, []
    while index < len(body) and body[index] != quote:
        if body[index] == "\\" and index + 1 < len(body) and body[index + 1] in (quote, "\\"):
            index += 1
        chars.append(body[index])
        index += 1
    rest = body[index + 1 :]
    if index >= len(body) or not (rest.strip() == "" or _NEXT_KEY.match(rest.lstrip())):
        return None  # a prompt that merely starts with a quote: read it as raw text
    following = _NEXT_KEY.match(rest.lstrip())
    if following is None:
        return "".join(chars), len(body)
    return "".join(chars), len(body) - len(rest.lstrip()) + 1


def hydra_key(key: str) -> str:
    """A prompt key as Hydra's dict syntax takes it (spaces dropped); others are refused."""
    compact = key.replace(" ", "")
    if not _HYDRA_KEY.fullmatch(compact):
        raise RotoscopeError(
            f"prompts: key '{key}' cannot be given on the command line",
            "use a frame number, a time (2.5s) or a max_f expression without brackets, "
            "or put the prompts in a keyframe file",
        )
    return compact
