"""``queue.html``: one row per job of a queue, in the queue's own folder.

A queue (``rotoscope -m ...``) runs its jobs one after another, or in processes of
their own on other machines (submitit, SLURM). Whichever process learns something about
a job (the launcher expands the sweep; the job's process starts and ends it) records it
as a small file in a hidden folder of the queue's and rewrites the page from
all of them, so the page is the same whoever wrote it last, and every write is atomic.
A row shows the job's state (queued, running, done, failed with its one-line error), its
progress read from its run folder, its latest thumbnail and a link to its report page;
while jobs run the page reloads itself.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.parse
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path

from pipeline.atomic import write_text
from pipeline.records.run_folder import RunFolder
from pipeline.report.page import STYLE
from pipeline.report.view import frames_made

QUEUE_PAGE = "queue.html"
RELOAD_SECONDS = 5


@dataclass(frozen=True)
class QueueJob:
    """One job of a queue, as far as anyone knows now."""

    number: int
    overrides: list[str]
    state: str = "queued"  # queued | running | done | failed | interrupted
    run_dir: str | None = None
    error: str | None = None
    outputs: list[str] = field(default_factory=list)


class QueueRecords:
    """The jobs' states in a queue's folder, and the page made from them."""

    def __init__(self, sweep_dir: Path, states: Path) -> None:
        """``states``: where the jobs' states are kept while the queue runs (a hidden
        folder of the queue's, on a filesystem every job's machine shares)."""
        self.sweep_dir = sweep_dir
        self.states = states

    @property
    def page(self) -> Path:
        return self.sweep_dir / QUEUE_PAGE

    def record(self, job: QueueJob, page: bool = True) -> None:
        """Keep what is known of ``job`` (and rewrite the page, unless ``page`` is False)."""
        write_text(self.states / f"{job.number}.json", json.dumps(asdict(job)), durable=False)
        if page:
            self.write_page()

    def jobs(self) -> list[QueueJob]:
        found: dict[int, QueueJob] = {}
        if self.states.is_dir():
            for path in self.states.glob("*.json"):
                try:
                    job = QueueJob(**json.loads(path.read_text(encoding="utf-8")))
                except (OSError, ValueError, TypeError):
                    continue  # being replaced: the next write shows it
                found[job.number] = job
        return [found[number] for number in sorted(found)]

    def write_page(self, jobs: list[QueueJob] | None = None) -> Path:
        """Write ``queue.html`` from ``jobs`` (by default: the states recorded)."""
        jobs = self.jobs() if jobs is None else jobs
        return write_text(self.page, queue_page(self.sweep_dir, jobs), durable=False)


def varying(jobs: list[QueueJob]) -> set[str]:
    """The override keys whose values differ between the jobs (what tells them apart)."""
    values: dict[str, set[str]] = {}
    for job in jobs:
        for override in job.overrides:
            key, _, value = override.partition("=")
            values.setdefault(key, set()).add(value)
    return {key for key, seen in values.items() if len(seen) > 1 or len(jobs) == 1}


def _row(sweep_dir: Path, job: QueueJob, shown: set[str]) -> str:
    label = " ".join(o for o in job.overrides if o.partition("=")[0] in shown) or "(no overrides)"
    progress, thumbnail, link = "", "", ""
    if job.run_dir:
        folder = RunFolder(Path(job.run_dir))
        done, planned, latest = frames_made(folder)
        if planned:
            progress = f"{done}/{planned} frames"
        relative = urllib.parse.quote(Path(os.path.relpath(folder.path, sweep_dir)).as_posix())
        if latest is not None:
            src = escape(f"{relative}/{latest}")
            thumbnail = f"<img src='{src}' alt='job {job.number}' height='64'>"
        if folder.page.is_file():
            link = f"<a href='{escape(relative)}/{folder.page.name}'>report</a>"
    error = f"<div class='error'>{escape(job.error)}</div>" if job.error else ""
    state = escape(job.state)
    return (
        f"<tr class='job' data-state='{state}'><td>{job.number}</td>"
        f"<td><span class='status {state}'>{state}</span>{error}</td>"
        f"<td>{escape(label)}</td><td>{progress}</td><td>{thumbnail}</td><td>{link}</td></tr>"
    )


def queue_page(sweep_dir: Path, jobs: list[QueueJob]) -> str:
    shown = varying(jobs)
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.state] = counts.get(job.state, 0) + 1
    summary = ", ".join(f"{count} {state}" for state, count in counts.items()) or "no jobs yet"
    active = any(job.state in ("queued", "running") for job in jobs)
    reload = (
        f"<script>setTimeout(() => location.reload(), {RELOAD_SECONDS * 1000});</script>"
        if active
        else ""
    )
    rows = "".join(_row(sweep_dir, job, shown) for job in jobs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>queue {escape(sweep_dir.name)}</title>
<style>{STYLE} .error{{color:#c92a2a;font-size:12px}} td{{padding:4px 8px}}</style></head>
<body><h1>Queue {escape(sweep_dir.name)}</h1><p id="summary">{len(jobs)} jobs: {summary}</p>
<table id="jobs"><tr><th>#</th><th>state</th><th>job</th><th>progress</th><th></th><th></th>
</tr>{rows}</table>{reload}</body></html>
"""


class QueueRefresher:
    """Rewrites a queue's page every few seconds while a job of it runs in this process,
    so the running job's progress and latest frame show; a failed write is skipped."""

    def __init__(self, records: QueueRecords, interval: float = RELOAD_SECONDS) -> None:
        self.records = records
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-page", daemon=True)

    def start(self) -> QueueRefresher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with suppress(OSError):
                self.records.write_page()
