"""The CLI as end-to-end tests call it: a finished run, a running process, its output."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from support.cli_runner import ForkedRun, cli_env, run_cli, start_cli


def rotoscope(*args: str, cwd: Path, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pipeline`` like a user would, offline, from ``cwd``, with ``home``
    (by default ``cwd``) as rotoscope's home, so run folders land in ``home/outputs``."""
    return run_cli(list(args), cwd, cli_env(home or cwd))


def command(*args: str) -> list[str]:
    """``python -m pipeline`` with ``args``, for a real process of its own."""
    return [sys.executable, "-m", "pipeline", *args]


def start_stopping_at(
    lines: int | list[int],
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    new_session: bool = False,
) -> subprocess.Popen[str]:
    """The CLI in a fresh interpreter that stops itself (SIGSTOP) each time its manifest
    reaches one of ``lines`` lines (``stop_at_lines.py``): wait for that with
    :func:`wait_until_stopped`, then signal it at exactly that frame, or ``SIGCONT`` it.
    ``new_session``: in a session of its own (every process it starts can be found)."""
    counts = ",".join(str(count) for count in ([lines] if isinstance(lines, int) else lines))
    hook = str(Path(__file__).with_name("stop_at_lines.py"))
    return subprocess.Popen(
        [sys.executable, hook, counts, *args], cwd=cwd, env=env or cli_env(cwd),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=new_session,
    )  # fmt: skip


def wait_until_stopped(proc: subprocess.Popen[str], timeout: float = 120) -> None:
    """Block until ``proc`` (from :func:`start_stopping_at`) has stopped itself; fail with
    its output if it ended instead. It polls, but asserts nothing about timing: the
    deadline only keeps a hung job from hanging the suite."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status = os.waitpid(proc.pid, os.WUNTRACED | os.WNOHANG)
        if pid and os.WIFSTOPPED(status):
            return
        if pid:  # it ended: hand its status to Popen, which can no longer collect it
            proc.returncode = os.waitstatus_to_exitcode(status)
            _, stderr = proc.communicate()
            raise AssertionError(
                f"the job ended (exit {proc.returncode}) before it stopped:\n{stderr}"
            )
        assert time.monotonic() < deadline, "the job neither stopped nor ended in time"
        time.sleep(0.05)


def probe_output(path: Path) -> str:
    """What ffmpeg says about a media file (its stream lines)."""
    from pipeline.ffmpeg_exe import ffmpeg_exe

    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    return result.stderr


def count_frames(path: Path) -> int:
    """The number of frames in a video."""
    import imageio_ffmpeg

    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


def start_forked(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> ForkedRun | subprocess.Popen[str]:
    """The CLI started in a process of its own forked from the test's CLI server (no
    interpreter start-up), to be signalled while it runs; ``env`` is added to the run's
    environment."""
    return start_cli(list(args), cwd, {**cli_env(cwd), **(env or {})})


def log_of(run_dir: Path) -> str:
    """What the run folder's log holds so far ("" before the job opened it)."""
    path = run_dir / "rotoscope.log"
    return path.read_text(errors="replace") if path.exists() else ""


def wait_for_log(
    run_dir: Path, text: str, proc: ForkedRun | subprocess.Popen[str], timeout: float = 120
) -> None:
    """Block until the run's log holds ``text`` (the process must still run)."""
    deadline = time.monotonic() + timeout
    while text not in log_of(run_dir):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"{text!r} never reached the log"
        time.sleep(0.02)
