"""Turn Hydra / OmegaConf composition errors into one line that names the key.

Hydra's own reports span several lines (override syntax help, object types, a hint about
HYDRA_FULL_ERROR). Users need the key, the bad value and what is allowed, so the CLI
composes the config once itself, before Hydra runs the job, and explains failures here.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
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

from pipeline.config.schema import ControlUnitConfig, RunConfig, register
from pipeline.errors import RotoscopeError

REQUIRED_HINTS = {
    "input.path": "give the clip, folder or image: rotoscope input.path=clip.mp4 prompt='...'",
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


def compose_checked(overrides: Sequence[str]) -> RunConfig:
    """Compose and type-check the config for ``overrides``; RotoscopeError on failure."""
    register()
    try:
        checked = first_combination(overrides)
        with initialize_config_module(config_module="pipeline.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=checked)
        return to_run_config(cfg)
    except (OverrideParseException, ConfigCompositionException, OmegaConfBaseException) as exc:
        raise RotoscopeError(explain(exc)) from exc


def explain(exc: BaseException) -> str:
    """One line for a composition error: the key, what was wrong, what to do."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if isinstance(exc, MissingConfigException) or isinstance(cause, MissingConfigException):
        missing = exc if isinstance(exc, MissingConfigException) else cause
        return _missing_option(missing)
    if isinstance(cause, MissingMandatoryValue):
        key = _full_key(cause)
        hint = REQUIRED_HINTS.get(key, f"set {key}=...")
        return f"{key} is required ({hint})"
    if isinstance(cause, ValidationError):
        key = _full_key(cause)
        detail = _first_line(getattr(cause, "msg", str(cause)))
        return f"bad value for {key}: {detail}"
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        key = _full_key(cause)
        return f"unknown config key '{key}'{_suggest(key)}"
    if isinstance(exc, OverrideParseException):
        return f"cannot parse the override: {_first_line(str(exc))} (use key=value)"
    return _first_line(str(cause) or str(exc))


def _missing_option(exc: MissingConfigException) -> str:
    """``model=foo`` with no conf/model/foo.yaml: list the presets that exist."""
    text = _first_line(str(exc))
    options = getattr(exc, "options", None) or []
    group = ""
    if "'" in text:
        group = text.split("'")[1].split("/")[0]
    if options:
        return f"unknown {group or 'config'} preset in '{text}' (choose from {', '.join(options)})"
    return text


def _full_key(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or "?"
    return str(key)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else "invalid configuration"


def _suggest(key: str) -> str:
    """A ``did you mean`` for typos, from the schema's own key names."""
    candidates = list(_all_keys(OmegaConf.structured(RunConfig)))
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    return (
        f" (did you mean '{close[0]}'?)" if close else " (see the configuration table in README.md)"
    )


def _all_keys(node: DictConfig, prefix: str = "") -> Iterable[str]:
    for key in node:
        full = f"{prefix}{key}"
        yield full
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            yield from _all_keys(child, f"{full}.")


def to_run_config(cfg: Any) -> RunConfig:
    """Turn a composed DictConfig into the typed dataclass tree."""
    register()  # the run_name resolver must exist to resolve the default name
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, RunConfig)
    obj.controlnet.units = {
        name: _control_unit(name, value) for name, value in obj.controlnet.units.items()
    }
    return obj


def _control_unit(name: str, value: Any) -> ControlUnitConfig:
    """One ``controlnet.units`` entry, checked against ControlUnitConfig."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ControlUnitConfig), value)
        unit = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise RotoscopeError(f"controlnet.units.{name}: {explain(exc)}") from exc
    assert isinstance(unit, ControlUnitConfig)
    return unit
