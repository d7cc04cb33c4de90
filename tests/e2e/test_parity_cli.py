"""A1111/Deforum parity through the command line: a Deforum settings file with no init
image (a txt2img first frame), seed -1, a variation seed, a schedule type, a ControlNet
unit from A1111's ControlNet folder reading its own control video, hybrid compositing and
a soundtrack file renders; a re-run keeps the drawn seed and reuses every frame; a
frame's PNG parameters read back as keyframes give the same variation seed and schedule
type."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from support.cli import probe_output, rotoscope
from support.media import make_image_folder, run_ffmpeg
from support.run_files import frame_files

from pipeline.ffmpeg_exe import ffmpeg_exe
from pipeline.render.pngmeta import read_png_metadata

FRAMES = 4
FPS = 12


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, tiny_models, tiny_controlnets) -> Path:
    """A Deforum settings file and what it names: a control clip, a soundtrack, the
    ControlNet in A1111's ControlNet folder."""
    work = tmp_path_factory.mktemp("parity")
    clip = work / "control"
    make_image_folder(clip, [f"{k:03d}.png" for k in range(FRAMES)], size=(64, 64))
    run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=3", str(work / "track.wav"))
    models = work / "models"
    (models / "ControlNet").mkdir(parents=True)
    shutil.copy(tiny_controlnets.sd15_single, models / "ControlNet" / "my_canny.safetensors")
    settings = {
        "prompts": {"0": "a lighthouse at dusk"}, "animation_mode": "2D", "max_frames": FRAMES,
        "W": 64, "H": 64, "fps": FPS, "seed": -1, "seed_behavior": "iter", "steps": 2,
        "strength_schedule": "0:(0.5)", "sampler_name": "Euler", "scheduler": "Exponential",
        "subseed": 5, "subseed_strength": 0.3, "use_init": False, "diffusion_cadence": 1,
        "cn_1_enabled": True, "cn_1_model": "my_canny [0a1b2c3d]", "cn_1_module": "canny",
        "cn_1_vid_path": str(clip), "cn_1_weight": "0:(0.8)",
        "cn_2_enabled": True, "cn_2_model": "my_canny", "cn_2_module": "canny",
        "hybrid_composite": "Normal", "hybrid_comp_alpha_schedule": "0:(0.3)",
        "video_init_path": str(clip), "hybrid_use_first_frame_as_init_image": False,
        "add_soundtrack": "File", "soundtrack_path": str(work / "track.wav"),
    }  # fmt: skip
    (work / "deforum_settings.txt").write_text(json.dumps(settings), encoding="utf-8")
    return work


def job(work: Path, tiny_models) -> tuple[str, ...]:
    return (
        f"keyframes={work / 'deforum_settings.txt'}", f"model.path={tiny_models.sd15}",
        f"paths.models={work / 'models'}", "runtime=cpu", "name=parity", "output=mp4",
    )  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(work: Path, tiny_models) -> Path:
    result = rotoscope(*job(work, tiny_models), cwd=work)
    assert result.returncode == 0, result.stderr
    return work / "outputs" / "parity"


def test_a_deforum_file_without_init_renders_every_feature(run_dir: Path) -> None:
    rows = [json.loads(line) for line in (run_dir / "plan.jsonl").read_text().splitlines()]
    assert len(rows) == FRAMES and rows[0]["txt2img"] is True and "txt2img" not in rows[1]
    seed = yaml.safe_load((run_dir / "config.yaml").read_text())["seed"]
    assert seed >= 0 and json.loads((run_dir / "seed.json").read_text())["seed"] == seed
    assert rows[0]["seed"] == seed
    assert rows[1]["controls"]["cn1"]["weight"] == 0.8  # the imported unit, at its weight
    # a unit reading each frame's own picture has none on the txt2img frame 0, and reads
    # the loopback's img2img input after it
    assert rows[0]["controls"]["cn2"]["weight"] == 0 and rows[1]["controls"]["cn2"]["weight"] == 1
    assert rows[1]["hybrid_alpha"] == 0.3
    parameters = read_png_metadata(frame_files(run_dir)[1])["parameters"]
    assert "Schedule type: Exponential" in parameters
    assert "Variation seed: 5" in parameters and "Variation seed strength: 0.3" in parameters


def test_the_soundtrack_is_cut_to_the_video(run_dir: Path) -> None:
    video = next(run_dir.glob("*.mp4"))
    assert "Audio:" in probe_output(video)
    decoded = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(video), "-map", "0:a", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    hours, minutes, seconds = re.findall(r"time=(\d+):(\d+):([\d.]+)", decoded.stderr)[-1]
    assert abs(float(seconds) - FRAMES / FPS) < 0.05 and hours == minutes == "00"


def test_a_rerun_keeps_the_drawn_seed_and_reuses_every_frame(
    run_dir: Path, work: Path, tiny_models
) -> None:
    before = {path.name: path.read_bytes() for path in frame_files(run_dir)}
    result = rotoscope(*job(work, tiny_models), "stages=[plan,render]", cwd=work)
    assert result.returncode == 0, result.stderr
    assert f"0 rendered; {FRAMES} reused" in result.stderr
    assert {path.name: path.read_bytes() for path in frame_files(run_dir)} == before


def test_png_parameters_read_back_as_keyframes(run_dir: Path, work: Path, tiny_models) -> None:
    frame = frame_files(run_dir)[1]
    result = rotoscope(
        f"keyframes={frame}", f"model.path={tiny_models.sd15}", "runtime=cpu",
        f"input.path={frame}", "stages=[plan]", "name=readback", cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = work / "outputs" / "readback" / "preview" / "plan.jsonl"
    row = json.loads(plan.read_text().splitlines()[0])
    original = json.loads((run_dir / "plan.jsonl").read_text().splitlines()[1])
    assert (row["scheduler"], row["subseed"], row["subseed_strength"]) == ("Exponential", 5, 0.3)
    assert row["seed"] == original["seed"] and row["sampler"] == original["sampler"]


def test_an_init_image_starts_the_loopback_at_its_init_strength(work: Path, tiny_models) -> None:
    settings = json.loads((work / "deforum_settings.txt").read_text())
    make_image_folder(work / "init", ["start.png"], size=(64, 64))
    settings.update(use_init=True, init_image=str(work / "init" / "start.png"), strength=0.8)
    path = work / "init_settings.txt"
    path.write_text(json.dumps(settings), encoding="utf-8")
    result = rotoscope(
        f"keyframes={path}", f"model.path={tiny_models.sd15}", f"paths.models={work / 'models'}",
        "runtime=cpu", "name=init", "stages=[plan]", cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = (work / "outputs" / "init" / "preview" / "plan.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in plan]
    assert len(rows) == FRAMES and "txt2img" not in rows[0]
    assert rows[0]["strength"] == pytest.approx(0.2) and rows[1]["strength"] == 0.5
