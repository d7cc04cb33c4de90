"""Peak memory of the CLI: does a 10x longer clip need more memory? It should not.

What is measured: the peak resident set size (RSS) of a full ``python -m pipeline`` run
(plan, render, assemble to mp4 with audio; tiny random-weight SD 1.5 model on CPU) on a
short clip and on a long clip of the same size and content type (default 60 and 600
frames of 64x64 at 24 fps, steps 2, strength 0.5). Frames are streamed from ffmpeg,
written one by one and streamed again into the encoder, so memory should not depend on
the clip's length: the target is ``long <= short + 64 MiB``.

How: each CLI run is started by a fresh wrapper process that waits for it and then
reads ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``: the kernel's own high-water
mark of the largest process in the tree below it (the CLI's Python process; its ffmpeg
children are waited for too and are far smaller). That peak is exact, not sampled, and
a fresh wrapper per run keeps runs from seeing each other's peaks. When psutil happens
to be installed (it is not a dependency) the tree is also sampled every 0.1 s, which
adds the sum over the whole tree (CLI + ffmpeg) and the CLI's RSS right after the model
is loaded and at the end of the render loop, so growth during rendering shows apart from
the fixed cost of imports and the model. ``--also 300 1200`` measures more lengths, to
see how memory scales when the target is missed.

    .venv/bin/python scripts/bench_memory.py [--short 60] [--long 600] [--also N ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (
    PYTHON,
    add_common_options,
    bench_env,
    cli_command,
    first_event,
    log_events,
    make_clip,
    print_table,
    run_in_tempdir,
    tiny_sd15,
)

MIB = 1024 * 1024

# Runs the command given after the two file arguments, waits, and writes the kernel's
# peak RSS of the waited-for process tree (ru_maxrss: KiB on Linux, bytes on macOS).
WRAPPER = """\
import json, resource, subprocess, sys
result, output = sys.argv[1], sys.argv[2]
with open(output, "wb") as fh:
    rc = subprocess.call(sys.argv[3:], stdout=fh, stderr=subprocess.STDOUT)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
peak *= 1 if sys.platform == "darwin" else 1024
with open(result, "w") as fh:
    json.dump({"rc": rc, "peak_bytes": peak}, fh)
"""


@dataclass
class Measurement:
    frames: int
    seconds: float
    peak: float  # MiB, ru_maxrss
    tree_peak: float = float("nan")  # MiB, sampled sum over the tree (psutil)
    after_load: float = float("nan")  # MiB, CLI process right after the model loaded
    render_max: float = float("nan")  # MiB, CLI process, highest sample in the render loop
    end_render: float = float("nan")  # MiB, CLI process at the end of the render loop
    samples: list[tuple[float, float, float]] = field(default_factory=list)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", type=int, default=60, help="frames of the short clip (60)")
    parser.add_argument("--long", type=int, default=600, help="frames of the long clip (600)")
    parser.add_argument(
        "--also", type=int, nargs="*", default=[], help="more clip lengths to measure (frames)"
    )
    parser.add_argument("--width", type=int, default=64, help="frame width (default 64)")
    parser.add_argument("--height", type=int, default=64, help="frame height (default 64)")
    parser.add_argument("--fps", type=int, default=24, help="clip frame rate (default 24)")
    parser.add_argument("--steps", type=int, default=2, help="sampler steps (default 2)")
    parser.add_argument("--strength", type=float, default=0.5, help="img2img strength (0.5)")
    parser.add_argument("--prompt", default="watercolor painting, soft light")
    parser.add_argument(
        "--limit", type=float, default=64.0, help="allowed growth in MiB (default 64)"
    )
    add_common_options(parser)
    args = parser.parse_args()

    run_in_tempdir("bench_memory_", args.keep, run, args)


def run(args: argparse.Namespace, tmp: Path) -> bool:
    env = bench_env(args.threads)
    model = tiny_sd15(args.models, tmp, env)
    wrapper = tmp / "peak_rss.py"
    wrapper.write_text(WRAPPER)
    sampling = _psutil() is not None
    print(
        f"bench_memory: {args.width}x{args.height} at {args.fps} fps, steps {args.steps}, "
        f"strength {args.strength}, tiny sd15, OMP_NUM_THREADS={args.threads}; peak RSS by "
        f"getrusage{' + psutil sampling' if sampling else ' (psutil not installed: no sampling)'}",
        flush=True,
    )
    lengths = sorted({args.short, args.long, *args.also})
    results: dict[int, Measurement] = {}
    for frames in lengths:
        clip = make_clip(tmp / f"clip{frames}.mp4", frames, args.fps, args.width, args.height, env)
        name = f"len{frames}"
        cmd = cli_command(
            clip, model, tmp / "runs", name, prompt=args.prompt, steps=args.steps,
            strength=args.strength, seed=42, guidance=7.0,
        )  # fmt: skip
        results[frames] = measure(wrapper, cmd, env, tmp, tmp / "runs" / name, frames)
        m = results[frames]
        print(f"  {frames:5d} frames: peak {m.peak:7.1f} MiB, {m.seconds:6.1f} s", flush=True)

    print()
    rows = []
    for frames in lengths:
        m = results[frames]
        rows.append([
            frames, m.seconds, m.peak, m.tree_peak, m.after_load, m.render_max, m.end_render,
        ])  # fmt: skip
    print_table(
        [
            "frames", "wall s", "peak RSS", "tree sum (sampled)", "CLI after load",
            "CLI max in render", "CLI end of render",
        ],
        rows,
    )  # fmt: skip
    print("(MiB; peak RSS: kernel high-water mark of the largest process, the CLI itself)")
    if len(lengths) > 2:
        first, last = results[lengths[0]], results[lengths[-1]]
        slope = (last.peak - first.peak) / (last.frames - first.frames) * 100
        print(f"peak RSS grows {slope:.2f} MiB per 100 frames ({first.frames}..{last.frames})")
    short, long = results[args.short].peak, results[args.long].peak
    difference = long - short
    verdict = "PASS" if difference <= args.limit else "FAIL"
    print(
        f"short ({args.short} frames): {short:.1f} MiB; long ({args.long} frames): {long:.1f} MiB"
    )
    print(
        f"difference: {difference:.1f} MiB "
        f"(target: long within {args.limit:g} MiB of short) {verdict}"
    )
    return verdict == "PASS"


def measure(
    wrapper: Path, cmd: list[str], env: dict[str, str], tmp: Path, run_dir: Path, frames: int
) -> Measurement:
    """One CLI run inside a fresh wrapper: exact peak, and samples if psutil is there."""
    result, output = tmp / f"peak{frames}.json", tmp / f"cli{frames}.log"
    start = time.time()
    proc = subprocess.Popen(
        [PYTHON, str(wrapper), str(result), str(output), *cmd], env=env, cwd=tmp
    )
    samples: list[tuple[float, float, float]] = []
    sampler = threading.Thread(target=_sample_tree, args=(proc, samples), daemon=True)
    sampler.start()
    proc.wait()
    sampler.join()
    seconds = time.time() - start
    data = json.loads(result.read_text()) if result.is_file() else {"rc": proc.returncode}
    if data.get("rc") != 0 or proc.returncode != 0:
        tail = output.read_text(errors="replace")[-3000:] if output.is_file() else ""
        raise SystemExit(f"CLI run of {frames} frames failed ({data.get('rc')}):\n{tail}")
    m = Measurement(frames, seconds, data["peak_bytes"] / MIB, samples=samples)
    if samples:
        m.tree_peak = max(total for _, total, _ in samples)
        events = log_events(run_dir / "rotoscope.log")
        loaded, rendered = first_event(events, " on cpu"), first_event(events, "render: ")
        m.after_load = _cli_rss_at(samples, loaded)
        m.end_render = _cli_rss_at(samples, rendered)
        if loaded is not None and rendered is not None:
            during = [rss for t, _, rss in samples if loaded <= t <= rendered]
            m.render_max = max(during, default=float("nan"))
    return m


def _psutil() -> ModuleType | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil


def _sample_tree(proc: subprocess.Popen[bytes], samples: list[tuple[float, float, float]]) -> None:
    """(time, RSS sum over the tree below the wrapper, RSS of the CLI's Python) every 0.1 s."""
    psutil = _psutil()
    if psutil is None:
        return
    try:
        wrapper = psutil.Process(proc.pid)
    except psutil.Error:
        return
    while proc.poll() is None:
        total = main_rss = 0.0
        try:
            children = wrapper.children(recursive=True)
        except psutil.Error:
            break
        for child in children:
            try:
                rss = child.memory_info().rss / MIB
            except psutil.Error:
                continue
            total += rss
            if child.ppid() == proc.pid:  # the CLI itself; the others are its ffmpegs
                main_rss = rss
        samples.append((time.time(), total, main_rss))
        time.sleep(0.1)


def _cli_rss_at(samples: list[tuple[float, float, float]], when: float | None) -> float:
    """The CLI's RSS in the last sample taken at or before ``when`` (log time, ms)."""
    if when is None:
        return float("nan")
    before = [rss for t, _, rss in samples if t <= when + 0.001]
    return before[-1] if before else float("nan")


if __name__ == "__main__":
    main()
