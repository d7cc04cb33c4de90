"""The configuration a job runs with: the composed config with its keyframe file applied.

A keyframe file may be rotoscope's own YAML or a Deforum settings file; the latter is
converted here (by :mod:`pipeline.interop.deforum`), so ``config`` never depends on a
foreign format.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from pipeline.config.keyframes import (
    KeyframeFile,
    apply_keyframe_file,
    keyframe_file,
    read_keyframe_data,
)
from pipeline.config.paths import find_keyframes
from pipeline.config.schema import RunConfig
from pipeline.interop.deforum.importer import import_deforum, is_deforum_settings

log = logging.getLogger("rotoscope")


def load_keyframes(path_text: str | Path) -> KeyframeFile:
    """Read and check a keyframe file (YAML, a JSON prompt object, or Deforum settings)."""
    path = find_keyframes(str(path_text))
    data = read_keyframe_data(path)
    if is_deforum_settings(data):
        converted = import_deforum(path)
        for warning in converted.warnings:
            log.warning("%s: %s", path, warning)
        data = converted.keyframes
    return keyframe_file(path, data)


def apply_keyframes(cfg: RunConfig, explicit: Iterable[str]) -> tuple[RunConfig, dict[str, str]]:
    """``cfg`` with its keyframe file's values for every key not given on the command line
    (``explicit``), and the origin of each value the file supplied."""
    if not cfg.keyframes:
        return cfg, {}
    return apply_keyframe_file(cfg, load_keyframes(cfg.keyframes), explicit)
