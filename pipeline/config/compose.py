"""Turn Hydra / OmegaConf composition errors into one line that names the key.

Hydra's own reports span several lines (override syntax help, object types, a hint about
HYDRA_FULL_ERROR). Users need the key, the bad value and what is allowed, so the CLI
composes the config once itself, before Hydra runs the job, and explains failures here.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    MissingMandatoryValue,
    OmegaConfBaseException,
    ValidationError,
)

from pipeline.config.keys import check_added_keys, suggest
from pipeline.config.schedulable import CONTROL_UNIT_SCHEDULES, SCHEDULES
from pipeline.config.schema import ControlUnitConfig, RunConfig, register
from pipeline.errors import RotoscopeError

REQUIRED_HINTS = {
    "model.path": "pick a model preset (model=sd15, model=tiny) or set model.path=...",
}


def first_combination(overrides: Sequence[str]) -> list[str]:
    """Replace each sweep (``a=1,2``) by its first value so one job can be checked."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    result: list[str] = []
    for raw, override in zip(overrides, parsed, strict=True):
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            result.append(f"{override.get_key_element()}={first}")
        else:
            result.append(raw)
    return result


def refuse_sweeps(overrides: Sequence[str]) -> None:
    """A value list such as ``guidance_scale=5,7`` runs several jobs only with ``-m``."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    for raw, override in zip(overrides, parsed, strict=True):
        if override.is_sweep_override():
            raise RotoscopeError(
                f"{raw} gives several values, which run as several jobs only with -m",
                f"rotoscope -m ... {raw} runs one job per value; or give one value",
            )


def compose_checked(overrides: Sequence[str], multirun: bool = True) -> RunConfig:
    """Compose and type-check the config for ``overrides``; RotoscopeError on failure.

    Under multirun a sweep (``a=1,2``) is checked by its first value; without it a
    sweep is refused, since Hydra would stop with a multi-line report.
    """
    register()
    try:
        if not multirun:
            refuse_sweeps(overrides)
        check_added_keys(overrides)
        checked = first_combination(overrides)
        with initialize_config_module(config_module="pipeline.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=checked)
        return to_run_config(cfg)
    except (OverrideParseException, ConfigCompositionException, OmegaConfBaseException) as exc:
        raise RotoscopeError(explain(exc)) from exc


def explain(exc: BaseException) -> str:
    """One line for a composition error: the key, what was wrong, what to do."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if isinstance(exc, MissingConfigException):
        return _missing_option(exc)
    if isinstance(cause, MissingConfigException):
        return _missing_option(cause)
    if isinstance(cause, MissingMandatoryValue):
        key = _full_key(cause)
        hint = REQUIRED_HINTS.get(key, f"set {key}=...")
        return f"{key} is required ({hint})"
    if isinstance(cause, ValidationError):
        key = _full_key(cause)
        detail = _first_line(getattr(cause, "msg", str(cause)))
        return f"bad value for {key}: {detail}{_closest_choice(detail)}"
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        key = _full_key(cause)
        return f"unknown config key '{key}'{suggest(key)}"
    if isinstance(exc, OverrideParseException):
        return f"cannot parse the override: {_first_line(str(exc))} (use key=value)"
    return _first_line(str(cause) or str(exc))


def _closest_choice(detail: str) -> str:
    """`` (did you mean 'iter'?)`` for OmegaConf's "Invalid value 'itr', expected one of
    [fixed, iter, ...]" (an enum value mistyped)."""
    match = re.match(r"Invalid value '([^']*)', expected one of \[([^\]]*)\]", detail)
    if match is None:
        return ""
    choices = [choice.strip() for choice in match.group(2).split(",")]
    close = difflib.get_close_matches(match.group(1), choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _missing_option(exc: MissingConfigException) -> str:
    """``model=tinyy`` or ``controlnet=[canny,cany]``: name the preset, list those that exist."""
    text = _first_line(str(exc))
    match = re.search(r"'([\w.-]+)/([^'/]+)'", text)
    if match is None:
        return text
    group, name = match.groups()
    presets = group_presets(group)
    close = difflib.get_close_matches(name, presets, n=1, cutoff=0.6)
    mean = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown {group} preset '{name}' ({mean}choose from {', '.join(presets)})"


def group_presets(group: str) -> list[str]:
    """The presets of a config group: the YAML files in ``conf/<group>/``."""
    folder = resources.files("pipeline.conf") / group
    if not folder.is_dir():
        return []
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir()
                  if entry.name.endswith(".yaml"))  # fmt: skip


def _full_key(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or "?"
    return str(key)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else "invalid configuration"


def literal(value: Any) -> Any:
    """``value`` (a config dataclass, dict, list or string) with every ``${`` escaped.

    A RunConfig holds prompts verbatim (``a sign saying ${price}``); turning it back
    into an OmegaConf node (to apply a keyframe file, to write ``config.yaml``) would
    read such text as an interpolation. Escaped, it resolves back to the same text.
    """
    if isinstance(value, str):
        return re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: literal(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    if isinstance(value, dict):
        return {key: literal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [literal(item) for item in value]
    return value


def literal_node(cfg: RunConfig) -> DictConfig:
    """``cfg`` as an OmegaConf node that reads back verbatim (see :func:`literal`)."""
    return OmegaConf.structured(literal(cfg))


def to_run_config(cfg: Any) -> RunConfig:
    """Turn a composed DictConfig into the typed dataclass tree."""
    register()  # the run_name resolver must exist to resolve the default name
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, RunConfig)
    obj.prompts = {str(key).strip(): text for key, text in obj.prompts.items()}
    obj.controlnet.units = {
        name: _in_controlnet_folder(_control_unit(name, value), obj.paths.controlnet)
        for name, value in obj.controlnet.units.items()
    }
    _check_interpolation_names(obj)
    return obj


def _check_interpolation_names(cfg: RunConfig) -> None:
    """``schedule_interpolation`` keys must name a schedule, or a typo is silently unused."""
    names = [item.name for item in SCHEDULES] + [
        f"{unit}.{part}" for unit in cfg.controlnet.units for part in CONTROL_UNIT_SCHEDULES
    ]
    for name in cfg.schedule_interpolation:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"schedules: {', '.join(names)}"
            raise RotoscopeError(f"schedule_interpolation.{name} names no schedule ({hint})")


# The files a ControlNet folder holds, named alone
CONTROLNET_FILES = (".safetensors", ".pth", ".ckpt", ".bin")


def _in_controlnet_folder(unit: ControlUnitConfig, folder: str) -> ControlUnitConfig:
    """A unit whose model is a file name alone (A1111's ControlNet model list, a Deforum
    import) reads that file from ``paths.controlnet``."""
    model = unit.model
    if "/" in model or "\\" in model or not model.endswith(CONTROLNET_FILES):
        return unit
    return dataclasses.replace(unit, model=str(Path(folder).expanduser() / model))


def _control_unit(name: str, value: Any) -> ControlUnitConfig:
    """One ``controlnet.units`` entry, checked against ControlUnitConfig."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ControlUnitConfig), value)
        unit = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise RotoscopeError(f"controlnet.units.{name}: {explain(exc)}") from exc
    assert isinstance(unit, ControlUnitConfig)
    return unit
