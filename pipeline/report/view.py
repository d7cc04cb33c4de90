"""What a run folder holds, read for its page: one :class:`RunView`.

Everything comes from the records the stages leave (the run folder is the only state
they share): ``plan.jsonl`` for what every frame should get, ``manifest.jsonl`` for
the frames made so far and what made each one (its whole line: a field a new feature
records is shown without this module knowing it), each frame PNG's A1111 parameters,
``report.json`` for how the last job ended, ``metrics.json`` for the flicker, the
deliverables' sidecars for the looks kept in ``history/``. A file being written while
the page is read (the manifest's last line, a frame's thumbnail) is simply not shown
yet: the next refresh shows it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from pipeline.errors import RotoscopeError
from pipeline.records.manifest import FILE_IDENTITIES
from pipeline.records.provenance import kept_looks
from pipeline.records.report import JobReport
from pipeline.records.run_folder import RunFolder
from pipeline.records.thumbnails import ensure_thumbnail
from pipeline.report.charts import plan_svg

# Record fields shown in a frame's details as they are, not in the plan table.
RECORD_FIELDS_SHOWN_APART = ("row", "file", "index")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class FrameView:
    """One current frame: its images (paths relative to the run folder) and its record."""

    index: int
    key: str
    file: str
    thumbnail: str
    source_thumbnail: str | None
    origin: str  # diffused, carried, ...: how the frame was made
    mask: str | None
    maps: list[tuple[str, str]]  # (what, file): ControlNet maps, depth maps
    record: dict[str, Any]  # the manifest line, plan row included
    parameters: str | None  # the A1111 parameters of the PNG


@dataclass(frozen=True)
class LookView:
    """An earlier look kept in ``history/`` (or beside the current one): its frames."""

    look: str
    made: str
    outputs: list[str]
    prompts: list[str]
    frames: dict[int, str]  # index -> image relative to the run folder (kept frames only)


@dataclass(frozen=True)
class Live:
    """What only the running job knows: the stage it is in and its rate."""

    stage: str
    command: str | None = None  # what resumes it


@dataclass
class RunView:
    """A run folder as its page shows it."""

    folder: RunFolder
    status: str  # running | done | interrupted | failed | not started
    stage: str | None
    planned: int
    rows: list[dict[str, Any]]
    plan_chart: str  # inline SVG
    frames: list[FrameView]
    fps: float
    source: dict[str, Any] | None
    report: dict[str, Any] | None
    line: str | None  # the closing line of the last job
    command: str | None
    eta: str | None  # while running: the time left, once frames are being made
    metrics: dict[str, Any] | None
    looks: list[LookView] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return len(self.frames)

    @property
    def name(self) -> str:
        return self.folder.path.name


def read_json(path: Path) -> Any:
    """A JSON record, or None while it is missing or being replaced."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of ``path`` (a line still being appended is left out)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    lines = []
    for line in text.split("\n")[:-1]:  # the part after the last newline is unfinished
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def same_row(recorded: dict[str, Any], planned: dict[str, Any]) -> bool:
    """Was a frame made for this plan row? (File identities are refreshed, not a look;
    an optional field is left out of a record while it is None.)"""

    def look(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k != FILE_IDENTITIES and v is not None}

    return look(recorded) == look(planned)


class FrameReader:
    """Builds :class:`FrameView` s, each frame's files and metadata read once per key
    (a live page is rebuilt every few seconds: only new frames cost anything), and the
    plan chart once per plan."""

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder
        self._parameters: dict[str, str | None] = {}
        self._views: dict[str, FrameView] = {}  # complete views (every file there), by key
        self._plan: tuple[list[dict[str, Any]], str] | None = None

    def plan_chart(self, rows: list[dict[str, Any]]) -> str:
        """The plan chart of ``rows`` (drawn again only when the plan changed)."""
        if self._plan is None or self._plan[0] != rows:
            self._plan = (rows, plan_svg(rows))
        return self._plan[1]

    def view(self, record: dict[str, Any]) -> FrameView | None:
        key = str(record.get("key", ""))
        known = self._views.get(key)
        if known is not None and known.record == record:
            return known
        found = self._view(record)
        if found is not None and found.thumbnail.endswith(".jpg"):  # its thumbnail is made
            self._views[key] = found
        return found

    def _view(self, record: dict[str, Any]) -> FrameView | None:
        folder, key = self.folder, str(record.get("key", ""))
        frame_file = folder.path / str(record.get("file", ""))
        if not key or not frame_file.is_file():
            return None
        thumbnail = ensure_thumbnail(folder, key, frame_file)
        source = folder.thumbnail(key, of_source=True)
        mask = folder.mask(record["mask"]) if record.get("mask") else None
        return FrameView(
            index=int(record["index"]),
            key=key,
            file=self.relative(frame_file),
            thumbnail=self.relative(thumbnail or frame_file),
            source_thumbnail=self.relative(source) if source.is_file() else None,
            origin=origin_of(record),
            mask=self.relative(mask) if mask is not None and mask.is_file() else None,
            maps=self.maps(record),
            record=record,
            parameters=self.parameters(key, frame_file),
        )

    def relative(self, path: Path) -> str:
        return path.relative_to(self.folder.path).as_posix()

    def maps(self, record: dict[str, Any]) -> list[tuple[str, str]]:
        """The images drawn for this frame: its ControlNet maps, its depth map."""
        found = []
        control = self.folder.control
        if record.get("control") and control.is_dir():
            for unit in sorted(entry.name for entry in control.iterdir() if entry.is_dir()):
                path = self.folder.control_map(unit, int(record["index"]))
                if path.is_file():
                    found.append((f"control: {unit}", self.relative(path)))
        depth = self.folder.depth_map(str(record["key"]))
        if depth.is_file():
            found.append(("depth", self.relative(depth)))
        # any other image the record names (an upscaled version, a carried frame's
        # source...): shown by the name of its field, whatever feature wrote it
        for name, value in record.items():
            if name != "file" and isinstance(value, str) and value.endswith(IMAGE_SUFFIXES):
                path = self.folder.path / value
                inside = path.resolve().is_relative_to(self.folder.path.resolve())
                if inside and path.is_file():
                    found.append((name, self.relative(path)))
        return found

    def parameters(self, key: str, frame_file: Path) -> str | None:
        """The PNG's A1111 parameters (sampler, LoRAs, model hash...), read once per key."""
        if key not in self._parameters:
            try:
                with Image.open(frame_file) as picture:
                    text = picture.info.get("parameters")
                self._parameters[key] = text if isinstance(text, str) else None
            except (OSError, ValueError):
                return None
        return self._parameters[key]


def origin_of(record: dict[str, Any]) -> str:
    """How a frame was made, as its record says: an ``origin`` field if a strategy
    records one, ``carried`` for a frame recorded as carried, else ``diffused``."""
    origin = record.get("origin")
    if isinstance(origin, str) and origin:
        return origin
    if any(value and "carr" in name for name, value in record.items()):
        return "carried"
    return "diffused"


def last_records(folder: RunFolder) -> dict[int, dict[str, Any]]:
    """The last manifest line of every frame index (its current frame)."""
    last: dict[int, dict[str, Any]] = {}
    for line in read_lines(folder.manifest):
        if isinstance(line, dict) and "index" in line:
            last[int(line["index"])] = line
    return last


def current_frames(
    folder: RunFolder, rows: list[dict[str, Any]], reader: FrameReader
) -> list[FrameView]:
    """The frames of this plan made so far, in frame order (the last line per index)."""
    last = last_records(folder)
    frames = []
    for row in rows:
        record = last.get(int(row.get("index", -1)))
        if record is None or not same_row(record.get("row", {}), row):
            continue
        view = reader.view(record)
        if view is not None:
            frames.append(view)
    return frames


def looks_of(folder: RunFolder) -> list[LookView]:
    """Every kept look but the current one, newest first, with the frames still on disk."""
    try:
        looks = kept_looks(folder)
    except (RotoscopeError, OSError):
        return []
    views = []
    for kept in looks:
        if kept.current:
            continue
        frames: dict[int, str] = {}
        for frame in kept.provenance.frames:
            file = folder.frame(frame.key)
            if file.is_file():
                thumbnail = ensure_thumbnail(folder, frame.key, file) or file
                frames[frame.index] = thumbnail.relative_to(folder.path).as_posix()
        views.append(
            LookView(
                look=kept.look,
                made=kept.provenance.made,
                outputs=[path.relative_to(folder.path).as_posix() for path in kept.outputs],
                prompts=kept.provenance.prompts,
                frames=frames,
            )
        )
    return views


def closing_line(report: dict[str, Any] | None) -> str | None:
    """The job's closing line, as it printed it."""
    if not report:
        return None
    known = JobReport.__dataclass_fields__
    values = {k: v for k, v in report.items() if k in known and not k.startswith("_")}
    try:
        return JobReport(**values).line()
    except (TypeError, ValueError, KeyError):
        return None


def read_view(
    folder: RunFolder,
    live: Live | None = None,
    reader: FrameReader | None = None,
    looks: list[LookView] | None = None,
) -> RunView:
    """The run folder as it is now; ``live`` while a job runs in it. ``looks`` reuses
    kept looks already read (they change only when a job assembles)."""
    rows = [row for row in read_lines(folder.plan_jsonl) if isinstance(row, dict)]
    reader = reader or FrameReader(folder)
    frames = current_frames(folder, rows, reader)
    report = read_json(folder.report)
    source = read_json(folder.source_json)
    if live is not None:
        status = "running"
    else:
        status = str((report or {}).get("status") or "not started")
        if status == "running":  # a job that ended without its report (kill -9)
            status = "stopped"
    outputs = [
        os.path.relpath(path, folder.path)
        for path in (report or {}).get("outputs", [])
        if Path(path).exists() and Path(path).resolve().is_relative_to(folder.path.resolve())
    ]
    history = []
    if folder.history.is_dir():
        history = sorted(
            entry.relative_to(folder.path).as_posix()
            for entry in folder.history.iterdir()
            if not RunFolder.is_sidecar(entry) and not entry.name.startswith(".")
        )
    return RunView(
        folder=folder,
        status=status,
        stage=live.stage if live else None,
        planned=len(rows),
        rows=rows,
        plan_chart=reader.plan_chart(rows),
        frames=frames,
        fps=float((source or {}).get("fps") or 12.0),
        source=source,
        report=report,
        line=None if live else closing_line(report),
        command=live.command if live else (report or {}).get("resume_command"),
        eta=None,
        metrics=read_json(folder.metrics),
        looks=looks_of(folder) if looks is None else looks,
        outputs=outputs,
        history=history,
    )


def frames_made(folder: RunFolder) -> tuple[int, int, str | None]:
    """(frames of the plan made so far, frames planned, the latest one's thumbnail
    relative to the run folder): a queue's row, without reading every frame's file."""
    rows = [row for row in read_lines(folder.plan_jsonl) if isinstance(row, dict)]
    last = last_records(folder)
    done, latest = 0, None
    for row in rows:
        record = last.get(int(row.get("index", -1)))
        if record is not None and same_row(record.get("row", {}), row):
            done += 1
            thumbnail = folder.thumbnail(str(record.get("key", "")))
            if thumbnail.is_file():
                latest = thumbnail.relative_to(folder.path).as_posix()
    return done, len(rows), latest
