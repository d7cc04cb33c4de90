"""Values as Deforum's settings files store them: switches, numbers, "nothing selected"."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any


def is_on(value: Any) -> bool:
    """Deforum switches: JSON booleans, and "True"/"1" strings in older files."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def as_int(value: Any, default: int) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return default


def is_off(value: Any) -> bool:
    """The "nothing selected" values Deforum's dropdowns and text boxes store."""
    return value is None or value is False or str(value).strip() in ("", "None", "none")


def show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def details(data: Mapping[str, Any], keys: Iterable[str]) -> str:
    return ", ".join(f"{key}={show(data[key])}" for key in keys if key in data)
