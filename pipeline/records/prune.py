"""Pruning a run folder's kept history: what no current frame or kept deliverable needs.

Runs keep every earlier look (:mod:`pipeline.records.history`); this decides what may go
when the user asks (``rotoscope-prune``):

- frames no current manifest line references (earlier looks, and a frame a killed
  process wrote but never recorded), after which the manifest is rewritten with only
  its current lines;
- the coherence state (latents, attention recordings), the masks, the depth maps and
  the report page's thumbnails of those frames, the upscaled frames made from them, the
  in-between frames made from frames no longer delivered, and the diffused frames a
  loopback cadence tweened them from;
- leftovers of interrupted writes (hidden temporary and staging files, in any folder);
- with ``flow``, the optical flow cache (recomputed when needed);
- with ``keep_history=N``, all but the newest N earlier versions of each deliverable in
  ``history/`` (by default every earlier deliverable is kept: they are results).

Current frames, current deliverables, the plan, control maps and the records are never
touched. Nothing is deleted while another job holds the folder's lock.
"""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pipeline.atomic import TEMPORARY_GLOB
from pipeline.records.history import (
    size_of,
    superseded_cadence,
    superseded_depth,
    superseded_frames,
    superseded_in_betweens,
    superseded_masks,
    superseded_state,
    superseded_upscaled,
)
from pipeline.records.lock import RunLock
from pipeline.records.manifest import Manifest
from pipeline.records.run_folder import RunFolder
from pipeline.records.upscaled import UpscaledFrames

# history/<stem>-<YYYYmmdd-HHMMSS>[-n]<suffix>: what is left of the deliverable's name
_HISTORY_STAMP = re.compile(r"-\d{8}-\d{6}(?:-\d+)?$")


@dataclass(frozen=True)
class Prunable:
    """One file or folder that pruning removes, its size, and why it may go."""

    path: Path
    bytes: int
    why: str


def is_run_folder(path: Path) -> bool:
    """A folder a job ran in (it has a manifest, an owner record or a plan)."""
    folder = RunFolder(path)
    return any(p.exists() for p in (folder.manifest, folder.run_json, folder.plan_jsonl))


def prunable(
    folder: RunFolder, keep_history: int | None = None, flow: bool = False
) -> list[Prunable]:
    """What pruning ``folder`` would remove (nothing is removed here); ``flow`` adds the
    optical flow cache, which the next coherent render or metrics stage computes again."""
    manifest = Manifest(folder)
    items = [
        Prunable(path, size_of([path]), "earlier look")
        for path in superseded_frames(folder, manifest)
    ]
    items += [
        Prunable(path, size_of([path]), "earlier look's coherence state")
        for path in superseded_state(folder, manifest)
    ]
    items += [
        Prunable(path, size_of([path]), "earlier look's upscaled frame")
        for path in superseded_upscaled(folder, manifest)
    ]
    items += [
        Prunable(path, size_of([path]), "earlier look's in-between frame")
        for path in superseded_in_betweens(folder, manifest)
    ]
    items += [
        Prunable(path, size_of([path]), "earlier look's mask")
        for path in superseded_masks(folder, manifest)
    ]
    items += [
        Prunable(path, size_of([path]), "earlier look's depth map")
        for path in superseded_depth(folder, manifest)
    ]
    items += [
        Prunable(path, size_of([path]), "earlier look's diffused frame")
        for path in superseded_cadence(folder, manifest)
    ]
    items += [
        Prunable(path, size_of([path]), "earlier look's thumbnail")
        for path in superseded_thumbnails(folder, manifest)
    ]
    leftovers = [*folder.path.rglob(TEMPORARY_GLOB), *folder.path.glob(folder.staging("*").name)]
    items += [Prunable(path, size_of([path]), "unfinished write") for path in leftovers]
    if flow and folder.flow.is_dir():
        items.append(Prunable(folder.flow, size_of([folder.flow]), "flow cache (recomputable)"))
    if keep_history is not None and folder.history.is_dir():
        versions: dict[str, list[Path]] = defaultdict(list)
        for entry in folder.history.iterdir():
            if not RunFolder.is_sidecar(entry):  # a sidecar goes with its deliverable
                versions[deliverable_of(entry)].append(entry)
        for entries in versions.values():
            newest_first = sorted(entries, key=lambda p: p.stat().st_mtime, reverse=True)
            for path in newest_first[keep_history:]:
                items.append(Prunable(path, size_of([path]), "earlier deliverable"))
                sidecar = RunFolder.sidecar(path)
                if sidecar.exists():
                    items.append(Prunable(sidecar, size_of([sidecar]), "its provenance"))
    return items


def superseded_thumbnails(folder: RunFolder, manifest: Manifest) -> list[Path]:
    """The report page's thumbnails of frames no current manifest line references."""
    if not folder.thumbnails.is_dir():
        return []
    current = {folder.thumbnail(record.key).name for record in manifest.records.values()}
    return sorted(
        path
        for path in folder.thumbnails.glob("*.jpg")
        if f"{path.name.split('.')[0]}.jpg" not in current
    )


def deliverable_of(entry: Path) -> str:
    """Which deliverable a history entry is a version of: ``clip-20250101-100000.mp4`` ->
    ``clip.mp4``, ``images-20250101-100000/`` -> ``images``."""
    if entry.is_dir():
        return _HISTORY_STAMP.sub("", entry.name)
    return _HISTORY_STAMP.sub("", entry.stem) + entry.suffix


def prune(folder: RunFolder, keep_history: int | None = None, flow: bool = False) -> list[Prunable]:
    """Remove what :func:`prunable` lists, holding the folder's lock; return it."""
    with RunLock(folder.lock):
        items = prunable(folder, keep_history, flow)
        for item in items:
            if item.path.is_dir():
                shutil.rmtree(item.path)
            else:
                item.path.unlink(missing_ok=True)
        if folder.manifest.exists():
            manifest = Manifest(folder)
            manifest.compact()
            if folder.upscaled_index.exists():
                current = {record.key for record in manifest.records.values()}
                UpscaledFrames(folder).compact(current)
        if folder.history.is_dir() and not any(folder.history.iterdir()):
            folder.history.rmdir()
    return items
