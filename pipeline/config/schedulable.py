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
    variation = "variation"  # with a subseed_strength other than 0 (the subseed)
    motion = "motion"  # with animation.mode=loopback or 3d
    motion_2d = "motion_2d"  # with animation.mode=loopback
    camera_3d = "camera_3d"  # with animation.mode=3d
    anti_blur = "anti_blur"  # in loopback and 3d, with animation.anti_blur
    perlin = "perlin"  # in loopback and 3d, with animation.noise_type=perlin
    perspective_flip = "perspective_flip"  # in loopback and 3d, with animation.perspective_flip
    attention = "attention"  # with coherence.attention
    flow = "flow"  # with coherence.flow
    mask = "mask"  # with a mask (mask.path, mask.key, mask.luma or mask.expression)
    cadence = "cadence"  # with cadence.every > 1 on an input's frames (animation.mode=none)
    cadence_flow = "cadence_flow"  # with cadence.every > 1 in loopback, with cadence.flow
    hybrid_flow = "hybrid_flow"  # in loopback and 3d, with animation.hybrid.motion=optical_flow
    hybrid_composite = "hybrid_composite"  # ... with animation.hybrid.composite


@dataclass(frozen=True)
class Schedulable:
    """One schedulable value: its name (keyframe files, charts, ``schedule_interpolation``,
    the plan row field) and the config key its schedule string lives at.

    ``neutral`` is a value that does nothing (a multiplier of 1): on frames where the
    schedule has it the row leaves the field unset, so a plan that never leaves it keeps
    the frame keys of plans made before the schedule existed, and the chart shows the
    schedule only where it leaves it somewhere.
    """

    name: str
    key: str
    group: ScheduleGroup
    neutral: float | None = None


FLIP = ScheduleGroup.perspective_flip
# The hybrid composite's schedules: its alpha and its mask's shaping
HYBRID_COMPOSITE_PARTS = (
    "alpha", "mask_contrast", "mask_blend_alpha", "mask_cutoff_low", "mask_cutoff_high"
)  # fmt: skip
SCHEDULES: tuple[Schedulable, ...] = (
    Schedulable("strength", "strength", ScheduleGroup.generation),
    Schedulable("guidance_scale", "guidance_scale", ScheduleGroup.generation),
    Schedulable("steps", "steps", ScheduleGroup.generation),
    Schedulable("noise_multiplier", "noise_multiplier", ScheduleGroup.generation, neutral=1.0),
    Schedulable("seed", "seed_schedule", ScheduleGroup.seed),
    Schedulable("subseed_strength", "subseed_strength", ScheduleGroup.generation, neutral=0.0),
    Schedulable("subseed", "subseed", ScheduleGroup.variation),
    Schedulable("zoom", "animation.zoom", ScheduleGroup.motion_2d),
    Schedulable("angle", "animation.angle", ScheduleGroup.motion_2d),
    Schedulable("translation_x", "animation.translation_x", ScheduleGroup.motion),
    Schedulable("translation_y", "animation.translation_y", ScheduleGroup.motion),
    Schedulable("transform_center_x", "animation.transform_center_x", ScheduleGroup.motion_2d),
    Schedulable("transform_center_y", "animation.transform_center_y", ScheduleGroup.motion_2d),
    Schedulable("noise", "animation.noise", ScheduleGroup.motion),
    Schedulable("contrast", "animation.contrast", ScheduleGroup.motion, neutral=1.0),
    Schedulable("translation_z", "animation.translation_z", ScheduleGroup.camera_3d),
    Schedulable("rotation_3d_x", "animation.rotation_3d_x", ScheduleGroup.camera_3d),
    Schedulable("rotation_3d_y", "animation.rotation_3d_y", ScheduleGroup.camera_3d),
    Schedulable("rotation_3d_z", "animation.rotation_3d_z", ScheduleGroup.camera_3d),
    Schedulable("fov", "animation.fov", ScheduleGroup.camera_3d),
    Schedulable("near", "animation.near", ScheduleGroup.camera_3d),
    Schedulable("far", "animation.far", ScheduleGroup.camera_3d),
    Schedulable("aspect_ratio", "animation.aspect_ratio", ScheduleGroup.camera_3d),
    Schedulable("anti_blur_amount", "animation.anti_blur_amount", ScheduleGroup.anti_blur),
    Schedulable("anti_blur_kernel", "animation.anti_blur_kernel", ScheduleGroup.anti_blur),
    Schedulable("anti_blur_sigma", "animation.anti_blur_sigma", ScheduleGroup.anti_blur),
    Schedulable("anti_blur_threshold", "animation.anti_blur_threshold", ScheduleGroup.anti_blur),
    Schedulable("perlin_octaves", "animation.perlin_octaves", ScheduleGroup.perlin),
    Schedulable("perlin_persistence", "animation.perlin_persistence", ScheduleGroup.perlin),
    *(
        Schedulable(f"perspective_flip_{part}", f"animation.perspective_flip_{part}", FLIP)
        for part in ("theta", "phi", "gamma", "fv")
    ),
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
    Schedulable("repair_strength", "cadence.repair_strength", ScheduleGroup.cadence, neutral=0.0),
    Schedulable("cadence_flow_factor", "cadence.flow_factor", ScheduleGroup.cadence_flow),
    Schedulable("hybrid_flow_factor", "animation.hybrid.flow_factor", ScheduleGroup.hybrid_flow),
    *(
        Schedulable(f"hybrid_{part}", f"animation.hybrid.{part}", ScheduleGroup.hybrid_composite)
        for part in HYBRID_COMPOSITE_PARTS
    ),
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
