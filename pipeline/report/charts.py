"""The page's charts as inline SVG: the plan (every value that varies over the frames)
and the flicker (the output's warp error against the source's).

Inline SVG needs no script library and no network, scales with the page, and stays
text: a hover column over every frame carries the values at that frame (shown by the
page's script in a readout line, and by the browser as a tooltip). The plan's values
come from the plan rows as recorded, whatever fields they hold: a value a new feature
schedules gets its panel without this module knowing it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

WIDTH, PANEL_HEIGHT, FLICKER_HEIGHT = 760, 96, 200
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 10, 22
OUTPUT, SOURCE, PLAN, PROMPT = "#1f5f99", "#d9480f", "#1f5f99", "#8a8a8a"
# plan fields that are not a look (where, how big) or not a number worth a panel
NOT_CHARTED = frozenset({"index", "width", "height"})


@dataclass(frozen=True)
class Curve:
    """One value over the frames (None where a frame has none)."""

    name: str
    values: list[float | None]
    color: str = PLAN


@dataclass(frozen=True)
class PlanValues:
    """What the plan chart shows: the values that vary, the constants, the prompt keys."""

    varying: list[Curve]
    constants: list[tuple[str, str]]
    prompt_keys: list[tuple[int, str]]  # (frame, the prompt from that frame on)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _flatten(row: dict[str, Any]) -> dict[str, float]:
    """A row's numbers by name: nested tables (ControlNet units, LoRA weights) named by
    their path (``controls.canny.weight``, ``loras.ink``)."""
    found: dict[str, float] = {}
    for name, value in row.items():
        if name in NOT_CHARTED:
            continue
        if isinstance(value, dict):
            for inner, item in _flatten(value).items():
                found[f"{name}.{inner}"] = item
        elif (number := _number(value)) is not None:
            found[name] = number
    return found


def plan_values(rows: Sequence[dict[str, Any]]) -> PlanValues:
    """Split the plan's numbers into the varying and the constant, and find where the
    prompt changes (a prompt blend's target counts as part of the prompt)."""
    table = [_flatten(row) for row in rows]
    names: list[str] = []
    for numbers in table:
        names += [name for name in numbers if name not in names]
    varying, constants = [], []
    for name in names:
        values = [numbers.get(name) for numbers in table]
        known = {value for value in values if value is not None}
        if len(known) > 1:
            varying.append(Curve(name, values))
        elif known:
            constants.append((name, f"{known.pop():g}"))
    keys: list[tuple[int, str]] = []
    previous = None
    for row in rows:
        prompt = str(row.get("prompt", ""))
        if row.get("prompt_to"):
            prompt += f" → {row['prompt_to']}"
        if prompt != previous:
            keys.append((int(row.get("index", len(keys))), prompt))
            previous = prompt
    return PlanValues(varying, constants, keys)


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if raw <= m * step)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _format(value: float) -> str:
    return f"{value:.4g}"


def svg_chart(
    curves: Sequence[Curve],
    height: int,
    title: str = "",
    markers: Sequence[int] = (),
    frames: Sequence[int] | None = None,
    from_zero: bool = False,
    ticks: int = 4,
) -> str:
    """Lines over a shared frame axis with a y axis (``from_zero``: starting at 0, so
    two lines' ratio reads off the chart), marker lines (numbered) and a hover column
    per frame whose ``data-tip`` names every curve's value there."""
    count = max((len(curve.values) for curve in curves), default=0)
    frames = list(frames) if frames is not None else list(range(count))
    if count == 0:
        return ""
    values = [v for curve in curves for v in curve.values if v is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    if from_zero and low > 0:
        low = 0.0
    pad = (high - low) * 0.08
    low, high = low - (0.0 if from_zero else pad), high + pad
    inner_w, inner_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    span = max(frames[-1] - frames[0], 1)

    def x(frame: float) -> float:
        return LEFT + inner_w * (frame - frames[0]) / span

    def y(value: float) -> float:
        return TOP + inner_h * (high - value) / (high - low)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in _ticks(low if from_zero else low + pad, high - pad, ticks):
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'class="grid"/><text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" class="tick" '
            f'text-anchor="end">{_format(tick)}</text>'
        )
    for tick in _ticks(frames[0], frames[-1], 8):
        if float(tick).is_integer():
            parts.append(
                f'<text x="{x(tick):.1f}" y="{height - 6}" class="tick" '
                f'text-anchor="middle">{int(tick)}</text>'
            )
    for number, frame in enumerate(markers, start=1):
        parts.append(
            f'<line x1="{x(frame):.1f}" x2="{x(frame):.1f}" y1="{TOP}" y2="{TOP + inner_h}" '
            f'class="marker"/><text x="{x(frame) + 3:.1f}" y="{TOP + 10}" '
            f'class="marker-label">{number}</text>'
        )
    for curve in curves:
        points = [
            f"{x(frame):.1f},{y(value):.1f}"
            for frame, value in zip(frames, curve.values, strict=False)
            if value is not None
        ]
        if len(points) == 1:
            cx, cy = points[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{curve.color}"/>')
        elif points:
            parts.append(
                f'<polyline fill="none" stroke="{curve.color}" stroke-width="1.8" '
                f'points="{" ".join(points)}"/>'
            )
    column = inner_w / max(len(frames) - 1, 1)
    for position, frame in enumerate(frames):
        at = [
            (curve.name, curve.values[position]) for curve in curves if position < len(curve.values)
        ]
        said = ", ".join(f"{name} {_format(value)}" for name, value in at if value is not None)
        tip = escape(f"frame {frame}: {said}" if said else f"frame {frame}")
        parts.append(
            f'<rect class="hover" x="{x(frame) - column / 2:.1f}" y="{TOP}" '
            f'width="{column:.1f}" height="{inner_h}" data-tip="{tip}"><title>{tip}</title>'
            "</rect>"
        )
    parts.append("</svg>")
    return "".join(parts)


def plan_svg(rows: Sequence[dict[str, Any]]) -> str:
    """The plan chart: one small panel per value that varies, its name beside it; the
    constants on one line; prompt keys numbered on every panel and listed in full."""
    values = plan_values(rows)
    if not rows:
        return '<p class="muted">No plan yet.</p>'
    markers = [frame for frame, _ in values.prompt_keys]
    parts = ['<div class="plan-chart">']
    for curve in values.varying:
        parts.append(
            f'<figure class="panel"><figcaption>{escape(curve.name)}</figcaption>'
            f"{svg_chart([curve], PANEL_HEIGHT, curve.name, markers, ticks=2)}</figure>"
        )
    if not values.varying:
        parts.append('<p class="muted">No scheduled value varies over the frames.</p>')
    if values.constants:
        listed = ", ".join(f"{escape(name)} {escape(value)}" for name, value in values.constants)
        parts.append(f'<p class="constants"><b>Constant:</b> {listed}</p>')
    parts.append('<table class="prompts"><tr><th>#</th><th>from frame</th><th>prompt</th></tr>')
    for number, (frame, prompt) in enumerate(values.prompt_keys, start=1):
        parts.append(f"<tr><td>{number}</td><td>{frame}</td><td>{escape(prompt)}</td></tr>")
    parts.append("</table></div>")
    return "".join(parts)


def flicker_svg(metrics: dict[str, Any] | None) -> str:
    """The warp error of each frame pair, the output's and the source's (the reference)
    on one axis, with their means in the legend and what the comparison says."""
    if not metrics or not metrics.get("frames"):
        return '<p class="muted">No flicker measured yet (the metrics stage runs last).</p>'
    pairs = metrics["frames"]
    frames = [int(pair["index"]) for pair in pairs]
    output = Curve("output", [_number(p.get("warp_error")) for p in pairs], OUTPUT)
    source = Curve(
        "source (reference)", [_number(p.get("source_warp_error")) for p in pairs], SOURCE
    )
    mean, reference = _number(metrics.get("warp_error")), _number(metrics.get("source_warp_error"))
    verdict = ""
    if mean and reference:
        ratio = reference / mean
        verdict = (
            f"{ratio:.1f}x steadier than the source" if ratio >= 1
            else f"{1 / ratio:.1f}x more flicker than the source"
        )  # fmt: skip
    legend = (
        f'<span class="key" style="background:{OUTPUT}"></span> output, mean '
        f"{_format(mean) if mean is not None else '–'} "
        f'<span class="key" style="background:{SOURCE}"></span> source (reference), mean '
        f"{_format(reference) if reference is not None else '–'}"
    )
    title = "Flicker: warp error per frame pair (lower is steadier)"
    return (
        f'<figure class="flicker"><figcaption><b>{title}</b>'
        f"{' — ' + escape(verdict) if verdict else ''}<br>{legend}</figcaption>"
        f"{svg_chart([source, output], FLICKER_HEIGHT, title, frames=frames, from_zero=True)}"
        "</figure>"
    )
