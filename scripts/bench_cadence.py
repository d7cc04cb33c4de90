"""Benchmark cadence: render time, flicker, detail and fidelity per ``cadence.every``.

    python scripts/bench_cadence.py [--frames 24] [--size 96] [--steps 8] [--seed 42]
        [--repair 0.3] [--plot docs/guides/images/cadence-bench.png]
        [--model PATH --runtime cuda]   # a real model on a GPU: the same table

Three synthetic clips with known motion, made offline (``pipeline.testing.synthetic``): a
pan (1.5 px right and 0.5 px down per frame), a zoom (1.5% per frame) and a flat square
sliding 2 px per frame over a still textured background (what it uncovers no earlier
frame saw). Each is rendered through the ``rotoscope`` command with the tiny SD 1.5 model
and ``coherence=full``, the same prompt, strength (0.5), sampler and seed, at
``cadence.every`` 1 (the baseline: every frame diffused), 2, 4 and 8, each without and
with the repair pass (``cadence.repair_strength``). Printed per setting, as the mean over
the clips:

- seconds per frame (the render stage's time over the frames it made, the model load
  left out) and the baseline's over it (the speed-up; target at 4: >= 3x);
- the warp error of the output (flicker, the metrics stage's) over the baseline's
  (target at 4: <= 1);
- detail (variance of the Laplacian) as a share of the baseline's (target at 4: >= 80%);
- the PSNR of the carried frames against the same frames of the baseline, fully diffused;
- how many frames the UNet ran on (diffused, plus repair passes).

Every figure is measured in the same run. With the tiny model a UNet call is cheap, so
the speed-up measured here is the smallest it gets: a real model's diffusion costs far
more than the flow and warps of a carried frame.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
from bench_common import PYTHON, bench_env, print_table, timed_run, tiny_sd15
from PIL import Image, ImageDraw

from pipeline.plan.rows import read_plan
from pipeline.records.manifest import Manifest
from pipeline.records.run_folder import RunFolder
from pipeline.render.pngmeta import read_png_metadata
from pipeline.testing.synthetic import occluder_clip, pan_clip, zoom_clip

PROMPT = "an oil painting of a landscape"
EVERY = (1, 2, 4, 8)
SPEED_TARGET, WARP_TARGET, DETAIL_TARGET = 3.0, 1.0, 0.80
TARGET_EVERY = 4


@dataclass(frozen=True)
class Setting:
    every: int
    repair: float

    @property
    def name(self) -> str:
        return f"every {self.every}" + (f", repair {self.repair:g}" if self.repair else "")


@dataclass
class Result:
    """One setting on one clip."""

    seconds_per_frame: float  # this render's
    warp_error: float
    detail: float
    frames: list[np.ndarray]
    carried: list[int]  # the frames not diffused
    unet_frames: int  # frames a UNet call made (diffused, and repaired carried ones)
    times: list[float] = field(default_factory=list)  # seconds per frame of every turn

    @property
    def median_time(self) -> float:
        return statistics.median(self.times)


def write_clip(frames: list[np.ndarray], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{index:04d}.png")
    return folder


def render(clip: Path, model: Path | str, setting: Setting, out: Path, args, env) -> Result:
    name = f"{clip.name}-{setting.every}-{setting.repair:g}"
    cadence = [f"cadence.every={setting.every}"]
    if setting.repair:
        cadence.append(f"cadence.repair_strength={setting.repair:g}")
    cmd = [
        PYTHON, "-m", "pipeline", f"input.path={clip}", f"model.path={model}",
        f"runtime={args.runtime}", f"prompt={PROMPT}", f"steps={args.steps}", "strength=0.5",
        f"seed={args.seed}", "guidance_scale=7", "sampler=euler_a", "coherence=full",
        *cadence, "input.fps=12", "stages=[plan,render,metrics]", f"output.root={out}",
        f"name={name}",
    ]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    run = timed_run(cmd, env, out)
    if run.proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}\n{run.proc.stderr[-2000:]}")
    run_dir = out / name
    folder = RunFolder(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = json.loads((run_dir / "report.json").read_text())
    records = Manifest(folder).records
    frames = [np.asarray(Image.open(run_dir / records[i].file)) for i in sorted(records)]
    rows = read_plan(folder)
    by_unet = sum(
        1
        for record in records.values()
        if read_png_metadata(run_dir / record.file)["rotoscope"]["model"] is not None
    )
    return Result(
        report["seconds_per_frame"],
        metrics["warp_error"],
        metrics["detail"],
        frames,
        [row.index for row in rows if not row.diffused],
        by_unet,
    )


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=96, help="frame width and height")
    parser.add_argument("--steps", type=int, default=8, help="steps (x strength 0.5 run)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repair", type=float, default=0.3, help="the repair pass's strength")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", type=Path, default=None, help="a make_tiny_models.py folder")
    parser.add_argument("--model", default=None, help="any model.path instead of the tiny SD 1.5")
    parser.add_argument("--runtime", default="cpu", help="runtime preset: cpu, cuda or auto")
    parser.add_argument("--plot", type=Path, default=None, help="write the chart here (PNG)")
    parser.add_argument(
        "--repeat", type=int, default=1,
        help="render every setting this many times, in turns, and take the median time "
        "(a shared machine's load varies within a run)",
    )  # fmt: skip
    args = parser.parse_args()
    env = bench_env(args.threads)
    settings = [Setting(1, 0.0)] + [
        Setting(every, repair) for every in EVERY[1:] for repair in (0.0, args.repair)
    ]
    with tempfile.TemporaryDirectory(prefix="rotoscope-bench-cadence-") as temp:
        tmp = Path(temp)
        model = args.model or tiny_sd15(args.models, tmp, env)
        size = dict(frames=args.frames, width=args.size, height=args.size)
        occluder = occluder_clip(square=args.size // 3, speed=2, **size).clip
        clips = {
            "pan": write_clip(pan_clip(velocity=(1.5, 0.5), **size).frames, tmp / "pan"),
            "zoom": write_clip(zoom_clip(rate=1.015, **size).frames, tmp / "zoom"),
            "occluder": write_clip(occluder.frames, tmp / "occluder"),
        }
        results: dict[tuple[str, Setting], Result] = {}
        for turn in range(args.repeat):  # in turns: a slow spell slows every setting alike
            for clip, path in clips.items():
                for setting in settings:
                    result = render(path, model, setting, tmp / f"turn{turn}", args, env)
                    earlier = results.setdefault((clip, setting), result)
                    earlier.times.append(result.seconds_per_frame)
    summary = report(results, list(clips), settings, args)
    if args.plot is not None:
        plot(summary, settings, args.plot)
        print(f"chart: {args.plot}")


def report(
    results: dict[tuple[str, Setting], Result],
    clips: list[str],
    settings: list[Setting],
    args: argparse.Namespace,
) -> dict[Setting, dict[str, float]]:
    base = settings[0]
    summary: dict[Setting, dict[str, float]] = {}
    for setting in settings:
        per_clip = [(results[clip, setting], results[clip, base]) for clip in clips]
        carried_psnr = [
            psnr(result.frames[index], baseline.frames[index])
            for result, baseline in per_clip
            for index in result.carried
        ]
        summary[setting] = {
            "s/frame": statistics.fmean(r.median_time for r, _ in per_clip),
            "speed-up": statistics.fmean(b.median_time / r.median_time for r, b in per_clip),
            "warp": statistics.fmean(r.warp_error for r, _ in per_clip),
            "warp vs 1": statistics.fmean(r.warp_error / b.warp_error for r, b in per_clip),
            "detail vs 1": statistics.fmean(r.detail / b.detail for r, b in per_clip),
            "psnr": statistics.fmean(carried_psnr) if carried_psnr else float("nan"),
            "unet": statistics.fmean(r.unet_frames for r, _ in per_clip),
        }
    print(
        f"{args.model or 'tiny SD 1.5'}, coherence=full, clips {', '.join(clips)}: "
        f"{args.frames} frames {args.size}x{args.size}, strength 0.5, {args.steps} steps, "
        f"Euler a, seed {args.seed}; means over the clips (times: median of "
        f"{args.repeat})"
    )
    print_table(
        ["setting", "s/frame", "speed-up vs 1", "warp error", "warp vs 1", "detail vs 1",
         "PSNR carried vs diffused (dB)", "UNet frames"],
        [
            [s.name, f"{v['s/frame']:.3f}", f"{v['speed-up']:.2f}x", f"{v['warp']:.5f}",
             f"{v['warp vs 1']:.2f}", f"{v['detail vs 1']:.0%}",
             "" if s.every == 1 else f"{v['psnr']:.1f}", f"{v['unet']:.1f} of {args.frames}"]
            for s, v in summary.items()
        ],
    )  # fmt: skip
    at = summary[Setting(TARGET_EVERY, 0.0)]
    checks = {
        f"every {TARGET_EVERY}: speed-up {at['speed-up']:.2f}x >= {SPEED_TARGET:g}x": at["speed-up"]
        >= SPEED_TARGET,
        f"every {TARGET_EVERY}: warp error {at['warp vs 1']:.2f} of every frame diffused "
        f"(coherence=full) <= {WARP_TARGET:g}": at["warp vs 1"] <= WARP_TARGET,
        f"every {TARGET_EVERY}: detail {at['detail vs 1']:.0%} >= {DETAIL_TARGET:.0%}": at[
            "detail vs 1"
        ]
        >= DETAIL_TARGET,
    }
    for text, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {text}")
    return summary


def plot(summary: dict[Setting, dict[str, float]], settings: list[Setting], path: Path) -> None:
    """Two panels over cadence.every: the speed-up, and the warp error and detail against
    every frame diffused (lines without and with repair)."""
    width, height, margin = 720, 300, 48
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    panels = [
        ("speed-up vs every frame diffused", ["speed-up"], 0.0, 8.0),
        ("warp error (solid) and detail (dashed) vs every frame diffused",
         ["warp vs 1", "detail vs 1"], 0.0, 1.6),
    ]  # fmt: skip
    colours = {False: (31, 119, 180), True: (214, 39, 40)}
    panel_width = (width - 3 * margin) // 2
    for number, (title, keys, low, high) in enumerate(panels):
        left = margin + number * (panel_width + margin)
        top, bottom = margin, height - margin
        draw.rectangle([left, top, left + panel_width, bottom], outline=(0, 0, 0))
        draw.text((left, top - 30), title, fill=(0, 0, 0))

        def x_of(every: int, left: int = left) -> float:
            return left + panel_width * EVERY.index(every) / (len(EVERY) - 1)

        def y_of(
            value: float, top: int = top, bottom: int = bottom, low: float = low, high: float = high
        ) -> float:
            return bottom - (bottom - top) * (min(max(value, low), high) - low) / (high - low)

        for every in EVERY:
            draw.text((x_of(every) - 3, bottom + 6), str(every), fill=(0, 0, 0))
        for tick in (low, (low + high) / 2, high):
            draw.text((left - 30, y_of(tick) - 6), f"{tick:g}", fill=(0, 0, 0))
        draw.line([left, y_of(1.0), left + panel_width, y_of(1.0)], fill=(180, 180, 180))
        for repaired in (False, True):
            points = [s for s in settings if s.every == 1 or bool(s.repair) == repaired]
            for key in keys:
                line = [(x_of(s.every), y_of(summary[s][key])) for s in points]
                if key == "detail vs 1":
                    for (x0, y0), (x1, y1) in pairwise(line):
                        for part in range(0, 10, 2):
                            a, b = part / 10, (part + 1) / 10
                            draw.line([x0 + (x1 - x0) * a, y0 + (y1 - y0) * a,
                                       x0 + (x1 - x0) * b, y0 + (y1 - y0) * b],
                                      fill=colours[repaired], width=2)  # fmt: skip
                else:
                    draw.line(line, fill=colours[repaired], width=2)
        draw.text(
            (left, bottom + 22), "cadence.every (blue: no repair, red: repair)", fill=(0, 0, 0)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


if __name__ == "__main__":
    main()
