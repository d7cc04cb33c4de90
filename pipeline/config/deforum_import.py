"""Convert a Deforum settings file into a rotoscope keyframe file.

Deforum (the AUTOMATIC1111 extension, deforum-art/sd-webui-deforum) saves its settings
as one flat JSON object: "Save settings" in its UI, and ``<timestring>_settings.txt``
next to the frames of every run. ``python -m pipeline.config.deforum_import SETTINGS -o
keyframes/NAME.yaml`` writes the equivalent keyframe file; ``keyframes=`` also takes the
settings file directly and converts it on load. Whatever rotoscope cannot reproduce is
reported, each with its Deforum name and value, and never dropped silently.

Facts about Deforum this relies on (checked against its ``args.py``, ``settings.py``,
``render.py``, ``animation.py``, ``animation_key_frames.py`` and
``deprecation_utils.py``):

- Prompts are ``prompts`` (older files: ``animation_prompts``), frame -> text, keys are
  frame numbers as strings or ``max_f`` expressions, ``--neg`` starts the negative
  part. A run prepends ``animation_prompts_positive`` and appends
  ``animation_prompts_negative`` to the negative part, and a run's own
  ``_settings.txt`` stores the prompts already combined that way, with the parts under
  ``positive_prompts``/``negative_prompts``; the import takes the combination apart.
  Prompts hold until the next key (no blending), so the import sets
  ``prompt_blend: none``.
- Schedules are ``frame:(value), ...``; numbers interpolate linearly, expressions of
  ``t``, ``max_f`` and ``s`` are evaluated per frame: the syntax rotoscope reads, so
  they are copied as written. ``strength_schedule`` is how much of the previous frame
  to keep, rotoscope's strength how much to change: ``v`` becomes ``1-v`` (exactly, so
  0.65 becomes 0.35) and an expression ``e`` becomes ``1-(e)``.
- ``steps_schedule`` counts only with ``enable_steps_scheduling``, otherwise ``steps``.
  A1111's img2img (under Deforum) and diffusers' both run about ``steps * strength``
  denoising steps, so the number means the same in both.
- ``seed`` -1 means a random seed (a run's file keeps the -1). ``seed_schedule`` counts
  only with ``seed_behavior: schedule``, and -1 in it means a random seed too.
- Modes: "2D" warps the previous output (loopback); "3D" warps it with a depth model;
  "Video Input" img2imgs the frames of ``video_init_path`` (taking the frame count
  from the video, not ``max_frames``); "Interpolation" is txt2img per frame.
- 2D motion is ``cv2.getRotationMatrix2D(centre, angle, zoom)`` after a translation by
  ``translation_x/y`` pixels, about ``transform_center_x/y`` (fractions of W/H), with
  ``border`` "wrap" or, for any other value, replicate (see pipeline.animation.motion).
- ``color_coherence`` is "None", "LAB", "HSV", "RGB", "Video Input" or "Image"; older
  files say "Match Frame 0 LAB" and so on for the first three.
- ``diffusion_cadence`` n > 1 diffuses every n-th frame and blends the frames between
  (not in Video Input mode); the anti-blur (``amount_schedule`` > 0, on by default),
  ``contrast_schedule``, Perlin ``noise_type`` and the ``enable_*_scheduling`` switches
  act every frame.
- ``noise_schedule``: Deforum blends the frame towards a noise image by that amount
  (the image's spread is about 0.36 of the range), rotoscope adds Gaussian noise of
  that standard deviation. So each value is multiplied by 0.36 (an expression ``e``
  becomes ``0.36*(e)``): about the same amount of noise, without Deforum's loss of
  contrast.
- Deforum reads schedules leniently: ``re.finditer`` over ``frame: (value)`` entries,
  skipping whatever lies between them, so ``0:0: (7)`` is ``0: (7)`` there. A schedule
  rotoscope's stricter syntax would refuse is rewritten as Deforum reads it, with a
  warning. ``zoom``, ``angle`` and the transform centre act in 2D mode only (3D mode
  moves its camera with ``translation_x/y/z`` and ``rotation_3d_*``, which are
  reported), so they are copied for 2D files alone; a 2D zoom keyframe that is not
  positive (Deforum shrinks the frame to nothing) is imported as 1, with a warning.
- Files from A1111 1.9 on store ``sampler_name`` and ``scheduler`` ("Karras",
  "Automatic", ...) where older ones had ``sampler`` ("DPM++ 2M Karras"), and some
  store ``width``/``height`` instead of ``W``/``H``; both spellings are read.
  ``Automatic`` means the sampler's A1111 default (Karras for DPM++ 2M and DPM++ SDE).
- ``clipskip_schedule`` (with ``enable_clipskip_scheduling``) becomes ``clip_skip``: its
  value at frame 0, with a warning when it changes later.

A setting is reported when it would change Deforum's picture for this file (its switch
is on, its value is not the neutral one, it applies to the file's mode) and rotoscope
cannot reproduce it. Settings that never change the picture (names, folders, saving,
video encoding) are listed in IGNORED; a setting in no list is reported as unknown.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from pipeline.atomic import write_text
from pipeline.errors import RotoscopeError
from pipeline.models.samplers import SAMPLER_NAMES, canonical_sampler

# rotoscope schedule name -> Deforum key; copied in loopback modes (the camera in 2D only)
_MOTION_SCHEDULES = {
    "zoom": "zoom",
    "angle": "angle",
    "translation_x": "translation_x",
    "translation_y": "translation_y",
    "transform_center_x": "transform_center_x",
    "transform_center_y": "transform_center_y",
    "noise": "noise_schedule",
}
_LOOPBACK_MODES = ("2D", "3D")
# Deforum's 2D-only camera: its 3D mode ignores these (and moves by translation_x/y/z,
# rotation_3d_*, which have no rotoscope equivalent).
_2D_ONLY = ("zoom", "angle", "transform_center_x", "transform_center_y")
_3D_MOVES = ("translation_x", "translation_y")
# Deforum's noise image spreads over about 0.36 of the range; rotoscope adds Gaussian
# noise with the schedule's value as its standard deviation.
NOISE_SCALE = Decimal("0.36")
# Deforum's own schedule reader (animation_key_frames.parse_key_frames): entries found
# anywhere in the text, "frame: (value)" followed by a comma or the end.
_DEFORUM_ENTRY = re.compile(r"(?P<frame>[0-9]+):\s*\((?P<param>[\S\s]*?)\)(,\s?|\s?$)")
# A1111 1.9's "Automatic" scheduler for the samplers whose default is not uniform.
_AUTOMATIC_KARRAS = ("DPM++ 2M", "DPM++ SDE")
# Schedulers that are the sampler's own sigmas in diffusers terms.
_PLAIN_SCHEDULERS = ("uniform", "normal", "")
_ANIMATION_MODES = {
    "2D": "loopback",
    "3D": "loopback",  # reported: imported as loopback without its 3D camera
    "None": "none",
    "Video Input": "none",
    "Interpolation": "none",  # reported: txt2img per frame has no rotoscope mode
}
_SEED_BEHAVIORS = ("iter", "fixed", "random", "ladder", "alternate", "schedule")
_BORDERS = ("replicate", "wrap")
# Sampler names of Deforum's Colab era that pipeline.models.samplers does not spell
_SAMPLER_ALIASES = {"klms": "LMS"}

# Keys the import reads (their values become keyframe-file entries or are checked there).
_MAPPED = frozenset(
    {
        "prompts", "animation_prompts", "animation_prompts_positive",
        "animation_prompts_negative", "positive_prompts", "negative_prompts",
        "strength_schedule", "cfg_scale_schedule", "scale", "steps", "steps_schedule",
        "enable_steps_scheduling", "seed", "seed_behavior", "seed_iter_N", "seed_schedule",
        "sampler", "sampler_name", "scheduler", "fps", "max_frames", "W", "H", "width",
        "height", "enable_clipskip_scheduling", "clipskip_schedule", "animation_mode", "border",
        "color_coherence", "color_coherence_image_path",
        "color_coherence_video_every_N_frames", "video_init_path", "extract_nth_frame",
        "extract_from_frame", "extract_to_frame", "sd_model_name", "sd_model_hash",
        *_MOTION_SCHEDULES.values(),
    }
)  # fmt: skip

# Keys that never change the picture: names, folders, what is saved or shown, how the
# video is encoded, bookkeeping, and constants the UI stores.
IGNORED = frozenset(
    {
        # names, folders, saving, display
        "batch_name", "outdir", "filename_format", "save_settings", "save_samples",
        "display_samples", "save_sample_per_step", "show_sample_per_step",
        "show_info_on_ui", "save_depth_maps", "timestring", "deforum_git_commit_id",
        "overwrite_extracted_frames", "image_path", "mp4_path", "store_frames_in_ram",
        # video encoding (the frames are the same)
        "skip_video_creation", "skip_video_for_run_all", "make_gif", "delete_imgs",
        "delete_input_frames", "ffmpeg_location", "ffmpeg_crf", "ffmpeg_preset",
        "render_steps", "path_name_modifier", "max_video_frames", "use_manual_settings",
        # what to do when the safety filter blanks a frame (rotoscope has no such filter)
        "reroll_blank_frames", "reroll_patience",
        # fixed latent constants and per-image batch counts of the still-image mode
        "C", "f", "precision", "n_samples", "n_batch",
        # the Colab notebook's prompt-weight switches (A1111 always parses weights)
        "prompt_weighting", "normalize_prompt_weights", "log_weighted_subprompts",
        # used only with an instruct-pix2pix checkpoint
        "pix2pix_img_cfg_scale_schedule",
        # the Colab notebook's batch-mode prompt and grid, and its runtime placeholders
        "prompt", "make_grid", "grid_rows", "init_latent", "init_sample", "init_c",
    }
)  # fmt: skip


@dataclass
class DeforumImport:
    """A converted settings file: the keyframe-file content and what did not carry over."""

    keyframes: dict[str, Any]  # ready for yaml.safe_dump; read by pipeline.config.keyframes
    warnings: list[str] = field(default_factory=list)


def import_deforum(path: Path) -> DeforumImport:
    """Read Deforum settings (JSON) and convert them; see the module notes for the rules."""
    return _Importer(_load(path), path).run()


def keyframe_text(result: DeforumImport, source: Path) -> str:
    """The keyframe file as YAML, headed by comments naming the source and every warning."""
    lines = [
        f"# rotoscope keyframes imported from Deforum settings {source}",
        "# (rotoscope-import-deforum). Strength is diffusers' (how much to change),",
        "# converted from Deforum's strength_schedule (how much to keep): 1 - value.",
    ]
    if result.warnings:
        lines.append("# Not imported or changed, review before rendering:")
        lines += [f"#   - {warning}" for warning in result.warnings]
    body = yaml.safe_dump(
        result.keyframes, sort_keys=False, allow_unicode=True, default_flow_style=False, width=4096
    )
    return "\n".join(lines) + "\n" + body


def main(argv: list[str] | None = None) -> None:
    """``python -m pipeline.config.deforum_import SETTINGS [-o keyframes/NAME.yaml]``."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.config.deforum_import",
        description="Convert a Deforum settings file (*_settings.txt) to a rotoscope "
        "keyframe file. Warnings go to stderr and into the file as comments.",
    )
    parser.add_argument("settings", type=Path, help="Deforum settings file (JSON)")
    parser.add_argument(
        "-o", "--output", type=Path, help="keyframe file to write (default: standard output)"
    )
    args = parser.parse_args(argv)
    try:
        result = import_deforum(args.settings)
        text = keyframe_text(result, args.settings)
        if args.output is not None:
            _write(args.output, text)
    except RotoscopeError as exc:
        print(f"rotoscope: error: {exc}", file=sys.stderr)
        sys.exit(2)
    for warning in result.warnings:
        print(f"rotoscope: warning: {warning}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(text)
    else:
        print(f"rotoscope: wrote {args.output}", file=sys.stderr)


def _write(path: Path, text: str) -> None:
    try:
        write_text(path, text, durable=False)
    except OSError as exc:
        raise RotoscopeError(f"cannot write '{path}': {exc.strerror or exc}") from exc


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RotoscopeError(
            f"Deforum settings file '{path}' does not exist",
            "Deforum saves it as <timestring>_settings.txt next to a run's frames",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise RotoscopeError(f"Deforum settings file '{path}' is not a text file") from exc
    except OSError as exc:
        raise RotoscopeError(f"cannot read '{path}': {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise RotoscopeError(
            f"Deforum settings file '{path}' is not valid JSON "
            f"(line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    if not (
        isinstance(data, dict)
        and ("prompts" in data or "animation_prompts" in data)
        and ("max_frames" in data or "animation_mode" in data)
    ):
        raise RotoscopeError(
            f"'{path}' is not a Deforum settings file",
            "it needs 'prompts' and 'max_frames' entries, as Deforum writes them",
        )
    return data


# ---------------------------------------------------------------- schedule strings


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _split_top_level(text: str) -> list[str]:
    """``text`` split at the commas outside parentheses (values may call ``where(a, b, c)``)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ')' at position {index + 1}")
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    if depth:
        raise ValueError("unbalanced '('")
    parts.append(text[start:])
    return parts


def _unwrap(value: str) -> str:
    """The inside of ``(value)`` when one pair of parentheses encloses all of it."""
    if not value.startswith("("):
        return value
    depth = 0
    for index, char in enumerate(value):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return value[1:-1].strip() if index == len(value) - 1 else value
    return value


def _schedule_entries(text: str) -> list[tuple[str, str]]:
    """``[(frame, value), ...]`` of a Deforum schedule, values without their parentheses."""
    entries = []
    for part in _split_top_level(text):
        frame, colon, value = part.partition(":")
        if not colon or not frame.strip() or not value.strip():
            raise ValueError(f"'{part.strip()}' is not 'frame:(value)'")
        entries.append((frame.strip(), _unwrap(value.strip())))
    return entries


def _plain(number: Decimal) -> str:
    """A decimal without exponent or trailing zeros: 0.350 -> '0.35', -0 -> '0'."""
    return "0" if number == 0 else format(number.normalize(), "f")


def _keep_to_strength(text: str) -> str:
    """Deforum's strength_schedule (how much to keep) as diffusers strength (how much to change)."""
    converted = []
    for frame, value in _schedule_entries(text):
        if _NUMBER.fullmatch(value):
            converted.append(f"{frame}:({_plain(Decimal(1) - Decimal(value))})")
        else:
            converted.append(f"{frame}:(1-({value}))")
    return ", ".join(converted)


def _is_strict_schedule(text: str) -> bool:
    """Whether every entry is ``frame:(value)`` with a value that has no stray colon, so
    rotoscope reads the text exactly as Deforum does."""
    try:
        entries = _schedule_entries(text)
    except ValueError:
        return False
    return all(":" not in value and value.count("(") == value.count(")") for _, value in entries)


def _scaled(text: str, factor: Decimal) -> str:
    """Every value of a schedule times ``factor`` (an expression ``e`` as ``factor*(e)``)."""
    try:
        entries = _schedule_entries(text)
    except ValueError:
        return text
    return ", ".join(
        f"{frame}:({_plain(Decimal(value) * factor)})"
        if _NUMBER.fullmatch(value)
        else f"{frame}:({_plain(factor)}*({value}))"
        for frame, value in entries
    )


def _constant(text: Any) -> Decimal | None:
    """The value of a schedule that is one number on every keyframe, else None."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return Decimal(str(text))
    try:
        values = [value for _, value in _schedule_entries(str(text))]
    except ValueError:
        return None
    if not all(_NUMBER.fullmatch(value) for value in values):
        return None
    numbers = {Decimal(value) for value in values}  # 1 and 1.0 are the same value
    return numbers.pop() if len(numbers) == 1 else None


# ------------------------------------------------------------------- value helpers


def _on(value: Any) -> bool:
    """Deforum switches: JSON booleans, and "True"/"1" strings in older files."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _as_int(value: Any, default: int) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return default


def _is_off(value: Any) -> bool:
    """The "nothing selected" values Deforum's dropdowns and text boxes store."""
    return value is None or value is False or str(value).strip() in ("", "None", "none")


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _details(data: Mapping[str, Any], keys: Iterable[str]) -> str:
    return ", ".join(f"{key}={_show(data[key])}" for key in keys if key in data)


# ----------------------------------------------------------- what is not imported


@dataclass(frozen=True)
class UnsupportedFeature:
    """A Deforum feature rotoscope cannot reproduce, and when a file uses it."""

    what: str  # what is lost, said to the user
    keys: tuple[str, ...]  # shown with their values when the feature is in use
    active: Callable[[Mapping[str, Any]], bool]
    covers: tuple[str, ...] = ()  # more settings of the feature, not shown


def _mode(data: Mapping[str, Any]) -> str:
    return str(data.get("animation_mode", "2D"))


def _moving(data: Mapping[str, Any]) -> bool:
    return _mode(data) in _LOOPBACK_MODES


def _not(key: str, neutral: str) -> Callable[[Mapping[str, Any]], bool]:
    """Active when ``key`` is present and is not the constant schedule ``neutral``."""
    return lambda data: key in data and _constant(data[key]) != Decimal(neutral)


def _switch(key: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda data: _on(data.get(key, False))


def _switch_and_not(switch: str, key: str, neutral: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda data: _on(data.get(switch, False)) and _not(key, neutral)(data)


_3D_KEYS = (*_3D_MOVES, "translation_z", "rotation_3d_x", "rotation_3d_y", "rotation_3d_z")
_3D_COVERS = (
    "fov_schedule", "near_schedule", "far_schedule", "aspect_ratio_schedule",
    "aspect_ratio_use_old_formula", "use_depth_warping", "depth_algorithm", "midas_weight",
    "padding_mode", "sampling_mode", "use_zoe_depth", "near_plane", "far_plane", "fov",
)  # fmt: skip
_FLIP_KEYS = (
    "enable_perspective_flip", "flip_2d_perspective", "perspective_flip_theta",
    "perspective_flip_phi", "perspective_flip_gamma", "perspective_flip_fv",
)  # fmt: skip
_MASK_COVERS = (
    "mask_contrast_adjust", "mask_brightness_adjust", "overlay_mask", "mask_overlay_blur",
    "fill", "full_res_mask", "full_res_mask_padding",
)  # fmt: skip
_LOOPER_COVERS = (
    "blendFactorMax",
    "blendFactorSlope",
    "tweening_frames_schedule",
    "color_correction_factor",
)

UNSUPPORTED: tuple[UnsupportedFeature, ...] = (
    UnsupportedFeature(
        "animation_mode '3D' (a depth-warped 3D camera) is not supported: imported as 2D "
        "loopback without camera motion (the 3D camera moves are dropped)",
        _3D_KEYS,
        lambda data: _mode(data) == "3D",
        _3D_COVERS,
    ),
    UnsupportedFeature(
        "diffusion cadence (diffusing every n-th frame and blending the frames between) is "
        "not supported: every frame is diffused",
        ("diffusion_cadence", "optical_flow_cadence"),
        lambda data: _moving(data) and _as_int(data.get("diffusion_cadence", 1), 1) > 1,
        ("cadence_flow_factor_schedule",),
    ),
    UnsupportedFeature(
        "perspective flip is not supported",
        _FLIP_KEYS,
        lambda data: (
            _moving(data)
            and (_on(data.get("enable_perspective_flip")) or _on(data.get("flip_2d_perspective")))
        ),
    ),
    UnsupportedFeature(
        "the per-frame contrast multiplier is not supported",
        ("contrast_schedule",),
        _not("contrast_schedule", "1"),
    ),
    UnsupportedFeature(
        "anti-blur sharpening is not supported",
        ("amount_schedule", "kernel_schedule", "sigma_schedule", "threshold_schedule"),
        _not("amount_schedule", "0"),
    ),
    UnsupportedFeature(
        "Perlin-shaped noise is not supported: the noise schedule adds plain Gaussian noise",
        ("noise_type", "perlin_w", "perlin_h", "perlin_octaves", "perlin_persistence"),
        lambda data: (
            str(data.get("noise_type", "")).lower() == "perlin"
            and _not("noise_schedule", "0")(data)
        ),
    ),
    UnsupportedFeature(
        "hybrid video (motion or compositing from a second video) is not supported",
        ("hybrid_motion", "hybrid_composite"),
        lambda data: (
            not _is_off(data.get("hybrid_motion")) or not _is_off(data.get("hybrid_composite"))
        ),
    ),
    UnsupportedFeature(
        "optical-flow redo generation is not supported",
        ("optical_flow_redo_generation",),
        lambda data: not _is_off(data.get("optical_flow_redo_generation")),
        ("redo_flow_factor_schedule",),
    ),
    UnsupportedFeature(
        "diffusion redo is not supported",
        ("diffusion_redo",),
        lambda data: _as_int(data.get("diffusion_redo", 0), 0) != 0,
    ),
    UnsupportedFeature(
        "the init image is not imported: give it as input.path",
        ("use_init", "init_image", "strength", "use_alpha_as_mask"),
        lambda data: _on(data.get("use_init")) and _mode(data) != "Video Input",
        ("strength_0_no_init",),
    ),
    UnsupportedFeature(
        "masks are not supported",
        ("use_mask", "mask_file", "invert_mask", "mask_schedule"),
        _switch("use_mask"),
        _MASK_COVERS,
    ),
    UnsupportedFeature(
        "mask videos are not supported",
        ("use_mask_video", "video_mask_path"),
        _switch("use_mask_video"),
    ),
    UnsupportedFeature(
        "noise masks are not supported",
        ("use_noise_mask", "noise_mask_schedule"),
        _switch("use_noise_mask"),
    ),
    UnsupportedFeature(
        "subseeds are not supported",
        ("enable_subseed_scheduling", "subseed_schedule", "subseed_strength_schedule"),
        _switch("enable_subseed_scheduling"),
    ),
    UnsupportedFeature(
        "subseeds are not supported",
        ("subseed", "subseed_strength"),
        lambda data: _constant(data.get("subseed_strength", 0)) != 0,
        ("seed_enable_extras",),
    ),
    UnsupportedFeature(
        "resizing the seed's noise from another size is not supported",
        ("seed_resize_from_w", "seed_resize_from_h"),
        lambda data: (
            _as_int(data.get("seed_resize_from_w", 0), 0) > 0
            or _as_int(data.get("seed_resize_from_h", 0), 0) > 0
        ),
    ),
    UnsupportedFeature(
        "sampler scheduling is not supported: one sampler for all frames",
        ("enable_sampler_scheduling", "sampler_schedule"),
        _switch("enable_sampler_scheduling"),
    ),
    UnsupportedFeature(
        "checkpoint scheduling is not supported: one model for all frames",
        ("enable_checkpoint_scheduling", "checkpoint_schedule"),
        _switch("enable_checkpoint_scheduling"),
    ),
    UnsupportedFeature(
        "the img2img noise multiplier is not supported (rotoscope uses 1)",
        ("enable_noise_multiplier_scheduling", "noise_multiplier_schedule"),
        _switch_and_not("enable_noise_multiplier_scheduling", "noise_multiplier_schedule", "1"),
    ),
    UnsupportedFeature(
        "DDIM eta scheduling is not supported",
        ("enable_ddim_eta_scheduling", "ddim_eta_schedule"),
        _switch_and_not("enable_ddim_eta_scheduling", "ddim_eta_schedule", "0"),
    ),
    UnsupportedFeature(
        "ancestral eta scheduling is not supported",
        ("enable_ancestral_eta_scheduling", "ancestral_eta_schedule"),
        _switch_and_not("enable_ancestral_eta_scheduling", "ancestral_eta_schedule", "1"),
    ),
    UnsupportedFeature("tiling is not supported", ("tiling",), _switch("tiling")),
    UnsupportedFeature(
        "the Colab notebook's sample clamping (dynamic/static threshold) is not supported",
        ("dynamic_threshold", "static_threshold"),
        lambda data: (
            not (_is_off(data.get("dynamic_threshold")) and _is_off(data.get("static_threshold")))
        ),
    ),
    UnsupportedFeature(
        "DDIM eta is not supported (rotoscope's DDIM runs at eta 0)",
        ("ddim_eta",),
        lambda data: _constant(data.get("ddim_eta", 0)) not in (None, 0),
    ),
    UnsupportedFeature(
        "interpolating between keyframe images is not supported",
        ("interpolate_key_frames", "interpolate_x_frames"),
        _switch("interpolate_key_frames"),
    ),
    UnsupportedFeature(
        "face restoration is not supported", ("restore_faces",), _switch("restore_faces")
    ),
    UnsupportedFeature(
        "forcing grayscale is not supported",
        ("color_force_grayscale",),
        _switch("color_force_grayscale"),
    ),
    UnsupportedFeature(
        "legacy colour matching (before the noise) is not supported",
        ("legacy_colormatch",),
        _switch("legacy_colormatch"),
    ),
    UnsupportedFeature(
        "resuming a Deforum run is not imported: rotoscope resumes from its own run folder",
        ("resume_from_timestring", "resume_timestring"),
        _switch("resume_from_timestring"),
    ),
    UnsupportedFeature(
        "a Parseq manifest replaces Deforum's schedules and is not supported",
        ("parseq_manifest",),
        lambda data: not _is_off(data.get("parseq_manifest")),
        ("parseq_use_deltas",),
    ),
    UnsupportedFeature(
        "guided images (the looper) are not supported",
        ("use_looper", "init_images", "image_strength_schedule"),
        _switch("use_looper"),
        _LOOPER_COVERS,
    ),
    UnsupportedFeature(
        "upscaling the frames is not supported",
        ("r_upscale_video", "r_upscale_factor", "r_upscale_model"),
        _switch("r_upscale_video"),
        ("r_upscale_keep_imgs",),
    ),
    UnsupportedFeature(
        "frame interpolation (RIFE/FILM) is not supported",
        ("frame_interpolation_engine", "frame_interpolation_x_amount"),
        lambda data: (
            not _is_off(data.get("frame_interpolation_engine"))
            and str(data.get("frame_interpolation_x_amount", "")) != "Disabled"
        ),
        (
            "frame_interpolation_slow_mo_enabled",
            "frame_interpolation_slow_mo_amount",
            "frame_interpolation_keep_imgs",
            "frame_interpolation_use_upscaled",
        ),
    ),
    UnsupportedFeature(
        "a soundtrack file is not added: rotoscope keeps the input video's audio",
        ("add_soundtrack", "soundtrack_path"),
        lambda data: data.get("add_soundtrack") in ("File", True),
    ),
)

# Families of keys that the rules above cover by prefix
_HYBRID = re.compile(r"hybrid_")
_CONTROLNET = re.compile(r"cn_(\d+)_")
_COVERED = frozenset(key for rule in UNSUPPORTED for key in (*rule.keys, *rule.covers))


# ------------------------------------------------------------------------ importer


class _Importer:
    """One conversion: reads ``data``, fills ``keyframes`` and ``warnings``."""

    def __init__(self, data: dict[str, Any], path: Path) -> None:
        self.data = data
        self.path = path
        self.mode = _mode(data)
        self.warnings: list[str] = []
        self.schedules: dict[str, str] = {}
        self.settings: dict[str, Any] = {}

    def run(self) -> DeforumImport:
        keyframes: dict[str, Any] = {}
        prompts, negative, prefix = self._prompts()
        keyframes["prompts"] = prompts
        if negative:
            keyframes["negative_prompt"] = negative
        if prefix:
            keyframes["prompt_prefix"] = prefix
        self._generation()
        self._animation()
        self._unsupported()
        keyframes["schedules"] = self.schedules
        keyframes["settings"] = self.settings
        return DeforumImport(keyframes=keyframes, warnings=self.warnings)

    # -- prompts

    def _prompts(self) -> tuple[dict[int | str, str], str, str]:
        """Prompts by frame, the negative added to all, and the prefix of all."""
        raw = self.data.get("prompts", self.data.get("animation_prompts"))
        if isinstance(raw, str):  # older files store the prompt box's JSON text
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise self._error(f"the prompts are not a JSON object ({exc.msg})") from exc
        if not isinstance(raw, dict) or not raw:
            raise self._error("'prompts' must map frames to prompt text")
        prompts: dict[int | str, str] = {}
        for key, text in raw.items():
            if not isinstance(text, str):
                raise self._error(f"the prompt at frame '{key}' is not text")
            frame = str(key).strip()
            prompts[int(frame) if frame.isdigit() else frame] = text

        if "animation_prompts_positive" in self.data or "animation_prompts_negative" in self.data:
            prefix = str(self.data.get("animation_prompts_positive") or "")
            negative = str(self.data.get("animation_prompts_negative") or "")
        else:  # a run's settings file: prompts already combined with these two
            prefix = str(self.data.get("positive_prompts") or "")
            negative = str(self.data.get("negative_prompts") or "")
            separated = _separate(prompts, prefix, negative.replace("--neg", ""))
            if separated is None:
                prefix = negative = ""  # keep the combined prompts: nothing is added twice
            else:
                prompts = separated
        prompts = dict(sorted(prompts.items(), key=_frame_order))
        math_frames = [str(frame) for frame, text in prompts.items() if "`" in text]
        if math_frames:
            self.warnings.append(
                f"prompts at frame {', '.join(math_frames)} use Deforum's `expression` "
                "weights, which rotoscope does not evaluate: replace them with numbers"
            )
        return prompts, negative.replace("--neg", "").strip(), prefix.strip()

    # -- sampling

    def _generation(self) -> None:
        data, settings = self.data, self.settings
        if "strength_schedule" in data:
            text = self._schedule_text("strength_schedule")
            try:
                self.schedules["strength"] = _keep_to_strength(text)
            except ValueError as exc:
                raise self._error(f"strength_schedule '{text}' is not a schedule: {exc}") from exc
        if "cfg_scale_schedule" in data:
            self.schedules["guidance_scale"] = self._schedule_text("cfg_scale_schedule")
        elif "scale" in data:  # Colab-era files: one CFG scale
            self.schedules["guidance_scale"] = f"0:({data['scale']})"
        if _on(data.get("enable_steps_scheduling")) and "steps_schedule" in data:
            self.schedules["steps"] = self._schedule_text("steps_schedule")
        elif "steps" in data:
            self.schedules["steps"] = f"0:({data['steps']})"

        behavior = str(data.get("seed_behavior", "iter"))
        if behavior in _SEED_BEHAVIORS:
            settings["seed_behavior"] = behavior
        else:
            self.warnings.append(
                f"seed_behavior {_show(behavior)} is unknown: rotoscope's default is used"
            )
        seed = _as_int(data.get("seed", -1), -1)
        if seed >= 0:
            settings["seed"] = seed
        else:
            why = "is random in Deforum" if seed == -1 else "is not a seed"
            self.warnings.append(
                f"seed={_show(data.get('seed', -1))} {why}, which has no reproducible "
                "equivalent: the seed is left to rotoscope (set seed=N to choose one)"
            )
        if behavior == "iter" and "seed_iter_N" in data:
            settings["seed_iter_n"] = _as_int(data["seed_iter_N"], 1)
        if behavior == "schedule" and "seed_schedule" in data:
            text = self._schedule_text("seed_schedule")
            self.schedules["seed"] = text
            try:
                random_keys = [frame for frame, value in _schedule_entries(text) if value == "-1"]
            except ValueError:
                random_keys = []  # rotoscope reports the broken schedule when it reads it
            if random_keys:
                self.warnings.append(
                    f"seed_schedule={_show(text)} uses -1 (a random seed in Deforum) at frame "
                    f"{', '.join(random_keys)}: rotoscope takes -1 as a seed value"
                )
        self._sampler()
        self._clip_skip()
        for target, keys in (("input.width", ("W", "width")), ("input.height", ("H", "height"))):
            present = [key for key in keys if key in data]
            if present:
                settings[target] = _as_int(data[present[0]], 0)
        settings["prompt_blend"] = "none"  # Deforum switches prompts at their keys

    def _sampler(self) -> None:
        key = "sampler" if "sampler" in self.data else "sampler_name"
        if key not in self.data:
            return
        name = self.data[key]
        if isinstance(name, str):
            try:
                sampler = canonical_sampler(_SAMPLER_ALIASES.get(name, name))
            except RotoscopeError:
                pass
            else:
                self.settings["sampler"] = self._with_scheduler(sampler)
                return
        self.warnings.append(
            f"{key}={_show(name)} is not available in rotoscope: the default sampler is used"
        )

    def _clip_skip(self) -> None:
        if not _on(self.data.get("enable_clipskip_scheduling")):
            return
        text = self._schedule_text("clipskip_schedule") if "clipskip_schedule" in self.data else ""
        try:
            entries = _schedule_entries(text)
        except ValueError:
            entries = []
        first = next((value for frame, value in entries if frame == "0"), None)
        if first is None or not _NUMBER.fullmatch(first):
            self.warnings.append(
                f"clipskip_schedule={_show(text)} has no number at frame 0: clip_skip is left as is"
            )
            return
        self.settings["clip_skip"] = _as_int(first, 1)
        if _constant(text) is None:
            self.warnings.append(
                f"clipskip_schedule={_show(text)} changes over time, which rotoscope does not "
                f"schedule: clip_skip {self.settings['clip_skip']} (frame 0's) is used throughout"
            )

    def _with_scheduler(self, sampler: str) -> str:
        """A1111 1.9's sampler + ``scheduler`` pair as one of rotoscope's sampler names."""
        if "scheduler" not in self.data:
            return sampler
        scheduler = str(self.data["scheduler"] or "").strip()
        wanted = scheduler.lower()
        if wanted == "automatic":
            if sampler in _AUTOMATIC_KARRAS:
                wanted = "karras"
            elif "SDE" in sampler and "Karras" not in sampler:
                wanted = "exponential"  # A1111's default for its SDE samplers
            else:
                return sampler
        if wanted == "karras":
            with_karras = sampler if sampler.endswith("Karras") else f"{sampler} Karras"
            if with_karras in SAMPLER_NAMES:
                return with_karras
        elif wanted in _PLAIN_SCHEDULERS:
            return sampler
        self.warnings.append(
            f"scheduler={_show(scheduler)} is not available for sampler {sampler!r} in "
            "rotoscope: the sampler's own noise schedule is used"
        )
        return sampler

    # -- animation

    def _animation(self) -> None:
        data, settings, mode = self.data, self.settings, self.mode
        if mode not in _ANIMATION_MODES:
            self.warnings.append(
                f"animation_mode {_show(mode)} is unknown: imported as animation.mode none"
            )
        settings["animation.mode"] = _ANIMATION_MODES.get(mode, "none")
        if mode == "Video Input":
            self._video_input()
        elif mode == "Interpolation":
            self.warnings.append(
                "animation_mode 'Interpolation' (txt2img of every frame) is not supported: "
                "imported as animation.mode none, which repaints the frames of input.path"
            )
        if mode in _LOOPBACK_MODES:
            for name, key in _MOTION_SCHEDULES.items():
                if key not in data or (mode != "2D" and name in (*_2D_ONLY, *_3D_MOVES)):
                    continue
                text = self._schedule_text(key)
                if name == "noise":
                    text = _scaled(text, NOISE_SCALE)
                elif name == "zoom":
                    text = self._positive_zoom(text)
                self.schedules[name] = text
            border = str(data.get("border", "replicate"))
            if border not in _BORDERS:
                self.warnings.append(
                    f"border={_show(border)} is not a Deforum border mode; Deforum replicates "
                    "the edge for it, and so does this import"
                )
            settings["animation.border"] = "wrap" if border == "wrap" else "replicate"
        if "color_coherence" in data:
            settings["animation.color_coherence"] = self._color_coherence()
        if "fps" in data:
            settings["input.fps"] = data["fps"]
            settings["output.fps"] = data["fps"]
        if "max_frames" in data and mode != "Video Input":  # video mode counts the video
            settings["input.max_frames"] = _as_int(data["max_frames"], 0)

    def _positive_zoom(self, text: str) -> str:
        """A 2D zoom with keyframes of 0 or less (Deforum shrinks the frame to nothing, and
        rotoscope refuses it) with those keyframes at 1, no zoom."""
        try:
            entries = _schedule_entries(text)
        except ValueError:
            return text
        bad = [f for f, value in entries if _NUMBER.fullmatch(value) and Decimal(value) <= 0]
        if not bad:
            return text
        self.warnings.append(
            f"zoom={_show(text)} is 0 or less at frame {', '.join(bad)}, which shrinks "
            "Deforum's frame to nothing: imported as 1 (no zoom) there"
        )
        return ", ".join(
            f"{frame}:(1)" if frame in bad else f"{frame}:({value})" for frame, value in entries
        )

    def _video_input(self) -> None:
        data = self.data
        hints = [f"input.path={_show(str(data.get('video_init_path', '')))}"]
        every = _as_int(data.get("extract_nth_frame", 1), 1)
        start = _as_int(data.get("extract_from_frame", 0), 0)
        stop = _as_int(data.get("extract_to_frame", -1), -1)
        if every > 1:
            hints.append(f"input.every={every}")
        if start > 0:
            hints.append(f"input.start={start}")
        if stop >= 0:
            hints.append(f"input.end={stop + 1}")  # Deforum's last frame is inclusive
        self.warnings.append(
            "animation_mode 'Video Input' is imported as animation.mode none (img2img of "
            f"every input frame): give the video on the command line: {' '.join(hints)}"
        )

    def _color_coherence(self) -> str:
        value = str(self.data["color_coherence"])
        method = value.removeprefix("Match Frame 0 ")
        if method in ("None", "False"):
            return "none"
        if method != "LAB":
            keys = ["color_coherence"]
            if method == "Video Input":
                keys.append("color_coherence_video_every_N_frames")
            elif method == "Image":
                keys.append("color_coherence_image_path")
            self.warnings.append(
                f"color coherence {_show(value)} is not implemented, only matching frame 0 in "
                f"LAB: imported as lab ({_details(self.data, keys)})"
            )
        return "lab"

    # -- the rest

    def _unsupported(self) -> None:
        data = self.data
        for rule in UNSUPPORTED:
            if rule.active(data):
                self.warnings.append(f"{rule.what} ({_details(data, rule.keys)})")
        units = sorted({int(m.group(1)) for key in data if (m := _CONTROLNET.match(key))})
        for unit in units:
            if _on(data.get(f"cn_{unit}_enabled")):
                keys = [f"cn_{unit}_{name}" for name in ("module", "model", "weight", "vid_path")]
                self.warnings.append(
                    f"ControlNet unit {unit} is not imported: set up ControlNet in rotoscope's "
                    f"config ({_details(data, keys)})"
                )
        if data.get("sd_model_name"):
            self.warnings.append(
                "the model is not part of a keyframe file: render with the same checkpoint "
                f"as model.path ({_details(data, ('sd_model_name', 'sd_model_hash'))})"
            )
        unknown = [
            key
            for key in data
            if key not in _MAPPED
            and key not in IGNORED
            and key not in _COVERED
            and not _HYBRID.match(key)
            and not _CONTROLNET.match(key)
        ]
        if unknown:
            self.warnings.append(
                f"settings this import does not know, not imported: {_details(data, unknown)}"
            )

    def _schedule_text(self, key: str) -> str:
        """A schedule as Deforum reads it: as written when rotoscope reads it the same way,
        else rewritten from the entries Deforum's lenient reader finds (with a warning)."""
        value = self.data[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"0:({value})"
        if not (isinstance(value, str) and value.strip()):
            raise self._error(f"'{key}' must be a schedule like \"0:(0.5)\", not {_show(value)}")
        text = value.strip()
        if _is_strict_schedule(text):
            return text
        entries = [(m.group("frame"), m.group("param")) for m in _DEFORUM_ENTRY.finditer(text)]
        if not entries:
            return text  # Deforum refuses it too; rotoscope's error shows where
        read = ", ".join(f"{frame}:({param.strip()})" for frame, param in entries)
        self.warnings.append(f"{key}={_show(text)} is imported as Deforum reads it: {_show(read)}")
        return read

    def _error(self, message: str) -> RotoscopeError:
        return RotoscopeError(f"Deforum settings file '{self.path}': {message}")


def _separate(
    prompts: Mapping[int | str, str], positive: str, negative: str
) -> dict[int | str, str] | None:
    """Undo a Deforum run's ``f"{positive} {prompt} {'' if has --neg else '--neg'} {negative}"``.

    None when a prompt does not have that shape (then it is kept as written).
    """
    head, tail = f"{positive} ", f" {negative}"
    separated = {}
    for frame, text in prompts.items():
        if not (text.startswith(head) and text.endswith(tail)):
            return None
        middle = text[len(head) : len(text) - len(tail)]
        if middle.endswith(" --neg"):
            separated[frame] = middle.removesuffix(" --neg")
        elif middle.endswith(" ") and "--neg" in middle:
            separated[frame] = middle.removesuffix(" ")
        else:
            return None
    return separated


def _frame_order(item: tuple[int | str, str]) -> tuple[int, int | str]:
    """Numbered frames first, in order, then ``max_f`` expressions as written."""
    frame = item[0]
    return (0, frame) if isinstance(frame, int) else (1, frame)


if __name__ == "__main__":
    main()
