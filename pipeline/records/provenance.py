"""What made a deliverable: the sidecar written next to every output and kept with it.

A video kept in ``history/`` is only worth keeping if someone can tell which look it is
and make it again. So every deliverable the assemble stage publishes gets a JSON sidecar
(``clip.mp4.json``, ``images.json``; :meth:`RunFolder.sidecar`) that moves into history
with it:

- the resolved config (keyframe file applied) and the command line of the job;
- the key of every frame, in order, and the model identity they were rendered with;
- the prompts (each keyframe's, once), the source description, the output options;
- when, and with which rotoscope, Python, torch, diffusers and transformers.

The frame keys are what ``rotoscope-history`` restores a look by: while its frames are
kept, restoring renders nothing (see :mod:`pipeline.run.restore`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from pipeline import __version__
from pipeline.config.compose import literal_node
from pipeline.config.schema import RunConfig
from pipeline.errors import RotoscopeError
from pipeline.records.history import Recipes
from pipeline.records.manifest import FrameRecord, Manifest
from pipeline.records.report import library_versions
from pipeline.records.run_folder import RunFolder

LOOK_LENGTH = 8  # hex digits of a look's id, as listed and as typed to restore one


@dataclass(frozen=True)
class FrameRef:
    """One frame of a deliverable: its index, its key, and its source file (photos)."""

    index: int
    key: str
    source_name: str | None = None


@dataclass(frozen=True)
class Provenance:
    """A deliverable's sidecar (see the module doc)."""

    deliverable: str  # its name when it was published (clip.mp4, images)
    made: str  # local time, ISO 8601
    command: str | None
    config: dict[str, Any]
    frames: list[FrameRef]
    model: str
    prompts: list[str]
    source: dict[str, Any]
    output: dict[str, Any]
    versions: dict[str, str | None] = field(default_factory=dict)
    rotoscope: str = __version__

    @classmethod
    def of(
        cls,
        deliverable: str,
        cfg: RunConfig,
        command: str | None,
        records: Sequence[FrameRecord],
        source: dict[str, Any],
        output: dict[str, Any],
    ) -> Provenance:
        """The sidecar of a deliverable made from ``records`` with ``cfg``."""
        prompts: list[str] = []
        for record in records:
            for text in (record.row.get("prompt"), record.row.get("prompt_to")):
                if text and text not in prompts:
                    prompts.append(str(text))
        config = OmegaConf.to_container(literal_node(cfg), enum_to_str=True)
        assert isinstance(config, dict)
        return cls(
            deliverable=deliverable,
            made=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            command=command,
            config={str(key): value for key, value in config.items()},
            frames=[FrameRef(r.index, r.key, r.source_name) for r in records],
            model=records[0].model if records else "",
            prompts=prompts,
            source=source,
            output=output,
            versions=library_versions(),
        )

    @property
    def look(self) -> str:
        """A short id of the frames (the same frames in two formats are one look)."""
        keys = "\n".join(frame.key for frame in self.frames)
        return hashlib.sha256(keys.encode("ascii")).hexdigest()[:LOOK_LENGTH]

    def to_dict(self) -> dict[str, Any]:
        return {"look": self.look, **asdict(self)}

    @classmethod
    def read(cls, path: Path) -> Provenance:
        """The sidecar at ``path``; a damaged one is one line naming it."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            data.pop("look", None)
            data["frames"] = [FrameRef(**frame) for frame in data["frames"]]
            return cls(**data)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RotoscopeError(f"{path} is not a rotoscope sidecar ({exc})") from exc


@dataclass(frozen=True)
class KeptLook:
    """One look a run folder holds: the deliverables made from the same frames (current
    ones at the top of the folder, or kept in ``history/``), and what made them."""

    look: str
    provenance: Provenance  # the newest of its deliverables'
    outputs: list[Path]
    current: bool  # among the outputs of the last assemble
    frames_kept: bool  # every frame still on disk: restoring renders nothing


def kept_looks(folder: RunFolder) -> list[KeptLook]:
    """Every look of ``folder`` that has a sidecar, newest first."""
    manifest = Manifest(folder)
    sidecars = [RunFolder.sidecar(folder.path / name) for name in Recipes.read(folder).by_name]
    current = {path for path in sidecars if path.is_file()}
    if folder.history.is_dir():
        sidecars += sorted(p for p in folder.history.iterdir() if RunFolder.is_sidecar(p))
    found: dict[str, list[tuple[Path, Provenance]]] = {}
    for sidecar in sidecars:
        if sidecar.is_file():
            provenance = Provenance.read(sidecar)
            found.setdefault(provenance.look, []).append((sidecar, provenance))
    looks = []
    for look, entries in found.items():
        newest = max((provenance for _, provenance in entries), key=lambda p: p.made)
        looks.append(
            KeptLook(
                look=look,
                provenance=newest,
                outputs=[path.with_name(path.name.removesuffix(".json")) for path, _ in entries],
                current=any(path in current for path, _ in entries),
                frames_kept=all(
                    (record := manifest.by_key.get(frame.key)) is not None
                    and (folder.path / record.file).is_file()
                    for frame in newest.frames
                ),
            )
        )
    return sorted(looks, key=lambda kept: kept.provenance.made, reverse=True)


def find_look(folder: RunFolder, wanted: str) -> KeptLook:
    """The look ``wanted`` names: its id (or a prefix of it), or one of its files."""
    looks = kept_looks(folder)
    by_file = [
        kept for kept in looks
        if any(wanted in (path.name, str(path), path.relative_to(folder.path).as_posix())
               for path in kept.outputs)
    ]  # fmt: skip
    matches = by_file or [kept for kept in looks if kept.look.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    listed = ", ".join(kept.look for kept in looks) or "none"
    problem = "matches several looks" if matches else "names no look"
    raise RotoscopeError(
        f"'{wanted}' {problem} of {folder} (looks: {listed})",
        f"rotoscope-history {folder} lists them",
    )
