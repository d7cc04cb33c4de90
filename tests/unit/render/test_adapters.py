"""LoRAs, textual inversion, CLIP skip and weight-file safety, on the tiny models with the
tiny adapters built by pipeline.testing.tiny_adapters (the real loading code)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from support.traps import save_trap

from pipeline.config.schema import ModelConfig, ModelFamily, RuntimeConfig
from pipeline.errors import RotoscopeError
from pipeline.models.loader import LoadedModel, load_model
from pipeline.models.safe_load import load_weights
from pipeline.plan.networks import Networks
from pipeline.plan.rows import PlanRow
from pipeline.render.adapters import Adapters
from pipeline.render.conditioning import PromptEncoder, TextSettings
from pipeline.render.renderer import Renderer
from pipeline.testing.tiny_adapters import TinyAdapters
from pipeline.testing.tiny_models import TinyModels

IMAGE = np.full((64, 64, 3), 120, np.uint8)
IMAGE[16:48, 16:48] = (200, 60, 30)


def load(tiny_models: TinyModels, family: str) -> LoadedModel:
    return load_model(ModelConfig(path=str(getattr(tiny_models, family))), RuntimeConfig("cpu"))


def networks_of(adapters: TinyAdapters, loras: Path | None = None) -> Networks:
    return Networks(str(loras or adapters.loras), str(adapters.embeddings))


def row(networks: Networks, prompt: str, negative: str = "", **changes: object) -> PlanRow:
    """A plan row for ``prompt``, its LoRA and embedding fields resolved by the plan's code."""
    base = dict(
        index=0, prompt=prompt, negative_prompt=negative, strength=0.6, guidance_scale=7.0,
        steps=4, sampler="Euler", seed=3, width=64, height=64,
    )  # fmt: skip
    base.update(networks.row_fields(prompt, negative))
    base.update(changes)
    return PlanRow(**base)  # type: ignore[arg-type]


def renderer_for(
    model: LoadedModel, rows: list[PlanRow], networks: Networks, fuse: bool = True
) -> Renderer:
    return Renderer(model, adapters=Adapters(model, rows, networks, fuse_loras=fuse))


def difference(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


# --- LoRA ---


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
@pytest.mark.parametrize("kind", ["kohya", "diffusers"])
def test_both_lora_formats_load_and_weights_matter(
    tiny_models: TinyModels, tiny_adapters: TinyAdapters, family: str, kind: str
) -> None:
    """A kohya and a diffusers file each load through diffusers; weight 0 (a frame without
    the LoRA) is exactly the model without it, 0.5 and 1 differ from it and each other."""
    networks = networks_of(tiny_adapters)
    name = f"{family}_{kind}"
    rows = [row(networks, f"a cat <lora:{name}:{w}>") for w in (1, 0.5, 0)]
    assert [r.loras for r in rows] == [{name: 1.0}, {name: 0.5}, None]
    plain = Renderer(load(tiny_models, family)).render(rows[2], IMAGE)
    renderer = renderer_for(load(tiny_models, family), rows, networks)
    assert renderer.adapters.loras.adapters == {name: "lora0"}  # varying: not fused
    full, half, none = (renderer.render(r, IMAGE) for r in rows)
    assert np.array_equal(none, plain)
    assert difference(full, plain) > 10 and difference(half, plain) > 5
    assert difference(full, half) > 5
    assert renderer.render(rows[0], IMAGE).tobytes() == full.tobytes()  # deterministic


def test_lora_weight_reaches_the_layers_of_the_halfway_frame(
    tiny_models: TinyModels, tiny_adapters: TinyAdapters
) -> None:
    from peft.tuners.lora import LoraLayer

    networks = networks_of(tiny_adapters)
    halfway = row(networks, "a cat", loras={"sd15_kohya": 0.4})
    rows = [row(networks, "a cat <lora:sd15_kohya:0.8>"), halfway]
    renderer = renderer_for(load(tiny_models, "sd15"), rows, networks)
    assert renderer.adapters.settings(halfway).lora == (("sd15_kohya", 0.4),)
    layer = next(m for m in renderer.pipe.unet.modules() if isinstance(m, LoraLayer))
    # kohya alpha 2 over rank 4: a scale of 0.5 per unit of weight
    assert layer.scaling["lora0"] == pytest.approx(0.4 * 0.5)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_fused_and_unfused_give_the_same_frame(
    tiny_models: TinyModels, tiny_adapters: TinyAdapters, family: str
) -> None:
    networks = networks_of(tiny_adapters)
    rows = [row(networks, f"a cat <lora:{family}_kohya:0.7>", seed=seed) for seed in (1, 2)]
    fused = renderer_for(load(tiny_models, family), rows, networks, fuse=True)
    assert fused.adapters.loras.fused == {f"{family}_kohya": 0.7}
    assert fused.adapters.loras.adapters == {}
    unfused = renderer_for(load(tiny_models, family), rows, networks, fuse=False)
    for r in rows:
        assert difference(fused.render(r, IMAGE), unfused.render(r, IMAGE)) <= 1


@pytest.mark.parametrize(
    ("family", "lora", "needle"),
    [
        ("sd15", "sdxl_kohya", "is an SDXL LoRA but the model is SD 1.x/2.x"),
        ("sdxl", "sd15_diffusers", "32-wide text embeddings but the model is SDXL"),
    ],
)
def test_a_lora_for_another_family_is_named_as_such(
    tiny_models: TinyModels, tiny_adapters: TinyAdapters, family: str, lora: str, needle: str
) -> None:
    networks = networks_of(tiny_adapters)
    with pytest.raises(RotoscopeError) as info:
        Adapters(load(tiny_models, family), [row(networks, f"<lora:{lora}:1>")], networks)
    assert needle in str(info.value) and f"LoRA '{lora}'" in str(info.value)


def test_infotext_has_a1111_lora_and_ti_hashes(
    tiny_models: TinyModels, tiny_adapters: TinyAdapters
) -> None:
    networks = networks_of(tiny_adapters)
    r = row(networks, "a cat, sd15_style <lora:sd15_kohya:0.8>")
    adapters = Adapters(load(tiny_models, "sd15"), [r], networks)
    encoder = PromptEncoder(adapters.loras.pipe, ModelFamily.sd15, torch.device("cpu"))
    adapters.install_embeddings(encoder)
    entries = dict(adapters.infotext(r))
    assert set(entries) == {"Lora hashes", "TI hashes"}
    name, digest = entries["Lora hashes"].split(": ")
    assert name == "sd15_kohya" and len(digest) == 12 and int(digest, 16) >= 0
    assert entries["TI hashes"].startswith("sd15_style: ")


# --- textual inversion ---


@pytest.mark.parametrize(
    ("family", "word"), [("sd15", "sd15_style"), ("sd15", "sd15_learned"), ("sdxl", "sdxl_style")]
)
def test_an_embedding_name_changes_the_output(
    tiny_models: TinyModels, tiny_adapters: TinyAdapters, family: str, word: str
) -> None:
    """A1111 .pt, diffusers .bin and SDXL .safetensors files; without the file the word is
    plain text (as in A1111), which renders differently."""
    networks = networks_of(tiny_adapters)
    used = row(networks, f"a cat, {word}")
    assert list(used.network_files or {}) == [f"embedding:{word}"]
    renderer = renderer_for(load(tiny_models, family), [used], networks)
    as_text = replace(used, network_files=None)
    assert difference(renderer.render(used, IMAGE), renderer.render(as_text, IMAGE)) > 5


def embedding_equal_to(model: LoadedModel, text: str, path: Path) -> None:
    """Write an embedding whose vectors are the token embeddings of ``text``'s tokens."""
    vectors = []
    encoders = [model.pipe.text_encoder] + (
        [model.pipe.text_encoder_2] if model.family is ModelFamily.sdxl else []
    )
    ids = model.pipe.tokenizer(text, add_special_tokens=False).input_ids
    for encoder in encoders:
        vectors.append(encoder.get_input_embeddings().weight[ids].detach().clone())
    names = ("clip_l", "clip_g") if len(vectors) == 2 else ("emb",)
    data = dict(zip(names, vectors, strict=True))
    save_file(data, str(path))


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_embedding_vectors_stand_where_the_name_is(
    tiny_models: TinyModels, tmp_path: Path, family: str
) -> None:
    """An embedding holding the token vectors of "x y" encodes exactly like "x y": weights
    included, and SDXL's pooled embedding still taken at the end token even with the
    legacy CLIP config (eos_token_id 2) real SDXL encoders have."""
    model = load(tiny_models, family)
    embeddings = tmp_path / "embeddings"
    embeddings.mkdir()
    embedding_equal_to(model, "x y", embeddings / "pair.safetensors")
    if family == "sdxl":
        model.pipe.text_encoder_2.text_model.eos_token_id = 2
    networks = Networks(str(tmp_path / "none"), str(embeddings))
    r = row(networks, "a pair, (pair:1.3) b")
    renderer = renderer_for(model, [r], networks)
    settings = renderer.adapters.settings(r)
    assert settings.embeddings == {"pair"}
    ours = renderer.prompts.encode("a pair, (pair:1.3) b", "", False, settings)
    reference = renderer.prompts.encode("a x y, (x y:1.3) b", "", False, TextSettings())
    torch.testing.assert_close(ours.prompt_embeds, reference.prompt_embeds, rtol=0, atol=1e-6)
    if family == "sdxl":
        torch.testing.assert_close(
            ours.pooled_prompt_embeds, reference.pooled_prompt_embeds, rtol=0, atol=1e-6
        )


def test_embedding_vectors_never_split_across_chunks(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    """74 one-token words leave one slot in the first chunk: a two-vector embedding moves
    to the second chunk whole, as in A1111."""
    model = load(tiny_models, "sd15")
    (tmp_path / "e").mkdir()
    embedding_equal_to(model, "x y", tmp_path / "e" / "pair.safetensors")
    networks = Networks(str(tmp_path / "none"), str(tmp_path / "e"))
    words = " ".join("abcdefghijklmnopqrstuvw"[i % 23] for i in range(74))
    r = row(networks, f"{words} pair")
    renderer = renderer_for(model, [r], networks)
    ours = renderer.prompts.encode(r.prompt, "", False, renderer.adapters.settings(r))
    reference = renderer.prompts.encode(f"{words} BREAK x y", "", False)
    assert ours.prompt_embeds.shape[1] == 2 * 77
    torch.testing.assert_close(ours.prompt_embeds, reference.prompt_embeds, rtol=0, atol=1e-6)


def test_an_embedding_for_another_family_is_skipped_with_a_warning(
    tiny_models: TinyModels, tiny_adapters: TinyAdapters, caplog: pytest.LogCaptureFixture
) -> None:
    networks = networks_of(tiny_adapters)
    r = row(networks, "a cat, sdxl_style")
    with caplog.at_level(logging.WARNING, logger="rotoscope"):
        renderer = renderer_for(load(tiny_models, "sd15"), [r], networks)
    assert "embedding 'sdxl_style'" in caplog.text and "read as words" in caplog.text
    assert "is an SDXL embedding (vectors for two text encoders" in caplog.text
    assert renderer.adapters.settings(r).embeddings == frozenset()
    r = row(networks, "a cat, sd15_style")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rotoscope"):
        renderer = renderer_for(load(tiny_models, "sdxl"), [r], networks)
    # it used to say "32-wide vectors, which fit no text encoder of this model (32/48 wide)"
    assert (
        "is an SD 1.x/2.x embedding (one 32-wide vector set), and this SDXL model needs "
        "one for each of its two text encoders (32 and 48 wide)" in caplog.text
    )


# --- CLIP skip ---


def test_clip_skip(tiny_models: TinyModels) -> None:
    """SD 1.x: 2 differs from 1. SDXL already conditions on the penultimate layer, so 1
    and 2 are the same; beyond the encoder's depth is one line."""
    sd15 = Renderer(load(tiny_models, "sd15")).prompts
    one = sd15.encode("a cat", "", False, TextSettings(clip_skip=1)).prompt_embeds
    two = sd15.encode("a cat", "", False, TextSettings(clip_skip=2)).prompt_embeds
    assert not torch.allclose(one, two)
    sdxl = Renderer(load(tiny_models, "sdxl")).prompts
    torch.testing.assert_close(
        sdxl.encode("a cat", "", False, TextSettings(clip_skip=1)).prompt_embeds,
        sdxl.encode("a cat", "", False, TextSettings(clip_skip=2)).prompt_embeds,
    )
    with pytest.raises(RotoscopeError, match="clip_skip=3 but the model's text encoder has 2"):
        sd15.encode("a cat", "", False, TextSettings(clip_skip=3))


def test_clip_skip_2_renders_differently(tiny_models: TinyModels) -> None:
    renderer = Renderer(load(tiny_models, "sd15"))
    plain = PlanRow(0, "a cat", "", 0.6, 7.0, 4, "Euler", 3, 64, 64)
    skipped = replace(plain, clip_skip=2)
    assert difference(renderer.render(plain, IMAGE), renderer.render(skipped, IMAGE)) > 5


# --- safety ---


@pytest.mark.parametrize("suffix", [".pt", ".ckpt", ".bin"])
def test_a_booby_trapped_pickle_never_runs(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "pwned"
    trap = tmp_path / f"trap{suffix}"
    save_trap(trap, marker, lambda bomb: {"string_to_param": {"*": torch.zeros(1, 4)}, "x": bomb})
    with pytest.raises(RotoscopeError) as info:
        load_weights(trap, "embedding 'trap'")
    assert not marker.exists()
    message = str(info.value)
    assert "would run code to load, so it is refused" in message and str(trap) in message
    assert "posix.system" in message or "os.system" in message


def test_trapped_lora_embedding_and_checkpoint_are_refused(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "loras").mkdir()
    (tmp_path / "embeddings").mkdir()
    save_trap(tmp_path / "loras" / "evil.ckpt", marker, lambda bomb: {"lora_unet_x.alpha": bomb})
    save_trap(tmp_path / "embeddings" / "evil_word.pt", marker, lambda bomb: {"emb": bomb})
    networks = Networks(str(tmp_path / "loras"), str(tmp_path / "embeddings"))
    model = load(tiny_models, "sd15")
    for prompt in ("<lora:evil:1>", "an evil_word"):
        with pytest.raises(RotoscopeError, match="would run code to load"):
            Adapters(model, [row(networks, prompt)], networks)
    save_trap(tmp_path / "model.ckpt", marker, lambda bomb: {"state_dict": {"x": bomb}})
    with pytest.raises(RotoscopeError, match=r"model\.path .* would run code to load"):
        load_model(
            ModelConfig(path=str(tmp_path / "model.ckpt"), config=str(tiny_models.sd15)),
            RuntimeConfig("cpu"),
        )
    assert not marker.exists()
