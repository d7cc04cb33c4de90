"""3D camera cost per frame: the warp and the depth model, against an img2img step.

What is measured, in this process, on ``--device`` (default cpu) with ``--threads``
threads, the median of ``--repeat`` runs after a warm-up:

1. the 3D warp (``pipeline.animation.camera3d.warp_3d``: the sampling grid and a bicubic
   ``grid_sample``, uint8 in and out) at 512x512 and 1024x1024, for a typical step
   (forward 2, turning 0.5 degrees about y, fov 70) through a random depth map;
2. the baseline, in the same run: one img2img call of the tiny SD 1.5 model at the same
   size with a single denoising step (VAE encode, one UNet step with CFG, VAE decode),
   the least a frame costs, and one more denoising step (the difference between a
   2-step and a 1-step call);
3. the depth models, through rotoscope's depth loader: the tiny Depth Anything the tests
   use and, unless ``--no-midas``, a full-size MiDaS DPT-Hybrid with random weights
   (built with controlnet_aux's own class and saved into a temporary annotators folder;
   timings do not depend on weight values);
4. reading a stored depth map back from the run folder's cache: what a resumed job pays
   instead of the model.

Ratios are printed against the img2img call at the same size: the warp and the cache
read must stay well under it (the verdict lines); the depth model is reported as it is
(a real MiDaS on a CPU costs seconds, like a real SD step, and runs once per frame).

    .venv/bin/python scripts/bench_3d.py [--repeat 5] [--threads 1] [--no-midas]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine_busy_seconds, print_table, run_in_tempdir, wait_for_quiet

SIZES = (512, 1024)
# the warp and the cache read may take at most this share of the 1-step img2img call
TARGET_SHARE = 0.25


def timed(call: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``call`` over ``repeat`` runs, after one warm-up run."""
    call()
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def random_midas(annotators: Path) -> None:
    """A full-size MiDaS DPT-Hybrid with random weights, where the depth loader looks."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from controlnet_aux.midas.midas.dpt_depth import DPTDepthModel

        model = DPTDepthModel(path=None, backbone="vitb_rn50_384", non_negative=True)
    annotators.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), annotators / "dpt_hybrid-midas-501f0c75.pt")


def bench(args: argparse.Namespace, tmp: Path) -> bool:
    import torch

    from pipeline.animation.camera3d import CameraStep3D, warp_3d
    from pipeline.animation.depth_cache import DepthCache
    from pipeline.config.schema import DepthConfig, DepthModel, ModelConfig, RuntimeConfig
    from pipeline.models.depth import load_depth
    from pipeline.models.loader import load_model
    from pipeline.plan.rows import PlanRow
    from pipeline.render.renderer import Renderer
    from pipeline.testing.tiny_depth import build_tiny_depth
    from pipeline.testing.tiny_models import build_tiny_models

    torch.set_num_threads(args.threads)
    device = args.device
    paths_models = tmp / "models"  # paths.models: the tiny depth model is in tiny/depth
    sd15 = build_tiny_models(args.models or paths_models / "tiny").sd15
    build_tiny_depth(paths_models / "tiny")
    renderer = Renderer(load_model(ModelConfig(path=str(sd15)), RuntimeConfig(device=device)))
    estimators = {"tiny Depth Anything": load_depth(
        DepthConfig(model=DepthModel.tiny), str(paths_models), device
    )}  # fmt: skip
    if not args.no_midas:
        random_midas(tmp / "annotators")
        estimators["MiDaS DPT-Hybrid (full size)"] = load_depth(
            DepthConfig(model=DepthModel.midas, annotators=str(tmp / "annotators")),
            str(paths_models), device,
        )  # fmt: skip
    step = CameraStep3D(translation_z=2.0, rotation_y=0.5, fov=70.0)
    rng = np.random.default_rng(0)
    waited = wait_for_quiet(args.idle_wait)
    busy, started = machine_busy_seconds(), time.monotonic()
    rows: list[list[object]] = []
    verdicts = []
    for size in args.sizes:
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        depth = rng.uniform(1.0, 2.0, (size, size)).astype(np.float32)
        place = f"{size}x{size}"

        def render(steps: int, image: np.ndarray = image, size: int = size) -> np.ndarray:
            row = PlanRow(
                index=0, prompt="a forest path", negative_prompt="", strength=1.0,
                guidance_scale=7.0, steps=steps, sampler="Euler a", seed=1, width=size,
                height=size,
            )  # fmt: skip
            return renderer.render(row, image)

        def warp(image: np.ndarray = image, depth: np.ndarray = depth) -> np.ndarray:
            return warp_3d(image, depth, step, device=device)

        def read(key: str = place, depth: np.ndarray = depth) -> np.ndarray:
            # a fresh cache object each time: the map comes from disk, as after a resume
            return DepthCache(lambda frame: tmp / "depth" / f"{frame}.png", "bench").depth(
                key, lambda: depth
            )

        read()  # stores the map
        warp_s = timed(warp, args.repeat)
        one_step = timed(lambda: render(1), args.repeat)
        extra_step = max(timed(lambda: render(2), args.repeat) - one_step, 1e-9)
        read_s = timed(read, args.repeat)
        rows += [
            [place, "img2img, 1 step (baseline)", one_step * 1000, 1.0],
            [place, "  one more denoising step", extra_step * 1000, extra_step / one_step],
            [place, "3D warp", warp_s * 1000, warp_s / one_step],
            [place, "depth map read from the cache", read_s * 1000, read_s / one_step],
        ]
        for name, estimate in estimators.items():
            seconds = timed(lambda estimate=estimate, image=image: estimate(image),
                            max(1, args.repeat // 2))  # fmt: skip
            rows.append([place, f"depth: {name}", seconds * 1000, seconds / one_step])
        verdicts.append((size, warp_s / one_step, read_s / one_step, warp_s / extra_step))
    after = machine_busy_seconds()
    load = (
        f"{(after - busy) / (time.monotonic() - started):.2f} cores busy in all (this one included)"
        if busy is not None and after is not None
        else "machine load unknown"
    )
    print(f"device {device}, {args.threads} thread(s), median of {args.repeat}; waited "
          f"{waited:.0f} s for a quiet machine; {load}")  # fmt: skip
    print_table(["size", "what", "ms per frame", "x img2img call"], rows)
    ok = True
    for size, warp_share, read_share, per_step in verdicts:
        passed = warp_share <= TARGET_SHARE and read_share <= TARGET_SHARE
        ok = ok and passed
        print(
            f"{size}x{size}: warp {warp_share:.3f}x and cache read {read_share:.3f}x a 1-step "
            f"tiny img2img call ({per_step:.2f}x one more step); target <= {TARGET_SHARE}: "
            f"{'PASS' if passed else 'FAIL'}"
        )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per figure (median)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(SIZES),
        help=f"square frame sizes (default {' '.join(map(str, SIZES))})",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (default cpu)")
    parser.add_argument(
        "--idle-wait", type=float, default=60.0,
        help="seconds to wait at most for other processes to go quiet first (default 60)",
    )  # fmt: skip
    parser.add_argument(
        "--models", type=Path, default=None,
        help="a tiny models folder made by make_tiny_models.py to reuse (default: build one)",
    )  # fmt: skip
    parser.add_argument(
        "--no-midas", action="store_true",
        help="skip the full-size MiDaS (building it takes ~15 s and 500 MB of temp disk)",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temp folder and print it")
    args = parser.parse_args()
    run_in_tempdir("rotoscope-bench-3d-", args.keep, bench, args)


if __name__ == "__main__":
    main()
