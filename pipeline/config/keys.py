"""Which config keys exist: did-you-mean suggestions, and which keys ``+`` may add.

Hydra's ``+key=value`` adds a key the config does not have. On the schema's own
dataclasses that key is then silently dropped when the config becomes a RunConfig, so
``+strenght=0.9`` used to run with the default strength. Only *open maps* take new keys:
``prompts``, ``controlnet.units`` (a new unit, whose fields are then a
:class:`ControlUnitConfig`'s), a unit's ``params``, ``schedule_interpolation``, and any
other dict-typed field. Every other ``+key`` gets the usual one-line unknown-key error
with a did-you-mean from the keys that exist at that level.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.config.schema import ControlUnitConfig, RunConfig
from pipeline.errors import RotoscopeError

# Open maps whose entries are themselves typed: controlnet.units.<name> is a unit.
TYPED_ENTRIES: dict[str, type] = {"controlnet.units": ControlUnitConfig}


@dataclass(frozen=True)
class KeyCheck:
    """Where a dotted key stops matching the schema (``known`` is the valid prefix)."""

    known: str  # the dotted prefix that exists
    choices: tuple[str, ...]  # the keys that exist right after it
    valid: bool  # the whole key exists, or lies inside an open map
    in_open_map: bool  # some part of the key is a new entry of an open map


def is_list_key(key: str) -> bool:
    """Whether ``key`` holds a list in the schema (``styles``, ``stages``, ``output.format``)."""
    node: Any = RunConfig
    for part in key.split("."):
        if not dataclasses.is_dataclass(node):
            return False
        hints = typing.get_type_hints(node)
        if part not in hints:
            return False
        node = hints[part]
    return typing.get_origin(node) is list


def check_key(key: str) -> KeyCheck:
    """Walk ``key`` through the schema (see the module doc for open maps)."""
    node: Any = RunConfig
    parts = key.split(".")
    open_map = False
    for index, part in enumerate(parts):
        prefix = ".".join(parts[:index])
        if dataclasses.is_dataclass(node):
            hints = typing.get_type_hints(node)
            if part not in hints:
                return KeyCheck(prefix, tuple(hints), False, open_map)
            node = hints[part]
        elif typing.get_origin(node) is dict:
            open_map = True
            node = TYPED_ENTRIES.get(prefix, typing.get_args(node)[1])
        else:
            return KeyCheck(prefix, (), node is Any, open_map)  # below a plain value
    return KeyCheck(key, (), True, open_map)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``did you mean 'x'? `` when ``word`` is close to one of ``choices``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def suggest(key: str) -> str:
    """`` (did you mean 'x.y'?)`` for a mistyped key, or where to look."""
    check = check_key(key)
    rest = key[len(check.known) :].lstrip(".").split(".")[0]
    close = difflib.get_close_matches(rest, check.choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{'.'.join(filter(None, [check.known, close[0]]))}'?)"
    if check.choices:
        where = f"under {check.known}" if check.known else "at the top level"
        return f" (keys {where}: {', '.join(check.choices)})"
    return " (see the configuration table in README.md)"


def check_added_keys(overrides: Sequence[str]) -> None:
    """Refuse ``+key=value`` unless ``key`` is a new entry of an open map.

    ``++key=value`` (Hydra's "add or override") may also name an existing key.
    """
    for override in overrides:
        if not override.startswith("+") or "=" not in override:
            continue
        key = override.split("=", 1)[0].lstrip("+")
        check = check_key(key)
        if not check.valid:
            raise RotoscopeError(f"unknown config key '{key}'{suggest(key)}")
        if not check.in_open_map and not override.startswith("++"):
            value = override.split("=", 1)[1]
            raise RotoscopeError(f"{key} already exists", f"set it without '+': {key}={value}")
