"""Convert a Deforum settings file into a rotoscope keyframe file.

Deforum (the AUTOMATIC1111 extension, deforum-art/sd-webui-deforum) saves its settings
as one flat JSON object: "Save settings" in its UI, and ``<timestring>_settings.txt``
next to the frames of every run. ``rotoscope-import-deforum SETTINGS -o
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
- 3D moves by ``translation_x/y/z`` and ``rotation_3d_x/y/z`` with the lens of
  ``fov_schedule``, ``near_schedule``, ``far_schedule`` and ``aspect_ratio_schedule``
  (the Colab notebook: single ``fov``, ``near_plane``, ``far_plane`` numbers; files from
  before ``aspect_ratio_use_old_formula`` existed, and those with it on, use W/H), through
  the depth of ``depth_algorithm`` (the notebook: ``use_zoe_depth``, or MiDaS blended with
  AdaBins by ``midas_weight`` when that is below 1), or flat with ``use_depth_warping``
  off; ``padding_mode`` and ``sampling_mode`` are torch's. See pipeline.animation.camera3d.
- ``color_coherence`` is "None", "LAB", "HSV", "RGB", "Video Input" or "Image"; older
  files say "Match Frame 0 LAB" and so on for the first three. "Video Input" follows
  ``video_init_path`` every ``color_coherence_video_every_N_frames`` frames only with
  hybrid video on (else it matches like LAB); "Image" follows
  ``color_coherence_image_path``. Since ``legacy_colormatch`` exists, each output is
  matched too unless it is on; older files match the input alone.
- ``diffusion_cadence`` n > 1 diffuses every n-th frame and tweens the frames between
  (in the 2D and 3D modes only: Video Input diffuses every frame), moved along the flow
  between the diffused frames with ``optical_flow_cadence`` ("DIS Medium", "DIS Fine",
  "Farneback", "RAFT") scaled by ``cadence_flow_factor_schedule``: ``cadence.every``,
  ``cadence.flow`` and the ``cadence_flow_factor`` schedule. In the loopback modes the
  anti-blur (``amount_schedule`` > 0, on by default), ``contrast_schedule``, Perlin
  ``noise_type`` (its ``perlin_w`` divides the height, ``perlin_h`` the width), the
  perspective flip and ``save_depth_maps`` act every frame, and
  ``noise_multiplier_schedule`` (with its ``enable_*_scheduling`` switch) in every mode.
- ``noise_schedule``: Deforum blends the frame towards a noise image by that amount
  (the image's spread is about 0.36 of the range), rotoscope adds Gaussian noise of
  that standard deviation. So each value is multiplied by 0.36 (an expression ``e``
  becomes ``0.36*(e)``): about the same amount of noise, without Deforum's loss of
  contrast.
- Deforum reads schedules leniently: ``re.finditer`` over ``frame: (value)`` entries,
  skipping whatever lies between them, so ``0:0: (7)`` is ``0: (7)`` there. A schedule
  rotoscope's stricter syntax would refuse is rewritten as Deforum reads it, with a
  warning. ``zoom``, ``angle`` and the transform centre act in 2D mode only (3D mode
  moves its camera with ``translation_x/y/z`` and ``rotation_3d_*``), so they are copied
  for 2D files alone; a 2D zoom keyframe that is not positive (Deforum shrinks the frame
  to nothing) is imported as 1, with a warning.
- Files from A1111 1.9 on store ``sampler_name`` and ``scheduler`` ("Karras",
  "Automatic", ...) where older ones had ``sampler`` ("DPM++ 2M Karras"), and some
  store ``width``/``height`` instead of ``W``/``H``; both spellings are read.
  ``Automatic`` means the sampler's A1111 default (Karras for DPM++ 2M and DPM++ SDE).
- ``clipskip_schedule`` (with ``enable_clipskip_scheduling``) becomes ``clip_skip``: its
  value at frame 0, with a warning when it changes later.
- Deforum renders through A1111's img2img, so prompt editing (``[a:b:0.5]``) in its
  prompts counts steps as A1111's img2img does: the import sets
  ``prompt_editing_steps: a1111``.
- Masks (``use_mask`` with ``mask_file``; ``use_mask_video`` with ``video_mask_path``,
  whose frames go with the init video's frame by frame) are white where Deforum renders,
  as rotoscope's are; ``invert_mask``, the ``mask_contrast_adjust`` and
  ``mask_brightness_adjust`` factors, ``overlay_mask`` (put the frame back around the
  render) with ``mask_overlay_blur``, ``full_res_mask`` (render the mask's box, A1111's
  "only masked") with ``full_res_mask_padding``, and ``fill`` (A1111's numbers: 0 fill,
  1 original, 2 latent noise, 3 latent nothing) map one to one. ``mask_schedule`` keys
  composable mask expressions per frame over ``{video_mask}`` (the mask, whichever of the
  two gives it), ``{init_mask}`` (the mask file, in older files), ``{everywhere}`` and
  ``[image files]``; ``{human_mask}`` and ``<word>`` masks need models Deforum downloads
  and are refused. Masks act only where Deforum renders from a frame to keep (not in 2D
  or 3D loopback modes).
- ``r_upscale_video`` runs ``r_upscale_model`` (``realesr-animevideov3``,
  ``realesrgan-x4plus``, ``realesrgan-x4plus-anime``: Real-ESRGAN's models) at
  ``r_upscale_factor`` (``x2``...): ``upscale.model`` is the name, a file in
  ``paths.upscalers``. ``frame_interpolation_engine`` ("None", "RIFE v4.6", older
  "RIFE v4.0"/"v4.3", "FILM") with ``frame_interpolation_x_amount`` (an int, or "x2" and
  "Disabled" in older files) plays that many frames per frame at ``fps`` times the
  amount; ``frame_interpolation_slow_mo_amount`` (with ``..._slow_mo_enabled``; older
  files have no switch) multiplies the frames again at the same rate, without audio.

A setting is reported when it would change Deforum's picture for this file (its switch
is on, its value is not the neutral one, it applies to the file's mode) and rotoscope
cannot reproduce it. Settings that never change the picture (names, folders, saving,
video encoding) are listed in IGNORED; a setting in no list is reported as unknown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from pipeline.config.schema import PromptEditingSteps
from pipeline.errors import RotoscopeError
from pipeline.interop.deforum.schedules import (
    DEFORUM_ENTRY,
    NUMBER,
    constant_value,
    is_strict_schedule,
    keep_to_strength,
    plain_number,
    scaled,
    schedule_entries,
)
from pipeline.interop.deforum.tables import (
    ANIMATION_MODES,
    ANTI_BLUR_SCHEDULES,
    AUTOMATIC_KARRAS,
    BORDERS,
    CADENCE_FLOWS,
    COLOR_MODES,
    CONTROLNET,
    CONTROLNET_MODULES,
    CONTROLNET_RESIZE,
    CONTROLNET_UNITS,
    CONTROLNET_V10,
    CONTROLNET_V11,
    COVERED,
    DEPTH_ALGORITHMS,
    DETECTORS,
    FILM_ENGINE,
    FLIP_SCHEDULES,
    HYBRID,
    HYBRID_COMPOSITES,
    HYBRID_EQUALIZE,
    HYBRID_MASKS,
    HYBRID_MOTIONS,
    HYBRID_SCHEDULES,
    IGNORED,
    LOOPBACK_MODES,
    MAPPED,
    MASK_FILLS,
    MOTION_SCHEDULES,
    NOISE_SCALE,
    PADDING_MODES,
    PLAIN_SCHEDULERS,
    RIFE_ENGINES,
    RIFE_WEIGHTS,
    SAMPLER_ALIASES,
    SAMPLING_MODES,
    SEED_BEHAVIORS,
    THREE_D_NUMBERS,
    THREE_D_SCHEDULES,
    TWO_D_ONLY,
    UNSUPPORTED,
    animation_mode,
    is_moving,
    uses_mask,
)
from pipeline.interop.deforum.values import as_int, details, is_off, is_on, show
from pipeline.models.samplers import SAMPLER_NAMES, canonical_sampler
from pipeline.models.schedule_types import canonical_schedule_type, check_schedule_type

# What a seed that is not a number reads as (below -1: reported)
NOT_A_SEED = -2


@dataclass
class DeforumImport:
    """A converted settings file: the keyframe-file content and what did not carry over."""

    keyframes: dict[str, Any]  # ready for yaml.safe_dump; read by pipeline.config.keyframes
    warnings: list[str] = field(default_factory=list)


def import_deforum(path: Path) -> DeforumImport:
    """Read Deforum settings (JSON) and convert them; see the module notes for the rules."""
    return _Importer(load_settings(path), path).run()


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


def is_deforum_settings(data: Mapping[str, Any]) -> bool:
    """Whether a mapping read from a keyframe file is a Deforum settings file."""
    return ("prompts" in data or "animation_prompts" in data) and "max_frames" in data


def load_settings(path: Path) -> dict[str, Any]:
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


class _Importer:
    """One conversion: reads ``data``, fills ``keyframes`` and ``warnings``."""

    def __init__(self, data: dict[str, Any], path: Path) -> None:
        self.data = data
        self.path = path
        self.mode = animation_mode(data)
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
        self._noise_multiplier()
        self._animation()
        self._masks()
        self._variation()
        self._init_image()
        self._soundtrack()
        self._controlnet()
        self._hybrid()
        self._cadence_alone()
        self._finishing()
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
                self.schedules["strength"] = keep_to_strength(text)
            except ValueError as exc:
                raise self._error(f"strength_schedule '{text}' is not a schedule: {exc}") from exc
        if "cfg_scale_schedule" in data:
            self.schedules["guidance_scale"] = self._schedule_text("cfg_scale_schedule")
        elif "scale" in data:  # Colab-era files: one CFG scale
            self.schedules["guidance_scale"] = f"0:({data['scale']})"
        if is_on(data.get("enable_steps_scheduling")) and "steps_schedule" in data:
            self.schedules["steps"] = self._schedule_text("steps_schedule")
        elif "steps" in data:
            self.schedules["steps"] = f"0:({data['steps']})"

        behavior = str(data.get("seed_behavior", "iter"))
        if behavior in SEED_BEHAVIORS:
            settings["seed_behavior"] = behavior
        else:
            self.warnings.append(
                f"seed_behavior {show(behavior)} is unknown: rotoscope's default is used"
            )
        seed = as_int(data.get("seed", -1), NOT_A_SEED)
        if seed >= -1:  # -1: drawn once for the run folder and kept there, as Deforum draws
            settings["seed"] = seed
        else:
            self.warnings.append(
                f"seed={show(data.get('seed'))} is not a seed: the seed is left to rotoscope "
                "(set seed=N to choose one)"
            )
        if behavior == "iter" and "seed_iter_N" in data:
            settings["seed_iter_n"] = as_int(data["seed_iter_N"], 1)
        if behavior == "schedule" and "seed_schedule" in data:
            text = self._schedule_text("seed_schedule")
            self.schedules["seed"] = text
            try:
                random_keys = [frame for frame, value in schedule_entries(text) if value == "-1"]
            except ValueError:
                random_keys = []  # rotoscope reports the broken schedule when it reads it
            if random_keys:
                self.warnings.append(
                    f"seed_schedule={show(text)} uses -1 (a random seed in Deforum) at frame "
                    f"{', '.join(random_keys)}: rotoscope takes -1 as a seed value"
                )
        self._sampler()
        self._clip_skip()
        for target, keys in (("input.width", ("W", "width")), ("input.height", ("H", "height"))):
            present = [key for key in keys if key in data]
            if present:
                settings[target] = as_int(data[present[0]], 0)
        settings["prompt_blend"] = "none"  # Deforum switches prompts at their keys
        # its prompts' [a:b:when] were written against A1111's img2img step counting
        settings["prompt_editing_steps"] = PromptEditingSteps.a1111.value

    def _sampler(self) -> None:
        key = "sampler" if "sampler" in self.data else "sampler_name"
        if key not in self.data:
            return
        name = self.data[key]
        if isinstance(name, str):
            try:
                sampler = canonical_sampler(SAMPLER_ALIASES.get(name, name))
            except RotoscopeError:
                pass
            else:
                self.settings["sampler"] = self._with_scheduler(sampler)
                return
        self.warnings.append(
            f"{key}={show(name)} is not available in rotoscope: the default sampler is used"
        )

    def _clip_skip(self) -> None:
        if not is_on(self.data.get("enable_clipskip_scheduling")):
            return
        text = self._schedule_text("clipskip_schedule") if "clipskip_schedule" in self.data else ""
        try:
            entries = schedule_entries(text)
        except ValueError:
            entries = []
        first = next((value for frame, value in entries if frame == "0"), None)
        if first is None or not NUMBER.fullmatch(first):
            self.warnings.append(
                f"clipskip_schedule={show(text)} has no number at frame 0: clip_skip is left as is"
            )
            return
        self.settings["clip_skip"] = as_int(first, 1)
        if constant_value(text) is None:
            self.warnings.append(
                f"clipskip_schedule={show(text)} changes over time, which rotoscope does not "
                f"schedule: clip_skip {self.settings['clip_skip']} (frame 0's) is used throughout"
            )

    def _with_scheduler(self, sampler: str) -> str:
        """A1111 1.9's sampler + ``scheduler`` pair as one of rotoscope's sampler names."""
        if "scheduler" not in self.data:
            return sampler
        scheduler = str(self.data["scheduler"] or "").strip()
        wanted = scheduler.lower()
        if wanted == "automatic":
            if sampler in AUTOMATIC_KARRAS:
                wanted = "karras"
            elif "SDE" in sampler and "Karras" not in sampler:
                wanted = "exponential"  # A1111's default for its SDE samplers
            else:
                return sampler
        if wanted == "karras":
            with_karras = sampler if sampler.endswith("Karras") else f"{sampler} Karras"
            if with_karras in SAMPLER_NAMES:
                return with_karras
        elif wanted in PLAIN_SCHEDULERS and wanted != "normal":
            return sampler
        try:  # any other schedule type rotoscope offers with this sampler: scheduler=
            schedule = check_schedule_type(sampler, canonical_schedule_type(scheduler))
        except RotoscopeError:
            schedule = None
        if schedule is not None:
            self.settings["scheduler"] = schedule
            return sampler
        self.warnings.append(
            f"scheduler={show(scheduler)} is not available for sampler {sampler!r} in "
            "rotoscope: the sampler's own noise schedule is used"
        )
        return sampler

    # -- animation

    def _animation(self) -> None:
        data, settings, mode = self.data, self.settings, self.mode
        if mode not in ANIMATION_MODES:
            self.warnings.append(
                f"animation_mode {show(mode)} is unknown: imported as animation.mode none"
            )
        settings["animation.mode"] = ANIMATION_MODES.get(mode, "none")
        if mode == "Video Input":
            self._video_input()
        elif mode == "Interpolation":
            self.warnings.append(
                "animation_mode 'Interpolation' (txt2img of every frame) is not supported: "
                "imported as animation.mode none, which repaints the frames of input.path"
            )
        if mode in LOOPBACK_MODES:
            for name, key in MOTION_SCHEDULES.items():
                if key not in data or (mode != "2D" and name in TWO_D_ONLY):
                    continue
                text = self._schedule_text(key)
                if name == "noise":
                    text = scaled(text, NOISE_SCALE)
                elif name == "zoom":
                    text = self._positive_zoom(text)
                self.schedules[name] = text
            border = str(data.get("border", "replicate"))
            if border not in BORDERS:
                self.warnings.append(
                    f"border={show(border)} is not a Deforum border mode; Deforum replicates "
                    "the edge for it, and so does this import"
                )
            settings["animation.border"] = "wrap" if border == "wrap" else "replicate"
            if mode == "3D":
                self._three_d()
            self._loopback_tools()
            self._cadence()
        if "color_coherence" in data:
            self._color_coherence()
        if "fps" in data:  # the render's rate; the output keeps it (output.fps retimes)
            settings["input.fps"] = data["fps"]
        if "max_frames" in data and mode != "Video Input":  # video mode counts the video
            settings["input.max_frames"] = as_int(data["max_frames"], 0)

    def _positive_zoom(self, text: str) -> str:
        """A 2D zoom with keyframes of 0 or less (Deforum shrinks the frame to nothing, and
        rotoscope refuses it) with those keyframes at 1, no zoom."""
        try:
            entries = schedule_entries(text)
        except ValueError:
            return text
        bad = [f for f, value in entries if NUMBER.fullmatch(value) and Decimal(value) <= 0]
        if not bad:
            return text
        self.warnings.append(
            f"zoom={show(text)} is 0 or less at frame {', '.join(bad)}, which shrinks "
            "Deforum's frame to nothing: imported as 1 (no zoom) there"
        )
        return ", ".join(
            f"{frame}:(1)" if frame in bad else f"{frame}:({value})" for frame, value in entries
        )

    def _video_input(self) -> None:
        data = self.data
        hints = [f"input.path={show(str(data.get('video_init_path', '')))}"]
        every = as_int(data.get("extract_nth_frame", 1), 1)
        start = as_int(data.get("extract_from_frame", 0), 0)
        stop = as_int(data.get("extract_to_frame", -1), -1)
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

    def _three_d(self) -> None:
        """The 3D camera: its moves and lens, the depth model, padding and sampling."""
        data, settings = self.data, self.settings
        for name, key in THREE_D_SCHEDULES.items():
            if key in data:
                self.schedules[name] = self._schedule_text(key)
            elif name in THREE_D_NUMBERS and THREE_D_NUMBERS[name] in data:
                self.schedules[name] = f"0:({data[THREE_D_NUMBERS[name]]})"
        # aspect_ratio_schedule came with its switch; files from before both used W/H
        old_formula = data.get("aspect_ratio_use_old_formula", "aspect_ratio_schedule" not in data)
        if is_on(old_formula):
            width = as_int(data.get("W", data.get("width", 512)), 512)
            height = as_int(data.get("H", data.get("height", 512)), 512) or 1
            ratio = (Decimal(width) / height).quantize(Decimal("0.000001"))
            self.schedules["aspect_ratio"] = f"0:({plain_number(ratio)})"
        self._depth()
        for key, choices in (("padding_mode", PADDING_MODES), ("sampling_mode", SAMPLING_MODES)):
            if key not in data:
                continue
            value = str(data[key])
            if value in choices:
                settings[f"animation.{key}"] = value
            else:
                self.warnings.append(
                    f"{key}={show(data[key])} is not one of {', '.join(choices)}: "
                    f"imported as {choices[0]}"
                )

    def _depth(self) -> None:
        """``depth_algorithm`` (or the Colab notebook's ``use_zoe_depth``) as a depth model,
        blended by ``midas_weight`` where Deforum blends."""
        data, settings = self.data, self.settings
        if "use_depth_warping" in data and not is_on(data["use_depth_warping"]):
            settings["animation.depth.model"] = "none"  # a flat scene
            return
        if "depth_algorithm" in data:
            algorithm = str(data["depth_algorithm"])
        elif is_on(data.get("use_zoe_depth")):
            algorithm = "Zoe"
        else:  # the notebook blended MiDaS with AdaBins whenever midas_weight was below 1
            algorithm = "Midas+AdaBins (old)" if self._midas_weight(1.0) < 1 else "Midas-3-Hybrid"
        known = DEPTH_ALGORITHMS.get(algorithm.lower())
        if known is None:
            self.warnings.append(
                f"depth_algorithm={show(algorithm)} is unknown: imported as midas "
                "(Deforum's default, Midas-3-Hybrid)"
            )
            known = DEPTH_ALGORITHMS["midas-3-hybrid"]
        model, blend, lost = known
        settings["animation.depth.model"] = model
        if blend != "none":
            settings["animation.depth.blend"] = blend
            weight = self._midas_weight(0.2)
            settings["animation.depth.midas_weight"] = min(max(weight, 0.0), 1.0)
            if not 0 <= weight <= 1:
                lost = f"{lost}; midas_weight={weight:g} is outside 0..1: clamped"
        if lost:
            self.warnings.append(f"{lost} ({details(data, ('depth_algorithm', 'midas_weight'))})")

    def _midas_weight(self, default: float) -> float:
        value = constant_value(self.data.get("midas_weight", default))
        return default if value is None else float(value)

    def _loopback_tools(self) -> None:
        """What every loopback input gets in Deforum: contrast, anti-blur, Perlin noise,
        the perspective flip; and the depth maps it saves."""
        data, settings = self.data, self.settings
        if "contrast_schedule" in data and constant_value(data["contrast_schedule"]) != 1:
            self.schedules["contrast"] = self._schedule_text("contrast_schedule")
        if "amount_schedule" in data and constant_value(data["amount_schedule"]) != 0:
            settings["animation.anti_blur"] = True
            for name, key in ANTI_BLUR_SCHEDULES.items():
                if key in data:
                    self.schedules[name] = self._schedule_text(key)
        if str(data.get("noise_type", "")).lower() == "perlin":
            settings["animation.noise_type"] = "perlin"
            if "perlin_octaves" in data:
                self.schedules["perlin_octaves"] = f"0:({as_int(data['perlin_octaves'], 4)})"
            if "perlin_persistence" in data:
                self.schedules["perlin_persistence"] = f"0:({data['perlin_persistence']})"
            # Deforum's perlin_w divides the height and perlin_h the width (its noise is
            # shaped height first), in whole cells
            for key, target in (("perlin_w", "perlin_cells_y"), ("perlin_h", "perlin_cells_x")):
                if key in data:
                    settings[f"animation.{target}"] = max(1, as_int(data[key], 8))
        if is_on(data.get("enable_perspective_flip")) or is_on(data.get("flip_2d_perspective")):
            settings["animation.perspective_flip"] = True
            for name, key in FLIP_SCHEDULES.items():
                if key in data:
                    self.schedules[name] = self._schedule_text(key)
        if is_on(data.get("save_depth_maps")):
            settings["animation.save_depth"] = True

    def _cadence(self) -> None:
        """Deforum's cadence (2D and 3D modes only: Video Input diffuses every frame):
        ``diffusion_cadence``, ``optical_flow_cadence`` and its factor schedule."""
        data, settings = self.data, self.settings
        every = as_int(data.get("diffusion_cadence", 1), 1)
        if every <= 1:
            return
        settings["cadence.every"] = every
        method = str(data.get("optical_flow_cadence", "None"))
        flow = CADENCE_FLOWS.get(method)
        if flow is None:
            self.warnings.append(
                f"optical_flow_cadence={show(method)} is not one of "
                f"{', '.join(CADENCE_FLOWS)}: imported as None (the camera alone moves the "
                "frames between diffused frames)"
            )
            return
        if flow == "none":
            return
        settings["cadence.flow"] = flow
        if "cadence_flow_factor_schedule" in data:
            self.schedules["cadence_flow_factor"] = self._schedule_text(
                "cadence_flow_factor_schedule"
            )
        self.warnings.append(
            f"optical_flow_cadence={show(method)} moves the frames between diffused frames "
            "along the flow between them (a morph); Deforum's own moves differ in detail "
            "(it shifts by half the flow, then nudges by at most a pixel per frame)"
        )
        if flow == "raft":
            self.warnings.append(
                'optical_flow_cadence "RAFT" needs RAFT\'s weights on this machine: put '
                "torchvision's raft_large weights at cadence.raft_weights (nothing is "
                "downloaded)"
            )

    def _cadence_alone(self) -> None:
        """Deforum's cadence with hybrid video, which rotoscope's loopback cadence does
        not apply to its tweens: every frame is diffused instead."""
        settings = self.settings
        every = settings.get("cadence.every")
        if every is None or "animation.hybrid.video" not in settings:
            return
        for key in ("cadence.every", "cadence.flow"):
            settings.pop(key, None)
        self.schedules.pop("cadence_flow_factor", None)
        self.warnings[:] = [w for w in self.warnings if not w.startswith("optical_flow_cadence")]
        self.warnings.append(
            f"diffusion_cadence={every} is not imported with hybrid video: rotoscope's "
            "cadence does not move the frames between diffused frames by the hybrid video, "
            "so every frame is diffused"
        )

    def _noise_multiplier(self) -> None:
        """A1111's initial noise multiplier, which Deforum schedules when its switch is on."""
        data = self.data
        if not is_on(data.get("enable_noise_multiplier_scheduling")):
            return
        if "noise_multiplier_schedule" in data:
            text = self._schedule_text("noise_multiplier_schedule")
            if constant_value(text) != 1:
                self.schedules["noise_multiplier"] = text

    def _color_coherence(self) -> None:
        """Deforum's colour match: frame 0 in LAB, HSV or RGB, or a video's frames (or an
        image); since ``legacy_colormatch`` exists its default matches each output too, and
        the switch (like every file from before it) only the input."""
        data, settings = self.data, self.settings
        value = str(data["color_coherence"])
        method = value.removeprefix("Match Frame 0 ")
        mode = COLOR_MODES.get(method.lower())
        # Deforum follows the init video's frames only with hybrid video on; without it
        # its "Video Input" matches like LAB, to the first frame
        hybrid = not is_off(data.get("hybrid_composite")) or str(
            data.get("hybrid_motion", "None")
        ) in ("Optical Flow", "Affine", "Perspective")
        if method == "Video Input" and not hybrid:
            mode = "lab"
        elif method in ("Video Input", "Image"):
            mode = "video"
            key = "video_init_path" if method == "Video Input" else "color_coherence_image_path"
            source = str(data.get(key, ""))
            if source and "://" not in source:
                settings["animation.color_coherence_video"] = source
            else:
                self.warnings.append(
                    f"color coherence {show(value)} follows {key}={show(source)}, which is not "
                    "a local file: give one as animation.color_coherence_video (until then "
                    "the colours follow the input)"
                )
            if method == "Video Input":
                every = as_int(data.get("color_coherence_video_every_N_frames", 1), 1)
                settings["animation.color_coherence_every"] = max(every, 1)
        if mode is None:
            self.warnings.append(
                f"color coherence {show(value)} is unknown: imported as lab "
                f"({details(data, ['color_coherence'])})"
            )
            mode = "lab"
        settings["animation.color_coherence"] = mode
        # files from before legacy_colormatch existed matched the input alone
        if mode != "none" and "legacy_colormatch" in data and not is_on(data["legacy_colormatch"]):
            settings["animation.color_coherence_output"] = True

    # -- masks

    def _masks(self) -> None:
        data, settings = self.data, self.settings
        if not uses_mask(data) or is_moving(data):  # the rule in UNSUPPORTED says why
            return
        video = is_on(data.get("use_mask_video"))
        key = "video_mask_path" if video else "mask_file"
        path = str(data.get(key) or "")
        if not path or path.startswith(("http://", "https://")):
            self.warnings.append(
                f"{key}={show(path)} is not a local file, so the mask is not imported: "
                "download it and give it as mask.path"
            )
            return
        settings["mask.path"] = path
        settings["mask.invert"] = is_on(data.get("invert_mask"))
        for name, deforum in (
            ("mask_contrast", "mask_contrast_adjust"),
            ("mask_brightness", "mask_brightness_adjust"),
        ):
            if deforum in data:
                self.schedules[name] = self._schedule_text(deforum)
        overlay = is_on(data.get("overlay_mask", True))
        settings["mask.composite"] = overlay
        if overlay and "mask_overlay_blur" in data:
            self.schedules["mask_overlay_blur"] = self._schedule_text("mask_overlay_blur")
        if "full_res_mask" in data:
            settings["mask.area"] = "masked" if is_on(data["full_res_mask"]) else "full"
        if "full_res_mask_padding" in data:
            settings["mask.padding"] = as_int(data["full_res_mask_padding"], 32)
        if "fill" in data:
            fill = as_int(data["fill"], 1)
            if fill in MASK_FILLS:
                settings["mask.fill"] = MASK_FILLS[fill]
            else:
                self.warnings.append(f"fill={show(data['fill'])} is not a masked content mode")
        expression = self._mask_expression(video)
        if expression is not None:
            settings["mask.expression"] = expression

    def _mask_expression(self, video: bool) -> str | None:
        """``mask_schedule`` as rotoscope's keyed expression; None when every key is just
        the mask (the default); masks that need a model refused."""
        text = str(self.data.get("mask_schedule") or "")
        if not text.strip():
            return None
        try:
            entries = schedule_entries(text)
        except ValueError as exc:
            raise self._error(f"mask_schedule={show(text)} is not a schedule ({exc})") from exc
        keyed = []
        for frame, value in entries:
            expression = value.strip().strip('"').strip("'").strip()
            if "{human_mask}" in expression or re.search(r"<[^>]*>", expression):
                raise self._error(
                    f"mask_schedule={show(text)} uses a mask made by a model Deforum downloads "
                    "({human_mask} or a <word> mask), which rotoscope does not ship: give that "
                    "mask as a matte video (mask.path) instead"
                )
            if not frame.isdigit():
                self.warnings.append(
                    f"mask_schedule={show(text)} keys frame {show(frame)}, not a frame number: "
                    "the masks are not combined (the mask alone is used)"
                )
                return None
            if video and "{init_mask}" in expression and self.data.get("mask_file"):
                # older files: {init_mask} is the mask file, {video_mask} the video's frames
                expression = expression.replace("{init_mask}", f"[{self.data['mask_file']}]")
            keyed.append((frame, expression))
        if all(expression in ("{video_mask}", "{init_mask}") for _, expression in keyed):
            return None
        return ", ".join(f'{frame}: ("{expression}")' for frame, expression in keyed)

    # -- finishing

    def _finishing(self) -> None:
        """Deforum's upscaler and frame interpolation as upscale.* and output.*."""
        data, settings = self.data, self.settings
        if is_on(data.get("r_upscale_video")):
            settings["upscale.model"] = str(data.get("r_upscale_model") or "realesr-animevideov3")
            factor = str(data.get("r_upscale_factor", "x2")).strip().lower().removeprefix("x")
            settings["upscale.to"] = factor
        engine = str(data.get("frame_interpolation_engine", "None")).strip()
        amount = _times(data.get("frame_interpolation_x_amount"))
        if is_off(engine) or amount < 2:
            return
        if engine in RIFE_ENGINES:
            settings["output.interpolation"] = "rife"
            settings["output.interpolation_model"] = RIFE_WEIGHTS
            if engine in ("RIFE v4.0", "RIFE v4.3"):
                self.warnings.append(
                    f"frame_interpolation_engine={show(engine)} is imported as RIFE 4.6 "
                    f"({RIFE_WEIGHTS}.pkl in paths.interpolators), the version rotoscope runs"
                )
        else:
            settings["output.interpolation"] = "flow"
            self.warnings.append(
                f"frame_interpolation_engine={show(engine)} is imported as "
                "output.interpolation=flow: "
                + ("FILM needs TensorFlow, so rotoscope's own optical-flow interpolation "
                   "stands in (rife with RIFE46.pkl is the learned one)"
                   if engine == FILM_ENGINE else "the engine is unknown")
            )  # fmt: skip
        # Deforum plays the interpolated frames at fps times the amount: the same duration
        settings["output.interpolate"] = amount
        slow = data.get("frame_interpolation_slow_mo_amount")
        enabled = data.get("frame_interpolation_slow_mo_enabled")
        if (enabled is None or is_on(enabled)) and _times(slow) > 1:  # older files: no switch
            settings["output.slow_motion"] = _times(slow)

    # -- A1111's seed extras, the init image, the soundtrack

    def _variation(self) -> None:
        """A1111's variation seed (one, or Deforum's schedules) and "resize seed from"."""
        data = self.data
        if is_on(data.get("enable_subseed_scheduling")):
            for name in ("subseed", "subseed_strength"):
                if f"{name}_schedule" in data:
                    self.schedules[name] = self._schedule_text(f"{name}_schedule")
        elif constant_value(data.get("subseed_strength", 0)) not in (None, 0):
            self.schedules["subseed_strength"] = self._schedule_text("subseed_strength")
            self.schedules["subseed"] = f"0:({as_int(data.get('subseed', -1), -1)})"
        width = as_int(data.get("seed_resize_from_w", 0), 0)
        height = as_int(data.get("seed_resize_from_h", 0), 0)
        if width > 0 and height > 0:  # A1111 resizes only with both (else the frame's size)
            self.settings["seed_resize_from_w"] = width
            self.settings["seed_resize_from_h"] = height

    def _init_image(self) -> None:
        """``use_init``: a loopback starts from ``init_image`` (Deforum's ``strength`` is
        how much of it frame 0 keeps); without it a loopback's frame 0 is txt2img."""
        data = self.data
        if not is_on(data.get("use_init")) or self.mode == "Video Input":
            return
        path = str(data.get("init_image") or "").strip()
        if not path or "://" in path:
            self.warnings.append(
                f"init_image={show(path)} is not a local file, which rotoscope does not "
                "download: frame 0 is a txt2img render (download it and give input.path)"
            )
            return
        self.settings["input.path"] = path
        if self.mode in LOOPBACK_MODES and "strength" in data:
            keep = Decimal(str(data["strength"]))
            self.settings["animation.init_strength"] = float(1 - keep)

    def _soundtrack(self) -> None:
        """``add_soundtrack``: a file (or the init video's audio) on the output."""
        data = self.data
        choice = data.get("add_soundtrack")
        if choice in ("File", True):
            key = "soundtrack_path"
        elif choice == "Init Video" and self.mode != "Video Input":  # that mode keeps it
            key = "video_init_path"
        else:
            return
        path = str(data.get(key) or "").strip()
        if not path or "://" in path:
            self.warnings.append(
                f"{key}={show(path)} is not a local file, which rotoscope does not download: "
                "no soundtrack (download it and set output.audio=PATH)"
            )
            return
        self.settings["output.audio"] = path

    # -- ControlNet

    def _controlnet(self) -> None:
        """Each enabled unit ``cn_N`` as ``controlnet.units.cnN``."""
        for unit in CONTROLNET_UNITS:
            if is_on(self.data.get(f"cn_{unit}_enabled")):
                imported = self._controlnet_unit(unit)
                if imported is not None:
                    self.settings[f"controlnet.units.cn{unit}"] = imported

    def _controlnet_unit(self, unit: int) -> dict[str, Any] | None:
        data, prefix = self.data, f"cn_{unit}_"
        module = str(data.get(f"{prefix}module") or "none")
        model = str(data.get(f"{prefix}model") or "")
        mapped = CONTROLNET_MODULES.get(module)
        if is_off(model) or mapped is None:
            why = "has no model" if is_off(model) else f"preprocessor {show(module)} is not offered"
            self.warnings.append(
                f"ControlNet unit {unit} {why} in rotoscope: the unit is not imported "
                f"({details(data, (f'{prefix}module', f'{prefix}model'))})"
            )
            return None
        preprocessor, params, lost = mapped
        if lost:
            self.warnings.append(f"ControlNet unit {unit}: {module}'s {lost}")
        params = dict(params)
        if preprocessor == "canny":
            params["low_threshold"] = as_int(data.get(f"{prefix}threshold_a", 100), 100)
            params["high_threshold"] = as_int(data.get(f"{prefix}threshold_b", 200), 200)
        elif preprocessor in DETECTORS:
            size = min(as_int(data.get("W", data.get("width", 512)), 512),
                       as_int(data.get("H", data.get("height", 512)), 512))  # fmt: skip
            pixel_perfect = is_on(data.get(f"{prefix}pixel_perfect"))
            resolution = size if pixel_perfect else as_int(data.get(f"{prefix}processor_res"), 512)
            params["detect_resolution"] = min(max(resolution, 64), 4096)
        settings: dict[str, Any] = {
            "model": self._controlnet_model(unit, model),
            "preprocessor": preprocessor,
            "params": params,
            "source": self._controlnet_source(unit),
        }
        for part in ("weight", "guidance_start", "guidance_end"):
            if f"{prefix}{part}" in data:
                settings[part] = self._schedule_text(f"{prefix}{part}")
        resize = str(data.get(f"{prefix}resize_mode") or "")
        if resize in CONTROLNET_RESIZE:
            settings["resize_mode"] = CONTROLNET_RESIZE[resize]
        mode = str(data.get(f"{prefix}control_mode") or "Balanced")
        if mode not in ("Balanced", "0"):
            self.warnings.append(
                f"ControlNet unit {unit}'s control mode {show(mode)} is not offered: it acts "
                "as Balanced (its weight still scales it)"
            )
        if not is_off(data.get(f"{prefix}mask_vid_path")):
            self.warnings.append(
                f"ControlNet unit {unit}'s mask video is not supported: the unit acts on the "
                f"whole frame ({details(data, (f'{prefix}mask_vid_path',))})"
            )
        return settings

    def _controlnet_model(self, unit: int, name: str) -> str:
        """A1111's ControlNet name (``control_v11f1e_sd15_tile [a371b31b]``) as diffusers
        weights: lllyasviel's repository for ControlNet 1.0 and 1.1, else the file of that
        name in the ControlNet folder (``paths.controlnet``, as A1111's ``models/ControlNet``)."""
        stem = re.sub(r"\s*\[[0-9a-fA-F]+\]$", "", name).strip()
        for ext in (".safetensors", ".pth", ".ckpt", ".bin"):
            stem = stem.removesuffix(ext)
        if stem in CONTROLNET_V10:
            return CONTROLNET_V10[stem]
        if CONTROLNET_V11.fullmatch(stem):
            return f"lllyasviel/{stem}"
        path = f"{stem}.safetensors"
        self.warnings.append(
            f"ControlNet unit {unit}'s model {show(name)} is read as {path} from the ControlNet "
            f"folder (paths.controlnet): set controlnet.units.cn{unit}.model if it is elsewhere"
        )
        return path

    def _controlnet_source(self, unit: int) -> str:
        """The unit's own control video, or each frame's own picture (its img2img input)."""
        key = f"cn_{unit}_vid_path"
        path = str(self.data.get(key) or "").strip()
        if not path:
            return "input"
        if "://" in path:
            self.warnings.append(
                f"{key}={show(path)} is not a local file, which rotoscope does not download: "
                "the unit reads each frame's own picture instead"
            )
            return "input"
        return path

    # -- hybrid video

    def _hybrid(self) -> None:
        """Deforum's hybrid video (2D and 3D): the init video's motion and picture."""
        data, settings = self.data, self.settings
        raw_composite = data.get("hybrid_composite", "None")
        if isinstance(raw_composite, bool):  # older files: a switch
            raw_composite = "Normal" if raw_composite else "None"
        motion = HYBRID_MOTIONS.get(str(data.get("hybrid_motion", "None")))
        composite = HYBRID_COMPOSITES.get(str(raw_composite))
        if motion is None or composite is None:
            self.warnings.append(
                "hybrid video is not imported: "
                f"{details(data, ('hybrid_motion', 'hybrid_composite'))} is not Deforum's"
            )
            return
        if (motion, composite) == ("none", "none") or self.mode not in LOOPBACK_MODES:
            return
        key = "init_image" if is_on(data.get("hybrid_use_init_image")) else "video_init_path"
        video = str(data.get(key) or "").strip()
        if not video or "://" in video:
            self.warnings.append(
                f"hybrid video is not imported: {key}={show(video)} is not a local file, "
                "which rotoscope does not download (download it, then set "
                "animation.hybrid.video)"
            )
            return
        settings["animation.hybrid.video"] = video
        settings["animation.hybrid.motion"] = motion
        settings["animation.hybrid.composite"] = composite
        if motion != "none":
            settings["animation.hybrid.motion_from_output"] = is_on(
                data.get("hybrid_motion_use_prev_img")
            )
        if motion == "optical_flow":
            settings["animation.hybrid.flow_consistency"] = is_on(
                data.get("hybrid_flow_consistency")
            )
            settings["animation.hybrid.consistency_blur"] = float(
                data.get("hybrid_consistency_blur", 2)
            )
            method = str(data.get("hybrid_flow_method", "DIS Medium"))
            if not method.startswith("DIS"):
                self.warnings.append(
                    f"hybrid_flow_method={show(method)}: rotoscope's optical flow is OpenCV's "
                    "DIS (the motion follows the same video, measured another way)"
                )
        if composite != "none":
            mask = HYBRID_MASKS.get(str(data.get("hybrid_comp_mask_type", "None")), "none")
            settings["animation.hybrid.mask"] = mask
            settings["animation.hybrid.mask_invert"] = is_on(data.get("hybrid_comp_mask_inverse"))
            equalize = str(data.get("hybrid_comp_mask_equalize", "None"))
            settings["animation.hybrid.mask_equalize"] = HYBRID_EQUALIZE.get(equalize, "none")
            settings["animation.hybrid.mask_auto_contrast"] = is_on(
                data.get("hybrid_comp_mask_auto_contrast")
            )
        for name, schedule in HYBRID_SCHEDULES.items():
            wanted = name == "hybrid_flow_factor" if motion == "optical_flow" else False
            wanted = wanted or (composite != "none" and name != "hybrid_flow_factor")
            if wanted and schedule in data:
                self.schedules[name] = self._schedule_text(schedule)
        first_frame = is_on(data.get("hybrid_use_first_frame_as_init_image", True))
        if first_frame and "input.path" not in settings:  # the loopback starts from it
            settings["input.path"] = video

    # -- the rest

    def _unsupported(self) -> None:
        data = self.data
        for rule in UNSUPPORTED:
            if rule.active(data):
                self.warnings.append(f"{rule.what} ({details(data, rule.keys)})")
        if data.get("sd_model_name"):
            self.warnings.append(
                "the model is not part of a keyframe file: render with the same checkpoint "
                f"as model.path ({details(data, ('sd_model_name', 'sd_model_hash'))})"
            )
        unknown = [
            key
            for key in data
            if key not in MAPPED
            and key not in IGNORED
            and key not in COVERED
            and not HYBRID.match(key)
            and not CONTROLNET.match(key)
        ]
        if unknown:
            self.warnings.append(
                f"settings this import does not know, not imported: {details(data, unknown)}"
            )

    def _schedule_text(self, key: str) -> str:
        """A schedule as Deforum reads it: as written when rotoscope reads it the same way,
        else rewritten from the entries Deforum's lenient reader finds (with a warning)."""
        value = self.data[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"0:({value})"
        if not (isinstance(value, str) and value.strip()):
            raise self._error(f"'{key}' must be a schedule like \"0:(0.5)\", not {show(value)}")
        text = value.strip()
        if is_strict_schedule(text):
            return text
        entries = [(m.group("frame"), m.group("param")) for m in DEFORUM_ENTRY.finditer(text)]
        if not entries:
            return text  # Deforum refuses it too; rotoscope's error shows where
        read = ", ".join(f"{frame}:({param.strip()})" for frame, param in entries)
        self.warnings.append(f"{key}={show(text)} is imported as Deforum reads it: {show(read)}")
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


def _times(value: Any) -> int:
    """A Deforum multiplier: ``2``, ``"x2"`` or ``"Disabled"`` (1)."""
    text = str(value if value is not None else "").strip().lower().removeprefix("x")
    return int(text) if text.isdigit() else 1


def _number(value: Any) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number


def _frame_order(item: tuple[int | str, str]) -> tuple[int, int | str]:
    """Numbered frames first, in order, then ``max_f`` expressions as written."""
    frame = item[0]
    return (0, frame) if isinstance(frame, int) else (1, frame)
