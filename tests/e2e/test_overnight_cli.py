"""Overnight-job safety with real processes: kill -9, resume, edits, locks, signals, queues."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.cli import start_stopping_at, wait_until_stopped
from support.cli_runner import cli_env, run_cli
from support.media import make_video
from support.run_files import frames_of, queue_of, report_of

from pipeline.errors import RotoscopeError
from pipeline.records.lock import RunLock
from pipeline.records.manifest import Manifest
from pipeline.records.report import frame_ranges
from pipeline.records.run_folder import RunFolder

FRAMES = 40


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(list(args), cwd, cli_env(cwd))


@pytest.fixture(scope="module")
def job_args(tiny_models, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    clip = make_video(tmp_path_factory.mktemp("clip") / "walk.mp4", frames=FRAMES, fps=12,
                      size=(128, 96))  # fmt: skip
    return (
        f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=8",
        "strength=0.75", "prompt=a watercolor street", "stages=[plan,render]",
    )  # fmt: skip


@pytest.fixture(scope="module")
def reference(job_args: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory) -> list:
    """The frames of an uninterrupted run."""
    work = tmp_path_factory.mktemp("reference")
    result = run(*job_args, "name=reference", cwd=work)
    assert result.returncode == 0, result.stderr
    return frames_of(work / "outputs/reference")


def assert_same_frames(run_dir: Path, reference: list) -> None:
    frames = frames_of(run_dir)
    assert len(frames) == len(reference) == FRAMES
    for index, (got, want) in enumerate(zip(frames, reference, strict=True)):
        assert np.array_equal(got, want), f"frame {index} differs"


def test_kill_9_then_resume_matches_an_uninterrupted_run(job_args, reference, tmp_path) -> None:
    """kill -9 at exactly 5 frames (the job stops itself there: support/stop_at_lines.py)."""
    proc = start_stopping_at(5, *job_args, "name=killed", cwd=tmp_path)
    run_dir = tmp_path / "outputs/killed"
    wait_until_stopped(proc)
    proc.kill()
    proc.communicate()
    assert len(Manifest(RunFolder(run_dir)).records) == 5
    lines = (run_dir / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == list(range(5))  # frame order
    resumed = run(*job_args, "name=killed", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    report = report_of(run_dir)
    assert report["reused"] == 5 and report["rendered"] == FRAMES - 5
    assert report["reasons"] == {"new": FRAMES - 5}
    assert not list((run_dir / "frames").glob(".*.tmp"))
    assert_same_frames(run_dir, reference)


def test_sigint_stops_after_the_frame_and_prints_the_resume_command(
    job_args, reference, tmp_path
) -> None:
    proc = start_stopping_at(3, *job_args, "name=stopped", cwd=tmp_path)
    run_dir = tmp_path / "outputs/stopped"
    wait_until_stopped(proc)
    proc.send_signal(signal.SIGINT)  # Ctrl-C at frame 3, taken when it goes on
    proc.send_signal(signal.SIGCONT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "stopped by SIGINT" in stderr and "Resume with:" in stderr
    resume_line = stderr.split("Resume with:")[1].strip().splitlines()[0]
    assert resume_line.startswith("rotoscope ") and "name=stopped" in resume_line
    report = report_of(run_dir)
    assert report["status"] == "interrupted" and report["resume_command"] == resume_line
    manifest = (run_dir / "manifest.jsonl").read_text().splitlines()
    assert 3 <= len(manifest) == report["rendered"] < FRAMES  # every finished frame recorded
    resumed = run(*job_args, "name=stopped", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_frames(run_dir, reference)


def test_a_second_process_on_the_same_folder_is_refused(job_args, tmp_path) -> None:
    first = start_stopping_at(1, *job_args, "name=busy", cwd=tmp_path)
    try:
        wait_until_stopped(first)  # holding the run folder's lock, one frame in
        second = run(*job_args, "name=busy", cwd=tmp_path)
        assert second.returncode == 2
        assert f"is in use by process {first.pid}" in second.stderr
    finally:
        first.kill()
        first.communicate()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path: Path, caplog) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    (tmp_path / ".lock").write_text(json.dumps({"pid": int(dead.stdout), "host": "h"}))
    with caplog.at_level("WARNING", logger="rotoscope"), RunLock(RunFolder(tmp_path).lock):
        pass
    assert f"left by process {int(dead.stdout)}" in caplog.text
    with (
        RunLock(RunFolder(tmp_path).lock),
        pytest.raises(RotoscopeError, match="in use by process"),
    ):
        RunLock(RunFolder(tmp_path).lock).__enter__()


def test_editing_one_keyframe_rerenders_exactly_the_frames_it_changes(tiny_models, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", frames=12, fps=12)
    keyframes = tmp_path / "anim.yaml"
    text = "prompts:\n  0: 'a forest'\n  6: 'a desert'\n  9: 'a sea'\n"
    keyframes.write_text(text)
    args = (f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=2",
            f"keyframes={keyframes}", "stages=[plan,render]")  # fmt: skip
    assert run(*args, cwd=tmp_path).returncode == 0
    before = {i: json.loads(line) for i, line in enumerate(
        (tmp_path / "outputs/clip/plan.jsonl").read_text().splitlines())}  # fmt: skip
    keyframes.write_text(text.replace("a desert", "a red desert"))
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    after = [json.loads(line) for line in (tmp_path / "outputs/clip/plan.jsonl").open()]
    changed = [i for i, row in enumerate(after) if row != before[i]]
    assert changed == [1, 2, 3, 4, 5, 6, 7, 8]  # blending toward, at and away from frame 6
    report = report_of(tmp_path / "outputs/clip")
    assert report["rendered_frames"] == frame_ranges(changed) == "1-8"
    assert report["reused"] == 4
    assert set(report["reasons"]) <= {
        "changed prompt",
        "changed prompt_to",
        "changed prompt_to, blend",
    }
    assert "8 rendered" in result.stderr and "4 reused" in result.stderr


def test_damaged_manifest_line_is_skipped_not_fatal(job_args, tmp_path) -> None:
    assert run(*job_args, "name=damaged", "input.max_frames=4", cwd=tmp_path).returncode == 0
    manifest = tmp_path / "outputs/damaged/manifest.jsonl"
    lines = manifest.read_text().splitlines()
    lines.insert(2, '{"index": 2, "fi')  # a torn line in the middle
    manifest.write_text("\n".join(lines) + "\n")
    result = run(*job_args, "name=damaged", "input.max_frames=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "skipping damaged line 3" in result.stderr
    assert report_of(tmp_path / "outputs/damaged")["reused"] == 4


def test_multirun_keeps_going_past_a_failing_job(tiny_models, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "good.mp4", frames=2, fps=12)
    missing = tmp_path / "missing.mp4"
    result = run("-m", f"input.path={clip},{missing}", f"model.path={tiny_models.sd15}",
                 "runtime=cpu", "steps=2", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1
    queue = queue_of(tmp_path / "outputs")
    assert [job["status"] for job in queue] == ["done", "failed"]
    assert Path(queue[0]["outputs"][0]).is_file()
    assert "missing.mp4" in queue[1]["error"]
    assert "queue: 2 jobs, 1 done, 1 failed" in result.stderr


# -- simulated resource faults (in process) ------------------------------------------------
