"""Atomic file writes: a file appears under its final name complete, or not at all.

Resume trusts every frame, map and record it finds in a run folder, so nothing may be
left half-written by a crash, ``kill -9`` or a full disk. Every writer goes through
:func:`atomic_path`: the content is written to a hidden temporary sibling (same folder,
so the same filesystem), flushed to disk, then renamed over the final name, which POSIX
makes atomic. The temporary name is short and fixed-length (``.<12 hex>.tmp``), so a
final name at the filesystem's length limit still works, and leftovers from a killed
process are easy to find (:data:`TEMPORARY_GLOB`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMPORARY_GLOB = ".*.tmp"


@contextmanager
def atomic_path(final: Path, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write ``final``'s content to; move it into place after.

    The caller (or a program it runs, such as ffmpeg) creates the temporary file. On a
    clean exit it is fsynced (when ``durable``) and renamed to ``final``; on any
    exception it is removed and the exception propagates, so ``final`` keeps its old
    content or stays absent. The parent folder is created if needed.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        if durable:
            with tmp.open("rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(final: Path, text: str, durable: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``final`` atomically; return ``final``."""
    with atomic_path(final, durable) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return final


def write_bytes(final: Path, data: bytes, durable: bool = True) -> Path:
    """Write ``data`` to ``final`` atomically; return ``final``."""
    with atomic_path(final, durable) as tmp:
        tmp.write_bytes(data)
    return final


def move(source: Path, target: Path, replace: bool = False) -> Path:
    """Rename ``source`` (a file or folder) to ``target`` on the same filesystem.

    One rename, so ``target`` appears whole or not at all: this is how a finished
    deliverable takes its name and how a previous one moves into history. Without
    ``replace`` an existing ``target`` is never overwritten (FileExistsError).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if not replace and (target.exists() or target.is_symlink()):
        raise FileExistsError(f"{target} exists")
    os.replace(source, target)
    return target


def remove_partial_files(folder: Path) -> int:
    """Delete temporary files a killed writer left in ``folder``; return how many."""
    removed = 0
    for partial in folder.glob(TEMPORARY_GLOB):
        partial.unlink(missing_ok=True)
        removed += 1
    return removed
