"""The metrics stage on a synthetic clip with a known occluder, with the source's true
motion as its flow: values worked out by hand (no model: the "rendered" frames are
written straight into a run folder)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.animation import flow_cache
from pipeline.animation.flow import FlowPair
from pipeline.config.schema import InputConfig, ModelConfig, RunConfig
from pipeline.metrics.stage import metrics_stage
from pipeline.plan.rows import PlanRow, write_plan
from pipeline.records.manifest import FrameRecord, Manifest
from pipeline.records.report import JobReport
from pipeline.records.run_folder import RunFolder
from pipeline.testing.synthetic import OccluderClip, occluder_clip

SIZE, FRAMES, SQUARE, SPEED = 64, 5, 20, 4
STEP = 12  # a brightness step in 0..255: its warp error is (12/255)^2 per pixel


@pytest.fixture(scope="module")
def occluder() -> OccluderClip:
    return occluder_clip(frames=FRAMES, width=SIZE, height=SIZE, square=SQUARE, speed=SPEED)


def dimmed(frame: np.ndarray) -> np.ndarray:
    """``frame`` with room above it for ``+STEP`` (so nothing clips)."""
    return np.minimum(frame, 255 - STEP)


def brighter(frame: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``frame`` + STEP on every pixel (or on ``mask``)."""
    out = frame.astype(np.int16)
    if mask is None:
        out += STEP
    else:
        out[mask] += STEP
    return out.astype(np.uint8)


def measure(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    occluder: OccluderClip,
    sources: list[np.ndarray],
    outputs: list[np.ndarray],
) -> tuple[dict, JobReport]:
    """Run the metrics stage on ``sources`` (written as an image folder) and ``outputs``
    (a run folder's frames), with the clip's true motion as the source flow."""
    folder = tmp_path / "source"
    folder.mkdir(parents=True)
    for index, frame in enumerate(sources):
        Image.fromarray(frame).save(folder / f"{index:03d}.png")
    monkeypatch.setattr(flow_cache, "flow_pair", true_flow(occluder, sources))
    run = RunFolder(tmp_path / "run")
    cfg = RunConfig(input=InputConfig(path=str(folder)), model=ModelConfig(path="m"))
    rows = [
        PlanRow(index, "ink", "", 0.5, 7.0, 2, "Euler", 1, SIZE, SIZE) for index in range(FRAMES)
    ]
    write_plan(rows, run)
    manifest = Manifest(run)
    run.frames.mkdir()
    for row, output in zip(rows, outputs, strict=True):
        key = hashlib.sha256(str(row.index).encode()).hexdigest()
        file = RunFolder.frame_name(key)
        Image.fromarray(output).save(run.path / file)
        manifest.add(FrameRecord(row.index, file, key, row.index, None, 0.0, row.as_record()))
    report = JobReport(str(run.path))
    metrics_stage(cfg, run, report)
    return json.loads(run.metrics.read_text()), report


def true_flow(
    occluder: OccluderClip, sources: list[np.ndarray]
) -> Callable[[np.ndarray, np.ndarray], FlowPair]:
    """A flow estimator that knows the answer: the clip's exact flow between two of
    ``sources`` (recognised by their pixels)."""
    clip = occluder.clip

    def flow_pair(previous: np.ndarray, current: np.ndarray) -> FlowPair:
        t = next(t for t in range(1, FRAMES) if np.array_equal(current, sources[t]))
        assert np.array_equal(previous, sources[t - 1])
        forward, backward = clip.forward[t], clip.backward[t]
        assert forward is not None and backward is not None
        return FlowPair(forward, backward)

    return flow_pair


def test_the_mask_the_metric_uses_leaves_out_what_the_occluder_covers(
    occluder: OccluderClip,
) -> None:
    """``reliable_previous`` (frame t-1's grid: the pixels the warp error averages) is
    exactly everything but what the square covers in frame t, with the true flow."""
    for t in range(1, FRAMES):
        forward, backward = occluder.clip.forward[t], occluder.clip.backward[t]
        assert forward is not None and backward is not None
        pair = FlowPair(forward, backward)
        assert occluder.occluded[t].sum() == SQUARE * SPEED
        assert np.array_equal(pair.reliable_previous, ~occluder.occluded[t])


def test_identical_frames_score_0_even_with_the_occluder_moving(
    tmp_path, monkeypatch, occluder: OccluderClip
) -> None:
    """The square covers a new strip of background every frame: counted, that strip
    would be an error; left out, a clip that follows its source exactly scores 0."""
    sources = occluder.clip.frames
    metrics, report = measure(tmp_path, monkeypatch, occluder, sources, sources)
    assert (metrics["warp_error"], metrics["source_warp_error"]) == (0.0, 0.0)
    assert metrics["pairs"] == FRAMES - 1 and len(metrics["frames"]) == FRAMES - 1
    assert (report.warp_error, report.source_warp_error) == (0.0, 0.0)


def test_a_change_on_occluded_pixels_is_left_out_and_elsewhere_counted(
    tmp_path, monkeypatch, occluder: OccluderClip
) -> None:
    """Frame 0 brightened by STEP where the square covers it in frame 1: excluded, so 0.
    The same brightening on a strip of background as large that frame 1 still shows:
    (strip / reliable pixels) x (STEP/255)^2 for pair 1, the others 0."""
    sources = occluder.clip.frames
    covered = occluder.occluded[1]
    visible = np.roll(covered, -SQUARE, axis=0)  # the strip moved up, onto background
    assert not (visible & covered).any() and not (visible & occluder.disoccluded[1]).any()
    for name, mask, expected in (
        ("covered", covered, 0.0),
        ("visible", visible, (SQUARE * SPEED) / (SIZE * SIZE - SQUARE * SPEED) * (STEP / 255) ** 2),
    ):
        base = [dimmed(frame) for frame in sources]
        outputs = [brighter(base[0], mask), *base[1:]]
        metrics, _ = measure(tmp_path / name, monkeypatch, occluder, base, outputs)
        pairs = [pair["warp_error"] for pair in metrics["frames"]]
        assert pairs[0] == pytest.approx(expected, rel=1e-4, abs=1e-12), name
        assert pairs[1:] == [0.0] * (FRAMES - 2)


def test_a_flicker_of_known_brightness_has_its_known_error(
    tmp_path, monkeypatch, occluder: OccluderClip
) -> None:
    """Every other output frame STEP brighter: every pair differs by STEP on every
    compared pixel, so the warp error is (STEP/255)^2; the source's stays 0."""
    base = [dimmed(frame) for frame in occluder.clip.frames]
    outputs = [brighter(frame) if index % 2 else frame for index, frame in enumerate(base)]
    metrics, report = measure(tmp_path, monkeypatch, occluder, base, outputs)
    assert metrics["warp_error"] == pytest.approx((STEP / 255) ** 2, rel=1e-4)
    assert all(
        pair["warp_error"] == pytest.approx((STEP / 255) ** 2, rel=1e-4)
        for pair in metrics["frames"]
    )
    assert metrics["source_warp_error"] == 0.0 and report.warp_error == metrics["warp_error"]


def test_the_source_reference_is_the_sources_own_warp_error(
    tmp_path, monkeypatch, occluder: OccluderClip
) -> None:
    """A source that flickers by STEP every other frame has the reference (floor)
    (STEP/255)^2; an output that follows the motion without the flicker scores 0."""
    base = [dimmed(frame) for frame in occluder.clip.frames]
    sources = [brighter(frame) if index % 2 else frame for index, frame in enumerate(base)]
    metrics, report = measure(tmp_path, monkeypatch, occluder, sources, base)
    assert metrics["source_warp_error"] == pytest.approx((STEP / 255) ** 2, rel=1e-4)
    assert report.source_warp_error == metrics["source_warp_error"]
    assert metrics["warp_error"] == 0.0
