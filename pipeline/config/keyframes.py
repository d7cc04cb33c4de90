"""Keyframe files: prompts and schedules keyed by frame, applied as config values.

A keyframe file (``keyframes=path.yaml``) is a friendlier spelling of config keys:

    prompts:                  # frame number or time ("2.5s") -> text; "--neg" splits a negative
      0: "winter forest, snow --neg people"
      "4s": "spring forest, blossoms"
    negative_prompt: "blurry"  # added to every frame's negative
    prompt_prefix: "masterpiece"
    prompt_suffix: "highly detailed"
    prompt_blend: linear      # linear | slerp | none
    schedules:                # Deforum schedule strings
      strength: "0:(0.65), 96:(0.45)"
      zoom: "0:(1.0), 48:(1.02)"
    interpolation:            # per schedule: linear (default) | hold | cubic
      strength: cubic
    settings:                 # any other config key, dotted
      seed_behavior: iter
      animation.mode: loopback

Every entry becomes the config key it names, with one precedence rule: a key given on
the command line wins over the file, and the file wins over presets and defaults. The
resolved values land in the run folder's ``config.yaml``, so a run records its whole
animation even if the keyframe file is edited later. A Deforum prompt object
(``{"0": "...", "30": "..."}``) may be pasted under ``prompts:`` or be the whole file,
and a Deforum ``*_settings.txt`` can be given directly (it is converted on load).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.config.compose import explain, literal, literal_node, to_run_config
from pipeline.config.keys import did_you_mean
from pipeline.config.schedulable import SCHEDULE_KEYS
from pipeline.config.schema import RunConfig
from pipeline.errors import RotoscopeError

log = logging.getLogger("rotoscope")

# The render size is one setting: a command line that gives any of these replaces all
# of a keyframe file's.
SIZE_KEYS = frozenset({"input.width", "input.height", "input.scale", "input.size"})
TEXT_ENTRIES = ("negative_prompt", "prompt_prefix", "prompt_suffix", "prompt_blend")
TOP_LEVEL = ("prompts", *TEXT_ENTRIES, "schedules", "interpolation", "settings")


@dataclass(frozen=True)
class KeyframeFile:
    """A parsed keyframe file, already translated to dotted config keys."""

    path: Path
    values: dict[str, Any] = field(default_factory=dict)


def keyframe_file(path: Path, data: dict[str, Any]) -> KeyframeFile:
    """Check the entries of a keyframe file read from ``path`` (a Deforum settings file
    already converted: see :mod:`pipeline.run.configure`)."""
    if data and all(_looks_like_frame_key(key) for key in data):
        data = {"prompts": data}  # a bare Deforum/FizzNodes prompt object
    return KeyframeFile(path=path, values=_to_config_keys(data, path))


def read_keyframe_data(path: Path) -> dict[str, Any]:
    """The mapping a keyframe file holds (YAML, or JSON: Deforum's files load too)."""
    if not path.is_file():
        raise RotoscopeError(
            f"keyframes file '{path}' does not exist", "give a .yaml file like those in keyframes/"
        )
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)  # YAML is a superset of JSON: Deforum files load too
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise RotoscopeError(
            f"keyframes file '{path}' is not valid YAML{where}: {problem}",
            "quote prompts that contain ':' or '#'",
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RotoscopeError(f"keyframes file '{path}' must be a mapping of entries, not a list")
    return data


def _looks_like_frame_key(key: object) -> bool:
    text = str(key).strip()
    return text.isdigit() or (text.endswith("s") and text[:-1].replace(".", "", 1).isdigit())


def _to_config_keys(data: dict[str, Any], path: Path) -> dict[str, Any]:
    unknown = [key for key in data if key not in TOP_LEVEL]
    if unknown:
        raise RotoscopeError(
            f"keyframes file '{path}': unknown entry '{unknown[0]}'",
            f"{did_you_mean(str(unknown[0]), TOP_LEVEL)}allowed: {', '.join(TOP_LEVEL)}",
        )
    values: dict[str, Any] = {}
    if data.get("prompts") is not None:
        values["prompts"] = _prompts(data["prompts"], path)
    for key in TEXT_ENTRIES:
        if data.get(key) is not None:
            values[key] = str(data[key])
    for name, text in _mapping(data, "schedules", path).items():
        if name not in SCHEDULE_KEYS:
            raise RotoscopeError(
                f"keyframes file '{path}': unknown schedule 'schedules.{name}'",
                f"{did_you_mean(name, SCHEDULE_KEYS)}schedules are: {', '.join(SCHEDULE_KEYS)}",
            )
        values[SCHEDULE_KEYS[name]] = str(text)
    for name, mode in _mapping(data, "interpolation", path).items():
        if name not in SCHEDULE_KEYS:
            raise RotoscopeError(
                f"keyframes file '{path}': 'interpolation.{name}' names no schedule",
                f"{did_you_mean(name, SCHEDULE_KEYS)}schedules are: {', '.join(SCHEDULE_KEYS)}",
            )
        values[f"schedule_interpolation.{name}"] = str(mode)
    values.update(_mapping(data, "settings", path))
    return values


def _mapping(data: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise RotoscopeError(f"keyframes file '{path}': '{key}' must be a mapping")
    return {str(k): v for k, v in value.items()}


def _prompts(prompts: Any, path: Path) -> dict[str, str]:
    if not isinstance(prompts, dict) or not prompts:
        raise RotoscopeError(
            f"keyframes file '{path}': 'prompts' must map frames to text",
            'for example  0: "winter forest"',
        )
    result = {}
    for key, text in prompts.items():
        if not isinstance(text, str):
            raise RotoscopeError(
                f"keyframes file '{path}': prompt at key '{key}' is not text", "quote it"
            )
        result[str(key).strip()] = text
    return result


def apply_keyframe_file(
    cfg: RunConfig, keyframes: KeyframeFile, explicit: Iterable[str]
) -> tuple[RunConfig, dict[str, str]]:
    """``cfg`` with the keyframe file's values for every key not set on the command line.

    Also returns, for each key the file supplied, the file's path: errors found later
    (a bad schedule) then name the file rather than the command line.
    """
    explicit_keys = {key.lstrip("+~") for key in explicit}
    node = literal_node(cfg)
    origins: dict[str, str] = {}
    size_given = explicit_keys & SIZE_KEYS
    for key, value in keyframes.values.items():
        if key in explicit_keys or (key == "prompts" and "prompt" in explicit_keys):
            if key == "prompts":
                log.warning(
                    "prompt= on the command line replaces the %d prompt keyframe(s) of %s "
                    "(to change one of them instead: prompts.<frame>=...)",
                    len(value), cfg.keyframes,
                )  # fmt: skip
            continue
        if key in SIZE_KEYS and size_given:
            # input.width=768 alone means "keep the aspect ratio", not "768 by the file's
            # height": the size is one setting, given on the command line as a whole
            log.info("%s on the command line: %s's %s is not used", ", ".join(sorted(size_given)),
                     cfg.keyframes, key)  # fmt: skip
            continue
        if key == "prompts" and any(k.startswith("prompts.") for k in explicit_keys):
            value = {**value, **cfg.prompts}  # prompts.10=... on the command line wins
        try:
            OmegaConf.update(node, key, literal(value), merge=False)
        except OmegaConfBaseException as exc:
            raise RotoscopeError(f"keyframes file '{cfg.keyframes}': {explain(exc)}") from exc
        origins[key] = str(cfg.keyframes)
    return to_run_config(node), origins


def explicit_keys(overrides: Iterable[str]) -> set[str]:
    """Config keys named by command-line overrides (``a.b=1`` -> ``a.b``)."""
    keys = set()
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key and not key.startswith("hydra"):
            keys.add(key)
    return keys
