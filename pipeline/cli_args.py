"""Make free-text command-line values safe for Hydra's override grammar.

A1111 prompts are full of characters Hydra's grammar gives meaning to: commas (sweeps),
parentheses and colons (weights), brackets, quotes. ``prompt=a cat, (oil:1.2)`` would be
rejected or, under ``-m``, split into a sweep. So values of the text keys below are
wrapped in a Hydra quoted string before Hydra sees them; a value the user already
quoted, or wrote as a sweep function (``choice(...)``), is left alone.
"""

from __future__ import annotations

import re

TEXT_KEYS = frozenset(
    {"prompt", "negative_prompt", "name", "input.path", "model.path", "model.config", "model.vae"}
)
SWEEP_FUNCTIONS = ("choice(", "range(", "interval(", "glob(", "shuffle(", "sort(", "tag(")


def hydra_quote(value: str) -> str:
    """Single-quote ``value`` for Hydra so it reads back exactly.

    In a Hydra quoted string a backslash is an escape only before a quote (or the
    closing quote), so only those backslashes are doubled; other backslashes, such as
    A1111's ``\\(`` escapes, stay as they are.
    """
    escaped = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, value)
    return "'" + escaped.replace("'", "\\'") + "'"


def quote_text_values(args: list[str]) -> list[str]:
    """Quote the values of TEXT_KEYS overrides; other arguments pass through."""
    return [_quote_arg(arg) for arg in args]


def _quote_arg(arg: str) -> str:
    if arg.startswith("-") or "=" not in arg:
        return arg
    key, value = arg.split("=", 1)
    if key.lstrip("+~") not in TEXT_KEYS or _already_hydra_syntax(value):
        return arg
    return f"{key}={hydra_quote(value)}"


def _already_hydra_syntax(value: str) -> bool:
    quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
    return quoted or value.startswith(SWEEP_FUNCTIONS)
