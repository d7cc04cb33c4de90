"""The render stage: every planned frame whose key is not in the manifest, rendered.

torch and diffusers are imported only inside the stage, and the model only when the
first frame actually needs rendering, so a re-run that finds every frame current (to
re-encode, say) never loads gigabytes of weights.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import TYPE_CHECKING

from pipeline.atomic import remove_partial_files
from pipeline.config.schema import AnimationMode, RunConfig
from pipeline.control.maps import ControlMaps
from pipeline.jobs.disk import check_free_space
from pipeline.jobs.interrupts import GracefulStop
from pipeline.jobs.manifest import Manifest
from pipeline.jobs.progress import Progress, format_duration
from pipeline.jobs.report import JobReport
from pipeline.jobs.run_folder import RunFolder
from pipeline.plan.networks import Networks
from pipeline.plan.rows import FrameJob, read_plan
from pipeline.source.open import keeps_own_sizes, open_source

if TYPE_CHECKING:  # torch and diffusers load only when a frame renders
    from pipeline.models.loader import LoadedModel
    from pipeline.render.renderer import LoadedControlNet, Renderer

log = logging.getLogger("rotoscope")


def render_stage(cfg: RunConfig, folder: RunFolder, report: JobReport) -> None:
    """Render every planned frame whose key is not already in the manifest."""
    from pipeline.models.controlnets import controlnet_identity
    from pipeline.models.devices import describe_device, resolve_device
    from pipeline.models.loader import model_identity
    from pipeline.render.coherence.chain import CoherenceChain
    from pipeline.render.coherence.strategy import render_coherent
    from pipeline.render.producer import FrameProducer, render_frames, render_loopback

    networks = plan_networks(cfg)
    rows = networks.refreshed(read_plan(folder))  # a LoRA file changed since the plan
    report.planned = report.planned or len(rows)
    remove_partial_files(folder.frames)
    manifest = Manifest(folder)
    pending = len(rows) - len(manifest.finished(rows)[0])
    largest = max(rows, key=lambda row: row.width * row.height)
    check_free_space(folder.path, pending, largest.width, largest.height)
    progress = Progress(len(rows), log_every=cfg.runtime.log_every)
    started = time.monotonic()
    units = cfg.controlnet.units
    report.device = describe_device(resolve_device(cfg.runtime.device))
    # the ControlNets' weights shape the frame as much as the base model's
    identity = "\n".join(
        [
            model_identity(cfg.model, cfg.runtime),
            *(controlnet_identity(unit.model) for unit in units.values()),
        ]
    )
    try:
        with (
            GracefulStop() as stop,
            open_source(cfg.input, keeps_own_sizes(cfg)) as source,
            ControlMaps(cfg, folder, rows[0].width, rows[0].height) as maps,
        ):
            producer = FrameProducer(
                folder, manifest, identity,
                lambda: timed_load(cfg, rows, networks, progress, report), progress, report,
                stop, control=maps if units else None,
            )  # fmt: skip
            if cfg.animation.mode is AnimationMode.loopback:
                render_loopback(producer, rows, source, cfg.animation)
            elif cfg.coherence.attention or cfg.coherence.flow:
                chain = CoherenceChain(cfg.coherence, folder, rows)
                reopen = partial(open_source, cfg.input, keeps_own_sizes(cfg))
                render_coherent(producer, rows, source, chain, reopen)
            else:
                render_frames(producer, rows, source)
    finally:
        progress.close()
        elapsed = time.monotonic() - started
        report.render_seconds = round(elapsed - progress.excluded, 3)
        per_frame = (
            f", {report.render_seconds / progress.rendered:.2f} s/frame"
            if progress.rendered
            else ""
        )
        log.info(
            "render: %d rendered, %d reused, in %s%s",
            progress.rendered, progress.reused, format_duration(elapsed), per_frame,
        )  # fmt: skip


def plan_networks(cfg: RunConfig) -> Networks:
    """The LoRA and embedding folders the plan's names refer to."""
    return Networks(cfg.model.lora_dir, cfg.model.embeddings_dir, cfg.model.loras)


def timed_load(
    cfg: RunConfig, rows: list[FrameJob], networks: Networks, progress: Progress, report: JobReport
) -> Renderer:
    """Load the renderer; its load time is not frame time (rate, ETA, s/frame)."""
    started = time.monotonic()
    renderer = load_renderer(cfg, rows, networks)
    seconds = time.monotonic() - started
    progress.exclude(seconds)
    report.model_load_seconds = round(seconds, 3)
    return renderer


def load_renderer(cfg: RunConfig, rows: list[FrameJob], networks: Networks) -> Renderer:
    """Load the model (with the plan's LoRAs and embeddings, and the ControlNets): called
    when the first frame needs rendering."""
    from pipeline.models.loader import load_model
    from pipeline.render.adapters import Adapters
    from pipeline.render.renderer import Renderer

    log.info("loading model %s", cfg.model.path)
    model = load_model(cfg.model, cfg.runtime)
    dtype = str(model.dtype).removeprefix("torch.")
    log.info("model %s on %s (%s)", model.name, model.device, dtype)
    adapters = Adapters(model, rows, networks)
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
