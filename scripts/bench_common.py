"""Shared helpers of the benchmark scripts (bench_overhead.py, bench_memory.py).

Not a benchmark itself: building the tiny models and sample clips in a temp folder,
the environment both sides of a comparison run under, the CLI command line, the run
log's timestamps, and table printing.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
PYTHON = sys.executable


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every benchmark takes: threads, model folder, temp folder handling."""
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OMP_NUM_THREADS / MKL_NUM_THREADS of every measured process (default 1: on a "
        "small shared machine one thread per process keeps timings stable; an OpenMP pool "
        "as wide as the machine slows down many times over when anything else runs)",
    )
    parser.add_argument(
        "--models",
        type=Path,
        default=None,
        help="folder made by make_tiny_models.py to reuse (default: build one in the temp dir)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder and print it")


def bench_env(threads: int) -> dict[str, str]:
    """The environment of every measured process, identical on both sides.

    Thread counts are pinned (torch sizes its pool from them), the hub is offline (no
    network probe on either side), and this checkout comes first on the import path so
    the CLI measured is the code here, whatever is installed.
    """
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")])),
    )
    return env


def run_quiet(
    cmd: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> str:
    """Run a setup command; its stdout, or its stderr tail in the exception."""
    proc = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc.stdout


def tiny_sd15(models: Path | None, tmp: Path, env: dict[str, str]) -> Path:
    """The tiny SD 1.5 diffusers folder: ``models/sd15`` or one built under ``tmp``."""
    if models is None:
        models = tmp / "models"
        run_quiet([PYTHON, str(SCRIPTS / "make_tiny_models.py"), "--out", str(models)], env=env)
    folder = models / "sd15"
    if not (folder / "model_index.json").is_file():
        raise SystemExit(f"{folder} is not a diffusers folder (run make_tiny_models.py)")
    return folder


def make_clip(
    path: Path, frames: int, fps: int, width: int, height: int, env: dict[str, str]
) -> Path:
    """A test-pattern clip with audio holding exactly ``frames`` frames at ``fps``."""
    run_quiet(
        [
            PYTHON, str(SCRIPTS / "make_sample_clip.py"), str(path),
            "--seconds", f"{frames / fps:.6f}", "--fps", str(fps),
            "--width", str(width), "--height", str(height),
        ],
        env=env,
    )  # fmt: skip
    return path


def cli_command(
    clip: Path,
    model: Path,
    out_root: Path,
    name: str,
    *,
    prompt: str,
    steps: int,
    strength: float,
    seed: int,
    guidance: float,
    max_frames: int | None = None,
) -> list[str]:
    """``python -m pipeline`` with everything the benchmarks pin, in a fresh run folder."""
    cmd = [
        PYTHON, "-m", "pipeline",
        f"input.path={clip}", f"model.path={model}", "runtime=cpu",
        f"prompt={prompt}", f"steps={steps}", f"strength={strength}", f"seed={seed}",
        f"guidance_scale={guidance}", "sampler=euler_a",
        f"output.root={out_root}", f"name={name}",
    ]  # fmt: skip
    if max_frames is not None:
        cmd.append(f"input.max_frames={max_frames}")
    return cmd


@dataclass
class TimedRun:
    """One measured process: wall and CPU seconds, and what else the machine did meanwhile."""

    proc: subprocess.CompletedProcess[str]
    start: float  # epoch seconds, just before the spawn
    end: float  # epoch seconds, just after the exit
    cpu: float  # user + sys seconds of the process and all its children
    others: float  # CPU seconds other processes on the machine used meanwhile (NaN: unknown)

    @property
    def wall(self) -> float:
        return self.end - self.start

    @property
    def other_load(self) -> float:
        """Average number of cores busy with other work during the run."""
        return self.others / self.wall if self.wall > 0 else float("nan")


def timed_run(cmd: Sequence[str], env: dict[str, str], cwd: Path) -> TimedRun:
    """Run ``cmd`` to the end (output captured) and time it.

    CPU time comes from getrusage(RUSAGE_CHILDREN) before and after (runs are
    sequential, so the difference is this process tree); "others" is the machine's busy
    CPU time from /proc/stat minus that, i.e. load from processes that are not ours.
    """
    before = _children_cpu()
    busy = machine_busy_seconds()
    start = time.time()
    proc = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True)
    end = time.time()
    busy_after = machine_busy_seconds()
    cpu = _children_cpu() - before
    others = float("nan")
    if busy is not None and busy_after is not None:
        others = max(0.0, busy_after - busy - cpu)
    return TimedRun(proc, start, end, cpu, others)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores spent busy since boot (Linux /proc/stat; None elsewhere)."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_wait: float, threshold: float = 0.25) -> float:
    """Wait (at most ``max_wait`` s) until other processes use < ``threshold`` cores for
    two seconds in a row; the seconds waited. No-op where /proc/stat is missing."""
    started = time.monotonic()
    quiet = 0
    while time.monotonic() - started < max_wait:
        first = machine_busy_seconds()
        if first is None:
            break
        time.sleep(1.0)
        second = machine_busy_seconds()
        quiet = quiet + 1 if second is not None and second - first < threshold else 0
        if quiet >= 2:
            break
    return time.monotonic() - started


def log_events(log_file: Path) -> list[tuple[float, str]]:
    """(epoch seconds, message) for each line of a run's ``rotoscope.log``."""
    events: list[tuple[float, str]] = []
    if not log_file.is_file():
        return events
    for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        except ValueError:
            continue  # traceback or continuation line
        events.append((stamp.timestamp(), line[24:]))
    return events


def first_event(events: list[tuple[float, str]], needle: str) -> float | None:
    """Time of the first logged message that contains ``needle``."""
    return next((t for t, message in events if needle in message), None)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain, aligned text table (first column left, the others right)."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(parts).rstrip()

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "-" if value != value else f"{value:.2f}"  # NaN: not measured
    return str(value)


def run_in_tempdir(
    prefix: str, keep: bool, body: Callable[[argparse.Namespace, Path], bool], args
) -> None:
    """Run ``body(args, tmp)`` in a fresh temp folder (kept with --keep); exit 1 on FAIL."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        ok = body(args, tmp)
    finally:
        if keep:
            print(f"kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if ok else 1)
