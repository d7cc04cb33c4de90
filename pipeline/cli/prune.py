"""``rotoscope-prune``: free the disk a run folder's kept history uses.

A re-run never destroys earlier results (:mod:`pipeline.records.history`); this command is
how they go once they are no longer wanted. It takes run folders, or folders of run
folders (by default the home's ``outputs/``), and removes what no current frame or kept
deliverable needs (:mod:`pipeline.records.prune`). ``--dry-run`` lists it all with sizes
and removes nothing.

    rotoscope-prune --dry-run                   # every run folder under outputs/
    rotoscope-prune outputs/dance               # one run folder
    rotoscope-prune outputs/dance --keep-history 1   # also all but the last earlier video
    rotoscope-prune --flow                      # also the optical flow caches
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.config.paths import rotoscope_home
from pipeline.errors import RotoscopeError, plural
from pipeline.records.prune import Prunable, is_run_folder, prunable, prune
from pipeline.records.report import format_bytes
from pipeline.records.run_folder import RunFolder


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="rotoscope-prune",
        description="Delete frames of earlier looks and other files no current result of a "
        "run folder needs. Earlier deliverables in history/ are kept unless --keep-history.",
    )
    parser.add_argument(
        "folders", nargs="*", type=Path,
        help="run folders, or folders holding run folders (default: <home>/outputs)",
    )  # fmt: skip
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted, delete nothing"
    )
    parser.add_argument(
        "--keep-history", type=int, metavar="N", default=None,
        help="also delete all but the newest N earlier versions of each deliverable",
    )  # fmt: skip
    parser.add_argument(
        "--flow", action="store_true",
        help="also delete the optical flow cache (flow/: about the size of the frames; "
        "computed again by the next coherent render or metrics stage)",
    )  # fmt: skip
    return parser.parse_args(argv)


def run_folders(paths: list[Path]) -> list[RunFolder]:
    """The run folders named, or inside the folders named (one level down)."""
    found = []
    for path in paths:
        if not path.is_dir():
            raise RotoscopeError(f"{path} is not a folder", "give a run folder or outputs/")
        if is_run_folder(path):
            found.append(RunFolder(path))
        else:
            found += [
                RunFolder(p) for p in sorted(path.iterdir()) if p.is_dir() and is_run_folder(p)
            ]
    return found


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``rotoscope-prune``; exit 2 with one line on a bad argument."""
    args = parse_args(argv)
    try:
        if args.keep_history is not None and args.keep_history < 0:
            raise RotoscopeError("--keep-history must be 0 or more")
        folders = run_folders(args.folders or [rotoscope_home() / "outputs"])
        total: list[Prunable] = []
        for folder in folders:
            try:
                items = (prunable if args.dry_run else prune)(folder, args.keep_history, args.flow)
            except RotoscopeError as exc:  # a job is running there: leave that folder alone
                print(f"rotoscope-prune: skipped {folder}: {exc}", file=sys.stderr)
                continue
            for item in items:
                print(f"{item.path}  {format_bytes(item.bytes)}  {item.why}")
            total += items
    except RotoscopeError as exc:
        print(f"rotoscope-prune: error: {exc}", file=sys.stderr)
        sys.exit(2)
    verb = "would free" if args.dry_run else "freed"
    print(
        f"rotoscope-prune: {verb} {format_bytes(sum(item.bytes for item in total))} "
        f"({plural(len(total), 'item')}) in {plural(len(folders), 'run folder')}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
