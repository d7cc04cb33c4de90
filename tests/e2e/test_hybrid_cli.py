"""Hybrid video through the command line: a loopback that takes a clip's motion (and
composites the clip in) moves the way the clip moves, measured with the flow code."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.cli import rotoscope
from support.media import write_image
from support.run_files import frames_of

from pipeline.animation.flow import estimate_flow

FRAMES = 5
SHIFT = 3  # pixels the clip's picture moves right each frame


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64x64 folder of frames: a smooth random texture panning right SHIFT px a frame."""
    folder = tmp_path_factory.mktemp("clip")
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 255, (16, 32, 3)).astype(np.uint8)
    wide = cv2.resize(coarse, (128, 64), interpolation=cv2.INTER_CUBIC)
    for k in range(FRAMES):
        write_image(folder / f"{k:03d}.png", np.roll(wide, SHIFT * k, axis=1)[:, 32:96])
    return folder


def run(clip: Path, tiny_models, work: Path, name: str, *hybrid: str) -> list[np.ndarray]:
    result = rotoscope(
        f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=2",
        "strength=0.3", "seed=3", "prompt=a pan", "animation=loopback", "output=images",
        "stages=[plan,render]", f"name={name}", *hybrid, cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return frames_of(work / "outputs" / name)


def mean_motion(frames: list[np.ndarray]) -> float:
    """The mean horizontal flow between consecutive frames, in pixels."""
    return float(
        np.mean([estimate_flow(a, b)[..., 0].mean() for a, b in itertools.pairwise(frames)])
    )


def test_hybrid_motion_moves_the_animation_as_the_clip_moves(
    clip: Path, tiny_models, tmp_path: Path
) -> None:
    still = mean_motion(run(clip, tiny_models, tmp_path, "plain"))
    hybrid = run(
        clip, tiny_models, tmp_path, "hybrid", "animation.hybrid.motion=optical_flow",
        "animation.hybrid.composite=normal", "animation.hybrid.alpha=0:(0.2)",
    )  # fmt: skip
    moved = mean_motion(hybrid)
    assert abs(still) < 0.7, still  # a plain loopback stays put
    assert SHIFT * 0.5 < moved < SHIFT * 1.3, moved  # hybrid follows the clip's pan
    assert len(list((tmp_path / "outputs/hybrid/flow").glob("hybrid-*.npz"))) == FRAMES - 1
