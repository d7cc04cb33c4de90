"""The entry point of ``rotoscope`` and ``python -m pipeline``: Ctrl-C first, then the rest.

Signal handling is installed before the command's heavy imports (Hydra, and torch later),
so a Ctrl-C at any moment ends in one line, never a traceback
(:mod:`pipeline.records.interrupts`); the command itself is :mod:`pipeline.cli.command`.
"""

from __future__ import annotations

import shlex
import sys

from pipeline.records.interrupts import EXIT_INTERRUPTED, install


def main() -> None:
    """Entry point of the ``rotoscope`` command and ``python -m pipeline``."""
    stop = install()  # Ctrl-C from here on: one line, never a traceback
    typed = shlex.join(["rotoscope", *sys.argv[1:]])  # before Hydra rewrites sys.argv
    try:
        from pipeline.cli.command import run_command

        run_command()
    except KeyboardInterrupt:
        print("rotoscope: interrupted before the job wrote anything; nothing is lost. "
              f"Run it again with: {typed}", file=sys.stderr)  # fmt: skip
        sys.exit(128 + int(stop.requested) if stop.requested else EXIT_INTERRUPTED)
