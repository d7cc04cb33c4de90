"""The metrics stage: the warp error of every pair of rendered frames, and the source's.

Runs after render in the default stages and alone on an existing run folder
(``stages=[metrics]``). It decodes the source again, reads the rendered frames from the
manifest, takes each pair's source flow from the run folder's flow cache (the flow the
render's flow-guided init used, or computed now), and writes ``metrics.json`` and the
chart ``metrics.png``. The closing line and ``report.json`` carry the two averages.
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.animation import flow as flow_settings
from pipeline.animation.flow_cache import ESTIMATOR, FlowCache
from pipeline.atomic import write_text
from pipeline.config.schema import AnimationMode, RunConfig
from pipeline.metrics.warp_error import detail, pair_warp_error
from pipeline.plan.chart import Series, write_plan_chart
from pipeline.plan.rows import read_plan
from pipeline.records.interrupts import GracefulStop
from pipeline.records.manifest import Manifest
from pipeline.records.progress import Progress
from pipeline.records.report import JobReport
from pipeline.records.run_folder import RunFolder
from pipeline.source.open import open_source

log = logging.getLogger("rotoscope")


@dataclass(frozen=True)
class PairMetrics:
    """The pair (``index - 1``, ``index``): its output's and its source's warp error (None
    where no pixel's flow is reliable: such a pair is listed but left out of the means)."""

    index: int
    warp_error: float | None
    source_warp_error: float | None


@dataclass
class RunMetrics:
    """What ``metrics.json`` holds. Averages are None when no pair could be measured."""

    warp_error: float | None
    source_warp_error: float | None
    detail: float | None  # mean Laplacian variance of the output frames
    source_detail: float | None
    pairs: int  # pairs measured (pairs with no reliable pixel are not)
    flow: dict[str, object]
    frames: list[PairMetrics] = field(default_factory=list)

    def write(self, folder: RunFolder) -> None:
        write_text(folder.metrics, json.dumps(asdict(self), indent=2) + "\n")


def metrics_stage(
    cfg: RunConfig, folder: RunFolder, report: JobReport, stop: GracefulStop | None = None
) -> Path | None:
    """Measure the run's flicker; return ``metrics.json``'s path (None when skipped).
    ``stop`` is checked after every frame."""
    if cfg.animation.mode is AnimationMode.loopback:
        log.info("metrics: skipped, loopback frames do not follow the source's motion")
        return None
    rows = read_plan(folder)
    finished, _ = Manifest(folder).finished(rows)  # frames of this plan only
    records = {record.index: record for record in finished}
    cache = FlowCache(folder.flow_pair)
    pairs: list[PairMetrics] = []
    details: list[float] = []
    source_details: list[float] = []
    progress = Progress(len(rows), label="metrics", log_every=cfg.runtime.log_every)
    previous: tuple[int, np.ndarray, np.ndarray | None] | None = None
    with open_source(cfg.input) as source, closing(progress):
        for frame in source:
            if frame.index >= len(rows):
                break
            record = records.get(frame.index)
            output = None
            if record is not None:
                output = np.asarray(Image.open(folder.path / record.file).convert("RGB"))
                details.append(detail(output))
                source_details.append(detail(frame.image))
            if previous is not None and output is not None:
                index, source_image, previous_output = previous
                if (
                    index == frame.index - 1
                    and previous_output is not None
                    and previous_output.shape == output.shape == frame.image.shape
                ):
                    pair = cache.pair(frame.index, source_image, frame.image)
                    pairs.append(
                        PairMetrics(
                            frame.index,
                            pair_warp_error(previous_output, output, pair),
                            pair_warp_error(source_image, frame.image, pair),
                        )
                    )
            previous = (frame.index, frame.image, output)
            progress.advance(reused=output is None)
            if stop is not None:
                stop.safe_point("metrics")
    measured = [p for p in pairs if p.warp_error is not None and p.source_warp_error is not None]
    metrics = RunMetrics(
        warp_error=_mean([p.warp_error for p in measured]),
        source_warp_error=_mean([p.source_warp_error for p in measured]),
        detail=_mean(details),
        source_detail=_mean(source_details),
        pairs=len(measured),
        flow=flow_description(),
        frames=pairs,
    )
    metrics.write(folder)
    _chart(metrics, len(rows), folder)
    report.warp_error = metrics.warp_error
    report.source_warp_error = metrics.source_warp_error
    if metrics.warp_error is None:
        log.info("metrics: fewer than two consecutive rendered frames, nothing to compare")
    else:
        log.info(
            "metrics: warp error %.5f (source %.5f) over %d frame pairs; %s",
            metrics.warp_error, metrics.source_warp_error, len(measured), folder.metrics,
        )  # fmt: skip
    return folder.metrics


def flow_description() -> dict[str, object]:
    """How the flow was estimated, recorded with the numbers it produced."""
    thresholds = flow_settings.ConsistencyThresholds()
    return {
        "estimator": "opencv-dis",
        "settings": ESTIMATOR,
        "occlusion": "forward-backward consistency",
        "relative": thresholds.relative,
        "absolute": thresholds.absolute,
    }


def _mean(values: list[float] | list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return float(np.mean(known)) if known else None


def _chart(metrics: RunMetrics, frame_count: int, folder: RunFolder) -> None:
    """Per-frame warp error of the output and of the source (NaN where no pair)."""
    output = np.full(frame_count, math.nan)
    floor = np.full(frame_count, math.nan)
    for pair in metrics.frames:
        output[pair.index] = math.nan if pair.warp_error is None else pair.warp_error
        floor[pair.index] = math.nan if pair.source_warp_error is None else pair.source_warp_error
    series = [Series("warp error", output, []), Series("source (floor)", floor, [])]
    write_plan_chart(series, [], folder.metrics_chart)
