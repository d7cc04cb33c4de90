"""The plan's cross-key rules: which ways of rendering go together, and which options
the chosen way uses (an option it would ignore is refused, never silently dropped).

Each rule is checked once, where the config is composed (:mod:`pipeline.run.configure`,
:func:`check_strategies`), or where the plan knows the source (:func:`check_retiming`,
:func:`check_hybrid_video`, :func:`check_cadence_flow`).
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

from pipeline.config.schema import (
    AnimationConfig,
    CadenceFlow,
    ColorCoherence,
    ControlMode,
    DepthModel,
    HybridConfig,
    HybridMotion,
    MaskArea,
    RunConfig,
)
from pipeline.control.preprocessors import INPAINT_PREPROCESSOR
from pipeline.errors import RotoscopeError
from pipeline.plan.build import Plan
from pipeline.source.base import SourceKind
from pipeline.source.masks import check_mask_options
from pipeline.source.open import aligned_input, open_source


def check_retiming(cfg: RunConfig, plan: Plan) -> None:
    """In-between frames blend two neighbours: a folder whose images keep their own
    (different) sizes has neighbours that cannot be blended."""
    output = cfg.output
    retimed = output.interpolate > 1 or output.fps is not None or output.slow_motion > 1
    sizes = {(row.width, row.height) for row in plan.rows}
    if retimed and len(sizes) > 1:
        raise RotoscopeError(
            f"input.path '{cfg.input.path}' holds images of {len(sizes)} sizes, and "
            "output.interpolate / output.fps / output.slow_motion make frames between "
            "neighbours of one size",
            "leave them at their defaults for a batch of photos, or give the folder one size "
            "(input.width / input.height)",
        )


def check_strategies(cfg: RunConfig) -> None:
    """Refuse the ways of rendering that do not combine, and coherence values out of range
    (run where the config is composed: :mod:`pipeline.run.configure`)."""
    mode = cfg.animation.mode
    check_start(cfg)
    if cfg.controlnet.units and cfg.controlnet.mode is ControlMode.txt2img and mode.loops:
        raise RotoscopeError(
            f"controlnet.mode=txt2img with animation.mode={mode.value}: txt2img makes every "
            "frame from noise, and a loopback makes each from the one before",
            "use controlnet.mode=img2img with loopback (its units guide each frame)",
        )
    check_mask_strategies(cfg)
    check_animation(cfg)
    check_cadence(cfg)
    check_hybrid(cfg)
    coherence = cfg.coherence
    if not (coherence.attention or coherence.flow):
        return
    if mode.loops:
        raise RotoscopeError(
            f"coherence with animation.mode={mode.value}: loopback already makes every frame "
            "from the previous output",
            "use coherence=none with loopback, or coherence with animation=none",
        )
    if coherence.flow and cfg.controlnet.units and cfg.controlnet.mode is ControlMode.txt2img:
        raise RotoscopeError(
            "coherence.flow with controlnet.mode=txt2img: flow carries what img2img adds to "
            "each frame's own picture, and txt2img has no picture to start from",
            "use coherence=attention with txt2img, or controlnet.mode=img2img",
        )
    if not 0.0 <= coherence.cut_threshold <= 1.0:
        raise RotoscopeError(
            f"coherence.cut_threshold={coherence.cut_threshold:g} is outside 0..1",
            "a histogram distance: 0.5 finds hard cuts, 1 finds none",
        )
    if coherence.reanchor_every < 0:
        raise RotoscopeError(
            f"coherence.reanchor_every={coherence.reanchor_every} is negative",
            "a number of frames, or 0 for never",
        )


def check_start(cfg: RunConfig) -> None:
    """What a run starts from: an input, or for a loopback nothing (its first frame a
    txt2img render); refuse what needs an input's frames without one."""
    given = cfg.input.path is not None
    if given and cfg.input.frames is not None:
        raise RotoscopeError(
            "input.frames counts the frames made without an input, and input.path is given",
            "leave input.frames unset; input.max_frames limits the frames of an input",
        )
    if given:
        return
    if not cfg.animation.mode.loops:
        raise RotoscopeError(
            "input.path is required (give the clip, folder or image: rotoscope "
            "input.path=clip.mp4 prompt='...')",
            "or animate from a txt2img first frame: animation=loopback (or 3d) with "
            "input.frames, input.width and input.height",
        )
    animation = cfg.animation
    if animation.color_coherence is ColorCoherence.video and not animation.color_coherence_video:
        raise RotoscopeError(
            "animation.color_coherence=video follows the input's frames, and there is no "
            "input.path", "give the video as animation.color_coherence_video",
        )  # fmt: skip


def check_mask_strategies(cfg: RunConfig) -> None:
    """Refuse what masks do not combine with, and ``mask.*`` values that cannot work."""
    mask = cfg.mask
    inpaint_units = [
        name for name, unit in cfg.controlnet.units.items()
        if unit.preprocessor == INPAINT_PREPROCESSOR
    ]  # fmt: skip
    if not mask.active:
        if inpaint_units:
            raise RotoscopeError(
                f"controlnet unit '{inpaint_units[0]}' uses the inpaint preprocessor, "
                "which repaints a mask, but no mask is given",
                "set mask.path, mask.key or mask.luma, or use another preprocessor",
            )
        return
    check_mask_options(mask)
    if cfg.animation.mode.loops:
        raise RotoscopeError(
            f"masks with animation.mode={cfg.animation.mode.value} are not supported: a "
            "loopback frame is "
            "made from the previous output, not from a source frame to keep",
            "use masks with animation=none; coherence keeps them steady",
        )
    if cfg.controlnet.units and cfg.controlnet.mode is ControlMode.txt2img:
        raise RotoscopeError(
            "masks with controlnet.mode=txt2img: the frame outside the mask is kept from "
            "the frame itself, which txt2img does not start from",
            "use controlnet.mode=img2img with strength=1 to repaint the masked area fully",
        )
    if (cfg.coherence.attention or cfg.coherence.flow) and mask.area is MaskArea.masked:
        raise RotoscopeError(
            "mask.area=masked with coherence: each frame's crop has its own box and size, "
            "and coherence carries whole frames along the motion",
            "use mask.area=full with coherence",
        )


def adaptive_cadence(cfg: RunConfig) -> bool:
    """Whether the plan measures the source's motion for cadence's adaptive keyframes."""
    cadence = cfg.cadence
    return (
        cadence.every > 1
        and not cfg.animation.mode.loops
        and (cadence.max_motion > 0 or cadence.max_occluded > 0)
    )


def check_cadence(cfg: RunConfig) -> None:
    """Refuse cadence values out of range, and cadence options the way of rendering does
    not use (an input video's repair and adaptive keyframes, loopback's optical flow)."""
    cadence = cfg.cadence
    if cadence.every < 1:
        raise RotoscopeError(
            f"cadence.every={cadence.every} must be at least 1", "1 diffuses every frame"
        )
    for key, value, high in (("max_motion", cadence.max_motion, math.inf),
                             ("max_occluded", cadence.max_occluded, 1.0)):  # fmt: skip
        if not 0 <= value <= high:
            raise RotoscopeError(
                f"cadence.{key}={value:g} is outside 0..{high:g}",
                "a fraction (of the frame's width, of its pixels), or 0 for off",
            )
    loops = cfg.animation.mode.loops
    video_only = {
        "cadence.repair_strength": not _same_number(cadence.repair_strength, "0"),
        "cadence.max_motion": cadence.max_motion > 0,
        "cadence.max_occluded": cadence.max_occluded > 0,
    }
    loopback_only = {
        "cadence.flow": cadence.flow is not CadenceFlow.none,
        "cadence.flow_factor": not _same_number(cadence.flow_factor, "1"),
    }
    used = [key for key, given in {**video_only, **loopback_only}.items() if given]
    if used and cadence.every == 1:
        raise RotoscopeError(
            f"{used[0]} is set but cadence.every=1 diffuses every frame",
            "set cadence.every=N (N > 1) to diffuse every N-th frame",
        )
    misplaced = [key for key, given in (video_only if loops else loopback_only).items() if given]
    if misplaced and loops:
        raise RotoscopeError(
            f"{misplaced[0]} applies to frames carried along an input video, not to "
            f"animation.mode={cfg.animation.mode.value}, whose frames between are Deforum's "
            "tweens", "leave it out in loopback; cadence.flow moves the tweens",
        )  # fmt: skip
    if misplaced:
        raise RotoscopeError(
            f"{misplaced[0]} is loopback's (Deforum's optical flow cadence): frames carried "
            "along an input video always follow the source's own flow",
            "leave it out with animation=none",
        )
    if loops and cadence.every > 1:
        check_loopback_cadence(cfg)
    generates = cfg.controlnet.units and cfg.controlnet.mode is ControlMode.txt2img
    if video_only["cadence.repair_strength"] and generates:
        raise RotoscopeError(
            "cadence.repair_strength with controlnet.mode=txt2img: the repair pass is a light "
            "img2img of the carried frame, and txt2img starts from noise",
            "use controlnet.mode=img2img, or cadence.repair_strength=0",
        )


def check_loopback_cadence(cfg: RunConfig) -> None:
    """Deforum's cadence tweens the frames between diffused frames by the camera alone:
    refuse hybrid video, whose motion and composite would then reach the diffused frames
    only (Deforum also moves its tweens by it)."""
    if cfg.animation.hybrid.active:
        raise RotoscopeError(
            f"cadence.every={cfg.cadence.every} with animation.hybrid: the frames tweened "
            "between diffused frames are not moved or composited by the hybrid video",
            "use cadence.every=1 with hybrid video, or leave animation.hybrid out",
        )


def check_cadence_flow(cfg: RunConfig) -> None:
    """``cadence.flow=raft`` needs its weights on this machine (nothing is downloaded)."""
    cadence = cfg.cadence
    if cadence.flow is CadenceFlow.raft and not Path(cadence.raft_weights).expanduser().is_file():
        raise RotoscopeError(
            f"cadence.flow=raft needs RAFT's weights: cadence.raft_weights='"
            f"{cadence.raft_weights}' is not a file",
            "put torchvision's raft_large weights (raft_large_C_T_SKHT_V2-ff5fadd5.pth) "
            "there, or use cadence.flow=dis_medium (no weights)",
        )


def check_animation(cfg: RunConfig) -> None:
    """Refuse animation settings that cannot apply: a depth video without frames made
    from each other, a blend of a depth model with itself, a weight outside 0..1."""
    animation = cfg.animation
    if animation.save_depth and not animation.mode.loops:
        raise RotoscopeError(
            "animation.save_depth needs animation.mode=loopback or 3d",
            "depth is estimated from each output frame of a loopback",
        )
    depth = animation.depth
    if depth.blend is not DepthModel.none and depth.blend is depth.model:
        raise RotoscopeError(
            f"animation.depth.blend={depth.blend.value} blends the depth model with itself",
            "blend another model (midas, zoe, depth_anything), or none",
        )
    if not 0.0 <= depth.midas_weight <= 1.0:
        raise RotoscopeError(
            f"animation.depth.midas_weight={depth.midas_weight:g} is outside 0..1",
            "the share of animation.depth.model in the blend with animation.depth.blend",
        )
    if animation.color_coherence_every < 1:
        raise RotoscopeError(
            f"animation.color_coherence_every={animation.color_coherence_every} must be at "
            "least 1", "1 follows every frame of the video",
        )  # fmt: skip
    if animation.color_coherence is not ColorCoherence.video and animation.color_coherence_video:
        raise RotoscopeError(
            "animation.color_coherence_video is set but animation.color_coherence="
            f"{animation.color_coherence.value}", "set animation.color_coherence=video to use it",
        )  # fmt: skip
    for name in ("perlin_cells_x", "perlin_cells_y"):
        if getattr(animation, name) < 1:
            raise RotoscopeError(
                f"animation.{name}={getattr(animation, name)} must be at least 1",
                "the Perlin lattice's cells at the first octave (Deforum's default: 8)",
            )


def check_hybrid_video(cfg: RunConfig, count: int, size: tuple[int, int]) -> None:
    """The hybrid video has a frame for every planned frame (one image serves them all,
    for a composite: it does not move)."""
    path = cfg.animation.hybrid.video or cfg.input.path
    assert path is not None  # check_hybrid refused a hybrid video without a video
    with open_source(aligned_input(cfg.input, path, size)) as source:
        if source.info.kind is SourceKind.image:
            if cfg.animation.hybrid.motion is not HybridMotion.none:
                raise RotoscopeError(
                    f"animation.hybrid.motion={cfg.animation.hybrid.motion.value} takes the "
                    f"motion of a video, and '{path}' is one image",
                    "give a video as animation.hybrid.video (or input.path)",
                )
            return
        frames = source.count_frames()
    if frames < count:
        raise RotoscopeError(
            f"the hybrid video '{path}' has {frames} frames but the animation has {count}",
            "give fewer frames (input.max_frames / input.frames) or a longer video",
        )


def check_hybrid(cfg: RunConfig) -> None:
    """Hybrid video is a loopback's, from a video (its own, or the input)."""
    hybrid = cfg.animation.hybrid
    if not hybrid.active:
        default = HybridConfig()
        given = [
            item.name
            for item in fields(hybrid)
            if getattr(hybrid, item.name) != getattr(default, item.name)
        ]
        if given:
            raise RotoscopeError(
                f"animation.hybrid.{given[0]} is set but hybrid video is off (it does nothing)",
                "set animation.hybrid.motion and/or animation.hybrid.composite to use it",
            )
        return
    if not cfg.animation.mode.loops:
        raise RotoscopeError(
            "animation.hybrid moves and composites a loopback's frames, and "
            f"animation.mode={cfg.animation.mode.value}",
            "use animation=loopback or 3d with it",
        )
    if hybrid.video is None and cfg.input.path is None:
        raise RotoscopeError(
            "animation.hybrid needs a video: animation.hybrid.video, or input.path",
            "give the video whose motion or picture the animation takes",
        )
    if hybrid.consistency_blur < 0:
        raise RotoscopeError(
            f"animation.hybrid.consistency_blur={hybrid.consistency_blur:g} is negative",
            "pixels of feather, 0 for none",
        )


def two_d_moves_in_3d(cfg: RunConfig) -> list[str]:
    """The 2D move schedules set to a move in 3d mode, where they do nothing."""
    if not cfg.animation.mode.in_3d:
        return []
    defaults = AnimationConfig()
    return [
        name
        for name in ("zoom", "angle", "transform_center_x", "transform_center_y")
        if not _same_number(getattr(cfg.animation, name), getattr(defaults, name))
    ]


def _same_number(value: str, default: str) -> bool:
    try:
        return float(value) == float(default)
    except ValueError:
        return False  # a schedule
