"""Render strategies: the ways of making frames, one class each, behind one interface.

``base`` holds the interface (:class:`~.base.RenderStrategy`, :class:`~.base.Dispatch`);
``plain`` renders independent frames in batches, ``loopback`` each frame from the one
before (Deforum's 2D and 3D modes, with Deforum's cadence), ``coherent`` segments of
frames that know the frames before them (temporal coherence), ``cadence`` every n-th
frame of an input (plainly or coherently) and the frames between carried from them.
:func:`strategy_for` picks the one a config asks for; both executors
(:mod:`pipeline.render.executors`) call only the interface.
"""

from __future__ import annotations

from pipeline.config.schema import RunConfig
from pipeline.plan.rows import PlanRow
from pipeline.records.run_folder import RunFolder
from pipeline.render.strategies.base import RenderStrategy
from pipeline.render.strategies.cadence import CadenceStrategy
from pipeline.render.strategies.coherent import CoherentStrategy
from pipeline.render.strategies.loopback import LoopbackStrategy
from pipeline.render.strategies.plain import PlainStrategy


def strategy_for(cfg: RunConfig, folder: RunFolder, rows: list[PlanRow]) -> RenderStrategy:
    """The strategy ``cfg`` renders with (loopback and coherence never combine: the plan
    refuses that)."""
    if cfg.animation.mode.loops:
        return LoopbackStrategy(cfg, folder)
    if cfg.cadence.every > 1:
        return CadenceStrategy(cfg, folder, rows)
    if cfg.coherence.attention or cfg.coherence.flow:
        return CoherentStrategy(cfg.coherence, folder, rows)
    return PlainStrategy(cfg.render.batch_size)
