"""Tiny SD 1.x and SDXL pipelines, built locally for tests and the demo.

Machines here have no network access to model hubs, so tests and the offline demo need
models that can be made from nothing. These are real diffusers pipelines (same classes,
same folder layout, same loading code as the full-size models) with channel counts
small enough that a 64x64 img2img takes milliseconds on a CPU. The UNet and the text
encoders have random weights; the VAE is constructed by hand (``constructed_vae``) to
encode a picture to its 8x8 block averages and decode it back, like a real VAE at a
coarse grain, so img2img output follows its input (blurred, with the random UNet's
colour blotches on it) and temporal coherence has something to keep coherent. It keeps
four resolution levels so its scale factor is 8, like the real one, and the CLIP
tokenizer gets a hand-written byte-level BPE vocabulary with CLIP's special tokens and
its 77-token context.

Besides the two diffusers folders, each model is also written as one A1111-style
single-file checkpoint (see ``checkpoint_export``), so the single-file path is exercised
too.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import astuple, dataclass
from pathlib import Path

import torch

from pipeline.testing.checkpoint_export import export_sd15_checkpoint, export_sdxl_checkpoint
from pipeline.testing.constructed_vae import constructed_vae

# Bump when the tiny architecture changes, so folders built by an older version are rebuilt.
TINY_FORMAT = 3
SEED = 0
_STAMP = "tiny_models.json"

_BOS = "<|startoftext|>"
_EOS = "<|endoftext|>"
# A few merges so multi-character tokens exist; each result is added to the vocabulary.
_MERGES = (
    "t h",
    "th e</w>",
    "a n",
    "i n",
    "in g</w>",
    "e r</w>",
    "o n</w>",
    "r e",
    "s t",
    "o r",
    "a t</w>",
    "e n",
)
# Text encoder widths. SDXL's two encoders differ in width (768 and 1280 in the real
# model) and diffusers' single-file loader tells their weights apart by it, so the tiny
# ones differ too.
_CLIP_L_WIDTH = 32
_OPEN_CLIP_WIDTH = 48
# The noise schedule SD 1.x and SDXL were trained with, as in their hub scheduler configs.
_TRAINING_BETAS = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
}


@dataclass(frozen=True)
class TinyModels:
    """Where the tiny models are: diffusers folders and their single-file checkpoints.

    A single file loads offline with its folder as ``model.config``.
    """

    sd15: Path
    sd15_single: Path
    sdxl: Path
    sdxl_single: Path


def build_tiny_models(out_dir: Path) -> TinyModels:
    """Build the tiny models under ``out_dir`` (a no-op if a complete build is there).

    Deterministic: weights come from a fixed seed, drawn inside a forked RNG so the
    caller's global torch random state is left alone. Each model is written to a
    temporary name and renamed into place, and a stamp file is written last, so an
    interrupted build is redone rather than half-used.
    """
    out_dir = Path(out_dir)
    paths = TinyModels(
        sd15=out_dir / "sd15",
        sd15_single=out_dir / "sd15.safetensors",
        sdxl=out_dir / "sdxl",
        sdxl_single=out_dir / "sdxl.safetensors",
    )
    stamp = out_dir / _STAMP
    if _is_complete(stamp, paths):
        return paths
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        sd15 = _sd15_pipeline(out_dir)
        save_into_place(paths.sd15, sd15.save_pretrained)
        save_into_place(
            paths.sd15_single,
            lambda path: export_sd15_checkpoint(sd15.unet, sd15.vae, sd15.text_encoder, path),
        )
        sdxl = _sdxl_pipeline(out_dir)
        save_into_place(paths.sdxl, sdxl.save_pretrained)
        save_into_place(
            paths.sdxl_single,
            lambda path: export_sdxl_checkpoint(
                sdxl.unet, sdxl.vae, sdxl.text_encoder, sdxl.text_encoder_2, path
            ),
        )
    stamp.write_text(json.dumps({"format": TINY_FORMAT}) + "\n")
    return paths


def _is_complete(stamp: Path, paths: TinyModels) -> bool:
    try:
        built = json.loads(stamp.read_text()).get("format")
    except (OSError, ValueError):
        return False
    return built == TINY_FORMAT and all(path.exists() for path in astuple(paths))


def save_into_place(target: Path, save: Callable[[Path], object]) -> None:
    """Save to a temporary sibling, then move it over ``target``."""
    partial = target.with_name(target.name + ".partial")
    for leftover in (partial, target):
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink(missing_ok=True)
    save(partial)
    partial.rename(target)


# --- tokenizer ---


def _byte_alphabet() -> list[str]:
    """The 256 characters byte-level BPE uses for the byte values (the GPT-2/CLIP scheme).

    Printable Latin-1 bytes stand for themselves; the others (controls, space, soft
    hyphen...) are shifted above U+00FF so every byte has a visible, unique character.
    """
    printable = {
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), 256),
    }
    alphabet, shifted = [], 0
    for byte in range(256):
        if byte in printable:
            alphabet.append(chr(byte))
        else:
            alphabet.append(chr(256 + shifted))
            shifted += 1
    return alphabet


def _clip_vocabulary() -> tuple[dict[str, int], list[str]]:
    """CLIP's vocabulary layout: bytes, bytes ending a word (``</w>``), merges, specials."""
    alphabet = _byte_alphabet()
    tokens = alphabet + [char + "</w>" for char in alphabet]
    tokens += ["".join(merge.split(" ")) for merge in _MERGES]
    tokens += [_BOS, _EOS]
    return {token: index for index, token in enumerate(tokens)}, list(_MERGES)


def _tokenizer(workdir: Path):
    """A CLIPTokenizer loaded from hand-written vocab.json and merges.txt files."""
    from transformers import CLIPTokenizer

    vocab, merges = _clip_vocabulary()
    source = workdir / "tokenizer.source"
    source.mkdir(parents=True, exist_ok=True)
    (source / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (source / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8"
    )
    tokenizer = CLIPTokenizer.from_pretrained(str(source), model_max_length=77)
    shutil.rmtree(source)
    return tokenizer


# --- models ---


def _text_config(tokenizer, width: int, activation: str):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=tokenizer.model_max_length,
        projection_dim=width,
        hidden_act=activation,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _sd15_pipeline(workdir: Path):
    """SD 1.x layout: CLIP-L-like text encoder, attention on the high-res UNet level, PNDM."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    tokenizer = _tokenizer(workdir)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=_CLIP_L_WIDTH,
        attention_head_dim=4,
    )
    return StableDiffusionPipeline(
        vae=constructed_vae(scaling_factor=0.18215),
        text_encoder=CLIPTextModel(_text_config(tokenizer, _CLIP_L_WIDTH, "quick_gelu")),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=PNDMScheduler(**_TRAINING_BETAS, set_alpha_to_one=False, skip_prk_steps=True),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _sdxl_pipeline(workdir: Path):
    """SDXL layout: two text encoders (the second with a projection for the pooled
    embedding), size/crop conditioning through ``add_embedding``, linear attention
    projections, no attention on the high-res level, Euler."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = _tokenizer(workdir)
    time_embed_dim = 8
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        # both encoders' hidden states, concatenated
        cross_attention_dim=_CLIP_L_WIDTH + _OPEN_CLIP_WIDTH,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        # six size/crop numbers (original size, crop top-left, target size) + pooled text
        projection_class_embeddings_input_dim=6 * time_embed_dim + _OPEN_CLIP_WIDTH,
    )
    return StableDiffusionXLPipeline(
        vae=constructed_vae(scaling_factor=0.13025),
        text_encoder=CLIPTextModel(_text_config(tokenizer, _CLIP_L_WIDTH, "quick_gelu")),
        text_encoder_2=CLIPTextModelWithProjection(
            _text_config(tokenizer, _OPEN_CLIP_WIDTH, "gelu")
        ),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(**_TRAINING_BETAS, timestep_spacing="leading"),
    )
