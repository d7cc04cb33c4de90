"""PNG frames with the parameters that made them.

Each frame carries A1111's ``parameters`` text chunk, so dropping it on A1111's or
ComfyUI's PNG-info reader shows prompt, sampler, seed and strength, and a ``rotoscope``
JSON chunk with the full plan row and source position, so any frame can be reproduced
exactly. Writes are atomic (temp file + rename): a crash never leaves half a PNG under a
frame's final name, which is what lets resume trust every file it finds.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from pipeline.atomic import atomic_path
from pipeline.config.schema import MaskArea, MaskFill
from pipeline.plan.rows import ControlValues, PlanRow

PARAMETERS_KEY = "parameters"
JSON_KEY = "rotoscope"
# A1111's words for how a masked area is rendered ("Masked content", "Inpaint area")
MASKED_CONTENT = {
    MaskFill.original: "original",
    MaskFill.fill: "fill",
    MaskFill.latent_noise: "latent noise",
    MaskFill.latent_nothing: "latent nothing",
}
INPAINT_AREA = {MaskArea.full: "Whole picture", MaskArea.masked: "Only masked"}


def a1111_parameters(
    row: PlanRow,
    model_name: str | None,
    model_hash: str | None,
    controlnets: list[dict[str, str]] | None = None,
    extra: list[tuple[str, str]] | None = None,
) -> str:
    """The ``parameters`` text in A1111's layout (prompt, negative line, settings line),
    with ``Schedule type`` when it is not Automatic, ``Variation seed`` and its strength
    when that is not 0, ``Seed resize from`` when it applies, ``Clip skip`` and ``Noise
    multiplier`` when they are not 1, A1111's inpainting
    entries for a masked frame, the ``extra`` entries (``Lora hashes``, ``TI hashes``) and
    one ``ControlNet N`` entry per unit as A1111's ControlNet extension writes it. No model
    (``model_name`` None) for a frame that was not diffused (an empty mask)."""
    lines = [row.prompt]
    if row.negative_prompt:
        lines.append(f"Negative prompt: {row.negative_prompt}")
    settings: list[tuple[str, Any]] = [("Steps", row.steps), ("Sampler", row.sampler)]
    if row.scheduler is not None:
        settings.append(("Schedule type", row.scheduler))
    settings += [
        ("CFG scale", _number(row.guidance_scale)),
        ("Seed", row.seed),
        ("Size", f"{row.width}x{row.height}"),
    ]
    if model_hash:
        settings.append(("Model hash", model_hash))
    if model_name is not None:
        settings.append(("Model", model_name))
    if row.subseed_strength is not None:
        settings.append(("Variation seed", row.subseed))
        settings.append(("Variation seed strength", _number(row.subseed_strength)))
    if row.seed_resize_from_w is not None:
        settings.append(("Seed resize from", f"{row.seed_resize_from_w}x{row.seed_resize_from_h}"))
    if not row.txt2img:  # A1111's txt2img has no denoising strength
        settings.append(("Denoising strength", _number(row.strength)))
    if row.clip_skip:
        settings.append(("Clip skip", row.clip_skip))
    if row.mask_area is not None:
        settings.append(("Mask blur", _number(row.mask_blur or 0.0)))
        settings.append(("Inpaint area", INPAINT_AREA[row.mask_area]))
        settings.append(("Masked area padding", row.mask_padding or 0))
        settings.append(("Masked content", MASKED_CONTENT[row.mask_fill or MaskFill.original]))
    if row.noise_multiplier is not None:
        settings.append(("Noise multiplier", _number(row.noise_multiplier)))
    if row.cadence_from is not None:
        settings.append(("Cadence", cadence_words(row)))
    settings += extra or []
    for number, unit in enumerate(controlnets or []):
        values = (row.controls or {}).get(unit["unit"], ControlValues())
        fields = [
            ("Module", unit["preprocessor"]),
            ("Model", unit["model"]),
            ("Weight", _number(values.weight)),
            ("Guidance Start", _number(values.start)),
            ("Guidance End", _number(values.end)),
        ]
        settings.append((f"ControlNet {number}", ", ".join(f"{k}: {v}" for k, v in fields)))
    lines.append(", ".join(f"{key}: {_quote(str(value))}" for key, value in settings))
    return "\n".join(lines)


def cadence_words(row: PlanRow) -> str:
    """How a frame of a cadence was made, and from which frames."""
    made_from = " and ".join(str(index) for index in row.carried_from)
    if row.diffused:
        return f"diffused, shown tweened with frame {made_from}"
    if row.cadence_from is not None and row.cadence_to is not None and row.cadence_to != row.index:
        return f"carried from frames {made_from}"
    return f"carried from frame {made_from}"


def cadence_details(row: PlanRow) -> dict[str, object] | None:
    """The ``rotoscope`` chunk's words on a cadence: diffused or carried, from which frames."""
    if row.cadence_from is None:
        return None
    return {"diffused": row.diffused, "made_from": row.carried_from}


def _number(value: float) -> str:
    """A1111 prints 7.0 as 7 and 0.45 as 0.45."""
    return f"{value:g}"


def _quote(value: str) -> str:
    """Quote a value the way A1111's infotext parser expects when it has , : or quotes."""
    if any(ch in value for ch in ',:"\n'):
        return json.dumps(value, ensure_ascii=False)
    return value


def write_png(path: Path, image: np.ndarray, parameters: str, details: dict[str, Any]) -> None:
    """Write ``image`` (RGB uint8) with both chunks, atomically.

    zlib's run-length strategy (``Z_RLE``) after PNG's per-row filters: diffusion output
    is noise-like to zlib, where searching for repeated strings (the default strategy)
    costs 1.7-2.7 times the CPU (512x512: 34 against 20 ms for noise, 53 against 20 ms
    for a smooth noisy picture) and saves nothing (files came out the same size or
    smaller on noisy, smooth and test-pattern frames). PNG is lossless either way.
    """
    info = PngImagePlugin.PngInfo()
    info.add_itxt(PARAMETERS_KEY, parameters)
    info.add_itxt(JSON_KEY, json.dumps(details, sort_keys=True, ensure_ascii=False))
    with atomic_path(path) as tmp:  # never half a frame under its name (full disk, kill)
        Image.fromarray(image).save(
            tmp, format="PNG", pnginfo=info, compress_level=4, compress_type=zlib.Z_RLE
        )


def read_png_metadata(path: Path) -> dict[str, Any]:
    """Both chunks of a frame: ``{"parameters": str, "rotoscope": dict}``."""
    with Image.open(path) as img:
        text = dict(getattr(img, "text", {}) or {})
    details = text.get(JSON_KEY)
    return {
        PARAMETERS_KEY: text.get(PARAMETERS_KEY),
        JSON_KEY: json.loads(details) if details else None,
    }
