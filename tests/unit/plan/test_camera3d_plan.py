"""The plan of a 3D loopback and the rest of a loopback frame: rows, keys, chart, checks."""

from __future__ import annotations

import json

import pytest
from support.configs import make_cfg

from pipeline.config.compose import compose_checked
from pipeline.config.schema import AnimationMode, NoiseType
from pipeline.errors import RotoscopeError
from pipeline.plan.build import build_plan

THREE_D = AnimationMode("3d")


def plan(count: int = 5, **values: object):
    return build_plan(make_cfg(**values), count, 64, 48, 12.0)


def test_3d_rows_carry_the_camera_and_not_the_2d_move() -> None:
    rows = plan(
        animation__mode=THREE_D, animation__translation_z="0:(2), 4:(6)",
        animation__rotation_3d_y="0:(0.5)", animation__fov="0:(40)",
    ).rows  # fmt: skip
    assert [row.translation_z for row in rows] == pytest.approx([2, 3, 4, 5, 6])
    assert rows[0].rotation_3d_y == 0.5 and rows[0].fov == 40
    assert (rows[0].near, rows[0].far, rows[0].aspect_ratio) == (200, 10000, 1)
    assert rows[0].translation_x == 0 and rows[0].noise == 0
    assert rows[0].zoom is None and rows[0].angle is None  # Deforum's 3D ignores them


def test_2d_rows_and_their_keys_are_as_before_the_3d_camera() -> None:
    """A 2D loopback with every tool off keys its frames exactly as before (new fields are
    left out while unset), so existing jobs keep their frames."""
    row = plan(count=1, animation__mode=AnimationMode.loopback, animation__zoom="1.02").rows[0]
    keyed = json.loads(row.to_json())
    assert keyed.keys() == {
        "index", "prompt", "negative_prompt", "strength", "guidance_scale", "steps", "sampler",
        "seed", "width", "height", "prompt_to", "negative_prompt_to", "blend", "blend_mode",
        "zoom", "angle", "translation_x", "translation_y", "transform_center_x",
        "transform_center_y", "noise", "controls",
    }  # fmt: skip


def test_neutral_values_stay_unset_and_off_the_chart() -> None:
    neutral = plan(animation__mode=AnimationMode.loopback)
    assert all(row.contrast is None and row.noise_multiplier is None for row in neutral.rows)
    assert not {"contrast", "noise_multiplier"} & {series.name for series in neutral.series}
    varied = plan(
        animation__mode=AnimationMode.loopback, animation__contrast="0:(1), 4:(0.96)",
        noise_multiplier="1.05",
    )  # fmt: skip
    assert [row.contrast for row in varied.rows] == pytest.approx([None, 0.99, 0.98, 0.97, 0.96])
    assert {row.noise_multiplier for row in varied.rows} == {1.05}
    assert {"contrast", "noise_multiplier"} <= {series.name for series in varied.series}


def test_loopback_tools_fill_their_fields_only_when_on() -> None:
    off = plan(animation__mode=AnimationMode.loopback).rows[0]
    assert off.anti_blur_amount is None and off.perlin_octaves is None
    assert off.perspective_flip_fv is None
    on = plan(
        animation__mode=THREE_D, animation__anti_blur=True, animation__anti_blur_kernel="4",
        animation__noise_type=NoiseType.perlin, animation__perlin_octaves="2.6",
        animation__perspective_flip=True, animation__perspective_flip_theta="0:(0), 4:(8)",
    )  # fmt: skip
    row = on.rows[2]
    assert (row.anti_blur_amount, row.anti_blur_kernel, row.anti_blur_sigma) == (0.1, 5, 1.0)
    assert (row.perlin_octaves, row.perlin_persistence) == (3, 0.5)
    assert (row.perspective_flip_theta, row.perspective_flip_fv) == (4.0, 53.0)
    charted = {series.name for series in on.series}
    assert {"translation_z", "fov", "anti_blur_amount", "perlin_octaves",
            "perspective_flip_theta"} <= charted  # fmt: skip
    assert "zoom" not in charted


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ({"animation__fov": "0"}, "animation.fov at frame 0: 0 degrees"),
        ({"animation__fov": "0:(70), 3:(180)"}, "animation.fov at frame 3: 180 degrees"),
        ({"animation__near": "0:(200), 2:(20000)"}, "animation.near at frame 1"),  # 10100
        ({"animation__translation_z": "250"}, "animation.translation_z at frame 0"),
        ({"animation__aspect_ratio": "0"}, "animation.aspect_ratio at frame 0"),
        ({"animation__perspective_flip": True, "animation__perspective_flip_fv": "0"},
         "animation.perspective_flip_fv at frame 0"),
        ({"animation__contrast": "-1"}, "animation.contrast at frame 0"),
        ({"noise_multiplier": "-0.5"}, "noise_multiplier at frame 0"),
    ],
)  # fmt: skip
def test_bad_3d_values_are_refused_naming_the_key(setting: dict, key: str) -> None:
    with pytest.raises(RotoscopeError) as info:
        plan(animation__mode=THREE_D, **setting)
    assert key in str(info.value) and "\n" not in str(info.value)


def test_an_unknown_padding_mode_is_refused_naming_the_key() -> None:
    with pytest.raises(RotoscopeError) as info:
        compose_checked(["input.path=x.png", "animation.padding_mode=edge"])
    text = str(info.value)
    assert "animation.padding_mode" in text and "border, reflection, zeros" in text
    assert "\n" not in text


def test_the_mode_is_typed_3d() -> None:
    cfg = compose_checked(["input.path=x.png", "animation=loopback", "animation.mode=3d"])
    assert cfg.animation.mode is THREE_D and cfg.animation.mode.in_3d and cfg.animation.mode.loops


def test_depth_and_colour_video_paths_pass_the_command_line_verbatim() -> None:
    from pipeline.cli.overrides import quote_text_values

    cfg = compose_checked(
        quote_text_values([
            "input.path=x.png", "animation.depth.folder=my models/dav2 (small)",
            "animation.depth.annotators=an, notators", "animation.color_coherence_video=a [1].mp4",
        ])
    )  # fmt: skip
    depth = cfg.animation.depth
    assert (depth.folder, depth.annotators) == ("my models/dav2 (small)", "an, notators")
    assert cfg.animation.color_coherence_video == "a [1].mp4"


def test_2d_moves_set_in_3d_mode_are_named() -> None:
    from pipeline.plan.checks import two_d_moves_in_3d

    assert two_d_moves_in_3d(make_cfg(animation__mode=THREE_D)) == []
    moved = make_cfg(animation__mode=THREE_D, animation__zoom="0:(1.01)", animation__angle="0")
    assert two_d_moves_in_3d(moved) == ["zoom"]
    assert two_d_moves_in_3d(make_cfg(animation__zoom="1.02")) == []  # 2D: they move
