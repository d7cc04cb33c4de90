"""The Ray a job's workers run on: a local one started for it (which ends with this
process, however it ends: :mod:`pipeline.models.ray_guard`), or a cluster it joins.

Shared by the stages that hand work to Ray actors (the render's executor, the upscale
stage): one place decides how many workers a machine or cluster can hold, and on which
device and precision they run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
from typing import Any

import ray

from pipeline.config.schema import Dtype, RunConfig
from pipeline.errors import RotoscopeError
from pipeline.models.ray_guard import RayGuard
from pipeline.models.weights import first_line


class RayCluster:
    """The Ray this job runs on: a local one, started when the first unit needs a worker
    (a re-run that finds every frame current never starts it), or a cluster it joins
    (at once: what it offers decides the workers' device)."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.guard: RayGuard | None = None
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
                self.start_local(workers)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            self.close()
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

    def start_local(self, workers: int) -> None:
        """A Ray of its own (even where another one runs), whose processes a guard ends
        if this process is killed before it can shut them down."""
        self.guard = RayGuard.start()
        with self.guard.marking() if self.guard else contextlib.nullcontext():
            context = ray.init(
                address="local",
                num_cpus=workers,
                num_gpus=local_gpus(self.cfg),
                include_dashboard=False,
                logging_level=logging.ERROR,
                log_to_driver=False,
            )
        if self.guard:
            # a local ray.init returns a RayContext (typed as its base), which has address_info
            session = context.address_info["session_dir"]  # type: ignore[attr-defined]
            self.guard.watch(session)

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
        if self.guard is not None:
            self.guard.close()  # ends what shutdown left, if anything
            self.guard = None


def local_gpus(cfg: RunConfig) -> int:
    """GPUs a local Ray offers: this machine's CUDA devices (none with runtime.device=cpu)."""
    import torch

    if cfg.runtime.device.strip().lower() == "cpu" or not torch.cuda.is_available():
        return 0
    return torch.cuda.device_count()


def worker_error(exc: BaseException, worker: str) -> BaseException:
    """The error a Ray ``worker`` raised, as this process reports it: a RotoscopeError
    keeps its one-line message, anything else is named in one line."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, RotoscopeError):
        return RotoscopeError(str(cause))
    return RuntimeError(f"a Ray {worker} failed: {first_line(cause or exc)}")
