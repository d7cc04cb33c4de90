"""Pictures of a run's numbers, read at a glance: the plan (``plan.png``) and the line
chart the metrics stage draws its flicker with (``metrics.png``).

Schedules with expressions are hard to read as text; a chart shows at a glance whether
strength really eases from 0.65 to 0.45 or a zoom expression runs away, before any GPU
time is spent. ``plan.png`` gives a panel to every scheduled value that *changes* over
the frames (its keyframes as dots), lists the values that stay the same on one line,
and numbers the prompt keyframes on the panels with the full prompts in a table below
(wrapped, never cut). LoRA weights and a prompt blend get panels like any value
(:func:`network_series`).

Drawn with Pillow (already needed for frames) rather than a plotting library: the plan
stage runs on every job, and importing a full plotting stack would cost more than the
rest of planning together; line panels need none of its machinery.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WIDTH = 1000
PANEL = 96  # height of one panel, gap included
GAP = 14
LEFT, RIGHT = 150, 24
LINE, KEY, GRID, PROMPT, TEXT = "#1f5f99", "#d9480f", "#e4e4e4", "#9a9a9a", "#333333"
COLOURS = (LINE, KEY, "#2b8a3e", "#862e9c", "#e67700")
LINE_HEIGHT = 15

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class Series:
    """One value over the frames (NaN where a frame has none) and the frames of its keys."""

    name: str
    values: np.ndarray
    keys: Sequence[int]


def varies(item: Series) -> bool:
    values = np.asarray(item.values, dtype=float)
    known = values[np.isfinite(values)]
    return known.size > 0 and float(np.ptp(known)) > 1e-12


def network_series(
    loras: Sequence[dict[str, float] | None], blends: Sequence[float | None]
) -> list[Series]:
    """Panels for what the plan rows hold beyond the schedules: each LoRA's weight per
    frame (0 where its tag is absent) and the prompt blend (where a blend is planned)."""
    frames = len(loras)
    names: list[str] = []
    for weights in loras:
        names += [name for name in weights or {} if name not in names]
    series = [
        Series(f"LoRA {name}", np.array([(w or {}).get(name, 0.0) for w in loras], float), [])
        for name in names
    ]
    if any(blend is not None for blend in blends):
        values = np.array([np.nan if b is None else b for b in blends], dtype=float)
        series.append(Series("prompt blend", values, []))
    return [item for item in series if len(item.values) == frames]


def wrap(text: str, font: Font, width: float, draw: ImageDraw.ImageDraw) -> list[str]:
    """``text`` in lines no wider than ``width`` (a word longer than a line is split)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if draw.textlength(candidate, font=font) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        while draw.textlength(word, font=font) > width:
            cut = max(1, int(len(word) * width / draw.textlength(word, font=font)) - 1)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    return [*lines, current] if current else lines or [""]


def write_plan_chart(
    series: Sequence[Series], prompt_keys: Sequence[tuple[int, str]], path: Path
) -> Path:
    """Draw a panel per value that varies, the constants on one line, prompt keyframes
    numbered on the panels and listed in full below."""
    font = ImageFont.load_default(size=11)
    bold = ImageFont.load_default(size=13)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    frames = max((len(item.values) for item in series), default=1)
    panels = [item for item in series if varies(item)]
    constants = [
        f"{item.name} {float(np.asarray(item.values, float)[np.isfinite(item.values)][0]):g}"
        for item in series
        if not varies(item) and np.isfinite(np.asarray(item.values, float)).any()
    ]
    title = f"Plan: {frames} frames; a panel per value that changes, dots at its keyframes"
    constant_lines = wrap(
        "Constant: " + (", ".join(constants) or "none"), font, WIDTH - 16, scratch
    )
    prompt_rows = [
        (number, frame, wrap(label, font, WIDTH - 110, scratch))
        for number, (frame, label) in enumerate(prompt_keys, start=1)
    ]
    top = 8 + 20 + LINE_HEIGHT * len(constant_lines) + 8
    bottom = top + PANEL * max(len(panels), 1)
    table = bottom + 34
    height = table + 18 + sum(LINE_HEIGHT * len(lines) + 4 for _, _, lines in prompt_rows) + 8
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 8), title, fill=TEXT, font=bold)
    for number, line in enumerate(constant_lines):
        draw.text((8, 30 + LINE_HEIGHT * number), line, fill=TEXT, font=font)
    x_of = _x_scale(frames)
    for number, item in enumerate(panels):
        panel_top = top + number * PANEL
        _panel(draw, font, item, panel_top, panel_top + PANEL - GAP, x_of)
    if not panels:
        draw.text((LEFT, top + 30), "no scheduled value changes over the frames", fill=PROMPT,
                  font=font)  # fmt: skip
    axis = bottom - GAP
    for number, (frame, _) in enumerate(prompt_keys, start=1):
        if 0 <= frame < frames:
            x = x_of(frame)
            _dotted(draw, x, top, axis)
            draw.text((x + 3, top - 2), str(number), fill=PROMPT, font=font)
    for tick in _ticks(0, frames - 1, 8):
        x = x_of(tick)
        draw.line([(x, axis), (x, axis + 4)], fill=TEXT)
        draw.text((x, axis + 6), f"{tick:g}", fill=TEXT, font=font, anchor="ma")
    draw.text((WIDTH - RIGHT, axis + 20), "frame", fill=TEXT, font=font, anchor="ra")
    if prompt_rows:
        draw.text((8, table), "#   frame   prompt", fill=TEXT, font=bold)
    y = table + 18
    for number, frame, lines in prompt_rows:
        draw.text((8, y), str(number), fill=TEXT, font=font)
        draw.text((36, y), str(frame), fill=TEXT, font=font)
        for line in lines:
            draw.text((96, y), line, fill=TEXT, font=font)
            y += LINE_HEIGHT
        y += 4
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


@dataclass(frozen=True)
class Line:
    """One line of a :func:`write_line_chart`: its values at the chart's x positions."""

    label: str
    values: np.ndarray


def write_line_chart(
    title: str, x_label: str, xs: Sequence[int], lines: Sequence[Line], path: Path
) -> Path:
    """Several lines on one axis, each with its colour and mean in the legend, under a
    title that says what is plotted (and which way is better)."""
    font = ImageFont.load_default(size=11)
    bold = ImageFont.load_default(size=13)
    height, top, bottom, left = 360, 64, 320, 80
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 8), title, fill=TEXT, font=bold)
    legend_x = 8.0
    for number, line in enumerate(lines):
        colour = COLOURS[number % len(COLOURS)]
        known = line.values[np.isfinite(line.values)]
        mean = f"mean {float(known.mean()):.5f}" if known.size else "not measured"
        label = f"{line.label}, {mean}"
        draw.line([(legend_x, 38), (legend_x + 22, 38)], fill=colour, width=3)
        draw.text((legend_x + 28, 38), label, fill=TEXT, font=font, anchor="lm")
        legend_x += 28 + draw.textlength(label, font=font) + 24
    values = np.concatenate([line.values for line in lines]) if lines else np.zeros(1)
    known = values[np.isfinite(values)]
    low = 0.0
    high = float(known.max()) * 1.1 if known.size and known.max() > 0 else 1.0
    first, last = (xs[0], xs[-1]) if xs else (0, 1)
    span = max(last - first, 1)

    def x_of(x: float) -> float:
        return left + (WIDTH - left - RIGHT) * (x - first) / span

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * (value - low) / (high - low)

    draw.rectangle([left, top, WIDTH - RIGHT, bottom], outline="#bbbbbb")
    for tick in _ticks(low, high, 4):
        y = y_of(tick)
        draw.line([(left, y), (WIDTH - RIGHT, y)], fill=GRID)
        draw.text((left - 6, y), f"{tick:g}", fill=TEXT, font=font, anchor="rm")
    for number, line in enumerate(lines):
        colour = COLOURS[number % len(COLOURS)]
        finite = np.isfinite(line.values)
        for run in _runs(finite):
            points = [(x_of(xs[i]), y_of(float(line.values[i]))) for i in run]
            if len(points) == 1:
                x, y = points[0]
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
            else:
                draw.line(points, fill=colour, width=2)
    for tick in _ticks(first, last, 8):
        if float(tick).is_integer():
            draw.text((x_of(tick), bottom + 6), f"{tick:g}", fill=TEXT, font=font, anchor="ma")
    draw.text((WIDTH - RIGHT, bottom + 22), x_label, fill=TEXT, font=font, anchor="ra")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


def _x_scale(frames: int) -> Callable[[float], float]:
    span = max(frames - 1, 1)
    return lambda frame: LEFT + (WIDTH - LEFT - RIGHT) * frame / span


def _panel(
    draw: ImageDraw.ImageDraw,
    font: Font,
    item: Series,
    top: int,
    bottom: int,
    x_of: Callable[[float], float],
) -> None:
    values = np.asarray(item.values, dtype=float)
    known = np.isfinite(values)
    low, high = float(values[known].min()), float(values[known].max())

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * (value - low) / (high - low)

    draw.rectangle([LEFT, top, WIDTH - RIGHT, bottom], outline="#bbbbbb")
    ticks = [tick for tick in _ticks(low, high, 3) if top - 0.5 <= y_of(tick) <= bottom + 0.5]
    if len(ticks) < 2:  # too narrow a range for round ticks: label its ends instead
        ticks = [low, high]
    for tick in ticks:
        y = y_of(tick)
        draw.line([(LEFT, y), (WIDTH - RIGHT, y)], fill=GRID)
        draw.text((LEFT - 6, y), f"{tick:.3g}", fill=TEXT, font=font, anchor="rm")
    name_lines = wrap(item.name, font, LEFT - 60, draw)
    for number, line in enumerate(name_lines):
        offset = (number - (len(name_lines) - 1) / 2) * LINE_HEIGHT
        draw.text((8, (top + bottom) / 2 + offset), line, fill=TEXT, font=font, anchor="lm")
    for run in _runs(known):  # NaN values (frames without a value) break the line
        points = [(x_of(frame), y_of(values[frame])) for frame in run]
        if len(points) == 1:
            x, y = points[0]
            points.append((x + 2, y))
        draw.line(points, fill=LINE, width=2)
    for frame in item.keys:
        if 0 <= frame < len(values) and known[frame]:
            x, y = x_of(frame), y_of(values[frame])
            draw.ellipse([x - 3.5, y - 3.5, x + 3.5, y + 3.5], fill=KEY)


def _runs(known: np.ndarray) -> list[range]:
    """The stretches of consecutive frames that have a value."""
    runs, start = [], None
    for frame, has_value in enumerate([*known.tolist(), False]):
        if has_value and start is None:
            start = frame
        elif not has_value and start is not None:
            runs.append(range(start, frame))
            start = None
    return runs


def _dotted(draw: ImageDraw.ImageDraw, x: float, top: int, bottom: int) -> None:
    for y in range(top, bottom, 6):
        draw.line([(x, y), (x, min(y + 2, bottom))], fill=PROMPT)


def _ticks(low: float, high: float, count: int) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 10) for i in range(int((high - first) / step) + 1)]
