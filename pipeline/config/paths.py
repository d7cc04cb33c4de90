"""Where rotoscope keeps models, annotators, LoRAs, embeddings and outputs.

One place decides it, so every preset (``model=tiny``, ``controlnet=canny``...), the
bundled keyframe files and a pip-installed rotoscope agree, whatever folder the command
runs from. The home folder is, in order:

1. ``$ROTOSCOPE_HOME``, when set;
2. the source checkout rotoscope runs from (the folder holding ``pyproject.toml`` next
   to the ``pipeline`` package), as with ``bash scripts/setup_env.sh``;
3. a per-user data folder: ``$XDG_DATA_HOME/rotoscope`` (``~/.local/share/rotoscope``),
   or ``~/Library/Application Support/rotoscope`` on macOS.

The ``paths`` config group (``conf/paths/default.yaml``) builds every other folder from
it, and any of them can be set on its own (``paths.models=/data/sd``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pipeline.errors import RotoscopeError

HOME_ENV = "ROTOSCOPE_HOME"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Keyframe files that ship with rotoscope (the checkout's keyframes/ links here).
BUNDLED_KEYFRAMES = PACKAGE_DIR / "keyframes"
# Suffixes of weight files a name may leave out (upscale.model=4x-UltraSharp).
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin", ".pkl")


def source_checkout() -> Path | None:
    """The checkout this package runs from, or None for an installed package."""
    root = PACKAGE_DIR.parent
    project = root / "pyproject.toml"
    if project.is_file() and 'name = "rotoscope"' in project.read_text(encoding="utf-8"):
        return root
    return None


def user_data_dir() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "rotoscope"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rotoscope"


def rotoscope_home() -> Path:
    """The folder every default path is built from (see the module docstring)."""
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser().absolute()
    return source_checkout() or user_data_dir()


def find_keyframes(value: str) -> Path:
    """A keyframe file as given, or else among the bundled ones (``keyframes/seasons.yaml``
    and ``seasons.yaml`` both find the bundled file from any folder)."""
    given = Path(value).expanduser()
    if given.exists() or given.is_absolute():
        return given
    for candidate in (BUNDLED_KEYFRAMES / given, BUNDLED_KEYFRAMES / given.name):
        if candidate.is_file():
            return candidate
    return given


def find_weights(value: str, folder: str, key: str, folder_key: str) -> Path:
    """A weights file given by ``key``: a path, or a file name in ``folder`` (the config
    key ``folder_key``), with or without its suffix (``4x-UltraSharp`` finds
    ``4x-UltraSharp.pth``). A missing file is one line saying where to put it."""
    given = Path(value).expanduser()
    if given.is_file():
        return given
    base = Path(folder).expanduser()
    names = [value] if given.suffix.lower() in WEIGHT_SUFFIXES else []
    names += [f"{value}{suffix}" for suffix in WEIGHT_SUFFIXES]
    for name in names:
        if (base / name).is_file():
            return base / name
    wanted = value if names[0] == value else f"{value}.safetensors (or .pth)"
    raise RotoscopeError(
        f"{key}={value} is not a file, and {folder_key} ({base}) has no {given.name} file",
        f"put {Path(wanted).name} into {base}, or give the file's path",
    )
