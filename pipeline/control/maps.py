"""ControlNet units at run time: control frames, cached control maps, the preview.

Each unit takes its control frames from the input or from another video / image folder
aligned by frame number, runs its preprocessor, and keeps every map as a PNG in
``control/<unit>/`` with a line in ``control/<unit>/maps.jsonl``. A map's key hashes the
preprocessor's signature (name, parameters, weight files) and the control frame's
pixels, so maps are computed once and reused on every re-run until one of those
changes, and the key joins the frame's own key: editing a threshold re-renders exactly
the frames whose maps changed. Maps are only decoded when a frame is really rendered.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.atomic import atomic_path
from pipeline.config.schema import ControlMismatch, ControlUnitConfig, InputConfig, RunConfig
from pipeline.control.preprocessors import (
    check_preprocessor,
    make_preprocessor,
    preprocessor_signature,
)
from pipeline.errors import RotoscopeError
from pipeline.records.manifest import image_digest
from pipeline.records.run_folder import RunFolder
from pipeline.source.base import Frame, Source, SourceKind
from pipeline.source.open import open_source

log = logging.getLogger("rotoscope")


def control_input(cfg: RunConfig, unit: ControlUnitConfig, width: int, height: int) -> InputConfig:
    """The input config of a unit's own control source: same selection, exact render size
    (its frame k goes with output frame k, however the animation starts), fitted by the
    unit's own resize mode."""
    return replace(
        cfg.input, path=unit.source, frames=None, width=width, height=height, scale=None,
        resize_mode=unit.resize_mode or cfg.input.resize_mode,
    )  # fmt: skip


def check_units(cfg: RunConfig, frame_count: int, width: int, height: int) -> None:
    """Plan-time checks: preprocessors and their weights, and control source lengths."""
    annotators = Path(cfg.controlnet.annotators)
    for name, unit in cfg.controlnet.units.items():
        try:
            check_preprocessor(unit.preprocessor, unit.params, annotators)
        except RotoscopeError as exc:
            raise RotoscopeError(f"controlnet unit '{name}': {exc}") from exc
        if unit.source == "input":
            continue
        key = f"controlnet.units.{name}.source"
        with open_source(control_input(cfg, unit, width, height), key=key) as source:
            count = source.count_frames()
        if source.info.kind is SourceKind.image:
            continue  # one picture guides every frame (as in A1111 and Deforum)
        if count < frame_count and cfg.controlnet.on_mismatch is ControlMismatch.error:
            raise RotoscopeError(
                f"controlnet unit '{name}': source '{unit.source}' has {count} frames "
                f"but the input has {frame_count}",
                "trim the input (input.end / input.max_frames) or set "
                "controlnet.on_mismatch=hold or loop",
            )
        if count == 0:
            raise RotoscopeError(f"controlnet unit '{name}': source '{unit.source}' has no frames")


class ControlFrames:
    """A unit's control frames by output frame number, read in one forward pass.

    Past the end of a shorter source, ``hold`` keeps its last frame and ``loop`` starts
    it again (the plan stage already refused ``error``).
    """

    def __init__(self, source: Source, mismatch: ControlMismatch) -> None:
        self.source = source
        self.mismatch = mismatch
        self._frames: Iterator[Frame] = iter(source)
        self._last: Frame | None = None
        self._length: int | None = None

    def frame(self, index: int) -> np.ndarray:
        wanted = self._wrap(index)
        if self._last is not None and wanted < self._last.index:  # looping: start again
            self._frames = iter(self.source)
            self._last = None
        while self._last is None or self._last.index < wanted:
            following = next(self._frames, None)
            if following is None:
                if self._last is None:
                    raise RotoscopeError(f"control source {self.source.info.path} has no frames")
                self._length = self._last.index + 1
                return self.frame(index)
            self._last = following
        return self._last.image

    def _wrap(self, index: int) -> int:
        if self._length is None or index < self._length:
            return index
        if self.mismatch is ControlMismatch.loop:
            return index % self._length
        return self._length - 1


@dataclass
class UnitMap:
    """One unit's map for one frame: its key, and how to get its pixels."""

    key: str
    path: Path
    cached: bool
    make: Callable[[], np.ndarray]

    def load(self) -> np.ndarray:
        if self.cached:
            return np.asarray(Image.open(self.path).convert("RGB"))
        return self.make()


class ControlMaps:
    """Every unit's maps for the frames of one run; a context manager (it opens sources)."""

    def __init__(self, cfg: RunConfig, folder: RunFolder, width: int, height: int) -> None:
        self.cfg = cfg
        self.folder = folder
        self.width, self.height = width, height
        self.annotators = Path(cfg.controlnet.annotators)
        self.names = list(cfg.controlnet.units)
        self._preprocessors: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
        self._signatures = {
            name: preprocessor_signature(unit.preprocessor, unit.params, self.annotators)
            for name, unit in cfg.controlnet.units.items()
        }
        self._index = {name: self._load_index(name) for name in self.names}
        self._sources: dict[str, ControlFrames] = {}
        self._open: list[Source] = []

    def __enter__(self) -> ControlMaps:
        for name, unit in self.cfg.controlnet.units.items():
            if unit.source != "input":
                source = open_source(
                    control_input(self.cfg, unit, self.width, self.height),
                    key=f"controlnet.units.{name}.source",
                )
                self._open.append(source)
                single = source.info.kind is SourceKind.image  # one picture for every frame
                mismatch = ControlMismatch.hold if single else self.cfg.controlnet.on_mismatch
                self._sources[name] = ControlFrames(source, mismatch)
        return self

    def __exit__(self, *exc: object) -> None:
        for source in self._open:
            source.close()

    def maps(self, index: int, input_image: np.ndarray) -> list[UnitMap]:
        """The maps of frame ``index`` (keys now; pixels on ``load()``)."""
        result = []
        for name in self.names:
            frame = self._sources[name].frame(index) if name in self._sources else input_image
            key = hashlib.sha256(
                f"{self._signatures[name]}\0{image_digest(frame)}".encode()
            ).hexdigest()
            path = self.folder.control_map(name, index)
            cached = self._index[name].get(index) == key and path.is_file()
            result.append(UnitMap(key, path, cached, self._maker(name, index, frame, key)))
        return result

    def _maker(
        self, name: str, index: int, frame: np.ndarray, key: str
    ) -> Callable[[], np.ndarray]:
        def make() -> np.ndarray:
            unit = self.cfg.controlnet.units[name]
            if name not in self._preprocessors:
                self._preprocessors[name] = make_preprocessor(
                    unit.preprocessor, unit.params, self.annotators
                )
            control_map = self._preprocessors[name](frame)
            self._store(name, index, key, control_map)
            return control_map

        return make

    def _store(self, name: str, index: int, key: str, control_map: np.ndarray) -> None:
        with atomic_path(self.folder.control_map(name, index), durable=False) as tmp:
            Image.fromarray(control_map).save(tmp, format="PNG", compress_level=3)
        with self.folder.control_index(name).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"index": index, "key": key}) + "\n")
        self._index[name][index] = key

    def _load_index(self, name: str) -> dict[int, str]:
        path = self.folder.control_index(name)
        entries: dict[int, str] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    entries[int(entry["index"])] = str(entry["key"])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # a torn line: that map is simply computed again
        return entries


def preview_frame(input_image: np.ndarray, maps: list[np.ndarray]) -> np.ndarray:
    """The input and each unit's map side by side, for checking maps before rendering."""
    return np.concatenate([input_image, *maps], axis=1)
