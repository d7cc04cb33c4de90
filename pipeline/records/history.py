"""Kept history: a later run never destroys what an earlier one made.

Deforum names its folders by time and A1111 numbers its files, so neither ever
overwrites a finished render; rotoscope keeps one stable run folder per input (that is
what makes resume and change-aware re-render work), so it keeps history inside it:

- **Frames** are stored by key (:meth:`RunFolder.frame_name`); frames of an earlier look
  stay in ``frames/`` next to the current ones (the manifest says which are current), and
  so do upscaled frames (``upscaled/``, made from a frame by an upscaler at a size) and
  in-between frames (``between/``, made from two delivered frames).
- **Deliverables** (``<name>.mp4``, ``images/``, ...) are written to a hidden staging
  name first; if the new one was made from different frames or options than the one it
  replaces, the old one moves to ``history/<name>-<its time>.<ext>`` before the new one
  takes its name. A re-encode of the same frames with the same options replaces it in
  place (``deliverables.json`` records what each current deliverable was made from).

:func:`history_bytes` is the disk this costs (reported per job); ``rotoscope-prune``
(:mod:`pipeline.records.prune`) frees it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.atomic import move, write_text
from pipeline.records.manifest import Manifest
from pipeline.records.run_folder import FRAME_KEY_LENGTH, RunFolder
from pipeline.records.upscaled import UpscaledFrames

log = logging.getLogger("rotoscope")


def recipe_of(parts: object) -> str:
    """A hash of what a deliverable is made from (frame keys, names, encoder options)."""
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Recipes:
    """``deliverables.json``: the recipe of each current deliverable, by file name."""

    folder: RunFolder
    by_name: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: RunFolder) -> Recipes:
        try:
            data = json.loads(folder.deliverables.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls(folder)
        return cls(
            folder, {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        )

    def write(self) -> None:
        write_text(
            self.folder.deliverables, json.dumps(self.by_name, indent=2, sort_keys=True) + "\n"
        )


def publish(folder: RunFolder, staged: Path, final: Path, recipe: str) -> Path | None:
    """Put the ``staged`` deliverable at ``final``; return where the previous one went.

    The previous ``final`` moves into ``history/`` unless it was made from the same
    ``recipe`` (then the new one simply replaces it: same frames, same options).
    """
    recipes = Recipes.read(folder)
    kept = None
    if final.exists():
        if recipes.by_name.get(final.name) != recipe:
            kept = move(final, history_path(folder, final))
            log.info("previous %s kept as %s", final.name, kept.relative_to(folder.path))
        elif final.is_dir():
            shutil.rmtree(final)  # the same images again: a folder cannot be renamed over
    move(staged, final, replace=True)
    recipes.by_name[final.name] = recipe
    recipes.write()
    return kept


def history_path(folder: RunFolder, final: Path) -> Path:
    """``history/<stem>-<time it was made>[-n]<suffix>`` for a deliverable being replaced."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(final.stat().st_mtime))
    suffix = "" if final.is_dir() else final.suffix
    stem = final.name if final.is_dir() else final.stem
    candidate = folder.history / f"{stem}-{stamp}{suffix}"
    number = 2
    while candidate.exists():
        candidate = folder.history / f"{stem}-{stamp}-{number}{suffix}"
        number += 1
    return candidate


def clear_staging(staged: Path) -> None:
    """Remove what a killed assemble left at a staging name."""
    if staged.is_dir():
        shutil.rmtree(staged)
    else:
        staged.unlink(missing_ok=True)


def superseded_frames(folder: RunFolder, manifest: Manifest) -> list[Path]:
    """Frame files no current manifest line references: earlier looks (and strays)."""
    if not folder.frames.is_dir():
        return []
    current = {(folder.path / record.file).resolve() for record in manifest.records.values()}
    return sorted(
        path
        for path in folder.frames.iterdir()
        if path.is_file() and path.suffix == ".png" and path.resolve() not in current
    )


def superseded_state(folder: RunFolder, manifest: Manifest) -> list[Path]:
    """Coherence state files (latents, attention recordings) of frames no current manifest
    line references: what earlier looks' chains handed on."""
    if not folder.coherence.is_dir():
        return []
    current = {record.key for record in manifest.records.values()}
    return sorted(
        path
        for path in folder.coherence.iterdir()
        if (key := RunFolder.coherence_key(path)) is not None
        and not any(full.startswith(key) for full in current)
    )


def superseded_upscaled(folder: RunFolder, manifest: Manifest) -> list[Path]:
    """Upscaled frames made from no current frame (earlier looks' and strays)."""
    if not folder.upscaled.is_dir():
        return []
    current = {record.key for record in manifest.records.values()}
    kept = {
        (folder.path / record.file).resolve()
        for record in UpscaledFrames(folder).made_from(current)
    }
    return sorted(
        path
        for path in folder.upscaled.iterdir()
        if path.is_file() and path.suffix == ".png" and path.resolve() not in kept
    )


def superseded_in_betweens(folder: RunFolder, manifest: Manifest) -> list[Path]:
    """In-between frames whose two neighbours are not both current delivered frames."""
    if not folder.between.is_dir():
        return []
    current = {record.key for record in manifest.records.values()}
    delivered = current | {record.key for record in UpscaledFrames(folder).made_from(current)}
    short = {key[:FRAME_KEY_LENGTH] for key in delivered}
    return sorted(
        path
        for path in folder.between.iterdir()
        if path.is_file()
        and ((pair := RunFolder.between_neighbours(path)) is None or not set(pair) <= short)
    )


def size_of(paths: Iterable[Path]) -> int:
    """Bytes on disk of files and folders (recursively)."""
    total = 0
    for path in paths:
        if path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            total += path.stat().st_size
    return total


def history_bytes(folder: RunFolder) -> int:
    """Disk used by kept history: superseded frames (and the coherence state their chains
    left), plus earlier deliverables."""
    if not folder.path.is_dir():
        return 0
    manifest = Manifest(folder)
    superseded = [
        *superseded_frames(folder, manifest),
        *superseded_state(folder, manifest),
        *superseded_upscaled(folder, manifest),
        *superseded_in_betweens(folder, manifest),
    ]
    return size_of(superseded) + size_of([folder.history])
