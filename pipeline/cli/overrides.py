"""Make free-text command-line values safe for Hydra's override grammar.

A1111 prompts and Deforum schedules are full of characters Hydra's grammar gives meaning
to: commas (sweeps), parentheses and colons (weights, keyframes), brackets, quotes and
``${...}`` (interpolation). ``prompt=a cat, (oil:1.2)`` would be rejected or, under
``-m``, split into a sweep. So values of the keys below are wrapped in a Hydra quoted
string before Hydra sees them:

- **prompts** (``prompt``, ``negative_prompt``, ``prompt_prefix``, ``prompt_suffix`` and
  keyframed entries ``prompts.<key>``), the mask's key colour (``mask.key=#00b140``) and
  its expression (``mask.expression={mask} | [logo.png]``) always pass verbatim,
  whatever they hold: a prompt that starts with a quote (``"Starry Night" by van Gogh``)
  is text, not Hydra syntax. Under ``-m`` a list of quoted prompts
  (``prompt='"a cat, oil","a dog"'``) is a sweep, one job per prompt (without ``-m`` it
  is refused: it would be one prompt made of quotes and commas), and a sweep function
  (``prompt='choice("a cat","a dog")'``) is left to Hydra. ``prompts={0: a cat, 10: a
  dog}`` is read by :mod:`pipeline.cli.prompt_map`; ``prompts.10=a dog`` adds (or
  replaces) one entry.
- **paths** and **schedules** are quoted unless the value is already exactly one
  quoted string or a sweep function; under ``-m`` a comma in a path lists several jobs
  (``-m input.path=a.mp4,b.mp4``), so each element is quoted on its own.
- **lists** (``styles``, ``stages``, ``output.format``) take one value as a list of one
  (``styles=ink`` is ``styles=[ink]``; under ``-m``, ``output.format=mp4,webm`` is two
  jobs); and ``output=[mp4,images]``, which picks two presets of the ``output`` group,
  writes both formats (Hydra merges the presets, and the last one's ``format`` alone
  would win).
"""

from __future__ import annotations

import re

from pipeline.cli.prompt_map import hydra_key, parse_prompt_map
from pipeline.config.compose import literal
from pipeline.config.keys import is_list_key
from pipeline.config.schedulable import is_schedule_key
from pipeline.errors import RotoscopeError

TEXT_KEYS = frozenset(
    {"prompt", "negative_prompt", "prompt_prefix", "prompt_suffix", "mask.key", "mask.expression"}
)
PROMPT_ENTRY = re.compile(r"prompts\.[^=]+")
# Paths may hold spaces and brackets, but under multirun a comma lists several jobs
# (-m input.path=a.mp4,b.mp4): then each element is quoted on its own.
PATH_KEYS = frozenset(
    {
        "name", "keyframes", "input.path", "model.path", "model.config", "model.vae",
        "model.lora_dir", "model.embeddings_dir", "styles_file", "output.root", "mask.path",
    }
)  # fmt: skip
# Schedules (pipeline.config.schedulable) are quoted only when they use schedule syntax
# (a colon or parentheses), so a plain number or a numeric sweep (-m strength=0.4,0.5)
# keeps Hydra's meaning.
PATH_PATTERN = re.compile(
    r"controlnet\.(annotators|units\.\w+\.(model|source))|paths\.\w+"
    r"|animation\.(color_coherence_video|depth\.(annotators|folder))"
)  # the ControlNet, depth model and colour video paths, and every folder of the paths group
SWEEP_FUNCTIONS = ("choice(", "range(", "interval(", "glob(", "shuffle(", "sort(", "tag(")


def hydra_quote(value: str) -> str:
    """Single-quote ``value`` for Hydra so it reads back exactly.

    In a Hydra quoted string a backslash is an escape only before a quote (or the
    closing quote), so only those backslashes are doubled; other backslashes, such as
    A1111's ``\\(`` escapes, stay as they are. ``${`` would start an interpolation, so
    it is escaped as ``\\${`` (a backslash right before it doubled, for the same reason).
    """
    escaped = literal(re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, value))
    return "'" + escaped.replace("'", "\\'") + "'"


def quote_text_values(args: list[str]) -> list[str]:
    """Quote the values of prompts, paths and schedule overrides (see the module doc).

    Raises RotoscopeError for a ``prompts={...}`` value that is not a map of prompts.
    """
    multirun = any(arg in ("-m", "--multirun") for arg in args)
    return [_quote_arg(arg, multirun) for arg in args]


def _quote_arg(arg: str, multirun: bool) -> str:
    if arg.startswith("-") or "=" not in arg:
        return arg
    key, value = arg.split("=", 1)
    name = key.lstrip("+~")
    if name in TEXT_KEYS or PROMPT_ENTRY.fullmatch(name):
        if multirun and value.startswith(SWEEP_FUNCTIONS):
            return arg
        several = quoted_list(value)
        if several is not None:
            if not multirun:
                raise RotoscopeError(
                    f"{name}={value} lists {len(several)} prompts, which run as several jobs "
                    "only with -m",
                    f"rotoscope -m ... {name}={value} runs one job per prompt; or give one",
                )
            return f"{key}=" + ",".join(hydra_quote(text) for text in several)
        if PROMPT_ENTRY.fullmatch(name) and not key.startswith("~"):
            key = "++" + name  # a new keyframe, or one a preset already has
        return f"{key}={hydra_quote(value)}"
    if name == "prompts" and not key.startswith("~"):
        entries = parse_prompt_map(value).items()
        pairs = ", ".join(f"{hydra_key(k)}: {hydra_quote(text)}" for k, text in entries)
        return f"++{name}={{{pairs}}}"  # "++": a struct dict takes new keys only so
    is_path = name in PATH_KEYS or bool(PATH_PATTERN.fullmatch(name))
    is_schedule = is_schedule_key(name) and any(ch in value for ch in ":()")
    if not (is_path or is_schedule) or _already_hydra_syntax(value):
        return arg
    if is_path and multirun and "," in value:
        return f"{key}=" + ",".join(hydra_quote(part) for part in value.split(","))
    return f"{key}={hydra_quote(value)}"


def quoted_list(value: str) -> list[str] | None:
    """The texts of two or more quoted strings separated by commas (``"a, b","c"``), or
    None for anything else (one quoted string is a prompt that starts with a quote)."""
    parts: list[str] = []
    index = 0
    while index < len(value):
        quote = value[index]
        if quote not in "'\"":
            return None
        end = index + 1
        while end < len(value) and value[end] != quote:
            end += 2 if value[end] == "\\" else 1
        if end >= len(value):
            return None
        parts.append(value[index + 1 : end].replace("\\" + quote, quote))
        index = end + 1
        while index < len(value) and value[index] == " ":
            index += 1
        if index < len(value):
            if value[index] != ",":
                return None
            index += 1
            while index < len(value) and value[index] == " ":
                index += 1
    return parts if len(parts) >= 2 else None


def expand_lists(args: list[str]) -> list[str]:
    """List-typed keys given one value, and ``output=[...]`` (see the module doc)."""
    multirun = any(arg in ("-m", "--multirun") for arg in args)
    result = []
    named = {arg.split("=", 1)[0].lstrip("+~") for arg in args if "=" in arg}
    for arg in args:
        result.append(_as_list(arg, multirun))
        key, _, value = arg.partition("=")
        one_list = value.startswith("[") and value.endswith("]") and value.count("[") == 1
        if key == "output" and one_list and "output.format" not in named:
            result.append(f"output.format={value}")
    return result


def _as_list(arg: str, multirun: bool) -> str:
    if arg.startswith("-") or "=" not in arg:
        return arg
    key, value = arg.split("=", 1)
    if key.startswith("~") or not is_list_key(key.lstrip("+")):
        return arg
    if not value.strip() or value.startswith(("[", *SWEEP_FUNCTIONS)):
        return arg
    if multirun and "," in value:  # a sweep: one list per value
        return f"{key}=" + ",".join(f"[{part.strip()}]" for part in value.split(","))
    return f"{key}=[{value}]"


def _already_hydra_syntax(value: str) -> bool:
    """One quoted string from end to end (``'a b'``), or a sweep function."""
    return is_one_quoted_string(value) or value.startswith(SWEEP_FUNCTIONS)


def is_one_quoted_string(value: str) -> bool:
    """True for ``'...'`` or ``"..."`` whose first unescaped closing quote is its last
    character: ``"a" by "b"`` starts and ends with a quote but is not one string."""
    if len(value) < 2 or value[0] not in "'\"" or value[-1] != value[0]:
        return False
    index = 1
    while index < len(value) - 1:
        if value[index] == "\\":
            index += 2
            continue
        if value[index] == value[0]:
            return False
        index += 1
    return True
