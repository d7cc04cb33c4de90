"""Progress for long renders: frames done, rate, ETA.

On a terminal one line is redrawn in place; elsewhere (CI, nohup, a log collector) the
same facts go out as a log line every ``log_every`` seconds, so an overnight job's log
shows how far it got. The rate counts only frames rendered in this process, not frames
reused from an earlier run, and only time spent on frames (not loading the model,
which happens when the first frame needs it), so the ETA is honest from the start and
after a resume.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

# The extra field of a log record that only the run's log file shows (the console has
# the live line instead); ``pipeline.cli.logs`` filters it from the console.
FILE_ONLY = "file_only"

log = logging.getLogger("rotoscope")


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class Progress:
    """Counts finished frames and reports them to a terminal or to the log."""

    def __init__(
        self,
        total: int,
        label: str = "render",
        log_every: float = 10.0,
        stream: TextIO | None = None,
        clock=time.monotonic,
    ) -> None:
        self.total = total
        self.label = label
        self.log_every = log_every
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self.started = clock()
        self.done = 0
        self.rendered = 0
        self.reused = 0
        self.excluded = 0.0  # seconds that were not frame time (the model load)
        self._last_log = self.started

    def exclude(self, seconds: float) -> None:
        """Leave ``seconds`` (say, loading the model) out of the rate and the ETA."""
        self.excluded += seconds

    @contextmanager
    def excluding(self) -> Iterator[None]:
        """Leave the time spent inside the block (say, starting or stopping Ray) out."""
        started = self.clock()
        try:
            yield
        finally:
            self.exclude(self.clock() - started)

    def advance(self, reused: bool = False) -> None:
        """One more frame finished (rendered now, or reused from disk)."""
        self.done += 1
        if reused:
            self.reused += 1
        else:
            self.rendered += 1
        now = self.clock()
        if self.interactive:
            self.stream.write("\r" + self.line(now) + " " * 4)
            self.stream.flush()
        if now - self._last_log >= self.log_every or self.done == self.total:
            self._last_log = now
            # on a terminal the redrawn line already shows it: send it to the log file only
            log.info("%s", self.line(now), extra={FILE_ONLY: self.interactive})

    def line(self, now: float) -> str:
        elapsed = now - self.started
        percent = 100.0 * self.done / self.total if self.total else 100.0
        reused = f", {self.reused} reused" if self.reused else ""
        frames = "frame" if self.total == 1 else "frames"
        head = f"{self.label} {self.done}/{self.total} {frames} ({percent:.0f}%{reused})"
        if not self.rendered:  # only reused frames so far: no rate to extrapolate from
            return f"{head}, elapsed {format_duration(elapsed)}"
        frame_time = elapsed - self.excluded
        rate = self.rendered / frame_time if frame_time > 0 else 0.0
        eta = format_duration((self.total - self.done) / rate) if rate else "?"
        return f"{head} {rate:.2f} frames/s, elapsed {format_duration(elapsed)}, ETA {eta}"

    def close(self) -> None:
        if self.interactive and self.done:
            self.stream.write("\n")
            self.stream.flush()
