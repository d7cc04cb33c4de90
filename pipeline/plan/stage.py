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
from dataclasses import dataclass

from pipeline.config.schema import AnimationMode, ControlMode, Reanchor, RunConfig
from pipeline.control.maps import check_units
from pipeline.errors import RotoscopeError, plural
from pipeline.plan.build import Plan, build_plan
from pipeline.plan.chart import write_plan_chart
from pipeline.plan.rows import write_plan
from pipeline.records.interrupts import GracefulStop
from pipeline.records.run_folder import RunFolder
from pipeline.source.base import SourceInfo, SourceKind
from pipeline.source.cuts import CutDetector
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
    coherent = cfg.coherence.attention or cfg.coherence.flow

    def safe_point() -> None:
        if stop is not None:
            stop.safe_point("plan")

    cuts: list[int] = []
    with open_source(cfg.input, keeps_own_sizes(cfg)) as source:
        info = source.info
        names = source.frame_names()
        if coherent and Reanchor.cuts in cfg.coherence.reanchor:
            detector = CutDetector(cfg.coherence.cut_threshold)
            for frame in source:  # one pass counts the frames and finds the cuts
                detector.add(frame.index, frame.image)
                safe_point()
            # unreadable images skipped on the way still hold their frame numbers
            count, cuts = source.frames_read + len(source.failures), detector.cuts
        else:
            count = source.count_frames(safe_point)
    for note in source.notes:
        log.warning("%s", note)
    if cfg.animation.mode is AnimationMode.loopback and cfg.input.max_frames:
        count = cfg.input.max_frames  # loopback needs only the first frame as its start
    if count == 0:
        raise RotoscopeError(
            f"input.path '{cfg.input.path}' selects no frames",
            "check input.start / input.end / input.max_frames",
        )
    if cfg.controlnet.units:
        check_units(cfg, count, info.width, info.height)
    plan = build_plan(
        cfg, count, info.width, info.height, info.fps, origins, info.frame_sizes, cuts,
        names[:count] if names is not None and info.kind is SourceKind.folder else None,
    )  # fmt: skip
    return PlannedRun(plan, info, summarize(plan, info, cfg))


def write_plan_files(planned: PlannedRun, folder: RunFolder) -> None:
    """Write the plan (``plan.jsonl``, ``plan.csv``), its chart and ``source.json``."""
    plan = planned.plan
    write_plan(plan.rows, folder)
    write_plan_chart(
        plan.series, [(k.frame, k.prompt) for k in plan.prompt_keys], folder.plan_chart
    )
    planned.info.write(folder.source_json)


def check_strategies(cfg: RunConfig) -> None:
    """Refuse the ways of rendering that do not combine, and coherence values out of range
    (run where the config is composed: :mod:`pipeline.run.configure`)."""
    if cfg.controlnet.units and cfg.animation.mode is AnimationMode.loopback:
        raise RotoscopeError(
            "controlnet units with animation.mode=loopback are not supported",
            "use controlnet with animation=none, or loopback without controlnet",
        )
    coherence = cfg.coherence
    if not (coherence.attention or coherence.flow):
        return
    if cfg.animation.mode is AnimationMode.loopback:
        raise RotoscopeError(
            "coherence with animation.mode=loopback: loopback already makes every frame "
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
    mode = ", loopback" if cfg.animation.mode is AnimationMode.loopback else ""
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
            f"{plural(len(rows), 'frame')} of {info.path} ({info.kind.value}, {size}{rate}{mode})",
            f"{len(plan.prompt_keys)} prompt keyframe(s)",
            f"strength {span([r.strength for r in rows])}",
            f"guidance {span([r.guidance_scale for r in rows])}",
            f"steps {span([float(r.steps) for r in rows])}",
            rows[0].sampler,
            seed_text,
            *(segments if starts else []),
        ]
    )


def _frame_list(frames: list[int], shown: int = 8) -> str:
    listed = ", ".join(str(frame) for frame in frames[:shown])
    return listed + (f", ... ({len(frames) - shown} more)" if len(frames) > shown else "")
