"""The masked render: the composition around the call (empty masks, crop and paste, the
composite), and the mask inside the call with a regular and an inpainting checkpoint."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pipeline.config.schema import MaskArea, MaskFill, ModelConfig, RuntimeConfig
from pipeline.models.loader import load_model
from pipeline.plan.rows import PlanRow
from pipeline.render.batch import FrameInput
from pipeline.render.masking.control import inpaint_control_image
from pipeline.render.masking.pixels import composite, crop_box, crop_render_size, fill_masked
from pipeline.render.masking.render import MaskedRender
from pipeline.render.renderer import Renderer

RNG = np.random.default_rng(3)
SOURCE = RNG.integers(0, 255, (64, 64, 3), dtype=np.uint8)


def plan_row(**changes: Any) -> PlanRow:
    base: dict[str, Any] = dict(
        index=0, prompt="ink", negative_prompt="", strength=0.75, guidance_scale=7.0,
        steps=4, sampler="Euler a", seed=3, width=64, height=64, mask_fill=MaskFill.original,
        mask_area=MaskArea.full, mask_padding=4, mask_composite=True, mask_overlay_blur=0.0,
    )  # fmt: skip
    base.update(changes)
    return PlanRow(**base)


def square_mask(top: int = 16, left: int = 16, size: int = 16) -> np.ndarray:
    mask = np.zeros((64, 64), np.uint8)
    mask[top : top + size, left : left + size] = 255
    return mask


def test_composite_is_the_source_outside_and_feathers_only_across_overlay_blur() -> None:
    render = np.full_like(SOURCE, 7)
    mask = square_mask()
    sharp = composite(SOURCE, render, mask, 0)
    assert np.array_equal(sharp[mask == 0], SOURCE[mask == 0])
    assert (sharp[mask == 255] == 7).all()
    soft = composite(SOURCE, render, mask, 3)
    near = np.zeros_like(mask, bool)
    near[13:35, 13:35] = True  # the square grown by the feather's 3 pixels
    assert np.array_equal(soft[~near], SOURCE[~near])
    assert (soft[20:28, 20:28] == 7).all()  # deep inside
    assert not np.array_equal(soft[14, 20], SOURCE[14, 20])  # the seam is blended


class FakeRenderer:
    """Stands in for the renderer: records each call's frames, returns a flat picture."""

    native_size = 64

    def __init__(self) -> None:
        self.calls: list[list[FrameInput]] = []

    def render_batch(self, frames: list[FrameInput], hooks: object = None) -> list[np.ndarray]:
        self.calls.append(list(frames))
        return [np.full_like(frame.image, 200) for frame in frames]


def test_an_empty_mask_is_the_source_frame_with_no_render() -> None:
    def no_renderer() -> Renderer:
        raise AssertionError("an empty mask must not load or call the renderer")

    frame = FrameInput(plan_row(), SOURCE, mask=np.zeros((64, 64), np.uint8), source=SOURCE)
    assert np.array_equal(MaskedRender(no_renderer).render(frame), SOURCE)


def test_masked_area_renders_the_box_at_the_models_size_and_pastes_it_back() -> None:
    fake = FakeRenderer()
    masked = MaskedRender(lambda: fake)  # type: ignore[arg-type, return-value]
    mask = square_mask(top=8, left=36, size=12)  # rows 8-19, columns 36-47
    maps = [RNG.integers(0, 255, (64, 64, 3), dtype=np.uint8)]
    row = plan_row(mask_area=MaskArea.masked, mask_composite=False)
    output = masked.render(FrameInput(row, SOURCE, maps, mask, SOURCE))
    (called,) = fake.calls[0]
    box = crop_box(mask, 4)  # rows 4-23, columns 32-51: 20 x 20, enlarged to 64 x 64
    assert (box.top, box.left, box.bottom, box.right) == (4, 32, 24, 52)
    assert (called.row.width, called.row.height) == crop_render_size(box, 64) == (64, 64)
    assert called.image.shape == (*called.mask.shape, 3) == (64, 64, 3)  # type: ignore[union-attr]
    assert called.maps is not None and called.maps[0].shape == (64, 64, 3)
    pasted = np.zeros((64, 64), bool)
    pasted[4:24, 32:52] = True
    assert (output[pasted] == 200).all()  # the render, in the box, at its place
    assert np.array_equal(output[~pasted], SOURCE[~pasted])
    composited = masked.render(FrameInput(replace(row, mask_composite=True), SOURCE, maps, mask))
    assert (composited[mask == 255] == 200).all()
    assert np.array_equal(composited[mask == 0], SOURCE[mask == 0])


def test_fill_paints_the_masked_area_from_its_surroundings() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    image[:, :32] = (200, 40, 40)  # red left, blue right, a white subject in the middle
    image[:, 32:] = (40, 40, 200)
    image[24:40, 24:40] = 255
    filled = fill_masked(image, square_mask(24, 24, 16))
    assert np.array_equal(filled[:24], image[:24])  # outside untouched
    assert filled[32, 25, 0] > filled[32, 25, 2] and filled[32, 38, 2] > filled[32, 38, 0]
    assert filled[24:40, 24:40].max() < 230  # the white subject is gone


def test_inpaint_control_image_marks_the_masked_pixels() -> None:
    tensor = inpaint_control_image(SOURCE, square_mask())
    assert tensor.shape == (1, 3, 64, 64)
    assert (tensor[0, :, 16:32, 16:32] == -1).all()
    assert torch.allclose(tensor[0, :, 0, 0], torch.tensor(SOURCE[0, 0] / 255.0).float())


@pytest.fixture(scope="module")
def renderer(tiny_models) -> Renderer:
    return Renderer(load_model(ModelConfig(path=str(tiny_models.sd15)), RuntimeConfig("cpu")))


def test_a_regular_checkpoint_keeps_the_init_latents_outside_the_mask(renderer) -> None:
    """Inside the call: the latent cells outside the mask are the init's whatever the
    seed (the composite then makes the pixels there exact); an all-white mask changes
    nothing at all."""
    plain = renderer.render(plan_row(), SOURCE)
    white = renderer.render_batch(
        [FrameInput(plan_row(), SOURCE, mask=np.full((64, 64), 255, np.uint8))]
    )
    assert np.array_equal(plain, white[0])
    mask = square_mask()
    first, second = (
        renderer.render_batch([FrameInput(plan_row(seed=seed), SOURCE, mask=mask)])[0]
        for seed in (1, 2)
    )
    outside = np.ones((64, 64), bool)
    outside[8:40, 8:40] = False  # away from the square by a latent cell
    # the same latents there; the VAE's convolutions may round a pixel differently
    assert np.abs(first[outside].astype(int) - second[outside]).max() <= 1
    assert not np.array_equal(first[16:32, 16:32], second[16:32, 16:32])
    nothing = renderer.render_batch(
        [FrameInput(plan_row(seed=1, mask_fill=MaskFill.latent_nothing), SOURCE, mask=mask)]
    )[0]
    assert not np.array_equal(nothing[16:32, 16:32], first[16:32, 16:32])


def test_an_inpainting_checkpoint_runs_the_inpainting_pipeline(tiny_inpaint: Path) -> None:
    model = load_model(ModelConfig(path=str(tiny_inpaint)), RuntimeConfig("cpu"))
    renderer = Renderer(model)
    assert (
        renderer.inpainting
        and type(renderer.call_pipe).__name__ == "StableDiffusionInpaintPipeline"
    )
    row = plan_row(height=48)
    image = SOURCE[:48]
    a, b, unmasked = renderer.render_batch(
        [
            FrameInput(row, image, mask=square_mask()[:48]),
            FrameInput(row, image, mask=square_mask(left=40)[:48]),
            FrameInput(row, image),
        ]
    )
    assert a.shape == b.shape == unmasked.shape == (48, 64, 3)
    assert not np.array_equal(a, b)  # the UNet reads the mask
