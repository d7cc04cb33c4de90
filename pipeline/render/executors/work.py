"""What every executor gets: one render stage's work (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config.schema import RunConfig
from pipeline.jobs.interrupts import GracefulStop
from pipeline.jobs.manifest import Manifest
from pipeline.jobs.progress import Progress
from pipeline.jobs.report import JobReport
from pipeline.jobs.run_folder import RunFolder
from pipeline.plan.networks import Networks
from pipeline.plan.rows import FrameJob


@dataclass
class RenderWork:
    """One render stage's work, as every executor gets it."""

    cfg: RunConfig
    folder: RunFolder
    rows: list[FrameJob]
    networks: Networks
    manifest: Manifest
    identity: str  # the weights, as frame keys name them
    progress: Progress
    report: JobReport
    stop: GracefulStop


def is_coherent(cfg: RunConfig) -> bool:
    """Whether frames render as chains (temporal coherence on)."""
    return cfg.coherence.attention or cfg.coherence.flow
