"""The one registry of schedulable values: every per-frame number a schedule can drive.

A schedulable value is written in Deforum's schedule syntax (``0:(0.65), 60:(0.45)``) at a
config key, evaluated per frame by the plan, stored in a field of each plan row
(:class:`pipeline.plan.rows.PlanRow`) of the same name, charted in ``plan.png`` and
listed in keyframe files under ``schedules:``. Adding a schedule means adding one entry
here and the row field it fills; the keyframe-file reader, the command-line quoting,
the plan and the chart all read this table. ControlNet units add three schedules per
unit (:data:`CONTROL_UNIT_SCHEDULES`) under ``controlnet.units.<unit>.``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class ScheduleGroup(Enum):
    """When a schedule is evaluated (and charted)."""

    generation = "generation"  # always
    seed = "seed"  # with seed_behavior=schedule
    motion = "motion"  # with animation.mode=loopback
    attention = "attention"  # with coherence.attention
    flow = "flow"  # with coherence.flow
    mask = "mask"  # with a mask (mask.path, mask.key, mask.luma or mask.expression)


@dataclass(frozen=True)
class Schedulable:
    """One schedulable value: its name (keyframe files, charts, ``schedule_interpolation``,
    the plan row field) and the config key its schedule string lives at."""

    name: str
    key: str
    group: ScheduleGroup


SCHEDULES: tuple[Schedulable, ...] = (
    Schedulable("strength", "strength", ScheduleGroup.generation),
    Schedulable("guidance_scale", "guidance_scale", ScheduleGroup.generation),
    Schedulable("steps", "steps", ScheduleGroup.generation),
    Schedulable("seed", "seed_schedule", ScheduleGroup.seed),
    Schedulable("zoom", "animation.zoom", ScheduleGroup.motion),
    Schedulable("angle", "animation.angle", ScheduleGroup.motion),
    Schedulable("translation_x", "animation.translation_x", ScheduleGroup.motion),
    Schedulable("translation_y", "animation.translation_y", ScheduleGroup.motion),
    Schedulable("transform_center_x", "animation.transform_center_x", ScheduleGroup.motion),
    Schedulable("transform_center_y", "animation.transform_center_y", ScheduleGroup.motion),
    Schedulable("noise", "animation.noise", ScheduleGroup.motion),
    Schedulable("attention_steps", "coherence.attention_steps", ScheduleGroup.attention),
    Schedulable("flow_fusion", "coherence.flow_fusion", ScheduleGroup.flow),
    Schedulable("flow_init", "coherence.flow_init", ScheduleGroup.flow),
    Schedulable("flow_output", "coherence.flow_output", ScheduleGroup.flow),
    Schedulable("mask_contrast", "mask.contrast", ScheduleGroup.mask),
    Schedulable("mask_brightness", "mask.brightness", ScheduleGroup.mask),
    Schedulable("mask_threshold", "mask.threshold", ScheduleGroup.mask),
    Schedulable("mask_grow", "mask.grow", ScheduleGroup.mask),
    Schedulable("mask_blur", "mask.blur", ScheduleGroup.mask),
    Schedulable("mask_overlay_blur", "mask.overlay_blur", ScheduleGroup.mask),
)
SCHEDULE_KEYS: dict[str, str] = {item.name: item.key for item in SCHEDULES}

# Per ControlNet unit: plan row name -> field of the unit's config.
CONTROL_UNIT_SCHEDULES: dict[str, str] = {
    "weight": "weight",
    "start": "guidance_start",
    "end": "guidance_end",
}
CONTROL_SCHEDULE_KEY = re.compile(
    r"controlnet\.units\.\w+\.(" + "|".join(CONTROL_UNIT_SCHEDULES.values()) + ")"
)


def schedules_in(group: ScheduleGroup) -> tuple[Schedulable, ...]:
    return tuple(item for item in SCHEDULES if item.group is group)


def is_schedule_key(key: str) -> bool:
    """True for a config key that holds a schedule string."""
    return key in SCHEDULE_KEYS.values() or bool(CONTROL_SCHEDULE_KEY.fullmatch(key))
