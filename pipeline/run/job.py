"""One job: the configured stages, in order, over one run folder.

The run folder is the only state the stages share (resolved config, plan, source
description, frames, manifest, log), so each stage can run alone: ``stages=[plan]`` is a
dry run that loads no model, ``stages=[assemble]`` re-encodes what is on disk. This is
the one module of ``run`` that imports the stages.

**A refused command changes nothing.** A job first *accepts* its command
(:func:`accept`): the config is checked (:mod:`pipeline.run.configure`) and the plan is
made in memory (the input probed, every schedule, size and count resolved), so a value
refused at any frame is refused before the job writes anything in the run folder.

**Which records a job writes.** The run folder's ``config.yaml``, ``report.json`` and
plan files always describe the last job that *rendered* (one with the render stage):

- a job that renders writes them there (its report however it ends);
- a job that plans without rendering (``stages=[plan]``, ``stages=[plan,control]``) is a
  preview: its plan, chart, config and report go to ``preview/``;
- a stage run alone (``stages=[assemble]``, ``[metrics]``, ``[render]``, ``[control]``)
  works on the last render's plan on disk, not on the command line: the command line's
  plan is made in memory all the same and must agree with it, or the job is refused
  naming the first difference (so ``stages=[assemble]`` after editing the prompt says
  so instead of assembling other frames). Only how the stage works (``output.*``,
  ``runtime.*``) comes from the command line. A stage that neither plans nor renders
  leaves ``config.yaml`` and ``report.json`` as they are.

Every job that was accepted adds its report to ``jobs.jsonl`` and its command line to
the log.
"""

from __future__ import annotations

import errno
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from omegaconf import OmegaConf

from pipeline.assemble.control_preview import control_stage
from pipeline.assemble.stage import assemble_stage
from pipeline.atomic import write_text
from pipeline.config.compose import literal_node
from pipeline.config.schema import RunConfig
from pipeline.errors import RotoscopeError, plural
from pipeline.metrics.stage import metrics_stage
from pipeline.plan.build import RANDOM_SEED
from pipeline.plan.rows import PlanRow, read_plan
from pipeline.plan.stage import PlannedRun, make_plan, write_plan_files
from pipeline.records.history import history_bytes
from pipeline.records.interrupts import GracefulStop, StopRequested
from pipeline.records.lock import RunLock
from pipeline.records.manifest import FILE_IDENTITIES, same_look
from pipeline.records.naming import RunOwner, check_owner, claim, owner_of
from pipeline.records.progress import FILE_ONLY
from pipeline.records.random_seed import keep_run_seed, run_seed
from pipeline.records.report import JobReport, append_job
from pipeline.records.run_folder import RunFolder
from pipeline.render.stage import render_stage, weights_identity
from pipeline.report.live import LivePage
from pipeline.run.configure import JobConfig, configure
from pipeline.upscale.stage import upscale_stage

log = logging.getLogger("rotoscope")


@dataclass(frozen=True)
class AcceptedJob:
    """A command the job will run: its checked config and its plan, made in memory."""

    configured: JobConfig
    planned: PlannedRun
    identity: str | None  # the weights frame keys name (a job that renders)
    # where the job keeps its config.yaml and report.json (and the plan it writes): the
    # run folder for a job that renders, preview/ for one that plans without rendering,
    # None for a stage run alone on the last render
    records: RunFolder | None


def run_job(
    cfg: RunConfig,
    run_dir: Path,
    explicit: frozenset[str] = frozenset(),
    command: str | None = None,
    job: str = "",
    stop: GracefulStop | None = None,
) -> JobReport:
    """Run the configured stages in order inside ``run_dir``, holding its lock.

    ``explicit`` names the config keys given on the command line: they win over a
    keyframe file's values (which win over presets and defaults). ``command`` is what
    resumes this job; it goes into the report. ``job`` is a multirun job's own
    overrides (they name its folder; see :mod:`pipeline.records.naming`). ``stop`` is
    the process's signal handling (without it the job runs to the end). A refused
    command writes nothing (see the module doc); once accepted the report is written
    whatever happens. A job that fails before making anything in a folder it found
    empty removes that folder again, so a typo leaves no clutter behind (its error was
    printed, and a queue keeps it in its ``queue.json``).
    """
    folder = RunFolder(run_dir)
    fresh = holds_nothing(folder)
    stop = stop or GracefulStop()
    # the run's log keeps every command line, refused ones too (with their error)
    log.info("command: %s", command or "(not from the command line)", extra={FILE_ONLY: True})
    try:
        # the folder was chosen by these values, before any keyframe file applied
        owner = owner_of(cfg.input.path, job, cfg.name)
        named = "name" in explicit
        check_owner(folder, owner, named)
        # the lock first (its file is the first thing written; it says nothing to a
        # user), so a second job on the folder is refused at once
        with _permissions(folder), RunLock(folder.lock):
            configured, drawn = with_run_seed(configure(cfg, explicit), folder)
            accepted = accept(configured, folder, stop)
            if drawn:
                keep_run_seed(folder, configured.cfg.seed)
            return _run_stages(accepted, folder, owner, named, command, stop)
    except StopRequested:
        raise
    except BaseException:
        if fresh and holds_nothing(folder, ignore_job_records=True):
            shutil.rmtree(folder.path, ignore_errors=True)
        raise


def with_run_seed(configured: JobConfig, folder: RunFolder) -> tuple[JobConfig, bool]:
    """``configured`` with ``seed=-1`` replaced by the base seed drawn for the run folder
    (read back when an earlier job drew it), so the plan, every stage and ``config.yaml``
    see that seed; and whether it was drawn now (to keep once the job is accepted)."""
    cfg = configured.cfg
    if cfg.seed != RANDOM_SEED:
        return configured, False
    seed, drawn = run_seed(folder)
    log.info("seed=-1: base seed %d for this run folder (kept in %s)", seed, folder.random_seed)
    return replace(configured, cfg=replace(cfg, seed=seed)), drawn


def accept(configured: JobConfig, folder: RunFolder, stop: GracefulStop) -> AcceptedJob:
    """Everything that may refuse the command, done before anything is written: the plan
    in memory, for a stage run alone its agreement with the plan on disk, and for a
    render the weights' identity (a model that is not there is refused now)."""
    stages = configured.stages
    planned = make_plan(configured.cfg, configured.origins, stop)
    if "plan" not in stages:
        check_same_plan(stages, folder, planned.plan.rows)
    # weights that are not there (or a hub that cannot be reached) refuse a render now
    identity = weights_identity(configured.cfg) if "render" in stages else None
    if "render" in stages:
        records: RunFolder | None = folder
    elif "plan" in stages:
        records = folder.preview
    else:
        records = None
    return AcceptedJob(configured, planned, identity, records)


def check_same_plan(stages: list[str], folder: RunFolder, rows: list[PlanRow]) -> None:
    """A stage run alone works on the plan on disk: refuse a command line that plans
    something else, naming the first difference."""
    on_disk = read_plan(folder)
    difference = plan_difference(rows, on_disk)
    if difference is None:
        return
    alone = f"stages=[{','.join(stages)}]"
    raise RotoscopeError(
        f"{alone} works on the last render's plan in {folder}, and this command line "
        f"plans other frames: {difference}",
        "add the plan and render stages to make them (frames on disk are reused), or "
        "give the last render's settings",
    )


def plan_difference(wanted: list[PlanRow], on_disk: list[PlanRow]) -> str | None:
    """How the command line's plan differs from the one on disk, in a few words."""
    if len(wanted) != len(on_disk):
        return f"{plural(len(wanted), 'frame')} here, {len(on_disk)} there"
    for new, old in zip(wanted, on_disk, strict=True):
        if not same_look(old.as_record(), new):
            mine, theirs = new.as_record(), old.as_record()
            changed = [name for name in mine if name != FILE_IDENTITIES]
            field = next((name for name in changed if mine[name] != theirs.get(name)), "index")
            return (
                f"frame {new.index}: {field} {short(mine[field])} here, "
                f"{short(theirs.get(field))} there"
            )
    return None


def short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _run_stages(  # the caller holds the run folder's lock
    accepted: AcceptedJob,
    folder: RunFolder,
    owner: RunOwner,
    named: bool,
    command: str | None,
    stop: GracefulStop,
) -> JobReport:
    configured, records = accepted.configured, accepted.records
    cfg, stages = configured.cfg, configured.stages
    started = time.monotonic()
    report = JobReport(
        run_dir=str(folder), resume_command=command, stages=list(stages),
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )  # fmt: skip

    # the run folder's page (report.html), live while the job runs; a preview has none
    page = LivePage(folder, command) if records in (folder, None) else None

    def finish() -> None:
        """Write the report where this job keeps it, its line in jobs.jsonl, the page."""
        report.finish(time.monotonic() - started)
        report.history_bytes = history_bytes(folder)
        try:
            if records is not None:
                report.write(records.report)
            append_job(folder.jobs, report)
        except OSError as exc:
            log.warning("cannot write the report in %s: %s", folder, exc.strerror or exc)
        if page is not None:
            page.close()

    def stop_now() -> str:
        """A second Ctrl-C: the report says interrupted, and how to resume."""
        report.status = "interrupted"
        finish()
        return (
            "rotoscope: stopped now (second Ctrl-C); finished frames are kept. "
            f"Resume with:\n  {command}"
        )

    with stop.job(stop_now):
        try:
            with _permissions(folder):
                claim(folder, owner, named)
                if records is not None:
                    write_text(records.config, OmegaConf.to_yaml(literal_node(cfg)))
                log.info("run folder: %s", folder)
                if page is not None:
                    page.start()
                _stages(accepted, folder, report, stop, command, page)
            report.status = "done"
        except StopRequested:
            report.status = "interrupted"
            raise
        except BaseException as exc:
            report.status = "failed"
            report.error = str(exc) or type(exc).__name__
            raise
        finally:
            finish()
            log.info("%s", report.line())
    return report


def _stages(
    accepted: AcceptedJob,
    folder: RunFolder,
    report: JobReport,
    stop: GracefulStop,
    command: str | None,
    page: LivePage | None = None,
) -> None:
    """The stages in order. The plan stage writes the plan made in :func:`accept`; the
    others read what is on disk (the plan just written, or the last render's)."""
    cfg, stages = accepted.configured.cfg, accepted.configured.stages
    plan_folder = accepted.records if "plan" in stages and accepted.records else folder
    if "plan" in stages:
        write_plan_files(accepted.planned, plan_folder)
        report.planned = accepted.planned.count
        where = "" if plan_folder == folder else f" (a preview: {plan_folder.path})"
        log.info("plan: %s%s", accepted.planned.summary, where)

    def entering(stage: str) -> None:
        if page is not None:
            page.enter_stage(stage)

    if "control" in stages:
        entering("control")
        report.outputs.append(str(control_stage(cfg, folder, plan_folder, stop)))
    if "render" in stages:
        entering("render")
        render_stage(cfg, folder, report, stop, accepted.identity)
    if "upscale" in stages:
        entering("upscale")
        upscale_stage(cfg, folder, report, stop)
    if "assemble" in stages:
        entering("assemble")
        outputs = assemble_stage(cfg, folder, report, stop, command)
        report.outputs += [str(path) for path in outputs]
    if "metrics" in stages:
        entering("metrics")
        metrics_stage(cfg, folder, report, stop)


HYDRA_RECORDS = ".hydra"  # Hydra's copy of the job's config, in run folders before 0.3


def holds_nothing(folder: RunFolder, ignore_job_records: bool = False) -> bool:
    """True for a folder Hydra has just made for this job: its log (and lock).

    With ``ignore_job_records`` also the records a job writes about itself before any
    stage makes something (owner, config, report, job list).
    """
    if not folder.path.is_dir():
        return True
    allowed = {HYDRA_RECORDS, folder.log.name, folder.lock.name}
    if ignore_job_records:
        allowed |= {
            folder.config.name, folder.report.name, folder.run_json.name, folder.jobs.name,
            folder.random_seed.name, folder.page.name,
        }  # fmt: skip
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
