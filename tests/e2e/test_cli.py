"""The ``rotoscope`` command end to end, in real processes, on the tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import ROOT
from support.cli import count_frames, probe_output, rotoscope
from support.media import make_image_folder, make_video, write_image
from support.run_files import frame_file, frame_files, frames_of, preview_plan

from pipeline.render.pngmeta import read_png_metadata

# End to end through the command line: each test renders in a subprocess.


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "dance.mp4", frames=8, fps=8, audio=True)


@pytest.fixture(scope="module")
def video_run(tiny_models, clip: Path, tmp_path_factory: pytest.TempPathFactory):
    """One full render of the clip, shared by the tests that inspect its results."""
    work = tmp_path_factory.mktemp("video_run")
    args = (
        f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu",
        "prompt=watercolor (painting:1.2)", "negative_prompt=blurry", "strength=0.6",
        "steps=4", "seed=7", "sampler=DPM++ 2M Karras", "output.root=outputs",
    )  # fmt: skip
    first = rotoscope(*args, cwd=work)
    return work, args, first


def test_video_renders_to_mp4_with_audio(video_run) -> None:
    work, _, result = video_run
    assert result.returncode == 0, result.stderr
    out = Path(result.stdout.strip().splitlines()[-1])
    assert out == work / "outputs/dance/dance.mp4"
    video = work / out
    assert count_frames(video) == 8
    info = probe_output(video)
    assert "Audio:" in info and "8 fps" in info and "bt709" in info
    run_dir = work / "outputs" / "dance"
    for name in ("config.yaml", "rotoscope.log", "plan.jsonl", "plan.csv", "manifest.jsonl"):
        assert (run_dir / name).is_file(), name
    log = (run_dir / "rotoscope.log").read_text()
    assert "render 8/8 frames (100%)" in log and "ETA" in log


def test_frames_carry_a1111_and_json_metadata(video_run) -> None:
    work, _, _ = video_run
    meta = read_png_metadata(frame_file(work / "outputs/dance", 3))
    lines = meta["parameters"].splitlines()
    assert lines[0] == "watercolor (painting:1.2)"
    assert lines[1] == "Negative prompt: blurry"
    assert "Steps: 4, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 7, Size: 64x48" in lines[2]
    assert "Denoising strength: 0.6" in lines[2]
    details = meta["rotoscope"]
    assert details["plan"]["index"] == 3 and details["source"]["index"] == 3
    assert details["source"]["time"] == pytest.approx(3 / 8)


def test_rerun_reuses_every_frame_and_same_config_gives_same_frames(video_run) -> None:
    work, args, _ = video_run
    before = frames_of(work / "outputs/dance")
    again = rotoscope(*args, cwd=work)
    assert again.returncode == 0, again.stderr
    assert "0 rendered, 8 reused" in again.stderr
    assert "loading model" not in again.stderr  # nothing to render: no weights loaded
    fresh = rotoscope(*args, "name=fresh", cwd=work)
    assert fresh.returncode == 0, fresh.stderr
    after = frames_of(work / "outputs/fresh")
    assert len(after) == 8
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_locked_seed_and_other_seed(video_run) -> None:
    work, args, _ = video_run
    other = rotoscope(*args, "seed=8", "name=seed8", "stages=[plan,render]", cwd=work)
    assert other.returncode == 0, other.stderr
    seven = frames_of(work / "outputs/dance")
    eight = frames_of(work / "outputs/seed8")
    assert not any(np.array_equal(a, b) for a, b in zip(seven, eight, strict=True))
    assert not (work / "outputs/seed8/seed8.mp4").exists()  # assemble was not asked for


def test_assemble_alone_reencodes_without_model(video_run) -> None:
    work, args, _ = video_run
    result = rotoscope(*args, "stages=[assemble]", "output=gif", "model.path=/nowhere", cwd=work)
    assert result.returncode == 0, result.stderr
    assert count_frames(work / "outputs/dance/dance.gif") == 8


def test_assemble_options_fps_and_no_audio(video_run) -> None:
    work, args, _ = video_run
    result = rotoscope(*args, "stages=[assemble]", "output.audio=false", "output.fps=4",
                       "output.crf=30", "name=dance", cwd=work)  # fmt: skip
    assert result.returncode == 0, result.stderr
    info = probe_output(work / "outputs/dance/dance.mp4")
    assert "Audio:" not in info and "4 fps" in info


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    quiet = rotoscope("input.path=nope.mp4", cwd=tmp_path)
    loud = rotoscope("input.path=nope.mp4", "runtime.verbose=true", cwd=tmp_path)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert loud.returncode != 0 and "Traceback" in loud.stderr and "nope.mp4" in loud.stderr


def test_folder_to_images_keeps_names(tiny_models, tmp_path: Path) -> None:
    make_image_folder(tmp_path / "photos", ["shot_10.jpg", "shot_2.png", "notes.txt"][:2])
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    result = rotoscope(
        f"input.path={tmp_path / 'photos'}", f"model.path={tiny_models.sd15_single}",
        f"model.config={tiny_models.sd15}", "runtime=cpu", "prompt=oil painting",
        "steps=2", "output=images", "input.width=32", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "notes.txt" in result.stderr  # skipped with a warning
    out = tmp_path / result.stdout.strip().splitlines()[-1]
    assert sorted(p.name for p in out.iterdir()) == ["shot_10.png", "shot_2.png"]
    assert Image.open(out / "shot_2.png").size == (32, 24)
    plan = [json.loads(line) for line in (tmp_path / "outputs/photos/plan.jsonl").open()]
    assert [row["index"] for row in plan] == [0, 1]
    # natural order: shot_2 is frame 0
    assert read_png_metadata(out / "shot_2.png")["rotoscope"]["source"]["name"] == "shot_2.png"


def test_sdxl_single_image_repeat_to_webm(tiny_models, tmp_path: Path) -> None:
    write_image(tmp_path / "still.png", np.full((48, 64, 3), 90, np.uint8))
    result = rotoscope(
        f"input.path={tmp_path / 'still.png'}", "input.repeat=3", "input.fps=6",
        f"model.path={tiny_models.sdxl}", "runtime=cpu", "prompt=a forest", "steps=2",
        "output=webm", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    video = tmp_path / result.stdout.strip().splitlines()[-1]
    assert video.suffix == ".webm" and count_frames(video) == 3


def test_plan_only_loads_no_model(tmp_path: Path, clip: Path) -> None:
    result = rotoscope(f"input.path={clip}", "model.path=/no/such/model", "stages=[plan]",
                       "input.every=2", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "outputs/dance/preview/plan.jsonl").read_text().splitlines()
    assert len(rows) == 4
    assert json.loads((tmp_path / "outputs/dance/preview/source.json").read_text())["fps"] == 4


def _bad_inputs(tmp: Path, clip: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / "empty").mkdir()
    (tmp / "texts").mkdir()
    (tmp / "texts" / "a.txt").write_text("x")
    (tmp / "zero").mkdir()
    (tmp / "zero" / "0.png").write_bytes(b"")
    (tmp / "broken.mp4").write_bytes(b"\x00\x01 definitely not a video" * 10)
    ok = [f"input.path={clip}", "stages=[plan]"]
    return {
        "missing path": ([f"input.path={tmp / 'nope.mp4'}"], "nope.mp4"),
        "empty folder": ([f"input.path={tmp / 'empty'}"], "empty"),
        "no images": ([f"input.path={tmp / 'texts'}"], "texts"),
        "zero-byte image": ([f"input.path={tmp / 'zero'}"], "0.png"),
        "unreadable video": ([f"input.path={tmp / 'broken.mp4'}"], "broken.mp4"),
        "unknown sampler": ([*ok, "sampler=Eulr"], "unknown sampler 'Eulr'"),
        "bad size": ([*ok, "input.width=-64"], "input.width"),
        "unknown key": ([*ok, "strenght=0.3"], "strenght"),
        "wrong type": ([*ok, "steps=many"], "steps"),
        "missing model": ([f"input.path={clip}", "model.path=./models/missing"], "models/missing"),
    }


def test_bad_input_is_one_line_exit_2(tmp_path: Path, clip: Path) -> None:
    failures = []
    for case, (args, needle) in _bad_inputs(tmp_path, clip).items():
        result = rotoscope(*args, "runtime=cpu", cwd=tmp_path)
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        if (
            result.returncode != 2
            or "Traceback" in result.stderr
            or len(errors) != 1
            or needle not in errors[0]
        ):
            failures.append(f"{case}: rc={result.returncode} stderr={result.stderr[-400:]!r}")
    assert not failures, "\n".join(failures)


KEYFRAMES = ROOT / "keyframes"


def test_keyframed_loopback_animation_from_a_still(tiny_models, tmp_path: Path) -> None:
    gradient = np.linspace(0, 255, 64 * 48 * 3).reshape(48, 64, 3).astype(np.uint8)
    write_image(tmp_path / "still.png", gradient)
    args = (
        f"input.path={tmp_path / 'still.png'}", "input.repeat=6", "input.fps=1",
        f"keyframes={KEYFRAMES / 'lighthouse_zoom.yaml'}", f"model.path={tiny_models.sd15}",
        "runtime=cpu", "steps=4", "output=gif",
    )  # fmt: skip
    result = rotoscope(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "6 frames" in result.stderr and "loopback" in result.stderr
    assert "3 prompt keyframe(s)" in result.stderr
    run_dir = tmp_path / "outputs/still"
    assert (run_dir / "plan.png").is_file()
    header = (run_dir / "plan.csv").read_text().splitlines()[0]
    assert "zoom" in header and "prompt_to" in header
    frames = frames_of(run_dir)
    assert len(frames) == 6 and count_frames(run_dir / "still.gif") == 6
    assert not np.array_equal(frames[2], frames[3])
    details = read_png_metadata(frame_file(run_dir, 4))["rotoscope"]
    plan = details["plan"]
    assert plan["seed"] == 46  # seed_behavior iter from the file: 42 + 4
    # keys at 0, 3s and 6s at 1 fps: frame 4 is a third of the way from dawn to night
    assert plan["prompt"].startswith("a lighthouse at dawn")
    assert plan["prompt_to"].startswith("a lighthouse under the northern lights")
    assert plan["blend"] == pytest.approx(1 / 3, abs=1e-6)
    assert details["source"]["loopback_from"] == 3
    config = (run_dir / "config.yaml").read_text()
    assert "mode: loopback" in config and "a lighthouse at dawn" in config  # recorded in full
    again = rotoscope(*args, "name=again", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert all(
        np.array_equal(a, b)
        for a, b in zip(frames, frames_of(tmp_path / "outputs/again"), strict=True)
    )


def test_plan_stage_with_keyframes_and_schedule_on_command_line(clip: Path, tmp_path: Path) -> None:
    result = rotoscope(
        f"input.path={clip}", f"keyframes={KEYFRAMES / 'seasons.yaml'}", "stages=[plan]",
        "guidance_scale=0:(5), 7:(9)", "seed_behavior=alternate", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = preview_plan(tmp_path / "outputs/dance")
    assert [r["guidance_scale"] for r in rows] == pytest.approx([5 + 4 * k / 7 for k in range(8)])
    assert [r["seed"] for r in rows[:3]] == [42, 43, 42]
    assert rows[0]["strength"] == pytest.approx(0.65) and rows[7]["strength"] == pytest.approx(0.45)
    assert rows[0]["prompt"].startswith("winter forest") and rows[0]["negative_prompt"].startswith(
        "people, text, blurry"
    )


def test_bad_schedule_fails_before_model_load_with_caret(clip: Path, tmp_path: Path) -> None:
    result = rotoscope(f"input.path={clip}", "strength=0:(0.5), 10:(sqr(t))",
                       "model.path=/no/model", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert "strength" in result.stderr and "sqr" in result.stderr and "^" in result.stderr
    assert "loading model" not in result.stderr and "Traceback" not in result.stderr


def test_presets_and_bundled_keyframes_work_from_any_folder(
    tiny_models, clip: Path, tmp_path: Path
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    (home / "models").mkdir(parents=True)
    (home / "models" / "tiny").symlink_to(tiny_models.sd15.parent)
    elsewhere.mkdir()
    result = rotoscope(
        f"input.path={clip}", "model=tiny", "keyframes=keyframes/seasons.yaml", "steps=4",
        "input.max_frames=2", "stages=[plan,render]", "name=anywhere", cwd=elsewhere,
        home=home,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(frame_files(home / "outputs/anywhere")) == 2
    assert not (elsewhere / "outputs").exists()


def test_a_repeated_still_sets_a_deforum_files_length(tmp_path: Path) -> None:
    """input.repeat on the command line wins over the imported file's input.max_frames."""
    still = write_image(tmp_path / "still.png", np.full((48, 64, 3), 90, np.uint8))
    settings = KEYFRAMES / "deforum_example_settings.txt"
    args = (f"input.path={still}", f"keyframes={settings}", "stages=[plan]")
    result = rotoscope(*args, "input.repeat=6", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(preview_plan(tmp_path / "outputs/still")) == 6
    assert "input.repeat=6 gives the animation's length" in result.stderr
    alone = rotoscope(*args, "name=alone", cwd=tmp_path)  # the file's max_frames otherwise
    assert alone.returncode == 0, alone.stderr
    assert len(preview_plan(tmp_path / "outputs/alone")) > 6


def test_in_betweens_of_photos_of_several_sizes_are_refused(tmp_path: Path) -> None:
    photos = tmp_path / "mixed"
    write_image(photos / "a.png", np.full((48, 64, 3), 90, np.uint8))
    write_image(photos / "b.png", np.full((64, 48, 3), 90, np.uint8))
    result = rotoscope(f"input.path={photos}", "output=images", "output.interpolate=2",
                       "stages=[plan]", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "holds images of 2 sizes" in result.stderr
