"""What every executor gets: one render stage's work (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config.schema import RunConfig
from pipeline.plan.networks import Networks
from pipeline.plan.rows import PlanRow
from pipeline.records.interrupts import GracefulStop
from pipeline.records.manifest import Manifest
from pipeline.records.progress import Progress
from pipeline.records.report import JobReport
from pipeline.records.run_folder import RunFolder


@dataclass
class RenderWork:
    """One render stage's work, as every executor gets it."""

    cfg: RunConfig
    folder: RunFolder
    rows: list[PlanRow]
    networks: Networks
    manifest: Manifest
    identity: str  # the weights, as frame keys name them
    progress: Progress
    report: JobReport
    stop: GracefulStop
