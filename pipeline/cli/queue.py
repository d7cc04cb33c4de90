"""Queues of jobs through Hydra multirun: every job runs, and a summary comes last.

``rotoscope -m input.path=a.mp4,b.mp4 guidance_scale=5,7`` runs each combination as its
own job in its own run folder (named by its input and the values that differ between
the jobs: :mod:`pipeline.records.naming`). A job that fails is logged and the queue
moves on (the CLI returns a status instead of exiting under multirun); this callback
collects each job's outcome and prints one line per job at the end, writes
``queue.json`` into the queue's own folder (``<output.root>/queues/<date>-<time>/``,
beside Hydra's ``multirun.yaml``: every queue keeps its summary), and makes the command
exit 1 if any job failed, so scripts notice.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import socket
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from pipeline.atomic import write_text
from pipeline.report.queue import QueueJob, QueueRecords, QueueRefresher

log = logging.getLogger("rotoscope")

QUEUE_NAME = "queue.json"
QUEUE_SPOOL = ".queue-jobs"  # outcomes of jobs that ran in other processes, until the end


def spool(sweep_dir: Path) -> Path:
    """Where jobs running in other processes leave their outcomes."""
    return sweep_dir / QUEUE_SPOOL


class QueueSummary(Callback):
    """Hydra callback: remember each multirun job's outcome, summarise at the end.

    With Hydra's own launcher every job runs in the command's process. With the
    submitit launcher (``hydra/launcher=submitit_local``, ``submitit_slurm``) each job
    runs in a process of its own, perhaps on another machine, where this callback's
    ``on_job_end`` runs too: there it leaves the job's outcome as a file in the sweep
    folder (a filesystem the cluster shares), and the command's process reads them back
    at the end.
    """

    def __init__(self) -> None:
        self.jobs: list[tuple[int, dict[str, Any]]] = []
        self.launcher: tuple[str, int] | None = None
        self.refresher: QueueRefresher | None = None  # the queue page, while a job runs here

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # a process id alone could be a job's on another machine
        self.launcher = (socket.gethostname(), os.getpid())
        # outcomes an earlier sweep into this folder left behind (it was killed) are not ours
        shutil.rmtree(spool(Path(config.hydra.sweep.dir)), ignore_errors=True)
        records = queue_records(Path(config.hydra.sweep.dir))
        for number, overrides in enumerate(expand_sweep(config)):
            records.record(QueueJob(number, overrides), page=False)
        records.write_page()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        hydra = HydraConfig.get()
        if hydra.mode != RunMode.MULTIRUN:
            return
        records = queue_records(Path(hydra.sweep.dir))
        job = QueueJob(
            int(hydra.job.num), list(hydra.overrides.task), "running", hydra.runtime.output_dir
        )
        with suppress(OSError):  # the page must never stop a job
            records.record(job)
        self.refresher = QueueRefresher(records).start()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        hydra = HydraConfig.get()
        if hydra.mode != RunMode.MULTIRUN:
            return
        if job_return.status == JobStatus.COMPLETED and isinstance(job_return.return_value, dict):
            outcome = dict(job_return.return_value)
        else:
            outcome = {"status": "failed", "error": repr(job_return._return_value)}
        outcome["overrides"] = list(job_return.overrides or [])
        number = int(hydra.job.num)
        if self.refresher is not None:
            self.refresher.stop()
            self.refresher = None
        with suppress(OSError):
            queue_records(Path(hydra.sweep.dir)).record(queue_job(number, outcome))
        if self.launcher in (None, (socket.gethostname(), os.getpid())):
            self.jobs.append((number, outcome))
        else:  # a job process of a submitit launcher
            write_text(spool(Path(hydra.sweep.dir)) / f"{number}.json", json.dumps(outcome))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        folder = spool(sweep_dir)
        if folder.is_dir():
            for path in folder.glob("*.json"):
                self.jobs.append((int(path.stem), json.loads(path.read_text(encoding="utf-8"))))
            shutil.rmtree(folder, ignore_errors=True)
        if not self.jobs:
            return
        self.jobs.sort(key=lambda item: item[0])
        jobs = [outcome for _, outcome in self.jobs]
        failed = [job for job in jobs if job.get("status") != "done"]
        log.info(
            "queue: %d jobs, %d done, %d failed", len(jobs), len(jobs) - len(failed), len(failed)
        )
        for number, job in enumerate(jobs):
            where = ", ".join(job.get("outputs") or []) or job.get("run_dir", "")
            detail = job.get("error") or where
            log.info(
                "  job %d %s: %s  [%s]",
                number,
                job.get("status"),
                detail,
                " ".join(job["overrides"]),
            )
        summary = write_text(sweep_dir / QUEUE_NAME, json.dumps(jobs, indent=2) + "\n")
        page = queue_records(sweep_dir).write_page(
            [queue_job(number, job) for number, job in enumerate(jobs)]
        )
        log.info("queue summary: %s (page: %s)", summary, page)
        if failed:
            sys.exit(1)


def queue_records(sweep_dir: Path) -> QueueRecords:
    """The queue's page and the jobs' states it is made from (in the spool, until the end)."""
    return QueueRecords(sweep_dir, spool(sweep_dir) / "page")


def queue_job(number: int, outcome: dict[str, Any]) -> QueueJob:
    """A finished job's row of the queue page, from its outcome."""
    return QueueJob(
        number,
        list(outcome.get("overrides") or []),
        str(outcome.get("status") or "failed"),
        outcome.get("run_dir"),
        outcome.get("error"),
        list(outcome.get("outputs") or []),
    )


def expand_sweep(config: DictConfig) -> list[list[str]]:
    """Every job's overrides, in the order Hydra's basic sweeper runs them (the queue
    page lists them as queued from the start); [] for another sweeper, whose jobs show
    as they start."""
    sweeper = str(config.hydra.sweeper.get("_target_", ""))
    if not sweeper.endswith("BasicSweeper"):
        return []
    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()]
    arguments += list(config.hydra.overrides.task)
    choices: dict[str, list[str]] = {}
    try:
        for override in OverridesParser.create().parse_overrides(arguments):
            key = override.get_key_element()
            if override.is_discrete_sweep():
                choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
            elif override.is_sweep_override():
                return []  # a range or interval: the sweeper's own business
            else:
                choices[key] = [f"{key}={override.get_value_element_as_str()}"]
    except Exception:  # whatever Hydra refuses, it reports itself
        return []
    return [list(job) for job in itertools.product(*choices.values())]
