"""input.size: the render size by area, at the source's aspect ratio, never above it."""

from __future__ import annotations

import pytest

from pipeline.errors import RotoscopeError
from pipeline.source.resize import render_area, target_size


@pytest.mark.parametrize(
    ("source", "side", "render"),
    [
        ((1920, 1080), 512, (680, 384)),  # SD 1.x: about 512x512's pixels, 16:9
        ((1080, 1920), 512, (384, 680)),  # portrait
        ((1920, 1080), 1024, (1368, 768)),  # SDXL: about a million pixels
        ((3840, 2160), 512, (680, 384)),
        ((4000, 3000), 512, (592, 440)),  # 4:3 photo
        ((64, 48), 512, (64, 48)),  # smaller than the area: its own size, never larger
        ((100, 75), 512, (104, 72)),  # ... rounded to multiples of 8 as before
        ((1920, 1080), None, (1920, 1080)),  # input.size=source
    ],
)
def test_size_by_area_keeps_the_aspect_ratio_and_never_enlarges(
    source: tuple[int, int], side: int | None, render: tuple[int, int]
) -> None:
    width, height = target_size(*source, None, None, None, side)
    assert (width, height) == render
    assert width % 8 == 0 and height % 8 == 0
    if side is not None:
        assert width * height <= max(side * side * 1.01, source[0] * source[1] * 1.1)


def test_width_height_and_scale_win_over_the_area() -> None:
    assert target_size(1920, 1080, 768, None, None, 512) == (768, 432)
    assert target_size(1920, 1080, None, None, 0.5, 512) == (960, 544)
    assert target_size(1920, 1080, 512, 512, None, 512) == (512, 512)


def test_input_size_values() -> None:
    assert (render_area("auto"), render_area("source"), render_area("768")) == (512, None, 768)
    for bad in ("big", "32", "0", "1024x768"):
        with pytest.raises(RotoscopeError, match=r"input\.size="):
            render_area(bad)
