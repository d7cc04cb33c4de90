"""A local Ray ends with the driver that started it, however the driver ends.

``ray.init(address="local")`` starts Ray's processes as children of the driver. The GCS
server and the raylet die with it (Ray asks the kernel to kill them when their parent
dies), but the raylet's own children, the dashboard and runtime-env agents, outlived a
driver killed with ``kill -9`` by a minute and more: they try to report the raylet's
death to a GCS that is gone. So the driver starts a guard beside its Ray, a small
process that waits for the driver to end (the other end of a pipe only the driver holds
reaches end-of-file however the driver ends) and then kills every process of that Ray.
After a clean ``ray.shutdown()`` it finds none and just exits.

The guard knows Ray's processes two ways. Those ``ray.init`` starts carry a mark in
their environment (a variable holding the guard's token, set while it runs; the
raylet's workers inherit it), which covers a driver killed while Ray starts. And once
Ray runs, the driver tells the guard Ray's session folder, where every one of its
processes keeps its log files open: needed because the agents rename themselves with
``setproctitle``, which wipes the environment the kernel shows for them.

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
# How long closing waits for the guard to finish.
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

    def watch(self, session: str) -> None:
        """Tell the guard Ray's session folder (``ray.init().address_info``)."""
        os.write(self._write, f"{Path(session).resolve()}\n".encode())

    def close(self) -> None:
        """Let the guard end whatever of this Ray is left, and wait for it."""
        if self._write < 0:
            return
        os.close(self._write)
        self._write = -1
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=CLOSE_SECONDS)


def carries(pid: str, mark: bytes) -> bool:
    """Whether process ``pid`` was started with ``mark`` in its environment."""
    return mark in (PROC / pid / "environ").read_bytes().split(b"\0")


def holds_file_in(pid: str, folder: str) -> bool:
    """Whether process ``pid`` has a file under ``folder`` open."""
    for fd in (PROC / pid / "fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            if os.readlink(fd).startswith(folder):
                return True
    return False


def ray_processes(token: str, session: str | None, spared: set[int]) -> list[int]:
    """The processes of the guarded Ray: marked with ``token``, or holding a file in its
    ``session`` folder; those in ``spared`` (the guard, the driver) aside."""
    mark = f"{MARK}={token}".encode()
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) in spared:
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            if carries(entry.name, mark) or (session and holds_file_in(entry.name, session)):
                found.append(int(entry.name))
    return found


def end_ray(token: str, session: str | None, spared: set[int]) -> None:
    """Kill the guarded Ray's processes until none is left (one may start another while
    a pass runs; a killed one holds no files and shows no environment)."""
    while pids := ray_processes(token, session, spared):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def main() -> None:
    """The guard: read what the driver tells it until its end of the pipe closes, then
    end its Ray."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    spared = {os.getpid(), os.getppid()}  # the driver, while it shuts Ray down itself
    session = None
    for line in sys.stdin:  # ends at end-of-file: the driver closed it, or died
        session = line.strip() + os.sep
    end_ray(sys.argv[1], session, spared)


if __name__ == "__main__":
    main()
