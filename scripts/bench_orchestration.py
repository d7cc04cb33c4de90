"""Does the GPU ever wait for rotoscope? The render loop timed around a simulated GPU.

What is measured: rotoscope's own render loop (decode, frame key, reuse check, render,
PNG with metadata, fsync, manifest line) over a real 512x512 clip, with the model
replaced by a simulated GPU: a renderer that waits ``T`` seconds without holding the
GIL (``time.sleep``, as a thread waiting on a CUDA kernel does) and returns a
realistic 512x512 frame (a gradient with Gaussian noise, about as compressible for
zlib as diffusion output). Everything else is the code a real render runs.

Two loops, measured in the same run:

* **overlapped** (what rotoscope does now): frames decoded ahead in a thread
  (``Prefetch``), PNG compression, fsync and the manifest line in the writer pool
  (``FrameWriter``, ``WRITE_THREADS`` threads) while the next frame renders;
* **serial** (the loop before it): the same producer with the writer inline and no
  prefetch, so decoding, compressing and fsyncing happen between renders, one after
  the other, exactly as before; "before" also writes its PNGs with the zlib settings of
  before (level 4, default strategy; now ``Z_RLE``, see ``pngmeta.write_png``), and a
  third row shows the serial loop with today's PNGs, to tell the two gains apart.

The run's page (``report.html``, issue 23) is part of what a render costs: the
overlapped loop makes each frame's thumbnails in the writer pool, and a ``LivePage``
thread rebuilds the page from the run folder while frames arrive (here every
``--page-interval`` seconds, more often than a job's 2 s, to be on the safe side). At
``T`` the loop runs twice, with the page and with neither page nor thumbnails (the loop
before issue 23), and the efficiency target is judged with the page. The time one page
build of the finished run takes is printed too.

Printed: per-frame wall time over the whole run and in steady state (from the first
GPU call to the last, per call), and the efficiency ``T / per-frame time`` at ``T`` =
100 ms (target >= 0.95: the GPU is busy 95% of the time). The target is judged in
steady state: the whole run also counts the ~0.25 s ffmpeg takes to start and decode
the first frame, once per job (0.25 ms per frame over a 1000-frame job, and a real
render loads its model after it anyway), not a wait between frames; both are printed.
Frames/s at ``T`` = 0 (pure overhead) for the loops, whole runs, with the ratio of
overlapped to serial-before (target >= 2x). Each measurement runs ``--repeat`` times,
the loops taking turns, and medians are compared. The CPU time other processes used
meanwhile is printed too: this machine may be shared.

    .venv/bin/python scripts/bench_orchestration.py [--frames 48] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image, PngImagePlugin

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (
    add_common_options,
    bench_env,
    machine_busy_seconds,
    make_clip,
    median,
    print_table,
    run_in_tempdir,
    wait_for_quiet,
)

import pipeline.render.producer as producer_module
from pipeline.atomic import atomic_path
from pipeline.config.schema import InputConfig
from pipeline.plan.rows import PlanRow, write_plan
from pipeline.records.manifest import Manifest, image_digest
from pipeline.records.progress import Progress
from pipeline.records.report import JobReport
from pipeline.records.run_folder import RunFolder
from pipeline.records.writer import FrameWriter
from pipeline.render.executors.local import WRITE_THREADS, RenderHere
from pipeline.render.pngmeta import JSON_KEY, PARAMETERS_KEY
from pipeline.render.producer import FrameProducer, manifest_commit
from pipeline.render.strategies.base import UnitContext
from pipeline.render.strategies.plain import PlainStrategy
from pipeline.report.live import LivePage
from pipeline.report.page import render_page
from pipeline.report.view import read_view
from pipeline.source.base import Source
from pipeline.source.open import open_source
from pipeline.source.prefetch import PREFETCH_FRAMES, Prefetch

SIZE = 512
OVERLAPPED = "overlapped"
WITH_PAGE = "overlapped + page"
NO_PAGE = "overlapped, no page"
BEFORE = "serial (before)"
SERIAL_TODAY = "serial, today's PNG"


class SimulatedGPU:
    """Stands in for the Renderer: ``T`` seconds of waiting per frame, then a frame."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.model = SimpleNamespace(name="simulated", identity="simulated", model_hash=None)
        self.adapters = SimpleNamespace(infotext=lambda job: [])
        rng = np.random.default_rng(0)
        ramp = np.linspace(0, 200, SIZE)[None, :, None]
        self.frames = [
            np.clip(ramp + rng.normal(0, 12, (SIZE, SIZE, 3)) + 20 * k, 0, 255).astype(np.uint8)
            for k in range(4)
        ]
        self.calls = 0
        self.call_starts: list[float] = []  # perf_counter() as each call began

    def control_details(self) -> list[dict[str, str]]:
        return []

    def render_batch(self, frames: list, hooks: object = None) -> list[np.ndarray]:
        self.call_starts.append(time.perf_counter())
        time.sleep(self.seconds * len(frames))  # the GIL is free meanwhile, as on a GPU
        self.calls += 1
        return [self.frames[(self.calls + n) % len(self.frames)] for n in range(len(frames))]


def rows(count: int) -> list[PlanRow]:
    return [
        PlanRow(
            index=i,
            prompt="simulated",
            negative_prompt="",
            strength=0.5,
            guidance_scale=7.0,
            steps=20,
            sampler="Euler a",
            seed=42,
            width=SIZE,
            height=SIZE,
        )
        for i in range(count)
    ]


def write_png_before(path: Path, image: np.ndarray, parameters: str, details: dict) -> None:
    """``write_png`` as it was before this loop was overlapped: zlib level 4, default
    strategy (the same chunks, the same pixels)."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(PARAMETERS_KEY, parameters)
    info.add_itxt(JSON_KEY, json.dumps(details, sort_keys=True, ensure_ascii=False))
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG", pnginfo=info, compress_level=4)


@contextmanager
def no_thumbnails() -> Iterator[None]:
    """The producer makes no thumbnails meanwhile (the loop before the run's page)."""
    current = producer_module.write_frame_thumbnails
    producer_module.write_frame_thumbnails = lambda *args: None
    try:
        yield
    finally:
        producer_module.write_frame_thumbnails = current


@contextmanager
def png_settings_before() -> Iterator[None]:
    """The producer writes its PNGs the way it did before, meanwhile."""
    current = producer_module.write_png
    producer_module.write_png = write_png_before
    try:
        yield
    finally:
        producer_module.write_png = current


def render_once(
    clip: Path,
    folder: Path,
    count: int,
    seconds: float,
    overlapped: bool,
    page_interval: float | None = None,
) -> tuple[float, float]:
    """Wall seconds of one render loop over ``count`` frames into a fresh run folder, and
    the steady-state seconds per frame: from the first GPU call to the last, per call
    (one frame each), which leaves out the decoder's start-up before the first frame
    and the last writes after the last one."""
    run = RunFolder(folder)
    manifest = Manifest(run)
    gpu = SimulatedGPU(seconds)
    plan = rows(count)
    progress = Progress(count, log_every=math.inf, stream=io.StringIO())
    report = JobReport(str(folder))
    source_cfg = InputConfig(path=str(clip), width=SIZE, height=SIZE, max_frames=count)
    page = None
    if page_interval is not None:  # the job writes its plan, then starts its page
        write_plan(plan, run)
        page = LivePage(run, "bench", interval=page_interval)
    started = time.perf_counter()
    if page is not None:
        page.start()
    with open_source(source_cfg) as source:
        if overlapped:
            with FrameWriter(manifest_commit(manifest, run), WRITE_THREADS) as writer:
                producer = FrameProducer(
                    run, manifest, "simulated", lambda: gpu, progress, report, writer=writer
                )  # type: ignore[arg-type, return-value]
                feed = Prefetch(source, PREFETCH_FRAMES, digest=image_digest)
                render_plain(producer, plan, feed)
        else:
            producer = FrameProducer(run, manifest, "simulated", lambda: gpu, progress, report)  # type: ignore[arg-type, return-value]
            render_plain(producer, plan, source)
    if page is not None:
        page.close()
    wall = time.perf_counter() - started
    if len(Manifest(run).finished(plan)[0]) != count:
        raise SystemExit(f"{folder}: not every frame was recorded")
    starts = gpu.call_starts
    return wall, (starts[-1] - starts[0]) / max(1, len(starts) - 1)


def render_plain(producer: FrameProducer, plan: list[PlanRow], source: Source) -> None:
    """The plain strategy's frames rendered in this process, as the local executor does."""
    strategy = PlainStrategy()
    context = UnitContext(plan, source.info, source.selection, lambda: source)
    strategy.feed(producer, plan, source, RenderHere(strategy, producer, context))


def measure_once(
    clip: Path, folder: Path, count: int, seconds: float, loop: str, page_interval: float
) -> tuple:
    """Wall seconds per frame of one run, steady-state seconds per frame, and the cores
    other processes used meanwhile."""
    busy = machine_busy_seconds()
    cpu = time.process_time()
    overlapped = loop in (OVERLAPPED, WITH_PAGE, NO_PAGE)
    interval = page_interval if loop == WITH_PAGE else None
    before = loop in (BEFORE, SERIAL_TODAY, NO_PAGE)  # no thumbnails (and PNGs of before)
    with (
        png_settings_before() if loop == BEFORE else nullcontext(),
        no_thumbnails() if before else nullcontext(),
    ):
        wall, steady = render_once(clip, folder, count, seconds, overlapped, interval)
    after = machine_busy_seconds()
    other = float("nan")
    if busy is not None and after is not None:
        other = max(0.0, after - busy - (time.process_time() - cpu)) / wall
    return wall / count, steady, other


def folder_name(attempt: int, seconds: float, loop: str) -> str:
    return f"{attempt}-{seconds}-{loop}".replace(" ", "-").replace("'", "").replace("+", "and")


def body(args: argparse.Namespace, tmp: Path) -> bool:
    env = bench_env(args.threads)
    clip = make_clip(tmp / "clip.mp4", args.frames, 24, SIZE, SIZE, env)
    waited = wait_for_quiet(args.idle_wait)
    print(f"{args.frames} frames of a {SIZE}x{SIZE} clip, median of {args.repeat} runs "
          f"(waited {waited:.0f} s for a quiet machine)\n")  # fmt: skip
    t = args.gpu_ms / 1000
    runs = [
        (t, WITH_PAGE), (t, NO_PAGE), (0.0, OVERLAPPED), (0.0, NO_PAGE), (0.0, BEFORE),
        (0.0, SERIAL_TODAY),
    ]  # fmt: skip
    samples: dict[tuple[float, str], list[tuple[float, float, float]]] = {r: [] for r in runs}
    for attempt in range(args.repeat):  # the loops take turns
        for seconds, loop in runs:
            folder = tmp / folder_name(attempt, seconds, loop)
            samples[(seconds, loop)].append(
                measure_once(clip, folder, args.frames, seconds, loop, args.page_interval)
            )
    results = {
        run: tuple(median([s[n] for s in values]) for n in range(3))
        for run, values in samples.items()
    }
    whole, steady, _ = results[(t, WITH_PAGE)]
    efficiency = t / steady
    without_page = t / results[(t, NO_PAGE)][1]
    finished = RunFolder(tmp / folder_name(0, t, WITH_PAGE))
    build_started = time.perf_counter()
    render_page(read_view(finished))
    page_ms = (time.perf_counter() - build_started) * 1000
    speedup = results[(0.0, BEFORE)][0] / results[(0.0, OVERLAPPED)][0]
    speedup_no_page = results[(0.0, BEFORE)][0] / results[(0.0, NO_PAGE)][0]
    print_table(
        ["loop", "T (ms)", "ms/frame", "frames/s", "steady ms/frame", "other load (cores)"],
        [
            [loop, seconds * 1000, per_frame * 1000, 1 / per_frame, steady_frame * 1000, load]
            for (seconds, loop), (per_frame, steady_frame, load) in results.items()
        ],
    )
    ok_efficiency = efficiency >= args.target_efficiency
    ok_speedup = speedup >= args.target_speedup
    verdict = {True: "PASS", False: "FAIL"}
    print(
        f"\nefficiency at T={args.gpu_ms:g} ms, steady state: {efficiency:.3f} "
        f"(target >= {args.target_efficiency}): {verdict[ok_efficiency]}; over the whole "
        f"run, with the decoder's start-up: {t / whole:.3f}"
    )
    print(
        f"the run's page: thumbnails in the writer pool and the page rebuilt every "
        f"{args.page_interval:g} s; without them the efficiency is {without_page:.3f}; "
        f"one build of the finished run's page ({args.frames} frames): {page_ms:.0f} ms"
    )
    print(
        f"frames/s at T=0, overlapped / serial before: {speedup:.2f}x "
        f"(target >= {args.target_speedup}x): {verdict[ok_speedup]}; without the "
        f"thumbnails: {speedup_no_page:.2f}x"
    )
    return ok_efficiency and ok_speedup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gpu-ms", type=float, default=100.0, help="simulated GPU time T")
    parser.add_argument("--target-efficiency", type=float, default=0.95)
    parser.add_argument("--page-interval", type=float, default=0.5,
                        help="seconds between rebuilds of the live page")  # fmt: skip
    parser.add_argument("--target-speedup", type=float, default=2.0)
    parser.add_argument("--idle-wait", type=float, default=20.0,
                        help="seconds to wait at most for a quiet machine first")  # fmt: skip
    add_common_options(parser)
    args = parser.parse_args()
    run_in_tempdir("rotoscope-bench-orchestration-", args.keep, body, args)


if __name__ == "__main__":
    main()
