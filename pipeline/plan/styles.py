"""A1111 prompt styles: named prompt and negative-prompt fragments from a ``styles.csv``.

A1111 users keep their looks in ``styles.csv`` (columns ``name,prompt,negative_prompt``)
and pick them by name; ``styles=[name, ...]`` with ``styles_file`` does the same here, so
the file can be used as it is. Each style is applied the way A1111 applies it, in the
order given, to every prompt keyframe: a style text holding ``{prompt}`` has the prompt
put in its place, any other is appended with ", ". The same goes for negative prompts.
The plan rows hold the expanded prompts, so the plan and the PNG metadata show exactly
the text that was rendered.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import RotoscopeError

PLACEHOLDER = "{prompt}"


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str
    negative_prompt: str


def read_styles(path: Path) -> dict[str, Style]:
    """The styles of an A1111 ``styles.csv`` by name (a byte-order mark is fine)."""
    if not path.is_file():
        raise RotoscopeError(
            f"styles_file '{path}' does not exist",
            "point styles_file at an A1111 styles.csv (columns name,prompt,negative_prompt)",
        )
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, skipinitialspace=True)
            columns = set(reader.fieldnames or ())
            if not {"name", "prompt"} <= columns:
                raise RotoscopeError(
                    f"styles_file '{path}' has no name and prompt columns",
                    "its first line must be: name,prompt,negative_prompt",
                )
            return {
                row["name"]: Style(
                    row["name"], row["prompt"] or "", row.get("negative_prompt") or ""
                )
                for row in reader
                if row.get("name")
            }
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RotoscopeError(f"cannot read styles_file '{path}': {exc}") from exc


def merge_style(style_text: str, prompt: str) -> str:
    """One style applied to one prompt, as A1111 does it."""
    if PLACEHOLDER in style_text:
        return style_text.replace(PLACEHOLDER, prompt)
    return ", ".join(part for part in (prompt.strip(), style_text.strip()) if part)


def style_list(names: list[str], path: Path) -> list[Style]:
    """The named styles, in order; an unknown name is one line listing the known ones."""
    if not names:
        return []
    styles = read_styles(path)
    missing = [name for name in names if name not in styles]
    if missing:
        known = ", ".join(sorted(styles)) or "none"
        raise RotoscopeError(f"style '{missing[0]}' is not in {path}", f"the file has: {known}")
    return [styles[name] for name in names]


def apply_styles(styles: list[Style], prompt: str, negative: str) -> tuple[str, str]:
    """``prompt`` and ``negative`` with every style applied in order."""
    for style in styles:
        prompt = merge_style(style.prompt, prompt)
        negative = merge_style(style.negative_prompt, negative)
    return prompt, negative
