"""plan.png and metrics.png read at a glance: panels only for values that change, the
constants on one line, prompts in full, output and source on one axis with their means."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipeline.plan.chart import (
    Line,
    Series,
    network_series,
    varies,
    wrap,
    write_line_chart,
    write_plan_chart,
)

LONG_PROMPT = (
    "a lighthouse on a cliff at dusk, oil painting, dramatic clouds, crashing waves, "
    "volumetric light, highly detailed, <lora:sd15_kohya_a_long_file_name_indeed:0.6>"
)


def panel_count(path: Path) -> int:
    """Panels are framed by grey rectangles: a column across them meets two edges each."""
    pixels = np.asarray(Image.open(path).convert("RGB"))
    edge = np.all(pixels[:, 500] == (0xBB, 0xBB, 0xBB), axis=1)
    return int(np.sum(edge[1:] & ~edge[:-1])) // 2


def test_only_values_that_change_get_a_panel(tmp_path: Path) -> None:
    frames = 12
    series = [
        Series("strength", np.linspace(0.65, 0.45, frames), [0, frames - 1]),
        Series("guidance_scale", np.full(frames, 7.0), [0]),
        Series("seed", np.full(frames, 42.0), [0]),
    ]
    both = write_plan_chart(series, [(0, "a")], tmp_path / "both.png")
    one = write_plan_chart(series[:1], [(0, "a")], tmp_path / "one.png")
    # the constants take one line of text, not a panel each
    assert panel_count(both) == panel_count(one) == 1
    assert Image.open(both).size[1] - Image.open(one).size[1] < 20


def test_lora_weights_and_a_prompt_blend_are_charted() -> None:
    loras = [{"ink": 0.5}, {"ink": 0.8}, None, {"ink": 0.8, "paper": 1.0}]
    found = network_series(loras, [None, 0.5, 1.0, None])
    assert [item.name for item in found] == ["LoRA ink", "LoRA paper", "prompt blend"]
    assert found[0].values.tolist() == [0.5, 0.8, 0.0, 0.8] and varies(found[0])
    assert np.isnan(found[2].values[0]) and found[2].values[2] == 1.0
    assert network_series([None, None], [None, None]) == []


def test_prompt_labels_are_wrapped_never_cut(tmp_path: Path) -> None:
    font = ImageFont.load_default(size=11)
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = wrap(LONG_PROMPT, font, 240, draw)
    assert len(lines) > 1 and all(draw.textlength(line, font=font) <= 240 for line in lines)
    assert "".join(lines).replace(" ", "") == LONG_PROMPT.replace(" ", "")
    strength = [Series("strength", np.linspace(0, 1, 4), [])]
    short = write_plan_chart(strength, [(0, "a")], tmp_path / "short.png")
    long = write_plan_chart(strength, [(0, LONG_PROMPT), (2, LONG_PROMPT)], tmp_path / "long.png")
    assert Image.open(long).size[1] > Image.open(short).size[1]  # the table grew, in full


def test_the_flicker_chart_draws_output_and_source_on_one_axis(tmp_path: Path) -> None:
    output = np.array([np.nan, 0.01, 0.012, 0.011])
    source = np.array([np.nan, 0.03, 0.033, 0.031])
    path = write_line_chart("Flicker (lower is steadier)", "frame", [0, 1, 2, 3],
                            [Line("output", output), Line("source", source)],
                            tmp_path / "metrics.png")  # fmt: skip
    pixels = np.asarray(Image.open(path).convert("RGB"))
    plot = pixels[64:320, 80:976]
    blue = np.all(plot == (0x1F, 0x5F, 0x99), axis=2)
    orange = np.all(plot == (0xD9, 0x48, 0x0F), axis=2)
    assert blue.any() and orange.any()
    # one axis from 0: the source's line lies well above the output's
    rows = np.arange(plot.shape[0])[:, None]
    assert (rows * orange).sum() / orange.sum() < (rows * blue).sum() / blue.sum() - 50
