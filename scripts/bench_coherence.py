"""Benchmark temporal coherence: warp error, detail and motion per coherence preset.

    python scripts/bench_coherence.py [--frames 24] [--size 96] [--seed 42] [--steps 8]
        [--model PATH --runtime cuda]   # a real model on a GPU: the same table

Two synthetic clips with known motion, made offline (``pipeline.testing.synthetic``): a
pan (1.5 px right and 0.5 px down per frame) and a zoom (1.5% per frame) over a textured
image, written as frame sequences. Each is rendered through the ``rotoscope`` command with
the tiny SD 1.5 model, the same prompt, strength (0.5), guidance, sampler (Euler a) and
seed, once per preset (``coherence=none|attention|flow|full``); the metrics stage gives
each run's warp error (Lai et al. 2018, next to the source's own as the reference) and
detail. Printed per preset: warp error on each clip and their mean, seconds per frame,
the ratio of ``none``'s warp error to the preset's (target for ``full``: >= 3), detail as a
share of ``none``'s (target: >= 80%: a frozen or blurred video would score well on warp
error alone), and whether the output still moves with the source (below). The ratios
are measured in the same run.

Moves with the source: the masked error between consecutive outputs *without* warping,
divided by the warp error (with the source's motion). A picture that follows the motion
changes less along it than in place, a frozen one does not change in place at all:
frozen scores 0, a texture stuck to the screen about 0.3, and the ideal output (the
source through the tiny model's VAE) 0.96 on the zoom (an 8x-pooled picture barely
changes under a 1.5% zoom) to 2.5 on the pan. ``flow`` and ``full`` pass with 0.75 on both
clips (``attention`` changes nothing on the tiny model, whose random UNet's attention
ignores content, so it scores what ``none`` does).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench_common import PYTHON, bench_env, timed_run, tiny_sd15
from PIL import Image

from pipeline.animation.flow_cache import FlowCache
from pipeline.metrics.warp_error import pair_warp_error
from pipeline.records.manifest import Manifest
from pipeline.records.run_folder import RunFolder
from pipeline.testing.synthetic import pan_clip, zoom_clip

PRESETS = ("none", "attention", "flow", "full")
# The presets that carry earlier frames' pixels or latents along the flow: what could
# freeze or smear the picture, so what the motion check is for.
CARRYING = ("flow", "full")
PROMPT = "an oil painting of a landscape"
MOVES_THRESHOLD = 0.75
RATIO_TARGET, DETAIL_TARGET = 3.0, 0.80


@dataclass
class Result:
    """One preset on one clip."""

    warp_error: float
    source_warp_error: float
    detail: float
    moves: float
    seconds_per_frame: float


def write_clip(frames: list[np.ndarray], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{index:04d}.png")
    return folder


def moves_with_source(run_dir: Path, frames: int) -> float:
    """Masked in-place error of consecutive outputs over their warp error (see above)."""
    folder = RunFolder(run_dir)
    records = Manifest(folder).records
    outputs = [np.asarray(Image.open(run_dir / records[i].file)) for i in sorted(records)]
    flows = FlowCache(folder.flow_pair)
    in_place, along = [], []
    for index in range(1, frames):
        pair = flows.stored(index)
        assert pair is not None, f"no flow for frame {index} in {folder.flow}"
        previous, current = outputs[index - 1], outputs[index]
        error = pair_warp_error(previous, current, pair)
        if error is None:  # nothing reliable to compare
            continue
        along.append(error)
        mask = pair.reliable_previous
        squared = np.mean(((previous.astype(np.float32) - current) / 255.0) ** 2, axis=-1)
        in_place.append(float(squared[mask].mean()) if mask.any() else 0.0)
    return statistics.fmean(in_place) / max(statistics.fmean(along), 1e-12)


def render(
    clip: Path, model: Path | str, preset: str, out: Path, args: argparse.Namespace, env
) -> Result:
    name = f"{clip.name}-{preset}"
    cmd = [
        PYTHON, "-m", "pipeline", f"input.path={clip}", f"model.path={model}",
        f"runtime={args.runtime}",
        f"prompt={PROMPT}", f"steps={args.steps}", "strength=0.5", f"seed={args.seed}",
        "guidance_scale=7", "sampler=euler_a", f"coherence={preset}",
        f"input.fps={args.fps}", "stages=[plan,render,metrics]",
        f"output.root={out}", f"name={name}",
    ]  # fmt: skip
    run = timed_run(cmd, env, out)
    if run.proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}\n{run.proc.stderr[-2000:]}")
    run_dir = out / name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = json.loads((run_dir / "report.json").read_text())
    return Result(
        metrics["warp_error"],
        metrics["source_warp_error"],
        metrics["detail"],
        moves_with_source(run_dir, args.frames),
        report["seconds_per_frame"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=96, help="frame width and height")
    parser.add_argument("--steps", type=int, default=8, help="steps (x strength 0.5 run)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--fps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", type=Path, default=None, help="a make_tiny_models.py folder")
    parser.add_argument(
        "--model", default=None, help="any model.path to measure instead of the tiny SD 1.5"
    )
    parser.add_argument("--runtime", default="cpu", help="runtime preset: cpu, cuda or auto")
    args = parser.parse_args()
    env = bench_env(args.threads)
    with tempfile.TemporaryDirectory(prefix="rotoscope-bench-coherence-") as temp:
        tmp = Path(temp)
        model = args.model or tiny_sd15(args.models, tmp, env)
        size = dict(frames=args.frames, width=args.size, height=args.size)
        clips = {
            "pan": write_clip(pan_clip(velocity=(1.5, 0.5), **size).frames, tmp / "pan"),
            "zoom": write_clip(zoom_clip(rate=1.015, **size).frames, tmp / "zoom"),
        }
        results = {
            (clip, preset): render(path, model, preset, tmp, args, env)
            for clip, path in clips.items()
            for preset in PRESETS
        }
    report(results, args)


def report(results: dict[tuple[str, str], Result], args: argparse.Namespace) -> None:
    clips = sorted({clip for clip, _ in results})
    mean = {
        preset: statistics.fmean(results[clip, preset].warp_error for clip in clips)
        for preset in PRESETS
    }
    detail = {
        preset: statistics.fmean(
            results[clip, preset].detail / results[clip, "none"].detail for clip in clips
        )
        for preset in PRESETS
    }
    reference = statistics.fmean(results[clip, "none"].source_warp_error for clip in clips)
    print(
        f"{args.model or 'tiny SD 1.5'}, {args.frames} frames {args.size}x{args.size}, "
        "strength 0.5, "
        f"{args.steps} steps, Euler a, seed {args.seed}"
    )
    header = ["preset", *(f"warp {c}" for c in clips), "mean warp", "none/preset",
              "detail vs none", *(f"moves {c}" for c in clips), "s/frame"]  # fmt: skip
    rows = [["source (reference)", *(f"{results[c, 'none'].source_warp_error:.5f}" for c in clips),
             f"{reference:.5f}", "", "", *("" for _ in clips), ""]]  # fmt: skip
    for preset in PRESETS:
        rows.append([
            preset,
            *(f"{results[c, preset].warp_error:.5f}" for c in clips),
            f"{mean[preset]:.5f}",
            f"{mean['none'] / mean[preset]:.2f}x",
            f"{detail[preset]:.0%}",
            *(f"{results[c, preset].moves:.2f}" for c in clips),
            f"{statistics.fmean(results[c, preset].seconds_per_frame for c in clips):.3f}",
        ])  # fmt: skip
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    ratio = mean["none"] / mean["full"]
    moves = all(results[c, p].moves >= MOVES_THRESHOLD for c in clips for p in CARRYING)
    checks = {
        f"none/full warp error {ratio:.2f} >= {RATIO_TARGET:g}": ratio >= RATIO_TARGET,
        f"detail of every preset >= {DETAIL_TARGET:.0%} of none's": all(
            detail[p] >= DETAIL_TARGET for p in PRESETS
        ),
        f"flow and full still move with the source (>= {MOVES_THRESHOLD:g} on both clips)": moves,
    }
    for text, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {text}")


if __name__ == "__main__":
    main()
