"""Speed and scale end to end: batches, Ray workers (on the CPU) and submitit queues.

Every run is a real ``python -m pipeline`` process; Ray runs start a local Ray of their
own (two one-thread CPU workers) and shut it down.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import psutil
import pytest
from support.cli import start_stopping_at, wait_until_stopped
from support.cli_runner import cli_env, run_cli
from support.media import make_video, write_image
from support.run_files import frames_of, manifest_lines, queue_of, report_of
from support.waits import wait_for_exit

from pipeline.plan.rows import read_plan
from pipeline.records.manifest import Manifest
from pipeline.records.run_folder import RunFolder

# one test process runs every Ray test: ``ray_address=auto`` must find this file's
# cluster, not a local Ray another test process started meanwhile
pytestmark = pytest.mark.xdist_group("ray")

FRAMES = 30


def env(home: Path) -> dict[str, str]:
    return {**cli_env(home), "OMP_NUM_THREADS": "1"}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(list(args), cwd, env(cwd))


def kill_session(proc: subprocess.Popen[str]) -> None:
    """Whatever of the run is left, when a test fails half-way."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def assert_frames_equal(run_dir: Path, reference: list[np.ndarray]) -> None:
    frames = frames_of(run_dir)
    assert len(frames) == len(reference)
    for index, (got, want) in enumerate(zip(frames, reference, strict=True)):
        assert np.array_equal(got, want), f"frame {index} differs"


def assert_in_frame_order(run_dir: Path) -> None:
    indices = [line["index"] for line in manifest_lines(run_dir)]
    assert indices == sorted(indices), indices


@pytest.fixture(scope="module")
def args(tiny_models, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    clip = make_video(tmp_path_factory.mktemp("clip") / "walk.mp4", frames=FRAMES, fps=12,
                      size=(128, 96))  # fmt: skip
    return (
        f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=6",
        "strength=0.75", "prompt=a watercolor street", "stages=[plan,render]",
    )  # fmt: skip


@pytest.fixture(scope="module")
def reference(args: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory) -> list:
    """One process, batch 1: the frames every other run is held to."""
    work = tmp_path_factory.mktemp("reference")
    result = run(*args, "name=reference", cwd=work)
    assert result.returncode == 0, result.stderr
    assert_in_frame_order(work / "outputs/reference")
    return frames_of(work / "outputs/reference")


def test_batch_4_matches_batch_1_within_1_of_255_and_keeps_its_keys(args, reference, tmp_path):
    result = run(*args, "name=batched", "render.batch_size=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "outputs/batched"
    assert_in_frame_order(run_dir)
    for got, want in zip(frames_of(run_dir), reference, strict=True):
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    again = run(*args, "name=batched", "render.batch_size=1", cwd=tmp_path)  # another size
    assert again.returncode == 0, again.stderr
    assert report_of(run_dir)["reused"] == FRAMES and report_of(run_dir)["rendered"] == 0


@contextlib.contextmanager
def ray_cluster(tmp_path: Path) -> Iterator[None]:
    """A one-machine Ray cluster (``ray start --head``, two CPUs), in a session of its
    own that is killed at the end."""
    with socket.socket() as probe:
        probe.bind(("", 0))
        port = probe.getsockname()[1]
    ray = [sys.executable, "-m", "ray.scripts.scripts"]  # the ray command, wherever it is
    head = subprocess.Popen(
        [*ray, "start", "--head", f"--port={port}", "--num-cpus=2", "--block",
         "--include-dashboard=false", "--disable-usage-stats"],
        env=env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        output = ""
        assert head.stdout is not None
        while "Ray runtime started" not in output:
            line = head.stdout.readline()
            assert line, output
            output += line
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.communicate()


def test_coherence_segments_and_cadence_spans_render_on_a_ray_cluster_like_in_one_process(
    args, tmp_path
) -> None:
    """Coherence segments are units of work; so are cadence's diffused frames (one chain)
    and each span carried between them: on two workers, the frames of one process."""
    chained = (*args, "coherence=full", "coherence.reanchor_every=4", "input.max_frames=8",
               "steps=4", "render.batch_size=2")  # fmt: skip
    carried = (*args, "coherence=full", "cadence.every=3", "input.max_frames=7", "steps=4")
    local = run(*chained, "name=local", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    assert "render.batch_size=2: coherence renders each segment's frames in order" in local.stderr
    assert run(*carried, "name=cadence_local", cwd=tmp_path).returncode == 0
    with ray_cluster(tmp_path):  # joined as on a cluster node: ray_address=auto
        spread = run(*chained, "name=spread", "runtime.ray_address=auto", "runtime.workers=2",
                     cwd=tmp_path)  # fmt: skip
        cadence = run(*carried, "name=cadence_spread", "runtime.ray_address=auto",
                      "runtime.workers=2", cwd=tmp_path)  # fmt: skip
    assert spread.returncode == 0, spread.stderr
    assert report_of(tmp_path / "outputs/spread")["device"] == "ray: 2 workers (cpu, cpu)"
    assert_in_frame_order(tmp_path / "outputs/spread")
    assert_frames_equal(tmp_path / "outputs/spread", frames_of(tmp_path / "outputs/local"))
    assert cadence.returncode == 0, cadence.stderr
    spread_cadence = tmp_path / "outputs/cadence_spread"
    assert report_of(spread_cadence)["device"] == "ray: 2 workers (cpu, cpu)"
    diffused = [row.index for row in read_plan(RunFolder(spread_cadence)) if row.diffused]
    assert diffused == [0, 3, 6]
    assert_frames_equal(spread_cadence, frames_of(tmp_path / "outputs/cadence_local"))


def session_processes(session: int) -> list[psutil.Process]:
    """The live processes of session ``session``: a job started in a session of its own,
    with everything it started (Ray's gcs_server, raylet, agents and workers included)."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getsid(process.pid) == session and running(process):
                found.append(process)
    return found


def running(process: psutil.Process) -> bool:
    """Whether ``process`` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def render_workers(session: int) -> list[psutil.Process]:
    """The Ray actor processes of the run started in session ``session``."""
    workers = []
    for process in session_processes(session):
        with contextlib.suppress(psutil.Error):
            if process.cmdline()[:1] and process.cmdline()[0].startswith("ray::RenderWorker"):
                workers.append(process)
    return workers


def wait_until_gone(processes: list[psutil.Process]) -> None:
    """Block until none of ``processes`` runs (told by pidfds, see support.waits),
    failing with those left after the wait's bound."""
    left = set(wait_for_exit(process.pid for process in processes))
    assert not left, "still running: " + ", ".join(describe(p) for p in processes if p.pid in left)


def describe(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return f"{process.pid} {process.name()}"
    return str(process.pid)


def folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: size and modification time (ns)."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def processes_in(folder: Path) -> list[str]:
    """Processes anywhere on the machine working in ``folder`` or holding a file in it."""
    inside = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            paths = [process.cwd(), *(opened.path for opened in process.open_files())]
            if any(Path(path).is_relative_to(folder) for path in paths):
                inside.append(describe(process))
    return inside


def test_ray_workers_survive_a_dead_worker_ctrl_c_and_a_killed_driver(args, reference, tmp_path):
    """2 workers: one is killed at frame 4 (its frames go to the other), Ctrl-C stops the
    job at frame 10; a resumed run's driver alone is killed 4 frames on, and every
    process it started ends with it, writing nothing more; a third run completes (in one
    process). The frames are those of one process, in one manifest in frame order. The
    driver stops itself at those frames (support/stop_at_lines.py), so each signal lands
    at a known frame. (It runs after the cluster test, whose dead cluster Ray still
    lists: a local Ray starts anyway.)"""
    run_dir = tmp_path / "outputs/ray"
    proc = start_stopping_at([4, 10], *args, "name=ray", "runtime.workers=2", cwd=tmp_path,
                             env=env(tmp_path), new_session=True)  # fmt: skip
    try:
        wait_until_stopped(proc)
        os.kill(render_workers(proc.pid)[0].pid, signal.SIGKILL)
        proc.send_signal(signal.SIGCONT)
        wait_until_stopped(proc)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGCONT)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 130, stderr
        assert "Resume with:" in stderr and "runtime.workers=2" in stderr
        wait_until_gone(session_processes(proc.pid))  # Ray stopped with the job
    finally:
        kill_session(proc)
    log = (run_dir / "rotoscope.log").read_text()
    assert "ray: 2 workers ready" in log
    assert "died" in log and "unfinished frames go to another worker" in log
    first = finished_count(run_dir)
    assert 10 <= first < FRAMES
    assert report_of(run_dir)["device"] == "ray: 2 workers (cpu, cpu)"

    proc = start_stopping_at(len(manifest_lines(run_dir)) + 4, *args, "name=ray",
                             "runtime.workers=2", cwd=tmp_path, env=env(tmp_path),
                             new_session=True)  # fmt: skip
    try:
        wait_until_stopped(proc)
        started = [p for p in session_processes(proc.pid) if p.pid != proc.pid]
        names = [describe(p) for p in started]
        assert any("raylet" in name for name in names) and len(render_workers(proc.pid)) == 2
        proc.kill()  # the driver only
        proc.communicate()
        wait_until_gone(started)
        assert not session_processes(proc.pid), "the job's session started something new"
        written = folder_state(run_dir)
        assert not processes_in(run_dir)
        assert folder_state(run_dir) == written  # nothing wrote into the run folder since
    finally:
        kill_session(proc)
    done = finished_count(run_dir)
    assert done == first + 4
    assert_in_frame_order(run_dir)

    resumed = run(*args, "name=ray", cwd=tmp_path)  # any worker count resumes
    assert resumed.returncode == 0, resumed.stderr
    report = report_of(run_dir)
    assert report["reused"] == done and report["rendered"] == FRAMES - done
    assert_in_frame_order(run_dir)  # one writer: one manifest, in frame order
    assert_frames_equal(run_dir, reference)


def test_a_multirun_queue_runs_on_the_submitit_local_launcher(tiny_models, tmp_path) -> None:
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        write_image(tmp_path / f"{name}.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    result = run(
        "-m", "hydra/launcher=submitit_local", f"input.path={tmp_path}/a.png,{tmp_path}/b.png",
        f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=2", "prompt=ink",
        "stages=[plan,render]", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "queue: 2 jobs, 2 done, 0 failed" in result.stderr
    queue = queue_of(tmp_path / "outputs")
    folders = [Path(job["run_dir"]) for job in queue]
    assert [folder.name.split("--")[0] for folder in folders] == ["a", "b"]
    for folder in folders:  # one job per run folder, each with its frame
        assert report_of(folder)["rendered"] == 1 and len(frames_of(folder)) == 1
    # the queue's page, kept by the job processes and the launcher: each job done, linked
    (page,) = (tmp_path / "outputs/queues").glob("*/queue.html")
    html = page.read_text()
    assert html.count("data-state='done'") == 2
    assert all(f"{quote(folder.name)}/report.html" in html for folder in folders)
    # submitit's own job logs are in the queue's folder, not among the run folders
    assert [path.parent.parent.name for path in (tmp_path / "outputs").glob("*/*/.submitit")] == [
        "queues"
    ]


def finished_count(run_dir: Path) -> int:
    """Frames of the run's plan that are on disk and in its manifest."""
    folder = RunFolder(run_dir)
    return len(Manifest(folder).finished(read_plan(folder))[0])
