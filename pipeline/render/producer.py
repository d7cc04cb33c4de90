"""Where each frame's input comes from, and the one rule for reusing finished frames.

Two input strategies share one producer: ``render_frames`` takes every frame from the
source (stylizing a clip or a folder), in batches where frames can share a pipeline
call; ``render_loopback`` takes only the first one and builds every later input from
the previous output, moved by the row's motion values (Deforum's 2D mode). Either way
the producer hashes the row, the exact input pixels and the model into the frame's key,
so a frame whose key is in the manifest is reused, not rendered. In loopback the input
pixels come from the previous output, so a change to one frame changes the keys of
every frame after it, and only those re-render.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Protocol

import numpy as np
from PIL import Image

from pipeline import __version__
from pipeline.animation.color_match import match_colors_lab
from pipeline.animation.motion import add_noise, warp_2d
from pipeline.config.schema import AnimationConfig, ColorCoherence
from pipeline.control.maps import UnitMap
from pipeline.errors import RotoscopeError
from pipeline.jobs.disk import is_disk_full
from pipeline.jobs.interrupts import GracefulStop
from pipeline.jobs.manifest import (
    FrameRecord,
    Manifest,
    frame_key,
    image_digest,
    rerender_reason,
)
from pipeline.jobs.progress import Progress
from pipeline.jobs.report import JobReport
from pipeline.jobs.run_folder import RunFolder
from pipeline.jobs.writer import FrameOutcome, FrameWriter
from pipeline.plan.rows import FrameJob
from pipeline.render.batch import Batcher, FrameInput
from pipeline.render.pngmeta import a1111_parameters, write_png
from pipeline.render.renderer import FrameHooks, Renderer
from pipeline.render.units import PendingFrame
from pipeline.source.base import Frame, Source

log = logging.getLogger("rotoscope")


class ChainedInput(Protocol):
    """A frame rendered from earlier frames too (temporal coherence, see
    ``pipeline.render.coherence.strategy``): what joins its key, and how it renders."""

    dependencies: str  # joins the frame's key: the earlier frames' keys and settings

    def prepare(self) -> tuple[np.ndarray, FrameHooks]:
        """The init image and the hooks for the pipeline call."""
        ...

    def rendered(self, key: str, output: np.ndarray) -> np.ndarray:
        """The final output; keeps what the frame hands on (before its manifest line)."""
        ...

    def committed(self) -> None:
        """The frame's manifest line is written: what only a crash before it needed can go."""
        ...

    def reused(self, key: str, output: np.ndarray) -> None:
        """The frame was current on disk."""
        ...


class ControlSource(Protocol):
    """Where a frame's control maps come from: ``ControlMaps`` in the driver, the maps
    shipped with a work unit on a worker."""

    def maps(self, index: int, input_image: np.ndarray) -> list[UnitMap]: ...


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

    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            self._renderer = self._make_renderer()
        return self._renderer

    def produce(
        self,
        job: FrameJob,
        image: np.ndarray,
        source: dict[str, object],
        need_output: bool = False,
        chained: ChainedInput | None = None,
    ) -> np.ndarray | None:
        """The frame for ``job`` (rendered, or reused from disk); pixels if asked for.

        ``image`` is the frame's input (its source frame, or the loopback input); a
        ``chained`` frame also depends on earlier frames. Checks for a stop request
        after the frame is handed to the writer, never before.
        """
        found = self.prepare(job, image, source, chained)
        if isinstance(found, PendingFrame):
            if chained is None:
                output = self.renderer.render(job, image, found.maps)
            else:
                init, hooks = chained.prepare()
                output = chained.rendered(
                    found.key, self.renderer.render(job, init, found.maps, hooks)
                )
            self.finish(found, output, chained.committed if chained is not None else None)
        else:
            output = (
                np.asarray(Image.open(self.folder.path / found.file).convert("RGB"))
                if need_output or chained is not None
                else None
            )
            if chained is not None:
                chained.reused(found.key, output)
        if self.stop is not None:
            self.stop.check()
        return output

    def prepare(
        self,
        job: FrameJob,
        image: np.ndarray,
        source: dict[str, object],
        chained: ChainedInput | None = None,
        digest: str | None = None,
    ) -> PendingFrame | FrameRecord:
        """Give the frame its place in the writer's line and decide: its record when the
        frame is current on disk (reused: its outcome is handed over at once), else the
        :class:`PendingFrame` to render and :meth:`finish`. ``digest`` is ``image``'s,
        when already computed (by the prefetch thread)."""
        digest = digest or image_digest(image)
        maps = self.control.maps(job.index, image) if self.control else []
        control = ",".join(unit_map.key for unit_map in maps)
        dependencies = chained.dependencies if chained is not None else ""
        key = frame_key(job, digest, self.identity, control, dependencies)
        self.writer.reserve(job.index)
        found = self.manifest.find(job.index, key)
        if found is not None:
            record, needs_line = found
            self.writer.fill(FrameOutcome(job.index, record if needs_line else None))
            self.progress.advance(reused=True)
            self.report.reused += 1
            return record
        reason = rerender_reason(
            self.manifest.records.get(job.index), job, digest, self.identity, control,
            dependencies,
        )  # fmt: skip
        return PendingFrame(
            job, image, source, digest, control, dependencies, key, reason, self.control_maps(maps)
        )

    def render_batch(self, frames: list[PendingFrame]) -> None:
        """Render independent frames as one batch and :meth:`finish` each."""
        inputs = [FrameInput(frame.job, frame.image, frame.maps) for frame in frames]
        for frame, output in zip(frames, self.renderer.render_batch(inputs), strict=True):
            self.finish(frame, output)

    def finish(
        self,
        frame: PendingFrame,
        output: np.ndarray,
        committed: Callable[[], None] | None = None,
    ) -> None:
        """Hand a rendered frame to the writer: its PNG (with metadata), then its line;
        ``committed`` is called once the line is committed."""
        job = frame.job
        renderer = self.renderer
        origin = frame.origin
        row = asdict(job)
        record = FrameRecord(
            index=job.index,
            file=RunFolder.frame_name(frame.key),
            key=frame.key,
            source_index=int(origin["index"]),  # type: ignore[call-overload]
            source_name=origin["name"],  # type: ignore[arg-type]
            time=float(origin["time"]),  # type: ignore[arg-type]
            row=row,
            input=frame.digest,
            model=self.identity,
            control=frame.control,
            dependencies=frame.dependencies,
        )
        path = self.folder.path / record.file

        def write() -> None:  # in the writer's pool: the metadata is built there too
            model = renderer.model
            details = {
                "rotoscope": __version__,
                "key": frame.key,
                "plan": row,
                "source": origin,
                "model": {"name": model.name, "identity": model.identity, "hash": model.model_hash},
                "controlnet": renderer.control_details(),
            }
            parameters = a1111_parameters(
                job, model.name, model.model_hash, renderer.control_details(),
                renderer.adapters.infotext(job),
            )  # fmt: skip
            try:
                write_png(path, output, parameters, details)
            except OSError as exc:
                raise disk_full(exc, job.index, self.folder) from exc

        self.writer.fill(FrameOutcome(job.index, record, frame.reason), write, committed)
        self.report.count_render(job.index, frame.reason)
        self.progress.advance()

    def note_source_end(self, rows: list[FrameJob], source: Source) -> None:
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


def render_frames(
    producer: FrameProducer,
    rows: list[FrameJob],
    source: Source,
    batch_size: int = 1,
    render: Callable[[list[PendingFrame]], None] | None = None,
) -> None:
    """Each planned frame from its own source frame, frames that can share a pipeline
    call in batches of up to ``batch_size`` (see :mod:`pipeline.render.batch`).

    ``render`` renders a batch (by default the producer itself; the Ray driver hands it
    to a worker). A stop request is honoured between batches.
    """
    render = render or producer.render_batch
    batcher: Batcher[PendingFrame] = Batcher(batch_size)
    for frame in source:
        if frame.index >= len(rows):
            break
        job = rows[frame.index]
        check_size(job, frame.image.shape)
        found = producer.prepare(job, frame.image, frame_origin(source, frame), None, frame.digest)
        for batch in batcher.add(found) if isinstance(found, PendingFrame) else []:
            render(batch)
        if producer.stop is not None:
            producer.stop.check()
    for batch in batcher.flush():
        render(batch)
    producer.note_source_end(rows, source)


def frame_origin(source: Source, frame: Frame) -> dict[str, object]:
    """Where a frame came from, as its metadata and manifest line record it."""
    return {
        "path": str(source.info.path),
        "index": frame.source_index,
        "time": frame.time,
        "name": frame.name,
    }


def render_loopback(
    producer: FrameProducer, rows: list[FrameJob], source: Source, animation: AnimationConfig
) -> None:
    """Frame 0 from the first source frame, every later frame from the one before.

    Each later input is the previous output warped by the row's motion, colour-matched
    to frame 0's output (with ``color_coherence: lab``) against loopback's drift, and
    given the row's noise, seeded by the row's seed.
    """
    first = next(iter(source), None)
    if first is None:
        raise RotoscopeError(f"input.path '{source.info.path}' has no frame to start from")
    check_size(rows[0], first.image.shape)
    previous: np.ndarray | None = None
    reference: np.ndarray | None = None
    for job in rows:
        if previous is None:
            image = first.image
        else:
            image = warp_2d(
                previous,
                zoom=_motion(job.zoom, 1.0),
                angle=_motion(job.angle, 0.0),
                translation_x=_motion(job.translation_x, 0.0),
                translation_y=_motion(job.translation_y, 0.0),
                center_x=_motion(job.transform_center_x, 0.5),
                center_y=_motion(job.transform_center_y, 0.5),
                border=animation.border.value,
            )
            if animation.color_coherence is ColorCoherence.lab and reference is not None:
                image = match_colors_lab(image, reference)
            image = add_noise(image, _motion(job.noise, 0.0), job.seed)
        origin = {
            "path": str(source.info.path),
            "index": first.source_index if job.index == 0 else -1,
            "time": job.index / source.info.fps if source.info.fps else 0.0,
            "name": first.name,
            "loopback_from": None if job.index == 0 else job.index - 1,
        }
        previous = producer.produce(job, image, origin, need_output=True)
        if reference is None:
            reference = previous


def _motion(value: float | None, default: float) -> float:
    return default if value is None else value


def check_size(job: FrameJob, shape: tuple[int, ...]) -> None:
    """A frame whose size is not the plan's (the input changed since planning) stops the job."""
    if (shape[1], shape[0]) != (job.width, job.height):
        raise RotoscopeError(
            f"frame {job.index} is {shape[1]}x{shape[0]} but the plan says "
            f"{job.width}x{job.height}",
            "the input or its size changed: rerun with the plan stage",
        )
