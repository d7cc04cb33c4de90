"""Scale-out and batching: the same frames with 1 and 2 Ray workers, batch 1 and 4.

What is measured: the full CLI (``python -m pipeline``) rendering the same 24 frames of
a clip with the tiny random-weight SD 1.5 model on the CPU, one thread per process
(``--threads``; each Ray worker is a process of its own and gets the same), in four
configurations measured in the same run:

* ``runtime.workers=1`` (this process) against ``runtime.workers=2`` (two Ray actors):
  target speed-up >= 1.6 on 2 cores;
* ``render.batch_size=1`` against ``render.batch_size=4`` (one process).

The rate compared is frames per second of *render time* (``report.json``:
``rendered / render_seconds``), which leaves out what does not grow with the clip:
starting Python, planning, starting Ray and loading the model in each worker, and
stopping Ray at the end (printed apart as "start/stop"). Whole-process wall time is
printed too. All runs render into fresh run folders and must produce the same frames
(batches within 1/255), which is checked. The load of other processes is printed:
measured for two seconds before each run ("before"), and during it ("during"; for Ray
runs this includes the workers themselves, whose CPU time Ray does not hand back to
the command). On a shared machine a busy neighbour halves what two workers can gain.

    .venv/bin/python scripts/bench_scale.py [--frames 24] [--size 256] [--steps 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (
    add_common_options,
    bench_env,
    cli_command,
    machine_busy_seconds,
    make_clip,
    median,
    print_table,
    run_in_tempdir,
    timed_run,
    tiny_sd15,
    wait_for_quiet,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from run_files import frames_of

CONFIGS = {
    "1 process, batch 1": ["runtime.workers=1", "render.batch_size=1"],
    "2 Ray workers, batch 1": ["runtime.workers=2", "render.batch_size=1"],
    "1 process, batch 4": ["runtime.workers=1", "render.batch_size=4"],
}


def body(args: argparse.Namespace, tmp: Path) -> bool:
    env = bench_env(args.threads)
    model = tiny_sd15(args.models, tmp, env)
    clip = make_clip(tmp / "clip.mp4", args.frames, 24, args.size, args.size, env)
    samples: dict[str, list[list[float]]] = {label: [] for label in CONFIGS}
    frames: dict[str, list[np.ndarray]] = {}
    for attempt in range(args.repeat):  # the configurations take turns
        for label, overrides in CONFIGS.items():
            wait_for_quiet(args.idle_wait)
            before = load_now()
            name = label.replace(" ", "").replace(",", "-") + f"-{attempt}"
            cmd = cli_command(
                clip, model, tmp / "outputs", name, prompt="a watercolor street",
                steps=args.steps, strength=0.5, seed=7, guidance=7.0,
            )  # fmt: skip
            run = timed_run([*cmd, "stages=[plan,render]", *overrides], env, tmp)
            if run.proc.returncode != 0:
                print(run.proc.stderr[-2000:])
                raise SystemExit(f"{label}: the CLI failed")
            report = json.loads((tmp / "outputs" / name / "report.json").read_text())
            render = report["render_seconds"]
            rate = report["rendered"] / render
            samples[label].append([run.wall, run.wall - render, render, rate, before,
                                   run.other_load])  # fmt: skip
            frames.setdefault(label, frames_of(tmp / "outputs" / name))
    medians = {
        label: [median([sample[n] for sample in runs]) for n in range(6)]
        for label, runs in samples.items()
    }
    rows = [[label, *values] for label, values in medians.items()]
    rates = {label: values[3] for label, values in medians.items()}
    print(f"{args.frames} frames, {args.size}x{args.size}, {args.steps} steps x 0.5, tiny SD 1.5 "
          f"on the CPU, {args.threads} thread(s) per process, median of {args.repeat} "
          f"run(s) each\n")  # fmt: skip
    print_table(
        [
            "configuration",
            "wall s",
            "start/stop s",
            "render s",
            "frames/s",
            "load before",
            "during",
        ],
        rows,
    )
    base = frames["1 process, batch 1"]
    same_workers = all(
        np.array_equal(a, b) for a, b in zip(base, frames["2 Ray workers, batch 1"], strict=True)
    )
    batch_gap = max(
        int(np.abs(a.astype(int) - b.astype(int)).max())
        for a, b in zip(base, frames["1 process, batch 4"], strict=True)
    )
    workers = rates["2 Ray workers, batch 1"] / rates["1 process, batch 1"]
    batching = rates["1 process, batch 4"] / rates["1 process, batch 1"]
    ok = workers >= args.target and same_workers and batch_gap <= 1
    print(f"\n2 workers / 1 process: {workers:.2f}x (target >= {args.target}x); frames "
          f"{'identical' if same_workers else 'DIFFER'}")  # fmt: skip
    print(f"batch 4 / batch 1: {batching:.2f}x; largest pixel difference {batch_gap}/255")
    print("PASS" if ok else "FAIL")
    return ok


def load_now(seconds: float = 2.0) -> float:
    """Cores other processes keep busy now (nothing of ours runs meanwhile)."""
    first = machine_busy_seconds()
    time.sleep(seconds)
    second = machine_busy_seconds()
    return float("nan") if first is None or second is None else (second - first) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--target", type=float, default=1.6)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each configuration")
    parser.add_argument(
        "--idle-wait", type=float, default=20.0, help="seconds to wait for a quiet machine"
    )
    add_common_options(parser)
    args = parser.parse_args()
    run_in_tempdir("rotoscope-bench-scale-", args.keep, body, args)


if __name__ == "__main__":
    main()
