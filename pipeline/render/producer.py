"""The one rule for reusing finished frames, and the hand-over of rendered ones.

Every render strategy (:mod:`pipeline.render.strategies`) gives each frame's row and
input to one :class:`FrameProducer`, which hashes the row, the exact input pixels, the
model, the control maps and (for a chain) the earlier frames into the frame's key: a
frame whose key is in the manifest is reused, not rendered. Rendered frames go to the
writer with their metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np
from PIL import Image

from pipeline import __version__
from pipeline.control.maps import UnitMap
from pipeline.errors import RotoscopeError
from pipeline.plan.rows import PlanRow
from pipeline.records.disk import is_disk_full
from pipeline.records.interrupts import GracefulStop
from pipeline.records.manifest import (
    FrameRecord,
    Manifest,
    frame_key,
    image_digest,
    rerender_reason,
)
from pipeline.records.progress import Progress
from pipeline.records.report import JobReport
from pipeline.records.run_folder import RunFolder
from pipeline.records.thumbnails import write_frame_thumbnails
from pipeline.records.writer import FrameOutcome, FrameWriter
from pipeline.render.masking.latent import MASK_METHOD
from pipeline.render.masking.render import MaskedRender
from pipeline.render.pngmeta import a1111_parameters, cadence_details, write_png
from pipeline.render.renderer import FrameHooks, Renderer
from pipeline.render.units import ControlSource, FrameOrigin, PendingFrame
from pipeline.source.base import FrameMask, Source
from pipeline.source.masks import save_mask

log = logging.getLogger("rotoscope")


class ChainedInput(Protocol):
    """A frame rendered from earlier frames too (temporal coherence, see
    ``pipeline.render.strategies.coherent``): what joins its key, and how it renders."""

    dependencies: str  # joins the frame's key: the earlier frames' keys and settings

    def prepare(self) -> tuple[np.ndarray, FrameHooks | None]:
        """The init image and the hooks for the pipeline call (None: none)."""
        ...

    def rendered(self, key: str, output: np.ndarray) -> np.ndarray:
        """The final output; keeps what the frame hands on (before its manifest line)."""
        ...

    def blank(self, key: str, output: np.ndarray) -> np.ndarray:
        """The frame was not diffused (its mask is empty): ``output`` is its source frame,
        and it hands on nothing but that."""
        ...

    def committed(self) -> None:
        """The frame's manifest line is written: what only a crash before it needed can go."""
        ...

    def reused(self, key: str, output: np.ndarray) -> None:
        """The frame was current on disk."""
        ...


class FrameProducer:
    """Renders a row on an input image unless the manifest already has that frame.

    Finished frames go to a :class:`FrameWriter`, which writes their files (in a pool of
    threads, while the next frame renders) and commits their outcomes in frame order.
    """

    def __init__(
        self,
        folder: RunFolder,
        manifest: Manifest,
        identity: str,
        make_renderer: Callable[[], Renderer],
        progress: Progress,
        report: JobReport,
        stop: GracefulStop | None = None,
        control: ControlSource | None = None,
        writer: FrameWriter | None = None,
    ) -> None:
        """``identity`` names the weights (base model and ControlNets) for frame keys;
        ``make_renderer`` loads them, and is only called once a frame needs rendering,
        so a re-run that finds every frame current never loads a model. Without a
        ``writer`` each frame's file and manifest line are written before ``produce``
        returns."""
        self.folder = folder
        self.manifest = manifest
        self.identity = identity
        self._make_renderer = make_renderer
        self._renderer: Renderer | None = None
        self.control = control
        self.progress = progress
        self.report = report
        self.stop = stop
        self.writer = writer or FrameWriter(manifest_commit(manifest, folder), threads=0)
        # every frame is rendered through this composition (a frame without a mask as is)
        self.masked = MaskedRender(lambda: self.renderer)

    @property
    def loaded(self) -> Renderer | None:
        """The renderer, if a frame needed it (None: the model was never loaded)."""
        return self._renderer

    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            self._renderer = self._make_renderer()
        return self._renderer

    def produce(
        self,
        row: PlanRow,
        image: np.ndarray,
        origin: FrameOrigin,
        need_output: bool = False,
        chained: ChainedInput | None = None,
        mask: FrameMask | None = None,
    ) -> np.ndarray | None:
        """The frame for ``row`` (rendered, or reused from disk); pixels if asked for.

        ``image`` is the frame's input (its source frame, or the loopback input); a
        ``chained`` frame also depends on earlier frames; ``mask`` says where the frame is
        rendered. Checks for a stop request after the frame is handed to the writer,
        never before.
        """
        found = self.prepare(row, image, origin, chained, mask=mask)
        output: np.ndarray | None
        if isinstance(found, PendingFrame):
            if chained is None:
                output = self.masked.render(found.input())
            elif found.blank:  # the source frame itself: no state to build or hand on
                output = chained.blank(found.key, self.masked.render(found.input()))
            else:
                init, hooks = chained.prepare()
                output = chained.rendered(found.key, self.masked.render(found.input(init), hooks))
            self.finish(found, output, chained.committed if chained is not None else None)
        else:
            output = (
                np.asarray(Image.open(self.folder.path / found.file).convert("RGB"))
                if need_output or chained is not None
                else None
            )
            if chained is not None:
                assert output is not None  # read above for a chain
                chained.reused(found.key, output)
        if self.stop is not None:
            self.stop.safe_point("render")
        return output

    def prepare(
        self,
        row: PlanRow,
        image: np.ndarray,
        origin: FrameOrigin,
        chained: ChainedInput | None = None,
        digest: str | None = None,
        mask: FrameMask | None = None,
        dependencies: str = "",
        controlled: bool = True,
    ) -> PendingFrame | FrameRecord:
        """Give the frame its place in the writer's line and decide: its record when the
        frame is current on disk (reused: its outcome is handed over at once), else the
        :class:`PendingFrame` to render and :meth:`finish`. ``digest`` is ``image``'s,
        when already computed (by the prefetch thread); ``mask`` the frame's, with masks;
        ``dependencies`` what else the frame is made from, when not ``chained`` (a frame
        a cadence carries: the diffused frames' keys); not ``controlled``: no control map
        is made from ``image`` (a loopback cadence's shown frame, whose diffused frame
        was made with its maps: :meth:`control_of`)."""
        digest = digest or image_digest(image)
        maps = self.control.maps(row.index, image) if self.control and controlled else []
        control = ",".join(unit_map.key for unit_map in maps)
        if chained is not None:
            dependencies = chained.dependencies
        masking = f"{mask.digest}|{MASK_METHOD}" if mask is not None else ""
        key = frame_key(row, digest, self.identity, control, dependencies, masking)
        self.writer.reserve(row.index)
        found = self.manifest.find(row.index, key)
        if found is not None:
            record, needs_line = found
            if mask is not None:  # put back, if pruned or deleted: later stages read it
                save_mask(self.folder.mask(mask.digest), mask.pixels)
            if record.index != row.index:  # a photo that sorts elsewhere in its folder now
                record = replace(
                    record, index=row.index, source_index=origin.index,
                    source_name=origin.name, time=origin.time, row=row.as_record(),
                )  # fmt: skip
            self.writer.fill(FrameOutcome(row.index, record if needs_line else None))
            self.progress.advance(reused=True)
            self.report.reused += 1
            return record
        # a photo is compared with its own last render, wherever it sorted then
        previous = (
            self.manifest.records.get(row.index)
            if row.source_file is None
            else self.manifest.by_file.get(row.source_file)
        )
        reason = rerender_reason(
            previous, row, digest, self.identity, control, dependencies, masking
        )
        return PendingFrame(
            row, image, origin, digest, control, dependencies, key, reason,
            self.control_maps(maps), mask,
        )  # fmt: skip

    def control_of(self, row: PlanRow, image: np.ndarray) -> list[UnitMap]:
        """The control maps of frame ``row.index`` made from ``image`` (none without
        ControlNet): a loopback cadence's diffused frame's, from its img2img input."""
        return self.control.maps(row.index, image) if self.control else []

    def key(
        self, row: PlanRow, digest: str, dependencies: str = "", maps: Sequence[UnitMap] = ()
    ) -> str:
        """The key of a frame of ``row`` made from an input of ``digest`` with control
        ``maps``, without a mask: what names a loopback's diffused frame that is shown
        only blended (Deforum's cadence), for the frames made from it."""
        control = ",".join(unit_map.key for unit_map in maps)
        return frame_key(row, digest, self.identity, control, dependencies, "")

    def render_batch(self, frames: list[PendingFrame]) -> None:
        """Render independent frames as one batch and :meth:`finish` each."""
        outputs = self.masked.render_batch([frame.input() for frame in frames])
        for frame, output in zip(frames, outputs, strict=True):
            self.finish(frame, output)

    def finish(
        self,
        frame: PendingFrame,
        output: np.ndarray,
        committed: Callable[[], None] | None = None,
        diffused: bool = True,
    ) -> None:
        """Hand a rendered frame to the writer: its PNG (with metadata), then its line;
        ``committed`` is called once the line is committed. A frame that was not diffused
        (its mask is empty, or a cadence carried it from diffused frames: ``diffused``
        False) names no model in its metadata (none may be loaded for it)."""
        row = frame.row
        renderer = None if frame.blank or not diffused else self.renderer
        origin = frame.origin
        plan_record = row.as_record()
        record = FrameRecord(
            index=row.index,
            file=RunFolder.frame_name(frame.key),
            key=frame.key,
            source_index=origin.index,
            source_name=origin.name,
            time=origin.time,
            row=plan_record,
            input=frame.digest,
            model=self.identity,
            control=frame.control,
            dependencies=frame.dependencies,
            mask=frame.mask.digest if frame.mask is not None else "",
            # made from diffused frames (a frame with none to carry from is diffused)
            carried_from=row.carried_from if frame.dependencies and not row.diffused else [],
        )
        path = self.folder.path / record.file
        mask = frame.mask
        source = frame.image  # the source frame (the init image), for the page's thumbnails

        def write() -> None:  # in the writer's pool: the metadata is built there too
            details: dict[str, object] = {
                "rotoscope": __version__, "key": frame.key, "plan": plan_record,
                "source": origin.metadata(), "model": None, "controlnet": [],
            }  # fmt: skip
            cadence = cadence_details(row)
            if cadence is not None:  # which frames were diffused, which carried from them
                details["cadence"] = cadence
            if renderer is None:
                parameters = a1111_parameters(row, None, None)
            else:
                model = renderer.model
                details["model"] = {
                    "name": model.name,
                    "identity": model.identity,
                    "hash": model.model_hash,
                }
                details["controlnet"] = renderer.control_details()
                parameters = a1111_parameters(
                    row, model.name, model.model_hash, renderer.control_details(),
                    renderer.adapters.infotext(row),
                )  # fmt: skip
            try:
                if mask is not None:  # the assemble and metrics stages read it back
                    save_mask(self.folder.mask(mask.digest), mask.pixels)
                write_png(path, output, parameters, details)
                write_frame_thumbnails(self.folder, frame.key, output, source)
            except OSError as exc:
                raise disk_full(exc, row.index, self.folder) from exc

        self.writer.fill(FrameOutcome(row.index, record, frame.reason), write, committed)
        self.report.count_render(row.index, frame.reason)
        self.progress.advance()

    def note_source_end(self, rows: list[PlanRow], source: Source) -> None:
        """After a pass: report unreadable input frames, and an input that ended early."""
        for index, problem in source.failures:
            self.report.skipped_frames.append(f"{index}: {problem}")
        self.report.skipped = len(source.failures)
        self.report.repeated_frames = [f"{index}: {problem}" for index, problem in source.repeats]
        self.report.repeated = len(source.repeats)
        read = source.frames_read + len(source.failures)
        if read < len(rows) and not source.failures:
            log.warning(
                "input %s ended after %d of %d planned frames; rendered the frames it has",
                source.info.path, source.frames_read, len(rows),
            )  # fmt: skip

    @staticmethod
    def control_maps(maps: list[UnitMap]) -> list[np.ndarray] | None:
        """The pixels of a frame's control maps (None without ControlNet)."""
        return [unit_map.load() for unit_map in maps] or None


def disk_full(exc: OSError, index: int, folder: RunFolder) -> BaseException:
    """A full disk while writing frame ``index`` as a one-line error; other errors as they are."""
    if not is_disk_full(exc):
        return exc
    return RotoscopeError(
        f"disk full while writing frame {index} in {folder}",
        "the frames before it are safe; free some space and run the same command to resume",
    )


def manifest_commit(manifest: Manifest, folder: RunFolder) -> Callable[[FrameOutcome], None]:
    """The driver's commit step: append (and fsync) the outcome's manifest line."""

    def commit(outcome: FrameOutcome) -> None:
        if outcome.record is None:
            return
        try:
            manifest.add(outcome.record)
        except OSError as exc:
            raise disk_full(exc, outcome.index, folder) from exc

    return commit


def check_size(row: PlanRow, shape: tuple[int, ...]) -> None:
    """A frame whose size is not the plan's (the input changed since planning) stops the job."""
    if (shape[1], shape[0]) != (row.width, row.height):
        raise RotoscopeError(
            f"frame {row.index} is {shape[1]}x{shape[0]} but the plan says "
            f"{row.width}x{row.height}",
            "the input or its size changed: rerun with the plan stage",
        )
