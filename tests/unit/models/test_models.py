"""Model loading: folders, A1111 single files, hub ids from the cache, VAEs, errors, identity.

Everything runs on the tiny random-weight models (see ``tiny_models`` in conftest.py),
through the same ``load_model`` a real run uses.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pipeline.config.schema import Dtype, ModelConfig, ModelFamily, RuntimeConfig
from pipeline.errors import RotoscopeError
from pipeline.models.devices import resolve_device, resolve_dtype
from pipeline.models.loader import LoadedModel, load_model
from pipeline.testing.checkpoint_export import UNET_PREFIX, export_vae_checkpoint, unet_to_ldm
from pipeline.testing.tiny_models import TinyModels, build_tiny_models

CPU = RuntimeConfig(device="cpu", offline=True)
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def load(path: Path | str, **options: object) -> LoadedModel:
    return load_model(ModelConfig(path=str(path), **options), CPU)  # type: ignore[arg-type]


def img2img(model: LoadedModel, seed: int) -> np.ndarray:
    """64x64 img2img with 2 denoising steps (4 scheduled, strength 0.5)."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    with torch.inference_mode():
        result = model.pipe(
            prompt="a watercolor fox",
            negative_prompt="blurry",
            image=image,
            strength=0.5,
            num_inference_steps=4,
            guidance_scale=7.0,
            generator=torch.Generator("cpu").manual_seed(seed),
            output_type="np",
        )
    return np.asarray(result.images[0])


def one_line_error(excinfo: pytest.ExceptionInfo[RotoscopeError]) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


@pytest.fixture
def empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, so a developer's real cache cannot change results."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


# --- loading ---


def test_folder_loads_as_sd15_img2img(tiny_models: TinyModels) -> None:
    model = load(tiny_models.sd15)
    assert isinstance(model.pipe, StableDiffusionImg2ImgPipeline)
    assert (model.family.value, model.name, model.model_hash) == ("sd15", "sd15", None)
    assert (model.device, model.dtype) == (torch.device("cpu"), torch.float32)
    assert model.pipe.safety_checker is None
    assert model.pipe.unet.dtype == torch.float32
    assert model.pipe._progress_bar_config == {"disable": True}


def test_sdxl_folder_loads_as_sdxl_img2img(tiny_models: TinyModels) -> None:
    model = load(tiny_models.sdxl)
    assert isinstance(model.pipe, StableDiffusionXLImg2ImgPipeline)
    assert (model.family.value, model.name) == ("sdxl", "sdxl")
    assert img2img(model, seed=1).shape == (64, 64, 3)


def test_single_file_has_the_original_ldm_layout(tiny_models: TinyModels) -> None:
    with safe_open(str(tiny_models.sd15_single), framework="pt") as handle:
        keys = set(handle.keys())
        attn_q = handle.get_tensor("first_stage_model.encoder.mid.attn_1.q.weight")
    assert {key.split(".")[0] for key in keys} == {"model", "first_stage_model", "cond_stage_model"}
    for key in (
        "model.diffusion_model.input_blocks.0.0.weight",
        "model.diffusion_model.input_blocks.1.1.proj_in.weight",
        "model.diffusion_model.input_blocks.2.0.op.weight",
        "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight",
        "model.diffusion_model.output_blocks.0.0.skip_connection.weight",
        "model.diffusion_model.output_blocks.1.1.conv.weight",
        "model.diffusion_model.time_embed.2.bias",
        "model.diffusion_model.out.2.weight",
        "first_stage_model.encoder.down.0.block.0.conv1.weight",
        "first_stage_model.decoder.up.3.upsample.conv.weight",
        "first_stage_model.quant_conv.weight",
        "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
    ):
        assert key in keys, key
    assert attn_q.ndim == 4  # LDM's AttnBlock uses 1x1 convs


def test_unet_export_round_trips_at_real_sd15_depth(tmp_path: Path) -> None:
    """Four levels of two res blocks, as SD 1.x has: 12 input and 12 output blocks."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=2,
        norm_num_groups=4,
        cross_attention_dim=8,
        attention_head_dim=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    )
    unet.save_pretrained(tmp_path / "unet")
    checkpoint = {UNET_PREFIX + key: value for key, value in unet_to_ldm(unet).items()}
    assert "model.diffusion_model.output_blocks.11.1.proj_out.weight" in checkpoint
    assert "model.diffusion_model.output_blocks.8.2.conv.weight" in checkpoint  # an upsampler
    loaded = UNet2DConditionModel.from_single_file(
        checkpoint, config=str(tmp_path), subfolder="unet"
    )
    expected = unet.state_dict()
    assert all(torch.equal(tensor, expected[key]) for key, tensor in loaded.state_dict().items())
    assert loaded.state_dict().keys() == expected.keys()


def test_sdxl_single_file_has_the_original_layout(tiny_models: TinyModels) -> None:
    with safe_open(str(tiny_models.sdxl_single), framework="pt") as handle:
        keys = set(handle.keys())
        in_proj = handle.get_tensor(
            "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight"
        )
    for key in (
        "model.diffusion_model.label_emb.0.0.weight",
        "model.diffusion_model.input_blocks.3.1.transformer_blocks.0.attn1.to_q.weight",
        "conditioner.embedders.0.transformer.text_model.encoder.layers.1.mlp.fc2.bias",
        "conditioner.embedders.1.model.text_projection",
        "conditioner.embedders.1.model.ln_final.weight",
        "first_stage_model.decoder.mid.attn_1.proj_out.weight",
    ):
        assert key in keys, key
    assert in_proj.shape[0] == 3 * in_proj.shape[1]  # q, k and v stacked


@pytest.mark.parametrize(
    ("family", "parts"),
    [
        ("sd15", ("unet", "vae", "text_encoder")),
        ("sdxl", ("unet", "vae", "text_encoder", "text_encoder_2")),
    ],
)
def test_single_file_loads_the_same_weights_and_images_as_the_folder(
    tiny_models: TinyModels, family: str, parts: tuple[str, ...]
) -> None:
    folder_path = getattr(tiny_models, family)
    folder = load(folder_path)
    single = load(getattr(tiny_models, f"{family}_single"), config=str(folder_path))
    assert type(single.pipe) is type(folder.pipe)
    assert (single.family.value, single.name) == (family, family)
    for part in parts:
        expected = getattr(folder.pipe, part).state_dict()
        loaded = getattr(single.pipe, part).state_dict()
        assert loaded.keys() == expected.keys(), part
        for key, tensor in expected.items():
            assert torch.equal(loaded[key], tensor), f"{part}.{key}"
    np.testing.assert_array_equal(img2img(single, seed=3), img2img(folder, seed=3))


# The SDXL comparison, in a fresh process whose MKL runs its SSE4.2 kernels: there a
# one-row matmul's low bits depend on the weight's address, which differs between the
# memory-mapped folder load and the single-file conversion unless the loader aligns them.
ALIGNMENT_CHECK = """
import sys
import numpy as np
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from test_models import img2img, load
folder, single = Path(sys.argv[1]), Path(sys.argv[2])
a = img2img(load(single, config=str(folder)), seed=3)
b = img2img(load(folder), seed=3)
print(float(np.abs(a.astype(float) - b.astype(float)).max()))
"""


@pytest.mark.slow
def test_single_file_equals_folder_on_alignment_sensitive_cpu_kernels(
    tiny_models: TinyModels,
) -> None:
    env = {**os.environ, "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "OMP_NUM_THREADS": "1"}
    tests = Path(__file__).parent
    args = [str(tiny_models.sdxl), str(tiny_models.sdxl_single), str(tests)]
    result = subprocess.run(
        [sys.executable, "-c", ALIGNMENT_CHECK, *args],
        env=env, capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    assert float(result.stdout.split()[-1]) == 0.0


def test_loaded_weights_get_aligned_memory_of_their_own() -> None:
    from pipeline.models.weights import own_aligned_memory

    storage = torch.arange(40, dtype=torch.float32)
    layer = torch.nn.Linear(4, 4, bias=False)
    layer.weight.data = storage[(64 - storage.data_ptr() % 64) // 4 + 2 :][:16].view(4, 4)
    expected = layer.weight.detach().clone()
    assert layer.weight.data_ptr() % 64 == 8
    own_aligned_memory([layer, "not a module"])
    assert layer.weight.data_ptr() % 64 == 0
    assert torch.equal(layer.weight, expected)


def test_single_file_model_hash_is_a1111_short_sha256(tiny_models: TinyModels) -> None:
    single = load(tiny_models.sd15_single, config=str(tiny_models.sd15))
    expected = hashlib.sha256(tiny_models.sd15_single.read_bytes()).hexdigest()[:10]
    assert single.model_hash == expected


def test_pickled_ckpt_checkpoint_loads(tiny_models: TinyModels, tmp_path: Path) -> None:
    ckpt = tmp_path / "old-style.ckpt"
    torch.save({"state_dict": load_file(str(tiny_models.sd15_single))}, ckpt)
    model = load(ckpt, config=str(tiny_models.sd15))
    assert (model.family.value, model.name) == ("sd15", "old-style")
    expected = load(tiny_models.sd15).pipe.unet.state_dict()
    assert all(torch.equal(t, expected[k]) for k, t in model.pipe.unet.state_dict().items())


def test_hub_id_loads_from_the_local_cache_offline(
    tiny_models: TinyModels, empty_hub_cache: Path
) -> None:
    repo = empty_hub_cache / "models--rotoscope-test--tiny-sd15"
    shutil.copytree(tiny_models.sd15, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    model = load("rotoscope-test/tiny-sd15")
    assert (model.family.value, model.name, model.model_hash) == ("sd15", "tiny-sd15", None)
    assert model.identity == load("rotoscope-test/tiny-sd15").identity
    (repo / "refs" / "main").write_text(COMMIT[::-1])
    shutil.copytree(tiny_models.sd15, repo / "snapshots" / COMMIT[::-1])
    assert load("rotoscope-test/tiny-sd15").identity != model.identity  # a new revision


def test_runtime_offline_switches_the_hub_client_offline(
    tiny_models: TinyModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    load(tiny_models.sd15)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True


# --- VAE ---


def test_vae_from_folder_and_from_a1111_single_file(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    base = load(tiny_models.sd15)
    vae_file = tmp_path / "tiny.vae.safetensors"
    export_vae_checkpoint(base.pipe.vae, vae_file)
    with safe_open(str(vae_file), framework="pt") as handle:
        assert "encoder.mid.attn_1.k.weight" in set(handle.keys())
    expected = base.pipe.vae.state_dict()
    identities = {base.identity}
    for vae in (tiny_models.sd15 / "vae", tiny_models.sd15, vae_file):
        model = load(tiny_models.sd15, vae=str(vae))
        loaded = model.pipe.vae.state_dict()
        assert all(torch.equal(loaded[key], tensor) for key, tensor in expected.items()), vae
        identities.add(model.identity)
    assert len(identities) == 4  # the VAE is part of the identity


# --- family detection ---


@pytest.mark.parametrize(
    ("keys", "family"),
    [
        (
            {"model.diffusion_model.input_blocks.0.0.weight", "cond_stage_model.transformer.x"},
            "sd15",
        ),
        (
            {"model.diffusion_model.x", "conditioner.embedders.1.model.transformer.resblocks.0.x"},
            "sdxl",
        ),
        ({"model.diffusion_model.label_emb.0.0.weight"}, "sdxl"),
        ({"lora_unet_down_blocks_0.alpha"}, None),
    ],
)
def test_family_from_checkpoint_keys(keys: set[str], family: str | None) -> None:
    from pipeline.models.family import family_of_keys

    assert family_of_keys(keys) == (ModelFamily(family) if family else None)


def test_family_override_loads_a_folder_of_unknown_class(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    folder = tmp_path / "custom"
    shutil.copytree(tiny_models.sd15, folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(
        json.dumps({**index, "_class_name": "MyStudioPipeline"})
    )
    with pytest.raises(RotoscopeError, match=r"not a Stable Diffusion 1\.x/2\.x or SDXL model"):
        load(folder)
    assert load(folder, family=ModelFamily.sd15).family is ModelFamily.sd15


# --- identity ---


def test_identity_is_stable_and_tracks_the_weights(tiny_models: TinyModels, tmp_path: Path) -> None:
    first, again = load(tiny_models.sd15), load(tiny_models.sd15)
    assert first.identity == again.identity
    others = {
        load(tiny_models.sd15_single, config=str(tiny_models.sd15)).identity,
        load(tiny_models.sdxl).identity,
    }
    assert first.identity not in others and len(others) == 2
    copy = tmp_path / "copy"
    shutil.copytree(tiny_models.sd15, copy)
    before = load(copy).identity
    weights = copy / "unet" / "diffusion_pytorch_model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert load(copy).identity != before


# --- determinism ---


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_same_seed_same_pixels_other_seed_other_pixels(
    tiny_models: TinyModels, family: str
) -> None:
    model = load(getattr(tiny_models, family))
    first, again, other = img2img(model, seed=7), img2img(model, seed=7), img2img(model, seed=8)
    assert first.shape == (64, 64, 3) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).mean() > 0.01


def test_tiny_build_is_deterministic_and_reused(tiny_models: TinyModels, tmp_path: Path) -> None:
    rebuilt = build_tiny_models(tmp_path / "again")
    for name in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert (rebuilt.sd15 / name).read_bytes() == (tiny_models.sd15 / name).read_bytes()
    stamp = rebuilt.sd15 / "unet" / "diffusion_pytorch_model.safetensors"
    mtime = stamp.stat().st_mtime_ns
    assert build_tiny_models(tmp_path / "again") == rebuilt
    assert stamp.stat().st_mtime_ns == mtime  # a complete build is not redone


def test_tiny_tokenizer_is_clip_shaped(tiny_models: TinyModels) -> None:
    tokenizer = load(tiny_models.sd15).pipe.tokenizer
    ids = tokenizer("the cat", padding="max_length").input_ids
    assert tokenizer.model_max_length == 77 and len(ids) == 77
    # bytes, bytes ending a word, and the hand-written merges "th e</w>" and "a t</w>"
    assert tokenizer.convert_ids_to_tokens(ids[:5]) == [
        "<|startoftext|>", "the</w>", "c", "at</w>", "<|endoftext|>"
    ]  # fmt: skip
    assert ids[5:] == [tokenizer.pad_token_id] * 72


# --- errors: one line naming the setting and the fix ---


def test_missing_tiny_folder_says_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RotoscopeError) as excinfo:
        load("models/tiny/sd15")
    assert one_line_error(excinfo) == (
        "model.path 'models/tiny/sd15' not found "
        "(build the offline demo models with: python scripts/make_tiny_models.py)"
    )


def test_missing_local_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(RotoscopeError) as excinfo:
        load(tmp_path / "nothing.safetensors")
    assert "not found" in one_line_error(excinfo)


def test_folder_without_model_index(tmp_path: Path) -> None:
    with pytest.raises(RotoscopeError) as excinfo:
        load(tmp_path)
    assert "folder without model_index.json" in one_line_error(excinfo)


def test_single_file_without_config_offline(tiny_models: TinyModels, empty_hub_cache: Path) -> None:
    with pytest.raises(RotoscopeError) as excinfo:
        load(tiny_models.sd15_single)
    assert "model.config is not set" in one_line_error(excinfo)


def test_single_file_with_config_of_other_family(tiny_models: TinyModels) -> None:
    with pytest.raises(RotoscopeError) as excinfo:
        load(tiny_models.sd15_single, config=str(tiny_models.sdxl))
    assert "holds an SDXL pipeline" in one_line_error(excinfo)


def test_single_file_of_unknown_architecture(tiny_models: TinyModels, tmp_path: Path) -> None:
    lora = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down.alpha": torch.ones(1)}, str(lora))
    with pytest.raises(RotoscopeError) as excinfo:
        load(lora, config=str(tiny_models.sd15))
    assert "not a Stable Diffusion" in one_line_error(excinfo)


def test_hub_id_not_in_cache_offline(empty_hub_cache: Path) -> None:
    with pytest.raises(RotoscopeError) as excinfo:
        load("rotoscope-test/not-downloaded")
    assert "not in the local Hugging Face cache" in one_line_error(excinfo)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_safetensors(tiny_models: TinyModels, tmp_path: Path, damage: str) -> None:
    broken = tmp_path / "broken.safetensors"
    data = tiny_models.sd15_single.read_bytes()
    broken.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x13" * 4096)
    with pytest.raises(RotoscopeError) as excinfo:
        load(broken, config=str(tiny_models.sd15))
    assert "not a readable checkpoint" in one_line_error(excinfo)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_device() -> None:
    with pytest.raises(RotoscopeError) as excinfo:
        resolve_device("cuda:1")
    assert "runtime.device 'cuda:1' is not available" in one_line_error(excinfo)
    with pytest.raises(RotoscopeError, match="not a device name"):
        resolve_device("gpu")


def test_device_and_dtype_choice() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cuda", "mps", "cpu"}
    assert resolve_dtype(Dtype.auto, torch.device("cpu")) == torch.float32
    assert resolve_dtype(Dtype.auto, torch.device("cuda")) == torch.float16
    assert resolve_dtype(Dtype.bfloat16, torch.device("cpu")) == torch.bfloat16


def test_without_a_network_a_hub_id_is_one_line_at_once(
    empty_hub_cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Not offline by configuration, but the hub cannot be reached: the client goes offline
    after one refused connection, instead of five retries with back-off per file."""
    import huggingface_hub.constants

    from pipeline.models import weights
    from pipeline.models.controlnets import controlnet_identity

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused
    weights.hub_unreachable.cache_clear()
    try:
        with pytest.raises(RotoscopeError) as excinfo:
            controlnet_identity("lllyasviel/control_v11p_sd15_canny")
    finally:
        weights.hub_unreachable.cache_clear()
    message = one_line_error(excinfo)
    assert "the hub cannot be reached (Connection refused)" in message
    assert "hf download lllyasviel/control_v11p_sd15_canny" in message
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True and "Retrying" not in caplog.text
