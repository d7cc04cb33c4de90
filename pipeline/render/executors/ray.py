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
    with work.progress.excluding():  # joins runtime.ray_address at once: not frame time
        cluster = RayCluster(cfg)
    try:
        worker_cfg = cluster.worker_config()
        work.identity = worker_identity(worker_cfg, work.identity)
        with (
            open_source(cfg.input, keeps_own_sizes(cfg)) as source,
            ControlMaps(cfg, work.folder, work.rows[0].width, work.rows[0].height) as maps,
            FrameWriter(manifest_commit(work.manifest, work.folder), threads=0) as writer,
            # closed first: its thread stops before the source it reads from closes
            Prefetch(source, PREFETCH_FRAMES, digest=image_digest) as feed,
        ):
            pool = WorkerPool(work, cluster, worker_cfg, writer, source)
            control = maps if cfg.controlnet.units else None
            producer = FrameProducer(
                work.folder, work.manifest, work.identity, refuse_renderer, work.progress,
                work.report, work.stop, control=control, writer=writer,
            )  # fmt: skip
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
                with work.progress.excluding():
                    pool.close()
    finally:
        with work.progress.excluding():  # stopping Ray takes seconds, as starting it does
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

    Each actor has two threads here: one hands it units, one at a time (a call returns
    once the unit is rendered, while its PNGs are still being written, so the next unit
    starts at once), and one takes in the outcomes it streams back as its frames become
    durable. Only the driver's main thread counts progress and fills the writer.
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
        self.outstanding: dict[int, WorkUnit] = {}  # by unit number, until all returned
        self.waiting: dict[int, set[int]] = {}  # each unit's frames not returned yet
        self.unit_of: dict[int, int] = {}  # frame index -> unit number
        self.assigned: dict[int, set[int]] = {}  # worker -> its unit numbers
        self.returned: dict[int, FrameRecord | None] = {}  # frames whose outcome arrived
        self.dead: set[int] = set()
        self.threads: list[threading.Thread] = []
        self.actors: list[Any] = []
        self._numbers = 0

    @property
    def alive(self) -> int:
        return len(self.actors) - len(self.dead)

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
        self.waiting[unit.number] = set(unit.indices)
        self.unit_of.update((index, unit.number) for index in unit.indices)
        self.units.put(unit)
        self._pump(until=lambda: len(self.outstanding) <= self.alive * (1 + AHEAD_PER_WORKER))

    def finish(self) -> None:
        """Wait until every frame handed out has come back; close the workers' writers
        (a write that failed on a worker is raised here)."""
        self._pump(until=lambda: not self.outstanding)
        live = [actor for number, actor in enumerate(self.actors) if number not in self.dead]
        try:
            ray.get([actor.close.remote() for actor in live])
        except ray.exceptions.RayTaskError as exc:
            raise unwrapped(exc) from None
        except ray.exceptions.RayActorError as exc:  # every frame is back: nothing is lost
            log.warning("ray: a worker died while closing (%s)", first_line(exc))

    # --- workers ---

    def _start(self) -> None:
        """Start Ray and the actors, and load the model in each (in parallel); none of
        it is frame time."""
        work = self.work
        started = time.monotonic()
        self.cluster.start()
        actor_class = ray.remote(RenderWorker).options(
            max_concurrency=2,
            **self.cluster.actor_options(),  # rendering, and streaming back
        )
        setup = WorkerSetup(
            self.worker_cfg, str(work.folder.path), work.rows, work.identity, self.info,
            self.selection,
        )  # fmt: skip
        workers = work.cfg.runtime.workers
        self.actors = [actor_class.remote(setup, number) for number in range(workers)]
        loads = [actor.load.remote() for actor in self.actors]
        try:
            # loading takes minutes on a cluster: Ctrl-C must not wait for it
            while ray.wait(loads, num_returns=len(loads), timeout=_POLL_SECONDS)[1]:
                work.stop.check()
            devices = ray.get(loads)
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
        for number, actor in enumerate(self.actors):
            self.assigned[number] = set()
            for target, name in ((self._serve, "units"), (self._listen, "outcomes")):
                thread = threading.Thread(
                    target=target, args=(actor, number), name=f"ray-{name}-{number}", daemon=True
                )
                thread.start()
                self.threads.append(thread)

    def _serve(self, actor: Any, number: int) -> None:
        """Give ``actor`` units, one after the other, until there are none."""
        while True:
            unit = self.units.get()
            if unit is None:
                self.units.put(None)  # the next thread stops too
                return
            self.results.put(("assigned", number, unit.number))
            method = actor.render_frames if isinstance(unit, FramesUnit) else actor.render_chain
            try:
                ray.get(method.remote(unit))
            except ray.exceptions.RayActorError as exc:
                self.results.put(("died", number, exc))
                return
            except Exception as exc:  # the task failed, or Ray could not run it
                self.results.put(("failed", number, exc))
                return

    def _listen(self, actor: Any, number: int) -> None:
        """Pass back the outcomes ``actor`` streams, as its frames become durable."""
        try:
            for ref in actor.outcomes.remote():
                self.results.put(("outcome", number, ray.get(ref)))
        except ray.exceptions.RayActorError as exc:
            self.results.put(("died", number, exc))
        except Exception as exc:  # the task failed, or Ray could not run it
            self.results.put(("failed", number, exc))

    # --- results (driver's main thread) ---

    def _pump(self, until: Callable[[], bool]) -> None:
        """Take in outcomes until ``until()`` holds; honour a stop request meanwhile."""
        while not until():
            self.work.stop.check()
            try:
                kind, worker, payload = self.results.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            self._handle(kind, worker, payload)

    def _handle(self, kind: str, worker: int, payload: Any) -> None:
        if kind == "outcome":
            self._take(payload)
        elif kind == "assigned":
            self.assigned.setdefault(worker, set()).add(payload)
        elif kind == "died":
            self.work.stop.check()  # Ctrl-C in a terminal reaches the workers too
            self._worker_died(worker, payload)
        else:
            self.work.stop.check()  # a task ended by the same Ctrl-C: stop, with the resume line
            raise unwrapped(payload)

    def _take(self, outcome: FrameOutcome) -> None:
        if outcome.index in self.returned:  # a chain run again after a worker died
            return
        self.returned[outcome.index] = outcome.record
        number = self.unit_of.pop(outcome.index)
        waiting = self.waiting[number]
        waiting.discard(outcome.index)
        if not waiting:
            del self.waiting[number], self.outstanding[number]
        progress, report = self.work.progress, self.work.report
        if outcome.rendered:
            report.count_render(outcome.index, outcome.reason or "")
            progress.advance()
        else:
            report.reused += 1
            progress.advance(reused=True)
        self.writer.fill(outcome)

    def _worker_died(self, worker: int, exc: BaseException) -> None:
        """Hand the dead worker's unfinished units to the others (both of its threads
        report its death: the second time there is nothing left to do)."""
        first = worker not in self.dead
        if first:
            self.dead.add(worker)
            if self.alive == 0:
                raise RotoscopeError(
                    f"every Ray worker died (worker {worker} last: {first_line(exc)})",
                    "finished frames are kept; run the same command to resume",
                )
        left = 0
        for number in sorted(self.assigned.pop(worker, set())):
            unit = self.outstanding.get(number)
            if unit is None:
                continue
            if isinstance(unit, FramesUnit):
                # whole: a smaller batch would round its frames differently; the frames
                # already returned come back again and are dropped (``_take``)
                rest: WorkUnit = unit
            else:
                kept = [
                    record
                    for index in unit.indices
                    if (record := self.returned.get(index)) is not None
                ]
                rest = unit.without(set(self.returned), kept)
            left += len(self.waiting[number])
            self.outstanding[number] = rest
            self.units.put(rest)
        if first or left:
            log.warning(
                "ray: worker %d died (%s); its %d unfinished frames go to another worker",
                worker, first_line(exc), left,
            )  # fmt: skip

    def close(self) -> None:
        """Stop the workers (at once, when the job did not finish) and keep every frame
        they returned."""
        self.units.put(None)
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


def unwrapped(exc: BaseException) -> BaseException:
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
    """A Ray actor: loads the model once, renders the units it is given, and streams each
    frame's outcome back once its file is durable.

    Its writer lives as long as the actor, so the PNGs of one unit are written while the
    next unit renders; :meth:`outcomes` (running beside the rendering, the actor has two
    threads) hands their outcomes back in the order they were rendered.
    """

    def __init__(self, setup: WorkerSetup, number: int) -> None:
        self.setup = setup
        self.number = number
        self.folder = RunFolder(Path(setup.run_dir))
        self.renderer: Renderer | None = None
        self.chain: Any = None
        self.finished: queue.Queue[FrameOutcome | None] = queue.Queue()
        self.writer = FrameWriter(self.finished.put, WRITE_THREADS)
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

    def outcomes(self) -> Iterator[FrameOutcome]:
        """Every frame's outcome, as it is committed (its file durable, the frames this
        worker rendered before it done), until :meth:`close`; a failed write is raised."""
        while True:
            try:
                outcome = self.finished.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                self.writer.check()
                continue
            if outcome is None:
                return
            yield outcome

    def render_frames(self, unit: FramesUnit) -> None:
        """Render a batch of independent frames (their files are written meanwhile)."""
        producer = self._producer([], None)
        for frame in unit.frames:
            self.writer.reserve(frame.job.index)
        producer.render_batch(unit.frames)

    def render_chain(self, unit: ChainUnit) -> None:
        """Render a segment or a loopback in order, reusing its current frames.

        A frame's outcome counts as committed here once it is handed to the driver, which
        writes its manifest line a little later: the previous frame's attention recording
        is deleted at that point. If the driver dies in between, the resumed segment
        rebuilds that recording by replaying from its anchor (the frames are the same).
        """
        from pipeline.render.coherence.chain import CoherenceChain
        from pipeline.render.coherence.strategy import render_coherent
        from pipeline.render.producer import render_loopback

        setup = self.setup

        def frames() -> FrameList:
            return FrameList(setup.info, setup.selection, unit.frames)

        producer = self._producer(unit.records, ShippedMaps(unit.maps) if unit.maps else None)
        if unit.loopback:
            render_loopback(producer, setup.rows, frames(), setup.cfg.animation)
            return
        if self.chain is None:
            self.chain = CoherenceChain(setup.cfg.coherence, self.folder, setup.rows)
        render_coherent(producer, setup.rows, frames(), self.chain, frames)

    def close(self) -> None:
        """Finish the writes (raising one that failed) and end :meth:`outcomes`."""
        try:
            self.writer.close()
            self.writer.check()
        finally:
            self.finished.put(None)

    def _producer(self, records: list[FrameRecord], maps: ShippedMaps | None) -> FrameProducer:
        """A producer for one unit: its frames' records to reuse, its control maps."""
        setup = self.setup
        return UnitProducer(
            self.folder, Manifest(self.folder, records), setup.identity, self._renderer,
            Progress(0, log_every=math.inf), JobReport(setup.run_dir), control=maps,
            writer=self.writer,
        )  # fmt: skip

    def _renderer(self) -> Renderer:
        assert self.renderer is not None, "load() first"
        return self.renderer


class UnitProducer(FrameProducer):
    """A worker's producer: it sees its unit's frames only, so the input as a whole
    (skipped frames, an early end) is the driver's to report."""

    def note_source_end(self, rows: list[FrameJob], source: Source) -> None:
        return None
