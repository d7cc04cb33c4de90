"""``rotoscope-history``: the looks a run folder keeps, and bringing one back.

    rotoscope-history outputs/dance                  # list its looks, newest first
    rotoscope-history outputs/dance restore 3f2a1c   # make look 3f2a1c current again
    rotoscope-history outputs/dance restore history/dance-20250101-100000.mp4

Every deliverable carries a sidecar saying what made it
(:mod:`pipeline.records.provenance`); the list groups them by look (the same frames in
several formats are one look) with their date, their first prompt and whether their
frames are still on disk. Restoring one (:mod:`pipeline.run.restore`) renders nothing
while its frames are kept.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex
import sys
import time
from pathlib import Path

from pipeline.cli.logs import ConsoleFormatter, SkipFileOnly, quiet_libraries
from pipeline.errors import RotoscopeError, plural
from pipeline.records.interrupts import install
from pipeline.records.progress import FILE_ONLY
from pipeline.records.provenance import KeptLook, find_look, kept_looks
from pipeline.records.prune import is_run_folder
from pipeline.records.run_folder import RunFolder
from pipeline.run.restore import restore_look


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="rotoscope-history",
        description="List the looks a run folder keeps (its current outputs and those in "
        "history/), with their prompts and dates; restore one as the current output.",
    )
    parser.add_argument("folder", type=Path, help="a run folder (outputs/<name>)")
    sub = parser.add_subparsers(dest="action")
    restore = sub.add_parser(
        "restore", help="make a kept look the current output (renders nothing while its "
        "frames are kept)",
    )  # fmt: skip
    restore.add_argument("look", help="the look's id (or its start), or one of its files")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``rotoscope-history``; exit 2 with one line on a bad argument."""
    stop = install()
    args = parse_args(argv)
    folder = RunFolder(args.folder)
    try:
        if not args.folder.is_dir() or not is_run_folder(args.folder):
            raise RotoscopeError(f"{args.folder} is not a run folder", "give outputs/<name>")
        if args.action == "restore":
            kept = find_look(folder, args.look)
            console(folder)
            command = shlex.join(["rotoscope-history", *(argv or sys.argv[1:])])
            # the run's log keeps every command that changed the run folder
            logging.getLogger(__name__).info("command: %s", command, extra={FILE_ONLY: True})
            with stop.job(lambda: "rotoscope-history: stopped now"):
                restore_look(folder, kept, command, stop)
            return
        looks = kept_looks(folder)
    except RotoscopeError as exc:
        print(f"rotoscope-history: error: {exc}", file=sys.stderr)
        sys.exit(2)
    if not looks:
        print(f"rotoscope-history: {folder} keeps no outputs with a sidecar yet",
              file=sys.stderr)  # fmt: skip
    for kept in looks:
        print(look_line(kept, folder))


def look_line(kept: KeptLook, folder: RunFolder) -> str:
    """``3f2a1c0d  2025-01-01 10:00  8 frames, kept  clip.mp4 (current)  a cat, oil``"""
    made = kept.provenance.made
    with contextlib.suppress(ValueError):  # another format: shown as it is
        made = time.strftime("%Y-%m-%d %H:%M", time.strptime(made, "%Y-%m-%dT%H:%M:%S%z"))
    frames = plural(len(kept.provenance.frames), "frame")
    state = "kept" if kept.frames_kept else "some pruned"
    outputs = ", ".join(path.relative_to(folder.path).as_posix() for path in kept.outputs)
    current = " (current)" if kept.current else ""
    prompt = kept.provenance.prompts[0] if kept.provenance.prompts else ""
    more = (
        f" (+{len(kept.provenance.prompts) - 1} more)" if len(kept.provenance.prompts) > 1 else ""
    )
    return f"{kept.look}  {made}  {frames}, {state}  {outputs}{current}  {prompt}{more}"


def console(folder: RunFolder) -> None:
    """Log lines on stderr, as ``rotoscope`` prints them, and into the run's log."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter())
    handler.addFilter(SkipFileOnly())
    root.addHandler(handler)
    file = logging.FileHandler(folder.log, encoding="utf-8")
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file)
    quiet_libraries()


if __name__ == "__main__":
    main()
