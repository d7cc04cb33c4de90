"""The plan: one row of generation parameters per output frame, as plain data.

Schedules, prompt keyframes and seed behaviours are resolved here, once, into rows;
everything downstream reads the rows and nothing recomputes a schedule. So what a
frame will get is inspectable before a model loads (``stages=[plan]`` writes
``plan.csv``, ``plan.jsonl`` and the chart ``plan.png``), and a frame's cache key can be
computed from its row alone.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from pipeline.config.schedulable import (
    CONTROL_UNIT_SCHEDULES,
    SCHEDULE_KEYS,
    SCHEDULES,
    Schedulable,
    ScheduleGroup,
    schedules_in,
)
from pipeline.config.schema import (
    CadenceFlow,
    ControlMode,
    HybridComposite,
    HybridMotion,
    NoiseType,
    PromptBlend,
    PromptEditingSteps,
    RunConfig,
    SeedBehavior,
)
from pipeline.errors import RotoscopeError
from pipeline.models.samplers import canonical_sampler, check_sampler_steps
from pipeline.models.schedule_types import check_schedule_type
from pipeline.plan.cadence import (
    PairOf,
    loopback_fields,
    size_changes,
    video_fields,
    video_keyframes,
)
from pipeline.plan.chart import Series
from pipeline.plan.networks import Networks, check_negative_prompt, lora_tags, strip_network_tags
from pipeline.plan.prompt_editing import check_composable, has_prompt_editing
from pipeline.plan.prompt_syntax import parse_attention
from pipeline.plan.rows import ControlValues, PlanRow
from pipeline.plan.schedules import evaluate_schedule, parse_expression, parse_schedule
from pipeline.plan.seeds import frame_seeds, frame_subseeds
from pipeline.plan.segments import segment_start_of, segment_starts
from pipeline.plan.styles import apply_styles, style_list

NEG_SEPARATOR = "--neg"

log = logging.getLogger("rotoscope")


@dataclass(frozen=True)
class PromptKey:
    """A prompt keyframe, resolved: frame, full positive text, full negative text."""

    frame: int
    prompt: str
    negative: str


@dataclass(frozen=True)
class Plan:
    """The rows, plus what the chart and the summary show about how they came about."""

    rows: list[PlanRow]
    series: list[Series]
    prompt_keys: list[PromptKey]


def build_plan(
    cfg: RunConfig,
    frame_count: int,
    width: int,
    height: int,
    fps: float,
    origins: dict[str, str] | None = None,
    frame_sizes: Sequence[tuple[int, int]] | None = None,
    cuts: list[int] | None = None,
    source_files: Sequence[str] | None = None,
    pair_of: PairOf | None = None,
    from_noise: bool = False,
) -> Plan:
    """Resolve every schedule, prompt and seed for ``frame_count`` frames.

    ``origins`` maps config keys to the keyframe file their value came from, so errors
    name that file; other values are reported as coming from the command line.
    ``frame_sizes`` gives each frame its own size (a photo folder rendered as images);
    without it every frame is ``width`` x ``height``. ``cuts`` are the source's scene cuts
    (frames starting a new shot), where temporal coherence starts a new segment (and
    cadence diffuses a frame). ``source_files`` names each frame's file for an image
    folder: such frames are keyed by their file, not their position
    (:meth:`PlanRow.key_json`). ``pair_of`` gives the source's flow between consecutive
    frames, for cadence's adaptive keyframes. ``from_noise``: there is no input, and a
    loopback's first frame is a txt2img render.
    """
    origins = origins or {}
    check_seed(cfg)
    sampler = canonical_sampler(cfg.sampler)
    schedule_type = check_schedule_type(sampler, cfg.scheduler)
    active = active_schedules(cfg)
    series = {
        item.name: _schedule(cfg, item.key, item.name, frame_count, fps, origins) for item in active
    }
    control_series = {
        (unit, part): _schedule(
            cfg, f"controlnet.units.{unit}.{field}", f"{unit}.{part}", frame_count, fps, origins,
        )
        for unit in cfg.controlnet.units
        for part, field in CONTROL_UNIT_SCHEDULES.items()
    }  # fmt: skip
    animation = [item for item in active if item.group in ANIMATION_GROUPS]
    coherence_names = [item.name for item in active if item.group in COHERENCE_GROUPS]
    mask_names = [item.name for item in active if item.group is ScheduleGroup.mask]
    generate = cfg.controlnet.units and cfg.controlnet.mode is ControlMode.txt2img
    if generate and charted(NOISE_MULTIPLIER, series):
        raise RotoscopeError(
            "noise_multiplier scales img2img's starting noise, and controlnet.mode=txt2img "
            "starts from noise alone", "leave noise_multiplier at 1 with txt2img",
        )  # fmt: skip
    steps = [round_half_up(value) for value in series["steps"].values]
    seed_values = series["seed"].values if "seed" in series else None
    seeds = frame_seeds(cfg.seed_behavior, cfg.seed, frame_count, cfg.seed_iter_n, seed_values)
    subseeds = frame_subseeds(series["subseed"].values, cfg.seed) if "subseed" in series else []
    keys = prompt_keys(cfg, frame_count, fps, origins)
    coherent = cfg.coherence.attention or cfg.coherence.flow
    # a morphing prompt changes the look gradually, and a new anchor there would pop;
    # prompts that switch at their keyframes (prompt_blend=none) start new segments
    switches = (
        [key.frame for before, key in pairwise(keys) if prompt_of(key) != prompt_of(before)]
        if cfg.prompt_blend is PromptBlend.none
        else []
    )
    starts = segment_starts(frame_count, cfg.coherence, switches, cuts or []) if coherent else []
    cadence = cadence_plan(cfg, frame_count, switches, cuts or [], frame_sizes, pair_of)
    networks = Networks(
        cfg.model.lora_dir, cfg.model.embeddings_dir, cfg.model.loras,
        origins.get("prompts", "command line"),
    )  # fmt: skip
    clip_skip = cfg.clip_skip if cfg.clip_skip != 1 else None
    rows = []
    for index in range(frame_count):
        motion = {item.name: row_value(item, series[item.name].values[index]) for item in animation}
        coherence: dict[str, float | int] = {
            name: float(series[name].values[index]) for name in coherence_names
        }
        if coherent:
            coherence["segment_start"] = segment_start_of(starts, index)
        masking = mask_fields(cfg, {name: float(series[name].values[index]) for name in mask_names})
        cadence_fields = cadence.fields(index, series) if cadence is not None else {}
        controls = {
            unit: ControlValues(
                **{
                    part: float(control_series[unit, part].values[index])
                    for part in CONTROL_UNIT_SCHEDULES
                }
            )
            for unit in cfg.controlnet.units
        }
        start = from_noise and index == 0
        if start:  # a unit that reads the frame's own picture has none to read yet
            controls = {
                unit: replace(values, weight=0.0)
                if cfg.controlnet.units[unit].source == "input"
                else values
                for unit, values in controls.items()
            }
        prompt = _prompt_at(keys, index, cfg.prompt_blend)
        size = frame_sizes[index] if frame_sizes else (width, height)
        variation = row_value(SUBSEED_STRENGTH, series["subseed_strength"].values[index])
        # the fields each group of settings fills (their names are the row's)
        grouped: dict[str, Any] = {
            **prompt,
            **motion,
            **networks.row_fields(**prompt),
            **coherence,
            **masking,
            **cadence_fields,
        }
        row = PlanRow(
            index=index,
            # txt2img generates from noise: the whole schedule runs, with no img2img noise
            strength=1.0 if generate or start else strength_at(cfg, series, index, from_noise),
            guidance_scale=float(series["guidance_scale"].values[index]),
            steps=steps[index],
            noise_multiplier=None
            if start
            else row_value(NOISE_MULTIPLIER, series["noise_multiplier"].values[index]),
            txt2img=True if start else None,
            sampler=sampler,
            scheduler=schedule_type,
            seed=seeds[index],
            subseed=subseeds[index] if variation is not None else None,
            subseed_strength=variation,
            width=size[0],
            height=size[1],
            **seed_resize(cfg, size),
            blend_mode=cfg.prompt_blend,
            controls=controls or None,
            clip_skip=clip_skip,
            prompt_editing_steps=editing_steps(cfg, prompt.values()),
            source_file=source_files[index] if source_files else None,
            **grouped,
        )
        check_row(row, origins)
        rows.append(row)
    generation = schedules_in(ScheduleGroup.generation)
    chart = [series[item.name] for item in generation if charted(item, series)]
    seed_keys = series["seed"].keys if "seed" in series else [0]
    chart.append(Series("seed", np.array(seeds, dtype=float), seed_keys))
    if subseeds and charted(SUBSEED_STRENGTH, series):
        chart.append(Series("subseed", np.array(subseeds, dtype=float), series["subseed"].keys))
    chart += [series[item.name] for item in animation if charted(item, series)]
    chart += [series[name] for name in coherence_names]
    chart += [
        series[name]
        for name in mask_names
        if np.ptp(series[name].values) > 0 or series[name].values[0] != MASK_NEUTRAL[name]
    ]
    if coherent:
        segment_numbers = np.searchsorted(starts, np.arange(frame_count), side="right") - 1
        chart.append(Series("segment", segment_numbers.astype(float), starts))
    if cadence is not None:
        chart += cadence.series(rows, series)
    chart += [
        item
        for (_, part), item in control_series.items()
        if part == "weight" or np.ptp(item.values) > 0
    ]
    return Plan(rows, chart, keys)


@dataclass(frozen=True)
class CadencePlan:
    """Which frames a cadence diffuses (see :mod:`pipeline.plan.cadence`), and the row
    fields that say so."""

    every: int
    loops: bool  # Deforum's cadence (loopback) rather than carrying along a video
    keyframes: list[int]  # the diffused frames, in order
    starts: list[int]  # video: where carried frames never cross (segments, size changes)
    flow: bool  # loopback: with Deforum's optical flow cadence

    def fields(self, index: int, series: dict[str, Series]) -> dict[str, Any]:
        """The cadence fields of frame ``index``'s row (``series``: the schedules' values)."""
        if self.loops:
            fields: dict[str, Any] = loopback_fields(index, self.every)
            span_start = fields.get("cadence_to")
            # Deforum moves the frames along the flow only where the diffused frame kept
            # some of its input (Deforum's strength > 0, rotoscope's below 1)
            kept = span_start is not None and series["strength"].values[span_start] < 1.0
            if self.flow and kept:
                fields["cadence_flow_factor"] = float(series["cadence_flow_factor"].values[index])
            return fields
        fields = dict(video_fields(index, self.keyframes, self.starts))
        if fields:
            fields["repair_strength"] = row_value(
                REPAIR_STRENGTH, series["repair_strength"].values[index]
            )
        return fields

    def series(self, rows: list[PlanRow], series: dict[str, Series]) -> list[Series]:
        """The chart's panels: 1 on diffused frames and 0 on carried ones, and the cadence
        schedules."""
        diffused = np.array([1.0 if row.diffused else 0.0 for row in rows])
        panels = [Series("diffused", diffused, self.keyframes)]
        for item in active_cadence_schedules(self.loops, self.flow):
            if charted(item, series):
                panels.append(series[item.name])
        return panels


def cadence_plan(
    cfg: RunConfig,
    frame_count: int,
    switches: list[int],
    cuts: list[int],
    frame_sizes: Sequence[tuple[int, int]] | None,
    pair_of: PairOf | None,
) -> CadencePlan | None:
    """The cadence of this config (None: every frame diffused)."""
    cadence = cfg.cadence
    if cadence.every <= 1:
        return None
    loops = cfg.animation.mode.loops
    flow = loops and cadence.flow is not CadenceFlow.none
    if loops:
        return CadencePlan(
            cadence.every, True, list(range(0, frame_count, cadence.every)), [], flow
        )
    starts = set(segment_starts(frame_count, cfg.coherence, switches, cuts))
    starts.update(size_changes(frame_sizes))
    ordered = sorted(starts)
    keyframes = video_keyframes(frame_count, cadence, ordered, pair_of)
    return CadencePlan(cadence.every, False, keyframes, ordered, False)


def active_cadence_schedules(loops: bool, flow: bool) -> tuple[Schedulable, ...]:
    """The cadence schedules of a plan with cadence: the repair pass's strength on a
    video, the optical flow cadence's factor in loopback with cadence.flow."""
    if loops:
        return schedules_in(ScheduleGroup.cadence_flow) if flow else ()
    return schedules_in(ScheduleGroup.cadence)


def editing_steps(cfg: RunConfig, texts: Iterable[object]) -> str | None:
    """A row's ``prompt_editing_steps``: the setting when it is not the default and one of
    the row's prompt texts uses prompt editing; None otherwise, so a row whose frame does
    not depend on it (and its frame's key) stays as it was."""
    if cfg.prompt_editing_steps is PromptEditingSteps.rotoscope:
        return None
    edited = any(
        has_prompt_editing(strip_network_tags(text)) for text in texts if isinstance(text, str)
    )
    return cfg.prompt_editing_steps.value if edited else None


# The noise levels Stable Diffusion models are trained with (their schedulers'
# num_train_timesteps): a sampler cannot take more steps than that.
MAX_STEPS = 1000

# The schedules of temporal coherence: fractions and weights, all within 0..1.
COHERENCE_GROUPS = (ScheduleGroup.attention, ScheduleGroup.flow)
# The mask schedules' values that change nothing (the chart shows the others)
MASK_NEUTRAL = {
    "mask_contrast": 1.0, "mask_brightness": 1.0, "mask_threshold": 0.0, "mask_grow": 0.0,
    "mask_blur": 0.0, "mask_overlay_blur": 0.0,
}  # fmt: skip
# The mask schedules' ranges (row field, low, high, hint); grow may be negative (shrink).
MASK_RANGES = (
    ("mask_contrast", 0.0, math.inf, "1 keeps the mask's contrast, 0 makes it flat grey"),
    ("mask_brightness", 0.0, math.inf, "1 keeps the mask's brightness"),
    ("mask_threshold", 0.0, 1.0, "0 keeps the mask's grey levels; 0.5 cuts it at mid-grey"),
    ("mask_grow", -1024.0, 1024.0, "pixels: positive grows the mask, negative shrinks it"),
    ("mask_blur", 0.0, 1024.0, "pixels of feather on each side of the mask's edge"),
    ("mask_overlay_blur", 0.0, 1024.0, "pixels of feather on each side of the mask's edge"),
)
# The schedules of a loopback frame (2D or 3D): its camera and the image operations on
# its input.
ANIMATION_GROUPS = (
    ScheduleGroup.motion, ScheduleGroup.motion_2d, ScheduleGroup.camera_3d,
    ScheduleGroup.anti_blur, ScheduleGroup.perlin, ScheduleGroup.perspective_flip,
    ScheduleGroup.hybrid_flow, ScheduleGroup.hybrid_composite,
)  # fmt: skip
NOISE_MULTIPLIER = next(item for item in SCHEDULES if item.name == "noise_multiplier")
REPAIR_STRENGTH = next(item for item in SCHEDULES if item.name == "repair_strength")
SUBSEED_STRENGTH = next(item for item in SCHEDULES if item.name == "subseed_strength")


def strength_at(cfg: RunConfig, series: dict[str, Series], index: int, from_noise: bool) -> float:
    """Frame ``index``'s strength: the schedule's, or for the first frame of a loopback
    from an input image ``animation.init_strength`` when it is set (Deforum's init
    strength)."""
    init = cfg.animation.init_strength
    if index == 0 and init is not None and cfg.animation.mode.loops and not from_noise:
        return init
    return float(series["strength"].values[index])


def seed_resize(cfg: RunConfig, size: tuple[int, int]) -> dict[str, Any]:
    """A frame's ``seed_resize_from_w/h`` row fields: A1111's "resize seed from", where it
    draws the noise at another latent size than the frame's (A1111 works in whole latent
    pixels of 8); nothing where it is off or the same."""
    wanted = (cfg.seed_resize_from_w, cfg.seed_resize_from_h)
    if wanted == (0, 0) or (wanted[0] // 8, wanted[1] // 8) == (size[0] // 8, size[1] // 8):
        return {}
    return {"seed_resize_from_w": wanted[0], "seed_resize_from_h": wanted[1]}


def row_value(item: Schedulable, value: float) -> float | int | None:
    """A schedule's value as its row field holds it: None where it is the neutral value,
    whole numbers for the Perlin octaves, an odd size (at least 1) for the anti-blur
    kernel, as a Gaussian kernel needs."""
    number = float(value)
    if item.neutral is not None and number == item.neutral:
        return None
    if item.name == "perlin_octaves":
        return round_half_up(number)
    if item.name == "anti_blur_kernel":
        return max(1, 2 * round_half_up((number - 1) / 2) + 1)
    return number


def charted(item: Schedulable, series: dict[str, Series]) -> bool:
    """Whether the chart shows a schedule: always, unless it has a neutral value and never
    leaves it (a contrast of 1 everywhere is no news)."""
    return item.neutral is None or bool(np.any(series[item.name].values != item.neutral))


def prompt_of(key: PromptKey) -> tuple[str, str]:
    """What a prompt keyframe asks for (a key that repeats the last one switches nothing)."""
    return key.prompt, key.negative


def active_schedules(cfg: RunConfig) -> list[Schedulable]:
    """The schedules this config evaluates: generation always, the seed schedule with
    ``seed_behavior=schedule``, the camera and the loopback tools that are on in loopback
    and 3d, coherence's with coherence."""
    groups = {ScheduleGroup.generation}
    if cfg.seed_behavior is SeedBehavior.schedule:
        groups.add(ScheduleGroup.seed)
    if not is_zero(cfg.subseed_strength):
        groups.add(ScheduleGroup.variation)
    animation = cfg.animation
    if animation.mode.loops:
        groups.add(ScheduleGroup.motion)
        groups.add(ScheduleGroup.camera_3d if animation.mode.in_3d else ScheduleGroup.motion_2d)
        if animation.anti_blur:
            groups.add(ScheduleGroup.anti_blur)
        if animation.noise_type is NoiseType.perlin:
            groups.add(ScheduleGroup.perlin)
        if animation.perspective_flip:
            groups.add(ScheduleGroup.perspective_flip)
        if animation.hybrid.motion is HybridMotion.optical_flow:
            groups.add(ScheduleGroup.hybrid_flow)
        if animation.hybrid.composite is not HybridComposite.none:
            groups.add(ScheduleGroup.hybrid_composite)
    if cfg.coherence.attention:
        groups.add(ScheduleGroup.attention)
    if cfg.coherence.flow:
        groups.add(ScheduleGroup.flow)
    if cfg.mask.active:
        groups.add(ScheduleGroup.mask)
    if cfg.cadence.every > 1:
        flow = cfg.cadence.flow is not CadenceFlow.none
        groups.update(item.group for item in active_cadence_schedules(animation.mode.loops, flow))
    return [item for item in SCHEDULES if item.group in groups]


def mask_fields(cfg: RunConfig, schedules: dict[str, float]) -> dict[str, Any]:
    """A masked frame's row fields: its mask schedules' values (``schedules``, by row
    field name) and how its masked area is rendered; nothing without a mask."""
    if not cfg.mask.active:
        return {}
    return {
        **schedules,
        "mask_fill": cfg.mask.fill,
        "mask_area": cfg.mask.area,
        "mask_padding": cfg.mask.padding,
        "mask_composite": cfg.mask.composite,
    }


def round_half_up(value: float) -> int:
    """Integer schedules (steps, seeds) round halves up, the same way everywhere."""
    return math.floor(value + 0.5)


def _config_value(cfg: RunConfig, key: str) -> object:
    """``cfg`` at a dotted key; dict entries (controlnet.units.NAME) by item."""
    node: Any = cfg
    for part in key.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def _schedule(
    cfg: RunConfig, key: str, label: str, count: int, fps: float, origins: dict[str, str]
) -> Series:
    """Parse and evaluate the schedule at config key ``key``; ``label`` names it in charts
    and in ``schedule_interpolation``."""
    interpolation = cfg.schedule_interpolation.get(label, cfg.interpolation)
    schedule = parse_schedule(
        str(_config_value(cfg, key)), key, origins.get(key, "command line"),
        fps=fps, max_f=max(count - 1, 0), seed=cfg.seed,
    )  # fmt: skip
    values = evaluate_schedule(schedule, count, fps=fps, seed=cfg.seed, interpolation=interpolation)
    return Series(label, values, [key.frame for key in schedule.keyframes])


def join_prompt(*parts: str) -> str:
    """Join prompt parts with ", ", dropping empty ones and doubled separators."""
    cleaned = [part.strip().strip(",").strip() for part in parts]
    return ", ".join(part for part in cleaned if part)


def prompt_keys(
    cfg: RunConfig, frame_count: int, fps: float, origins: dict[str, str]
) -> list[PromptKey]:
    """The prompt keyframes in frame order: prefix/suffix, global negative and styles
    applied, line breaks read as spaces (as A1111 reads them), and every prompt checked
    (so a bad one fails now, not after a model loads).

    ``prompt`` is frame 0's prompt when ``prompts`` has no key of its own there
    (``prompt="a cat" prompts.10="a dog"`` on the command line). Two keys on one frame
    are refused when both are written as numbers (``4`` and ``4.0``); where an expression
    lands on a frame another key names (``max_f`` on a one-frame clip) the later key
    wins, with a warning. A key past the last frame is never reached: a warning says so.
    """
    where = origins.get("prompts", "command line")
    by_frame: dict[int, tuple[str, str]] = {}  # frame -> (its key as written, text)
    for key, text in cfg.prompts.items():
        frame = _prompt_frame(key, fps, frame_count, cfg.seed, where)
        if frame in by_frame:
            _same_frame(by_frame[frame][0], key, frame, where)
        by_frame[frame] = (key, text)
    if cfg.prompt and 0 not in by_frame:
        by_frame[0] = ("prompt", cfg.prompt)
    if not by_frame:
        by_frame[0] = ("0", "")
    for frame, (key, _) in sorted(by_frame.items()):
        if frame > frame_count - 1:
            log.warning(
                "%s: prompt keyframe '%s' is frame %d, past the last frame (%d): it is never "
                "reached (the frames before it blend toward it)", where, key, frame,
                frame_count - 1,
            )  # fmt: skip
    styles = style_list(list(cfg.styles), Path(cfg.styles_file).expanduser())
    keys = []
    for frame in sorted(by_frame):
        positive, _, negative = by_frame[frame][1].partition(NEG_SEPARATOR)
        prompt, negative = apply_styles(
            styles,
            join_prompt(cfg.prompt_prefix, positive, cfg.prompt_suffix),
            join_prompt(negative, cfg.negative_prompt),
        )
        prompt, negative = one_line(prompt), one_line(negative)
        check_prompt(prompt, where, negative=False)
        check_prompt(negative, where, negative=True)
        keys.append(PromptKey(frame=frame, prompt=prompt, negative=negative))
    return keys


LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


def one_line(text: str) -> str:
    """``text`` with each line break (and the spaces around it) read as one space: A1111's
    tokenizer treats a line break as whitespace, so a prompt written over several lines
    (a YAML ``|`` block, a Deforum prompt with ``\\n``) means the same on one."""
    return LINE_BREAKS.sub(" ", text).strip()


def _same_frame(first: str, second: str, frame: int, where: str) -> None:
    """Two prompt keys on one frame: refused when both are written as numbers."""
    if _is_literal_key(first) and _is_literal_key(second):
        raise RotoscopeError(
            f"{where}: prompt keys '{first}' and '{second}' are both frame {frame}",
            "keep one of them",
        )
    log.warning(
        "%s: prompt keys '%s' and '%s' both fall on frame %d; '%s' is used",
        where, first, second, frame, second,
    )  # fmt: skip


def _is_literal_key(key: str) -> bool:
    """A key written as a frame number or a time (``12``, ``4.0``, ``2.5s``)."""
    text = str(key).strip()
    return _is_number(text) or (text.endswith("s") and _is_number(text[:-1]))


def check_prompt(text: str, where: str, negative: bool) -> None:
    """Reject what would fail or be misread later: a malformed weight such as
    ``(cat:1.2.3)``, ``AND``, an unknown ``<kind:...>`` tag, a LoRA in a negative prompt."""
    try:
        parse_attention(text)
    except RotoscopeError as exc:
        raise RotoscopeError(f"{where}: prompt '{text.strip()[:60]}': {exc}") from exc
    if negative:
        check_negative_prompt(text, where)
    else:
        check_composable(text, where)
        lora_tags(text, where)


def _prompt_frame(key: str, fps: float, frame_count: int, seed: int, where: str) -> int:
    """A prompt key: a frame number, a time (``2.5s``) or an expression of max_f/fps/s."""
    text = str(key).strip()
    try:
        if text.endswith("s") and _is_number(text[:-1]):
            return round_half_up(float(text[:-1]) * fps)
        value = parse_expression(text).evaluate(
            {"t": 0.0, "max_f": float(max(frame_count - 1, 0)), "fps": fps, "s": float(seed)}
        )
        return round_half_up(float(value))
    except RotoscopeError as exc:
        raise RotoscopeError(
            f"{where}: prompt key '{text}' is not a frame number or a time",
            "use 12, 2.5s or an expression such as max_f/2",
        ) from exc


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _prompt_at(keys: list[PromptKey], index: int, mode: PromptBlend) -> dict[str, Any]:
    """The prompt fields of frame ``index``: its keyframe, and the blend to the next."""
    current = 0
    for position, key in enumerate(keys):
        if key.frame <= index:
            current = position
    key = keys[current]
    fields_: dict[str, Any] = {"prompt": key.prompt, "negative_prompt": key.negative}
    following = keys[current + 1] if current + 1 < len(keys) else None
    if (
        mode is PromptBlend.none
        or following is None
        or index <= key.frame
        or (following.prompt, following.negative) == (key.prompt, key.negative)
    ):
        return fields_
    weight = (index - key.frame) / (following.frame - key.frame)
    return {
        **fields_,
        "prompt_to": following.prompt,
        "negative_prompt_to": following.negative,
        "blend": round(weight, 6),
    }


def is_zero(text: str) -> bool:
    """Whether a schedule is the plain number 0 (a subseed strength that never varies)."""
    try:
        return float(text) == 0
    except ValueError:
        return False


def check_sampling(cfg: RunConfig) -> None:
    """The sampler, its schedule type and the seed settings, checked where the config is
    composed (so a typo fails before anything is written)."""
    check_schedule_type(canonical_sampler(cfg.sampler), cfg.scheduler)
    check_seed_options(cfg)


def check_seed(cfg: RunConfig) -> None:
    """The seed settings' own rules (``seed=-1`` is drawn by the job before the plan:
    :mod:`pipeline.records.random_seed`)."""
    check_seed_options(cfg)
    if cfg.seed < 0:
        raise RotoscopeError(
            f"seed={cfg.seed} must not be negative",
            "for a different seed per frame use seed_behavior=random (drawn from the seed)",
        )


def check_seed_options(cfg: RunConfig) -> None:
    """Refuse seed settings that cannot work (run where the config is composed, too)."""
    if cfg.seed < RANDOM_SEED:
        raise RotoscopeError(
            f"seed={cfg.seed} must not be negative",
            "seed=-1 draws one for the run folder; for a different seed per frame use "
            "seed_behavior=random (drawn from the seed)",
        )
    if cfg.seed_iter_n < 1:
        raise RotoscopeError(f"seed_iter_n={cfg.seed_iter_n} must be at least 1")
    resize = {"seed_resize_from_w": cfg.seed_resize_from_w,
              "seed_resize_from_h": cfg.seed_resize_from_h}  # fmt: skip
    for key, value in resize.items():
        if value < 0:
            raise RotoscopeError(f"{key}={value} is negative", "a size in pixels, or 0 for off")
    given = [key for key, value in resize.items() if value > 0]
    if len(given) == 1:
        other = next(key for key in resize if key not in given)
        raise RotoscopeError(
            f"{given[0]}={resize[given[0]]} needs {other} too",
            "A1111 resizes the seed's noise from a width and a height; 0 for both is off",
        )


# seed=-1: a base seed drawn once for the run folder
RANDOM_SEED = -1


def check_row(row: PlanRow, origins: dict[str, str]) -> None:
    """Reject values diffusers would fail on mid-run, naming the frame and schedule."""

    def fail(key: str, problem: str, hint: str) -> NoReturn:
        where = origins.get(key, "command line")
        raise RotoscopeError(f"{where}: {key} at frame {row.index}: {problem}", hint)

    if not 0.0 <= row.strength <= 1.0:
        fail(
            "strength", f"{row.strength:g} is outside 0..1", "0 keeps the input frame, 1 ignores it"
        )
    if row.steps < 1:
        fail("steps", f"{row.steps} steps", "steps must be at least 1")
    if row.steps > MAX_STEPS:
        fail(
            "steps", f"{row.steps} steps is more than the model's {MAX_STEPS} noise levels",
            "20 to 50 is typical; A1111 allows at most 150",
        )  # fmt: skip
    # steps x strength < 1 runs one step (as A1111 does): see samplers.inference_steps
    problem = check_sampler_steps(row.sampler, row.steps, row.strength)
    if problem:
        fail("steps", *problem)
    if row.clip_skip is not None and row.clip_skip < 1:
        fail("clip_skip", f"{row.clip_skip} is below 1", "1 is the last layer, 2 the one before")
    if row.subseed_strength is not None and not 0.0 <= row.subseed_strength <= 1.0:
        fail(
            "subseed_strength", f"{row.subseed_strength:g} is outside 0..1",
            "0 is the seed's noise alone, 1 the subseed's",
        )  # fmt: skip
    if row.guidance_scale < 0:
        fail("guidance_scale", f"{row.guidance_scale:g} is negative", "use 0 or more")
    if row.zoom is not None and row.zoom <= 0:
        fail("animation.zoom", f"{row.zoom:g} is not positive", "1 means no zoom")
    check_loopback_values(row, fail)
    for item in SCHEDULES:
        value = getattr(row, item.name)
        if item.group in COHERENCE_GROUPS and value is not None and not 0.0 <= value <= 1.0:
            fail(item.key, f"{value:g} is outside 0..1", "a fraction from 0 to 1")
    if row.repair_strength is not None and not 0.0 <= row.repair_strength <= 1.0:
        fail(
            "cadence.repair_strength", f"{row.repair_strength:g} is outside 0..1",
            "a light pass: 0.2 to 0.4 repaints what the diffused frames miss; 0 turns it off",
        )  # fmt: skip
    if row.repair_strength:  # the repair pass runs the row's sampler at its own strength
        problem = check_sampler_steps(row.sampler, row.steps, row.repair_strength)
        if problem:
            fail("cadence.repair_strength", *problem)
    for name, low, high, hint in MASK_RANGES:
        value = getattr(row, name)
        if value is not None and not low <= value <= high:
            fail(SCHEDULE_KEYS[name], f"{value:g} is outside {low:g}..{high:g}", hint)
    for unit, values in (row.controls or {}).items():
        if values.weight < 0:
            fail(
                f"controlnet.units.{unit}.weight", f"{values.weight:g} is negative", "use 0 or more"
            )
        for part in ("start", "end"):
            value = getattr(values, part)
            if not 0.0 <= value <= 1.0:
                key = f"controlnet.units.{unit}.{CONTROL_UNIT_SCHEDULES[part]}"
                fail(key, f"{value:g} is outside 0..1", "a fraction of the steps")


def check_loopback_values(row: PlanRow, fail: Callable[[str, str, str], NoReturn]) -> None:
    """Reject a loopback or 3D camera value that has no meaning (a lens of 0 or 180
    degrees, near planes beyond far ones, a move past the camera)."""
    for name in ("noise", "noise_multiplier", "contrast", "anti_blur_sigma",
                 "anti_blur_threshold", "perlin_persistence"):  # fmt: skip
        value = getattr(row, name)
        if value is not None and value < 0:
            fail(SCHEDULE_KEYS[name], f"{value:g} is negative", "use 0 or more")
    for name in ("fov", "perspective_flip_fv"):
        value = getattr(row, name)
        if value is not None and not (0 < abs(value) < 180 and (value > 0 or name == "fov")):
            fail(
                SCHEDULE_KEYS[name], f"{value:g} degrees is not a field of view",
                "a field of view is between 0 and 180 degrees, both excluded (Deforum's "
                "default is 70 for the camera, 53 for the flip)",
            )  # fmt: skip
    if row.near is not None and row.far is not None and row.near >= row.far:
        fail(
            "animation.near", f"the near plane ({row.near:g}) is not in front of the far "
            f"plane (animation.far {row.far:g})", "near must be less than far",
        )  # fmt: skip
    if row.aspect_ratio == 0:
        fail("animation.aspect_ratio", "0 is not an aspect ratio", "1 is Deforum's default")
    if row.translation_z is not None and row.translation_z >= TRANSLATION_Z_LIMIT:
        fail(
            "animation.translation_z", f"{row.translation_z:g} moves the camera past the "
            "nearest point of the scene", f"Deforum's units: {TRANSLATION_Z_LIMIT:g} is the "
            "distance to the nearest point; forward moves are a few units per frame",
        )  # fmt: skip
    if row.perlin_octaves is not None and row.perlin_octaves < 1:
        fail("animation.perlin_octaves", f"{row.perlin_octaves} octaves", "use 1 or more")
    for name, low, high, hint in HYBRID_RANGES:
        value = getattr(row, name)
        if value is not None and not low <= value <= high:
            fail(SCHEDULE_KEYS[name], f"{value:g} is outside {low:g}..{high:g}", hint)
    low_cut, high_cut = row.hybrid_mask_cutoff_low, row.hybrid_mask_cutoff_high
    if low_cut is not None and high_cut is not None and low_cut >= high_cut:
        fail(
            "animation.hybrid.mask_cutoff_low", f"{low_cut:g} is not below mask_cutoff_high "
            f"{high_cut:g}", "percentiles: the low cutoff below the high one",
        )  # fmt: skip


# The hybrid schedules' ranges (row field, low, high, hint)
HYBRID_RANGES = (
    ("hybrid_flow_factor", -10.0, 10.0, "1 follows the video's motion, 0 stays still"),
    ("hybrid_alpha", 0.0, 1.0, "the video's share of the composite, 0..1"),
    ("hybrid_mask_contrast", 0.0, math.inf, "1 keeps the mask's contrast"),
    ("hybrid_mask_blend_alpha", 0.0, 1.0, "the video's share of the blend mask, 0..1"),
    ("hybrid_mask_cutoff_low", 0.0, 100.0, "a percentile"),
    ("hybrid_mask_cutoff_high", 0.0, 100.0, "a percentile"),
)


# A forward move of 200 (Deforum's units) reaches the nearest point of a depth map.
TRANSLATION_Z_LIMIT = 200.0
