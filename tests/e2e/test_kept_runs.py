"""Never lose a render, end to end through the command line (issue 9's defects).

Run folders never collide, a new look never destroys the last one, and the edges
(unwritable folders, long names, typos, odd prompts, photo folders) end in one line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import ROOT
from support.cli import command, rotoscope
from support.cli_runner import cli_env
from support.media import make_video, write_image
from support.run_files import frame_files, frames_of, preview_plan, queue_of, report_of


def clip_at(path: Path, frames: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return make_video(path, frames=frames, fps=8)


def one_error_line(result) -> str:
    """The run failed as a user error: exit 2, one ``error:`` line, no traceback."""
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture
def base(tiny_models) -> tuple[str, ...]:
    return (f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=2", "strength=0.5")


def test_same_named_inputs_never_share_a_run_folder(base, tmp_path: Path) -> None:
    a = clip_at(tmp_path / "shotA" / "take01.mp4", 2)
    b = clip_at(tmp_path / "shotB" / "take01.mp4", 3)
    first = rotoscope(f"input.path={a}", *base, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    video_a = tmp_path / "outputs/take01/take01.mp4"
    made_a = video_a.read_bytes()
    second = rotoscope(f"input.path={b}", *base, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == str(tmp_path / "outputs/take01-shotB/take01-shotB.mp4")
    assert f"holds the run of {a}" in second.stderr and "3 rendered (3 new)" in second.stderr
    assert video_a.read_bytes() == made_a  # shotA's result is untouched
    again = rotoscope(f"input.path={a}", *base, cwd=tmp_path)  # shotA finds its own folder
    assert "0 rendered; 2 reused" in again.stderr and again.stdout.strip() == str(video_a)
    queue = rotoscope("-m", f"input.path={a},{b}", *base, "seed=3", cwd=tmp_path)
    assert queue.returncode == 0, queue.stderr
    jobs = queue_of(tmp_path / "outputs")
    # only the input differs between the two jobs: each lands in its input's folder
    names = [Path(job["run_dir"]).name for job in jobs]
    assert names == ["take01", "take01-shotB"]
    assert len({job["outputs"][0] for job in jobs}) == 2


def test_a_prompt_sweep_gets_one_folder_per_prompt(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=2, fps=8)
    dawn = (  # long enough that cutting the folder name short would merge the two jobs
        "masterpiece, best quality, highly detailed watercolor painting, intricate details, "
        "sharp focus, soft golden light, trending on artstation, of a misty mountain "
    )
    sweep = f'prompt=choice("{dawn}village at dawn","{dawn}village at night")'
    result = rotoscope("-m", f"input.path={clip}", sweep, "stages=[plan]", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = queue_of(tmp_path / "outputs")
    folders = [Path(job["run_dir"]) for job in jobs]
    assert len(set(folders)) == 2 and all(f.name.startswith("clip--prompt=") for f in folders)
    prompts = [preview_plan(folder)[0]["prompt"] for folder in folders]
    assert prompts == [f"{dawn}village at dawn", f"{dawn}village at night"]


def test_a_new_look_keeps_the_last_one_and_going_back_is_instant(base, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=3, fps=8)
    run_dir = tmp_path / "outputs/clip"
    cat = rotoscope(f"input.path={clip}", *base, "prompt=a cat", cwd=tmp_path)
    assert cat.returncode == 0, cat.stderr
    report = report_of(run_dir)
    assert report["model_load_seconds"] > 0  # the load is not frame time:
    assert report["seconds_per_frame"] * 3 <= report["seconds"] - report["model_load_seconds"]
    cat_video, cat_frames = (run_dir / "clip.mp4").read_bytes(), frames_of(run_dir)
    dog = rotoscope(f"input.path={clip}", *base, "prompt=a dog", cwd=tmp_path)
    assert "3 rendered (3 changed prompt)" in dog.stderr
    kept = Path(report_of(run_dir)["previous_outputs"][0])
    assert kept.parent == run_dir / "history" and kept.read_bytes() == cat_video
    assert f"previous clip.mp4 kept as history/{kept.name}" in dog.stderr
    assert report_of(run_dir)["history_bytes"] > len(cat_video)  # the cat frames, too
    assert "kept history" in dog.stderr.splitlines()[-1]
    back = rotoscope(f"input.path={clip}", *base, "prompt=a cat", cwd=tmp_path)
    assert "0 rendered; 3 reused" in back.stderr and "loading model" not in back.stderr
    assert all(np.array_equal(a, b) for a, b in zip(frames_of(run_dir), cat_frames, strict=True))
    dry = rotoscope_prune("--dry-run", str(run_dir), cwd=tmp_path)
    assert dry.stdout.count("earlier look\n") == 3 and "would free" in dry.stderr
    assert dry.stdout.count("earlier look's thumbnail\n") == 6  # frame and source, each
    assert len(list((run_dir / "frames").glob("*.png"))) == 6
    pruned = rotoscope_prune(str(tmp_path / "outputs"), cwd=tmp_path)
    assert pruned.returncode == 0 and "freed" in pruned.stderr
    assert sorted((run_dir / "frames").glob("*.png")) == sorted(frame_files(run_dir))
    kept_videos = sorted((run_dir / "history").glob("*.mp4"))
    assert len(kept_videos) == 2  # deliverables stay by default, each with its sidecar
    assert all((video.parent / f"{video.name}.json").is_file() for video in kept_videos)
    final = rotoscope(f"input.path={clip}", *base, "prompt=a cat", cwd=tmp_path)
    assert "0 rendered; 3 reused" in final.stderr


def rotoscope_prune(*args: str, cwd: Path):
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pipeline.cli.prune", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_an_unwritable_output_folder_is_one_line(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=2, fps=8)
    (tmp_path / "afile").write_text("not a folder")
    line = one_error_line(rotoscope(f"input.path={clip}", "output.root=afile/out", cwd=tmp_path))
    assert "afile is not a folder" in line and "output.root" in line
    (tmp_path / "outputs/clip/rotoscope.log").mkdir(parents=True)  # a log that cannot open
    line = one_error_line(rotoscope(f"input.path={clip}", "stages=[plan]", cwd=tmp_path))
    assert "cannot write run folder" in line and "rotoscope.log" in line
    queue = rotoscope("-m", f"input.path={clip}", "output.root=afile/out", cwd=tmp_path)
    assert "afile is not a folder" in one_error_line(queue)


# Dropping root to an unprivileged user, for the commands of one test.
UNPRIVILEGED = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def as_unprivileged_user() -> list[str]:
    """The prefix that runs a command as a user the permission bits bind: none when the
    tests already run as one; ``setpriv`` to ``nobody`` as root (who writes into
    read-only folders, as CI's containers run). Skips only where root cannot drop
    privileges here, saying why."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root, and setpriv (util-linux) is not installed to drop it")
    probe = subprocess.run(
        [*UNPRIVILEGED, sys.executable, "-c", "import pipeline"], cwd="/", env=cli_env(Path("/")),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"running as root, and user nobody cannot run this Python: {probe.stderr}")
    return UNPRIVILEGED


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder another user can reach (pytest's own are private to the user running it)."""
    folder = Path(tempfile.mkdtemp(prefix="rotoscope-read-only-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for path in (folder, *folder.rglob("*")):
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(folder)


def test_a_read_only_output_folder_is_one_line(shared_folder: Path) -> None:
    """Run as a user the folders' permission bits bind (nobody, when the tests run as
    root): a run folder that cannot be written, and an output root where none can be
    made, each end in one line naming the problem, with nothing written."""
    prefix = as_unprivileged_user()
    work = shared_folder
    clip = make_video(work / "clip.mp4", frames=2, fps=8)
    clip.chmod(0o644)
    (work / "outputs/clip").mkdir(parents=True)
    for folder in (work / "outputs/clip", work / "outputs"):
        folder.chmod(0o555)

    def rotoscope_as_user(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, *command(*args)], cwd=work, env=cli_env(work),
                              capture_output=True, text=True, timeout=300, check=False)  # fmt: skip

    line = one_error_line(rotoscope_as_user(f"input.path={clip}", "stages=[plan]"))
    assert "cannot write run folder" in line and "Permission denied" in line
    line = one_error_line(rotoscope_as_user(f"input.path={clip}", "name=new"))
    assert "cannot write run folder" in line and "Permission denied" in line
    assert sorted(path.name for path in (work / "outputs").rglob("*")) == ["clip"]


def test_a_long_input_file_name_renders_to_the_end(base, tmp_path: Path) -> None:
    clip = make_video(tmp_path / ("y" * 251 + ".mp4"), frames=1, fps=8)
    result = rotoscope(f"input.path={clip}", *base, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    video = Path(result.stdout.strip())
    assert video.is_file() and len(video.name) < 120 and video.name.startswith("y" * 40)


def test_typos_and_bad_values_are_one_line_and_leave_no_folder(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=2, fps=8)
    cases = {
        "+strenght=0.9": "did you mean 'strength'?",
        "+input.widht=32": "did you mean 'input.width'?",
        "model=tinyy": "unknown model preset 'tinyy' (did you mean 'tiny'? choose from",
        "controlnet=[tiny_canny,cany]": "unknown controlnet preset 'cany'",
        "guidance_scale=5,7": "gives several values",
        "output.crf=100": "output.crf=100 is outside 0-51",
        "stages=[bogus]": "stages=['bogus'] is not a list",
        "input.width=7": "input.width is 7",
    }
    failures = []
    for override, needle in cases.items():
        result = rotoscope(f"input.path={clip}", "model=tiny", override, cwd=tmp_path)
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        if result.returncode != 2 or len(errors) != 1 or needle not in errors[0]:
            failures.append(f"{override}: rc={result.returncode} {result.stderr[-300:]!r}")
    unit = rotoscope(f"input.path={clip}", "controlnet=tiny_canny",
                     "controlnet.units.tiny_canny.wieght=0.5", cwd=tmp_path)  # fmt: skip
    assert "did you mean 'controlnet.units.tiny_canny.weight'?" in one_error_line(unit)
    assert not failures, "\n".join(failures)
    assert not (tmp_path / "outputs/clip").exists()  # a failed run leaves no empty folder


def test_prompts_pass_verbatim_and_keyframed_prompts_work_on_the_command_line(
    tmp_path: Path,
) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=8, fps=8)

    def plan(*args: str) -> list[dict]:
        result = rotoscope(f"input.path={clip}", "stages=[plan]", *args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return preview_plan(tmp_path / "outputs/clip")

    sign = 'a sign saying ${price}, "Starry Night" by van Gogh'
    assert plan(f"prompt={sign}")[0]["prompt"] == sign
    rows = plan('prompts={0: "Starry Night" by van Gogh, "oil", 4: a dog, (red:1.2)}')
    assert rows[0]["prompt"] == '"Starry Night" by van Gogh, "oil"'
    assert rows[4]["prompt"] == "a dog, (red:1.2)"
    rows = plan("prompt=a cat", "+prompts.6=a fox", "prompt_blend=none")
    assert [row["prompt"] for row in rows[5:7]] == ["a cat", "a fox"]


def test_a_photo_folder_keeps_each_images_size_and_orientation(base, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    write_image(photos / "a_land.png", np.full((48, 64, 3), 90, np.uint8))
    write_image(photos / "b_port.png", np.full((64, 40, 3), 160, np.uint8))
    (photos / "notes.txt").write_text("not an image")
    result = rotoscope(f"input.path={photos}", *base, "output=images", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = Path(result.stdout.strip())
    assert Image.open(out / "a_land.png").size == (64, 48)
    assert Image.open(out / "b_port.png").size == (40, 64)  # portrait, not cropped
    assert result.stderr.count("notes.txt") == 1  # warned once, not per stage
    video = rotoscope(f"input.path={photos}", *base, "stages=[plan]", cwd=tmp_path)
    assert "1 of 2 images (b_port.png) differ in size or orientation" in video.stderr


def test_a_repeated_still_is_numbered_and_one_frame_is_one_frame(base, tmp_path: Path) -> None:
    write_image(tmp_path / "still.png", np.full((48, 64, 3), 90, np.uint8))
    still = f"input.path={tmp_path / 'still.png'}"
    repeated = rotoscope(still, "input.repeat=3", *base, "output=images", cwd=tmp_path)
    assert repeated.returncode == 0, repeated.stderr
    names = sorted(p.name for p in Path(repeated.stdout.strip()).iterdir())
    assert names == ["000000.png", "000001.png", "000002.png"]
    once = rotoscope(still, *base, "name=once", cwd=tmp_path)
    assert "1 frame of" in once.stderr and "(1 frame at" in once.stderr
    assert not re.search(r"(?<![\d.])1 frames", once.stderr)  # a rate may read "17.81 frames/s"


def test_a_repeated_bad_frame_is_reported_as_repeated(base, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for name in ("1.png", "3.png"):
        write_image(photos / name, np.full((48, 64, 3), 90, np.uint8))
    (photos / "2.png").write_bytes(b"not a png")
    result = rotoscope(f"input.path={photos}", *base, "input.on_bad_frame=repeat",
                       "stages=[plan,render]", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 repeated (bad input)" in result.stderr and "skipped" not in result.stderr
    report = report_of(tmp_path / "outputs/photos")
    assert (report["repeated"], report["skipped"]) == (1, 0)
