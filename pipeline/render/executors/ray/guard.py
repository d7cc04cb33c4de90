"""A local Ray ends with the driver that started it, however the driver ends.

``ray.init(address="local")`` starts Ray's processes as children of the driver. The GCS
server and the raylet die with it (Ray asks the kernel to kill them when their parent
dies), but the raylet's own children, the dashboard and runtime-env agents, outlived a
driver killed with ``kill -9`` by a minute and more: they try to report the raylet's
death to a GCS that is gone. So the driver marks its Ray's processes (an environment
variable holding a token of its own, set while ``ray.init`` starts them: the raylet's
agents and workers inherit it from the raylet) and starts a guard beside them, a small
process that waits for the driver to end (the other end of a pipe only the driver holds
reaches end-of-file however the driver ends) and then kills every process still
carrying the mark. After a clean ``ray.shutdown()`` it finds none and just exits.

The guard runs this file as a script: it imports nothing of rotoscope or Ray, and
ignores Ctrl-C and SIGTERM, which reach a terminal's whole process group (the driver
handles them and ends, and then the guard does its work). Processes are found through
``/proc``: on systems without it the guard is not started.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

# The environment variable that marks the processes of one local Ray.
MARK = "ROTOSCOPE_RAY_GUARD"
# How long closing waits for the guard to finish its last pass.
CLOSE_SECONDS = 30.0
PROC = Path("/proc")


class RayGuard:
    """The driver's side: the guard process and the pipe it watches."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(8)
        read, self._write = os.pipe()  # not inheritable: Ray's processes never hold it
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", __file__, self.token],
                stdin=read, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            os.close(read)

    @classmethod
    def start(cls) -> RayGuard | None:
        """A guard, where processes can be found (Linux); None elsewhere."""
        return cls() if PROC.is_dir() else None

    @contextlib.contextmanager
    def marking(self) -> Iterator[None]:
        """Mark the processes started inside (Ray's), and only those."""
        before = os.environ.get(MARK)
        os.environ[MARK] = self.token
        try:
            yield
        finally:
            if before is None:
                del os.environ[MARK]
            else:
                os.environ[MARK] = before

    def close(self) -> None:
        """Let the guard end whatever of this Ray is left, and wait for it."""
        if self._write < 0:
            return
        os.close(self._write)
        self._write = -1
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=CLOSE_SECONDS)


def marked(token: str) -> list[int]:
    """The processes carrying ``token`` (their environment as they were started with it),
    this one aside."""
    mark = f"{MARK}={token}".encode()
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def end_marked(token: str) -> None:
    """Kill every process carrying ``token``, until none is left (one may start another
    while a pass runs; killed ones no longer show their environment)."""
    while pids := marked(token):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def main() -> None:
    """The guard: wait for the driver's end of the pipe to close, then end its Ray."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    sys.stdin.buffer.read()  # returns at end-of-file: the driver closed it, or died
    end_marked(sys.argv[1])


if __name__ == "__main__":
    main()
