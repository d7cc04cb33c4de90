"""Temporal coherence: cross-frame attention, chained frames, their keys, resume, presets."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from support.cli import rotoscope
from support.media import make_pan_folder
from support.run_files import frames_of


@pytest.fixture(scope="module")
def pan_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frame sequence (a folder of PNGs) panning over a texture: 8 frames, 64x64."""
    return make_pan_folder(tmp_path_factory.mktemp("pan") / "pan", frames=8)


@pytest.fixture(scope="module")
def pan_video(pan_folder: Path) -> Path:
    """The pan as an mp4 (near-lossless), for coherence on a video input."""
    from pipeline.ffmpeg_exe import ffmpeg_exe

    video = pan_folder.parent / "pan.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-framerate", "12", "-i", str(pan_folder / "%03d.png"),
         "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", str(video)],
        check=True,
    )  # fmt: skip
    return video


# --- cross-frame attention ---


# --- through the command line ---


def run(folder: Path, tiny_models, work: Path, *args: str) -> tuple[Path, dict]:
    """Render ``folder`` (a clip's frames) with the tiny model; the run folder and its
    report. The stages are named: a folder rendered as images is measured only then."""
    result = rotoscope(
        f"input.path={folder}", f"model.path={tiny_models.sd15}", "prompt=ink", "steps=4",
        "strength=0.5", "seed=5", "runtime=cpu", "output=images",
        "stages=[plan,render,assemble,metrics]", *args, cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    name = next(arg.split("=", 1)[1] for arg in args if arg.startswith("name="))
    run_dir = work / "outputs" / name
    return run_dir, json.loads((run_dir / "report.json").read_text())


def test_each_preset_renders_and_measures(pan_folder, tiny_models, tmp_path) -> None:
    warp_errors, frames = {}, {}
    for preset in ("none", "attention", "flow", "full"):
        run_dir, report = run(
            pan_folder, tiny_models, tmp_path, f"coherence={preset}", f"name={preset}"
        )
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert report["warp_error"] == pytest.approx(metrics["warp_error"])
        assert len(metrics["frames"]) == 7 and metrics["source_warp_error"] > 0
        warp_errors[preset] = metrics["warp_error"]
        rows = [json.loads(line) for line in (run_dir / "plan.jsonl").read_text().splitlines()]
        assert ("segment_start" in rows[1]) == (preset != "none")
        attention_files = list((run_dir / "coherence").glob("attention-*.safetensors"))
        # with the first frame as the only anchor, only it keeps a recording
        assert len(attention_files) == (1 if preset in ("attention", "full") else 0)
        frames[preset] = frames_of(run_dir)
    # cross-frame attention changes the frames (slightly: the tiny UNet's attention is
    # random, so it hardly depends on content)
    pairs = zip(frames["attention"], frames["none"], strict=True)
    assert any(not np.array_equal(a, b) for a, b in pairs)
    # carrying the previous frame along the flow is what steadies the tiny model
    assert warp_errors["flow"] < 0.75 * warp_errors["none"]
    assert warp_errors["full"] < 0.75 * warp_errors["none"]


def test_a_coherent_frame_depends_on_the_one_before(pan_folder, tiny_models, tmp_path) -> None:
    """Changing frame 3's strength alone re-renders frames 3-7 with coherence on (each
    carries the one before), frame 3 alone without it."""
    edited = "strength=0:(0.5), 3:(0.6), 4:(0.5)"
    for preset, expected in (("flow", "3-7"), ("none", "3")):
        name = f"name=dep_{preset}"
        run(pan_folder, tiny_models, tmp_path, f"coherence={preset}", name, "interpolation=hold")
        _, report = run(
            pan_folder, tiny_models, tmp_path, f"coherence={preset}", name, "interpolation=hold",
            edited,
        )  # fmt: skip
        assert report["rendered_frames"] == expected, preset


def test_editing_a_keyframe_rerenders_its_segment_only(pan_folder, tiny_models, tmp_path) -> None:
    keys = ["+prompts.0=ink", "+prompts.3=oil", "+prompts.6=chalk", "prompt_blend=none"]
    first, _ = run(pan_folder, tiny_models, tmp_path, "coherence=full", "name=k", *keys)
    assert "3 coherence segment(s)" in (first / "rotoscope.log").read_text()
    keys[1] = "+prompts.3=watercolor"
    _, report = run(pan_folder, tiny_models, tmp_path, "coherence=full", "name=k", *keys)
    assert report["rendered_frames"] == "3-5"


def test_a_mid_segment_render_rebuilds_the_previous_frames_state(
    pan_folder, tiny_models, tmp_path
) -> None:
    """With the previous frame as an anchor, only the latest frame's attention recording
    is kept; re-rendering from frame 5 replays frames 0-4 to rebuild frame 4's, and gives
    the frames a fresh run of the edited config gives."""
    both = ["coherence=full", "coherence.attention_anchors=both", "interpolation=hold"]
    edited = "strength=0:(0.5), 5:(0.6)"
    run_dir, _ = run(pan_folder, tiny_models, tmp_path, *both, "name=edit")
    assert len(list((run_dir / "coherence").glob("attention-*"))) == 2  # anchor and latest
    _, report = run(pan_folder, tiny_models, tmp_path, *both, "name=edit", edited)
    assert report["rendered_frames"] == "5-7"
    assert "rebuilding the state of frame 4" in (run_dir / "rotoscope.log").read_text()
    fresh, _ = run(pan_folder, tiny_models, tmp_path, *both, "name=fresh", edited)
    for a, b in zip(frames_of(run_dir), frames_of(fresh), strict=True):
        assert np.array_equal(a, b)


def test_kill_9_then_resume_matches_an_uninterrupted_run(pan_folder, tiny_models, tmp_path):
    """Killed at exactly 3 of 8 frames (the job stops itself there, see
    support/stop_at_lines.py): the resumed run reuses those 3 and renders the rest."""
    from support.cli import start_stopping_at, wait_until_stopped

    settings = ["coherence=full", "coherence.attention_anchors=both", "steps=8"]
    reference, _ = run(pan_folder, tiny_models, tmp_path, *settings, "name=whole")
    args = [
        f"input.path={pan_folder}", f"model.path={tiny_models.sd15}", "prompt=ink", "steps=4",
        "strength=0.5", "seed=5", "runtime=cpu", "output=images", *settings,
    ]  # fmt: skip
    proc = start_stopping_at(3, *args, "name=killed", cwd=tmp_path)
    wait_until_stopped(proc)
    proc.kill()
    proc.communicate()
    run_dir, report = run(pan_folder, tiny_models, tmp_path, *settings, "name=killed")
    assert (report["reused"], report["rendered"]) == (3, 5)
    for a, b in zip(frames_of(run_dir), frames_of(reference), strict=True):
        assert np.array_equal(a, b)


def test_full_coherence_with_sdxl_and_with_controlnet_on_a_video(
    pan_folder, pan_video, tiny_models, tiny_controlnets, tmp_path
) -> None:
    sdxl = rotoscope(
        f"input.path={pan_folder}", f"model.path={tiny_models.sdxl}", "prompt=ink", "steps=4",
        "runtime=cpu", "coherence=full", "name=xl", "input.max_frames=4", cwd=tmp_path,
    )  # fmt: skip
    assert sdxl.returncode == 0, sdxl.stderr
    control = rotoscope(
        f"input.path={pan_video}", f"model.path={tiny_models.sd15}", "prompt=ink", "steps=4",
        "runtime=cpu", "coherence=full", "name=cn", "input.max_frames=4",
        f"+controlnet.units.edges.model={tiny_controlnets.sd15}",
        "+controlnet.units.edges.preprocessor=canny", cwd=tmp_path,
    )  # fmt: skip
    assert control.returncode == 0, control.stderr
    for name in ("xl", "cn"):
        run_dir = tmp_path / f"outputs/{name}"
        assert json.loads((run_dir / "report.json").read_text())["rendered"] == 4
        # both engaged: the anchor's attention recording, every frame's fusion latents
        assert len(list((run_dir / "coherence").glob("attention-*"))) == 1
        assert len(list((run_dir / "coherence").glob("latents-*"))) == 4


def test_an_unreadable_image_keeps_its_frame_number_in_a_coherent_plan(
    pan_folder, tiny_models, tmp_path
) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(pan_folder, folder)
    (folder / "003.png").write_bytes(b"not a png")
    result = rotoscope(
        f"input.path={folder}", f"model.path={tiny_models.sd15}", "coherence=flow",
        "stages=[plan]", "name=broken", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "outputs/broken/preview/plan.jsonl").read_text().splitlines()) == 8


def test_coherence_with_loopback_is_refused_in_one_line(pan_folder, tiny_models, tmp_path):
    result = rotoscope(
        f"input.path={pan_folder}", f"model.path={tiny_models.sd15}", "coherence=full",
        "animation=loopback", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "coherence with animation.mode=loopback" in result.stderr.strip().splitlines()[-1]
