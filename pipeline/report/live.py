"""``report.html`` kept current while a job runs, without slowing it.

A job writes its page when it starts, then a thread of its own rewrites it whenever the
manifest has grown and at least ``interval`` seconds have passed (and ten times what the
last build took, so a long run's page never takes more than a tenth of a core; it shows
the frames so far, the stage, the ETA), and the job writes it a last time when it ends,
however it ends. Each write is atomic (a browser reloading the page never reads half of
it). The render loop is never involved: the page is built from the run folder's records
in this thread (thumbnails are made in the frame writer's pool; only frames made before
thumbnails existed get theirs here, once), and a page that cannot be written is a
warning, never a failed job.
"""

from __future__ import annotations

import logging
import threading
import time

from pipeline.atomic import write_text
from pipeline.records.progress import format_duration
from pipeline.records.run_folder import RunFolder
from pipeline.report.page import render_page
from pipeline.report.view import FrameReader, Live, LookView, looks_of, read_view

log = logging.getLogger("rotoscope")

REFRESH_SECONDS = 2.0  # at most one refresh this often while frames are being made
BUILD_SHARE = 10  # ... and never sooner than ten times the last build took
# Rewritten at least this often while the job runs, new frames or not (loading a model,
# a slow frame, encoding), so a page that stops changing means a job that stopped
# (see ``page.STALE_SECONDS``).
HEARTBEAT_SECONDS = 30.0


class LivePage:
    """The page of the job running in ``folder``: :meth:`start` writes it and starts the
    thread, :meth:`enter_stage` says which stage runs now, :meth:`close` writes the final
    page (after the job's report)."""

    def __init__(
        self, folder: RunFolder, command: str | None, interval: float = REFRESH_SECONDS
    ) -> None:
        self.folder = folder
        self.command = command
        self.interval = interval
        self.stage = "starting"
        self.reader = FrameReader(folder)
        self.looks: list[LookView] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="report-page", daemon=True)
        self._lock = threading.Lock()  # one write at a time (the thread, the job's end)
        self._manifest_size = -1
        self._clock_start: tuple[float, int] | None = None  # (time, frames) when frames began
        self._build_seconds = 0.0  # how long the last page took to build and write
        self._written = 0.0  # when it was written (monotonic)

    def start(self) -> None:
        self.write(live=True)
        self._thread.start()

    def enter_stage(self, stage: str) -> None:
        """The job moved on to ``stage``; the page says so now."""
        self.stage = stage
        self.looks = None  # an assemble may have kept an earlier look
        self.write(live=True)

    def close(self) -> None:
        """Stop refreshing and write the final page (from the job's report)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()
        self.looks = None
        self.write(live=False)

    def write(self, live: bool) -> None:
        """Build and write the page now (atomically); a failure is a warning."""
        with self._lock:
            try:
                self._write(live)
            except Exception as exc:  # the page must never fail the job
                log.warning("could not write %s: %s", self.folder.page, exc)

    def _write(self, live: bool) -> None:
        started = time.monotonic()
        if self.looks is None:
            self.looks = looks_of(self.folder)
        state = Live(self.stage, self.command) if live else None
        view = read_view(self.folder, state, self.reader, self.looks)
        if live:
            view.eta = self._eta(view.done, view.planned)
        write_text(self.folder.page, render_page(view), durable=False)
        self._written = time.monotonic()
        self._build_seconds = self._written - started

    def _eta(self, done: int, planned: int) -> str | None:
        """Time left at this job's rate: frames made since it was last seen making none
        (so loading the model and reused frames do not count)."""
        now = time.monotonic()
        if self._clock_start is None or done <= self._clock_start[1]:
            self._clock_start = (now, done)
            return None
        started, first = self._clock_start
        return format_duration((planned - done) * (now - started) / (done - first))

    def _run(self) -> None:
        # a long run's page takes longer to build: wait at least ten times the last build,
        # so the page's thread never takes more than a tenth of a core from the render
        while not self._stop.wait(max(self.interval, BUILD_SHARE * self._build_seconds)):
            try:
                size = self.folder.manifest.stat().st_size
            except OSError:
                size = -1
            quiet = time.monotonic() - self._written
            if size != self._manifest_size or quiet >= HEARTBEAT_SECONDS:
                self._manifest_size = size
                self.write(live=True)
