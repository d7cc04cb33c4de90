"""Reading a run folder's results in tests: the current frame of each index, in order.

Frames are stored by key (``frames/<key[:16]>.png``) and a folder may also hold earlier
looks, so tests find the current frames through the manifest, as the assemble stage does.
Import from tests as ``from support.run_files import ...``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.records.manifest import Manifest
from pipeline.records.run_folder import RunFolder


def frame_files(run_dir: Path) -> list[Path]:
    """The current frame file of every recorded index, in index order."""
    records = Manifest(RunFolder(run_dir)).records
    return [run_dir / records[index].file for index in sorted(records)]


def frame_file(run_dir: Path, index: int) -> Path:
    return run_dir / Manifest(RunFolder(run_dir)).records[index].file


def frames_of(run_dir: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(path)) for path in frame_files(run_dir)]


def report_of(run_dir: Path) -> dict:
    """The run's ``report.json``."""
    return json.loads((run_dir / "report.json").read_text())


def manifest_lines(run_dir: Path) -> list[dict]:
    """Every line of the run's manifest, in file order (none before the first frame)."""
    path = run_dir / "manifest.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def preview_plan(run_dir: Path) -> list[dict]:
    """The rows a plan-only job (``stages=[plan]``) wrote: its plan is a preview, kept in
    ``preview/`` apart from the last render's."""
    return [json.loads(line) for line in (run_dir / "preview/plan.jsonl").open()]


def queue_of(root: Path) -> list[dict]:
    """The summary of the newest queue (``rotoscope -m``) whose folders are in ``root``."""
    queues = sorted((root / "queues").iterdir())
    return json.loads((queues[-1] / "queue.json").read_text())
