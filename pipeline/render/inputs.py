"""The frames a render reads: the input, each frame with its mask when masks are on.

Both executors (and a coherence chain's replay) open their frames here, so a mask is
made once per frame by whoever decodes it (the prefetch thread) and travels with it to
whatever renders it; no executor knows about masks. Each frame's mask is shaped by its
plan row (:func:`mask_shape`).
"""

from __future__ import annotations

from pipeline.config.schema import RunConfig
from pipeline.plan.rows import PlanRow
from pipeline.source.base import Source
from pipeline.source.mask_shape import MaskShape
from pipeline.source.masks import FrameMasks, MaskedSource
from pipeline.source.open import keeps_own_sizes, open_source


def open_frames(cfg: RunConfig, rows: list[PlanRow]) -> Source:
    """The render's input frames (:func:`pipeline.source.open.open_source`), with masks."""
    source = open_source(cfg.input, keeps_own_sizes(cfg))
    if not cfg.mask.active:
        return source
    shapes = [mask_shape(row, cfg.mask.invert) for row in rows]
    return MaskedSource(source, FrameMasks(cfg.mask, cfg.input, source.info, shapes))


def mask_shape(row: PlanRow, invert: bool) -> MaskShape:
    """How the mask of ``row``'s frame is shaped: its plan values."""
    neutral = MaskShape()
    return MaskShape(
        contrast=neutral.contrast if row.mask_contrast is None else row.mask_contrast,
        brightness=neutral.brightness if row.mask_brightness is None else row.mask_brightness,
        invert=invert,
        threshold=row.mask_threshold or 0.0,
        grow=row.mask_grow or 0.0,
        blur=row.mask_blur or 0.0,
    )
