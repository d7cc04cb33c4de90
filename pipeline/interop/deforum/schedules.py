"""Deforum's schedule strings, read and rewritten for rotoscope's schedule reader.

Deforum writes ``frame:(value), ...``; rotoscope reads the same syntax more strictly. These
helpers take a schedule apart, convert its values (Deforum's strength is how much to keep,
rotoscope's how much to change; its noise is scaled), and find the entries Deforum's own
lenient reader would find in a schedule rotoscope would refuse.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

# Deforum's own schedule reader (animation_key_frames.parse_key_frames): entries found
# anywhere in the text, "frame: (value)" followed by a comma or the end.
DEFORUM_ENTRY = re.compile(r"(?P<frame>[0-9]+):\s*\((?P<param>[\S\s]*?)\)(,\s?|\s?$)")

NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def split_top_level(text: str) -> list[str]:
    """``text`` split at the commas outside parentheses (values may call ``where(a, b, c)``)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ')' at position {index + 1}")
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    if depth:
        raise ValueError("unbalanced '('")
    parts.append(text[start:])
    return parts


def _unwrap(value: str) -> str:
    """The inside of ``(value)`` when one pair of parentheses encloses all of it."""
    if not value.startswith("("):
        return value
    depth = 0
    for index, char in enumerate(value):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return value[1:-1].strip() if index == len(value) - 1 else value
    return value


def schedule_entries(text: str) -> list[tuple[str, str]]:
    """``[(frame, value), ...]`` of a Deforum schedule, values without their parentheses."""
    entries = []
    for part in split_top_level(text):
        frame, colon, value = part.partition(":")
        if not colon or not frame.strip() or not value.strip():
            raise ValueError(f"'{part.strip()}' is not 'frame:(value)'")
        entries.append((frame.strip(), _unwrap(value.strip())))
    return entries


def plain_number(number: Decimal) -> str:
    """A decimal without exponent or trailing zeros: 0.350 -> '0.35', -0 -> '0'."""
    return "0" if number == 0 else format(number.normalize(), "f")


def keep_to_strength(text: str) -> str:
    """Deforum's strength_schedule (how much to keep) as diffusers strength (how much to change)."""
    converted = []
    for frame, value in schedule_entries(text):
        if NUMBER.fullmatch(value):
            converted.append(f"{frame}:({plain_number(Decimal(1) - Decimal(value))})")
        else:
            converted.append(f"{frame}:(1-({value}))")
    return ", ".join(converted)


def is_strict_schedule(text: str) -> bool:
    """Whether every entry is ``frame:(value)`` with a value that has no stray colon, so
    rotoscope reads the text exactly as Deforum does."""
    try:
        entries = schedule_entries(text)
    except ValueError:
        return False
    return all(":" not in value and value.count("(") == value.count(")") for _, value in entries)


def scaled(text: str, factor: Decimal) -> str:
    """Every value of a schedule times ``factor`` (an expression ``e`` as ``factor*(e)``)."""
    try:
        entries = schedule_entries(text)
    except ValueError:
        return text
    return ", ".join(
        f"{frame}:({plain_number(Decimal(value) * factor)})"
        if NUMBER.fullmatch(value)
        else f"{frame}:({plain_number(factor)}*({value}))"
        for frame, value in entries
    )


def constant_value(text: Any) -> Decimal | None:
    """The value of a schedule that is one number on every keyframe, else None."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return Decimal(str(text))
    try:
        values = [value for _, value in schedule_entries(str(text))]
    except ValueError:
        return None
    if not all(NUMBER.fullmatch(value) for value in values):
        return None
    numbers = {Decimal(value) for value in values}  # 1 and 1.0 are the same value
    return numbers.pop() if len(numbers) == 1 else None


# ------------------------------------------------------------------- value helpers
