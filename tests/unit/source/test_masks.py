"""Masks as a source: chroma key, luma range, shaping, Deforum's composable expressions,
alignment with the input, and the plan-time checks of mask.path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.media import make_video

from pipeline.config.schema import InputConfig, MaskConfig
from pipeline.errors import RotoscopeError
from pipeline.source.base import Frame
from pipeline.source.mask_expression import parse_keyed_masks, parse_mask_expression
from pipeline.source.mask_shape import (
    KEY_COLORS,
    MaskShape,
    key_mask,
    luma_mask,
    parse_key_color,
    shape_mask,
)
from pipeline.source.masks import (
    FrameMasks,
    MaskedSource,
    MaskFile,
    check_mask_options,
    check_masks,
)
from pipeline.source.open import open_source


def green_screen() -> tuple[np.ndarray, np.ndarray]:
    """A 64x48 frame: a shaded green screen (lit and in shadow) with a subject of skin,
    grey and blue in front; and where the screen is."""
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :32] = KEY_COLORS["green"]
    frame[:, 32:] = (0, 120, 45)  # the same screen in shadow
    screen = np.ones((48, 64), bool)
    for (top, left), colour in zip(
        [(8, 8), (8, 40), (28, 20)], [(220, 170, 140), (128, 128, 128), (40, 60, 200)], strict=True
    ):
        frame[top : top + 12, left : left + 12] = colour
        screen[top : top + 12, left : left + 12] = False
    return frame, screen


def test_chroma_key_selects_a_green_screen_and_leaves_the_subject() -> None:
    frame, screen = green_screen()
    mask = key_mask(frame, parse_key_color("green"), 0.2, 0.1)
    assert (mask[screen] == 255).all()  # lit and shaded screen alike
    assert (mask[~screen] == 0).all()  # skin, grey and blue are kept
    inverted = shape_mask(mask, MaskShape(invert=True))  # render the subject instead
    assert (inverted[~screen] == 255).all() and (inverted[screen] == 0).all()


def test_key_colours_and_luma_range() -> None:
    assert parse_key_color("#00B140") == KEY_COLORS["green"] == parse_key_color("green")
    assert parse_key_color("#0f0") == (0, 255, 0)
    with pytest.raises(RotoscopeError, match=r"mask.key 'teal'"):
        parse_key_color("teal")
    ramp = np.repeat(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], 3, axis=2)
    mask = luma_mask(ramp, 0.5, 1.0)
    assert (mask[0, :31] == 0).all() and (mask[0, 33:] == 255).all()


def test_shaping_adjusts_thresholds_grows_and_feathers() -> None:
    square = np.zeros((40, 40), np.uint8)
    square[10:30, 10:30] = 200
    grown = shape_mask(square, MaskShape(threshold=0.5, grow=3))
    assert grown[7:33, 10].all() and not grown[5, 10] and set(np.unique(grown)) == {0, 255}
    shrunk = shape_mask(square, MaskShape(threshold=0.5, grow=-3))
    assert not shrunk[12, 20] and shrunk[13, 20] == 255
    feathered = shape_mask(square, MaskShape(threshold=0.5, blur=4))
    assert feathered[20, 5] == 0 and feathered[20, 20] == 255 and 0 < feathered[20, 10] < 255
    # Deforum's adjustments: brightness scales, contrast spreads values from the mean
    brighter = shape_mask(square, MaskShape(brightness=1.2))
    assert brighter[20, 20] == 240 and brighter[0, 0] == 0
    flat = shape_mask(square, MaskShape(contrast=0.0))
    assert len(np.unique(flat)) == 1


def test_expressions_combine_masks_as_deforum_does() -> None:
    left = np.zeros((4, 4), np.uint8)
    left[:, :2] = 255
    top = np.zeros((4, 4), np.uint8)
    top[:2] = 255
    files = {Path("top.png"): top}

    def evaluate(text: str) -> np.ndarray:
        from pipeline.source.mask_expression import MaskLookup

        node = parse_mask_expression(text)
        return node.evaluate(MaskLookup(lambda: left, (4, 4), files.__getitem__))

    assert (evaluate("{mask} & [top.png]") == np.minimum(left, top)).all()
    assert (evaluate("{video_mask} | [top.png]") == np.maximum(left, top)).all()
    assert (evaluate("{mask} \\ [top.png]")[:2, :2] == 0).all()  # difference
    assert (evaluate("{everywhere} \\ {mask}") == 255 - left).all()
    assert (evaluate("!{mask}") == 255 - left).all()
    # & binds tighter than |, and parentheses group
    assert (evaluate("{mask} | [top.png] & {mask}") == left).all()
    assert (evaluate("({mask} | [top.png]) & {mask}") == left).all()
    assert (evaluate("{mask} ^ [top.png]")[0, 0] == 0) and evaluate("{mask} ^ [top.png]")[0, 3]


def test_keyed_expressions_and_refusals() -> None:
    keyed = parse_keyed_masks('0: ("{mask}"), 10: ("{mask} | [logo.png]")')
    assert keyed.at(9) == keyed.at(0) != keyed.at(10) == keyed.at(99)
    assert keyed.files() == [Path("logo.png")]
    with pytest.raises(RotoscopeError, match=r"uses \{human_mask\}.*segmentation model"):
        parse_keyed_masks('0: ("{human_mask} & {video_mask}")')
    with pytest.raises(RotoscopeError, match=r"uses <cat>"):
        parse_mask_expression("{mask} | <cat>")
    with pytest.raises(RotoscopeError, match=r"unknown mask .* at position"):
        parse_mask_expression("{mask} & {maks}")
    with pytest.raises(RotoscopeError, match=r"expected '\)'"):
        parse_mask_expression("({mask} & [a.png]")
    with pytest.raises(RotoscopeError, match=r"uses \{mask\}, but no mask is given"):
        check_mask_options(MaskConfig(expression="{mask} | [a.png]"))
    with pytest.raises(RotoscopeError, match=r"mask.path and mask.key both"):
        check_mask_options(MaskConfig(path="m.mp4", key="green"))
    with pytest.raises(RotoscopeError, match=r"mask.luma"):
        check_mask_options(MaskConfig(luma=[0.8, 0.2]))


def frame_at(index: int, source_index: int, time: float, image: np.ndarray) -> Frame:
    return Frame(index, source_index, time, None, image)


def test_a_mask_video_of_another_rate_is_aligned_by_time(tmp_path: Path) -> None:
    """An input video at 12 fps and its matte at 6 fps: input frame n takes the matte's
    frame at its time (n // 2); a matte at the input's rate takes frame n itself."""
    clip = make_video(tmp_path / "clip.mp4", frames=8, fps=12)
    matte = make_video(tmp_path / "matte.mov", frames=4, fps=6)
    info = open_source(InputConfig(path=str(clip))).info
    slow = MaskFile.open(str(matte), info)
    assert slow.by_time and [slow.number(n, n / 12) for n in range(8)] == [0, 0, 1, 1, 2, 2, 3, 3]
    same = MaskFile.open(str(clip), info)
    assert not same.by_time and same.number(5, 5 / 12) == 5


def test_frame_masks_attach_shaped_masks_to_the_input_frames(tmp_path: Path) -> None:
    """A mask folder aligned with the input by its selection, resized to the render size,
    shaped per frame; the digest names the pixels."""
    folder = tmp_path / "masks"
    folder.mkdir()
    for index in range(6):
        mask = np.zeros((24, 32), np.uint8)  # half the input's size, same aspect
        mask[:, index * 4 : index * 4 + 8] = 255
        Image.fromarray(mask).save(folder / f"m{index}.png")
    clip = make_video(tmp_path / "clip.mp4", frames=6, fps=12)
    cfg = InputConfig(path=str(clip), start="1", every=2)
    source = open_source(cfg)
    shapes = [MaskShape(), MaskShape(invert=True), MaskShape(grow=2)]
    with MaskedSource(
        source, FrameMasks(MaskConfig(path=str(folder)), cfg, source.info, shapes)
    ) as masked:
        frames = list(masked)
    assert [frame.source_index for frame in frames] == [1, 3, 5]
    first = frames[0].mask
    assert first is not None and first.pixels.shape == (48, 64)
    assert first.pixels[:, 8:24].all() and not first.pixels[:, 26:].any()  # file m1, doubled
    assert frames[1].mask is not None and frames[1].mask.pixels[:, 0].all()  # m3, inverted
    assert len({frame.mask.digest for frame in frames if frame.mask}) == 3


def test_plan_checks_refuse_short_unreadable_and_unalignable_masks(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=6, fps=12)
    source = open_source(InputConfig(path=str(clip)))
    folder = tmp_path / "masks"
    folder.mkdir()
    for index in (0, 1, 2, 4, 5):  # frame 3's mask is missing
        Image.fromarray(np.zeros((48, 64), np.uint8)).save(folder / f"{index:03d}.png")
    with pytest.raises(RotoscopeError, match=r"has 5 frames but the input's 6 selected frames"):
        check_masks(MaskConfig(path=str(folder)), source.info, source.selection, 6)
    with pytest.raises(RotoscopeError, match=r"skip from 002.png to 004.png"):
        check_masks(MaskConfig(path=str(folder)), source.info, source.selection, 5)
    check_masks(MaskConfig(path=str(folder)), source.info, source.selection, 3)  # before the gap
    (folder / "003.png").write_bytes(b"not a png")
    with pytest.raises(RotoscopeError, match=r"003.png' cannot be read"):
        check_masks(MaskConfig(path=str(folder)), source.info, source.selection, 6)
    square = tmp_path / "square.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(square)
    with pytest.raises(RotoscopeError, match=r"is 64x64 but its frame is 64x48"):
        check_masks(MaskConfig(path=str(square)), source.info, source.selection, 6)
    with pytest.raises(RotoscopeError, match=r"mask.path '.*nothing' does not exist"):
        check_masks(MaskConfig(path=str(tmp_path / "nothing")), source.info, source.selection, 6)


def test_masked_frames_pass_on_the_inputs_unreadable_frames(tmp_path: Path) -> None:
    """A prefetching reader over masked frames still reports the input's skipped frames."""
    from pipeline.source.prefetch import Prefetch

    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        Image.fromarray(np.full((48, 64, 3), 100 * index, np.uint8)).save(folder / f"{index}.png")
    (folder / "1.png").write_bytes(b"broken")
    cfg = InputConfig(path=str(folder))
    source = open_source(cfg)
    masks = FrameMasks(MaskConfig(luma=[0.0, 0.5]), cfg, source.info, [])
    with Prefetch(MaskedSource(source, masks)) as feed:
        frames = list(feed)
        assert [frame.index for frame in frames] == [0, 2]
        assert [index for index, _ in feed.failures] == [1]
    assert frames[0].mask is not None and frames[0].mask.pixels.all()  # dark: in range
    assert frames[1].mask is not None and not frames[1].mask.pixels.any()
