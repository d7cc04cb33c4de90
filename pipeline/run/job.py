"""One job: the configured stages, in order, over one run folder.

The run folder is the only state the stages share (resolved config, plan, source
description, frames, manifest, log), so each stage can run alone: ``stages=[plan]`` is a
dry run that loads no model, ``stages=[assemble]`` re-encodes what is on disk. This is
the one module of ``jobs`` that imports the stages.
"""

from __future__ import annotations

import errno
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import OmegaConf

from pipeline.assemble.control_preview import control_stage
from pipeline.assemble.stage import assemble_stage
from pipeline.atomic import write_text
from pipeline.config.compose import literal_node
from pipeline.config.schema import RunConfig
from pipeline.errors import RotoscopeError
from pipeline.metrics.stage import metrics_stage
from pipeline.plan.stage import plan_stage
from pipeline.records.history import history_bytes
from pipeline.records.interrupts import StopRequested
from pipeline.records.lock import RunLock
from pipeline.records.naming import RunOwner, claim, owner_of
from pipeline.records.report import JobReport
from pipeline.records.run_folder import RunFolder
from pipeline.render.stage import render_stage
from pipeline.run.configure import JobConfig, configure
from pipeline.upscale.stage import upscale_stage

log = logging.getLogger("rotoscope")


def run_job(
    cfg: RunConfig,
    run_dir: Path,
    explicit: frozenset[str] = frozenset(),
    command: str | None = None,
    job: str = "",
) -> JobReport:
    """Run the configured stages in order inside ``run_dir``, holding its lock.

    ``explicit`` names the config keys given on the command line: they win over a
    keyframe file's values (which win over presets and defaults). ``command`` is what
    resumes this job; it goes into the report. ``job`` is a multirun job's own
    overrides (they name its folder; see :mod:`pipeline.records.naming`). A config that
    is refused (:func:`pipeline.run.configure.configure`) writes nothing; once it is
    accepted the report is written whatever happens. A job that fails before making
    anything in a folder it found empty removes that folder again, so a typo leaves no
    clutter behind (its error was printed, and a queue keeps it in ``queue.json``).
    """
    folder = RunFolder(run_dir)
    fresh = holds_nothing(folder)
    try:
        # the folder was chosen by these values, before any keyframe file applied
        owner = owner_of(cfg.input.path, job, cfg.name)
        configured = configure(cfg, explicit)  # a refused config writes nothing
        return _run_stages(configured, folder, owner, "name" in explicit, command)
    except StopRequested:
        raise
    except BaseException:
        if fresh and holds_nothing(folder, ignore_job_records=True):
            shutil.rmtree(folder.path, ignore_errors=True)
        raise


def _run_stages(
    configured: JobConfig, folder: RunFolder, owner: RunOwner, named: bool, command: str | None
) -> JobReport:
    cfg, origins, stages = configured.cfg, configured.origins, configured.stages
    started = time.monotonic()
    # around the lock (its file is the first thing written), and inside, so that the
    # report records the one-line error
    with _permissions(folder), RunLock(folder.lock):
        report = JobReport(run_dir=str(folder), resume_command=command)
        try:
            with _permissions(folder):
                claim(folder, owner, named)
                write_text(folder.config, OmegaConf.to_yaml(literal_node(cfg)))
                log.info("run folder: %s", folder)
                if "plan" in stages:
                    report.planned = plan_stage(cfg, folder, origins)
                if "control" in stages:
                    report.outputs.append(str(control_stage(cfg, folder)))
                if "render" in stages:
                    render_stage(cfg, folder, report)
                if "upscale" in stages:
                    upscale_stage(cfg, folder, report)
                if "assemble" in stages:
                    report.outputs.append(str(assemble_stage(cfg, folder, report)))
                if "metrics" in stages:
                    metrics_stage(cfg, folder, report)
            report.status = "done"
        except StopRequested:
            report.status = "interrupted"
            raise
        except BaseException as exc:
            report.status = "failed"
            report.error = str(exc) or type(exc).__name__
            raise
        finally:
            report.finish(time.monotonic() - started)
            report.history_bytes = history_bytes(folder)
            try:
                report.write(folder.report)
            except OSError as exc:
                log.warning("cannot write %s: %s", folder.report, exc.strerror or exc)
            log.info("%s", report.line())
    return report


HYDRA_RECORDS = ".hydra"  # Hydra's copy of the job's config, in every run folder


def holds_nothing(folder: RunFolder, ignore_job_records: bool = False) -> bool:
    """True for a folder Hydra has just made for this job: its log, its ``.hydra``.

    With ``ignore_job_records`` also the records a job writes about itself before any
    stage makes something (lock, owner, config, report).
    """
    if not folder.path.is_dir():
        return True
    allowed = {HYDRA_RECORDS, folder.log.name, folder.lock.name}
    if ignore_job_records:
        allowed |= {folder.config.name, folder.report.name, folder.run_json.name}
    return {entry.name for entry in folder.path.iterdir()} <= allowed


@contextmanager
def _permissions(folder: RunFolder) -> Iterator[None]:
    """A file the job may not write (or read) becomes one line naming it, not a traceback."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        where = Path(str(exc.filename or folder.path))
        if where.resolve().is_relative_to(folder.path.resolve()):
            raise RotoscopeError(
                f"cannot write {where}: {exc.strerror}",
                "fix the run folder's permissions or set output.root to a folder you can write",
            ) from exc
        raise RotoscopeError(
            f"cannot open {where}: {exc.strerror}", "check its permissions"
        ) from exc
