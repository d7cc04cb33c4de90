"""Queues of jobs through Hydra multirun: every job runs, and a summary comes last.

``rotoscope -m input.path=a.mp4,b.mp4 guidance_scale=5,7`` runs each combination as its
own job in its own run folder. A job that fails is logged and the queue moves on (the
CLI returns a status instead of exiting under multirun); this callback collects each
job's outcome and prints one line per job at the end, writes ``queue.json`` next to the
run folders, and makes the command exit 1 if any job failed, so scripts notice.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

log = logging.getLogger("rotoscope")

QUEUE_NAME = "queue.json"


class QueueSummary(Callback):
    """Hydra callback: remember each multirun job's outcome, summarise at the end."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return
        if job_return.status == JobStatus.COMPLETED and isinstance(job_return.return_value, dict):
            outcome = dict(job_return.return_value)
        else:
            outcome = {"status": "failed", "error": repr(job_return._return_value)}
        outcome["overrides"] = list(job_return.overrides or [])
        self.jobs.append(outcome)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.jobs:
            return
        failed = [job for job in self.jobs if job.get("status") != "done"]
        log.info(
            "queue: %d jobs, %d done, %d failed",
            len(self.jobs),
            len(self.jobs) - len(failed),
            len(failed),
        )
        for number, job in enumerate(self.jobs):
            where = ", ".join(job.get("outputs") or []) or job.get("run_dir", "")
            detail = job.get("error") or where
            log.info(
                "  job %d %s: %s  [%s]",
                number,
                job.get("status"),
                detail,
                " ".join(job["overrides"]),
            )
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / QUEUE_NAME).write_text(json.dumps(self.jobs, indent=2) + "\n")
        if failed:
            sys.exit(1)
