"""The flicker metric (warp error, Lai et al. 2018), the flow under it, and its stage."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.animation.flow import flow_pair
from pipeline.animation.flow_cache import FlowCache
from pipeline.metrics.warp_error import detail, pair_warp_error
from pipeline.records.run_folder import RunFolder
from pipeline.testing.synthetic import occluder_clip, pan_clip, static_clip


def clip_warp_error(outputs: list[np.ndarray], sources: list[np.ndarray]) -> float:
    errors = [
        pair_warp_error(outputs[t - 1], outputs[t], flow_pair(sources[t - 1], sources[t]))
        for t in range(1, len(sources))
    ]
    return float(np.mean(errors))


def stylize(image: np.ndarray) -> np.ndarray:
    """A fixed per-pixel look (colours inverted and warmed): moves with the content."""
    return np.clip(255 - image.astype(int) + np.array([30, 0, -30]), 0, 255).astype(np.uint8)


def test_a_static_scene_has_no_warp_error() -> None:
    frames = static_clip(frames=4, width=64, height=64).frames
    assert clip_warp_error(frames, frames) == pytest.approx(0.0, abs=1e-9)


def test_texture_locked_to_the_content_is_low_and_fresh_texture_is_high() -> None:
    sources = pan_clip(frames=6, width=64, height=64).frames
    locked = [stylize(frame) for frame in sources]
    rng = np.random.default_rng(0)
    boiling = [
        np.clip(frame.astype(int) + rng.normal(0, 40, frame.shape), 0, 255).astype(np.uint8)
        for frame in locked
    ]
    floor = clip_warp_error(sources, sources)
    low, high = clip_warp_error(locked, sources), clip_warp_error(boiling, sources)
    assert low < 2 * floor + 1e-4
    assert high > 20 * low
    # without motion compensation the locked texture would look like flicker
    stuck = [stylize(sources[0])] * len(sources)  # a frozen picture
    assert clip_warp_error(stuck, sources) > 5 * low


def test_flow_marks_what_an_occluder_uncovers_as_unreliable() -> None:
    occluder = occluder_clip(frames=6, width=96, height=96)
    clip, disoccluded = occluder.clip, occluder.disoccluded
    found = []
    for t in range(1, 6):
        reliable = flow_pair(clip.frames[t - 1], clip.frames[t]).reliable
        uncovered = disoccluded[t]
        assert uncovered.sum() > 50
        found.append((~reliable[uncovered]).mean())
        far = np.zeros_like(uncovered)
        far[:16, 4:-4] = far[-16:, 4:-4] = True  # background the square never touches
        assert reliable[far].mean() > 0.98
    assert min(found) > 0.3
    assert np.mean(found) > 0.75  # most uncovered pixels are flagged


def test_flow_leaves_what_an_occluder_covers_out_of_the_metrics_mask() -> None:
    """The mask the warp error averages over (``reliable_previous``: frame t-1's pixels
    with a match in frame t), from DIS flow: the pixels the square covers in frame t are
    out, background far from it is in."""
    occluder = occluder_clip(frames=6, width=96, height=96)
    clip, occluded = occluder.clip, occluder.occluded
    flagged = []
    for t in range(1, 6):
        reliable = flow_pair(clip.frames[t - 1], clip.frames[t]).reliable_previous
        assert occluded[t].sum() > 50
        flagged.append((~reliable[occluded[t]]).mean())
        far = np.zeros_like(occluded[t])
        far[:16, 4:-4] = far[-16:, 4:-4] = True  # background the square never touches
        assert reliable[far].mean() > 0.98
    assert min(flagged) > 0.8 and np.mean(flagged) > 0.9


def test_a_pair_with_nothing_reliable_is_not_counted_as_steady() -> None:
    rng = np.random.default_rng(1)
    noise = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(2)]
    pair = flow_pair(*noise)
    pair = type(pair)(pair.forward + 100.0, pair.backward + 100.0)  # everything lands outside
    assert pair_warp_error(noise[0], noise[1], pair) is None


def test_detail_drops_with_blur() -> None:
    import cv2

    frame = pan_clip(frames=1, width=64, height=64).frames[0]
    assert detail(cv2.GaussianBlur(frame, (0, 0), 2.0)) < 0.5 * detail(frame)


def test_flow_cache_returns_the_same_pair_and_notices_other_frames(tmp_path) -> None:
    frames = pan_clip(frames=3, width=48, height=48).frames
    cache = FlowCache(RunFolder(tmp_path).flow_pair)
    first = cache.pair(1, frames[0], frames[1])
    again = FlowCache(RunFolder(tmp_path).flow_pair)
    reread = again.pair(1, frames[0], frames[1])
    assert again.computed == 0
    assert np.array_equal(first.forward, reread.forward)
    assert np.array_equal(first.backward, reread.backward)
    again.pair(1, frames[1], frames[2])  # other frames under the same index: recomputed
    assert again.computed == 1


def test_metrics_json_has_the_promised_keys(tmp_path) -> None:
    from pipeline.metrics.stage import PairMetrics, RunMetrics, flow_description
    from pipeline.records.run_folder import RunFolder

    folder = RunFolder(tmp_path)
    RunMetrics(0.01, 0.001, 0.2, 0.3, 1, flow_description(), [PairMetrics(1, 0.01, 0.001)]).write(
        folder
    )
    data = json.loads(folder.metrics.read_text())
    assert {"warp_error", "source_warp_error", "flow", "frames"} <= set(data)
    assert data["frames"] == [{"index": 1, "warp_error": 0.01, "source_warp_error": 0.001}]
