"""Plan rows from keyframes: prompts, blends, schedules, seeds and keyframe files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import ROOT
from support.configs import make_cfg

from pipeline.config.keyframes import explicit_keys
from pipeline.config.schema import (
    AnimationMode,
    Interpolation,
    PromptBlend,
    SeedBehavior,
)
from pipeline.errors import RotoscopeError
from pipeline.plan.build import build_plan, join_prompt
from pipeline.plan.chart import write_plan_chart
from pipeline.run.configure import apply_keyframes

KEYFRAMES = ROOT / "keyframes"


def rows(count: int = 11, fps: float = 4.0, **values: object):
    return build_plan(make_cfg(**values), count, 64, 48, fps).rows


def test_prompts_blend_between_keyframes() -> None:
    plan = rows(prompts={"0": "winter --neg people", "10": "summer"}, negative_prompt="blurry")
    assert (plan[0].prompt, plan[0].prompt_to, plan[0].blend) == ("winter", None, 0.0)
    assert plan[0].negative_prompt == "people, blurry"
    assert (plan[5].prompt, plan[5].prompt_to, plan[5].blend) == ("winter", "summer", 0.5)
    assert plan[5].negative_prompt_to == "blurry"
    assert (plan[10].prompt, plan[10].prompt_to) == ("summer", None)


def test_hard_cuts_with_blend_none() -> None:
    plan = rows(prompts={"0": "a", "4": "b"}, prompt_blend=PromptBlend.none)
    assert [r.prompt for r in plan[:6]] == ["a", "a", "a", "a", "b", "b"]
    assert all(r.prompt_to is None for r in plan)


def test_prompt_keys_as_times_and_expressions_with_prefix_suffix() -> None:
    plan = rows(
        count=9, fps=4.0, prompts={"0": "a", "1s": "b", "max_f": "c"},
        prompt_prefix="masterpiece,", prompt_suffix=" detailed", prompt_blend=PromptBlend.none,
    )  # fmt: skip
    assert [r.prompt for r in plan] == (
        ["masterpiece, a, detailed"] * 4
        + ["masterpiece, b, detailed"] * 4
        + ["masterpiece, c, detailed"]
    )


def test_join_prompt_drops_empty_parts_and_doubled_commas() -> None:
    assert join_prompt("", "a cat,", ", oil") == "a cat, oil"


def test_schedules_steps_round_half_up_and_per_schedule_interpolation() -> None:
    plan = rows(
        count=5, steps="0:(10), 4:(12)", strength="0:(0.2), 4:(0.6)",
        schedule_interpolation={"strength": Interpolation.hold},
    )  # fmt: skip
    assert [r.steps for r in plan] == [10, 11, 11, 12, 12]  # 10.5 -> 11, 11.5 -> 12
    assert [r.strength for r in plan] == [0.2, 0.2, 0.2, 0.2, 0.6]


def test_seed_behaviour_in_rows() -> None:
    plan = rows(count=4, seed=10, seed_behavior=SeedBehavior.ladder)
    assert [r.seed for r in plan] == [10, 12, 11, 13]
    scheduled = rows(
        count=3, seed=5, seed_behavior=SeedBehavior.schedule, seed_schedule="0:(s+t*2)"
    )
    assert [r.seed for r in scheduled] == [5, 7, 9]


def test_loopback_rows_carry_motion() -> None:
    plan = rows(count=3, animation__mode=AnimationMode.loopback, animation__zoom="0:(1), 2:(1.1)")
    assert [r.zoom for r in plan] == pytest.approx([1.0, 1.05, 1.1])
    assert plan[0].transform_center_x == 0.5
    assert rows(count=2)[0].zoom is None  # no motion outside loopback


def test_bad_prompt_weight_fails_at_plan_time() -> None:
    with pytest.raises(RotoscopeError, match=r"cat:1\.2\.3"):
        rows(prompt="a (cat:1.2.3)")


def test_keyframe_file_applies_under_command_line(tmp_path: Path) -> None:
    path = tmp_path / "anim.yaml"
    path.write_text(
        "prompts:\n  0: 'a cat'\n  '1s': 'a dog'\n"
        "schedules:\n  strength: '0:(0.3), 8:(0.7)'\n  zoom: '0:(1.02)'\n"
        "interpolation:\n  strength: cubic\n"
        "settings:\n  seed: 99\n  animation.mode: loopback\n"
    )
    cfg = make_cfg(keyframes=str(path), strength="0.5")
    resolved, origins = apply_keyframes(cfg, explicit_keys(["strength=0.5", "input.path=x"]))
    assert resolved.strength == "0.5"  # the command line wins
    assert resolved.seed == 99 and resolved.animation.mode is AnimationMode.loopback
    assert resolved.animation.zoom == "0:(1.02)"
    assert resolved.prompts == {"0": "a cat", "1s": "a dog"}
    assert resolved.schedule_interpolation == {"strength": Interpolation.cubic}
    assert origins["animation.zoom"] == str(path) and "strength" not in origins


def test_command_line_prompt_replaces_file_prompts(tmp_path: Path) -> None:
    path = tmp_path / "anim.yaml"
    path.write_text("prompts:\n  0: 'from file'\n")
    resolved, _ = apply_keyframes(make_cfg(keyframes=str(path), prompt="cli"), {"prompt"})
    assert resolved.prompts == {}
    assert build_plan(resolved, 2, 64, 48, 4.0).rows[1].prompt == "cli"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("prompts: [a, b]\n", "must map frames to text"),
        ("colour: red\n", "unknown entry 'colour'"),
        ("schedules:\n  zoomm: '0:(1)'\n", "unknown schedule 'schedules.zoomm'"),
        ("settings:\n  seeed: 3\n", "seeed"),
        ("settings:\n  seed: many\n", "seed"),
        ("prompts:\n  0: 'a: b\n", "not valid YAML"),
    ],
)
def test_bad_keyframe_files_name_the_file(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RotoscopeError) as info:
        apply_keyframes(make_cfg(keyframes=str(path)), set())
    assert needle in str(info.value) and "bad.yaml" in str(info.value)


def test_bad_schedule_in_file_names_file_key_and_caret(tmp_path: Path) -> None:
    path = tmp_path / "anim.yaml"
    path.write_text("schedules:\n  strength: '0:(0.5), 10:(sqr(t))'\n")
    cfg, origins = apply_keyframes(make_cfg(keyframes=str(path)), set())
    with pytest.raises(RotoscopeError) as info:
        build_plan(cfg, 12, 64, 48, 12.0, origins)
    message = str(info.value)
    assert "anim.yaml" in message and "strength" in message and "sqr" in message and "^" in message


def test_deforum_prompt_object_and_settings_file_load_directly(tmp_path: Path) -> None:
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({"0": "a lake", "12": "a lake at night"}))
    cfg, _ = apply_keyframes(make_cfg(keyframes=str(path)), set())
    assert cfg.prompts == {"0": "a lake", "12": "a lake at night"}
    deforum, _ = apply_keyframes(
        make_cfg(keyframes=str(KEYFRAMES / "deforum_example_settings.txt")), set()
    )
    assert deforum.animation.mode is AnimationMode.loopback
    assert deforum.strength.startswith("0:(0.35)")
    plan = build_plan(deforum, 48, 64, 64, 12.0).rows
    assert plan[0].strength == pytest.approx(0.35)


@pytest.mark.parametrize("name", sorted(file.name for file in KEYFRAMES.glob("*.yaml")))
def test_shipped_keyframe_files_plan(name: str) -> None:
    cfg, origins = apply_keyframes(make_cfg(keyframes=str(KEYFRAMES / name)), set())
    plan = build_plan(cfg, 96, 64, 48, 12.0, origins)
    assert len(plan.rows) == 96 and len(plan.prompt_keys) == 3


def test_plan_chart_is_a_png(tmp_path: Path) -> None:
    plan = build_plan(make_cfg(strength="0:(0.6), 5:(0.4)"), 8, 64, 48, 4.0)
    path = write_plan_chart(plan.series, [(0, "a")], tmp_path / "plan.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 300
    assert np.allclose(plan.series[0].values[[0, 5, 7]], [0.6, 0.4, 0.4])
    assert list(plan.series[0].keys) == [0, 5]


def test_masked_rows_carry_the_mask_schedules_and_settings() -> None:
    from pipeline.config.schema import MaskArea, MaskConfig, MaskFill
    from pipeline.plan.rows import PlanRow

    mask = MaskConfig(path="matte.mp4", blur="0:(0), 10:(5)", area=MaskArea.masked, padding=16)
    masked = rows(mask=mask)
    assert [row.mask_blur for row in masked[::5]] == [0.0, 2.5, 5.0]
    first = masked[0]
    assert (first.mask_area, first.mask_fill, first.mask_padding) == (
        MaskArea.masked,
        MaskFill.original,
        16,
    )
    assert first.mask_composite and first.mask_overlay_blur == 4.0 and first.masked
    assert PlanRow.from_record(json.loads(first.to_json())) == first  # read back from plan.jsonl
    charted = {item.name for item in build_plan(make_cfg(mask=mask), 11, 64, 48, 4.0).series}
    assert {"mask_blur", "strength"} <= charted  # the chart shows the mask's schedules
    # a plan without a mask has rows without mask fields: frames keep their keys
    assert "mask" not in rows()[0].to_json()
    with pytest.raises(RotoscopeError, match=r"mask\.threshold at frame 0: 1\.5 is outside 0\.\.1"):
        rows(mask=MaskConfig(path="matte.mp4", threshold="1.5"))


# -- issue 17: what a newcomer hit -------------------------------------------------------


def test_a_prompt_over_several_lines_reads_as_one_and_charts(tmp_path: Path) -> None:
    prompts = {"0": "a cat,\noil painting\n", "4": "a dog,\r\n  ink --neg blurry,\nbad"}
    plan = build_plan(make_cfg(prompts=prompts), 6, 64, 48, 4.0)
    assert plan.rows[0].prompt == "a cat, oil painting"  # A1111: a line break is a space
    assert (plan.rows[4].prompt, plan.rows[4].negative_prompt) == ("a dog, ink", "blurry, bad")
    chart = write_plan_chart(
        plan.series, [(k.frame, k.prompt) for k in plan.prompt_keys], tmp_path / "plan.png"
    )
    assert Image.open(chart).size[0] > 0


def test_two_prompt_keys_on_one_frame_are_refused_and_a_key_past_the_end_warned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(RotoscopeError, match=r"prompt keys '4' and '4.0' are both frame 4"):
        rows(prompts={"0": "a", "4": "b", "4.0": "c"})
    with caplog.at_level("WARNING", logger="rotoscope"):
        plan = rows(count=4, prompts={"0": "a", "max_f": "b", "3": "c", "40": "d"})
    assert "prompt keys 'max_f' and '3' both fall on frame 3; '3' is used" in caplog.text
    assert "prompt keyframe '40' is frame 40, past the last frame (3)" in caplog.text
    assert plan[3].prompt == "c"
    plan = rows(count=4, prompts={"0": "a", "40": "d"})
    assert (plan[3].prompt_to, plan[3].blend) == ("d", 3 / 40)  # it still shapes the blend


def test_steps_beyond_the_models_noise_levels_are_refused() -> None:
    with pytest.raises(RotoscopeError, match="1000000 steps is more than the model's 1000"):
        rows(steps="1000000")
    assert rows(steps="1000")[0].steps == 1000
