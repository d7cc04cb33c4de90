"""Cadence in the plan: which frames are diffused, what the others are made from, the
adaptive keyframes, the chart and the checks."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from pipeline.animation.flow import FlowPair
from pipeline.cli.overrides import quote_text_values
from pipeline.config.compose import compose_checked
from pipeline.config.schema import CadenceConfig
from pipeline.errors import RotoscopeError
from pipeline.plan.build import Plan, build_plan
from pipeline.plan.cadence import loopback_fields, video_fields, video_keyframes
from pipeline.plan.checks import check_strategies


def plan(*args: str, frames: int = 12, cuts: list[int] | None = None, **kwargs: Any) -> Plan:
    cfg = compose_checked(quote_text_values(["input.path=a.mp4", *args]))
    return build_plan(cfg, frames, 64, 64, 12.0, cuts=cuts, **kwargs)


def test_every_nth_frame_and_every_segment_start_is_diffused() -> None:
    rows = plan("cadence.every=4", frames=14, cuts=[6]).rows
    assert [row.index for row in rows if row.diffused] == [0, 4, 6, 8, 12]
    made_from = {row.index: (row.cadence_from, row.cadence_to) for row in rows if not row.diffused}
    assert made_from[1] == (0, 4) and made_from[7] == (6, 8)
    # never carried across the cut: the frame before it follows the earlier frame alone
    assert made_from[5] == (4, None) and made_from[13] == (12, None)
    assert rows[1].carried_from == [0, 4] and rows[5].carried_from == [4]
    # a prompt that switches at its keyframe starts a segment, so it is diffused there
    switched = plan("cadence.every=4", "+prompts.0=ink", "+prompts.5=oil", "prompt_blend=none")
    assert [row.index for row in switched.rows if row.diffused] == [0, 4, 5, 8]


def test_diffused_rows_and_rows_without_cadence_keep_their_keys() -> None:
    """A diffused frame's row is the row without cadence: with coherence off its frame
    keeps its key, and every=1 changes no row at all."""
    plain = plan().rows
    assert [row.to_json() for row in plan("cadence.every=1").rows] == [r.to_json() for r in plain]
    cadenced = plan("cadence.every=4").rows
    assert cadenced[4].to_json() == plain[4].to_json()
    assert "cadence_from" in json.loads(cadenced[5].to_json())
    assert "repair_strength" not in json.loads(cadenced[5].to_json())  # 0: left out
    repaired = plan("cadence.every=4", "cadence.repair_strength=0:(0.2), 11:(0.4)").rows
    assert repaired[4].repair_strength is None and repaired[5].repair_strength == pytest.approx(
        0.2 + 0.2 * 5 / 11
    )


def test_loopback_rows_follow_deforums_turbo_frames() -> None:
    assert [loopback_fields(index, 3) for index in (0, 1, 2, 3, 5, 6)] == [
        {}, {"cadence_from": 0}, {"cadence_from": 0},
        {"cadence_from": 0, "cadence_to": 3}, {"cadence_from": 0, "cadence_to": 3},
        {"cadence_from": 3, "cadence_to": 6},
    ]  # fmt: skip
    rows = plan(
        "animation=loopback", "cadence.every=3", "cadence.flow=dis_medium",
        "cadence.flow_factor=0:(1), 8:(0.5)", "strength=0:(0.5), 6:(1), 7:(0.5)",
        "interpolation=hold", frames=10,
    ).rows  # fmt: skip
    assert [row.index for row in rows if row.diffused] == [0, 3, 6, 9]
    assert rows[3].carried_from == [0] and rows[4].carried_from == [0, 3]
    # the flow moves a span only where its diffused frame kept some of its input
    factors = [row.cadence_flow_factor for row in rows]
    assert factors[:3] == [None] * 3 and factors[3:6] == [1.0] * 3
    assert factors[6:9] == [None] * 3 and factors[9] == pytest.approx(0.5)


def test_video_fields_of_a_plan() -> None:
    assert video_fields(0, [0, 4], [0]) == {}
    assert video_fields(2, [0, 4], [0]) == {"cadence_from": 0, "cadence_to": 4}
    assert video_fields(2, [0, 4], [0, 4]) == {"cadence_from": 0}  # 4 starts a segment
    assert video_fields(6, [0, 4], [0]) == {"cadence_from": 4}


def shifted(dx: float) -> FlowPair:
    """The flow of a picture sliding ``dx`` pixels right per frame."""
    forward = np.zeros((32, 32, 2), np.float32)
    forward[..., 0] = dx
    return FlowPair(forward, -forward)


def test_adaptive_keyframes_follow_the_motion_since_the_last_diffused_frame() -> None:
    slow, fast = shifted(0.5), shifted(3.0)
    pairs = {index: slow if index < 10 else fast for index in range(1, 20)}
    pairs[15] = None  # an unreadable frame: what follows starts afresh
    cadence = CadenceConfig(every=8, max_motion=0.12)  # 3.84 px of the 32 px width
    keys = video_keyframes(20, cadence, [0], pairs.get)
    # 0.5 px a frame stays under 3.84 px until the grid's 8; 3 px a frame passes it in two
    assert keys == [0, 8, 11, 13, 15, 16, 18]
    assert video_keyframes(20, CadenceConfig(every=8), [0], pairs.get) == [0, 8, 16]
    hidden = CadenceConfig(every=8, max_occluded=0.05)  # the slide leaves the frame
    assert video_keyframes(12, hidden, [0], {i: shifted(1.0) for i in range(1, 12)}.get) == [
        0, 2, 4, 6, 8, 10,
    ]  # fmt: skip


def test_the_chart_shows_which_frames_are_diffused() -> None:
    result = plan("cadence.every=4", "cadence.repair_strength=0.3", frames=10)
    diffused = next(series for series in result.series if series.name == "diffused")
    assert diffused.values.tolist() == [1, 0, 0, 0, 1, 0, 0, 0, 1, 0]
    assert list(diffused.keys) == [0, 4, 8]
    assert "repair_strength" in [series.name for series in result.series]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cadence.every=0"], "cadence.every=0 must be at least 1"),
        (["cadence.every=4", "cadence.max_occluded=2"], "cadence.max_occluded=2 is outside"),
        (["cadence.repair_strength=0.3"], "is set but cadence.every=1"),
        (["cadence.every=4", "cadence.flow=farneback"], "cadence.flow is loopback's"),
        (
            ["cadence.every=4", "animation=loopback", "cadence.max_motion=0.1"],
            "cadence.max_motion applies to frames carried along an input video",
        ),
        (
            ["cadence.every=4", "animation=loopback", "animation.hybrid.motion=optical_flow"],
            "cadence.every=4 with animation.hybrid: the frames tweened",
        ),
    ],
)
def test_cadence_options_that_cannot_apply_are_refused(args: list[str], message: str) -> None:
    cfg = compose_checked(quote_text_values(["input.path=a.mp4", *args]))
    with pytest.raises(RotoscopeError, match=message):
        check_strategies(cfg)


def test_a_repair_strength_out_of_range_names_the_frame() -> None:
    with pytest.raises(RotoscopeError, match=r"cadence\.repair_strength at frame 1: 1\.5"):
        plan("cadence.every=4", "cadence.repair_strength=1.5")
