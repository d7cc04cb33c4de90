"""Read A1111's generation parameters back: ``keyframes=frame.png`` renders with them.

A1111 writes a picture's settings into its PNG as a ``parameters`` text chunk ("infotext"):
the prompt, a ``Negative prompt:`` line, and one line of ``Key: value`` entries (values
with a comma, colon or quote in double quotes, JSON-escaped); rotoscope writes its frames'
the same way (:mod:`pipeline.render.pngmeta`). This module parses that text as A1111's
``parse_generation_parameters`` does and turns the entries rotoscope has a setting for
into a keyframe file: prompt, sampler and schedule type, steps, CFG scale, seed and
variation seed, seed resize, size, denoising strength, CLIP skip, noise multiplier. The
rest (the model, LoRA hashes, extensions' entries) is reported, never dropped silently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from pipeline.errors import RotoscopeError
from pipeline.models.samplers import canonical_sampler

PARAMETERS_KEY = "parameters"
# One "Key: value" entry of the settings line (A1111's re_param)
ENTRY = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
NEGATIVE = "Negative prompt:"
SIZE = re.compile(r"^(\d+)x(\d+)$")
# A1111 entry -> rotoscope schedule (its value on every frame)
SCHEDULES = {
    "Steps": "steps",
    "CFG scale": "guidance_scale",
    "Denoising strength": "strength",
    "Variation seed": "subseed",
    "Variation seed strength": "subseed_strength",
    "Noise multiplier": "noise_multiplier",
}
# A1111 entry -> rotoscope setting, a whole number
INTEGERS = {"Seed": "seed", "Clip skip": "clip_skip"}
# Entries that say what made the picture, not how it looks from these settings
NOTED = ("Model", "Model hash", "VAE", "VAE hash", "Version", "Lora hashes", "TI hashes")


@dataclass
class A1111Parameters:
    """A parsed ``parameters`` text: prompt, negative prompt, the settings by A1111 name."""

    prompt: str
    negative_prompt: str
    settings: dict[str, str] = field(default_factory=dict)


@dataclass
class ParametersImport:
    """The keyframe-file content the parameters give, and what did not carry over."""

    keyframes: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def parse_parameters(text: str) -> A1111Parameters:
    """A1111's infotext as prompt, negative prompt and settings (values unquoted)."""
    *lines, last = text.strip().split("\n")
    if len(ENTRY.findall(last)) < 3:  # no settings line (A1111's own rule)
        lines.append(last)
        last = ""
    prompt: list[str] = []
    negative: list[str] = []
    target = prompt
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(NEGATIVE):
            target = negative
            stripped = stripped[len(NEGATIVE) :].strip()
        target.append(stripped)
    settings = {}
    for key, value in ENTRY.findall(last):
        value = value.strip()
        if len(value) > 1 and value[0] == value[-1] == '"':
            value = json.loads(value)
        settings[key.strip()] = value
    return A1111Parameters("\n".join(prompt).strip(), "\n".join(negative).strip(), settings)


def read_png_parameters(path: Path) -> A1111Parameters:
    """The parameters a PNG carries; one-line errors for a file without them."""
    try:
        with Image.open(path) as image:
            text = dict(getattr(image, "text", {}) or {}).get(PARAMETERS_KEY)
    except (OSError, UnidentifiedImageError) as exc:
        raise RotoscopeError(f"keyframes file '{path}' is not a readable PNG") from exc
    if not text:
        raise RotoscopeError(
            f"keyframes file '{path}' has no A1111 parameters",
            "give a PNG A1111 or rotoscope wrote (with its 'parameters' text)",
        )
    return parse_parameters(text)


def import_png(path: Path) -> ParametersImport:
    """The keyframe file of a PNG's A1111 parameters."""
    return parameters_keyframes(read_png_parameters(path), path)


def parameters_keyframes(params: A1111Parameters, path: Path) -> ParametersImport:
    """Parsed parameters as keyframe-file content (``prompts``, ``settings``)."""
    settings: dict[str, Any] = {}
    schedules: dict[str, str] = {}
    warnings: list[str] = []
    used: set[str] = set()
    entries = params.settings

    def number(name: str) -> float | None:
        used.add(name)
        try:
            return float(entries[name])
        except ValueError:
            warnings.append(f"{name}: {entries[name]!r} is not a number: not imported")
            return None

    for name, key in SCHEDULES.items():
        if name in entries and (value := number(name)) is not None:
            schedules[key] = f"{value:g}" if name != "Variation seed" else str(int(value))
    for name, key in INTEGERS.items():
        if name in entries and (value := number(name)) is not None:
            settings[key] = int(value)
    if "Variation seed strength" not in entries:
        schedules.pop("subseed", None)  # no strength: no variation (A1111 writes both)
    if "Sampler" in entries:
        used.add("Sampler")
        try:
            settings["sampler"] = canonical_sampler(entries["Sampler"])
        except RotoscopeError:
            warnings.append(f"Sampler: {entries['Sampler']!r} is not available: not imported")
    if "Schedule type" in entries:
        used.add("Schedule type")
        settings["scheduler"] = entries["Schedule type"]
    for name, keys in (
        ("Size", ("input.width", "input.height")),
        ("Seed resize from", ("seed_resize_from_w", "seed_resize_from_h")),
    ):
        if name in entries:
            used.add(name)
            size = SIZE.match(entries[name].strip())
            if size is None:
                warnings.append(f"{name}: {entries[name]!r} is not WxH: not imported")
                continue
            settings.update(zip(keys, (int(size.group(1)), int(size.group(2))), strict=True))
    noted = [f"{name}: {entries[name]}" for name in NOTED if name in entries]
    if noted:
        shown = "; ".join(noted)
        warnings.append(
            f"the model is not part of a keyframe file: render with the same one ({shown})"
        )
    unknown = [name for name in entries if name not in used and name not in NOTED]
    if unknown:
        shown = ", ".join(f"{name}: {entries[name]}" for name in unknown)
        warnings.append(f"parameters rotoscope has no setting for, not imported: {shown}")
    keyframes: dict[str, Any] = {"prompts": {0: params.prompt}}
    if params.negative_prompt:
        keyframes["negative_prompt"] = params.negative_prompt
    keyframes["schedules"] = schedules
    keyframes["settings"] = settings
    return ParametersImport(keyframes, warnings)
