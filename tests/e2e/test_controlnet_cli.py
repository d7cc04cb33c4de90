"""ControlNet through the CLI on the tiny models: units, maps, cache, preview, sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.cli import count_frames, rotoscope
from support.media import make_video
from support.run_files import frame_file, frames_of

from pipeline.render.pngmeta import read_png_metadata

# End to end through the command line: each test renders in a subprocess.


def unit(name: str, model: Path, preprocessor: str, **fields: str) -> list[str]:
    prefix = f"+controlnet.units.{name}"
    args = [f"{prefix}.model={model}", f"{prefix}.preprocessor={preprocessor}"]
    return args + [f"{prefix}.{key}={value}" for key, value in fields.items()]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "dance.mp4", frames=6, fps=6)


def test_two_units_img2img_with_scheduled_weight_cache_and_preview(
    tiny_models, tiny_controlnets, annotators, clip, tmp_path
) -> None:
    args = (
        f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=4",
        f"controlnet.annotators={annotators}",
        *unit("edges", tiny_controlnets.sd15, "canny", weight="0:(1), 5:(0.5)"),
        *unit("soft", tiny_controlnets.sd15_single, "hed", guidance_end="0.8"),
        "+controlnet.units.soft.params.detect_resolution=64",
    )  # fmt: skip
    preview = rotoscope(*args, "stages=[plan,control]", cwd=tmp_path)
    assert preview.returncode == 0, preview.stderr
    run_dir = tmp_path / "outputs/dance"
    assert count_frames(run_dir / "control/preview.mp4") == 6
    assert not (run_dir / "frames").exists()  # maps only, nothing rendered
    maps_lines = (run_dir / "control/soft/maps.jsonl").read_text().splitlines()
    assert len(maps_lines) == 6

    result = rotoscope(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (run_dir / "control/soft/maps.jsonl").read_text().splitlines() == maps_lines  # reused
    rows = [json.loads(line) for line in (run_dir / "plan.jsonl").open()]
    weights = [r["controls"]["edges"]["weight"] for r in rows]
    assert weights == pytest.approx([1, 0.9, 0.8, 0.7, 0.6, 0.5])
    assert rows[0]["controls"]["soft"] == {"weight": 1.0, "start": 0.0, "end": 0.8}
    meta = read_png_metadata(frame_file(run_dir, 4))
    assert 'ControlNet 0: "Module: canny' in meta["parameters"]
    assert "Weight: 0.6," in meta["parameters"]
    assert 'ControlNet 1: "Module: hed' in meta["parameters"]
    assert meta["rotoscope"]["plan"]["controls"]["edges"]["weight"] == pytest.approx(0.6)
    assert count_frames(run_dir / "dance.mp4") == 6

    # a preprocessor parameter change re-renders every frame whose map changed, and says why
    again = rotoscope(*args, "+controlnet.units.edges.params.low_threshold=10", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    report = json.loads((run_dir / "report.json").read_text())
    assert report["reasons"] == {"control map changed": 6}


def test_control_changes_the_picture(tiny_models, tiny_controlnets, clip, tmp_path) -> None:
    base = (f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=4",
            "input.max_frames=2", "stages=[plan,render]")  # fmt: skip
    plain = rotoscope(*base, "name=plain", cwd=tmp_path)
    edges = unit("edges", tiny_controlnets.sd15, "canny")
    controlled = rotoscope(*base, "name=controlled", *edges, cwd=tmp_path)
    assert plain.returncode == 0 and controlled.returncode == 0, controlled.stderr
    a, b = frames_of(tmp_path / "outputs/plain"), frames_of(tmp_path / "outputs/controlled")
    assert not np.array_equal(a[0], b[0])


def test_sdxl_txt2img_from_a_control_video(tiny_models, tiny_controlnets, clip, tmp_path) -> None:
    poses = make_video(tmp_path / "poses.mp4", frames=6, fps=6, size=(96, 72))
    result = rotoscope(
        f"input.path={clip}", f"model.path={tiny_models.sdxl}", "runtime=cpu", "steps=2",
        "controlnet.mode=txt2img", *unit("pose", tiny_controlnets.sdxl, "none", source=str(poses)),
        "output=webm", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "outputs/dance"
    rows = [json.loads(line) for line in (run_dir / "plan.jsonl").open()]
    assert {r["strength"] for r in rows} == {1.0}  # generated from noise
    control_map = np.asarray(Image.open(run_dir / "control/pose/000003.png"))
    assert control_map.shape == (48, 64, 3)  # the other source is brought to the frame size
    assert count_frames(run_dir / "dance.webm") == 6


def test_control_source_shorter_than_input(tiny_models, tiny_controlnets, clip, tmp_path) -> None:
    short = make_video(tmp_path / "short.mp4", frames=3, fps=6)
    args = (f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=2",
            *unit("edges", tiny_controlnets.sd15, "canny", source=str(short)))  # fmt: skip
    refused = rotoscope(*args, "stages=[plan]", cwd=tmp_path)
    assert refused.returncode == 2
    assert "unit 'edges'" in refused.stderr and "has 3 frames but the input has 6" in refused.stderr
    held = rotoscope(*args, "controlnet.on_mismatch=hold", "stages=[plan,control]", cwd=tmp_path)
    assert held.returncode == 0, held.stderr
    maps = [np.asarray(Image.open(p))
            for p in sorted((tmp_path / "outputs/dance/control/edges").glob("*.png"))]  # fmt: skip
    assert len(maps) == 6 and np.array_equal(maps[2], maps[5])


def test_missing_detector_weights_fail_before_rendering(tiny_models, tiny_controlnets, clip,
                                                         tmp_path) -> None:  # fmt: skip
    result = rotoscope(
        f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu",
        f"controlnet.annotators={tmp_path / 'empty'}",
        *unit("depth", tiny_controlnets.sd15, "depth_midas"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "dpt_hybrid-midas-501f0c75.pt" in result.stderr and "loading model" not in result.stderr
