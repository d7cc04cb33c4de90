"""Waiting for something to happen, by the kernel's notice rather than by polling: a
process's exit through a pidfd (readable once the process has ended, zombie or reaped),
a file's change through inotify (watchdog). The timeout only keeps a failure from
hanging the suite; nothing is asserted about how long it took."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer


def wait_for_exit(pids: Iterable[int], timeout: float = 30) -> list[int]:
    """Wait until every process of ``pids`` has ended; the pids still running when
    ``timeout`` seconds have passed (empty when all ended)."""
    waiting: dict[int, int] = {}  # pidfd -> pid
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # already gone and reaped
            waiting[os.pidfd_open(pid)] = pid
    try:
        deadline = _Deadline(timeout)
        while waiting and deadline.left() > 0:
            ended, _, _ = select.select(list(waiting), [], [], deadline.left())
            for fd in ended:
                os.close(fd)
                del waiting[fd]
        return sorted(waiting.values())
    finally:
        for fd in waiting:
            os.close(fd)


def wait_for_file(path: Path, holds: Callable[[], bool], timeout: float = 60) -> bool:
    """Wait until ``holds()`` is true, checking it now and on every change inotify
    reports in ``path``'s folder (files there are replaced atomically, by rename);
    whether it held before ``timeout`` seconds."""
    changed = threading.Event()

    class Notice(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            changed.set()

    observer = Observer()
    observer.schedule(Notice(), str(path.parent))
    observer.start()
    try:
        deadline = _Deadline(timeout)
        while not holds():
            if deadline.left() <= 0:
                return False
            changed.wait(deadline.left())
            changed.clear()
        return True
    finally:
        observer.stop()
        observer.join()


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        return self._end - time.monotonic()
