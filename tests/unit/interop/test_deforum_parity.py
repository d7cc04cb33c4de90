"""Deforum import of A1111's generation extras: variation seeds, seed resize, schedule
types, seed -1, every ControlNet unit, hybrid video, the init image and the soundtrack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.interop.deforum.importer import DeforumImport, import_deforum

EXAMPLE = Path(__file__).parents[3] / "keyframes" / "deforum_example_settings.txt"
QUIET = {"diffusion_cadence": "1", "amount_schedule": "0: (0)", "sd_model_name": None}


def imported(tmp_path: Path, **changes: Any) -> DeforumImport:
    data = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    for key, value in {**QUIET, **changes}.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = tmp_path / "settings.txt"
    path.write_text(json.dumps(data), encoding="utf-8")
    return import_deforum(path)


def test_variation_seed_seed_resize_schedule_type_and_random_seed(tmp_path: Path) -> None:
    result = imported(
        tmp_path, seed=-1, subseed=77, subseed_strength=0.3, seed_resize_from_w=640,
        seed_resize_from_h=384, sampler=None, sampler_name="Euler", scheduler="SGM Uniform",
    )  # fmt: skip
    settings, schedules = result.keyframes["settings"], result.keyframes["schedules"]
    assert result.warnings == []
    assert settings["seed"] == -1  # drawn once for the run folder
    assert (settings["seed_resize_from_w"], settings["seed_resize_from_h"]) == (640, 384)
    assert (settings["sampler"], settings["scheduler"]) == ("Euler", "SGM Uniform")
    assert schedules["subseed"] == "0:(77)" and schedules["subseed_strength"] == "0:(0.3)"
    scheduled = imported(
        tmp_path, enable_subseed_scheduling=True, subseed_schedule="0:(5), 10:(6)",
        subseed_strength_schedule="0:(0), 10:(0.5)",
    )  # fmt: skip
    assert scheduled.keyframes["schedules"]["subseed_strength"] == "0:(0), 10:(0.5)"
    assert scheduled.keyframes["schedules"]["subseed"] == "0:(5), 10:(6)"
    assert scheduled.warnings == []


def test_every_enabled_controlnet_unit_with_its_own_video(tmp_path: Path) -> None:
    units = {
        "cn_1_enabled": True, "cn_1_model": "control_v11f1e_sd15_tile [a371b31b]",
        "cn_1_module": "tile_resample", "cn_1_weight": "0:(0.6), 10:(0.8)",
        "cn_1_guidance_end": "0:(0.9)", "cn_1_resize_mode": "Just Resize",
        "cn_2_enabled": True, "cn_2_model": "control_v11p_sd15_openpose [cab727d4]",
        "cn_2_module": "openpose_full", "cn_2_vid_path": "/clips/dancer.mp4",
        "cn_2_pixel_perfect": False, "cn_2_processor_res": 384,
        "cn_3_enabled": True, "cn_3_model": "control_v11e_sd15_ip2p [c4bb465c]",
        "cn_3_module": "none",
        "cn_4_enabled": False, "cn_4_model": "control_v11p_sd15_canny", "cn_4_module": "canny",
        "cn_5_enabled": True, "cn_5_model": "my_controlnet [0123abcd]", "cn_5_module": "canny",
        "cn_5_threshold_a": 50, "cn_5_threshold_b": 150,
    }  # fmt: skip
    result = imported(tmp_path, **units)
    settings = result.keyframes["settings"]
    tile = settings["controlnet.units.cn1"]
    assert tile == {
        "model": "lllyasviel/control_v11f1e_sd15_tile", "preprocessor": "tile", "params": {},
        "source": "input", "weight": "0:(0.6), 10:(0.8)", "guidance_start": "0:(0.0)",
        "guidance_end": "0:(0.9)", "resize_mode": "stretch",
    }  # fmt: skip
    pose = settings["controlnet.units.cn2"]
    assert pose["source"] == "/clips/dancer.mp4" and pose["preprocessor"] == "openpose"
    assert pose["params"] == {"include_hand": True, "include_face": True, "detect_resolution": 384}
    assert settings["controlnet.units.cn3"]["model"] == "lllyasviel/control_v11e_sd15_ip2p"
    assert "controlnet.units.cn4" not in settings  # disabled
    own = settings["controlnet.units.cn5"]
    assert own["model"] == "my_controlnet.safetensors"  # from paths.controlnet
    assert own["params"] == {"low_threshold": 50, "high_threshold": 150}
    assert len(result.warnings) == 1 and "ControlNet folder" in result.warnings[0]


def test_hybrid_video_init_image_and_soundtrack(tmp_path: Path) -> None:
    result = imported(
        tmp_path, video_init_path="/clips/walk.mp4", hybrid_motion="Optical Flow",
        hybrid_flow_method="DIS Medium", hybrid_composite="After Generation",
        hybrid_comp_mask_type="Difference", hybrid_comp_mask_auto_contrast=True,
        hybrid_comp_alpha_schedule="0:(0.3), 20:(0.6)", hybrid_flow_factor_schedule="0:(0.8)",
        use_init=True, init_image="/stills/start.png", strength=0.8,
        add_soundtrack="File", soundtrack_path="/music/track.mp3",
    )  # fmt: skip
    settings, schedules = result.keyframes["settings"], result.keyframes["schedules"]
    assert result.warnings == []
    assert settings["input.path"] == "/stills/start.png"
    assert abs(settings["animation.init_strength"] - 0.2) < 1e-9  # Deforum keeps 0.8
    assert settings["output.audio"] == "/music/track.mp3"
    assert settings["animation.hybrid.video"] == "/clips/walk.mp4"
    assert settings["animation.hybrid.motion"] == "optical_flow"
    assert settings["animation.hybrid.composite"] == "after_generation"
    assert settings["animation.hybrid.mask"] == "difference"
    assert settings["animation.hybrid.mask_auto_contrast"] is True
    assert schedules["hybrid_alpha"] == "0:(0.3), 20:(0.6)"
    assert schedules["hybrid_flow_factor"] == "0:(0.8)"
    # without an init image the loopback starts from the video's first frame, as Deforum's
    # hybrid_use_first_frame_as_init_image does
    start = imported(tmp_path, video_init_path="/clips/walk.mp4", hybrid_motion="Affine")
    assert start.keyframes["settings"]["input.path"] == "/clips/walk.mp4"


def test_urls_are_named_and_not_downloaded(tmp_path: Path) -> None:
    result = imported(
        tmp_path, use_init=True, add_soundtrack="File", hybrid_composite="Normal"
    )  # the example's init image, soundtrack and video are URLs
    settings = result.keyframes["settings"]
    assert "input.path" not in settings and "output.audio" not in settings
    assert not any(key.startswith("animation.hybrid") for key in settings)
    text = "\n".join(result.warnings)
    for url in ("a1/I1.png", "a1/A1.mp3", "a1/V1.mp4"):
        assert url in text and "not download" in text
    assert len(result.warnings) == 3


def test_cadence_with_hybrid_video_diffuses_every_frame(tmp_path: Path) -> None:
    """rotoscope's loopback cadence does not move its tweens by a hybrid video: such a
    file imports without its cadence; with ControlNet units it keeps it."""
    hybrid = imported(
        tmp_path, video_init_path="/clips/walk.mp4", hybrid_motion="Affine",
        diffusion_cadence=3, optical_flow_cadence="DIS Fine",
        cadence_flow_factor_schedule="0:(0.5)",
    )  # fmt: skip
    settings = hybrid.keyframes["settings"]
    assert settings["animation.hybrid.motion"] == "affine"
    assert not any(key.startswith("cadence.") for key in settings)
    assert "cadence_flow_factor" not in hybrid.keyframes["schedules"]
    assert hybrid.warnings == [
        "diffusion_cadence=3 is not imported with hybrid video: rotoscope's cadence does not "
        "move the frames between diffused frames by the hybrid video, so every frame is "
        "diffused"
    ]
    units = imported(tmp_path, diffusion_cadence=2, cn_1_enabled=True, cn_1_module="canny",
                     cn_1_model="control_v11p_sd15_canny")  # fmt: skip
    assert "controlnet.units.cn1" in units.keyframes["settings"]
    assert units.keyframes["settings"]["cadence.every"] == 2
