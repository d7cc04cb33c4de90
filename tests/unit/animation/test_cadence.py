"""Carrying diffused frames along the source's flow (cadence on a video), and Deforum's
turbo tweens (cadence in loopback)."""

from __future__ import annotations

import numpy as np

from pipeline.animation.cadence import (
    carry_between,
    chain_pairs,
    detail_kept_blend,
    warp_from_earlier,
    warp_from_later,
)
from pipeline.animation.flow import FlowPair, flow_pair, inside_mask
from pipeline.animation.turbo import Camera, Moving, TurboSpan
from pipeline.metrics.warp_error import detail, pair_warp_error
from pipeline.testing.synthetic import occluder_clip, pan_clip, static_clip


def look(image: np.ndarray) -> np.ndarray:
    """A stand-in for a diffused frame's look: the source, recoloured."""
    return np.ascontiguousarray(image[..., ::-1] // 2 + 60)


def carried(frames: list[np.ndarray], start: int, end: int) -> list[np.ndarray]:
    """Frames ``start+1 .. end-1`` carried from the looks of ``start`` and ``end``."""
    pairs = {
        index: flow_pair(frames[index - 1], frames[index]) for index in range(start + 1, end + 1)
    }
    since, made = None, []
    for index in range(start + 1, end):
        since = pairs[index] if since is None else chain_pairs(since, pairs[index])
        until = pairs[end]
        for later in range(end - 1, index, -1):
            until = chain_pairs(pairs[later], until)
        nearness = (end - index) / (end - start)
        sides = [
            (warp_from_earlier(look(frames[start]), since), nearness),
            (warp_from_later(look(frames[end]), until), 1 - nearness),
        ]
        made.append(carry_between(sides).finished())
    return made


def shifted(dx: float, dy: float = 0.0) -> FlowPair:
    forward = np.zeros((24, 24, 2), np.float32)
    forward[...] = (dx, dy)
    return FlowPair(forward, -forward)


def test_composed_flows_add_up_motion() -> None:
    composed = chain_pairs(shifted(1.5, -0.5), shifted(2.0, 1.0))
    assert np.allclose(composed.forward, (3.5, 0.5)) and np.allclose(
        composed.backward, (-3.5, -0.5)
    )
    # on real frames: the flow from 0 to 4 of a pan, composed from four steps, is its motion
    clip = pan_clip(frames=5, width=64, height=64, velocity=(1.5, 0.5))
    steps = [flow_pair(clip.frames[i - 1], clip.frames[i]) for i in range(1, 5)]
    total = steps[0]
    for step in steps[1:]:
        total = chain_pairs(total, step)
    inside = inside_mask(total.forward, margin=4)
    assert np.abs(total.forward[inside] - (-6.0, -2.0)).mean() < 0.1


def test_carried_frames_move_with_the_source() -> None:
    """Consecutive carried frames of a pan differ less along the source's flow than in
    place: they move with the picture, they are not cross-fades of frozen keyframes."""
    frames = pan_clip(frames=9, width=64, height=64, velocity=(1.5, 0.5)).frames
    made = [look(frames[0]), *carried(frames, 0, 8), look(frames[8])]
    along, in_place = [], []
    for index in range(1, 9):
        pair = flow_pair(frames[index - 1], frames[index])
        along.append(pair_warp_error(made[index - 1], made[index], pair))
        still = FlowPair(np.zeros_like(pair.forward), np.zeros_like(pair.backward))
        in_place.append(pair_warp_error(made[index - 1], made[index], still))
    assert np.mean(along) < 0.2 * np.mean(in_place)


def test_a_static_clip_carried_is_its_diffused_frame() -> None:
    frames = static_clip(frames=5, width=48, height=48).frames
    for frame in carried(frames, 0, 4):
        assert np.abs(frame.astype(int) - look(frames[0])).max() <= 1


def test_what_no_diffused_frame_covers_is_a_hole_filled_from_elsewhere() -> None:
    """A square slides right over a still background: after the only diffused frame (0),
    what it uncovers has no match there. Those pixels are holes, filled from the given
    picture (the source, repaired), not dragged along with the square."""
    clip = occluder_clip(frames=4, width=64, height=64, square=20, speed=4)
    frames = clip.clip.frames
    since = chain_pairs(flow_pair(frames[0], frames[1]), flow_pair(frames[1], frames[2]))
    result = carry_between([(warp_from_earlier(look(frames[0]), since), 1.0)])
    uncovered = clip.disoccluded[1] | clip.disoccluded[2]
    core = uncovered & np.roll(uncovered, 2, axis=1) & np.roll(uncovered, -2, axis=1)
    assert result.hole[core].mean() > 0.9 and result.needs_repair
    away = np.ones((64, 64), bool)
    away[14:50] = False  # the rows of the square, and a margin where the flow smears it
    assert result.hole[away].mean() < 0.01  # the rest is carried
    filled = result.filled(frames[2])
    assert np.abs(filled[core].astype(int) - frames[2][core]).max() <= 1
    # without a repair, the nearer diffused frame's warp, which never saw what was hidden
    guessed = result.finished()[core].astype(int)
    assert np.abs(guessed - look(frames[2])[core]).mean() > 5


def roll_camera() -> Camera:
    """A camera that slides the picture (and any map) one pixel right per frame."""

    def move(picture: Moving, index: int) -> Moving:
        return Moving(np.roll(picture.image, 1, axis=1), picture.depth)

    return Camera(move, lambda flow, depth, index: np.roll(flow, 1, axis=1))


def test_deforums_turbo_tweens_between_the_last_two_diffused_frames() -> None:
    """Span from diffused frame 4 (every 4): frame 4 shows the picture before (frame 3,
    moved once) with a quarter of the new frame, frame 7 the new frame moved three times."""
    rng = np.random.default_rng(1)
    before, diffused = (rng.integers(0, 256, (8, 12, 3), dtype=np.uint8) for _ in range(2))
    span = TurboSpan(4, 4, roll_camera(), Moving(before), Moving(diffused))

    def blend(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
        return np.clip(np.rint(a.astype(np.float32) * (1 - w) + b.astype(np.float32) * w), 0, 255)

    for index in range(4, 8):
        moved_before = np.roll(before, index - 3, axis=1)
        moved_new = np.roll(diffused, index - 4, axis=1)
        weight = (index - 3) / 4
        expected = moved_new if weight == 1 else blend(moved_before, moved_new, weight)
        assert np.array_equal(span.shown(index, None), expected.astype(np.uint8)), index
    assert np.array_equal(span.end().image, np.roll(diffused, 3, axis=1))
    first = TurboSpan(0, 4, roll_camera(), None, Moving(diffused))  # no frame before it
    assert np.array_equal(first.shown(2, None), np.roll(diffused, 2, axis=1))


def test_optical_flow_cadence_morphs_along_the_flow() -> None:
    """With a flow of 4 px right between the pictures, the halfway tween moves the one
    before 2 px right and the new one 2 px back: both land in the middle."""
    before = np.zeros((8, 16, 3), np.uint8)
    before[:, 4:6] = 200
    diffused = np.zeros_like(before)
    diffused[:, 8:10] = 200
    still = Camera(lambda picture, index: picture, lambda flow, depth, index: flow)
    flow = np.zeros((8, 16, 2), np.float32)
    flow[..., 0] = 4.0
    span = TurboSpan(2, 2, still, Moving(before), Moving(diffused), flow)
    halfway = span.shown(2, 1.0)  # weight 1/2
    assert halfway[:, 6:8].min() >= 199 and halfway[:, :5].max() == 0 and halfway[:, 10:].max() == 0
    crossfade = TurboSpan(2, 2, still, Moving(before), Moving(diffused), flow).shown(2, None)
    assert crossfade[:, 4:6].max() == 100 and crossfade[:, 6:8].max() == 0


def test_a_blend_of_two_textures_keeps_their_detail_and_of_equal_ones_is_that_one() -> None:
    """Half of each of two unrelated textures would keep about half their detail as a plain
    mix; the blend scales the lost detail back. Two equal pictures blend to themselves."""
    rng = np.random.default_rng(0)
    a, b = (rng.uniform(40, 215, (48, 48, 3)).astype(np.float32) for _ in range(2))
    half = np.full((48, 48), 0.5, np.float32)
    plain = detail((a * 0.5 + b * 0.5).astype(np.uint8))
    kept = detail(np.clip(detail_kept_blend([a, b], [half, half]), 0, 255).astype(np.uint8))
    sides = (detail(a.astype(np.uint8)) + detail(b.astype(np.uint8))) / 2
    assert plain < 0.6 * sides and kept > 0.9 * sides
    same = detail_kept_blend([a, a.copy()], [half, half])
    assert np.abs(same - a).max() < 1e-3
