"""Loading what renders: the model with the plan's LoRAs and embeddings, the ControlNets,
the speed settings; the same in this process and in every Ray worker, so a worker's
frames are the frames this process would make.

A local queue (``rotoscope -m``, Hydra's basic launcher) runs its jobs one after the
other in one process, so the model a job loaded is kept for the next job when that one
asks for the same weights (:func:`keep_for_next_job`): a sweep of prompts, strengths or
seeds loads its model once. Only a model the job left exactly as loaded is kept: one
that fused a LoRA, held LoRA adapters or embeddings, switched on a memory saver or was
compiled is let go, and the next job loads it afresh, so a job renders the same frames
in a queue as alone. At most one model is kept (a queue of different models holds one
at a time).
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.config.schema import RunConfig
from pipeline.plan.networks import Networks
from pipeline.plan.rows import PlanRow

if TYPE_CHECKING:  # torch and diffusers load only when a frame renders
    from pipeline.models.loader import LoadedModel
    from pipeline.render.renderer import LoadedControlNet, Renderer

log = logging.getLogger("rotoscope")


def plan_networks(cfg: RunConfig) -> Networks:
    """The LoRA and embedding folders the plan's names refer to."""
    return Networks(cfg.model.lora_dir, cfg.model.embeddings_dir, cfg.model.loras)


@dataclass
class LoadedWeights:
    """A job's loaded model, as it was before the job used it: what identifies it (the
    weights, device and compile setting), its scheduler, and the ControlNets loaded
    next to it by identity."""

    key: tuple[str, ...]
    model: LoadedModel
    scheduler: Any
    unet: Any  # as loaded (torch.compile wraps it: such a model is not kept)
    controlnets: dict[str, Any] = field(default_factory=dict)


_last: list[LoadedWeights] = []  # the weights the current (or last) job loaded
_kept: list[LoadedWeights] = []  # ... kept for the next job of a queue (at most one)


def load_renderer(cfg: RunConfig, rows: list[PlanRow], networks: Networks) -> Renderer:
    """Load the model (with the plan's LoRAs and embeddings, and the ControlNets): called
    when the first frame needs rendering. A model the previous job of this process kept
    is used again when it is the same (see the module doc)."""
    from pipeline.models.speed import tune_for_speed
    from pipeline.render.adapters import Adapters
    from pipeline.render.renderer import Renderer

    weights = _weights(cfg)
    model = weights.model
    dtype = str(model.dtype).removeprefix("torch.")
    log.info("model %s on %s (%s)", model.name, model.device, dtype)
    adapters = Adapters(model, rows, networks)
    speedups = tune_for_speed(model, cfg.runtime.compile, cfg.coherence.attention)
    if speedups:
        log.info("speed: %s", ", ".join(speedups))
    return Renderer(model, load_units(cfg, weights), cfg.controlnet.mode, adapters)


def _weights(cfg: RunConfig) -> LoadedWeights:
    """The base model: the one the previous job kept when it is the same, else loaded."""
    from pipeline.models.loader import load_model, model_identity

    key = (model_identity(cfg.model, cfg.runtime), cfg.runtime.device)
    if _kept and _kept[0].key == key:
        weights = _kept.pop()
        weights.model.pipe.scheduler = weights.scheduler
        log.info("model %s: kept loaded from the previous job", cfg.model.path)
    else:
        _kept.clear()  # its memory is freed before another model loads
        gc.collect()
        log.info("loading model %s", cfg.model.path)
        model = load_model(cfg.model, cfg.runtime)
        weights = LoadedWeights(key, model, model.pipe.scheduler, model.pipe.unet)
    _last[:] = [weights]
    return weights


def keep_for_next_job(renderer: Renderer | None) -> None:
    """After a render in this process: keep its model loaded for the next job when the
    render left it exactly as loaded (see the module doc)."""
    if renderer is None or not _last or _last[0].model is not renderer.model:
        return
    loras, adapters = renderer.adapters.loras, renderer.adapters
    changed = bool(loras.fused or loras.adapters or adapters.embeddings)
    if changed or renderer.savers.enabled or renderer.model.pipe.unet is not _last[0].unet:
        _last.clear()
        return
    _kept[:] = _last


def load_units(cfg: RunConfig, weights: LoadedWeights) -> list[LoadedControlNet]:
    """Load each ControlNet unit's weights next to the base model (or take those the
    previous job loaded next to the same model)."""
    from pipeline.models.controlnets import controlnet_identity, load_controlnet
    from pipeline.render.renderer import LoadedControlNet

    units = []
    for name, unit in cfg.controlnet.units.items():
        identity = controlnet_identity(unit.model)
        if identity not in weights.controlnets:
            log.info("loading controlnet %s: %s", name, unit.model)
            weights.controlnets[identity] = load_controlnet(
                unit.model, weights.model, cfg.runtime.offline
            )
        units.append(
            LoadedControlNet(
                unit=name,
                path=unit.model,
                preprocessor=unit.preprocessor,
                net=weights.controlnets[identity],
                identity=identity,
            )
        )
    return units
