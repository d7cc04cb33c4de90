"""Run ``python -m pipeline`` for end-to-end tests without paying its imports every time.

A rendering CLI run spends about 15 s of CPU importing torch, transformers and diffusers
before it renders a 64x64 frame in a tenth of a second; with a hundred runs in the suite
that was most of its time. So the CLI runs are forked from a server process that has
imported them once (:func:`run_cli`): each run is still a process of its own, started
fresh from the server's state (nothing any earlier run did is in it), with its own
arguments, working directory, environment and output, exiting through the interpreter's
normal shutdown as ``python -m pipeline`` would. What differs from a fresh interpreter:
the libraries are already imported, so environment variables they read at import time
come from the server's environment, which is the test session's (``conftest.py`` sets
the offline and thread-count variables before the server starts).

The server never runs anything itself (no threads, no thread pools), so forking it is
safe. Tests that signal or kill the CLI while it runs keep starting a real interpreter
(``subprocess.Popen``), and ``ROTOSCOPE_TEST_FORK=0`` sends every run there too.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parents[2]
FORK_ENV = "ROTOSCOPE_TEST_FORK"

# what a rendering run imports; the server imports it once
PRELOAD = (
    "pipeline.cli.main",
    "pipeline.cli.command",
    "pipeline.render.stage",
    "pipeline.render.renderer",
    "pipeline.render.executors.local",
    "pipeline.models.loader",
    "pipeline.models.controlnets",
    "pipeline.assemble.control_preview",
    "pipeline.metrics.stage",
    "pipeline.assemble.stage",
)
DIFFUSERS_CLASSES = (
    "StableDiffusionImg2ImgPipeline",
    "StableDiffusionXLImg2ImgPipeline",
    "StableDiffusionControlNetImg2ImgPipeline",
    "StableDiffusionXLControlNetImg2ImgPipeline",
    "ControlNetModel",
    "AutoencoderKL",
    "UNet2DConditionModel",
)


def cli_env(home: Path) -> dict[str, str]:
    """The environment a CLI test runs in: offline, this checkout first on the path, and
    ``home`` as rotoscope's home (run folders land in ``home/outputs``)."""
    from pipeline.config.paths import HOME_ENV

    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), HOME_ENV: str(home)}


def run_cli(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline *args`` in ``cwd`` with ``env``, as ``subprocess.run`` with
    ``capture_output=True, text=True`` would return it."""
    command = [sys.executable, "-m", "pipeline", *args]
    if os.environ.get(FORK_ENV, "1") == "0":
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip
    return _server().run(command, args, cwd, env, timeout)


def start_cli(args: list[str], cwd: Path, env: dict[str, str]) -> ForkedRun | subprocess.Popen[str]:
    """``python -m pipeline *args`` started in a process of its own (forked from the
    server), to be signalled while it runs; it answers ``poll``, ``send_signal``,
    ``communicate`` and ``returncode`` as a ``subprocess.Popen`` would. The server runs
    nothing else until it is ``communicate``d. (With ``ROTOSCOPE_TEST_FORK=0``: a fresh
    interpreter.)"""
    if os.environ.get(FORK_ENV, "1") == "0":
        command = [sys.executable, "-m", "pipeline", *args]
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
    return _server().start(args, cwd, env)


class ForkedRun:
    """A CLI run forked by the server, still running (see :func:`start_cli`)."""

    def __init__(self, server: ForkServer, pid: int, scratch: tempfile.TemporaryDirectory) -> None:
        self.server = server
        self.pid = pid
        self.scratch = scratch
        self.returncode: int | None = None
        self.output: tuple[str, str] | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = int(self.server._line(timeout=0))
            except TimeoutError:
                return None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float = 300) -> int:
        self.communicate(timeout)
        assert self.returncode is not None
        return self.returncode

    def communicate(self, timeout: float = 300) -> tuple[str, str]:
        """Wait for the run to end; its stdout and stderr."""
        if self.output is None:
            if self.returncode is None:
                self.returncode = int(self.server._line(timeout=timeout))
            folder = Path(self.scratch.name)
            self.output = (
                (folder / "stdout").read_text(errors="replace"),
                (folder / "stderr").read_text(errors="replace"),
            )
            self.scratch.cleanup()
            self.server.lock.release()  # the server may run the next request
        return self.output


class ForkServer:
    """The client's side: one server process, one run at a time."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,  # unbuffered: a line read never takes the next one along, unseen by select
        )
        self.lock = threading.Lock()
        if self._line(timeout=600) != "ready":
            raise RuntimeError("the CLI fork server did not start")

    def run(
        self, command: list[str], args: list[str], cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        with self.lock, tempfile.TemporaryDirectory(prefix="cli-run-") as scratch:
            out, err = Path(scratch, "stdout"), Path(scratch, "stderr")
            request = {"args": args, "cwd": str(cwd), "env": env, "out": str(out), "err": str(err)}
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
            pid = int(self._line(timeout=60))
            try:
                code = int(self._line(timeout=timeout))
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._line(timeout=60)
                raise subprocess.TimeoutExpired(command, timeout) from None
            return subprocess.CompletedProcess(
                command, code, out.read_text(errors="replace"), err.read_text(errors="replace")
            )

    def start(self, args: list[str], cwd: Path, env: dict[str, str]) -> ForkedRun:
        self.lock.acquire()
        scratch = tempfile.TemporaryDirectory(prefix="cli-run-")
        out, err = Path(scratch.name, "stdout"), Path(scratch.name, "stderr")
        request = {"args": args, "cwd": str(cwd), "env": env, "out": str(out), "err": str(err)}
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        self.process.stdin.flush()
        return ForkedRun(self, int(self._line(timeout=60)), scratch)

    def _line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the CLI fork server died")
        return line.decode().strip()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


_servers: list[ForkServer] = []


def _server() -> ForkServer:
    """This test process's server, started on first use."""
    if not _servers:
        _servers.append(ForkServer())
    return _servers[0]


def close_server() -> None:
    """End the server (at the end of the test session)."""
    while _servers:
        _servers.pop().close()


def serve() -> None:
    """The server's side: import once, then fork one child per request and report its
    pid, then its exit status. A child leaves this loop only by exiting."""
    import importlib
    import runpy

    for name in PRELOAD:
        importlib.import_module(name)
    diffusers = importlib.import_module("diffusers")
    for name in DIFFUSERS_CLASSES:
        getattr(diffusers, name)
    gc.freeze()  # children would otherwise copy every page the collector touches
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    replies.write("ready\n")
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            replies.close()
            become_child(request)
            sys.argv = [sys.argv[0], *request["args"]]
            sys.path[0] = request["cwd"]  # as ``python -m`` puts the working directory first
            code = 0
            try:
                runpy.run_module("pipeline", run_name="__main__", alter_sys=True)
            except SystemExit as exc:
                code = exit_status(exc)
            except BaseException:
                traceback.print_exc()
                code = 1
            exit_child(code)
        replies.write(f"{pid}\n")
        _, status = os.waitpid(pid, 0)
        replies.write(f"{os.waitstatus_to_exitcode(status)}\n")


def exit_status(exc: SystemExit) -> int:
    """The status the interpreter gives ``sys.exit(exc.code)``."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def exit_child(code: int) -> NoReturn:
    """Exit as the interpreter does (wait for non-daemon threads, run the exit handlers,
    flush the output) but without tearing down every imported module: with torch and
    diffusers in memory that teardown takes seconds, and leaves nothing to see."""
    # the interpreter's own steps (there are no public names for them): wake idle
    # executor threads and join the non-daemon threads, then run the exit handlers
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def become_child(request: dict) -> None:
    """Give the forked child the run's working directory, environment and output."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, request["out"]), (2, request["err"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    os.close(null)
    signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":
    serve()
