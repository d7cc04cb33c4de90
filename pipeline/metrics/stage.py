"""The metrics stage: the warp error of every pair of rendered frames, and the source's.

Runs after render in the default stages and alone on an existing run folder
(``stages=[metrics]``). It decodes the source again, reads the rendered frames from the
manifest, takes each pair's source flow from the run folder's flow cache (the flow the
render's flow-guided init used, or computed now), and writes ``metrics.json`` and the
chart ``metrics.png``. The closing line and ``report.json`` carry the two averages. With
masks, the warp error is also measured inside the masks and outside them (where every
pixel is the source frame's, so the output's error there is the source's).
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
from pipeline.animation.flow import FlowPair
from pipeline.animation.flow_cache import ESTIMATOR, FlowCache
from pipeline.atomic import write_text
from pipeline.config.schema import RunConfig
from pipeline.metrics.warp_error import detail, pair_warp_error
from pipeline.plan.chart import Line, write_line_chart
from pipeline.plan.rows import PlanRow, read_plan
from pipeline.records.interrupts import GracefulStop
from pipeline.records.manifest import FrameRecord, Manifest
from pipeline.records.progress import Progress
from pipeline.records.report import JobReport
from pipeline.records.run_folder import RunFolder
from pipeline.source.mask_shape import feather
from pipeline.source.masks import load_mask
from pipeline.source.open import open_source

log = logging.getLogger("rotoscope")


@dataclass(frozen=True)
class MaskedMetrics:
    """The warp error of the output and of the source inside the masks (where frames are
    rendered, the overlay's feather included) and outside them (source pixels only, so
    with ``mask.composite`` the output's error there is the source's exactly)."""

    warp_error_inside: float | None
    warp_error_outside: float | None
    source_warp_error_inside: float | None
    source_warp_error_outside: float | None

    @classmethod
    def mean(cls, measured: list[MaskedMetrics]) -> MaskedMetrics:
        values = {
            name: _mean([getattr(item, name) for item in measured])
            for name in cls.__dataclass_fields__
        }
        return cls(**values)


@dataclass(frozen=True)
class PairMetrics:
    """The pair (``index - 1``, ``index``): its output's and its source's warp error (None
    where no pixel's flow is reliable: such a pair is listed but left out of the means),
    and with masks the same inside and outside them."""

    index: int
    warp_error: float | None
    source_warp_error: float | None
    mask: MaskedMetrics | None = None


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
    mask: MaskedMetrics | None = None  # with masks: the means inside and outside them

    def write(self, folder: RunFolder) -> None:
        data = asdict(self)
        for entry in [data, *data["frames"]]:  # no mask entries in an unmasked run's file
            if entry["mask"] is None:
                del entry["mask"]
        write_text(folder.metrics, json.dumps(data, indent=2) + "\n")


def metrics_stage(
    cfg: RunConfig, folder: RunFolder, report: JobReport, stop: GracefulStop | None = None
) -> Path | None:
    """Measure the run's flicker; return ``metrics.json``'s path (None when skipped).
    ``stop`` is checked after every frame."""
    if cfg.animation.mode.loops:
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
    regions = MaskRegions(folder, rows)
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
                    outputs, sources = (previous_output, output), (source_image, frame.image)
                    inside = regions.pair(records[index], records[frame.index], pair)
                    pairs.append(
                        PairMetrics(
                            frame.index,
                            pair_warp_error(*outputs, pair),
                            pair_warp_error(*sources, pair),
                            None
                            if inside is None
                            else masked_metrics(outputs, sources, pair, inside),
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
        mask=MaskedMetrics.mean([p.mask for p in measured if p.mask is not None])
        if any(p.mask is not None for p in pairs)
        else None,
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


class MaskRegions:
    """Where each frame was rendered (its mask, feathered by the overlay as it was
    composited), read from the masks the render stage kept."""

    def __init__(self, folder: RunFolder, rows: list[PlanRow]) -> None:
        self.folder = folder
        self.rows = rows
        self._masks: dict[str, np.ndarray] = {}

    def inside(self, record: FrameRecord) -> np.ndarray | None:
        """The pixels of ``record``'s frame that are not the source's own; None unmasked."""
        if not record.mask:
            return None
        if record.mask not in self._masks:
            self._masks[record.mask] = load_mask(self.folder.mask(record.mask))
        row = self.rows[record.index]
        return feather(self._masks[record.mask], row.mask_overlay_blur or 0.0) > 0

    def pair(
        self, previous: FrameRecord, current: FrameRecord, pair: FlowPair
    ) -> np.ndarray | None:
        """The pixels of frame ``t-1`` whose warp error involves a rendered pixel: its own,
        and those that frame ``t``'s rendered pixels reach when it is warped back. The
        rest compare source pixels in both frames (so there the output's error is the
        source's exactly)."""
        before, after = self.inside(previous), self.inside(current)
        if before is None or after is None:
            return None
        return before | (pair.warp_current(after.astype(np.float32)) > 0)


def masked_metrics(
    outputs: tuple[np.ndarray, np.ndarray],
    sources: tuple[np.ndarray, np.ndarray],
    pair: FlowPair,
    inside: np.ndarray,
) -> MaskedMetrics:
    """One pair's warp error inside and outside ``inside`` (frame ``t-1``'s pixels,
    :meth:`MaskRegions.pair`)."""
    return MaskedMetrics(
        pair_warp_error(*outputs, pair, inside),
        pair_warp_error(*outputs, pair, ~inside),
        pair_warp_error(*sources, pair, inside),
        pair_warp_error(*sources, pair, ~inside),
    )


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
    """The warp error of the output and of the source on one axis, per frame (NaN where
    a pair could not be measured), their means in the legend, and which way is better."""
    output = np.full(frame_count, math.nan)
    reference = np.full(frame_count, math.nan)
    for pair in metrics.frames:
        output[pair.index] = math.nan if pair.warp_error is None else pair.warp_error
        reference[pair.index] = (
            math.nan if pair.source_warp_error is None else pair.source_warp_error
        )
    title = "Flicker: warp error between each frame and the one before (lower is steadier)"
    if metrics.warp_error and metrics.source_warp_error:
        ratio = metrics.source_warp_error / metrics.warp_error
        title += (
            f": {ratio:.1f}x steadier than the source" if ratio >= 1
            else f": {1 / ratio:.1f}x more flicker than the source"
        )  # fmt: skip
    lines = [Line("output", output), Line("source (reference)", reference)]
    write_line_chart(title, "frame", list(range(frame_count)), lines, folder.metrics_chart)
