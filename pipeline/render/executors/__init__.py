"""Executors: what runs the frames of a render, in this process or on Ray workers.

Every executor takes the same :class:`~.work.RenderWork` (the plan's rows, the manifest, the
frame identity, progress and report) and leaves the same result behind: each planned
frame current in the manifest, written in frame order by the one writer of the run
folder (this process, which holds its lock). They differ only in where the diffusion
runs:

* ``local`` (:mod:`.local`): in this process, with decoding ahead of the renderer and
  frame files written in a pool while the next frame renders;
* ``ray`` (:mod:`.ray`): on ``runtime.workers`` Ray actors, one per GPU, on this
  machine or a cluster (``runtime.ray_address``).

:func:`executor_for` picks one from the runtime config; Ray is imported only when it is
picked, so it stays an optional extra.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.config.schema import RuntimeConfig
from pipeline.errors import RotoscopeError
from pipeline.render.executors.work import RenderWork

Executor = Callable[[RenderWork], None]


def executor_for(runtime: RuntimeConfig) -> Executor:
    """Ray when more than one worker or a cluster is asked for, else this process."""
    if runtime.workers > 1 or runtime.ray_address:
        try:
            from pipeline.render.executors.ray.driver import render_on_ray
        except ModuleNotFoundError as exc:
            if exc.name != "ray":
                raise
            asked = "runtime.ray_address" if runtime.ray_address else "runtime.workers>1"
            raise RotoscopeError(
                f"{asked} renders on Ray, which is not installed",
                "pip install 'rotoscope[ray]' (bash scripts/setup_env.sh installs it), "
                "or render in this process with runtime.workers=1",
            ) from None
        return render_on_ray
    from pipeline.render.executors.local import render_locally

    return render_locally
