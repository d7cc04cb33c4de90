"""Loading what renders: the model with the plan's LoRAs and embeddings, the ControlNets,
the speed settings; the same in this process and in every Ray worker, so a worker's
frames are the frames this process would make.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

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


def load_renderer(cfg: RunConfig, rows: list[PlanRow], networks: Networks) -> Renderer:
    """Load the model (with the plan's LoRAs and embeddings, and the ControlNets): called
    when the first frame needs rendering."""
    from pipeline.models.loader import load_model
    from pipeline.models.speed import tune_for_speed
    from pipeline.render.adapters import Adapters
    from pipeline.render.renderer import Renderer

    log.info("loading model %s", cfg.model.path)
    model = load_model(cfg.model, cfg.runtime)
    dtype = str(model.dtype).removeprefix("torch.")
    log.info("model %s on %s (%s)", model.name, model.device, dtype)
    adapters = Adapters(model, rows, networks)
    speedups = tune_for_speed(model, cfg.runtime.compile, cfg.coherence.attention)
    if speedups:
        log.info("speed: %s", ", ".join(speedups))
    return Renderer(model, load_units(cfg, model), cfg.controlnet.mode, adapters)


def load_units(cfg: RunConfig, model: LoadedModel) -> list[LoadedControlNet]:
    """Load each ControlNet unit's weights next to the base model."""
    from pipeline.models.controlnets import controlnet_identity, load_controlnet
    from pipeline.render.renderer import LoadedControlNet

    units = []
    for name, unit in cfg.controlnet.units.items():
        log.info("loading controlnet %s: %s", name, unit.model)
        units.append(
            LoadedControlNet(
                unit=name,
                path=unit.model,
                preprocessor=unit.preprocessor,
                net=load_controlnet(unit.model, model, cfg.runtime.offline),
                identity=controlnet_identity(unit.model),
            )
        )
    return units
