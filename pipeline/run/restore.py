"""Restoring a kept look as the run folder's current output, by its frame keys.

Every deliverable's sidecar (:mod:`pipeline.records.provenance`) lists the keys of its
frames and the config that made them. While those frames are on disk, restoring renders
nothing and needs neither the input nor the model: the manifest points each index at
its frame again (as going back to an earlier look does), the plan and source
description are written back from the frames' own records, the config becomes the run
folder's ``config.yaml`` again, and the upscale and assemble stages make the look's
outputs (its upscaled frames are found by key, or made again if pruned; the current
outputs move to ``history/``, as after any new look). When ``rotoscope-prune`` has
removed some of its frames, the look is made again from its config instead: a job that
reuses every frame still on disk and renders only the missing ones (that needs the
input and the model).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

from omegaconf import OmegaConf

from pipeline.assemble.stage import assemble_stage
from pipeline.atomic import write_text
from pipeline.config.compose import literal_node, to_run_config
from pipeline.config.schema import RunConfig, register
from pipeline.errors import RotoscopeError
from pipeline.plan.rows import PlanRow, write_plan
from pipeline.records.interrupts import GracefulStop
from pipeline.records.lock import RunLock
from pipeline.records.manifest import FrameRecord, Manifest
from pipeline.records.naming import RunOwner
from pipeline.records.provenance import KeptLook
from pipeline.records.report import JobReport, append_job
from pipeline.records.run_folder import RunFolder
from pipeline.run.job import run_job
from pipeline.upscale.stage import upscale_stage

log = logging.getLogger("rotoscope")

RESTORE_STAGES = ["plan", "render", "assemble"]


def restore_look(
    folder: RunFolder, kept: KeptLook, command: str, stop: GracefulStop | None = None
) -> JobReport:
    """Make ``kept`` the current output of ``folder`` (see the module doc)."""
    cfg = look_config(folder, kept)
    if not kept.frames_kept:
        log.info(
            "look %s: some of its frames were pruned; making them again from its config",
            kept.look,
        )
        return run_job(cfg, folder.path, frozenset(), command, stop=stop)
    started = time.monotonic()
    report = JobReport(
        run_dir=str(folder), resume_command=command, stages=["restore", "upscale", "assemble"],
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )  # fmt: skip
    with RunLock(folder.lock):
        try:
            records = point_at_frames(folder, kept)
            write_plan([PlanRow.from_record(record.row) for record in records], folder)
            write_text(folder.source_json, _json(kept.provenance.source))
            write_text(folder.config, OmegaConf.to_yaml(literal_node(cfg)))
            report.planned = report.reused = len(records)
            upscale_stage(cfg, folder, report, stop)  # finds its upscaled frames, or remakes them
            outputs = assemble_stage(cfg, folder, report, stop, command)
            report.outputs = [str(path) for path in outputs]
            report.status = "done"
        except BaseException as exc:
            report.status = "failed"
            report.error = str(exc) or type(exc).__name__
            raise
        finally:
            report.finish(time.monotonic() - started)
            report.write(folder.report)
            append_job(folder.jobs, report)
    log.info("restored look %s: %s", kept.look, ", ".join(report.outputs))
    return report


def look_config(folder: RunFolder, kept: KeptLook) -> RunConfig:
    """The config the look was made with, as a job runs it: its keyframe file's values
    are in it already (the file may have changed since), and its input is the one the
    run folder records (the command may have been typed in another folder)."""
    register()
    data = dict(kept.provenance.config)
    data["keyframes"] = None
    node = OmegaConf.merge(OmegaConf.structured(RunConfig), OmegaConf.create(data))
    cfg = to_run_config(node)
    owner = RunOwner.read(folder)
    path = cfg.input.path  # None: a loopback's txt2img start, which reads no input
    if owner is not None and path is not None and not Path(path).expanduser().exists():
        cfg = replace(cfg, input=replace(cfg.input, path=owner.input))
    return cfg


def point_at_frames(folder: RunFolder, kept: KeptLook) -> list[FrameRecord]:
    """Make every frame of the look its index's current frame (a manifest line for each
    that is not), and return their records in order."""
    manifest = Manifest(folder)
    records = []
    for frame in kept.provenance.frames:
        record = manifest.by_key.get(frame.key)
        if record is None or not (folder.path / record.file).is_file():
            raise RotoscopeError(
                f"frame {frame.index} of look {kept.look} is no longer in {folder}",
                "it was pruned: restoring makes it again from the look's config",
            )
        if record.index != frame.index:
            record = replace(record, index=frame.index, row={**record.row, "index": frame.index})
        if manifest.records.get(frame.index) != record:
            manifest.add(record)
        records.append(record)
    return records


def _json(data: dict[str, object]) -> str:
    return json.dumps(data, indent=2) + "\n"
