"""The one writer of a render: frame files written in a bounded pool, outcomes committed
in frame order.

Rendering a frame and writing it are different kinds of work: on a GPU a frame takes
about 100 ms, and compressing it to PNG (about 30 ms of a CPU core for a noise-like
512x512 frame) and making it durable (fsync) a third of that again. Done one after the
other, the GPU waits for zlib. So a
rendered frame's file is handed to a small pool of threads (PNG compression in Pillow
and fsync both release the GIL), and the renderer goes on with the next frame.

What must not change is what a crash leaves behind. Every frame gets a place in line
when the render loop first sees it (:meth:`FrameWriter.reserve`, in frame order), and
its outcome is committed (for a run folder: its manifest line appended and fsynced)
only once its file is durable *and* every frame before it is committed. So the manifest
stays in frame order, a line never points at a file that is not fully on disk, and
``kill -9`` loses at most the frames still in the pool (``PENDING_PER_THREAD`` per
thread: a frame holds its place until its outcome is committed, so a stalled fsync
holds up the render loop rather than piling up frames), which the next run renders
again. A frame that needs no file (reused from
disk) still waits for its turn, so its line keeps the order too.

The commit step is a callable, so the same writer serves the driver of a run (it
appends manifest lines) and a Ray worker (it hands the outcomes back to the driver,
which writes them: one writer per run folder). ``threads=0`` writes inline in the
calling thread, in the same order: what tests that drive a producer by hand use.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import TracebackType

from pipeline.records.manifest import FrameRecord

# Frames whose file is being written at once, per writer thread: enough to keep every
# thread busy while the renderer hands over the next frame, few enough that a crash
# loses little and memory stays flat (a 512x512 frame is 0.75 MiB).
PENDING_PER_THREAD = 2


@dataclass(frozen=True)
class FrameOutcome:
    """What became of one planned frame.

    ``record`` is the manifest line it adds: a rendered frame's, or a reused frame's
    when the index is pointed back at an earlier look; None when its current line
    already stands. ``reason`` says why it was rendered; None when it was reused.
    """

    index: int
    record: FrameRecord | None
    reason: str | None = None

    @property
    def rendered(self) -> bool:
        return self.reason is not None


@dataclass
class _Slot:
    outcome: FrameOutcome | None = None
    committed: Callable[[], None] | None = None
    holds_room: bool = False  # one of the pool's places, given back at the commit
    ready: bool = False
    error: BaseException | None = None


class FrameWriter:
    """Writes frame files in a pool and commits outcomes in the order they were reserved."""

    def __init__(self, commit: Callable[[FrameOutcome], None], threads: int = 2) -> None:
        """``commit`` is called once per frame, in order, from whichever thread completes
        the frame that unblocks it (never two at a time)."""
        self._commit = commit
        self._pool = ThreadPoolExecutor(threads, "frame-writer") if threads > 0 else None
        self._room = threading.BoundedSemaphore(max(1, threads) * PENDING_PER_THREAD)
        # the line itself (held for dictionary updates only, so the render loop never
        # waits for an fsync to reserve its next frame) ...
        self._lock = threading.Lock()
        # ... and the right to commit (held through the commits, which fsync)
        self._committing = threading.Lock()
        self._order: deque[int] = deque()
        self._slots: dict[int, _Slot] = {}
        self._writing: set[Future[None]] = set()  # files in the pool, not yet written
        self._error: BaseException | None = None

    def reserve(self, index: int) -> None:
        """Give frame ``index`` its place in line (call in the order the frames are handed
        over: frame order, except that a cadence's diffused frames come first)."""
        with self._lock:
            if index in self._slots:
                raise ValueError(f"frame {index} already has a place in line")
            self._slots[index] = _Slot()
            self._order.append(index)

    def fill(
        self,
        outcome: FrameOutcome,
        write: Callable[[], None] | None = None,
        committed: Callable[[], None] | None = None,
    ) -> None:
        """Complete frame ``outcome.index``: run ``write`` (its file, made durable) in the
        pool, then commit the outcome in its turn and call ``committed`` (a chain frees
        what only a crash before the commit needed). Blocks while the pool is full;
        raises the error of an earlier frame that could not be written or committed."""
        self.check()
        if write is None or self._pool is None:
            self._run(outcome, write, committed, hold_room=False)
            self.check()
            return
        while not self._room.acquire(timeout=0.1):
            self.check()  # after an error nothing commits, so no place is given back
        try:
            future = self._pool.submit(self._run, outcome, write, committed, True)
        except BaseException:
            self._room.release()
            raise
        with self._lock:
            self._writing.add(future)
        future.add_done_callback(self._written)

    def _written(self, future: Future[None]) -> None:
        with self._lock:
            self._writing.discard(future)

    def drain(self) -> None:
        """Wait until every frame filled so far is written and committed (call it when
        every reserved frame is filled: an empty place holds the frames after it);
        raise the error of a frame that could not be written or committed."""
        with self._lock:
            writing = list(self._writing)
        wait(writing)
        self._commit_ready()
        self.check()

    def check(self) -> None:
        """Raise the first error a write or a commit met, if any."""
        if self._error is not None:
            raise self._error

    def _run(
        self,
        outcome: FrameOutcome,
        write: Callable[[], None] | None,
        committed: Callable[[], None] | None,
        hold_room: bool,
    ) -> None:
        error: BaseException | None = None
        try:
            if write is not None:
                write()
        except BaseException as exc:  # handed to the render loop, which raises it
            error = exc
        with self._lock:
            slot = self._slots[outcome.index]
            slot.outcome, slot.ready, slot.error = outcome, True, error
            slot.committed, slot.holds_room = committed, hold_room
        self._commit_ready()

    def _commit_ready(self) -> None:
        """Commit every completed frame at the head of the line, in order.

        A thread that finds another committing waits for it, then looks again: a frame
        completed meanwhile is never left uncommitted.
        """
        with self._committing:
            while True:
                with self._lock:
                    if not self._order or self._error is not None:
                        return
                    slot = self._slots[self._order[0]]
                    if not slot.ready:
                        return
                    if slot.error is not None:
                        self._error = slot.error
                        return
                try:
                    if slot.outcome is not None:
                        self._commit(slot.outcome)
                    if slot.committed is not None:
                        slot.committed()
                except BaseException as exc:
                    with self._lock:
                        self._error = exc
                    return
                with self._lock:
                    del self._slots[self._order.popleft()]
                if slot.holds_room:
                    self._room.release()

    def close(self) -> None:
        """Finish every write, commit what can be committed, stop the pool."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._commit_ready()

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Frames already rendered are kept whatever ended the loop (a stop request, an
        error): their writes finish and commit. A write error is raised only when
        nothing else is being raised."""
        self.close()
        if exc is None:
            self.check()
