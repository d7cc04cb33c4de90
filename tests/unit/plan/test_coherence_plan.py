"""Temporal coherence in the plan: its schedules, its segments and where they start."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.cli.overrides import quote_text_values
from pipeline.config.compose import compose_checked
from pipeline.config.schema import CoherenceConfig, Reanchor
from pipeline.errors import RotoscopeError
from pipeline.plan.build import build_plan
from pipeline.plan.segments import segment_start_of, segment_starts
from pipeline.source.cuts import CutDetector
from pipeline.testing.synthetic import pan_clip, zoom_clip


def test_segments_start_at_keyframes_cuts_and_every_n() -> None:
    both = CoherenceConfig(reanchor=[Reanchor.keyframes, Reanchor.cuts])
    assert segment_starts(30, both, [0, 12, 40], [20]) == [0, 12, 20]
    assert segment_starts(30, CoherenceConfig(reanchor=[]), [12], [20]) == [0]
    every = CoherenceConfig(reanchor=[Reanchor.cuts], reanchor_every=10)
    assert segment_starts(30, every, [12], [25]) == [0, 10, 20, 25]
    assert [segment_start_of([0, 10, 25], i) for i in (0, 9, 10, 24, 29)] == [0, 0, 10, 10, 25]


def test_cuts_are_found_between_shots_not_within_a_moving_shot() -> None:
    shot_a = pan_clip(frames=6, width=64, height=64, seed=0).frames
    shot_b = zoom_clip(frames=6, width=64, height=64, seed=5).frames
    tinted = [np.clip(f.astype(int) * [1.0, 0.3, 0.2], 0, 255).astype(np.uint8) for f in shot_b]
    frames = shot_a + tinted
    for clip, cuts in ((frames, [6]), (shot_a, [])):
        detector = CutDetector(threshold=0.5)
        for index, frame in enumerate(clip):
            detector.add(index, frame)
        assert detector.cuts == cuts


def test_coherence_rows_carry_their_segment_and_schedules() -> None:
    args = [
        "input.path=a.mp4", "coherence=full", "+prompts.0=a cat", "+prompts.10=a dog",
        "coherence.flow_init=0:(0.2), 19:(0.8)", "coherence.attention_steps=0.75",
    ]  # fmt: skip
    cfg = compose_checked(quote_text_values([*args, "prompt_blend=none"]))  # quoted as the CLI does
    rows = build_plan(cfg, 20, 64, 64, 12.0, cuts=[15]).rows
    assert [row.segment_start for row in rows] == [0] * 10 + [10] * 5 + [15] * 5
    morphing = compose_checked(quote_text_values(args))  # a morph keeps its chain
    starts = [row.segment_start for row in build_plan(morphing, 20, 64, 64, 12.0, cuts=[15]).rows]
    assert starts == [0] * 15 + [15] * 5
    assert rows[0].flow_init == pytest.approx(0.2) and rows[19].flow_init == pytest.approx(0.8)
    assert {row.flow_fusion for row in rows} == {1.0} and {row.flow_output for row in rows} == {0.0}
    assert {row.attention_steps for row in rows} == {0.75}
    flow_only = compose_checked(["input.path=a.mp4", "coherence=flow"])
    row = build_plan(flow_only, 3, 64, 64, 12.0).rows[1]
    assert (row.attention_steps, row.flow_fusion, row.segment_start) == (None, 1.0, 0)


def test_without_coherence_rows_and_their_keys_are_unchanged() -> None:
    cfg = compose_checked(["input.path=a.mp4"])
    data = json.loads(build_plan(cfg, 2, 64, 64, 12.0).rows[1].to_json())
    assert not {"segment_start", "attention_steps", "flow_fusion", "flow_init"} & set(data)


def test_coherence_values_are_checked_per_frame() -> None:
    cfg = compose_checked(["input.path=a.mp4", "coherence=flow", "coherence.flow_output=1.5"])
    with pytest.raises(RotoscopeError, match=r"coherence.flow_output at frame 0: 1.5 is outside"):
        build_plan(cfg, 2, 64, 64, 12.0)


def test_keyframe_files_schedule_coherence(tmp_path) -> None:
    from pipeline.run.configure import apply_keyframes

    path = tmp_path / "anim.yaml"
    path.write_text(
        'schedules:\n  flow_fusion: "0:(0.3), 9:(0.9)"\nsettings:\n  coherence.flow: true\n'
    )
    cfg, _ = apply_keyframes(compose_checked(["input.path=a.mp4", f"keyframes={path}"]), set())
    rows = build_plan(cfg, 10, 64, 64, 12.0).rows
    assert rows[0].flow_fusion == pytest.approx(0.3) and rows[9].flow_fusion == pytest.approx(0.9)
