"""The render stage: every planned frame whose key is not in the manifest, rendered.

torch and diffusers are imported only inside the stage, and the model only when the
first frame actually needs rendering, so a re-run that finds every frame current (to
re-encode, say) never loads gigabytes of weights.
"""

from __future__ import annotations

import logging
import time

from pipeline.atomic import remove_partial_files
from pipeline.config.schema import RunConfig
from pipeline.errors import RotoscopeError
from pipeline.plan.rows import read_plan
from pipeline.records.disk import check_free_space
from pipeline.records.interrupts import GracefulStop
from pipeline.records.manifest import Manifest
from pipeline.records.progress import Progress, format_duration
from pipeline.records.report import JobReport
from pipeline.records.run_folder import RunFolder

log = logging.getLogger("rotoscope")


def weights_identity(cfg: RunConfig) -> str:
    """The weights as frame keys name them: the base model's identity and its ControlNets'.

    Cheap (file sizes and dates, hub commits: no weights read), and it finds a model that
    is not there, so a job computes it before it writes anything (:mod:`pipeline.run.job`).
    """
    from pipeline.models.controlnets import controlnet_identity
    from pipeline.models.loader import model_identity

    # the ControlNets' weights shape the frame as much as the base model's
    return "\n".join(
        [
            model_identity(cfg.model, cfg.runtime),
            *(controlnet_identity(unit.model) for unit in cfg.controlnet.units.values()),
        ]
    )


def render_stage(
    cfg: RunConfig,
    folder: RunFolder,
    report: JobReport,
    stop: GracefulStop | None = None,
    identity: str | None = None,
) -> None:
    """Render every planned frame whose key is not already in the manifest; ``stop`` is
    checked between frames (a signal stops the render after the frame in progress).
    ``identity`` is :func:`weights_identity`, when already computed."""
    from pipeline.render.executors import executor_for
    from pipeline.render.executors.work import RenderWork
    from pipeline.render.loading import plan_networks

    networks = plan_networks(cfg)
    rows = networks.refreshed(read_plan(folder))  # a LoRA file changed since the plan
    report.planned = report.planned or len(rows)
    remove_partial_files(folder.frames)
    manifest = Manifest(folder)
    pending = len(rows) - len(manifest.finished(rows)[0])
    largest = max(rows, key=lambda row: row.width * row.height)
    check_free_space(folder.path, pending, largest.width, largest.height)
    progress = Progress(len(rows), log_every=cfg.runtime.log_every)
    started = time.monotonic()
    identity = identity or weights_identity(cfg)
    try:
        work = RenderWork(
            cfg, folder, rows, networks, manifest, identity, progress, report,
            stop or GracefulStop(),
        )  # fmt: skip
        executor_for(cfg.runtime)(work)
    finally:
        progress.close()
        elapsed = time.monotonic() - started
        report.render_seconds = round(elapsed - progress.excluded, 3)
        per_frame = (
            f", {report.render_seconds / progress.rendered:.2f} s/frame"
            if progress.rendered
            else ""
        )
        # the model load (and starting Ray) is not frame time: said apart
        extra = f" (+{progress.excluded:.1f} s loading)" if progress.excluded >= 0.05 else ""
        log.info(
            "render: %d rendered, %d reused, in %s%s%s",
            progress.rendered, progress.reused, format_duration(report.render_seconds), extra,
            per_frame,
        )  # fmt: skip


def check_speed_options(cfg: RunConfig) -> None:
    """``render.batch_size`` and ``runtime.workers`` are counts of at least 1."""
    for key, value in (
        ("render.batch_size", cfg.render.batch_size),
        ("runtime.workers", cfg.runtime.workers),
    ):
        if value < 1:
            raise RotoscopeError(f"{key}={value} must be at least 1", f"for example {key}=1")
