"""Finishing speed and memory: upscaling (tiled against whole-frame, a model against
Lanczos) and in-between frames (rotoscope's flow method against ffmpeg's minterpolate).

Upscaling: a 512x512 frame to 2048x2048 (4x: the tiny random 2x ESRGAN built by the
tiny-model builder runs twice, as a 2x model does for a 4x target) and, to see how memory
grows with the frame, 256->1024; whole frame (``upscale.tile=0``) and in
128-pixel tiles (smaller than the default 512, so that every case here is tiled), and
Lanczos alone. Timing is the median of ``--repeat``
runs in this process after a warm-up. Peak memory is measured in a fresh process per
case: its resident memory, sampled every 2 ms during the upscale, at its highest, less
what it was just before (model loaded, frame made). The frame's own buffers (the float32
accumulator of each pass and the 8-bit frames between passes) grow with the frame
whatever the tiling, so the model's working memory is also shown with them taken out:
that is what tiling keeps flat. Architecture-wise the tiny ESRGAN is a real RRDBNet with
8 filters and one block (a real 4x-UltraSharp has 64 and 23): its timings are not a real
model's, the ratios between cases are what this measures. On a CUDA machine the same
cases also run there, with torch's own peak of GPU memory.

Interpolation: one in-between frame of two frames of a camera panning over a textured
scene (``pipeline.testing.synthetic``'s texture, made small and enlarged: made at full
size, its cost grows with the fourth power of the side), at 512x512 and 1920x1080: rotoscope's flow
method, RIFE 4.6 at its published size (random weights: the speed does not depend on
them) on the CPU, and ffmpeg's ``minterpolate`` (motion-compensated, its best settings)
on the same frames as the baseline (the two frames piped in, seconds per frame it makes).

    .venv/bin/python scripts/bench_finishing.py [--repeat 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

MIB = 2**20
UPSCALE_CASES = ((256, 1024), (512, 2048))
INTERPOLATION_SIZES = ((512, 512), (1920, 1080))
# Tiles smaller than the default 512, so that every case is cut into tiles: what tiling
# does to memory shows at sizes a CPU benchmark can afford.
TILE, OVERLAP = 128, 32
PAN = (6, 2)  # pixels the camera moves between the two frames of the in-between case
TEXTURE_SIDE = 768  # the texture is made at most this wide and enlarged to the frame's

# One memory case in a fresh process: argv = models folder, input side, output side, tile.
MEMORY_CASE = """\
import json, os, sys, threading, time
import numpy as np, torch
from pathlib import Path
from pipeline.models.upscalers import load_upscaler
from pipeline.upscale.frames import FrameUpscaler
folder, side, target, tile = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
page = os.sysconf("SC_PAGE_SIZE")
def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * page
image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
device = torch.device(sys.argv[5])
model = load_upscaler(folder / "tiny_esrgan_2x.safetensors", device, torch.float32)
FrameUpscaler(model, tile, 32)(image[:64, :64], (128, 128))  # warm-up: kernels, pools
if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats()
before, highest, done = resident(), [0], threading.Event()
def sample():
    while not done.is_set():
        highest[0] = max(highest[0], resident())
        time.sleep(0.002)
sampler = threading.Thread(target=sample)
sampler.start()
FrameUpscaler(model, tile, 32)(image, (target, target))
done.set()
sampler.join()
gpu = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
print(json.dumps({"before": before, "after": max(highest[0], resident()), "gpu": gpu}))
"""


def median_seconds(
    run: Callable[[], object], repeat: int, warm_up: Callable[[], object] | None = None
) -> float:
    (warm_up or run)()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def frame_buffers(side: int, target: int) -> int:
    """Bytes of the frame's own buffers in a 2x model's passes from ``side`` to ``target``:
    each pass's float32 accumulator and the 8-bit frame it starts from, and the result."""
    total, current = 0, side
    while current < target:
        total += (2 * current) ** 2 * 3 * 4 + current**2 * 3
        current *= 2
    return total + target**2 * 3


def upscale_bench(folder: Path, repeat: int, device_name: str, env: dict[str, str]) -> None:
    import torch

    from pipeline.models.upscalers import load_upscaler
    from pipeline.upscale.frames import FrameUpscaler

    device = torch.device(device_name)
    model = load_upscaler(folder / "tiny_esrgan_2x.safetensors", device, torch.float32)
    print(f"\nupscaling on {device_name} (tiny 2x ESRGAN, two passes to 4x; Lanczos alone):")
    print(
        f"{'case':<14}{'method':<22}{'s/frame':>9}{'peak MiB':>10}{'model MiB':>11}{'GPU MiB':>9}"
    )
    for side, target in UPSCALE_CASES:
        image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
        rows = [("ESRGAN, whole", 0), (f"ESRGAN, {TILE} tiles", TILE), ("Lanczos", None)]
        seconds = {}
        for name, tile in rows:
            upscale = FrameUpscaler(None if tile is None else model, tile or 0, OVERLAP)
            seconds[name] = median_seconds(
                lambda: upscale(image, (target, target)),  # noqa: B023
                repeat,
                lambda: upscale(image[:64, :64], (256, 256)),  # noqa: B023
            )
            memory = "" if tile is None else _memory(folder, side, target, tile, device_name, env)
            case = f"{side}->{target}"
            print(f"{case:<14}{name:<22}{seconds[name]:>9.3f}{memory}")
        whole, tiled = seconds["ESRGAN, whole"], seconds[f"ESRGAN, {TILE} tiles"]
        print(f"{'':<14}tiled / whole: {tiled / whole:.2f}x time; "
              f"ESRGAN (tiled) / Lanczos: {tiled / seconds['Lanczos']:.0f}x")  # fmt: skip


def _memory(
    folder: Path, side: int, target: int, tile: int, device: str, env: dict[str, str]
) -> str:
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_CASE, str(folder), str(side), str(target), str(tile), device],
        capture_output=True, text=True, env=env, check=True, cwd=REPO,
    )  # fmt: skip
    case = json.loads(result.stdout.strip().splitlines()[-1])
    grown = (case["after"] - case["before"]) / MIB
    model = max(0.0, grown - frame_buffers(side, target) / MIB)
    gpu = f"{case['gpu'] / MIB:>9.0f}" if case["gpu"] is not None else f"{'-':>9}"
    return f"{grown:>10.0f}{model:>11.0f}{gpu}"


def interpolation_bench(repeat: int) -> None:
    import torch

    from pipeline.animation.between import in_betweens
    from pipeline.ffmpeg_exe import ffmpeg_exe
    from pipeline.models.rife import IFNet, LoadedRife

    # RIFE 4.6 at its published widths, random weights: its speed does not depend on them
    rife = LoadedRife(IFNet((192, 128, 96, 64)).eval(), torch.device("cpu"), torch.float32)
    print("\nin-between frames on the CPU (one frame halfway between two of a panning camera):")
    head = f"{'size':<12}{'flow s':>9}{'RIFE 4.6 s':>12}{'minterpolate s':>16}"
    print(f"{head}{'flow / minterpolate':>21}{'RIFE / minterpolate':>21}")
    for width, height in INTERPOLATION_SIZES:
        first, second = panning_pair(width, height, PAN)
        flow = median_seconds(lambda: in_betweens(first, second, [0.5]), repeat)  # noqa: B023
        learned = median_seconds(lambda: rife.between(first, second, [0.5]), repeat)  # noqa: B023
        ffmpeg = _minterpolate_seconds(ffmpeg_exe(), first, second, repeat)
        print(
            f"{f'{width}x{height}':<12}{flow:>9.3f}{learned:>12.3f}{ffmpeg:>16.3f}"
            f"{flow / ffmpeg:>20.1f}x{learned / ffmpeg:>20.1f}x"
        )


def panning_pair(width: int, height: int, pan: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Two frames of a camera moving by ``pan`` pixels (x, y) over a textured canvas."""
    import cv2

    from pipeline.testing.synthetic import make_texture

    side = max(width, height) + 2 * max(pan)
    small = make_texture(min(side, TEXTURE_SIDE), seed=0)
    canvas = cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)
    canvas = (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)
    x, y = pan
    return canvas[:height, :width].copy(), canvas[y : y + height, x : x + width].copy()


def _minterpolate_seconds(exe: str, first: np.ndarray, second: np.ndarray, repeat: int) -> float:
    """ffmpeg's minterpolate doubling a clip of the two frames, seconds per frame it makes
    (the same clip without the filter, decoding and piping alone, is taken off)."""
    height, width = first.shape[:2]
    count = 8  # the pair, repeated: enough frames that start-up does not dominate
    frames = b"".join((first if n % 2 == 0 else second).tobytes() for n in range(count))
    base = [exe, "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{width}x{height}", "-framerate", "12", "-i", "pipe:"]  # fmt: skip

    def run(filtered: bool) -> None:
        graph = ["-vf", "minterpolate=fps=24:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1"]
        subprocess.run([*base, *(graph if filtered else []), "-f", "null", "-"], input=frames,
                       check=True, capture_output=True)  # fmt: skip

    with_filter = median_seconds(lambda: run(True), repeat)
    without = median_seconds(lambda: run(False), repeat)
    return (with_filter - without) / count  # one made frame per input frame at 2x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (median)")
    parser.add_argument("--threads", type=int, default=1, help="OMP/MKL threads (default 1)")
    parser.add_argument(
        "--part", choices=("all", "upscale", "interpolation"), default="all", help="what to run"
    )
    args = parser.parse_args()
    os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    import torch  # after the thread counts are set: torch reads them at import

    from pipeline.testing.tiny_finishing import build_tiny_finishing

    torch.set_num_threads(args.threads)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if args.part in ("all", "upscale"):
        with tempfile.TemporaryDirectory(prefix="bench-finishing-") as tmp:
            folder = Path(tmp)
            build_tiny_finishing(folder)
            devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
            for device in devices:
                upscale_bench(folder, args.repeat, device, env)
    if args.part in ("all", "interpolation"):
        interpolation_bench(args.repeat)
    print(f"\n(threads: {args.threads}; peak RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")  # fmt: skip


if __name__ == "__main__":
    main()
