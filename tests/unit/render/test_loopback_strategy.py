"""The loopback strategy's own parts: a row's camera and tools, a video's colour
references, and the colour match after generation joining the frame's key."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.animation.loopback import LoopbackInputs, LoopbackSettings
from pipeline.config.schema import (
    AnimationMode,
    ColorCoherence,
    InputConfig,
    ModelConfig,
    RunConfig,
)
from pipeline.plan.build import build_plan
from pipeline.records.run_folder import RunFolder
from pipeline.render.strategies.loopback import (
    ColourReferences,
    LoopbackStrategy,
    camera_step_3d,
    input_tools,
)


def config(**animation: object) -> RunConfig:
    cfg = RunConfig(input=InputConfig(path="still.png"), model=ModelConfig(path="m"))
    for key, value in animation.items():
        setattr(cfg.animation, key, value)
    return cfg


def picture(value: int) -> np.ndarray:
    return np.full((4, 6, 3), value, np.uint8)


def test_a_row_gives_the_camera_and_the_tools() -> None:
    cfg = config(
        mode=AnimationMode("3d"), translation_z="3", rotation_3d_x="0.5", fov="50",
        anti_blur=True, contrast="0.9", perspective_flip=True, perspective_flip_fv="60",
    )  # fmt: skip
    row = build_plan(cfg, 2, 64, 48, 12.0).rows[1]
    step = camera_step_3d(row)
    assert (step.translation_z, step.rotation_x, step.fov, step.near) == (3, 0.5, 50, 200)
    tools = input_tools(row)
    assert tools.contrast == 0.9 and tools.anti_blur is not None and tools.perlin is None
    assert tools.flip is not None and tools.flip.fv == 60


def test_a_videos_frames_are_taken_every_n_frames_and_the_last_one_held() -> None:
    references = ColourReferences(iter([picture(10), picture(20), picture(30)]), 2, (6, 4))
    taken = [int(references.at(index)[0, 0, 0]) for index in range(8)]
    # frames 0-1 follow video frame 0, 2-3 frame 2, then the video (3 frames) has ended
    assert taken == [10, 10, 30, 30, 30, 30, 30, 30]


def test_matching_generated_frames_puts_the_reference_in_the_key(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    inputs = LoopbackInputs(LoopbackSettings(color_coherence=ColorCoherence.lab))
    reference = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    inputs.output(reference)
    plain = LoopbackStrategy(config(color_coherence=ColorCoherence.lab), folder)
    assert plain.frame(picture(50), 1, None, inputs).dependencies == ""  # input only: as before
    both = LoopbackStrategy(
        config(color_coherence=ColorCoherence.lab, color_coherence_output=True), folder
    )
    frame = both.frame(picture(50), 1, None, inputs)
    assert frame.dependencies.startswith("colour match lab: ")
    other = both.frame(picture(50), 1, None, LoopbackInputs(LoopbackSettings()))
    assert other.dependencies == ""  # no reference yet (frame 0 makes it)
    matched = frame.rendered("key1", picture(50))
    assert frame.key == "key1" and not np.array_equal(matched, picture(50))
    # a video's first frame matches frame 0's output, whatever color_coherence_output says
    video = LoopbackStrategy(config(color_coherence=ColorCoherence.video), folder)
    assert video.frame(picture(50), 0, reference, inputs).dependencies != ""
    assert video.frame(picture(50), 1, reference, inputs).dependencies == ""
