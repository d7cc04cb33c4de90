"""The upscale stage: each finished frame brought to its delivered size, stored by key.

It runs between render and assemble. For each frame the manifest says is current, the
delivery rules (:mod:`pipeline.upscale.delivery`) give a size and an upscaler; a frame
delivered as rendered needs nothing. The others are keyed by the rendered frame's key,
the upscaler's file hash, the size and the precision (:func:`upscaled_key`): a key found
in ``upscaled.jsonl`` with its file on disk is reused, so an interrupted stage resumes
where it stopped and a new upscaler or size makes only what it changes. The rest are
upscaled here, or on ``runtime.workers`` Ray workers (:mod:`.workers`), and recorded by
this process alone, each line after its file is durable. Ctrl-C stops after the frame in
progress. ``frames/`` keeps the render-size frames; the assemble stage delivers these.
"""

from __future__ import annotations

import logging
import time

from pipeline.config.schema import RunConfig
from pipeline.errors import plural
from pipeline.plan.rows import read_plan
from pipeline.records.interrupts import GracefulStop
from pipeline.records.manifest import FrameRecord, Manifest
from pipeline.records.progress import Progress, format_duration
from pipeline.records.report import JobReport
from pipeline.records.run_folder import RunFolder
from pipeline.records.upscaled import UpscaledFrame, UpscaledFrames, upscaled_key
from pipeline.source.base import SourceInfo
from pipeline.upscale.delivery import Finishing, Upscaler, finishing_of
from pipeline.upscale.executors import Executor, UpscaleHere
from pipeline.upscale.jobs import UpscaleJob

log = logging.getLogger("rotoscope")


def upscale_stage(
    cfg: RunConfig, folder: RunFolder, report: JobReport, stop: GracefulStop | None = None
) -> None:
    """Bring every current frame to its delivered size (nothing when none needs it);
    ``stop`` is checked between frames (the job's, or one that never fires)."""
    stop = stop or GracefulStop()
    rows = read_plan(folder)
    info = SourceInfo.read(folder.source_json)
    records, _ = Manifest(folder).finished(rows)  # the assemble stage names outdated ones
    finishing = finishing_of(cfg, info, [record.index for record in records])
    if finishing.upscaler is None or not finishing.active:
        log.info("upscale: nothing to do (frames are delivered at their render size)")
        return
    upscaler = finishing.upscaler
    report.upscaler = upscaler.name
    # Lanczos is a few milliseconds a frame: Ray workers only for models
    if upscaler.path is not None and (cfg.runtime.workers > 1 or cfg.runtime.ray_address):
        from pipeline.upscale.workers import RayUpscale

        with RayUpscale(cfg) as on_ray:
            _upscale(cfg, folder, records, finishing, upscaler, on_ray, report, stop)
    else:
        here = UpscaleHere(cfg, upscaler)
        _upscale(cfg, folder, records, finishing, upscaler, here, report, stop)


def _upscale(
    cfg: RunConfig,
    folder: RunFolder,
    records: list[FrameRecord],
    finishing: Finishing,
    upscaler: Upscaler,
    executor: Executor,
    report: JobReport,
    stop: GracefulStop,
) -> None:
    index = UpscaledFrames(folder)
    jobs: list[UpscaleJob] = []
    reused = 0
    for record in records:
        recipe = finishing.recipe(record.index)
        if recipe is None:
            continue
        key = upscaled_key(record.key, recipe, executor.precision)
        job = UpscaleJob(
            record.index, record.key, record.file, recipe, key, finishing.sizes[record.index]
        )
        if index.find(key) is not None:
            reused += 1
        elif (folder.path / job.record().file).is_file():
            index.add(job.record())  # written by a stage killed before its line
            reused += 1
        else:
            jobs.append(job)
    report.upscale_reused = reused
    log.info(
        "upscale: %s to %s with %s (%d reused)",
        plural(reused + len(jobs), "frame"), _sizes(finishing), upscaler.name, reused,
    )  # fmt: skip
    if not jobs:
        return
    progress = Progress(len(jobs), label="upscale", log_every=cfg.runtime.log_every)
    started = time.monotonic()

    def commit(record: UpscaledFrame) -> None:
        index.add(record)
        report.upscaled += 1
        progress.advance()

    try:
        executor.run(folder, jobs, upscaler, commit, stop, progress)
    finally:
        progress.close()
        elapsed = time.monotonic() - started
        report.upscale_seconds = round(elapsed - progress.excluded, 3)
        log.info("upscale: %d upscaled in %s", report.upscaled, format_duration(elapsed))


def _sizes(finishing: Finishing) -> str:
    sizes = sorted({size for size in finishing.sizes.values()})
    if len(sizes) == 1:
        return f"{sizes[0][0]}x{sizes[0][1]}"
    return f"{len(sizes)} sizes"
