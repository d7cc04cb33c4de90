"""Temporal coherence: cross-frame attention, chained frames, their keys, resume, presets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.render.callbacks import StepCallbacks
from pipeline.render.coherence.attention import AttentionCache, CrossFrameAttention
from pipeline.testing.synthetic import pan_clip


@pytest.fixture(scope="module")
def sd15(tiny_models):
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
        str(tiny_models.sd15), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def img2img(pipe, image: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        result = pipe(
            prompt="a fox", image=Image.fromarray(image), strength=0.5, num_inference_steps=4,
            guidance_scale=7.0, generator=torch.Generator("cpu").manual_seed(3), output_type="np",
        )  # fmt: skip
    return np.asarray(result.images[0])


# --- cross-frame attention ---


def test_a_frame_attending_to_its_own_recording_is_plain_attention(sd15) -> None:
    frame = pan_clip(frames=1, width=64, height=64).frames[0]
    plain = img2img(sd15, frame)
    attention = CrossFrameAttention(sd15.unet, "all")
    try:
        with attention.frame(sd15, [], fraction=1.0, record_fraction=1.0) as recording:
            recorded = img2img(sd15, frame)
        with attention.frame(sd15, [recording], fraction=1.0, record_fraction=0.0):
            replayed = img2img(sd15, frame)
    finally:
        attention.remove()
    assert recording.states and np.array_equal(recorded, plain)  # recording changes nothing
    assert np.abs(replayed - plain).max() < 1e-4  # its own keys twice: the same attention
    assert np.array_equal(img2img(sd15, frame), plain)  # processors restored


def test_anchors_change_the_frame_and_only_the_self_attention_layers(sd15) -> None:
    frames = pan_clip(frames=2, width=64, height=64, velocity=(6.0, 0.0)).frames
    attention = CrossFrameAttention(sd15.unet, "up")
    try:
        assert attention.layers and all(
            name.startswith("up_blocks.") and name.endswith("attn1.processor")
            for name in attention.layers
        )
        with attention.frame(sd15, [], fraction=1.0, record_fraction=1.0) as first:
            img2img(sd15, frames[0])
        with attention.frame(sd15, [first], fraction=1.0, record_fraction=0.0):
            anchored = img2img(sd15, frames[1])
    finally:
        attention.remove()
    assert not np.array_equal(anchored, img2img(sd15, frames[1]))


def test_an_attention_recording_round_trips_through_safetensors(tmp_path: Path) -> None:
    cache = AttentionCache(
        {
            ("up_blocks.1.attn1", 0): torch.randn(2, 16, 8),
            ("up_blocks.1.attn1", 1): torch.ones(2, 16, 8),
        },
        [981.0, 961.0],
    )
    cache.save(tmp_path / "a.safetensors")
    loaded = AttentionCache.load(tmp_path / "a.safetensors")
    assert loaded.timesteps == cache.timesteps
    assert all(torch.equal(loaded.states[key], value) for key, value in cache.states.items())
    assert loaded.lookup("up_blocks.1.attn1", 5, 960.0) is loaded.states[("up_blocks.1.attn1", 1)]


class Callback:
    """A step callback for the test: ``change`` maps the tensors it sees to its changes."""

    def __init__(self, inputs: list[str], change) -> None:
        self.tensor_inputs = inputs
        self.change = change

    def __call__(self, pipe, step, timestep, tensors):
        return self.change(tensors)


def test_step_callbacks_run_in_order_each_seeing_the_changes_before_it() -> None:
    callbacks = StepCallbacks()
    callbacks.add(Callback(["a"], lambda x: {"a": x["a"] + 1}))
    callbacks.add(None)  # nothing to add: a frame without prompt editing
    callbacks.add(Callback(["b", "a"], lambda x: {"b": x["a"] * 10}))
    arguments = callbacks.call_arguments()
    assert arguments["callback_on_step_end"] is callbacks
    assert arguments["callback_on_step_end_tensor_inputs"] == ["a", "b"]
    assert callbacks(None, 0, 0, {"a": 1, "b": 0}) == {"a": 2, "b": 20}
    assert StepCallbacks().call_arguments() == {}  # no callback: the call is as before


# --- through the command line ---
