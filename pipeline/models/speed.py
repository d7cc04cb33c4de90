"""Throughput settings of a loaded model: what makes the same frames come out faster.

None of these is part of a frame's key (like the batch size, they change how the
arithmetic is scheduled, not what is computed), and each is chosen where it pays:

* **SDPA attention.** diffusers' default attention processor on torch 2 calls
  ``scaled_dot_product_attention``, which dispatches to fused flash / memory-efficient
  kernels on CUDA. Nothing to switch on; it is reported so a log shows it is in use.
* **channels_last** memory format for the UNet and VAE on CUDA, where cuDNN's
  convolutions (tensor cores, fp16/bf16) are fastest in NHWC. Not on the CPU, where
  it changes which oneDNN kernels run, and with them the last bits of the result.
* **torch.compile** of the UNet, with ``runtime.compile=true`` (off by default): it
  costs a compilation (about a minute on a GPU, per batch shape) before the first frame
  and pays back on long jobs. Left off with cross-frame attention, whose recording
  hooks would break the compiled graph at every layer.

Half precision (``runtime.dtype``, fp16 by default on CUDA) is set when the model loads.
"""

from __future__ import annotations

import logging

import torch

from pipeline.models.loader import LoadedModel

log = logging.getLogger("rotoscope")


def tune_for_speed(model: LoadedModel, compile_unet: bool, hooks_attention: bool) -> list[str]:
    """Apply the settings that fit ``model``'s device; the names of those in effect.

    ``hooks_attention``: the run replaces the UNet's attention processors (temporal
    coherence), so compiling it would not pay.
    """
    pipe = model.pipe
    applied = []
    if uses_sdpa(pipe.unet):
        applied.append("SDPA attention")
    if model.device.type == "cuda":
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        applied.append("channels_last")
    if compile_unet and hooks_attention:
        log.info("runtime.compile: not with cross-frame attention (its hooks break the graph)")
    elif compile_unet:
        pipe.unet = torch.compile(pipe.unet)
        applied.append("torch.compile (UNet; the first frames of each batch size compile it)")
    return applied


def uses_sdpa(unet: torch.nn.Module) -> bool:
    """Whether every attention layer of ``unet`` runs torch's scaled_dot_product_attention."""
    processors = getattr(unet, "attn_processors", {})
    return bool(processors) and all(
        type(processor).__name__ == "AttnProcessor2_0" for processor in processors.values()
    )
