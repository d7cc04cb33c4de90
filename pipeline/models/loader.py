"""Load the img2img pipeline a run renders with, from a hub id, a folder or a single file.

All loading goes through diffusers' own ``from_pretrained`` / ``from_single_file``, so a
model that works in diffusers works here. What this module adds is what a batch tool
needs around that: the architecture read from the files before anything heavy happens,
one-line errors that name the setting and the fix for every mistake a user can make
(instead of a library traceback minutes into a job), strict offline behaviour, and a
cheap ``identity`` that changes whenever the weights do, so cached frames made with other
weights are never reused.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pipeline.config.schema import ModelConfig, ModelFamily, RuntimeConfig
from pipeline.errors import RotoscopeError
from pipeline.models.devices import resolve_device, resolve_dtype
from pipeline.models.family import family_of_index, family_of_keys
from pipeline.models.safe_load import refused_pickle
from pipeline.models.weights import (
    CHECKPOINT_SUFFIXES,
    FAMILY_NAMES,
    enable_offline_mode,
    file_fingerprint,
    first_line,
    folder_fingerprint,
    hub_file,
    is_hub_id,
    is_offline,
    loading,
    not_found,
    own_aligned_memory,
)

if TYPE_CHECKING:  # diffusers itself is imported when a model is loaded
    from diffusers import (
        AutoencoderKL,
    )

DEFAULT_CONFIG_REPOS = {
    ModelFamily.sd15: "stable-diffusion-v1-5/stable-diffusion-v1-5",
    ModelFamily.sdxl: "stabilityai/stable-diffusion-xl-base-1.0",
}


# A loaded diffusers pipeline (img2img, or the ControlNet pipeline sharing its parts).
# Pipelines register their components (unet, vae, scheduler, text encoders) at run time,
# so no static type describes them; the calls made on them are diffusers' documented API.
Pipeline = Any


@dataclass
class LoadedModel:
    """A ready-to-call img2img pipeline and what the rest of a run needs to know about it.

    ``identity`` covers the weights as loaded (files, config, VAE, variant and dtype, but
    not the device) and goes into every frame's cache key. ``model_hash`` is A1111's
    short hash (first 10 hex digits of the file's sha256) for single-file checkpoints,
    so PNG metadata matches what A1111 shows for the same file; folders and hub models
    have none.
    """

    pipe: Pipeline
    family: ModelFamily  # sd15 or sdxl (resolved, never auto)
    name: str
    identity: str
    model_hash: str | None
    device: torch.device
    dtype: torch.dtype


class WeightLocation(Enum):
    """Where a model's weights are found."""

    folder = "folder"  # a local diffusers folder (model_index.json)
    file = "file"  # a single-file checkpoint (A1111's .safetensors/.ckpt)
    hub = "hub"  # a hub id, from the hub's local cache or downloaded


@dataclass(frozen=True)
class _Source:
    """Where some weights live, inspected without loading them."""

    kind: WeightLocation
    location: str  # resolved local path, or hub id
    family: ModelFamily | None
    fingerprint: str  # changes whenever the weights do; cheap to compute


@dataclass(frozen=True)
class _Resolved:
    """Everything known about a model before its weights are read."""

    source: _Source
    family: ModelFamily
    config: _Source | None
    device: torch.device
    dtype: torch.dtype
    offline: bool
    identity: str


def _resolve(cfg: ModelConfig, runtime: RuntimeConfig) -> _Resolved:
    if runtime.offline:
        enable_offline_mode()
    offline = is_offline()
    device = resolve_device(runtime.device)
    dtype = resolve_dtype(runtime.dtype, device)
    source = _inspect_model("model.path", cfg.path, offline)
    family = source.family if cfg.family is ModelFamily.auto else cfg.family
    if family is None:
        raise RotoscopeError(
            f"model.path '{cfg.path}' is not a Stable Diffusion 1.x/2.x or SDXL model",
            "set model.family=sd15 or model.family=sdxl if it is one",
        )
    config = _config_source(cfg, family, offline) if source.kind is WeightLocation.file else None
    parts = (
        f"family={family.value}",
        f"model={source.fingerprint}",
        f"config={config.fingerprint if config else ''}",
        f"vae={_vae_fingerprint(cfg.vae, offline) if cfg.vae else ''}",
        f"variant={cfg.variant or ''}",
        f"dtype={dtype}",
    )
    identity = hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()
    return _Resolved(source, family, config, device, dtype, offline, identity)


def model_identity(cfg: ModelConfig, runtime: RuntimeConfig) -> str:
    """The identity ``load_model`` would report, without reading any weights.

    Cheap (file sizes and mtimes, hub commits): it lets a re-run decide that every
    frame is current, and skip loading gigabytes of weights for nothing.
    """
    return _resolve(cfg, runtime).identity


def load_model(cfg: ModelConfig, runtime: RuntimeConfig) -> LoadedModel:
    """Load ``cfg`` on ``runtime.device`` as an img2img pipeline (safety checker off)."""
    resolved = _resolve(cfg, runtime)
    source, config, offline, dtype = (
        resolved.source, resolved.config, resolved.offline, resolved.dtype,
    )  # fmt: skip
    # the VAE's own config comes from the pipeline's configs when the VAE is a single file
    pipeline_configs = config.location if config else source.location
    vae = _load_vae(cfg.vae, pipeline_configs, offline, dtype) if cfg.vae else None

    file_hash = _FileHash(Path(source.location)) if source.kind is WeightLocation.file else None
    try:
        pipe = _load_pipeline(cfg, source, resolved.family, config, vae, offline, dtype)
    except BaseException:
        if file_hash:
            file_hash.cancel()
        raise
    pipe.to(resolved.device)
    own_aligned_memory(pipe.components.values())
    pipe.set_progress_bar_config(disable=True)
    return LoadedModel(
        pipe=pipe,
        family=resolved.family,
        name=_display_name(cfg.path),
        identity=resolved.identity,
        model_hash=file_hash.result() if file_hash else None,
        device=resolved.device,
        dtype=dtype,
    )


# --- inspecting sources ---


def _inspect_model(field: str, value: str, offline: bool) -> _Source:
    path = Path(value).expanduser()
    if path.is_dir():
        index = path / "model_index.json"
        if not index.is_file():
            raise RotoscopeError(
                f"{field} '{value}' is a folder without model_index.json (no diffusers pipeline)",
                "point it at the folder that holds model_index.json, or at a .safetensors file",
            )
        return _Source(
            WeightLocation.folder,
            str(path.resolve()),
            family_of_index(index),
            folder_fingerprint(path),
        )
    if path.is_file():
        if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise RotoscopeError(
                f"{field} '{value}' is not a checkpoint file",
                f"use a {'/'.join(CHECKPOINT_SUFFIXES)} file, a diffusers folder or a hub id",
            )
        keys = _checkpoint_keys(field, path)
        return _Source(
            WeightLocation.file, str(path.resolve()), family_of_keys(keys), file_fingerprint(path)
        )
    if is_hub_id(value):
        index = hub_file(field, value, "model_index.json", offline)
        commit = index.parent.name  # the cache keeps files under snapshots/<commit>/
        return _Source(WeightLocation.hub, value, family_of_index(index), f"hub:{value}@{commit}")
    raise not_found(field, value)


def _checkpoint_keys(field: str, path: Path) -> set[str]:
    """Tensor names of a checkpoint; reading them also proves the file is intact.

    For safetensors only the header is read (and checked against the file size, which
    catches truncated downloads); pickled checkpoints are memory-mapped.
    """
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                return set(handle.keys())
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        while isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        return set(state) if isinstance(state, dict) else set()
    except pickle.UnpicklingError as exc:  # it wanted to run code: never loaded further
        raise refused_pickle(field, path, exc) from exc
    except Exception as exc:  # safetensors/pickle/zip errors have no common base class
        raise RotoscopeError(
            f"{field} '{path}' is not a readable checkpoint ({first_line(exc)})",
            "the file is probably truncated or corrupt: download it again",
        ) from exc


def _config_source(cfg: ModelConfig, family: ModelFamily, offline: bool) -> _Source:
    """The diffusers-format configs (and tokenizers) a single-file checkpoint loads with."""
    if cfg.config:
        config = _inspect_model("model.config", cfg.config, offline)
        if config.kind is WeightLocation.file:
            raise RotoscopeError(
                f"model.config '{cfg.config}' is a checkpoint file",
                "model.config takes a diffusers folder (with model_index.json) or a hub id",
            )
        if config.family is not None and config.family != family:
            raise RotoscopeError(
                f"model.config '{cfg.config}' holds an {FAMILY_NAMES[config.family]} pipeline but "
                f"model.path '{cfg.path}' is an {FAMILY_NAMES[family]} checkpoint",
                "point model.config at a diffusers folder of the same architecture",
            )
        return config
    repo = DEFAULT_CONFIG_REPOS[family]
    try:
        return _inspect_model("model.config", repo, offline)
    except RotoscopeError:
        if not offline:
            raise
        raise RotoscopeError(
            f"model.path '{cfg.path}' is a single-file checkpoint and model.config is not set, "
            "so its configs and tokenizer cannot be found offline",
            f"set model.config to a local diffusers folder of the same architecture, "
            f"for {FAMILY_NAMES[family]} e.g. a download of {repo}",
        ) from None


def _display_name(value: str) -> str:
    """Short name for A1111's "Model:" field: file stem, folder name or repo name."""
    path = Path(value.rstrip("/\\"))
    return path.stem if path.suffix.lower() in CHECKPOINT_SUFFIXES else path.name


# --- loading ---


def _load_pipeline(
    cfg: ModelConfig,
    source: _Source,
    family: ModelFamily,
    config: _Source | None,
    vae: AutoencoderKL | None,
    offline: bool,
    dtype: torch.dtype,
) -> Pipeline:
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    # "Loading pipeline components" bars would break the one-line progress display;
    # hub download bars (huggingface_hub's own) stay, they are worth seeing.
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()  # the text encoders' "Loading weights" bar

    sdxl = family is ModelFamily.sdxl
    cls = StableDiffusionXLImg2ImgPipeline if sdxl else StableDiffusionImg2ImgPipeline
    kwargs: dict[str, Any] = {"torch_dtype": dtype, "local_files_only": offline}
    if vae is not None:
        kwargs["vae"] = vae
    if not sdxl:  # the NSFW checker (and its image processor) is not loaded at all
        kwargs.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    with loading(f"model.path '{cfg.path}'"):
        if source.kind is WeightLocation.file:
            assert config is not None
            return cls.from_single_file(source.location, config=config.location, **kwargs)
        return cls.from_pretrained(source.location, variant=cfg.variant, **kwargs)


def _load_vae(
    value: str, pipeline_configs: str, offline: bool, dtype: torch.dtype
) -> AutoencoderKL:
    """An ``AutoencoderKL`` from ``model.vae``.

    A single-file VAE (as A1111 users have them) takes its config from the pipeline's
    own ``vae/`` config; a folder may be a VAE folder or a whole pipeline folder.
    """
    from diffusers import AutoencoderKL

    field = "model.vae"
    path = Path(value).expanduser()
    with loading(f"{field} '{value}'"):
        if path.is_file():
            if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
                raise RotoscopeError(
                    f"{field} '{value}' is not a checkpoint file", "use a .safetensors VAE"
                )
            _checkpoint_keys(field, path)
            vae = AutoencoderKL.from_single_file(
                str(path),
                config=pipeline_configs,
                subfolder="vae",
                torch_dtype=dtype,
                local_files_only=offline,
            )
            return vae
        if path.is_dir():
            subfolder = None if (path / "config.json").is_file() else "vae"
            if subfolder and not (path / subfolder / "config.json").is_file():
                raise RotoscopeError(
                    f"{field} '{value}' is a folder without config.json or vae/config.json",
                    "point it at a diffusers VAE folder or a .safetensors VAE file",
                )
            return AutoencoderKL.from_pretrained(str(path), subfolder=subfolder, torch_dtype=dtype)
        if not is_hub_id(value):
            raise not_found(field, value)
        return AutoencoderKL.from_pretrained(value, torch_dtype=dtype, local_files_only=offline)


def _vae_fingerprint(value: str, offline: bool) -> str:
    """What identifies ``model.vae``'s weights: file stats, or the hub commit."""
    path = Path(value).expanduser()
    if path.is_file():
        return file_fingerprint(path)
    if path.is_dir():
        return folder_fingerprint(path)
    if not is_hub_id(value):
        raise not_found("model.vae", value)
    return f"hub:{value}@{hub_file('model.vae', value, 'config.json', offline).parent.name}"


class _FileHash:
    """A1111's short model hash (sha256, first 10 hex digits), computed while the model loads.

    Hashing a multi-gigabyte checkpoint takes seconds; on a worker thread it overlaps
    the load, which reads the same file anyway.
    """

    def __init__(self, path: Path) -> None:
        self._stop = threading.Event()
        self._value: str | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 24):
                if self._stop.is_set():
                    return
                digest.update(chunk)
        self._value = digest.hexdigest()[:10]

    def cancel(self) -> None:
        self._stop.set()

    def result(self) -> str | None:
        self._thread.join()
        return self._value
