"""The run's record of finished frames, and the key that decides whether one is current.

A frame's output depends only on its plan row, its input frame and the model, so a hash
of those three is its key (in loopback the input frame is the previous output, so a
change ripples forward through exactly the frames it affects; a photo of an image
folder is keyed by its file wherever it sorts: the row's ``key_json`` leaves its
position out). ``manifest.jsonl`` gets
one appended, fsynced line per finished frame (after the PNG itself is safely renamed
into place); on a re-run a frame whose key matches the last line recorded for its
index, and whose file exists, is reused instead of rendered. A torn line from a crash
is skipped with a warning.

Frames are stored by key (``frames/<key[:16]>.png``), so a new look never overwrites an
old one: the last line for an index is its *current* frame, and earlier lines keep the
earlier looks findable. Going back to an earlier look (say, undoing a prompt edit)
finds those frames by key and points the index at them again, without rendering.
``rotoscope-prune`` deletes frames no current line references.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.atomic import write_text
from pipeline.records.run_folder import RunFolder

log = logging.getLogger(__name__)


class KeyedRow(Protocol):
    """What the manifest needs of a plan row (:class:`pipeline.plan.rows.PlanRow` is one):
    its frame index, the JSON its key hashes, and its fields as a record stores them."""

    @property
    def index(self) -> int: ...

    def key_json(self) -> str: ...

    def as_record(self) -> dict[str, Any]: ...


# A row field that identifies files (LoRAs, embeddings) rather than a look: the render
# refreshes it itself, so a frame recorded with other file identities is the same look.
FILE_IDENTITIES = "network_files"


@dataclass(frozen=True)
class FrameRecord:
    """One finished frame: where it is, what made it, and where it came from.

    ``row``, ``input`` and ``model`` are the parts of the key, kept so a re-run can say
    why a frame is rendered again (which plan fields changed, or the input, or the model).
    """

    index: int
    file: str  # relative to the run folder
    key: str
    source_index: int
    source_name: str | None
    time: float
    row: dict[str, Any] = field(default_factory=dict)
    input: str = ""
    model: str = ""
    control: str = ""
    dependencies: str = ""  # temporal coherence: earlier frames' keys and settings
    mask: str = ""  # with a mask: its pixels' digest (RunFolder.mask names its file)
    # cadence: the diffused frames a carried (not diffused) frame was made from; the
    # report page shows such a frame as carried
    carried_from: list[int] = field(default_factory=list)


def image_digest(image: np.ndarray) -> str:
    """Hash of a frame's exact pixels (and shape)."""
    digest = hashlib.sha256(str(image.shape).encode("ascii"))
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def frame_key(
    row: KeyedRow,
    input_digest: str,
    model_identity: str,
    control: str = "",
    dependencies: str = "",
    mask: str = "",
) -> str:
    """Hash of everything that shapes the frame: plan row, input pixels, model (with its
    ControlNets), the keys of its control maps and, with temporal coherence, the frames it
    is rendered from (``dependencies``), with a mask the mask (its digest and how masks are
    rendered: ``mask``). The last two are left out when empty, so other keys never change."""
    digest = hashlib.sha256()
    parts = [row.key_json(), input_digest, model_identity, control]
    parts += [dependencies] if dependencies else []
    parts += [f"mask={mask}"] if mask else []
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def rerender_reason(
    record: FrameRecord | None,
    row: KeyedRow,
    input_digest: str,
    model_identity: str,
    control: str = "",
    dependencies: str = "",
    mask: str = "",
) -> str:
    """Why a frame whose key is not current must be rendered, in a few words. ``mask`` is
    the mask part of the key, which starts with the mask's digest (what a record keeps)."""
    if record is None:
        return "new"
    if record.key == frame_key(row, input_digest, model_identity, control, dependencies, mask):
        return "file missing"
    changed = [
        name
        for name, value in row.as_record().items()
        if name != "index" and record.row.get(name) != value
    ]
    if changed and record.row:
        return "changed " + ", ".join(changed[:3]) + (" ..." if len(changed) > 3 else "")
    if record.model and record.model != model_identity:
        return "model changed"
    if record.input and record.input != input_digest:
        return "input changed"
    if record.control != control:
        return "control map changed"
    if record.dependencies != dependencies:
        return "earlier frame changed" if record.dependencies and dependencies else "coherence"
    if mask and record.mask and not mask.startswith(record.mask):
        return "mask changed"
    return "changed"


def append_line(path: Path, line: str) -> None:
    """Append one newline-terminated line to a JSON-lines record, durably (fsynced before
    returning); a torn last line left by a crash is ended first, so it cannot swallow
    this one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        if fh.tell() and not _ends_with_newline(path):
            fh.write("\n")
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def record_line(record: FrameRecord) -> str:
    """One manifest line (JSON, newline-terminated)."""
    return json.dumps(asdict(record), sort_keys=True, ensure_ascii=False) + "\n"


def same_look(recorded: dict[str, Any], row: KeyedRow) -> bool:
    """Whether a frame recorded with the row ``recorded`` is a frame of ``row``: equal
    fields (one the record lacks, from before the field existed, counts as unset), file
    identities aside; a field the row does not have is another version's row."""
    current = row.as_record()
    if not set(recorded) <= set(current):
        return False
    return all(
        recorded.get(name) == value for name, value in current.items() if name != FILE_IDENTITIES
    )


class Manifest:
    """Append-only JSON lines; the last line for an index wins."""

    def __init__(self, folder: RunFolder, records: Iterable[FrameRecord] | None = None) -> None:
        """Read the folder's manifest; or, given ``records`` (in file order), hold those
        instead without reading: a Ray worker's view of the frames of its work unit."""
        self.run_dir = folder.path
        self.path = folder.manifest
        self.records: dict[int, FrameRecord] = {}  # the current frame of each index
        # every frame ever recorded here, by key: earlier looks stay findable
        self.by_key: dict[str, FrameRecord] = {}
        # the latest record of each photo keyed by its file (``source_file``)
        self.by_file: dict[str, FrameRecord] = {}
        for record in self._load() if records is None else records:
            self._remember(record)

    def _remember(self, record: FrameRecord) -> None:
        self.records[record.index] = record
        self.by_key[record.key] = record
        name = record.row.get("source_file")
        if name is not None:
            self.by_file[str(name)] = record

    def _load(self) -> list[FrameRecord]:
        records: list[FrameRecord] = []
        if not self.path.exists():
            return records
        with self.path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(FrameRecord(**json.loads(line)))
                except (json.JSONDecodeError, TypeError):
                    log.warning("skipping damaged line %d of %s", number, self.path)
        return records

    def find(self, index: int, key: str) -> tuple[FrameRecord, bool] | None:
        """The record for ``index`` if it was made with ``key`` and its file exists, and
        whether it is an earlier look (a frame made with ``key`` before another look
        replaced it, its file still on disk) whose line must be appended again to make it
        current, so the assemble stage picks it again. The render loop writes that line,
        in frame order, through its writer.

        A key holds the frame number unless the frame is a photo keyed by its file, which
        may have been recorded at another position (a photo added before it): the record
        is then returned as it was, and the caller gives it its new place."""
        record = self.records.get(index)
        if record and record.key == key and (self.run_dir / record.file).is_file():
            return record, False
        earlier = self.by_key.get(key)
        if earlier and (self.run_dir / earlier.file).is_file():
            return earlier, True
        return None

    def relevant(self, indices: Iterable[int]) -> list[FrameRecord]:
        """The records a render of frames ``indices`` can reuse (current and earlier looks),
        current ones last: what a worker's :class:`Manifest` is built from."""
        wanted = set(indices)
        earlier = [r for r in self.by_key.values() if r.index in wanted]
        return earlier + [record for index, record in self.records.items() if index in wanted]

    def add(self, record: FrameRecord) -> None:
        """Record a finished frame durably (the line is fsynced before returning)."""
        append_line(self.path, record_line(record))
        self._remember(record)

    def compact(self) -> None:
        """Rewrite the file with only the current record of each index whose file exists
        (what ``rotoscope-prune`` keeps), atomically."""
        kept = [
            record
            for _, record in sorted(self.records.items())
            if (self.run_dir / record.file).is_file()
        ]
        write_text(self.path, "".join(record_line(record) for record in kept))
        self.records, self.by_key, self.by_file = {}, {}, {}
        for record in kept:
            self._remember(record)

    def finished(self, rows: Sequence[KeyedRow]) -> tuple[list[FrameRecord], list[int]]:
        """The frames of the plan ``rows`` on disk, in order, and the indices left out
        because their recorded frame was made from another row: an earlier look that a
        re-render has not replaced (it was interrupted, or the input frame is unreadable
        now). Assembling those would mix two looks in one deliverable. File identities of
        LoRAs and embeddings do not count: the render refreshes them itself."""
        finished, outdated = [], []
        for row in rows:
            record = self.records.get(row.index)
            if record is None or not (self.run_dir / record.file).is_file():
                continue
            if same_look(record.row, row):
                finished.append(record)
            else:
                outdated.append(row.index)
        return finished, outdated
