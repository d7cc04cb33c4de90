"""Finishing end to end: rendered at the model's size, delivered at the source's size and
any frame rate, from one command; resumed and re-finished without rendering again."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.cli import count_frames, probe_output, rotoscope, start_forked, wait_for_log
from support.cli_runner import cli_env, run_cli
from support.media import make_video, write_image
from support.run_files import report_of

from pipeline.ffmpeg_exe import ffmpeg_exe
from pipeline.records.run_folder import RunFolder

ROOT = Path(__file__).resolve().parents[2]
SOURCE = (128, 72)  # 16:9; input.size=64 renders it at 88x48
RENDER = (88, 48)
FRAMES, FPS = 6, 8


def seconds(path: Path, stream: str) -> float:
    """How long a file's video (``v``) or audio (``a``) plays, decoded to the end."""
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", f"0:{stream}", "-f", "null", "-"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    times = re.findall(r"time=(\d+):(\d+):([\d.]+)", result.stderr)
    hours, minutes, secs = times[-1]
    return int(hours) * 3600 + int(minutes) * 60 + float(secs)


def size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


@pytest.fixture(scope="module")
def finished(tiny_models, tiny_finishing, tmp_path_factory: pytest.TempPathFactory):
    """One run: 6 frames rendered at 88x48, upscaled by the tiny ESRGAN to the source's
    128x72, delivered at twice the frame rate."""
    work = tmp_path_factory.mktemp("finishing")
    clip = make_video(work / "clip.mp4", frames=FRAMES, fps=FPS, size=SOURCE, audio=True)
    args = (
        f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=2",
        "prompt=ink drawing", "input.size=64", f"upscale.model={tiny_finishing.esrgan}",
        "output.interpolate=2", "output.root=outputs",
    )  # fmt: skip
    result = rotoscope(*args, cwd=work)
    return work, args, result, work / "outputs" / "clip"


def test_rendered_small_upscaled_to_the_source_and_delivered_at_twice_the_rate(
    finished,
) -> None:
    work, _, result, run_dir = finished
    assert result.returncode == 0, result.stderr
    assert {size_of(path) for path in (run_dir / "frames").glob("*.png")} == {RENDER}
    upscaled = sorted((run_dir / "upscaled").glob("*.png"))
    assert len(upscaled) == FRAMES and {size_of(path) for path in upscaled} == {SOURCE}
    video = run_dir / "clip.mp4"
    info = probe_output(video)
    assert "128x72" in info and "16 fps" in info and "Audio:" in info
    assert count_frames(video) == 2 * FRAMES
    source_seconds = FRAMES / FPS
    assert seconds(video, "v") == pytest.approx(source_seconds, abs=0.01)  # same duration
    assert seconds(video, "a") == pytest.approx(seconds(work / "clip.mp4", "a"), abs=0.03)
    report = report_of(run_dir)
    assert (report["upscaled"], report["in_between"]) == (FRAMES, FRAMES - 1)  # last holds


def test_a_rerun_renders_upscales_and_interpolates_nothing(finished) -> None:
    work, args, _, _ = finished
    again = rotoscope(*args, cwd=work)
    assert again.returncode == 0, again.stderr
    assert "0 rendered, 6 reused" in again.stderr
    assert "(6 reused)" in again.stderr and "upscaler:" not in again.stderr  # not loaded
    assert "0 frames to make, 5 reused" in again.stderr


def test_a_new_delivered_size_upscales_again_without_rendering(finished) -> None:
    work, args, _, run_dir = finished
    result = rotoscope(*args, "upscale.to=2", "output.interpolate=1", cwd=work)
    assert result.returncode == 0, result.stderr
    assert "0 rendered, 6 reused" in result.stderr
    assert report_of(run_dir)["upscaled"] == FRAMES
    assert "176x96" in probe_output(run_dir / "clip.mp4")
    assert count_frames(run_dir / "clip.mp4") == FRAMES


@pytest.mark.parametrize(
    ("options", "frames", "rate", "audio"),
    [
        (
            ["output.interpolation=minterpolate", "output.interpolate=1", "output.fps=24"],
            3 * FRAMES,
            "24 fps",
            True,
        ),
        (["output.interpolation=rife", "output.interpolate=3"], 3 * FRAMES, "24 fps", True),
        (["output.interpolation=nearest", "output.slow_motion=2"], 4 * FRAMES, "16 fps", False),
    ],
)
def test_other_interpolations_reencode_what_is_on_disk(
    finished, tiny_finishing, options: list[str], frames: int, rate: str, audio: bool
) -> None:
    work, args, _, run_dir = finished
    model = f"output.interpolation_model={tiny_finishing.rife}"
    result = rotoscope(*args, "stages=[upscale,assemble]", model, *options, cwd=work)
    assert result.returncode == 0, result.stderr
    video = run_dir / "clip.mp4"
    info = probe_output(video)
    assert count_frames(video) == frames and rate in info and ("Audio:" in info) is audio
    slow = 2 if "output.slow_motion=2" in options else 1
    assert seconds(video, "v") == pytest.approx(slow * FRAMES / FPS, abs=0.01)


def test_an_image_folder_of_in_between_frames(finished) -> None:
    work, args, _, run_dir = finished
    result = rotoscope(*args, "stages=[upscale,assemble]", "output=images", cwd=work)
    assert result.returncode == 0, result.stderr
    files = sorted((run_dir / "images").iterdir())
    assert [path.name for path in files[:2]] == ["000000.png", "000001.png"]
    assert len(files) == 2 * FRAMES and {size_of(path) for path in files} == {SOURCE}


def test_assembling_without_the_upscale_stage_names_it(finished) -> None:
    work, args, _, _ = finished
    result = rotoscope(*args, "stages=[assemble]", "upscale.to=3", cwd=work)
    assert result.returncode == 2
    assert "have no 264x144 version made by" in result.stderr
    assert "stages=[upscale,assemble]" in result.stderr


@pytest.mark.xdist_group("ray")  # one process runs every Ray test
def test_ray_workers_upscale_the_same_frames(finished, tiny_finishing) -> None:
    import torch

    from pipeline.models.upscalers import load_upscaler
    from pipeline.upscale.frames import FrameUpscaler

    work, args, _, run_dir = finished
    env = {**cli_env(work), "OMP_NUM_THREADS": "1"}
    result = run_cli([*args, "stages=[upscale]", "upscale.to=1.5", "runtime.workers=2"], work, env)
    assert result.returncode == 0, result.stderr
    assert "2 upscale workers ready" in result.stderr
    upscaler = load_upscaler(tiny_finishing.esrgan, torch.device("cpu"), torch.float32)
    here = FrameUpscaler(upscaler, 512, 32)
    lines = [json.loads(line) for line in (run_dir / "upscaled.jsonl").read_text().splitlines()]
    made = [line for line in lines if line["width"] == 132]
    assert len(made) == FRAMES
    frames = {json.loads(line)["key"]: json.loads(line)["file"]
              for line in (run_dir / "manifest.jsonl").read_text().splitlines()}  # fmt: skip
    for line in made:
        rendered = np.asarray(Image.open(run_dir / frames[line["frame"]]).convert("RGB"))
        on_ray = np.asarray(Image.open(run_dir / line["file"]).convert("RGB"))
        assert np.array_equal(on_ray, here(rendered, (132, 72)))


def test_input_size_auto_follows_the_models_family_on_1080p_and_portrait_sources(
    tiny_models, tmp_path: Path
) -> None:
    clip = make_video(tmp_path / "hd.mp4", frames=2, fps=8, size=(1920, 1080))
    write_image(tmp_path / "tall.png", np.full((1920, 1080, 3), 90, np.uint8))
    for number, (source, model, render) in enumerate((
        (clip, tiny_models.sd15, (680, 384)),  # SD 1.x: 512x512's area, 16:9
        (clip, tiny_models.sdxl_single, (1368, 768)),  # SDXL, told from the file's header
        (tmp_path / "tall.png", tiny_models.sd15, (384, 680)),
    )):  # fmt: skip
        result = rotoscope(f"input.path={source}", f"model.path={model}", "stages=[plan]",
                           f"name=auto{number}", cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr
        preview = RunFolder(tmp_path / f"outputs/auto{number}").preview  # a plan alone
        info = json.loads(preview.source_json.read_text())
        assert (info["width"], info["height"]) == render
        assert (info["source_width"], info["source_height"]) == size_of_source(source)


def size_of_source(path: Path) -> tuple[int, int]:
    return (1920, 1080) if path.suffix == ".mp4" else (1080, 1920)


def test_masks_follow_upscaled_and_in_between_frames_into_every_format(
    tiny_models, tmp_path: Path
) -> None:
    """Alpha and mattes of an upscaled, retimed clip: each output frame's mask is at the
    delivered size, and an in-between frame's mask is between its neighbours' masks."""
    clip = make_video(tmp_path / "clip.mp4", frames=3, fps=6)
    masks = tmp_path / "masks"
    masks.mkdir()
    for index in range(3):  # a 16x24 block moving 8 pixels right per frame
        mask = np.zeros((48, 64), np.uint8)
        mask[16:32, 8 * index : 8 * index + 24] = 255
        Image.fromarray(mask).save(masks / f"{index:03d}.png")
    result = rotoscope(
        f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=2",
        "strength=0.6", "prompt=ink", f"mask.path={masks}", "mask.overlay_blur=0",
        "upscale.model=lanczos", "upscale.to=2", "output.interpolate=2",
        "output=[mp4,prores_alpha,images]", "output.alpha=true", "output.matte=true",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "outputs/clip"
    for video in ("clip.mp4", "clip.mov", "clip.matte.mp4", "clip.matte.mov"):
        assert count_frames(run_dir / video) == 6 and "128x96" in probe_output(run_dir / video)
    assert "yuva444p" in probe_output(run_dir / "clip.mov")
    images = sorted((run_dir / "images").iterdir())
    mattes = sorted((run_dir / "mattes").iterdir())
    assert len(images) == len(mattes) == 6
    alphas = [np.asarray(Image.open(path))[..., 3].astype(float) for path in images]
    assert {size_of(path) for path in images + mattes} == {(128, 96)}

    def middle(alpha: np.ndarray) -> float:  # the mask's centre, across
        return float((alpha.sum(axis=0) * np.arange(alpha.shape[1])).sum() / alpha.sum())

    for number, alpha in enumerate(alphas[:5]):
        assert np.array_equal(alpha, np.asarray(Image.open(mattes[number])).astype(float))
        frame = number / 2  # output frame 1 is halfway between frames 0 and 1
        assert middle(alpha) == pytest.approx(2 * (8 * frame + 11.5) + 0.5, abs=1.5)


def test_ctrl_c_in_the_upscale_stage_keeps_what_it_upscaled(finished) -> None:
    work, args, _, run_dir = finished
    again = (*args, "upscale.to=2.5")  # 220x120: frames to upscale, none to render
    proc = start_forked(*again, cwd=work, env={"ROTOSCOPE_PAUSE_AT": "upscale:2"})
    wait_for_log(run_dir, "paused at upscale safe point 2", proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate()
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert "Resume with:" in stderr
    resumed = rotoscope(*again, cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    report = report_of(run_dir)
    assert (report["upscaled"], report["upscale_reused"]) == (FRAMES - 2, 2)
    assert "220x120" in probe_output(run_dir / "clip.mp4")


def test_restoring_an_upscaled_look_upscales_what_is_missing_without_rendering(
    tiny_models, tmp_path: Path
) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=3, fps=6)
    base = (f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=2",
            "upscale.model=lanczos", "upscale.to=2",
            "stages=[plan,render,upscale,assemble]")  # fmt: skip
    for prompt in ("a cat", "a dog"):
        result = rotoscope(*base, f"prompt={prompt}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "outputs/clip"
    look = json.loads(next((run_dir / "history").glob("*.mp4.json")).read_text())["look"]
    shutil.rmtree(run_dir / "upscaled")  # the cat's upscaled frames are gone, its frames kept
    restored = subprocess.run(
        [sys.executable, "-m", "pipeline.cli.history", str(run_dir), "restore", look],
        cwd=tmp_path, env={**cli_env(tmp_path), "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert "loading model" not in restored.stderr  # nothing renders
    assert len(list((run_dir / "upscaled").glob("*.png"))) == 3
    assert "128x96" in probe_output(run_dir / "clip.mp4")
