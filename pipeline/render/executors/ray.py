"""The Ray executor: one job rendered by ``runtime.workers`` Ray actors, one writer.

The driver (this process, holding the run lock) does what a single process does up to
the diffusion itself: it decodes the input once (ahead, in a thread), computes control
maps and frame keys, reuses what is current, and cuts the rest into work units
(:mod:`pipeline.render.units`): a batch of independent frames, a whole coherence
segment, or the whole of a loopback. Each worker is an actor that loads the model once
(one GPU each on CUDA, one CPU each otherwise), renders the units it is given, writes
their frames atomically into the run folder (a filesystem every machine sees at the
same path, on a cluster) and streams each frame's outcome back as soon as its file is
durable. The driver writes the manifest, in frame order, from those outcomes: the
manifest has one writer whatever the worker count.

Units are handed out as workers free up, with one more per worker ready, so none waits
for the driver to decode its next one. Frames are bit-identical to a single-process run
of the same config: a worker renders the same batches (they are cut on the same grid,
:mod:`pipeline.render.batch`) with the same code, seeds and weights (the plan's LoRAs
are loaded from all its rows).

A worker that dies (its process killed, its machine gone) loses only the frames it had
not returned: the driver hands its unit, less those frames, to another worker (a chain
restarts at its first frame, reusing what was returned). When every worker is gone the
job stops with the frames so far kept. Ctrl-C stops every worker at once; the frames
they were rendering render again on resume.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ray
import ray.exceptions

from pipeline.config.schema import AnimationMode, Dtype, RunConfig
from pipeline.control.maps import ControlMaps
from pipeline.errors import RotoscopeError
from pipeline.jobs.manifest import FrameRecord, Manifest, image_digest
from pipeline.jobs.progress import Progress
from pipeline.jobs.report import JobReport
from pipeline.jobs.run_folder import RunFolder
from pipeline.jobs.writer import FrameOutcome, FrameWriter
from pipeline.plan.rows import FrameJob
from pipeline.render.executors.local import WRITE_THREADS, note_sequential
from pipeline.render.executors.work import RenderWork, is_coherent
from pipeline.render.producer import FrameProducer, check_size, manifest_commit, render_frames
from pipeline.render.renderer import Renderer
from pipeline.render.units import (
    ChainUnit,
    FrameList,
    FramesUnit,
    PendingFrame,
    ShippedMap,
    ShippedMaps,
    WorkUnit,
)
from pipeline.source.base import Frame, Selection, Source, SourceInfo
from pipeline.source.open import keeps_own_sizes, open_source
from pipeline.source.prefetch import PREFETCH_FRAMES, Prefetch

log = logging.getLogger("rotoscope")

# Units ready per worker beyond the one it renders: its next one is decoded, keyed and
# queued when it finishes, so it waits only for the call to reach it.
AHEAD_PER_WORKER = 1
_POLL_SECONDS = 0.2


def render_on_ray(work: RenderWork) -> None:
    """Render ``work`` on Ray workers (see the module docstring)."""
    cfg = work.cfg
    cluster = RayCluster(cfg)
    work.progress.exclude(cluster.started_seconds)  # joining a cluster is not frame time
    try:
        worker_cfg = cluster.worker_config()
        work.identity = worker_identity(worker_cfg, work.identity)
        with (
            open_source(cfg.input, keeps_own_sizes(cfg)) as source,
            ControlMaps(cfg, work.folder, work.rows[0].width, work.rows[0].height) as maps,
            FrameWriter(manifest_commit(work.manifest, work.folder), threads=0) as writer,
        ):
            pool = WorkerPool(work, cluster, worker_cfg, writer, source)
            control = maps if cfg.controlnet.units else None
            producer = FrameProducer(
                work.folder, work.manifest, work.identity, refuse_renderer, work.progress,
                work.report, work.stop, control=control, writer=writer,
            )  # fmt: skip
            feed = Prefetch(source, PREFETCH_FRAMES, digest=image_digest)
            try:
                if cfg.animation.mode is AnimationMode.loopback:
                    note_sequential(cfg, "loopback renders each frame from the one before")
                    feed_loopback(pool, work.rows, feed)
                elif is_coherent(cfg):
                    note_sequential(cfg, "coherence renders each segment's frames in order")
                    feed_segments(pool, producer, work.rows, feed, control)
                else:
                    render_frames(producer, work.rows, feed, cfg.render.batch_size, pool.frames)
                pool.finish()
            finally:
                pool.close()
    finally:
        cluster.close()


def refuse_renderer() -> Renderer:
    """The driver of a Ray render never loads the model: its workers do."""
    raise AssertionError("the Ray driver renders nothing itself")


def worker_identity(worker_cfg: RunConfig, identity: str) -> str:
    """The frames' model identity as the workers load it: their dtype, which may differ
    from the one this machine would pick (no GPU here, GPUs there), is part of it (the
    device is not, so it is computed here as if on the CPU)."""
    from pipeline.models.loader import model_identity

    lines = identity.split("\n")
    runtime = dataclasses.replace(worker_cfg.runtime, device="cpu")
    lines[0] = model_identity(worker_cfg.model, runtime)
    return "\n".join(lines)


def feed_loopback(pool: WorkerPool, rows: list[FrameJob], feed: Source) -> None:
    """A loopback is one chain: the first frame and every row, to one worker."""
    first = next(iter(feed), None)
    feed.close()
    if first is None:
        raise RotoscopeError(f"input.path '{feed.info.path}' has no frame to start from")
    check_size(rows[0], first.image.shape)
    pool.chain([first], [row.index for row in rows], {}, loopback=True)


def feed_segments(
    pool: WorkerPool,
    producer: FrameProducer,
    rows: list[FrameJob],
    feed: Source,
    maps: ControlMaps | None,
) -> None:
    """Each coherence segment, whole, to a worker (segments start at their anchors)."""
    frames: list[Frame] = []
    shipped: dict[int, list[ShippedMap]] = {}
    for frame in feed:
        if frame.index >= len(rows):
            break
        job = rows[frame.index]
        check_size(job, frame.image.shape)
        if frames and job.segment_start == job.index:
            pool.chain(frames, [f.index for f in frames], shipped, loopback=False)
            frames, shipped = [], {}
        frames.append(frame)
        if maps is not None:
            shipped[frame.index] = [
                ShippedMap(unit_map.key, unit_map.path, unit_map.load())
                for unit_map in maps.maps(frame.index, frame.image)
            ]
    if frames:
        pool.chain(frames, [f.index for f in frames], shipped, loopback=False)
    producer.note_source_end(rows, feed)


class RayCluster:
    """The Ray this job runs on: a local one, started when the first unit needs a worker
    (a re-run that finds every frame current never starts it), or a cluster it joins
    (at once: what it offers decides the workers' device)."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.started_seconds = 0.0
        self.wants_cpu = cfg.runtime.device.strip().lower() == "cpu"
        if cfg.runtime.ray_address:
            self.start()
            self.on_gpu = self.gpus > 0 and not self.wants_cpu
        else:
            self.on_gpu = local_gpus(cfg) > 0

    def start(self) -> None:
        """Start (or join) Ray; refuse more workers than it has devices for."""
        if ray.is_initialized():
            return
        workers = self.cfg.runtime.workers
        address = self.cfg.runtime.ray_address
        started = time.monotonic()
        graceful = signal.getsignal(signal.SIGTERM)  # ray.init replaces it with an exit
        try:
            if address:
                ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
            else:
                ray.init(
                    address="local",  # a Ray of its own, even where another one runs
                    num_cpus=workers,
                    num_gpus=local_gpus(self.cfg),
                    include_dashboard=False,
                    logging_level=logging.ERROR,
                    log_to_driver=False,
                )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RotoscopeError(
                f"cannot start Ray (runtime.ray_address={address or 'unset'}): {exc}",
                "check the address (ray status on the head node), or unset runtime.ray_address",
            ) from exc
        finally:
            signal.signal(signal.SIGTERM, graceful)  # SIGTERM stops after the frame again
        self.started_seconds = time.monotonic() - started
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 0))
        have = self.gpus if self.gpus > 0 and not self.wants_cpu else cpus
        if workers > have:
            kind = "GPUs" if self.gpus > 0 and not self.wants_cpu else "CPUs"
            self.close()
            raise RotoscopeError(
                f"runtime.workers={workers} but the Ray cluster has {have} {kind}",
                f"use runtime.workers={max(have, 1)} or add machines to the cluster",
            )

    def worker_config(self) -> RunConfig:
        """The config a worker renders with: its device, and the dtype that goes with it
        spelled out, so the frames' keys name what the workers compute."""
        import torch

        from pipeline.models.devices import resolve_dtype

        device = "cuda" if self.on_gpu else "cpu"
        dtype = resolve_dtype(self.cfg.runtime.dtype, torch.device(device))
        runtime = dataclasses.replace(
            self.cfg.runtime, device=device, dtype=Dtype(str(dtype).removeprefix("torch."))
        )
        return dataclasses.replace(self.cfg, runtime=runtime)

    def actor_options(self) -> dict[str, Any]:
        return {"num_cpus": 1, "num_gpus": 1 if self.on_gpu else 0, "max_restarts": 0}

    def close(self) -> None:
        if ray.is_initialized():
            ray.shutdown()


def local_gpus(cfg: RunConfig) -> int:
    """GPUs a local Ray offers: this machine's CUDA devices (none with runtime.device=cpu)."""
    import torch

    if cfg.runtime.device.strip().lower() == "cpu" or not torch.cuda.is_available():
        return 0
    return torch.cuda.device_count()


class WorkerPool:
    """The actors of one render, the units they are given and the outcomes they return.

    Only the driver's main thread counts progress and fills the writer; one thread per
    actor only hands it units and passes back what comes out.
    """

    def __init__(
        self,
        work: RenderWork,
        cluster: RayCluster,
        worker_cfg: RunConfig,
        writer: FrameWriter,
        source: Source,
    ) -> None:
        self.work = work
        self.cluster = cluster
        self.worker_cfg = worker_cfg
        self.writer = writer
        self.info, self.selection = source.info, source.selection
        self.units: queue.Queue[WorkUnit | None] = queue.Queue()
        self.results: queue.Queue[tuple[str, int, Any]] = queue.Queue()
        self.outstanding: dict[int, WorkUnit] = {}
        self.returned: dict[int, FrameRecord | None] = {}  # frames whose outcome arrived
        self.threads: list[threading.Thread] = []
        self.actors: list[Any] = []
        self.alive = 0
        self._numbers = 0

    # --- feeding ---

    def frames(self, batch: list[PendingFrame]) -> None:
        """Hand a batch of independent frames to a worker (their places in the writer's
        line were taken when the driver saw them)."""
        self._submit(FramesUnit(self._next_number(), batch))

    def chain(
        self,
        frames: list[Frame],
        indices: list[int],
        maps: dict[int, list[ShippedMap]],
        loopback: bool,
    ) -> None:
        """Hand a chain (a segment, or a loopback) to a worker."""
        for index in indices:
            self.writer.reserve(index)
        records = self.work.manifest.relevant(indices)
        self._submit(ChainUnit(self._next_number(), loopback, frames, indices, maps, records))

    def _next_number(self) -> int:
        self._numbers += 1
        return self._numbers

    def _submit(self, unit: WorkUnit) -> None:
        if not self.actors:
            self._start()
        self.outstanding[unit.number] = unit
        self.units.put(unit)
        self._pump(until=lambda: len(self.outstanding) <= self.alive * (1 + AHEAD_PER_WORKER))

    def finish(self) -> None:
        """Wait until every unit handed out has come back."""
        self._pump(until=lambda: not self.outstanding)

    # --- workers ---

    def _start(self) -> None:
        """Start Ray and the actors, and load the model in each (in parallel); none of
        it is frame time."""
        work = self.work
        started = time.monotonic()
        self.cluster.start()
        actor_class = ray.remote(RenderWorker).options(**self.cluster.actor_options())
        setup = WorkerSetup(
            self.worker_cfg, str(work.folder.path), work.rows, work.identity, self.info,
            self.selection,
        )  # fmt: skip
        workers = work.cfg.runtime.workers
        self.actors = [actor_class.remote(setup, number) for number in range(workers)]
        try:
            devices = ray.get([actor.load.remote() for actor in self.actors])
        except ray.exceptions.RayTaskError as exc:
            raise unwrapped(exc) from None
        except ray.exceptions.RayActorError as exc:
            raise RotoscopeError(
                f"a Ray worker died while loading the model: {first_line(exc)}",
                "see rotoscope.log in the run folder; on a cluster, check that every node has "
                "rotoscope installed and sees the model and the run folder at the same paths",
            ) from None
        seconds = time.monotonic() - started
        work.progress.exclude(seconds)
        work.report.model_load_seconds = round(seconds, 3)
        work.report.device = f"ray: {len(devices)} workers ({', '.join(devices)})"
        log.info("ray: %d workers ready in %.1f s (%s)", len(devices), seconds, ", ".join(devices))
        self.alive = len(self.actors)
        for number, actor in enumerate(self.actors):
            thread = threading.Thread(
                target=self._serve, args=(actor, number), name=f"ray-worker-{number}", daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def _serve(self, actor: Any, number: int) -> None:
        """Give ``actor`` units until there are none; pass back what it returns."""
        while True:
            unit = self.units.get()
            if unit is None:
                self.units.put(None)  # the next thread stops too
                return
            method = actor.render_frames if isinstance(unit, FramesUnit) else actor.render_chain
            try:
                for ref in method.remote(unit):
                    self.results.put(("outcome", unit.number, ray.get(ref)))
                self.results.put(("done", unit.number, None))
            except ray.exceptions.RayActorError as exc:
                self.results.put(("died", unit.number, (number, exc)))
                return
            except ray.exceptions.RayTaskError as exc:
                self.results.put(("failed", unit.number, exc))
                return

    # --- results (driver's main thread) ---

    def _pump(self, until: Callable[[], bool]) -> None:
        """Take in outcomes until ``until()`` holds; honour a stop request meanwhile."""
        while not until():
            self.work.stop.check()
            try:
                kind, number, payload = self.results.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            self._handle(kind, number, payload)

    def _handle(self, kind: str, number: int, payload: Any) -> None:
        if kind == "outcome":
            self._take(payload)
        elif kind == "done":
            self.outstanding.pop(number, None)
        elif kind == "died":
            self.work.stop.check()  # Ctrl-C in a terminal reaches the workers too
            self._worker_died(number, *payload)
        else:
            raise unwrapped(payload)

    def _take(self, outcome: FrameOutcome) -> None:
        if outcome.index in self.returned:  # a chain run again after a worker died
            return
        self.returned[outcome.index] = outcome.record
        progress, report = self.work.progress, self.work.report
        if outcome.rendered:
            report.count_render(outcome.index, outcome.reason or "")
            progress.advance()
        else:
            report.reused += 1
            progress.advance(reused=True)
        self.writer.fill(outcome)

    def _worker_died(self, number: int, worker: int, exc: BaseException) -> None:
        self.alive -= 1
        unit = self.outstanding.pop(number)
        done = set(self.returned)
        if isinstance(unit, FramesUnit):
            rest: WorkUnit = unit.without(done)
            left = [frame.job.index for frame in rest.frames]  # type: ignore[union-attr]
        else:
            kept = [record for record in self.returned.values() if record is not None]
            rest = unit.without(done, kept)
            left = [index for index in unit.indices if index not in done]
        if self.alive == 0:
            raise RotoscopeError(
                f"every Ray worker died (worker {worker} last: {first_line(exc)})",
                "finished frames are kept; run the same command to resume",
            )
        log.warning(
            "ray: worker %d died (%s); its %d unfinished frames go to another worker",
            worker, first_line(exc), len(left),
        )  # fmt: skip
        if left:
            self.outstanding[number] = rest
            self.units.put(rest)

    def close(self) -> None:
        """Stop the workers (at once, when the job did not finish) and keep every frame
        they returned."""
        self.units.put(None)
        if any(thread.is_alive() for thread in self.threads) and self.outstanding:
            for actor in self.actors:
                ray.kill(actor)
        for thread in self.threads:
            thread.join()
        while True:  # outcomes that arrived while stopping: their frames are durable
            try:
                kind, _, payload = self.results.get_nowait()
            except queue.Empty:
                break
            if kind == "outcome":
                self._take(payload)


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def unwrapped(exc: ray.exceptions.RayTaskError) -> BaseException:
    """The error a worker raised (a RotoscopeError keeps its one-line message)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, RotoscopeError):
        return RotoscopeError(str(cause))
    return RuntimeError(f"a Ray worker failed: {first_line(cause or exc)}")


# --- the worker side ---


@dataclasses.dataclass(frozen=True)
class WorkerSetup:
    """What every worker of a render gets once, at its start."""

    cfg: RunConfig  # with the worker's device and dtype
    run_dir: str
    rows: list[FrameJob]
    identity: str
    info: SourceInfo
    selection: Selection


class RenderWorker:
    """A Ray actor: loads the model once, renders the units it is given."""

    def __init__(self, setup: WorkerSetup, number: int) -> None:
        self.setup = setup
        self.number = number
        self.folder = RunFolder(Path(setup.run_dir))
        self.renderer: Renderer | None = None
        self.chain: Any = None
        handler = logging.FileHandler(self.folder.log, encoding="utf-8")
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s worker {number}: %(message)s")
        )
        logger = logging.getLogger("rotoscope")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)

    def load(self) -> str:
        """Load the model; this worker's device, for the report."""
        from pipeline.models.devices import describe_device
        from pipeline.render.loading import load_renderer, plan_networks

        cfg = self.setup.cfg
        self.renderer = load_renderer(cfg, self.setup.rows, plan_networks(cfg))
        return describe_device(self.renderer.model.device)

    def render_frames(self, unit: FramesUnit) -> Iterator[FrameOutcome]:
        """Render a batch of independent frames; each outcome once its file is durable."""

        def run(producer: FrameProducer) -> None:
            for frame in unit.frames:
                producer.writer.reserve(frame.job.index)
            producer.render_batch(unit.frames)

        yield from self._stream(run, [], None)

    def render_chain(self, unit: ChainUnit) -> Iterator[FrameOutcome]:
        """Render a segment or a loopback in order, reusing its current frames."""
        from pipeline.render.coherence.chain import CoherenceChain
        from pipeline.render.coherent import render_coherent
        from pipeline.render.producer import render_loopback

        setup = self.setup

        def frames() -> FrameList:
            return FrameList(setup.info, setup.selection, unit.frames)

        def run(producer: FrameProducer) -> None:
            if unit.loopback:
                render_loopback(producer, setup.rows, frames(), setup.cfg.animation)
                return
            if self.chain is None:
                self.chain = CoherenceChain(setup.cfg.coherence, self.folder, setup.rows)
            render_coherent(producer, setup.rows, frames(), self.chain, frames)

        yield from self._stream(run, unit.records, ShippedMaps(unit.maps) if unit.maps else None)

    def _stream(
        self,
        run: Callable[[FrameProducer], None],
        records: list[FrameRecord],
        maps: ShippedMaps | None,
    ) -> Iterator[FrameOutcome]:
        """Run ``run`` in a thread with a producer of this worker; yield each outcome as
        soon as it is committed (its file durable, the frames before it done)."""
        outcomes: queue.Queue[FrameOutcome | BaseException | None] = queue.Queue()
        setup = self.setup

        def body() -> None:
            try:
                with FrameWriter(outcomes.put, WRITE_THREADS) as writer:
                    producer = UnitProducer(
                        self.folder, Manifest(self.folder, records), setup.identity,
                        self._renderer, Progress(0, log_every=math.inf),
                        JobReport(setup.run_dir), control=maps, writer=writer,
                    )  # fmt: skip
                    run(producer)
                outcomes.put(None)
            except BaseException as exc:  # raised in the generator below
                outcomes.put(exc)

        thread = threading.Thread(target=body, name="unit", daemon=True)
        thread.start()
        while (item := outcomes.get()) is not None:
            if isinstance(item, BaseException):
                thread.join()
                raise item
            yield item
        thread.join()

    def _renderer(self) -> Renderer:
        assert self.renderer is not None, "load() first"
        return self.renderer


class UnitProducer(FrameProducer):
    """A worker's producer: it sees its unit's frames only, so the input as a whole
    (skipped frames, an early end) is the driver's to report."""

    def note_source_end(self, rows: list[FrameJob], source: Source) -> None:
        return None
