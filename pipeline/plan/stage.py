"""The plan stage: probe the source, resolve every schedule, write the plan.

No model is loaded, so ``stages=[plan]`` is a cheap dry run: ``plan.csv``, ``plan.jsonl``,
the chart ``plan.png`` and ``source.json`` show what every frame will get.

The plan is made in two steps. :func:`make_plan` probes the input and resolves every
schedule, size and count in memory, writing nothing: every job makes it before it
writes anything (:mod:`pipeline.run.job`), so a value the plan refuses (``strength=2``,
a schedule past 0..1 at some frame) changes nothing in the run folder.
:func:`write_plan_files` then writes it where the job keeps it (the run folder, or its
``preview/`` for a job that does not render).
"""

from __future__ import annotations

import logging
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from pipeline.animation.flow_cache import FlowCache
from pipeline.config.schema import (
    CadenceFlow,
    HybridMask,
    MaskConfig,
    Reanchor,
    RunConfig,
)
from pipeline.control.maps import check_units
from pipeline.errors import RotoscopeError, plural
from pipeline.models.depth import check_depth_weights
from pipeline.plan.build import Plan, build_plan
from pipeline.plan.cadence import MotionPairs
from pipeline.plan.chart import network_series, write_plan_chart
from pipeline.plan.checks import (
    adaptive_cadence,
    check_cadence_flow,
    check_hybrid_video,
    check_retiming,
    two_d_moves_in_3d,
)
from pipeline.plan.rows import PlanRow, write_plan
from pipeline.records.interrupts import GracefulStop
from pipeline.records.run_folder import RunFolder
from pipeline.source.base import SourceInfo, SourceKind
from pipeline.source.cuts import CutDetector
from pipeline.source.masks import check_masks
from pipeline.source.open import is_photo_batch, keeps_own_sizes, open_source

log = logging.getLogger("rotoscope")


@dataclass(frozen=True)
class PlannedRun:
    """A job's plan, made in memory: the rows, what the chart shows, what the input is."""

    plan: Plan
    info: SourceInfo
    summary: str  # the line a user checks before rendering

    @property
    def count(self) -> int:
        return len(self.plan.rows)


def make_plan(
    cfg: RunConfig, origins: dict[str, str], stop: GracefulStop | None = None
) -> PlannedRun:
    """Probe the source and resolve every schedule; write nothing.

    ``origins`` maps config keys to the keyframe file their value came from, so errors
    name that file. ``stop`` is checked after every frame decoded to count them.
    """
    with ExitStack() as stack:
        motion = None
        if adaptive_cadence(cfg):  # measured aside: making a plan writes nothing
            measured = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="motion-")))
            motion = MotionPairs(FlowCache(lambda index: measured / f"{index:06d}.npz"))
        return plan_input(cfg, origins, stop, motion)


def plan_input(
    cfg: RunConfig,
    origins: dict[str, str],
    stop: GracefulStop | None,
    motion: MotionPairs | None,
) -> PlannedRun:
    """:func:`make_plan` with ``motion`` measuring the source's flow for cadence's
    adaptive keyframes (None: not needed)."""
    coherent = cfg.coherence.attention or cfg.coherence.flow
    carried = cfg.cadence.every > 1 and not cfg.animation.mode.loops  # along a video

    def safe_point() -> None:
        if stop is not None:
            stop.safe_point("plan")

    cuts: list[int] = []
    with open_source(cfg.input, keeps_own_sizes(cfg)) as source:
        info = source.info
        names = source.frame_names()
        detector = (
            CutDetector(cfg.coherence.cut_threshold)
            if (coherent or carried) and Reanchor.cuts in cfg.coherence.reanchor
            else None
        )
        if detector is not None or motion is not None:
            if motion is not None:
                log.info("cadence: measuring the source's motion for adaptive keyframes")
            for frame in source:  # one pass counts the frames, finds cuts, measures motion
                if detector is not None:
                    detector.add(frame.index, frame.image)
                if motion is not None:
                    motion.add(frame.index, frame.image)
                safe_point()
            # unreadable images skipped on the way still hold their frame numbers
            count = source.frames_read + len(source.failures)
            cuts = detector.cuts if detector is not None else []
        else:
            count = source.count_frames(safe_point)
    for note in source.notes:
        log.warning("%s", note)
    if cfg.animation.mode.loops and cfg.input.max_frames and info.kind is not SourceKind.none:
        if info.kind is SourceKind.image and cfg.input.repeat > 1:
            # a still repeated says how long the animation is, over a Deforum file's count
            if cfg.input.max_frames > cfg.input.repeat:  # fewer: the selection stops there
                log.warning(
                    "input.repeat=%d gives the animation's length: input.max_frames=%d is "
                    "not used", cfg.input.repeat, cfg.input.max_frames,
                )  # fmt: skip
        else:
            count = cfg.input.max_frames  # loopback needs only the first frame as its start
    if count == 0:
        raise RotoscopeError(
            f"input.path '{cfg.input.path}' selects no frames",
            "check input.start / input.end / input.max_frames",
        )
    if cfg.controlnet.units:
        check_units(cfg, count, info.width, info.height)
    if cfg.mask.active:
        check_masks(cfg.mask, info, source.selection, count)
    hybrid = cfg.animation.hybrid
    depth_masks = hybrid.mask in (HybridMask.depth, HybridMask.video_depth)
    if cfg.animation.mode.in_3d or cfg.animation.save_depth or depth_masks:
        check_depth_weights(cfg.animation.depth, cfg.paths.models)  # before any GPU time
    if hybrid.active:
        check_hybrid_video(cfg, count, (info.width, info.height))
    unused = two_d_moves_in_3d(cfg)
    if unused:
        log.warning(
            "%s: 2D moves, which animation.mode=3d does not make (nor does Deforum's 3D); "
            "the 3D camera moves with translation_x/y/z and rotation_3d_x/y/z",
            ", ".join(f"animation.{name}={getattr(cfg.animation, name)}" for name in unused),
        )  # fmt: skip
    if cfg.cadence.every > 1 and cfg.animation.mode.loops:
        check_cadence_flow(cfg)  # RAFT's weights, before any GPU time
    plan = build_plan(
        cfg, count, info.width, info.height, info.fps, origins, info.frame_sizes, cuts,
        names[:count] if names is not None and info.kind is SourceKind.folder else None,
        motion,
        from_noise=info.kind is SourceKind.none,
    )  # fmt: skip
    check_retiming(cfg, plan)
    return PlannedRun(plan, info, summarize(plan, info, cfg))


def write_plan_files(planned: PlannedRun, folder: RunFolder) -> None:
    """Write the plan (``plan.jsonl``, ``plan.csv``), its chart and ``source.json``."""
    plan = planned.plan
    write_plan(plan.rows, folder)
    networks = network_series(
        [row.loras for row in plan.rows],
        [row.blend if row.prompt_to is not None else None for row in plan.rows],
    )
    write_plan_chart(
        [*plan.series, *networks],
        [(k.frame, k.prompt) for k in plan.prompt_keys],
        folder.plan_chart,
    )
    planned.info.write(folder.source_json)


def mask_summary(mask: MaskConfig) -> str:
    """The plan line's words on the mask: where it comes from and how it is rendered."""
    if mask.path is not None:
        origin = f"mask {mask.path}"
    elif mask.key is not None:
        origin = f"chroma key {mask.key}"
    elif mask.luma is not None:
        origin = f"luma {mask.luma[0]:g}-{mask.luma[1]:g}"
    else:
        origin = "mask"
    extra = [f"expression {mask.expression}"] if mask.expression else []
    extra += ["inverted"] if mask.invert else []
    extra += [f"area {mask.area.value}", f"fill {mask.fill.value}"]
    extra += [] if mask.composite else ["no composite"]
    return f"{origin} ({', '.join(extra)})"


def summarize(plan: Plan, info: SourceInfo, cfg: RunConfig) -> str:
    """One line a user can check before rendering: size, frames, ranges, prompts."""

    def span(values: list[float]) -> str:
        low, high = min(values), max(values)
        return (
            f"{low:g}" if low == high else f"{values[0]:g}..{values[-1]:g} (range {low:g}-{high:g})"
        )

    rows = plan.rows
    seeds = sorted({row.seed for row in rows})
    seed_text = (
        f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds ({cfg.seed_behavior.value})"
    )
    mode = {"none": "", "loopback": ", loopback", "3d": ", 3d loopback"}[cfg.animation.mode.value]
    origin = "a txt2img first frame" if info.kind is SourceKind.none else str(info.path)
    starts = sorted({row.segment_start for row in rows if row.segment_start is not None})
    segments = [f"{len(starts)} coherence segment(s) from frames {_frame_list(starts)}"]
    sizes = {(row.width, row.height) for row in rows}
    size = (
        f"{info.width}x{info.height}"
        if len(sizes) == 1
        else f"each image's own size ({len(sizes)} sizes)"
    )
    # a photo batch is unrelated pictures, not a clip: no frame rate
    rate = "" if is_photo_batch(cfg, info.kind) else f" at {info.fps:g} fps"
    return "; ".join(
        [
            f"{plural(len(rows), 'frame')} of {origin} ({info.kind.value}, {size}{rate}{mode})",
            f"{len(plan.prompt_keys)} prompt keyframe(s)",
            f"strength {span([r.strength for r in rows])}",
            f"guidance {span([r.guidance_scale for r in rows])}",
            f"steps {span([float(r.steps) for r in rows])}",
            rows[0].sampler + (f" ({rows[0].scheduler})" if rows[0].scheduler else ""),
            seed_text,
            *_variation(rows),
            *(segments if starts else []),
            *(_editing_counted(rows)),
            *(cadence_summary(rows, cfg)),
            *([mask_summary(cfg.mask)] if cfg.mask.active else []),
        ]
    )


def cadence_summary(rows: list[PlanRow], cfg: RunConfig) -> list[str]:
    """Which frames a cadence diffuses (nothing without one)."""
    cadence = cfg.cadence
    if cadence.every <= 1:
        return []
    diffused = [row.index for row in rows if row.diffused]
    how = "Deforum's cadence" if cfg.animation.mode.loops else "cadence"
    flow = f", flow {cadence.flow.value}" if cadence.flow is not CadenceFlow.none else ""
    return [
        f"{how} every {cadence.every}{flow}: {len(diffused)} of {plural(len(rows), 'frame')} "
        f"diffused ({_frame_list(diffused)})"
    ]


def _variation(rows: list[PlanRow]) -> list[str]:
    """A1111's variation seed and seed resize, where rows use them."""
    varied = [row for row in rows if row.subseed_strength is not None]
    words = []
    if varied:
        subseeds = sorted({row.subseed for row in varied if row.subseed is not None})
        named = f"subseed {subseeds[0]}" if len(subseeds) == 1 else f"{len(subseeds)} subseeds"
        strengths = [row.subseed_strength or 0.0 for row in varied]
        span = (
            f"{min(strengths):g}"
            if min(strengths) == max(strengths)
            else (f"{min(strengths):g}-{max(strengths):g}")
        )
        words.append(f"variation {named} at {span} on {plural(len(varied), 'frame')}")
    resized = next((row for row in rows if row.seed_resize_from_w is not None), None)
    if resized is not None:
        words.append(f"seed resized from {resized.seed_resize_from_w}x{resized.seed_resize_from_h}")
    return words


def _editing_counted(rows: list[PlanRow]) -> list[str]:
    """How prompt editing counts its steps, when rows use a count other than the default."""
    counts = sorted({row.prompt_editing_steps for row in rows if row.prompt_editing_steps})
    return [f"prompt editing counts steps as {count} does" for count in counts]


def _frame_list(frames: list[int], shown: int = 8) -> str:
    listed = ", ".join(str(frame) for frame in frames[:shown])
    return listed + (f", ... ({len(frames) - shown} more)" if len(frames) > shown else "")
