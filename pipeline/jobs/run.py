"""One job: the configured stages, in order, over one run folder.

The run folder is the only state the stages share (resolved config, plan, source
description, frames, manifest, log), so each stage can run alone: ``stages=[plan]`` is a
dry run that loads no model, ``stages=[assemble]`` re-encodes what is on disk. This is
the one module of ``jobs`` that imports the stages.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import OmegaConf

from pipeline.assemble.stage import assemble_stage
from pipeline.atomic import write_text
from pipeline.config.keyframes import apply_keyframes
from pipeline.config.schema import STAGES, RunConfig
from pipeline.control.stage import control_stage
from pipeline.errors import RotoscopeError
from pipeline.jobs.interrupts import StopRequested
from pipeline.jobs.lock import RunLock
from pipeline.jobs.report import JobReport
from pipeline.jobs.run_folder import RunFolder
from pipeline.metrics.stage import metrics_stage
from pipeline.plan.stage import plan_stage
from pipeline.render.stage import render_stage

log = logging.getLogger("rotoscope")


def run_job(
    cfg: RunConfig,
    run_dir: Path,
    explicit: frozenset[str] = frozenset(),
    command: str | None = None,
) -> JobReport:
    """Run the configured stages in order inside ``run_dir``, holding its lock.

    ``explicit`` names the config keys given on the command line: they win over a
    keyframe file's values (which win over presets and defaults). ``command`` is what
    resumes this job; it goes into the report. The report is written whatever happens.
    """
    stages = check_stages(cfg.stages)
    cfg, origins = apply_keyframes(cfg, explicit)
    folder = RunFolder(run_dir)
    started = time.monotonic()
    with RunLock(folder.lock):
        report = JobReport(run_dir=str(run_dir), resume_command=command)
        try:
            write_text(folder.config, OmegaConf.to_yaml(OmegaConf.structured(cfg)))
            log.info("run folder: %s", run_dir)
            if "plan" in stages:
                report.planned = plan_stage(cfg, folder, origins)
            if "control" in stages:
                report.outputs.append(str(control_stage(cfg, folder)))
            if "render" in stages:
                render_stage(cfg, folder, report)
            if "assemble" in stages:
                report.outputs.append(str(assemble_stage(cfg, folder)))
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
            report.write(folder.report)
            log.info("%s", report.line())
    return report


def check_stages(stages: list[str]) -> list[str]:
    """The requested stages in their fixed order; an unknown or empty list is refused."""
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown or not stages:
        raise RotoscopeError(
            f"stages={list(stages)} is not a list of {', '.join(STAGES)}",
            "for example stages=[plan] for a dry run",
        )
    return [stage for stage in STAGES if stage in stages]
