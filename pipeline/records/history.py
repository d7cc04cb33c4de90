"""Kept history: a later run never destroys what an earlier one made.

Deforum names its folders by time and A1111 numbers its files, so neither ever
overwrites a finished render; rotoscope keeps one stable run folder per input (that is
what makes resume and change-aware re-render work), so it keeps history inside it:

- **Frames** are stored by key (:meth:`RunFolder.frame_name`); frames of an earlier look
  stay in ``frames/`` next to the current ones (the manifest says which are current), and
  so do their masks in ``masks/``, upscaled frames (``upscaled/``, made from a frame by
  an upscaler at a size) and in-between frames (``between/``, made from two delivered
  frames).
- **Deliverables** (``<name>.mp4``, ``images/``, ...) are written to a hidden staging
  name first; if the new one was made from different frames or options than the one it
  replaces, the old one moves to ``history/<name>-<its time>.<ext>`` before the new one
  takes its name. A re-encode of the same frames with the same options replaces it in
  place (``deliverables.json`` records what each current deliverable was made from).
  An image folder keeps only its files that changed in history (a photo batch where
  one photo changed keeps one file, not the folder), and a deliverable the last
  assemble did not make (``images/`` after a render to mp4) moves to history whole: the
  top of the run folder holds the outputs of the last assemble.
- **Provenance**: every deliverable has a sidecar (``clip.mp4.json``, ``images.json``:
  :meth:`RunFolder.sidecar`) with the resolved config, the command line, the frame keys,
  the source and the versions that made it; it moves into history with its deliverable,
  so a kept output can always be told apart and made again (``rotoscope-history``).

:func:`history_bytes` is the disk this costs (reported per job); ``rotoscope-prune``
(:mod:`pipeline.records.prune`) frees it.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import logging
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def publish(
    folder: RunFolder,
    staged: Path,
    final: Path,
    recipe: str,
    provenance: dict[str, Any] | None = None,
) -> Path | None:
    """Put the ``staged`` deliverable at ``final``, with its ``provenance`` sidecar; return
    where the previous one went.

    The previous ``final`` moves into ``history/`` unless it was made from the same
    ``recipe`` (then the new one simply replaces it: same frames, same options).
    """
    recipes = Recipes.read(folder)
    kept = None
    if final.exists():
        if recipes.by_name.get(final.name) != recipe:
            kept = retire(folder, final, staged)
            if kept is not None:
                log.info("previous %s kept as %s", final.name, kept.relative_to(folder.path))
        elif final.is_dir():
            shutil.rmtree(final)  # the same images again: a folder cannot be renamed over
    move(staged, final, replace=True)
    if provenance is not None:
        write_text(
            RunFolder.sidecar(final), json.dumps(provenance, indent=2, ensure_ascii=False) + "\n"
        )
    recipes.by_name[final.name] = recipe
    recipes.write()
    return kept


def retire(folder: RunFolder, final: Path, replacement: Path | None = None) -> Path | None:
    """Move the deliverable ``final`` and its sidecar into ``history/``; return where.

    An image folder being replaced by the folder ``replacement`` keeps only the files
    that differ from (or are missing in) the new one; None when none does (nothing to
    keep: the new folder holds the same pictures).
    """
    target = history_path(folder, final)
    sidecar = RunFolder.sidecar(final)
    if final.is_dir() and replacement is not None and replacement.is_dir():
        changed = [
            path for path in sorted(final.iterdir())
            if not _same_file(path, replacement / path.name)
        ]  # fmt: skip
        for path in changed:
            move(path, target / path.name)
        shutil.rmtree(final)
        if not changed:
            sidecar.unlink(missing_ok=True)
            return None
    else:
        move(final, target)
    if sidecar.exists():
        move(sidecar, RunFolder.sidecar(target))
    return target


def retire_others(folder: RunFolder, current: list[Path]) -> list[Path]:
    """Move every deliverable the last assemble did not make (``current`` are those it
    made) into history; return where they went."""
    recipes = Recipes.read(folder)
    names = {path.name for path in current}
    kept = []
    for name in sorted(set(recipes.by_name) - names):
        path = folder.path / name
        if path.exists():
            moved = retire(folder, path)
            if moved is not None:
                log.info("%s (not made by this assemble) kept as %s", name,
                         moved.relative_to(folder.path))  # fmt: skip
                kept.append(moved)
        del recipes.by_name[name]
    recipes.write()
    return kept


def _same_file(old: Path, new: Path) -> bool:
    return new.is_file() and filecmp.cmp(old, new, shallow=False)


def history_path(folder: RunFolder, final: Path) -> Path:
    """``history/<stem>-<time it was made>[-n]<suffix>`` for a deliverable being replaced."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(final.stat().st_mtime))
    suffix = "" if final.is_dir() else final.suffix
    stem = final.name if final.is_dir() else final.stem
    candidate = folder.history / f"{stem}-{stamp}{suffix}"
    number = 2
    while candidate.exists() or RunFolder.sidecar(candidate).exists():
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
    """In-between frames (and masks) whose two neighbours are not both current delivered
    frames (or current frames' masks)."""
    if not folder.between.is_dir():
        return []
    current = {record.key for record in manifest.records.values()}
    delivered = current | {record.key for record in UpscaledFrames(folder).made_from(current)}
    masks = {record.mask for record in manifest.records.values() if record.mask}  # retimed too
    short = {key[:FRAME_KEY_LENGTH] for key in delivered | masks}
    return sorted(
        path
        for path in folder.between.iterdir()
        if path.is_file()
        and ((pair := RunFolder.between_neighbours(path)) is None or not set(pair) <= short)
    )


def superseded_masks(folder: RunFolder, manifest: Manifest) -> list[Path]:
    """Mask files no current manifest line names: the masks of earlier looks."""
    if not folder.masks.is_dir():
        return []
    current = {folder.mask(record.mask).name for record in manifest.records.values() if record.mask}
    return sorted(path for path in folder.masks.glob("*.png") if path.name not in current)


def superseded_depth(folder: RunFolder, manifest: Manifest) -> list[Path]:
    """Depth maps of loopback outputs no current manifest line references (as its frame,
    or as a diffused frame a current frame is tweened from)."""
    if not folder.depth.is_dir():
        return []
    current = referenced_keys(manifest)
    return sorted(
        path
        for path in folder.depth.iterdir()
        if (key := RunFolder.depth_key(path)) is not None
        and not any(full.startswith(key) for full in current)
    )


def superseded_cadence(folder: RunFolder, manifest: Manifest) -> list[Path]:
    """A loopback cadence's diffused frames that no current frame is tweened from."""
    if not folder.cadence.is_dir():
        return []
    current = referenced_keys(manifest)
    return sorted(
        path
        for path in folder.cadence.iterdir()
        if (key := RunFolder.cadence_key(path)) is not None
        and not any(full.startswith(key) for full in current)
    )


# A frame key named in a manifest line's dependencies ("newer=<key>", "from=<key>", ...)
NAMED_KEY = re.compile(r"=([0-9a-f]{64})\b")


def referenced_keys(manifest: Manifest) -> set[str]:
    """The keys of the current frames, and of the frames they are made from."""
    keys = set()
    for record in manifest.records.values():
        keys.add(record.key)
        keys.update(NAMED_KEY.findall(record.dependencies))
    return keys


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
    """Disk used by kept history: superseded frames (and the coherence state, masks,
    depth maps, upscaled and in-between frames made from them), plus earlier
    deliverables."""
    if not folder.path.is_dir():
        return 0
    manifest = Manifest(folder)
    superseded = [
        *superseded_frames(folder, manifest),
        *superseded_state(folder, manifest),
        *superseded_masks(folder, manifest),
        *superseded_depth(folder, manifest),
        *superseded_upscaled(folder, manifest),
        *superseded_in_betweens(folder, manifest),
        *superseded_cadence(folder, manifest),
    ]
    return size_of(superseded) + size_of([folder.history])
