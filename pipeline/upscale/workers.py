"""The upscale stage on Ray workers: one actor per GPU (or CPU), one writer of the record.

Each actor loads the upscaler once and upscales the frames it is handed, one call per
frame: it reads the rendered frame from the run folder and writes the result there
atomically (a filesystem every machine sees at the same path, as for a Ray render), and
returns its record. This process hands out frames as actors free up (each holds one
frame and has the next one queued), writes each returned record to ``upscaled.jsonl``
and counts progress, so the record has one writer whatever the worker count. A worker
that dies loses only the frames it held: they go to the others. Ctrl-C stops handing out
frames, takes in those under way and stops.

Ray is imported only when this module is, from the stage, when ``runtime.workers > 1``
or ``runtime.ray_address`` asks for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import ray
import ray.exceptions

from pipeline.config.schema import RunConfig
from pipeline.errors import RotoscopeError
from pipeline.models.ray_cluster import RayCluster, worker_error
from pipeline.models.weights import first_line
from pipeline.records.interrupts import GracefulStop
from pipeline.records.progress import Progress
from pipeline.records.run_folder import RunFolder
from pipeline.records.upscaled import UpscaledFrame
from pipeline.upscale.delivery import Upscaler
from pipeline.upscale.executors import Commit, frame_upscaler, precision_of
from pipeline.upscale.frames import FrameUpscaler
from pipeline.upscale.jobs import UpscaleJob, make_upscaled

log = logging.getLogger("rotoscope")

# How long the driver waits on its workers before it checks for Ctrl-C again.
POLL_SECONDS = 0.2
# Frames each worker holds: the one it upscales and the next, so it never waits for us.
HELD_PER_WORKER = 2


class UpscaleWorker:
    """A Ray actor: the upscaler loaded once, one frame per call."""

    def __init__(self, cfg: RunConfig, run_dir: str, upscaler: Upscaler) -> None:
        self.cfg = cfg
        self.folder = RunFolder(Path(run_dir))
        self.upscaler = upscaler
        self.upscale: FrameUpscaler | None = None

    def load(self) -> str:
        """Load the upscaler; this worker's device, for the log."""
        from pipeline.models.devices import describe_device, resolve_device

        self.upscale = frame_upscaler(self.cfg, self.upscaler)
        return describe_device(resolve_device(self.cfg.runtime.device))

    def run(self, job: UpscaleJob) -> UpscaledFrame:
        assert self.upscale is not None, "load() first"
        return make_upscaled(job, self.folder, self.upscale, self.upscaler.name)


class RayUpscale:
    """The upscale stage's executor on Ray (see the module docstring)."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.cluster = RayCluster(cfg)
        self.worker_cfg = self.cluster.worker_config()
        self.precision = precision_of(self.worker_cfg)
        self.actors: list[Any] = []

    def __enter__(self) -> RayUpscale:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.cluster.close()

    def run(
        self,
        folder: RunFolder,
        jobs: Sequence[UpscaleJob],
        upscaler: Upscaler,
        commit: Commit,
        stop: GracefulStop,
        progress: Progress,
    ) -> None:
        with progress.excluding():  # starting Ray and loading weights is not frame time
            self._start(folder, upscaler, len(jobs), stop)
        waiting = list(reversed(jobs))  # popped from the end: in frame order
        held: dict[Any, tuple[int, UpscaleJob]] = {}  # call -> (worker, its frame)
        alive = set(range(len(self.actors)))
        stopping = False
        while waiting or held:
            if not stopping:
                for number in sorted(alive):
                    while waiting and _count(held, number) < HELD_PER_WORKER:
                        job = waiting.pop()
                        held[self.actors[number].run.remote(job)] = (number, job)
            done, _ = ray.wait(list(held), num_returns=1, timeout=POLL_SECONDS)
            for call in done:
                number, job = held.pop(call)
                try:
                    commit(ray.get(call))
                except ray.exceptions.RayActorError as exc:
                    alive.discard(number)
                    waiting.append(job)
                    log.warning("ray: upscale worker %d died (%s)", number, first_line(exc))
                    if not alive:
                        raise RotoscopeError(
                            f"every Ray worker died (worker {number} last: {first_line(exc)})",
                            "upscaled frames are kept; run the same command to resume",
                        ) from None
                except ray.exceptions.RayTaskError as exc:
                    raise worker_error(exc, "upscale worker") from None
            if stop.requested is not None:
                stopping = True
                waiting.clear()
                if not held:
                    stop.check()

    def _start(
        self, folder: RunFolder, upscaler: Upscaler, frames: int, stop: GracefulStop
    ) -> None:
        started = time.monotonic()
        self.cluster.start()
        actor_class = ray.remote(UpscaleWorker).options(**self.cluster.actor_options())
        count = min(self.cfg.runtime.workers, frames)
        self.actors = [
            actor_class.remote(self.worker_cfg, str(folder.path), upscaler) for _ in range(count)
        ]
        loads = [actor.load.remote() for actor in self.actors]
        try:
            while ray.wait(loads, num_returns=len(loads), timeout=POLL_SECONDS)[1]:
                stop.check()
            devices = ray.get(loads)
        except ray.exceptions.RayTaskError as exc:
            raise worker_error(exc, "upscale worker") from None
        except ray.exceptions.RayActorError as exc:
            raise RotoscopeError(
                f"a Ray worker died while loading the upscaler: {first_line(exc)}",
                "see rotoscope.log in the run folder; on a cluster, check that every node "
                "sees the upscaler and the run folder at the same paths",
            ) from None
        log.info(
            "ray: %d upscale workers ready in %.1f s (%s)",
            len(devices), time.monotonic() - started, ", ".join(devices),
        )  # fmt: skip


def _count(held: dict[Any, tuple[int, UpscaleJob]], number: int) -> int:
    return sum(1 for worker, _ in held.values() if worker == number)
