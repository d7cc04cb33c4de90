"""The worker side of a Ray render: an actor that renders the units it is given."""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
from collections.abc import Iterator
from pathlib import Path

from pipeline.config.schema import RunConfig
from pipeline.control.maps import ControlMaps
from pipeline.plan.rows import PlanRow
from pipeline.records.manifest import FrameRecord, Manifest
from pipeline.records.progress import Progress
from pipeline.records.report import JobReport
from pipeline.records.run_folder import RunFolder
from pipeline.records.writer import FrameOutcome, FrameWriter
from pipeline.render.executors.local import WRITE_THREADS
from pipeline.render.producer import FrameProducer
from pipeline.render.renderer import Renderer
from pipeline.render.strategies import strategy_for
from pipeline.render.strategies.base import UnitContext
from pipeline.render.units import ChainUnit, FrameList, FramesUnit, ShippedMaps, WorkUnit
from pipeline.source.base import Selection, SourceInfo

# How long a thread waiting on a queue sleeps before it checks for a stop or a failure.
POLL_SECONDS = 0.2


@dataclasses.dataclass(frozen=True)
class WorkerSetup:
    """What every worker of a render gets once, at its start."""

    cfg: RunConfig  # with the worker's device and dtype
    run_dir: str
    rows: list[PlanRow]
    identity: str
    info: SourceInfo
    selection: Selection


class RenderWorker:
    """A Ray actor: loads the model once, renders the units it is given, and streams each
    frame's outcome back once its file is durable.

    Its writer lives as long as the actor, so the PNGs of one unit are written while the
    next unit renders; :meth:`outcomes` (running beside the rendering, the actor has two
    threads) hands their outcomes back in the order they were rendered.
    """

    def __init__(self, setup: WorkerSetup, number: int) -> None:
        self.setup = setup
        self.number = number
        self.folder = RunFolder(Path(setup.run_dir))
        self.renderer: Renderer | None = None
        self.strategy = strategy_for(setup.cfg, self.folder, setup.rows)
        self.control: ControlMaps | None = None  # opened for maps a chain came without
        self.finished: queue.Queue[FrameOutcome | None] = queue.Queue()
        self.writer = FrameWriter(self.finished.put, WRITE_THREADS)
        handler = logging.FileHandler(self.folder.log, encoding="utf-8")
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s worker {number}: %(message)s")
        )
        logger = logging.getLogger("rotoscope")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)

    def load(self) -> str:
        """Load the model; this worker's device, for the report."""
        from pipeline.models.devices import describe_device
        from pipeline.render.loading import load_renderer, plan_networks

        cfg = self.setup.cfg
        self.renderer = load_renderer(cfg, self.setup.rows, plan_networks(cfg))
        return describe_device(self.renderer.model.device)

    def outcomes(self) -> Iterator[FrameOutcome]:
        """Every frame's outcome, as it is committed (its file durable, the frames this
        worker rendered before it done), until :meth:`close`; a failed write is raised."""
        while True:
            try:
                outcome = self.finished.get(timeout=POLL_SECONDS)
            except queue.Empty:
                self.writer.check()
                continue
            if outcome is None:
                return
            yield outcome

    def render_unit(self, unit: WorkUnit) -> None:
        """Render a unit with the render's strategy: a batch of independent frames (keyed
        by the driver, so their places in this worker's writer are taken here), or a
        chain (a segment or a loopback, whose current frames are reused here).

        A chain frame's outcome counts as committed here once it is handed to the driver,
        which writes its manifest line a little later: the previous frame's attention
        recording is deleted at that point. If the driver dies in between, the resumed
        segment rebuilds that recording by replaying from its anchor (the frames are the
        same).
        """
        setup = self.setup
        if isinstance(unit, FramesUnit):
            for frame in unit.frames:
                self.writer.reserve(frame.row.index)
            producer = self._producer([], None)
        else:
            maps = ShippedMaps(unit.maps, self._control()) if setup.cfg.controlnet.units else None
            producer = self._producer(unit.records, maps)
        frames = list(unit.frames) if isinstance(unit, ChainUnit) else []
        context = UnitContext(
            setup.rows, setup.info, setup.selection,
            lambda: FrameList(setup.info, setup.selection, frames),
        )  # fmt: skip
        self.strategy.render_unit(producer, unit, context)

    def close(self) -> None:
        """Finish the writes (raising one that failed) and end :meth:`outcomes`."""
        try:
            self.writer.close()
            self.writer.check()
        finally:
            if self.control is not None:
                self.control.__exit__(None, None, None)
            self.finished.put(None)

    def _control(self) -> ControlMaps:
        """This worker's own control maps, for the frames a chain brings none for (a
        loopback's maps read each frame's img2img input, known only here)."""
        if self.control is None:
            rows = self.setup.rows
            self.control = ControlMaps(self.setup.cfg, self.folder, rows[0].width, rows[0].height)
            self.control.__enter__()
        return self.control

    def _producer(self, records: list[FrameRecord], maps: ShippedMaps | None) -> FrameProducer:
        """A producer for one unit: its frames' records to reuse, its control maps."""
        setup = self.setup
        return FrameProducer(
            self.folder, Manifest(self.folder, records), setup.identity, self._renderer,
            Progress(0, log_every=math.inf), JobReport(setup.run_dir), control=maps,
            writer=self.writer,
        )  # fmt: skip

    def _renderer(self) -> Renderer:
        assert self.renderer is not None, "load() first"
        return self.renderer
