"""A tiny random-weight Depth Anything model for the 3D camera's tests and demo.

Nothing may be downloaded, so ``animation.depth.model=tiny`` reads a model made here:
transformers' own ``DepthAnythingForDepthEstimation`` (the class Depth Anything V2 loads
as) with a four-layer, 16-wide DINOv2 backbone and a small DPT neck and head, saved with
``save_pretrained`` beside the ``DPTImageProcessor`` config Depth Anything V2 ships
(aspect-keeping resize to multiples of 14, ImageNet normalisation), at 56 pixels instead
of 518. It loads through exactly the code a real Depth Anything V2 folder goes through.

Random weights with transformers' default initialisation give a head output that is
zero almost everywhere (its last ReLU), a flat depth; so the weights are drawn wider and
the head's last bias is a little positive, which leaves a map with structure that
follows the picture, enough for parallax to show in a test or the demo.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pipeline.testing.tiny_models import save_into_place

# Bump when the tiny depth model changes, so builds made by an older version are redone.
DEPTH_FORMAT = 1
SEED = 3
_STAMP = "tiny_depth.json"
_SIZE = 56  # the processor's working size (Depth Anything V2: 518)
_INIT = 0.1  # the weights' standard deviation (transformers' default: 0.02)
_HEAD_BIAS = 0.05


def build_tiny_depth(out_dir: Path) -> Path:
    """Build the tiny depth model as the folder ``out_dir/depth`` (a no-op when a complete
    build is there); return the folder. Deterministic, from :data:`SEED`, in a forked RNG."""
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its "Writing model shards" bar

    out_dir = Path(out_dir)
    folder = out_dir / "depth"
    stamp = out_dir / _STAMP
    if _is_complete(stamp, folder):
        return folder
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    backbone = Dinov2Config(
        hidden_size=16, num_hidden_layers=4, num_attention_heads=2, mlp_ratio=2, patch_size=14,
        image_size=_SIZE, reshape_hidden_states=False, initializer_range=_INIT,
    )  # fmt: skip
    backbone.out_features = ["stage1", "stage2", "stage3", "stage4"]  # the neck reads all four
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 16, 32, 64],
        fusion_hidden_size=16, head_hidden_size=8, patch_size=14, initializer_range=_INIT,
        depth_estimation_type="relative",
    )  # fmt: skip
    processor = DPTImageProcessor(
        do_resize=True, size={"height": _SIZE, "width": _SIZE}, keep_aspect_ratio=True,
        ensure_multiple_of=14, resample=3, do_rescale=True, do_normalize=True,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = DepthAnythingForDepthEstimation(config).eval()
        with torch.no_grad():
            model.head.conv3.bias.fill_(_HEAD_BIAS)

    def save(path: Path) -> None:
        model.save_pretrained(path)
        processor.save_pretrained(path)

    save_into_place(folder, save)
    stamp.write_text(json.dumps({"format": DEPTH_FORMAT}) + "\n")
    return folder


def _is_complete(stamp: Path, folder: Path) -> bool:
    try:
        built = json.loads(stamp.read_text())["format"]
    except (OSError, ValueError, KeyError):
        return False
    return built == DEPTH_FORMAT and (folder / "config.json").is_file()
