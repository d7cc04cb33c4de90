"""Segments: the chains temporal coherence renders, and where a new one starts.

With coherence on, a frame depends on the frame before it (what it carries along the
source's flow) and on the first frame of its segment (the anchor its attention keeps
looking at). A chain that ran through a scene cut would drag the old shot's look into
the new one, and one that ran through a prompt switch would hold on to the old prompt;
so a new segment starts at those points (``coherence.reanchor``), optionally every N
frames (``coherence.reanchor_every``). A prompt that *morphs* between keyframes
(``prompt_blend`` linear or slerp) keeps its chain: its look changes gradually, and a
fresh anchor in the middle of the morph would pop. Segments are independent of each
other, which is what lets them render on different GPUs, and a change re-renders at most
to the end of its segment.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

from pipeline.config.schema import CoherenceConfig, Reanchor


def segment_starts(
    frame_count: int,
    coherence: CoherenceConfig,
    prompt_switches: Iterable[int] = (),
    cuts: Iterable[int] = (),
) -> list[int]:
    """The first frame of every segment, in order (always starting with frame 0)."""
    starts = {0}
    if Reanchor.keyframes in coherence.reanchor:
        starts.update(prompt_switches)
    if Reanchor.cuts in coherence.reanchor:
        starts.update(cuts)
    if coherence.reanchor_every > 0:
        starts.update(range(0, frame_count, coherence.reanchor_every))
    return sorted(frame for frame in starts if 0 <= frame < frame_count)


def segment_start_of(starts: list[int], index: int) -> int:
    """The first frame of the segment holding frame ``index``."""
    return starts[bisect_right(starts, index) - 1]
