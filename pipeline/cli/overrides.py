"""Make free-text command-line values safe for Hydra's override grammar.

A1111 prompts and Deforum schedules are full of characters Hydra's grammar gives meaning
to: commas (sweeps), parentheses and colons (weights, keyframes), brackets, quotes.
``prompt=a cat, (oil:1.2)`` would be rejected or, under ``-m``, split into a sweep. So
values of the text keys below are wrapped in a Hydra quoted string before Hydra sees
them; a value the user already quoted, or wrote as a sweep function (``choice(...)``),
is left alone. To sweep prompts, use ``prompt='choice("a cat","a dog")'``.
"""

from __future__ import annotations

import re

from pipeline.config.schedulable import is_schedule_key

TEXT_KEYS = frozenset({"prompt", "negative_prompt", "prompt_prefix", "prompt_suffix"})
# Paths may hold spaces and brackets, but under multirun a comma lists several jobs
# (-m input.path=a.mp4,b.mp4): then each element is quoted on its own.
PATH_KEYS = frozenset(
    {"name", "keyframes", "input.path", "model.path", "model.config", "model.vae"}
)
# Schedules (pipeline.config.schedulable) are quoted only when they use schedule syntax
# (a colon or parentheses), so a plain number or a numeric sweep (-m strength=0.4,0.5)
# keeps Hydra's meaning.
CONTROL_PATH = re.compile(r"controlnet\.(annotators|units\.\w+\.(model|source))")
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
    """Quote the values of TEXT_KEYS, PATH_KEYS and schedule overrides."""
    multirun = any(arg in ("-m", "--multirun") for arg in args)
    return [_quote_arg(arg, multirun) for arg in args]


def _quote_arg(arg: str, multirun: bool) -> str:
    if arg.startswith("-") or "=" not in arg:
        return arg
    key, value = arg.split("=", 1)
    name = key.lstrip("+~")
    is_path = name in PATH_KEYS or bool(CONTROL_PATH.fullmatch(name))
    is_schedule = is_schedule_key(name) and any(ch in value for ch in ":()")
    if not (name in TEXT_KEYS or is_path or is_schedule) or _already_hydra_syntax(value):
        return arg
    if is_path and multirun and "," in value:
        return f"{key}=" + ",".join(hydra_quote(part) for part in value.split(","))
    return f"{key}={hydra_quote(value)}"


def _already_hydra_syntax(value: str) -> bool:
    quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
    return quoted or value.startswith(SWEEP_FUNCTIONS)
