"""The record of frames brought to the delivered size (``upscaled.jsonl``).

The upscale stage writes each frame at the delivered size under its own key (the
rendered frame's key, what upscaled it and at what precision, and the size), so resume
and "re-upscale only what changed" follow the manifest's rule: a frame whose key is
recorded, with its file on disk, is not made again. The upscaled files stay next to the
render-size ones (``frames/`` is untouched), and an earlier look (another upscaler, another
size) stays findable by its key until ``rotoscope-prune`` removes what no current frame
needs.

The assemble stage picks, for each frame, the last line made from the frame's current
render by the current recipe (upscaler and size); the precision it ran at is part of the
key but not of the recipe, like a render's device: frames upscaled on a GPU are delivered
from a machine without one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass

from pipeline.atomic import write_text
from pipeline.records.manifest import append_line
from pipeline.records.run_folder import RunFolder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpscaledFrame:
    """One frame at its delivered size: which render it came from, how, and where it is."""

    index: int
    frame: str  # the key of the rendered frame it was made from
    recipe: str  # the upscaler (its file's hash, or lanczos) and the size
    key: str  # its own key: frame, recipe and precision
    file: str  # relative to the run folder
    width: int
    height: int


def upscaled_key(frame: str, recipe: str, precision: str) -> str:
    """The key of the frame ``recipe`` makes from the rendered frame ``frame``."""
    digest = hashlib.sha256()
    for part in ("upscaled-v1", frame, recipe, precision):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def upscaled_line(record: UpscaledFrame) -> str:
    return json.dumps(asdict(record), sort_keys=True) + "\n"


class UpscaledFrames:
    """``upscaled.jsonl``: append-only lines, read once; later lines win."""

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder
        self.lines: list[UpscaledFrame] = []
        if folder.upscaled_index.exists():
            with folder.upscaled_index.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        self.lines.append(UpscaledFrame(**json.loads(line)))
                    except (json.JSONDecodeError, TypeError):
                        log.warning("skipping damaged line %d of %s", number, handle.name)
        self.by_key = {record.key: record for record in self.lines}

    def exists(self, record: UpscaledFrame) -> bool:
        return (self.folder.path / record.file).is_file()

    def find(self, key: str) -> UpscaledFrame | None:
        """The recorded frame made with ``key``, if its file is on disk."""
        record = self.by_key.get(key)
        return record if record is not None and self.exists(record) else None

    def current(self, frame: str, recipe: str) -> UpscaledFrame | None:
        """The frame made from the render ``frame`` (a frame key) by ``recipe`` (the last
        such line whose file is on disk), at whatever precision it ran, at whatever index
        it was recorded: a photo keyed by its file keeps its key when it moves."""
        for record in reversed(self.lines):
            same = (record.frame, record.recipe) == (frame, recipe)
            if same and self.exists(record):
                return record
        return None

    def add(self, record: UpscaledFrame) -> None:
        """Record a frame whose file is durable (the line is fsynced before returning)."""
        append_line(self.folder.upscaled_index, upscaled_line(record))
        self.lines.append(record)
        self.by_key[record.key] = record

    def made_from(self, frames: set[str]) -> list[UpscaledFrame]:
        """The lines (the last for each key) made from the rendered frames ``frames``."""
        return [record for record in self.by_key.values() if record.frame in frames]

    def compact(self, frames: set[str]) -> None:
        """Rewrite the record with one line per upscaled frame made from the rendered
        frames ``frames`` whose file exists (what ``rotoscope-prune`` keeps)."""
        kept = [record for record in self.made_from(frames) if self.exists(record)]
        write_text(self.folder.upscaled_index, "".join(upscaled_line(r) for r in kept))
        self.lines = kept
        self.by_key = {record.key: record for record in kept}
