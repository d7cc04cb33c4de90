"""Deforum settings import: mapping, strength conversion, warnings, bad files, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import DATA, ROOT

from pipeline.cli.import_deforum import main
from pipeline.errors import RotoscopeError
from pipeline.interop.deforum.importer import DeforumImport, import_deforum, keyframe_text

EXAMPLE = ROOT / "keyframes" / "deforum_example_settings.txt"

EXPECTED_KEYFRAMES = {
    "prompts": {
        0: "a snowy pine forest at dawn, soft pink light, oil painting --neg people, buildings",
        16: "a misty forest in early spring, first green leaves, oil painting",
        32: "a sunlit summer meadow at the forest's edge, wildflowers, oil painting --neg people",
    },
    "negative_prompt": "blurry, lowres, watermark",
    "prompt_prefix": "masterpiece, highly detailed",
    "schedules": {
        "strength": "0:(0.35), 24:(0.45), 47:(0.4)",
        "guidance_scale": "0: (7), 32: (8.5)",
        "steps": "0:(25)",
        "zoom": "0: (1.0025+0.002*sin(1.25*3.14*t/30))",
        "angle": "0: (0), 24: (0.3), 47: (0)",
        "translation_x": "0: (0)",
        "translation_y": "0: (-0.5)",
        "transform_center_x": "0: (0.5)",
        "transform_center_y": "0: (0.5)",
        "noise": "0:(0.0144)",  # Deforum's 0.04 x 0.36
        "anti_blur_amount": "0: (0.1)",
        "anti_blur_kernel": "0: (5)",
        "anti_blur_sigma": "0: (1.0)",
        "anti_blur_threshold": "0: (0.0)",
    },
    "settings": {
        "seed_behavior": "iter",
        "seed": 1234,
        "seed_iter_n": 1,
        "sampler": "Euler a",
        "input.width": 768,
        "input.height": 512,
        "prompt_blend": "none",
        "prompt_editing_steps": "a1111",
        "animation.mode": "loopback",
        "animation.border": "replicate",
        "animation.anti_blur": True,
        "cadence.every": 2,
        "animation.color_coherence": "lab",
        "animation.color_coherence_output": True,
        "input.fps": 12,
        "input.max_frames": 48,
    },
}
EXPECTED_WARNINGS = [
    "the model is not part of a keyframe file: render with the same checkpoint as model.path "
    '(sd_model_name="v1-5-pruned-emaonly", sd_model_hash="6ce0161689")',
]
# the example file's own warnings switched off: a clean 2D file imports without any
QUIET = {"diffusion_cadence": "1", "amount_schedule": "0: (0)", "sd_model_name": None}


def example_data() -> dict[str, Any]:
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


def settings_file(tmp_path: Path, base: dict[str, Any] | None = None, **changes: Any) -> Path:
    """The example settings with ``changes`` applied (None removes a key), written out."""
    data = example_data() if base is None else base
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = tmp_path / "run_settings.txt"
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")
    return path


def imported(tmp_path: Path, **changes: Any) -> DeforumImport:
    return import_deforum(settings_file(tmp_path, **{**QUIET, **changes}))


def test_example_file_imports_exactly() -> None:
    result = import_deforum(EXAMPLE)
    assert result.keyframes == EXPECTED_KEYFRAMES
    assert result.warnings == EXPECTED_WARNINGS


@pytest.mark.parametrize(
    ("changes", "settings"),
    [
        (  # the upscaler, by name (a file in paths.upscalers), at its factor
            {"r_upscale_video": True, "r_upscale_factor": "x4",
             "r_upscale_model": "realesrgan-x4plus-anime"},
            {"upscale.model": "realesrgan-x4plus-anime", "upscale.to": "4"},
        ),
        (  # RIFE x3: three frames per frame at three times fps
            {"frame_interpolation_engine": "RIFE v4.6", "frame_interpolation_x_amount": 3},
            {"output.interpolation": "rife", "output.interpolation_model": "RIFE46",
             "output.interpolate": 3},
        ),
        (  # slow motion: twice the frames again, at the same rate
            {"frame_interpolation_engine": "RIFE v4.6", "frame_interpolation_x_amount": 2,
             "frame_interpolation_slow_mo_enabled": True,
             "frame_interpolation_slow_mo_amount": 2},
            {"output.interpolation": "rife", "output.interpolate": 2, "output.slow_motion": 2},
        ),
        (  # an older file: "x4" and "x2" text, no slow-mo switch
            {"frame_interpolation_engine": "RIFE v4.6", "frame_interpolation_x_amount": "x4",
             "frame_interpolation_slow_mo_amount": "x2",
             "frame_interpolation_slow_mo_enabled": None},
            {"output.interpolation": "rife", "output.interpolate": 4, "output.slow_motion": 2},
        ),
        (  # no engine, or "Disabled": nothing changes
            {"frame_interpolation_engine": "None", "frame_interpolation_x_amount": 4},
            {"input.fps": 12},
        ),
        (
            {"frame_interpolation_engine": "RIFE v4.6", "frame_interpolation_x_amount": "Disabled"},
            {"input.fps": 12},
        ),
    ],
)  # fmt: skip
def test_upscaling_and_interpolation_map_to_finishing(
    tmp_path: Path, changes: dict[str, Any], settings: dict[str, Any]
) -> None:
    result = imported(tmp_path, **changes)
    assert result.warnings == []
    assert settings.items() <= result.keyframes["settings"].items()
    assert "output.fps" not in result.keyframes["settings"]  # the render's rate is kept
    if "output.interpolation" not in settings:
        assert "output.interpolation" not in result.keyframes["settings"]
        assert "output.interpolate" not in result.keyframes["settings"]


def test_film_becomes_rotoscopes_own_interpolation_with_one_line(tmp_path: Path) -> None:
    result = imported(tmp_path, frame_interpolation_engine="FILM", frame_interpolation_x_amount=2)
    assert result.keyframes["settings"]["output.interpolation"] == "flow"
    assert result.keyframes["settings"]["output.interpolate"] == 2
    assert len(result.warnings) == 1 and "TensorFlow" in result.warnings[0]


def test_a_deforum_upscaler_name_missing_from_paths_upscalers_is_one_line(
    tmp_path: Path,
) -> None:
    from pipeline.config.compose import compose_checked
    from pipeline.run.configure import configure

    keyframes = settings_file(tmp_path, **QUIET, r_upscale_video=True)
    cfg = compose_checked([f"input.path={tmp_path}", "model.path=m", f"keyframes={keyframes}",
                           f"paths.upscalers={tmp_path / 'ESRGAN'}"])  # fmt: skip
    with pytest.raises(RotoscopeError) as error:
        configure(cfg, set())
    assert "upscale.model=realesr-animevideov3" in str(error.value)
    assert f"put realesr-animevideov3.safetensors (or .pth) into {tmp_path / 'ESRGAN'}" in (
        error.value.hint or ""
    )


def test_a_file_using_only_what_rotoscope_does_imports_without_warnings(tmp_path: Path) -> None:
    # 3D settings in a 2D file, disabled ControlNet/hybrid/mask/init fields, a neutral
    # noise multiplier: none of them changes Deforum's picture, so none is reported
    assert imported(tmp_path).warnings == []


@pytest.mark.parametrize(
    ("deforum", "rotoscope"),
    [
        ("0: (0.65)", "0:(0.35)"),
        ("0:(0.65), 60:(0.45)", "0:(0.35), 60:(0.55)"),
        ("0: (1)", "0:(0)"),
        ("0: 0.25", "0:(0.75)"),
        ("0:(1e-1), 10:(.5), 20:(0.333)", "0:(0.9), 10:(0.5), 20:(0.667)"),
        ("0:(0.5+0.1*sin(t/10))", "0:(1-(0.5+0.1*sin(t/10)))"),
        ("0:(where(t<10, 0.2, 0.6)), 30:(0.4)", "0:(1-(where(t<10, 0.2, 0.6))), 30:(0.6)"),
        ('0:(0.7), "max_f-1":(0.3)', '0:(0.3), "max_f-1":(0.7)'),
        ("0:(0.6)*(1), 5:(0.5)", "0:(1-((0.6)*(1))), 5:(0.5)"),
    ],
)
def test_strength_is_converted_from_keep_to_change(
    tmp_path: Path, deforum: str, rotoscope: str
) -> None:
    result = imported(tmp_path, strength_schedule=deforum)
    assert result.keyframes["schedules"]["strength"] == rotoscope


@pytest.mark.parametrize("broken", ["0:(0.5", "0:(0.5))", "0.5", ""])
def test_a_broken_strength_schedule_is_an_error(tmp_path: Path, broken: str) -> None:
    with pytest.raises(RotoscopeError, match="strength_schedule") as info:
        imported(tmp_path, strength_schedule=broken)
    assert "run_settings.txt" in str(info.value)
    assert "\n" not in str(info.value)


def test_older_animation_prompts_key(tmp_path: Path) -> None:
    data = example_data()
    data["animation_prompts"] = data.pop("prompts")
    result = imported(tmp_path, base=data)
    assert result.keyframes["prompts"] == EXPECTED_KEYFRAMES["prompts"]
    # some versions store the prompt box's JSON text instead of an object
    data = example_data()
    data["animation_prompts"] = json.dumps(data.pop("prompts"))
    assert imported(tmp_path, base=data).keyframes["prompts"] == EXPECTED_KEYFRAMES["prompts"]


def test_expression_prompt_keys_stay_expressions(tmp_path: Path) -> None:
    prompts = {"max_f/2": "half way", "0": "start", "10": "early"}
    result = imported(tmp_path, prompts=prompts)
    assert list(result.keyframes["prompts"].items()) == [
        (0, "start"),
        (10, "early"),
        ("max_f/2", "half way"),
    ]


def test_a_runs_combined_prompts_are_taken_apart(tmp_path: Path) -> None:
    # A run's <timestring>_settings.txt stores f"{positive} {prompt} [--neg] {negative}"
    data = example_data()
    for key in ("animation_prompts_positive", "animation_prompts_negative"):
        del data[key]
    data["positive_prompts"] = "masterpiece"
    data["negative_prompts"] = "blurry"
    data["prompts"] = {
        "0": "masterpiece snowy forest --neg people  blurry",
        "16": "masterpiece spring forest --neg blurry",
    }
    result = imported(tmp_path, base=data)
    assert result.keyframes["prompts"] == {0: "snowy forest --neg people", 16: "spring forest"}
    assert result.keyframes["prompt_prefix"] == "masterpiece"
    assert result.keyframes["negative_prompt"] == "blurry"
    # a prompt that does not have the combined shape: all are kept as written, and
    # nothing is added a second time
    data["prompts"]["32"] = "summer meadow"
    result = imported(tmp_path, base=data)
    assert result.keyframes["prompts"][32] == "summer meadow"
    assert result.keyframes["prompts"][0] == "masterpiece snowy forest --neg people  blurry"
    assert "prompt_prefix" not in result.keyframes
    assert "negative_prompt" not in result.keyframes


def test_modes(tmp_path: Path) -> None:
    def mode_of(result: DeforumImport) -> str:
        return result.keyframes["settings"]["animation.mode"]

    none = imported(tmp_path, animation_mode="None")
    assert mode_of(none) == "none" and none.warnings == []
    assert "zoom" not in none.keyframes["schedules"]  # Deforum moves no camera there

    video = imported(
        tmp_path,
        animation_mode="Video Input",
        video_init_path="/clips/dance.mp4",
        extract_nth_frame=2,
        extract_from_frame=10,
        extract_to_frame=99,
    )
    assert mode_of(video) == "none"
    assert video.warnings == [
        "animation_mode 'Video Input' is imported as animation.mode none (img2img of every "
        'input frame): give the video on the command line: input.path="/clips/dance.mp4" '
        "input.every=2 input.start=10 input.end=100"
    ]
    assert "input.max_frames" not in video.keyframes["settings"]  # the video's length counts
    assert video.keyframes["schedules"]["strength"] == EXPECTED_KEYFRAMES["schedules"]["strength"]

    three_d = imported(tmp_path, animation_mode="3D", translation_z="0: (10)", zoom="0: (0)")
    assert mode_of(three_d) == "3d" and three_d.warnings == []
    schedules = three_d.keyframes["schedules"]
    assert schedules["translation_z"] == "0: (10)"
    assert schedules["translation_y"] == "0: (-0.5)"  # a 3D move there
    # Deforum's 3D camera ignores the 2D zoom, angle and centre: none is imported
    assert not {"zoom", "angle", "transform_center_x"} & set(schedules)
    assert schedules["noise"] == "0:(0.0144)"

    interpolation = imported(tmp_path, animation_mode="Interpolation")
    assert mode_of(interpolation) == "none"
    assert "'Interpolation'" in interpolation.warnings[0]
    assert interpolation.keyframes["prompts"] == EXPECTED_KEYFRAMES["prompts"]
    assert "strength" in interpolation.keyframes["schedules"]

    odd = imported(tmp_path, animation_mode="4D")
    assert mode_of(odd) == "none"
    assert '"4D" is unknown' in odd.warnings[0]


@pytest.mark.parametrize(
    ("changes", "reported"),
    [
        (
            {"hybrid_motion": "Optical Flow"},
            'video_init_path="https://deforum.github.io/a1/V1.mp4"',
        ),
        ({"optical_flow_redo_generation": "RAFT"}, 'optical_flow_redo_generation="RAFT"'),
        ({"diffusion_redo": "2"}, 'diffusion_redo="2"'),
        ({"cn_1_enabled": True, "cn_1_module": "canny"}, 'cn_1_module="canny"'),
        ({"use_mask": True}, "use_mask=true"),
        ({"use_mask_video": True}, "use_mask_video=true"),
        ({"use_noise_mask": True}, "use_noise_mask=true"),
        ({"use_init": True}, 'init_image="https://deforum.github.io/a1/I1.png"'),
        ({"enable_sampler_scheduling": True}, "sampler_schedule="),
        ({"enable_checkpoint_scheduling": True}, "checkpoint_schedule="),
        ({"scheduler": "Align Your Steps GITS"}, 'scheduler="Align Your Steps GITS" is not'),
        ({"enable_ancestral_eta_scheduling": True, "ancestral_eta_schedule": "0: (0.8)"}, "0.8"),
        ({"tiling": True}, "tiling=true"),
        ({"restore_faces": True}, "restore_faces=true"),
        ({"color_force_grayscale": True}, "color_force_grayscale=true"),
        ({"resume_from_timestring": True}, 'resume_timestring="20240302101530"'),
        ({"parseq_manifest": '{"frames": []}'}, "parseq_manifest="),
        ({"use_looper": True}, "use_looper=true"),
        ({"frame_interpolation_engine": "FILM"}, 'frame_interpolation_engine="FILM"'),
        ({"add_soundtrack": "File"}, 'soundtrack_path="https://deforum.github.io/a1/A1.mp3"'),
        ({"sampler": "DPM adaptive"}, 'sampler="DPM adaptive"'),
        ({"sampler": 3}, "sampler=3"),
        ({"seed": "x"}, 'seed="x" is not a seed'),
        ({"seed_behavior": "chaos"}, 'seed_behavior "chaos"'),
        ({"border": "warp"}, 'border="warp"'),
        ({"color_coherence": "Hue"}, 'color_coherence="Hue"'),
        (
            {"color_coherence": "Image", "color_coherence_image_path": "https://x.org/a.png"},
            'color_coherence_image_path="https://x.org/a.png", which is not a local file',
        ),
        ({"prompts": {"0": "(cherry:`1+sin(t)`)"}}, "prompts at frame 0 use"),
        ({"some_future_setting": 7}, "some_future_setting=7"),
    ],
)
def test_settings_rotoscope_cannot_honour_are_reported(
    tmp_path: Path, changes: dict[str, Any], reported: str
) -> None:
    warnings = imported(tmp_path, **changes).warnings
    assert len(warnings) == 1, warnings
    assert reported in warnings[0]


def test_reported_settings_fall_back_sensibly(tmp_path: Path) -> None:
    settings = imported(tmp_path, seed="x", sampler="DPM fast", border="warp").keyframes["settings"]
    assert "seed" not in settings and "sampler" not in settings
    assert settings["animation.border"] == "replicate"  # what Deforum does with a typo
    colors = imported(tmp_path, color_coherence="Hue").keyframes["settings"]
    assert colors["animation.color_coherence"] == "lab"
    no_colors = imported(tmp_path, color_coherence="None").keyframes["settings"]
    assert no_colors["animation.color_coherence"] == "none"


def test_settings_mapping_details(tmp_path: Path) -> None:
    result = imported(
        tmp_path,
        border="wrap",
        sampler="dpmpp_2m_karras",
        enable_steps_scheduling=True,
        steps_schedule="0: (20), 24: (30)",
        seed_behavior="schedule",
        seed_schedule="0:(5), 24:(s+1)",
    )
    settings, schedules = result.keyframes["settings"], result.keyframes["schedules"]
    assert settings["animation.border"] == "wrap"
    assert settings["sampler"] == "DPM++ 2M Karras"
    assert settings["seed_behavior"] == "schedule" and "seed_iter_n" not in settings
    assert schedules["steps"] == "0: (20), 24: (30)"
    assert schedules["seed"] == "0:(5), 24:(s+1)"
    assert result.warnings == []
    random_seeds = imported(tmp_path, seed_behavior="schedule", seed_schedule="0:(s), 1:(-1)")
    assert "-1 (a random seed in Deforum) at frame 1" in random_seeds.warnings[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{ not json", "is not valid JSON (line 1, column 3"),
        ("[1, 2, 3]", "is not a Deforum settings file"),
        ('{"prompt": "a cat", "steps": 20}', "is not a Deforum settings file"),
        (b"\x89PNG\r\n\x1a\n\xff\xfe", "is not a text file"),
        ('{"prompts": {"0": 5}, "max_frames": 10}', "the prompt at frame '0' is not text"),
        ('{"prompts": [], "max_frames": 10}', "'prompts' must map frames"),
    ],
)
def test_bad_files_are_one_line_errors_naming_the_file(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / "broken_settings.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(RotoscopeError) as info:
        import_deforum(path)
    text = str(info.value)
    assert message in text
    assert str(path) in text
    assert "\n" not in text


def test_keyframe_text_round_trips_and_lists_the_warnings() -> None:
    result = import_deforum(EXAMPLE)
    text = keyframe_text(result, EXAMPLE)
    assert yaml.safe_load(text) == result.keyframes
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert str(EXAMPLE) in comments[0]
    for warning in result.warnings:
        assert f"#   - {warning}" in comments


def test_cli_writes_the_file_and_prints_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "keyframes" / "forest.yaml"
    main([str(EXAMPLE), "-o", str(out)])
    captured = capsys.readouterr()
    assert captured.out == ""
    for warning in EXPECTED_WARNINGS:
        assert f"rotoscope: warning: {warning}" in captured.err.splitlines()
    assert yaml.safe_load(out.read_text(encoding="utf-8")) == EXPECTED_KEYFRAMES

    main([str(EXAMPLE)])  # no -o: the YAML goes to standard output
    assert yaml.safe_load(capsys.readouterr().out) == EXPECTED_KEYFRAMES


def test_cli_error_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "missing_settings.txt")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rotoscope: error: Deforum settings file")
    assert "\n" not in err


def test_the_keyframe_loader_reads_the_import(tmp_path: Path) -> None:
    from pipeline.run.configure import load_keyframes

    out = tmp_path / "forest.yaml"
    out.write_text(keyframe_text(import_deforum(EXAMPLE), EXAMPLE), encoding="utf-8")
    values = load_keyframes(out).values
    assert values["strength"] == "0:(0.35), 24:(0.45), 47:(0.4)"
    assert values["animation.zoom"] == EXPECTED_KEYFRAMES["schedules"]["zoom"]
    assert values["seed_iter_n"] == 1
    assert load_keyframes(EXAMPLE).values == values  # the settings file given directly


# --- masks ---

MASKED_VIDEO = {
    "animation_mode": "Video Input", "video_init_path": "/clips/dance.mp4",
    "use_mask_video": True, "video_mask_path": "/clips/dance_matte.mp4", "invert_mask": True,
    "mask_contrast_adjust": 1.5, "mask_brightness_adjust": 1.0, "overlay_mask": True,
    "mask_overlay_blur": 6, "full_res_mask": True, "full_res_mask_padding": 24, "fill": 2,
    "mask_schedule": '0: ("{video_mask}"), 12: ("{video_mask} | [/clips/logo.png]")',
}  # fmt: skip


def test_a_video_input_file_with_a_mask_video_imports_its_masks(tmp_path: Path) -> None:
    result = imported(tmp_path, **MASKED_VIDEO)
    settings, schedules = result.keyframes["settings"], result.keyframes["schedules"]
    assert {key: value for key, value in settings.items() if key.startswith("mask.")} == {
        "mask.path": "/clips/dance_matte.mp4",
        "mask.invert": True,
        "mask.composite": True,
        "mask.area": "masked",
        "mask.padding": 24,
        "mask.fill": "latent_noise",
        "mask.expression": '0: ("{video_mask}"), 12: ("{video_mask} | [/clips/logo.png]")',
    }
    assert schedules["mask_contrast"] == "0:(1.5)"
    assert schedules["mask_overlay_blur"] == "0:(6)"
    assert not any("mask" in warning for warning in result.warnings)
    # the file's own mask alone (Deforum's default schedule) needs no expression, and a
    # mask file without overlay keeps the raw render
    plain = imported(
        tmp_path, animation_mode="None", use_mask=True, mask_file="/masks/m.png",
        overlay_mask=False, mask_schedule='0: ("{video_mask}")',
    )  # fmt: skip
    assert plain.keyframes["settings"]["mask.path"] == "/masks/m.png"
    assert plain.keyframes["settings"]["mask.composite"] is False
    assert "mask.expression" not in plain.keyframes["settings"]
    assert "mask_overlay_blur" not in plain.keyframes["schedules"]


def test_masks_deforum_needs_a_model_for_are_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(RotoscopeError, match=r"mask_schedule=.*\{human_mask\}") as error:
        imported(tmp_path, **{**MASKED_VIDEO, "mask_schedule": '0: ("{human_mask}")'})
    assert "\n" not in str(error.value)


def test_masks_that_cannot_be_imported_are_reported(tmp_path: Path) -> None:
    remote = imported(tmp_path, animation_mode="None", use_mask=True)  # the example's URL
    assert "mask.path" not in remote.keyframes["settings"]
    assert (
        'mask_file="https://deforum.github.io/a1/M1.jpg" is not a local file'
        in (remote.warnings[0])
    )
    moving = imported(tmp_path, use_mask=True, mask_file="/masks/m.png")  # a 2D file
    assert "mask.path" not in moving.keyframes["settings"]
    assert "masks with 2D and 3D animation are not supported" in moving.warnings[0]


# --- files as Deforum reads them ---

VERSIONS = DATA / "deforum"


@pytest.mark.parametrize(
    ("schedule", "read"),
    [
        ("0:0: (7+sin(t/8))", "0:(7+sin(t/8))"),  # a stray "0:" between entries
        ("0: (7), 10:(8.5),", "0:(7), 10:(8.5)"),
        ("0:(0.5), :(0.2)", "0:(0.5)"),
    ],
)
def test_schedules_are_read_the_way_deforum_reads_them(
    tmp_path: Path, schedule: str, read: str
) -> None:
    result = imported(tmp_path, cfg_scale_schedule=schedule)
    assert result.keyframes["schedules"]["guidance_scale"] == read
    assert f"is imported as Deforum reads it: {json.dumps(read)}" in result.warnings[0]


def test_noise_is_scaled_to_rotoscopes_gaussian_noise(tmp_path: Path) -> None:
    schedules = imported(tmp_path, noise_schedule="0: (0.05), 10: (0.02+0.01*sin(t))")
    assert schedules.keyframes["schedules"]["noise"] == ("0:(0.018), 10:(0.36*(0.02+0.01*sin(t)))")


def test_a_2d_zoom_of_zero_becomes_no_zoom(tmp_path: Path) -> None:
    result = imported(tmp_path, zoom="0: (1.01), 12: (0), 13: (-1)")
    assert result.keyframes["schedules"]["zoom"] == "0:(1.01), 12:(1), 13:(1)"
    assert "0 or less at frame 12, 13" in result.warnings[0]


@pytest.mark.parametrize(
    ("sampler", "scheduler", "expected"),
    [
        ("DPM++ 2M", "Karras", "DPM++ 2M Karras"),
        ("DPM++ 2M", "Automatic", "DPM++ 2M Karras"),  # A1111 1.9's default for it
        ("Euler a", "Automatic", "Euler a"),
        ("Euler", "Uniform", "Euler"),
        ("DPM++ SDE", "Karras", "DPM++ SDE Karras"),
    ],
)
def test_newer_sampler_and_scheduler_keys(
    tmp_path: Path, sampler: str, scheduler: str, expected: str
) -> None:
    result = imported(tmp_path, sampler=None, sampler_name=sampler, scheduler=scheduler)
    assert result.keyframes["settings"]["sampler"] == expected
    assert result.warnings == []


def test_newer_size_keys(tmp_path: Path) -> None:
    settings = imported(tmp_path, W=None, H=None, width=640, height=384).keyframes["settings"]
    assert (settings["input.width"], settings["input.height"]) == (640, 384)


def test_clip_skip_schedule(tmp_path: Path) -> None:
    steady = imported(tmp_path, enable_clipskip_scheduling=True, clipskip_schedule="0: (2)")
    assert steady.keyframes["settings"]["clip_skip"] == 2 and steady.warnings == []
    off = imported(tmp_path, clipskip_schedule="0: (2)")
    assert "clip_skip" not in off.keyframes["settings"]
    changing = imported(
        tmp_path, enable_clipskip_scheduling=True, clipskip_schedule="0: (1), 10: (2)"
    )
    assert changing.keyframes["settings"]["clip_skip"] == 1
    assert "changes over time" in changing.warnings[0]


@pytest.mark.parametrize("settings", sorted(VERSIONS.glob("*_settings.txt")), ids=lambda p: p.stem)
def test_deforum_files_of_every_version_plan(settings: Path, tmp_path: Path) -> None:
    """Settings files as the Colab notebook (2022), the A1111 extension (2023, a 3D run
    and a Video Input run) and newer A1111 (2024) write them import into a plan that
    renders: every row passes the plan's checks. LoRA tags and embedding names pass
    through to rotoscope's prompts."""
    from pipeline.config.compose import compose_checked
    from pipeline.plan.build import build_plan
    from pipeline.run.configure import apply_keyframes

    loras, embeddings = tmp_path / "Lora", tmp_path / "embeddings"
    loras.mkdir()
    embeddings.mkdir()
    for name in ("neon_style.safetensors", "papercut.safetensors"):
        (loras / name).write_bytes(b"lora")
    for name in ("bad-hands-5.pt", "EasyNegative.safetensors"):
        (embeddings / name).write_bytes(b"embedding")
    overrides = [
        f"input.path={tmp_path / 'clip.mp4'}", f"keyframes={settings}", "model=tiny",
        f"model.lora_dir={loras}", f"model.embeddings_dir={embeddings}",
    ]  # fmt: skip
    cfg, origins = apply_keyframes(compose_checked(overrides), overrides)
    if cfg.seed == -1:  # the job draws it for the run folder before planning
        cfg = replace(cfg, seed=7)
    frames = cfg.input.max_frames or 24
    rows = build_plan(cfg, frames, cfg.input.width or 512, cfg.input.height or 512, 12.0, origins)
    assert len(rows.rows) == frames
    tagged = [row for row in rows.rows if row.loras]
    if "<lora:" in settings.read_text(encoding="utf-8"):
        assert tagged and "<lora:" in tagged[0].prompt


def test_a_hand_made_3d_file_maps_every_3d_and_loopback_key() -> None:
    """Every 3D camera, depth and loopback-tool setting at a non-default value: each lands
    at its rotoscope key, and nothing is reported."""
    result = import_deforum(VERSIONS / "hand_made_3d_settings.txt")
    assert result.warnings == []
    settings, schedules = result.keyframes["settings"], result.keyframes["schedules"]
    assert schedules == {
        "strength": "0:(0.4)", "guidance_scale": "0: (7)", "steps": "0:(20)",
        "noise_multiplier": "0: (1.05), 24: (1.1)",
        "translation_x": "0: (1.5)", "translation_y": "0: (-0.5)", "noise": "0:(0.018)",
        "translation_z": "0: (2), 24: (6)", "rotation_3d_x": "0: (0.2)",
        "rotation_3d_y": "0: (0), 24: (0.5)", "rotation_3d_z": "0: (-0.1)",
        "fov": "0: (55)", "near": "0: (150)", "far": "0: (9000)", "aspect_ratio": "0: (1.2)",
        "contrast": "0: (0.98)", "anti_blur_amount": "0: (0.2)", "anti_blur_kernel": "0: (7)",
        "anti_blur_sigma": "0: (1.5)", "anti_blur_threshold": "0: (2)",
        "perlin_octaves": "0:(3)", "perlin_persistence": "0:(0.4)",
        "perspective_flip_theta": "0: (1)", "perspective_flip_phi": "0: (2)",
        "perspective_flip_gamma": "0: (3)", "perspective_flip_fv": "0: (60)",
    }  # fmt: skip
    assert settings == {
        "seed_behavior": "fixed", "seed": 77, "prompt_editing_steps": "a1111",
        "sampler": "Euler a", "input.width": 640,
        "input.height": 384, "prompt_blend": "none", "animation.mode": "3d",
        "animation.border": "wrap", "animation.depth.model": "zoe",
        "animation.padding_mode": "reflection", "animation.sampling_mode": "bilinear",
        "animation.anti_blur": True, "animation.noise_type": "perlin",
        "animation.perlin_cells_y": 4, "animation.perlin_cells_x": 6,
        "animation.perspective_flip": True, "animation.save_depth": True,
        "animation.color_coherence": "hsv", "animation.color_coherence_output": True,
        "input.fps": 12, "input.max_frames": 48,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "depth", "reported"),
    [
        ({"use_depth_warping": False}, {"animation.depth.model": "none"}, None),
        ({"depth_algorithm": "Midas-3-Hybrid"}, {"animation.depth.model": "midas"}, None),
        (
            {"depth_algorithm": "Midas+AdaBins (old)"},
            {"animation.depth.model": "midas", "animation.depth.blend": "zoe",
             "animation.depth.midas_weight": 0.4},
            "AdaBins is not offered",
        ),
        ({"depth_algorithm": "Leres"}, {"animation.depth.model": "zoe"}, "LeReS"),
        ({"depth_algorithm": "Midas-3.1-BeitLarge"}, {"animation.depth.model": "midas"}, "BEiT"),
        ({"depth_algorithm": "Depth-Anything-V2-Small"},
         {"animation.depth.model": "depth_anything"}, None),
        ({"depth_algorithm": "Depth-Anything-V2-Large"},
         {"animation.depth.model": "depth_anything"}, "V2-Large-hf"),
    ],
)  # fmt: skip
def test_depth_algorithms(
    tmp_path: Path, changes: dict[str, Any], depth: dict[str, Any], reported: str | None
) -> None:
    base = json.loads((VERSIONS / "hand_made_3d_settings.txt").read_text(encoding="utf-8"))
    result = import_deforum(settings_file(tmp_path, base, **changes))
    settings = result.keyframes["settings"]
    assert {key: settings[key] for key in depth} == depth
    assert "animation.depth.blend" in depth or "animation.depth.blend" not in settings
    assert [reported in warning for warning in result.warnings] == ([True] if reported else [])


def test_older_3d_lenses_and_aspect_ratios(tmp_path: Path) -> None:
    base = json.loads((VERSIONS / "hand_made_3d_settings.txt").read_text(encoding="utf-8"))
    for key in ("fov_schedule", "near_schedule", "far_schedule", "aspect_ratio_schedule",
                "aspect_ratio_use_old_formula", "depth_algorithm"):  # fmt: skip
        del base[key]
    # the Colab notebook: single numbers, W/H as the aspect ratio, MiDaS (+ AdaBins below 1)
    notebook = import_deforum(
        settings_file(tmp_path, base, fov=40, near_plane=200, far_plane=10000, midas_weight=1.0)
    )
    schedules = notebook.keyframes["schedules"]
    assert (schedules["fov"], schedules["near"], schedules["far"]) == ("0:(40)", "0:(200)",
                                                                       "0:(10000)")  # fmt: skip
    assert schedules["aspect_ratio"] == "0:(1.666667)"  # 640 / 384
    assert notebook.keyframes["settings"]["animation.depth.model"] == "midas"
    zoe = import_deforum(settings_file(tmp_path, base, use_zoe_depth=True))
    assert zoe.keyframes["settings"]["animation.depth.model"] == "zoe"


def test_colour_coherence_modes_and_order(tmp_path: Path) -> None:
    def colours(**changes: Any) -> dict[str, Any]:
        settings = imported(tmp_path, **changes).keyframes["settings"]
        return {key: value for key, value in settings.items() if "color" in key}

    assert colours(color_coherence="RGB") == {"animation.color_coherence": "rgb",
                                              "animation.color_coherence_output": True}  # fmt: skip
    assert colours(color_coherence="Match Frame 0 HSV", legacy_colormatch=True) == {
        "animation.color_coherence": "hsv"
    }
    assert colours(color_coherence="LAB", legacy_colormatch=None) == {
        "animation.color_coherence": "lab"  # a file from before the switch: the input alone
    }
    # a video's frames only with hybrid video on (Deforum matches like LAB without it)
    assert colours(color_coherence="Video Input")["animation.color_coherence"] == "lab"
    video = colours(
        color_coherence="Video Input", video_init_path="/clips/ref.mp4",
        hybrid_composite="Normal", color_coherence_video_every_N_frames=3,
    )  # fmt: skip
    assert video == {"animation.color_coherence": "video", "animation.color_coherence_output": True,
                     "animation.color_coherence_video": "/clips/ref.mp4",
                     "animation.color_coherence_every": 3}  # fmt: skip
    image = colours(color_coherence="Image", color_coherence_image_path="ref.png")
    assert image["animation.color_coherence_video"] == "ref.png"


def test_cadence_and_optical_flow_cadence(tmp_path: Path) -> None:
    """diffusion_cadence, optical_flow_cadence and cadence_flow_factor_schedule map to
    cadence.every, cadence.flow and the cadence_flow_factor schedule, in 2D and 3D; Video
    Input diffuses every frame in Deforum, so its cadence is not imported."""

    def cadence(result: DeforumImport) -> tuple[dict[str, Any], str | None]:
        settings = {k: v for k, v in result.keyframes["settings"].items() if "cadence" in k}
        return settings, result.keyframes["schedules"].get("cadence_flow_factor")

    assert cadence(imported(tmp_path, diffusion_cadence="3")) == ({"cadence.every": 3}, None)
    flow = imported(
        tmp_path, diffusion_cadence=4, optical_flow_cadence="DIS Fine",
        cadence_flow_factor_schedule="0: (1), 10: (0.5)", animation_mode="3D",
    )  # fmt: skip
    assert cadence(flow) == (
        {"cadence.every": 4, "cadence.flow": "dis_fine"},
        "0: (1), 10: (0.5)",
    )
    assert 'optical_flow_cadence="DIS Fine" moves the frames' in flow.warnings[0]
    raft = imported(tmp_path, diffusion_cadence=2, optical_flow_cadence="RAFT")
    assert cadence(raft)[0]["cadence.flow"] == "raft"
    assert any("cadence.raft_weights" in warning for warning in raft.warnings)
    odd = imported(tmp_path, diffusion_cadence=2, optical_flow_cadence="Lucas")
    assert cadence(odd) == ({"cadence.every": 2}, None)
    assert 'optical_flow_cadence="Lucas" is not one of' in odd.warnings[0]
    video = imported(tmp_path, diffusion_cadence=3, animation_mode="Video Input")
    assert cadence(video) == ({}, None)


def test_a_prompt_over_several_lines_imports_plans_and_charts(tmp_path: Path) -> None:
    """Deforum's UI keeps line breaks in prompts (they crashed the chart once)."""
    from support.configs import make_cfg

    from pipeline.plan.build import build_plan
    from pipeline.plan.chart import write_plan_chart
    from pipeline.run.configure import apply_keyframes

    prompts = {"0": "a cat,\noil painting", "6": "a dog --neg blurry,\r\nbad"}
    source = settings_file(tmp_path, prompts=prompts, positive_prompts="", negative_prompts="")
    keyframes = tmp_path / "imported.yaml"
    keyframes.write_text(keyframe_text(import_deforum(source), source), encoding="utf-8")
    cfg, origins = apply_keyframes(make_cfg(keyframes=str(keyframes)), set())
    plan = build_plan(cfg, 8, 64, 48, 12.0, origins)
    assert plan.rows[0].prompt.endswith("a cat, oil painting")  # after the example's prefix
    assert plan.rows[6].prompt.endswith("a dog") and "blurry, bad" in plan.rows[6].negative_prompt
    assert not any("\n" in row.prompt + row.negative_prompt for row in plan.rows)
    keys = [(key.frame, key.prompt) for key in plan.prompt_keys]
    assert write_plan_chart(plan.series, keys, tmp_path / "plan.png").is_file()
