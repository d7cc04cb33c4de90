"""The driver of a Ray render: the strategy's units handed to workers, one manifest writer.

See :mod:`pipeline.render.executors.ray` for the whole picture.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from typing import Any

import ray
import ray.exceptions

from pipeline.config.schema import RunConfig
from pipeline.control.maps import ControlMaps
from pipeline.errors import RotoscopeError
from pipeline.models.ray_cluster import RayCluster, worker_error
from pipeline.models.weights import first_line
from pipeline.records.manifest import FrameRecord, image_digest
from pipeline.records.writer import FrameOutcome, FrameWriter
from pipeline.render.executors.local import note_sequential
from pipeline.render.executors.ray.worker import POLL_SECONDS, RenderWorker, WorkerSetup
from pipeline.render.executors.work import RenderWork
from pipeline.render.inputs import open_frames
from pipeline.render.producer import FrameProducer, manifest_commit
from pipeline.render.renderer import Renderer
from pipeline.render.strategies import strategy_for
from pipeline.render.units import ChainUnit, FramesUnit, PendingFrame, ShippedMap, WorkUnit
from pipeline.source.base import Frame, Source
from pipeline.source.prefetch import PREFETCH_FRAMES, Prefetch

log = logging.getLogger("rotoscope")

# Units ready per worker beyond the one it renders: its next one is decoded, keyed and
# queued when it finishes, so it waits only for the call to reach it.
AHEAD_PER_WORKER = 1


def render_on_ray(work: RenderWork) -> None:
    """Render ``work`` on Ray workers (see the package docstring)."""
    cfg = work.cfg
    with work.progress.excluding():  # joins runtime.ray_address at once: not frame time
        cluster = RayCluster(cfg)
    try:
        worker_cfg = cluster.worker_config()
        work.identity = worker_identity(worker_cfg, work.identity)
        strategy = strategy_for(cfg, work.folder, work.rows)
        note_sequential(cfg, strategy.sequential)
        with (
            open_frames(cfg, work.rows) as source,
            ControlMaps(cfg, work.folder, work.rows[0].width, work.rows[0].height) as maps,
            FrameWriter(manifest_commit(work.manifest, work.folder), threads=0) as writer,
            # closed first: its thread stops before the source it reads from closes
            Prefetch(source, PREFETCH_FRAMES, digest=image_digest) as feed,
        ):
            control = maps if cfg.controlnet.units else None
            pool = WorkerPool(work, cluster, worker_cfg, writer, source, control)
            producer = FrameProducer(
                work.folder, work.manifest, work.identity, refuse_renderer, work.progress,
                work.report, work.stop, control=control, writer=writer,
            )  # fmt: skip
            try:
                strategy.feed(producer, work.rows, feed, pool)
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


class WorkerEvent(Enum):
    """What a worker's threads in the driver report to its main thread."""

    assigned = "assigned"  # a unit went to the worker (payload: the unit's number)
    outcome = "outcome"  # a frame is durable (payload: its FrameOutcome)
    died = "died"  # the worker's process is gone (payload: Ray's error)
    failed = "failed"  # a call failed on the worker (payload: the error)


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
        control: ControlMaps | None,
    ) -> None:
        """``control`` computes the control maps of the chains it ships (batches of
        independent frames carry theirs already)."""
        self.work = work
        self.cluster = cluster
        self.worker_cfg = worker_cfg
        self.writer = writer
        self.control = control
        self.info, self.selection = source.info, source.selection
        self.units: queue.Queue[WorkUnit | None] = queue.Queue()
        self.results: queue.Queue[tuple[WorkerEvent, int, Any]] = queue.Queue()
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
        frames: Iterable[Frame],
        indices: Sequence[int] | None = None,
        makes: Callable[[int], bool] | None = None,
        reads: Sequence[int] = (),
        maps_ahead: bool = True,
    ) -> None:
        """Hand a chain (a segment, a loopback, a cadence's span) to a worker: its frames
        decoded, with their control maps (unless the worker makes them: not
        ``maps_ahead``), the records of its frames the worker may reuse and of the earlier
        frames it reads."""
        decoded = list(frames)
        made = (
            list(indices)
            if indices is not None
            else [frame.index for frame in decoded if makes is None or makes(frame.index)]
        )
        if not made:  # its frames are unreadable: nothing to make, nothing to wait for
            return
        shipped: dict[int, list[ShippedMap]] = {}
        if self.control is not None and maps_ahead:
            for frame in decoded:
                shipped[frame.index] = [
                    ShippedMap(unit_map.key, unit_map.path, unit_map.load())
                    for unit_map in self.control.maps(frame.index, frame.image)
                ]
        for index in made:
            self.writer.reserve(index)
        records = self.work.manifest.relevant(made)
        current = self.work.manifest.records
        records += [current[index] for index in reads if index in current]
        unit = ChainUnit(self._next_number(), decoded, made, shipped, records, list(reads))
        self._submit(unit)

    def wait(self) -> None:
        """Take in outcomes until every unit handed out has come back (their lines are
        written as they arrive: this driver's writer writes inline)."""
        self._pump(until=lambda: not self.outstanding)

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
            raise worker_error(exc, "worker") from None
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
            while ray.wait(loads, num_returns=len(loads), timeout=POLL_SECONDS)[1]:
                work.stop.check()
            devices = ray.get(loads)
        except ray.exceptions.RayTaskError as exc:
            raise worker_error(exc, "worker") from None
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
            self.results.put((WorkerEvent.assigned, number, unit.number))
            try:
                ray.get(actor.render_unit.remote(unit))
            except ray.exceptions.RayActorError as exc:
                self.results.put((WorkerEvent.died, number, exc))
                return
            except Exception as exc:  # the task failed, or Ray could not run it
                self.results.put((WorkerEvent.failed, number, exc))
                return

    def _listen(self, actor: Any, number: int) -> None:
        """Pass back the outcomes ``actor`` streams, as its frames become durable."""
        try:
            for ref in actor.outcomes.remote():
                self.results.put((WorkerEvent.outcome, number, ray.get(ref)))
        except ray.exceptions.RayActorError as exc:
            self.results.put((WorkerEvent.died, number, exc))
        except Exception as exc:  # the task failed, or Ray could not run it
            self.results.put((WorkerEvent.failed, number, exc))

    # --- results (driver's main thread) ---

    def _pump(self, until: Callable[[], bool]) -> None:
        """Take in outcomes until ``until()`` holds; honour a stop request meanwhile."""
        while not until():
            self.work.stop.check()
            try:
                kind, worker, payload = self.results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            self._handle(kind, worker, payload)

    def _handle(self, kind: WorkerEvent, worker: int, payload: Any) -> None:
        if kind is WorkerEvent.outcome:
            self._take(payload)
        elif kind is WorkerEvent.assigned:
            self.assigned.setdefault(worker, set()).add(payload)
        elif kind is WorkerEvent.died:
            self.work.stop.check()  # Ctrl-C in a terminal reaches the workers too
            self._worker_died(worker, payload)
        else:
            self.work.stop.check()  # a task ended by the same Ctrl-C: stop, with the resume line
            raise worker_error(payload, "worker")

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
            if kind is WorkerEvent.outcome:
                self._take(payload)
