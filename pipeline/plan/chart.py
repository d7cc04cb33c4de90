"""A picture of the plan: every scheduled value over the frames, keyframes marked.

Schedules with expressions are hard to read as text; a chart shows at a glance whether
strength really eases from 0.65 to 0.45 or a zoom expression runs away, before any GPU
time is spent. Written by the plan stage as ``plan.png``: one panel per value, its
keyframes as dots, prompt keyframes as dotted lines labelled at the top.

Drawn with Pillow (already needed for frames) rather than a plotting library: the plan
stage runs on every job, and importing a full plotting stack would cost more than the
rest of planning together; simple stacked line panels need none of its machinery.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WIDTH = 1000
PANEL = 104  # height of one panel, gap included
GAP = 14
LEFT, RIGHT, TOP, BOTTOM = 150, 24, 30, 34
LINE, KEY, GRID, PROMPT, TEXT = "#1f5f99", "#d9480f", "#e4e4e4", "#9a9a9a", "#333333"


@dataclass(frozen=True)
class Series:
    """One value over the frames (NaN where a frame has none) and the frames of its keys."""

    name: str
    values: np.ndarray
    keys: Sequence[int]


def write_plan_chart(
    series: Sequence[Series], prompt_keys: Sequence[tuple[int, str]], path: Path
) -> Path:
    """Draw one panel per series; prompt keyframes as labelled dotted lines."""
    frames = max((len(item.values) for item in series), default=1)
    height = TOP + PANEL * max(len(series), 1) + BOTTOM
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=11)
    x_of = _x_scale(frames)
    for number, item in enumerate(series):
        top = TOP + number * PANEL
        _panel(draw, font, item, top, top + PANEL - GAP, x_of)
    bottom = TOP + PANEL * len(series) - GAP
    for frame, label in prompt_keys:
        if 0 <= frame < frames:
            x = x_of(frame)
            _dotted(draw, x, TOP, bottom)
            text = label[:32]
            if x + draw.textlength(text, font=font) + 3 > WIDTH:  # keep it inside the image
                draw.text((x - 3, 4), text, fill=PROMPT, font=font, anchor="ra")
            else:
                draw.text((x + 3, 4), text, fill=PROMPT, font=font)
    for tick in _ticks(0, frames - 1, 8):
        x = x_of(tick)
        draw.line([(x, bottom), (x, bottom + 4)], fill=TEXT)
        draw.text((x, bottom + 6), f"{tick:g}", fill=TEXT, font=font, anchor="ma")
    draw.text((WIDTH - RIGHT, height - 4), "frame", fill=TEXT, font=font, anchor="rd")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


def _x_scale(frames: int):
    span = max(frames - 1, 1)
    return lambda frame: LEFT + (WIDTH - LEFT - RIGHT) * frame / span


def _panel(draw: ImageDraw.ImageDraw, font, item: Series, top: int, bottom: int, x_of) -> None:
    values = np.asarray(item.values, dtype=float)
    known = np.isfinite(values)
    if not known.any():
        values, known = np.zeros_like(values), np.ones_like(known)
    low, high = float(values[known].min()), float(values[known].max())
    flat = high - low < 1e-12
    if flat:  # a flat line sits in the middle of its panel, its value written beside it
        pad = max(abs(low) * 0.1, 0.5)
        low, high = low - pad, high + pad

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * (value - low) / (high - low)

    draw.rectangle([LEFT, top, WIDTH - RIGHT, bottom], outline="#bbbbbb")
    for tick in _ticks(low, high, 3):
        y = y_of(tick)
        if top <= y <= bottom:
            draw.line([(LEFT, y), (WIDTH - RIGHT, y)], fill=GRID)
            draw.text((LEFT - 6, y), f"{tick:g}", fill=TEXT, font=font, anchor="rm")
    draw.text((8, (top + bottom) / 2), item.name, fill=TEXT, font=font, anchor="lm")
    for run in _runs(known):  # NaN values (frames without a value) break the line
        points = [(x_of(frame), y_of(values[frame])) for frame in run]
        if len(points) == 1:
            x, y = points[0]
            points.append((x + 2 if len(values) > 1 else WIDTH - RIGHT, y))
        draw.line(points, fill=LINE, width=2)
    for frame in item.keys:
        if 0 <= frame < len(values) and known[frame]:
            x, y = x_of(frame), y_of(values[frame])
            draw.ellipse([x - 3.5, y - 3.5, x + 3.5, y + 3.5], fill=KEY)
    if flat:
        value = float(values[known][0])
        draw.text((WIDTH - RIGHT - 4, y_of(value) - 3), f"{value:g}", fill=TEXT, font=font,
                  anchor="rd")  # fmt: skip


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
