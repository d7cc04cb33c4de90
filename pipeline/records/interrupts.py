"""Ctrl-C and SIGTERM: stop at the next safe point, never in the middle of a frame or file.

A frame interrupted half-way is wasted work, and an exception thrown out of a diffusers
call or an ffmpeg pipe can leave nothing useful behind. So one handler serves the whole
process (:func:`install`, called first thing by the command):

- **Before a job runs** (composing the config, importing torch) nothing has been
  written yet, so a signal stops the command at once (``KeyboardInterrupt``, which the
  command turns into one line).
- **While a job runs** (:meth:`GracefulStop.job`) the first SIGINT or SIGTERM only
  raises a flag. Every stage checks it at its safe points (:meth:`GracefulStop.check`):
  between frames while planning, drawing control maps, rendering, encoding and
  measuring. The job then stops, writes its report ("interrupted") and prints the
  command that resumes it.
- **A second Ctrl-C** means "now": the job's report is written as interrupted, one line
  says so, and the process exits at once (``os._exit``: no traceback, wherever the
  signal lands). Finished frames are safe on disk either way: each is recorded
  atomically, and a frame still being written is left as a temporary file the next run
  removes.

``ROTOSCOPE_PAUSE_AT=<stage>:<n>`` holds the job at the ``n``-th safe point of a stage
until a signal arrives (``<stage>:<n>:hold`` keeps holding after the first one, until
the process is stopped now), and says so in the log. It lets a test, or someone
checking how a stop behaves, interrupt a stage at a known point instead of racing it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType

log = logging.getLogger("rotoscope")

PAUSE_ENV = "ROTOSCOPE_PAUSE_AT"
EXIT_INTERRUPTED = 130  # the shell's status for a command ended by SIGINT


class StopRequested(Exception):
    """Raised at a safe point once a signal asked the job to stop."""

    def __init__(self, signal_name: str, exit_code: int) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.exit_code = exit_code


class GracefulStop:
    """SIGINT/SIGTERM turned into a flag that stages check at their safe points (see the
    module doc). Without :meth:`install` it never fires: a job run from a test or a
    script without signal handling simply runs to the end."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: signal.Signals | None = None
        self._stop_now: Callable[[], str] | None = None  # the running job's, if any
        self._safe_points: dict[str, int] = {}
        self._pause = os.environ.get(PAUSE_ENV, "")

    def install(self) -> GracefulStop:
        """Handle SIGINT and SIGTERM in this process from now on (main thread only)."""
        self._pause = os.environ.get(PAUSE_ENV, "")
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                signal.signal(sig, self._handle)
        return self

    @contextmanager
    def job(self, stop_now: Callable[[], str]) -> Iterator[GracefulStop]:
        """While a job runs: signals become a flag. ``stop_now`` is what a second Ctrl-C
        does before the process exits (write the report); it returns the line to print."""
        self.requested = None
        self._safe_points = {}
        outer, self._stop_now = self._stop_now, stop_now
        try:
            yield self
        finally:
            self._stop_now = outer  # a job inside another's (a restore that renders)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            self.exit_now()
        if self._stop_now is None and self.requested is None:
            self.requested = signal.Signals(signum)
            raise KeyboardInterrupt  # no job yet: nothing written, stop at once
        if self.requested is None:
            self.requested = signal.Signals(signum)
            _say(
                f"rotoscope: stopping at the next safe point ({self.requested.name}); "
                "press Ctrl-C again to stop now\n"
            )

    def exit_now(self) -> None:
        """Stop the process at once: the job's last words (its report), one line, exit."""
        line = "rotoscope: stopped now (second Ctrl-C)"
        if self._stop_now is not None:
            try:
                line = self._stop_now()
            except BaseException as exc:  # nothing may stop the exit
                line = f"{line}; the report could not be written: {exc}"
        _say(line + "\n")
        os._exit(EXIT_INTERRUPTED)

    def check(self) -> None:
        """Raise StopRequested if a signal arrived (call at safe points)."""
        if self.requested is not None:
            raise StopRequested(self.requested.name, 128 + int(self.requested))

    def safe_point(self, stage: str) -> None:
        """A safe point of ``stage``: honour ``ROTOSCOPE_PAUSE_AT``, then :meth:`check`."""
        if self._pause:
            count = self._safe_points[stage] = self._safe_points.get(stage, 0) + 1
            wanted, _, hold = self._pause.partition(":")[2].partition(":")
            if self._pause.split(":")[0] == stage and wanted == str(count):
                self._hold(stage, count, hold == "hold")
        self.check()

    def _hold(self, stage: str, count: int, forever: bool) -> None:
        log.info("paused at %s safe point %d (%s): waiting for a signal", stage, count, PAUSE_ENV)
        _flush_logs()
        while self.requested is None:
            time.sleep(0.01)  # a signal interrupts the sleep and runs the handler
        log.info("stop requested by %s", self.requested.name)
        _flush_logs()
        while forever:
            time.sleep(0.01)


def _say(text: str) -> None:
    """Write to stderr without Python's buffered streams (safe inside a signal handler)."""
    with suppress(OSError):
        os.write(2, text.encode("utf-8", "replace"))


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


_PROCESS_STOP = GracefulStop()


def install() -> GracefulStop:
    """The process's one :class:`GracefulStop`, handling signals from now on."""
    return _PROCESS_STOP.install()


def process_stop() -> GracefulStop:
    """The process's :class:`GracefulStop` (installed or not)."""
    return _PROCESS_STOP
