"""The CLI as end-to-end tests call it: a finished run, a running process, its output."""

from __future__ import annotations

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


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """The CLI started in a fresh interpreter (to signal or kill it while it runs)."""
    return subprocess.Popen(command(*args), cwd=cwd, env=cli_env(cwd), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


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
