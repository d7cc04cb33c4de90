"""The 3D camera through the command line: a fly-through from a still with the tiny depth
model, its depth video and metadata, change-aware re-render, and kill -9 then resume."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.cli import count_frames, rotoscope, start_stopping_at, wait_until_stopped
from support.run_files import frame_files, frames_of, manifest_lines, report_of

from pipeline.records.run_folder import RunFolder
from pipeline.render.pngmeta import read_png_metadata

FRAMES = 16
FORWARD = "animation.translation_z=0:(4)"


@pytest.fixture(scope="module")
def still(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64x64 still with shapes near and far for the depth model to tell apart."""
    path = tmp_path_factory.mktemp("still") / "start.png"
    y, x = np.mgrid[0:64, 0:64]
    image = np.stack([x * 4, y * 4, 255 - (x + y) * 2], axis=-1)
    image[20:44, 20:44] = (240, 220, 60)
    Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def job(still: Path, tiny_models, tiny_depth: Path) -> list[str]:
    return [
        f"input.path={still}", f"input.repeat={FRAMES}", f"model.path={tiny_models.sd15}",
        f"paths.models={tiny_depth}", "runtime=cpu", "steps=2", "strength=0.5", "seed=3",
        "prompt=a forest path", "animation=loopback", "animation.mode=3d",
        "animation.depth.model=tiny", "animation.rotation_3d_y=0:(0), 8:(1)",
        "animation.save_depth=true", "animation.anti_blur=true", "noise_multiplier=1.05",
        "stages=[plan,render,assemble]",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(job: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted fly-through."""
    work = tmp_path_factory.mktemp("reference")
    result = rotoscope(*job, FORWARD, "name=whole", cwd=work)
    assert result.returncode == 0, result.stderr
    return work / "outputs/whole"


def depth_maps(run_dir: Path) -> dict[str, np.ndarray]:
    return {path.name: np.asarray(Image.open(path)) for path in (run_dir / "depth").glob("*.png")}


def test_a_fly_through_from_a_still(reference: Path) -> None:
    frames = frames_of(reference)
    assert len(frames) == FRAMES
    assert all(not np.array_equal(a, b) for a, b in itertools.pairwise(frames))
    assert count_frames(reference / "whole-depth.mp4") == FRAMES
    sidecar = json.loads(RunFolder.sidecar(reference / "whole-depth.mp4").read_text())
    assert sidecar["output"]["depth"] == "mp4" and len(sidecar["frames"]) == FRAMES
    assert len(depth_maps(reference)) == FRAMES  # every output's, once
    meta = read_png_metadata(frame_files(reference)[9])  # rotation_3d_y reached 1 at frame 8
    row = meta["rotoscope"]["plan"]
    assert (row["translation_z"], row["rotation_3d_y"], row["fov"]) == (4.0, 1.0, 70.0)
    assert row["anti_blur_amount"] == 0.1 and row["noise_multiplier"] == 1.05
    assert "Noise multiplier: 1.05" in meta["parameters"]
    assert "3d loopback" in (reference / "rotoscope.log").read_text()


def test_changing_a_3d_schedule_re_renders_exactly_the_frames_after_it(
    job: list[str], reference: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "outputs/whole"
    shutil.copytree(reference, run_dir)  # the uninterrupted run, edited in a copy
    before = {path.name: path.stat().st_mtime_ns for path in (run_dir / "depth").iterdir()}
    edited = "animation.translation_z=0:(4), 11:(4), 12:(8)"  # frames 0-11 keep 4
    result = rotoscope(*job, edited, "name=whole", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = report_of(run_dir)
    assert report["reused"] == 12 and report["rendered_frames"] == "12-15"
    assert report["reasons"]["changed translation_z"] >= 1
    frames = frames_of(run_dir)
    assert all(np.array_equal(a, b) for a, b in zip(frames[:12], frames_of(reference)[:12],
                                                      strict=True))  # fmt: skip
    assert not np.array_equal(frames[12], frames_of(reference)[12])
    # the depth of the reused outputs is read back, not estimated again
    after = {path.name: path.stat().st_mtime_ns for path in (run_dir / "depth").iterdir()}
    assert all(after[name] == stamp for name, stamp in before.items())
    assert "depth: 4 map(s) estimated" in (run_dir / "rotoscope.log").read_text()


def test_kill_9_then_resume_matches_an_uninterrupted_run(
    job: list[str], reference: Path, tmp_path: Path
) -> None:
    proc = start_stopping_at(3, *job, FORWARD, "name=killed", cwd=tmp_path)
    run_dir = tmp_path / "outputs/killed"
    wait_until_stopped(proc)
    proc.kill()
    proc.communicate()
    done = len(manifest_lines(run_dir))
    assert done == 3
    # the depth of the finished frames (the newest one's may still have been on its way)
    kept = {path.name: path.stat().st_ino for path in (run_dir / "depth").glob("*.png")}
    assert len(kept) >= done - 1
    result = rotoscope(*job, FORWARD, "name=killed", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = report_of(run_dir)
    assert report["reused"] == done and report["rendered"] == FRAMES - done
    for index, (a, b) in enumerate(zip(frames_of(run_dir), frames_of(reference), strict=True)):
        assert np.array_equal(a, b), f"frame {index} differs"
    # the depth cache carried over the kill: read back, not estimated again
    now = {path.name: path.stat().st_ino for path in (run_dir / "depth").glob("*.png")}
    assert all(now[name] == inode for name, inode in kept.items())
    log = (run_dir / "rotoscope.log").read_text().split("run folder:")[-1]
    estimated = int(log.split("depth: ")[1].split(" map(s) estimated")[0])
    assert estimated == FRAMES - len(kept)  # every map on disk read, the others made once
    maps, expected = depth_maps(run_dir), depth_maps(reference)
    assert len(maps) == FRAMES
    assert all(np.array_equal(maps[name], expected[name]) for name in maps)


def test_a_bad_lens_is_one_line_naming_the_key(job: list[str], tmp_path: Path) -> None:
    result = rotoscope(*job, "animation.fov=0:(70), 5:(180)", "name=bad", cwd=tmp_path)
    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error) == 1 and "animation.fov at frame 5: 180 degrees" in error[0]
    assert not (tmp_path / "outputs/bad/frames").exists()


def test_colours_follow_the_input_videos_frames(tiny_models, tiny_depth, tmp_path) -> None:
    """color_coherence=video with no video given follows the input's own frames (the
    chain carries them): each output is matched to its source frame, which joins its key."""
    from support.media import make_video

    clip = make_video(tmp_path / "clip.mp4", frames=6, size=(64, 64))
    args = [
        f"input.path={clip}", f"model.path={tiny_models.sd15}", f"paths.models={tiny_depth}",
        "runtime=cpu", "steps=2", "strength=0.3", "prompt=a path", "animation.mode=3d",
        "animation.depth.model=none", "animation.color_coherence=video",
        "animation.color_coherence_output=true", "stages=[plan,render]", "name=video",
    ]  # fmt: skip
    result = rotoscope(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = manifest_lines(tmp_path / "outputs/video")
    assert len(lines) == 6 and all(line["dependencies"] for line in lines)  # matched outputs
    assert len({line["dependencies"] for line in lines}) > 1  # a reference per source frame
