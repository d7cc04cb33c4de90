"""Pipeline overhead: the full rotoscope CLI against a bare diffusers loop doing the same job.

What is measured: the wall time of two whole processes that turn the same N frames of
the same clip into an mp4, with the tiny random-weight SD 1.5 model on CPU:

1. the CLI, ``python -m pipeline`` (config, probe and plan, model load, decode,
   img2img per frame, PNG with metadata and manifest per frame, mp4 encode with audio);
2. the bare loop, the minimum a user would write by hand for the same job: load
   ``StableDiffusionImg2ImgPipeline`` from the same folder with Euler a
   (``EulerAncestralDiscreteScheduler`` from the pipeline's own scheduler config),
   decode the clip with ``imageio_ffmpeg.read_frames``, call img2img per frame with the
   same prompt, steps, strength, CFG scale and seed (a fresh generator per frame), save
   plain PNGs, and encode an mp4 (same x264 settings, source audio) with ffmpeg.

Both are subprocesses timed from spawn to exit, so interpreter start, imports and model
load count on both sides; both run with the same environment and thread count
(``--threads``, default 1, which keeps timings stable on a small shared machine). Each
side runs ``--repeat`` times, alternating which goes first, and the medians are
compared: ``ratio = CLI / bare loop`` against the target (<= 1.10 by default).

The default size is 384x288 so that diffusion is most of the job: with the tiny model
each process spends about 6 s importing torch/diffusers and 1.4 s in interpreter exit
whatever the job, and at 256x192 (0.2 s per frame on one core) 24 frames are only 40%
of the wall time; at 384x288 (0.55 s per frame) they are about 60%.

Each timed run waits for the machine to be quiet first (``--idle-wait``), and the CPU
time of each process tree and the load other processes put on the machine meanwhile are
printed too, so a result distorted by a busy machine is visible as such.

Why: rotoscope's value is everything around the img2img call (reproducibility, resume,
metadata, audio); this checks that it does not cost noticeably more than doing the job
by hand. A phase table (from the run's rotoscope.log timestamps for the CLI, from
timestamps the bare loop prints) shows where any difference goes, and ``--profile``
adds a cProfile of one extra CLI run.

    .venv/bin/python scripts/bench_overhead.py [--frames 24] [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import json
import pstats
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.records.manifest import Manifest
from pipeline.records.run_folder import RunFolder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (
    PYTHON,
    add_common_options,
    bench_env,
    cli_command,
    first_event,
    log_events,
    make_clip,
    median,
    print_table,
    run_in_tempdir,
    timed_run,
    tiny_sd15,
    wait_for_quiet,
)

# The hand-written job. Kept as plain as a user would write it; the only additions are
# the timestamps printed as one JSON line at the end (for the phase table).
BARE_LOOP = """\
import json, subprocess, sys, time
t_start = time.time()
from pathlib import Path

import imageio_ffmpeg
import torch
from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionImg2ImgPipeline
from PIL import Image

clip, model, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
prompt, steps, strength = sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
seed, guidance, max_frames = int(sys.argv[7]), float(sys.argv[8]), int(sys.argv[9])
t_imported = time.time()

pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
    model, safety_checker=None, requires_safety_checker=False
)
pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
pipe.set_progress_bar_config(disable=True)
t_loaded = time.time()

(out / "frames").mkdir(parents=True, exist_ok=True)
reader = imageio_ffmpeg.read_frames(clip)
meta = next(reader)
width, height = meta["size"]
count = 0
for index, raw in enumerate(reader):
    if index >= max_frames:
        break
    frame = Image.frombytes("RGB", (width, height), raw)
    generator = torch.Generator("cpu").manual_seed(seed)
    image = pipe(
        prompt=prompt,
        image=frame,
        strength=strength,
        guidance_scale=guidance,
        num_inference_steps=steps,
        generator=generator,
    ).images[0]
    image.save(out / "frames" / f"{index:06d}.png")
    count += 1
reader.close()
t_rendered = time.time()

subprocess.run(
    [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
        "-framerate", str(meta["fps"]), "-i", str(out / "frames" / "%06d.png"),
        "-i", clip, "-map", "0:v", "-map", "1:a?", "-t", str(count / meta["fps"]),
        "-c:v", "libx264", "-crf", "18", "-preset", "medium", "-pix_fmt", "yuv420p",
        "-c:a", "aac", str(out / "bare.mp4"),
    ],
    check=True,
)
t_encoded = time.time()
print(json.dumps({
    "start": t_start, "imported": t_imported, "loaded": t_loaded,
    "rendered": t_rendered, "encoded": t_encoded, "frames": count,
}))
"""

# "to model ready" is spawn to a loaded pipeline: interpreter, imports (the CLI imports
# torch and diffusers lazily, inside its model load) and the load itself; for the CLI it
# includes Hydra's config composition and the plan stage, shown again on their own.
PHASES = ("to model ready", "  CLI config + plan", "render loop", "encode", "exit")


@dataclass
class Sample:
    """One timed process: wall and CPU seconds, phases (NaN where unknown), others' load."""

    wall: float
    cpu: float
    other_load: float  # cores used by processes not ours during the run
    phases: dict[str, float] = field(default_factory=dict)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=24, help="frames rendered (default 24)")
    parser.add_argument("--width", type=int, default=384, help="frame width (default 384)")
    parser.add_argument("--height", type=int, default=288, help="frame height (default 288)")
    parser.add_argument("--fps", type=int, default=24, help="clip frame rate (default 24)")
    parser.add_argument("--steps", type=int, default=10, help="sampler steps (default 10)")
    parser.add_argument("--strength", type=float, default=0.5, help="img2img strength (0.5)")
    parser.add_argument("--guidance", type=float, default=7.0, help="CFG scale (default 7)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--prompt", default="watercolor painting, soft light")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side (default 3)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed runs per side first (default 1)"
    )
    parser.add_argument("--target", type=float, default=1.10, help="max ratio (default 1.10)")
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=15.0,
        help="before each timed run, wait up to this many seconds for other processes on "
        "the machine to go quiet (default 15; 0: do not wait)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile one CLI run and print the top"
    )
    add_common_options(parser)
    args = parser.parse_args()
    if args.width % 8 or args.height % 8:
        parser.error("--width and --height must be multiples of 8 (the CLI would resize)")

    run_in_tempdir("bench_overhead_", args.keep, run, args)


def run(args: argparse.Namespace, tmp: Path) -> bool:
    env = bench_env(args.threads)
    model = tiny_sd15(args.models, tmp, env)
    clip = make_clip(tmp / "clip.mp4", args.frames, args.fps, args.width, args.height, env)
    bare_script = tmp / "bare_loop.py"
    bare_script.write_text(BARE_LOOP)
    job = dict(
        prompt=args.prompt, steps=args.steps, strength=args.strength,
        seed=args.seed, guidance=args.guidance,
    )  # fmt: skip
    counter = {"cli": 0, "bare": 0}

    def cli() -> Sample:
        counter["cli"] += 1
        name = f"cli{counter['cli']}"  # a fresh run folder: nothing is reused
        cmd = cli_command(clip, model, tmp / "runs", name, max_frames=args.frames, **job)
        return time_cli(cmd, env, tmp, tmp / "runs" / name)

    def bare() -> Sample:
        counter["bare"] += 1
        out = tmp / f"bare{counter['bare']}"
        cmd = [
            PYTHON, str(bare_script), str(clip), str(model), str(out), args.prompt,
            str(args.steps), str(args.strength), str(args.seed), str(args.guidance),
            str(args.frames),
        ]  # fmt: skip
        return time_bare(cmd, env, tmp)

    print(
        f"bench_overhead: {args.frames} frames {args.width}x{args.height}, steps {args.steps}, "
        f"strength {args.strength}, Euler a, tiny sd15, OMP_NUM_THREADS={args.threads}, "
        f"{args.warmup} warmup + {args.repeat} timed runs per side",
        flush=True,
    )
    for _ in range(args.warmup):
        cli()
        bare()
    samples: dict[str, list[Sample]] = {"cli": [], "bare": []}
    for index in range(args.repeat):
        order = ("cli", "bare") if index % 2 == 0 else ("bare", "cli")
        for side in order:
            waited = wait_for_quiet(args.idle_wait) if args.idle_wait > 0 else 0.0
            sample = cli() if side == "cli" else bare()
            samples[side].append(sample)
            print(
                f"  run {index + 1} {side:4s} wall {sample.wall:6.2f} s, cpu {sample.cpu:6.2f} s,"
                f" model ready at {sample.phases['to model ready']:5.2f} s, other load"
                f" {sample.other_load:4.2f} cores (waited {waited:.0f} s for quiet)",
                flush=True,
            )

    check_same_frames(tmp / "runs" / f"cli{counter['cli']}", tmp / f"bare{counter['bare']}")
    ok = report(args, samples)
    if args.profile:
        profile_cli(cli_command(clip, model, tmp / "runs", "profiled", max_frames=args.frames,
                                **job), env, tmp)  # fmt: skip
    return ok


def time_cli(cmd: list[str], env: dict[str, str], cwd: Path, run_dir: Path) -> Sample:
    """Wall time of one CLI process, and its phases from the run's log timestamps."""
    run = timed_run(cmd, env, cwd)
    start, end, proc = run.start, run.end, run.proc
    if proc.returncode != 0:
        raise SystemExit(f"CLI failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    events = log_events(run_dir / "rotoscope.log")
    t_plan = first_event(events, "plan:")
    t_loaded = first_event(events, " on cpu")
    t_rendered = first_event(events, "render: ")
    t_video = first_event(events, "video:")
    phases = {
        "to model ready": _span(start, t_loaded),
        # interpreter, CLI imports, Hydra composing the config, probe and plan
        "  CLI config + plan": _span(start, t_plan),
        "render loop": _span(t_loaded, t_rendered),
        "encode": _span(t_rendered, t_video),
        "exit": _span(t_video, end),
    }
    return Sample(run.wall, run.cpu, run.other_load, phases)


def time_bare(cmd: list[str], env: dict[str, str], cwd: Path) -> Sample:
    """Wall time of one bare-loop process, and its phases from the times it prints."""
    run = timed_run(cmd, env, cwd)
    start, end, proc = run.start, run.end, run.proc
    if proc.returncode != 0:
        raise SystemExit(f"bare loop failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    t = json.loads(proc.stdout.strip().splitlines()[-1])
    phases = {
        "to model ready": _span(start, t["loaded"]),
        "  CLI config + plan": float("nan"),
        "render loop": _span(t["loaded"], t["rendered"]),
        "encode": _span(t["rendered"], t["encoded"]),
        "exit": _span(t["encoded"], end),
    }
    return Sample(run.wall, run.cpu, run.other_load, phases)


def _span(a: float | None, b: float | None) -> float:
    return float("nan") if a is None or b is None else b - a


def check_same_frames(cli_run: Path, bare_out: Path) -> None:
    """Both sides must have done the same work: compare their first and last frames."""
    records = Manifest(RunFolder(cli_run)).records  # frames are stored by key
    cli_frames = [cli_run / records[index].file for index in sorted(records)]
    bare_frames = sorted((bare_out / "frames").glob("*.png"))
    if len(cli_frames) != len(bare_frames) or not cli_frames:
        print(f"WARNING: frame counts differ: CLI {len(cli_frames)}, bare {len(bare_frames)}")
        return
    worst = 0
    for a, b in ((cli_frames[0], bare_frames[0]), (cli_frames[-1], bare_frames[-1])):
        pa = np.asarray(Image.open(a).convert("RGB"), dtype=np.int16)
        pb = np.asarray(Image.open(b).convert("RGB"), dtype=np.int16)
        worst = max(worst, int(np.abs(pa - pb).max()) if pa.shape == pb.shape else 255)
    note = "same work" if worst <= 2 else "WARNING: the two sides render different images"
    print(f"same job check: {len(cli_frames)} frames each, max pixel difference {worst} ({note})")


def report(args: argparse.Namespace, samples: dict[str, list[Sample]]) -> bool:
    cli_wall = median([s.wall for s in samples["cli"]])
    bare_wall = median([s.wall for s in samples["bare"]])
    print()
    print("median seconds per phase")
    rows = []
    for phase in PHASES:
        c = median([s.phases[phase] for s in samples["cli"]])
        b = median([s.phases[phase] for s in samples["bare"]])
        rows.append([phase, c, b, c - b])
    rows.append(["whole process (wall)", cli_wall, bare_wall, cli_wall - bare_wall])
    print_table(["phase", "CLI", "bare loop", "CLI - bare"], rows)
    print()
    n = args.frames
    cli_loop = median([s.phases["render loop"] for s in samples["cli"]])
    bare_loop = median([s.phases["render loop"] for s in samples["bare"]])
    print_table(
        ["per frame (s)", "CLI", "bare loop"],
        [
            ["wall / frames", cli_wall / n, bare_wall / n],
            ["render loop / frames", cli_loop / n, bare_loop / n],
        ],
    )
    print(f"all runs, wall s: CLI {_runs(samples['cli'])}; bare loop {_runs(samples['bare'])}")
    cli_cpu = median([s.cpu for s in samples["cli"]])
    bare_cpu = median([s.cpu for s in samples["bare"]])
    fastest = min(s.wall for s in samples["cli"]) / min(s.wall for s in samples["bare"])
    print(f"CPU time (median): CLI {cli_cpu:.2f} s, bare loop {bare_cpu:.2f} s, "
          f"ratio {cli_cpu / bare_cpu:.2f}; fastest runs: ratio {fastest:.2f}")  # fmt: skip
    load = max(s.other_load for side in samples.values() for s in side)
    if load > 0.25:
        print(
            f"WARNING: other processes kept up to {load:.2f} cores busy during timed runs; "
            "wall times are inflated unevenly, rerun on a quiet machine"
        )
    ratio = cli_wall / bare_wall
    verdict = "PASS" if ratio <= args.target else "FAIL"
    print(f"ratio: {ratio:.2f} (CLI / bare loop; target <= {args.target:.2f}) {verdict}")
    return verdict == "PASS"


def _runs(samples: list[Sample]) -> str:
    return ", ".join(f"{s.wall:.2f}" for s in samples)


def profile_cli(cmd: list[str], env: dict[str, str], cwd: Path, top: int = 25) -> None:
    """cProfile one more CLI run (python -m cProfile -m pipeline) and print the top."""
    prof = cwd / "cli.prof"
    cmd = [cmd[0], "-m", "cProfile", "-o", str(prof), *cmd[1:]]
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"profile run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        return
    print()
    print(f"cProfile of one CLI run, top {top} by cumulative time:")
    stats = pstats.Stats(str(prof), stream=sys.stdout)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top // 2)


if __name__ == "__main__":
    main()
