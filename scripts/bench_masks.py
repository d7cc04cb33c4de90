"""Masked rendering: time per frame with ``mask.area=full`` against ``mask.area=masked``.

    .venv/bin/python scripts/bench_masks.py [--frames 6] [--size 512] [--repeat 3]

The job: a textured clip of ``--size`` x ``--size`` frames (``pipeline.testing.synthetic``,
made offline) whose subject, a disc covering 10% of the frame, is the mask; the tiny
random-weight SD 1.5 model on the CPU, Euler a, ``--steps`` steps at strength 0.6.
Each side is the ``rotoscope`` command, run ``--repeat`` times alternating which goes
first, and its time per frame is the report's ``render_seconds / rendered`` (the model
load is not frame time). Printed: the median seconds per frame of each, their ratio
(full / masked: how many times faster the crop renders), and how much of the frame each
diffuses.

``full`` denoises the whole frame with the mask steering the latents; ``masked`` cuts the
mask's box plus ``mask.padding`` (32 px) out, renders it at its own size (enlarged to the
model's native size when smaller: the tiny model's is 64 px, SD 1.5's 512 px, where a
512x512 frame's crop renders at 512x512, for detail rather than speed) and pastes it
back. Both keep every pixel outside the mask the source frame's.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (
    PYTHON,
    add_common_options,
    bench_env,
    median,
    print_table,
    run_in_tempdir,
    timed_run,
    tiny_sd15,
    wait_for_quiet,
)

from pipeline.records.run_folder import RunFolder
from pipeline.render.masking.pixels import crop_box, crop_render_size
from pipeline.testing.synthetic import pan_clip

AREAS = ("full", "masked")
SUBJECT_SHARE = 0.10  # of the frame's area
PADDING = 32


def subject_mask(size: int) -> np.ndarray:
    """A centred disc covering :data:`SUBJECT_SHARE` of a ``size`` x ``size`` frame."""
    radius = math.sqrt(SUBJECT_SHARE * size * size / math.pi)
    ys, xs = np.mgrid[:size, :size]
    centre = (size - 1) / 2
    return np.where((xs - centre) ** 2 + (ys - centre) ** 2 <= radius**2, 255, 0).astype(np.uint8)


def make_inputs(tmp: Path, frames: int, size: int) -> tuple[Path, Path]:
    clip, masks = tmp / "clip", tmp / "masks"
    clip.mkdir()
    masks.mkdir()
    mask = subject_mask(size)
    for index, frame in enumerate(pan_clip(frames=frames, width=size, height=size).frames):
        Image.fromarray(frame).save(clip / f"{index:03d}.png")
        Image.fromarray(mask).save(masks / f"{index:03d}.png")
    return clip, masks


def command(args: argparse.Namespace, tmp: Path, model: Path, area: str, run: int) -> list[str]:
    clip, masks = tmp / "clip", tmp / "masks"
    return [
        PYTHON, "-m", "pipeline", f"input.path={clip}", f"mask.path={masks}",
        f"mask.area={area}", f"mask.padding={PADDING}", f"model.path={model}", "runtime=cpu",
        "prompt=an oil painting", f"steps={args.steps}", "strength=0.6", "seed=7",
        "sampler=euler_a", "stages=[plan,render]", f"output.root={tmp / 'out'}",
        f"name={area}-{run}",
    ]  # fmt: skip


def seconds_per_frame(tmp: Path, name: str) -> float:
    report = json.loads(RunFolder(tmp / "out" / name).report.read_text())
    return float(report["render_seconds"]) / int(report["rendered"])


def body(args: argparse.Namespace, tmp: Path) -> bool:
    env = bench_env(args.threads)
    model = tiny_sd15(args.models, tmp, env)
    make_inputs(tmp, args.frames, args.size)
    times: dict[str, list[float]] = {area: [] for area in AREAS}
    for run in range(args.repeat):
        for area in AREAS if run % 2 == 0 else tuple(reversed(AREAS)):
            wait_for_quiet(args.idle_wait)
            result = timed_run(command(args, tmp, model, area, run), env, tmp)
            if result.proc.returncode != 0:
                print(result.proc.stderr[-2000:], file=sys.stderr)
                return False
            times[area].append(seconds_per_frame(tmp, f"{area}-{run}"))
    box = crop_box(subject_mask(args.size), PADDING)
    crop = crop_render_size(box, 64)  # the tiny model's native size
    share = {"full": 1.0, "masked": crop[0] * crop[1] / args.size**2}
    print(
        f"{args.frames} frames of {args.size}x{args.size}, subject {SUBJECT_SHARE:.0%} of the "
        f"frame (crop {crop[0]}x{crop[1]} with padding {PADDING}), tiny SD 1.5, CPU, "
        f"{args.steps} steps, {args.threads} thread(s), median of {args.repeat}"
    )
    print_table(
        ["mask.area", "s/frame", "pixels diffused"],
        [[area, median(times[area]), f"{share[area]:.0%}"] for area in AREAS],
    )
    ratio = median(times["full"]) / median(times["masked"])
    print(f"full / masked: {ratio:.2f}x")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--idle-wait", type=float, default=30.0)
    add_common_options(parser)
    args = parser.parse_args()
    run_in_tempdir("bench_masks_", args.keep, body, args)


if __name__ == "__main__":
    main()
