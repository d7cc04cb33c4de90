"""``python -m pipeline`` that stops itself at known frames: how tests "kill at frame N".

A test that waited until the manifest had N lines and then signalled the job raced it:
by the time the signal landed the job may have written more frames, or all of them.
Started as

    python tests/support/stop_at_lines.py 4,10 ARGS...

this runs ``python -m pipeline ARGS`` with one change, made here and nowhere in
rotoscope: each time the run's manifest reaches the next of the given line counts, the
process stops itself (SIGSTOP) right after that line is durable, so the manifest holds
exactly that many lines while it is stopped. The test waits for the stop
(:func:`support.cli.wait_until_stopped`), does what it wants at exactly that frame (kill
-9, Ctrl-C, killing a Ray worker) and lets the job go on with SIGCONT if it should. Only
the process that writes the manifest stops (with Ray, the driver); workers go on
rendering, as they would while the driver waits on anything else.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys

from pipeline.records.manifest import FrameRecord, Manifest


def stop_at(counts: list[int]) -> None:
    """Make ``Manifest.add`` stop this process once the file reaches each of ``counts``."""
    pending = sorted(counts)
    add = Manifest.add

    def add_then_stop(self: Manifest, record: FrameRecord) -> None:
        add(self, record)  # durable: fsynced
        lines = self.path.read_bytes().count(b"\n")
        if pending and lines >= pending[0]:
            while pending and lines >= pending[0]:
                pending.pop(0)
            os.kill(os.getpid(), signal.SIGSTOP)

    Manifest.add = add_then_stop  # type: ignore[method-assign]


def main() -> None:
    counts, *args = sys.argv[1:]
    stop_at([int(count) for count in counts.split(",")])
    sys.argv = [sys.argv[0], *args]
    sys.path[0] = os.getcwd()  # as ``python -m`` puts the working directory first
    runpy.run_module("pipeline", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
