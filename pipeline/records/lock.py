"""One writer per run folder.

Two processes rendering into one folder would interleave frames and manifest lines, so a
job holds an exclusive ``flock`` on ``<run>/.lock`` for its whole life. The kernel drops
that lock when the process dies, however it dies (``kill -9``, a crash, a reboot), so a
lock can never be left stale in the sense of blocking work; the file's contents (pid,
host, start time) only serve the messages: who holds the folder, or whose dead lock is
being taken over.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from pipeline.errors import RotoscopeError

log = logging.getLogger("rotoscope")


class RunLock:
    """Exclusive lock on a run folder; use as a context manager."""

    def __init__(self, path: Path) -> None:
        """``path`` is the lock file, ``RunFolder.lock``; its folder is the run folder."""
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_read_holder(fd))
            os.close(fd)
            raise RotoscopeError(
                f"run folder {self.path.parent} is in use by {holder}",
                "wait for it to finish, stop it, or give this job another name=",
            ) from None
        previous = _read_holder(fd)
        if previous and previous.get("pid") != os.getpid():
            log.warning(
                "took over the lock of %s left by %s (that process is gone)",
                self.path.parent, _describe(previous),
            )  # fmt: skip
        _write_holder(fd)
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # a clean exit leaves no holder to report
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> dict[str, object] | None:
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, 4096)
    try:
        holder = json.loads(data) if data.strip() else None
    except json.JSONDecodeError:
        return None
    return holder if isinstance(holder, dict) else None


def _write_holder(fd: int) -> None:
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(holder).encode("utf-8"))
    os.fsync(fd)


def _describe(holder: dict[str, object] | None) -> str:
    if not holder:
        return "another process"
    return f"process {holder.get('pid')} on {holder.get('host')} (started {holder.get('started')})"
