"""A local queue loads its model once: model-load time of an N-job queue against N loads.

What is measured: one ``rotoscope -m`` queue of ``--jobs`` jobs (a seed sweep over the
same clip, each job in its own run folder, Hydra's basic launcher running them one
after the other in one process). Every job's ``report.json`` records how long it spent
loading its model (``model_load_seconds``): the first job loads it, and each later job
that uses the same weights takes the model the job before kept loaded
(``pipeline/render/loading.py``). The baseline, measured in the same run, is the first
job's fresh load: without keeping the model, each of the N jobs would pay it.

    ratio = (sum of every job's load time) / (N x the first job's load time)

1/N is the ideal; 1.0 means every job loaded again. The queue's wall time and every
job's render time are printed too, and a check that the jobs' frames equal those of a
lone run of the last job (a kept model must make the frames a fresh one makes).

With the tiny model a load is well under a second; ``--model`` takes any diffusers
folder or checkpoint (a full-size SD 1.5 or SDXL is where the seconds are).

    .venv/bin/python scripts/bench_queue.py [--jobs 4] [--frames 4] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import PYTHON, add_common_options, bench_env, make_clip, timed_run, tiny_sd15

from pipeline.records.manifest import Manifest
from pipeline.records.run_folder import RunFolder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=4, help="jobs in the queue (default 4)")
    parser.add_argument("--frames", type=int, default=4, help="frames per job (default 4)")
    parser.add_argument("--model", type=Path, default=None, help="model (default: tiny SD 1.5)")
    parser.add_argument("--size", type=int, default=128, help="frame width (default 128)")
    add_common_options(parser)
    args = parser.parse_args()
    env = bench_env(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as scratch:
        tmp = Path(scratch)
        model = args.model or tiny_sd15(args.models, tmp, env)
        clip = make_clip(tmp / "clip.mp4", args.frames, 8, args.size, args.size * 3 // 4, env)
        seeds = ",".join(str(seed) for seed in range(1, args.jobs + 1))
        common = [
            f"input.path={clip}", f"model.path={model}", "runtime=cpu", "steps=4",
            "strength=0.5", "prompt=ink drawing", f"output.root={tmp / 'out'}",
            "stages=[plan,render]",
        ]  # fmt: skip
        queue = timed_run([PYTHON, "-m", "pipeline", "-m", *common, f"seed={seeds}"], env, tmp)
        if queue.proc.returncode != 0:
            raise SystemExit(queue.proc.stderr[-2000:])
        folders = sorted(
            (tmp / "out").glob("clip--seed=*"), key=lambda p: int(p.name.rpartition("=")[2])
        )
        reports = [json.loads((folder / "report.json").read_text()) for folder in folders]
        loads = [report["model_load_seconds"] or 0.0 for report in reports]
        alone = timed_run(
            [PYTHON, "-m", "pipeline", *common, f"seed={args.jobs}", "name=alone"], env, tmp
        )
        if alone.proc.returncode != 0:
            raise SystemExit(alone.proc.stderr[-2000:])
        same = frames(folders[-1]) == frames(tmp / "out/alone")
    print(f"queue of {args.jobs} jobs x {args.frames} frames, model {model}")
    print(f"{'job':>4} {'load s':>8} {'render s':>9}")
    for number, (load, report) in enumerate(zip(loads, reports, strict=True)):
        print(f"{number:>4} {load:>8.2f} {report['render_seconds']:>9.2f}")
    ratio = sum(loads) / (args.jobs * loads[0]) if loads[0] else float("nan")
    print(f"queue wall {queue.wall:.1f} s (other load {queue.other_load:.2f} cores)")
    print(f"model load: {sum(loads):.2f} s for {args.jobs} jobs, against {loads[0]:.2f} s each")
    print(f"ratio (queue loads / {args.jobs} fresh loads): {ratio:.3f} (ideal {1 / args.jobs:.3f})")
    print(f"last job's frames equal a lone run's: {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit(1)


def frames(run_dir: Path) -> list[bytes]:
    """The pixels of a run folder's current frames, in order."""
    records = Manifest(RunFolder(run_dir)).records
    return [
        np.asarray(Image.open(run_dir / records[index].file)).tobytes() for index in sorted(records)
    ]


if __name__ == "__main__":
    main()
