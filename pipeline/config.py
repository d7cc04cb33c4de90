"""Structured config: the schema every Hydra config group is checked against.

The dataclasses are registered in Hydra's ConfigStore, so an unknown key or a value of
the wrong type fails when the config is composed, before any frame is decoded or any
model loaded. Field comments are the reference for the README's configuration table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


class ResizeMode(Enum):
    """How a frame is brought to the target size when the aspect ratio differs."""

    crop = "crop"  # scale to cover the target, cut the overflow (centred)
    fit = "fit"  # scale to fit inside the target, pad with input.background
    stretch = "stretch"  # scale each axis independently


class OutputFormat(Enum):
    """What the assemble stage writes."""

    mp4 = "mp4"  # H.264 yuv420p, BT.709 tagged, audio as AAC
    webm = "webm"  # VP9, audio as Opus
    gif = "gif"  # palette-optimised GIF, no audio
    images = "images"  # a folder of PNGs (source file names kept for folder input)


class Dtype(Enum):
    """Torch dtype of the model weights; ``auto`` is fp16 on CUDA, fp32 elsewhere."""

    auto = "auto"
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


class ModelFamily(Enum):
    """Architecture family; ``auto`` reads it from the folder or checkpoint."""

    auto = "auto"
    sd15 = "sd15"
    sdxl = "sdxl"


@dataclass
class InputConfig:
    # A video file, a folder of images, or one image.
    path: str = MISSING
    # First frame to use: a frame number (``12``) or a time (``2.5s``, ``00:01:02.5``).
    start: str | None = None
    # Stop before this frame number or time (exclusive); ``None`` reads to the end.
    end: str | None = None
    # Keep every n-th frame of the selected range (1 keeps all).
    every: int = 1
    # Stop after this many selected frames.
    max_frames: int | None = None
    # A single image is repeated this many frames.
    repeat: int = 1
    # Frame rate given to image folders and single images (videos use their own).
    fps: float = 24.0
    # Target size in pixels; one of them alone keeps the aspect ratio. Rounded to 8.
    width: int | None = None
    height: int | None = None
    # Scale factor applied to the source size when width/height are not set.
    scale: float | None = None
    resize_mode: ResizeMode = ResizeMode.crop
    # Colour that transparent pixels are flattened onto (and the pad colour of ``fit``).
    background: str = "#ffffff"


@dataclass
class ModelConfig:
    # A hub id, a local diffusers folder, or a single-file .safetensors/.ckpt checkpoint.
    path: str = MISSING
    family: ModelFamily = ModelFamily.auto
    # For single-file checkpoints: a local diffusers-format folder holding the configs
    # (and tokenizer) of the same architecture, so loading needs no network.
    config: str | None = None
    # Optional separate VAE (hub id, folder or single file).
    vae: str | None = None
    # Weight variant to load from a diffusers folder (for example ``fp16``).
    variant: str | None = None


@dataclass
class OutputConfig:
    format: OutputFormat = OutputFormat.mp4
    # Parent folder of run folders.
    root: str = "outputs"
    # Output frame rate; ``None`` is the source rate divided by ``input.every``.
    fps: float | None = None
    # H.264/VP9 quality (lower is better) and the x264 preset.
    crf: int = 18
    preset: str = "medium"
    # Keep the source video's audio, cut to the selected range.
    audio: bool = True


@dataclass
class RuntimeConfig:
    # ``auto`` picks cuda when available, then mps, then cpu; or name one (``cuda:1``).
    device: str = "auto"
    dtype: Dtype = Dtype.auto
    # Refuse any network access for model files (sets HF_HUB_OFFLINE).
    offline: bool = False
    # Show full tracebacks instead of one-line errors.
    verbose: bool = False
    # Seconds between progress log lines when stderr is not a terminal.
    log_every: float = 10.0


@dataclass
class RunConfig:
    input: InputConfig = field(default_factory=InputConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    # Run folder name under output.root; by default the input's file or folder name.
    name: str = "${run_name:${input.path}}"
    # Stages to run, in order: plan, render, assemble.
    stages: list[str] = field(default_factory=lambda: ["plan", "render", "assemble"])
    prompt: str = ""
    negative_prompt: str = ""
    # diffusers strength: 0 keeps the input frame, 1 ignores it.
    strength: float = 0.5
    guidance_scale: float = 7.0
    steps: int = 20
    # A1111 sampler name ("Euler a", "DPM++ 2M Karras") or its slug (euler_a).
    sampler: str = "Euler a"
    # Locked seed: every frame uses it, through a fresh generator per frame.
    seed: int = 42


STAGES = ("plan", "render", "assemble")


def run_name(input_path: str) -> str:
    """Default run name: the input's stem (``dance.mp4`` -> ``dance``)."""
    path = Path(str(input_path).rstrip("/\\"))
    return path.stem or "run"


def register() -> None:
    """Register the schema and the ``run_name`` resolver (idempotent)."""
    if not OmegaConf.has_resolver("run_name"):
        OmegaConf.register_new_resolver("run_name", run_name)
    ConfigStore.instance().store(name="rotoscope_schema", node=RunConfig)


def to_run_config(cfg: Any) -> RunConfig:
    """Turn a composed DictConfig into the typed dataclass tree."""
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, RunConfig)
    return obj
