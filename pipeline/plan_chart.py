"""A picture of the plan: every scheduled value over the frames, keyframes marked.

Schedules with expressions are hard to read as text; a chart shows at a glance whether
strength really eases from 0.65 to 0.45 or a zoom expression runs away, before any GPU
time is spent. Written by the plan stage as ``plan.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Series:
    """One scheduled value: its per-frame values and the frames of its keys."""

    name: str
    values: np.ndarray
    keys: Sequence[int]


def write_plan_chart(
    series: Sequence[Series], prompt_keys: Sequence[tuple[int, str]], path: Path
) -> Path:
    """Draw one panel per series, prompt keyframes as labelled vertical lines."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, safe on servers
    import matplotlib.pyplot as plt

    count = len(series)
    fig, axes = plt.subplots(count, 1, figsize=(10, 1.6 * count + 0.8), sharex=True, squeeze=False)
    frames = np.arange(len(series[0].values)) if series else np.arange(1)
    for ax, item in zip(axes[:, 0], series, strict=True):
        ax.plot(frames, item.values, linewidth=1.4, color="#1f5f99")
        keys = [k for k in item.keys if 0 <= k < len(item.values)]
        ax.plot(keys, item.values[keys], "o", markersize=4, color="#d9480f", label="keyframe")
        for frame, _ in prompt_keys:
            ax.axvline(frame, color="#888888", linewidth=0.6, linestyle=":")
        ax.set_ylabel(item.name, rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    top = axes[0, 0]
    for frame, label in prompt_keys:
        top.annotate(
            label[:28], (frame, 1.0), xycoords=("data", "axes fraction"),
            rotation=0, fontsize=6, va="bottom", color="#555555",
        )  # fmt: skip
    axes[-1, 0].set_xlabel("frame")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
