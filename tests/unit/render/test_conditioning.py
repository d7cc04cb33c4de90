"""Prompt encoding A1111's way, and embedding blends, on the tiny SD 1.x and SDXL models.

The tiny tokenizer turns a lone letter into one token, so prompts of single letters
have a known token count and position for every word.
"""

from __future__ import annotations

import string

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.config.schema import ModelConfig, ModelFamily, PromptBlend, RuntimeConfig
from pipeline.models.loader import LoadedModel, load_model
from pipeline.render.conditioning import (
    COMMA_BACKTRACK,
    Conditioning,
    PromptEncoder,
    blend,
    split_chunks,
)
from pipeline.testing.tiny_models import TinyModels

FAMILIES = ["sd15", "sdxl"]
CHUNK = 77


@pytest.fixture(scope="module")
def models(tiny_models: TinyModels) -> dict[str, LoadedModel]:
    runtime = RuntimeConfig(device="cpu", offline=True)
    return {
        family: load_model(ModelConfig(path=str(getattr(tiny_models, family))), runtime)
        for family in FAMILIES
    }


def encoder_for(model: LoadedModel) -> PromptEncoder:
    return PromptEncoder(model.pipe, model.family, model.device)


def letters(count: int, start: int = 0) -> str:
    """``count`` one-token words."""
    return " ".join(string.ascii_lowercase[(start + i) % 26] for i in range(count))


def chunks(embeds: torch.Tensor) -> int:
    assert embeds.shape[1] % CHUNK == 0
    return embeds.shape[1] // CHUNK


def encoder_widths(model: LoadedModel) -> list[int]:
    """Feature widths of the text encoders whose hidden states are side by side."""
    if model.family is ModelFamily.sd15:
        return [model.pipe.text_encoder.config.hidden_size]
    return [
        model.pipe.text_encoder.config.hidden_size,
        model.pipe.text_encoder_2.config.hidden_size,
    ]


# --- equivalence with diffusers ---


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("negative", ["blurry, dark", ""])
def test_short_unweighted_prompt_equals_encode_prompt(
    models: dict[str, LoadedModel], family: str, negative: str
) -> None:
    """Under 75 tokens and without weights, the result is diffusers' own, shapes included
    (and for SDXL's empty negative, its zeros)."""
    model = models[family]
    ours = encoder_for(model).encode("a watercolor fox in the snow", negative, do_cfg=True)
    with torch.inference_mode():
        theirs = model.pipe.encode_prompt(
            prompt="a watercolor fox in the snow",
            device=model.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=True,
            negative_prompt=negative or None,
        )
    names = ["prompt_embeds", "negative_prompt_embeds"]
    if family == "sdxl":
        names += ["pooled_prompt_embeds", "negative_pooled_prompt_embeds"]
    assert set(ours.pipeline_kwargs()) == set(names)
    for name, expected in zip(names, theirs, strict=True):
        actual = getattr(ours, name)
        assert actual.shape == expected.shape, name
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6, msg=name)
    if family == "sdxl" and not negative:
        assert not ours.negative_prompt_embeds.any()
        assert not ours.negative_pooled_prompt_embeds.any()


@pytest.mark.parametrize("family", FAMILIES)
def test_without_guidance_no_negative(models: dict[str, LoadedModel], family: str) -> None:
    conditioning = encoder_for(models[family]).encode("a fox", "blurry", do_cfg=False)
    assert conditioning.negative_prompt_embeds is None
    assert conditioning.negative_pooled_prompt_embeds is None
    expected = {"prompt_embeds"} | ({"pooled_prompt_embeds"} if family == "sdxl" else set())
    assert set(conditioning.pipeline_kwargs()) == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_img2img_runs_on_conditionings(models: dict[str, LoadedModel], family: str) -> None:
    """Plain, multi-chunk and blended conditionings all drive a real img2img call."""
    model = models[family]
    encoder = encoder_for(model)
    short = encoder.encode("a watercolor fox", "blurry", do_cfg=True)
    long = encoder.encode(letters(200), "", do_cfg=True)
    morph = blend(*encoder.align(short, long), 0.5, PromptBlend.slerp)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    for conditioning in (short, long, morph):
        with torch.inference_mode():
            result = model.pipe(
                image=image,
                strength=0.5,
                num_inference_steps=4,  # 2 denoising steps at strength 0.5
                guidance_scale=7.0,
                generator=torch.Generator("cpu").manual_seed(0),
                output_type="np",
                **conditioning.pipeline_kwargs(),
            )
        frame = np.asarray(result.images[0])
        assert frame.shape == (64, 64, 3)
        assert np.isfinite(frame).all()


# --- chunking ---


@pytest.mark.parametrize("family", FAMILIES)
def test_long_prompt_is_chunked_not_truncated(models: dict[str, LoadedModel], family: str) -> None:
    """200 words make 75 + 75 + 50 tokens: three chunks, the last one holding the last words."""
    encoder = encoder_for(models[family])
    words = letters(200).split()
    long = encoder.encode(" ".join(words), "", do_cfg=False).prompt_embeds
    assert chunks(long) == 3
    for index, part in enumerate((words[:75], words[75:150], words[150:])):
        alone = encoder.encode(" ".join(part), "", do_cfg=False).prompt_embeds
        torch.testing.assert_close(long[:, index * CHUNK : (index + 1) * CHUNK], alone)
    # the last 50 words really are in there: drop the last one and the last chunk changes
    shorter = encoder.encode(" ".join(words[:-1]), "", do_cfg=False).prompt_embeds
    assert not torch.allclose(long[:, 2 * CHUNK :], shorter[:, 2 * CHUNK :])


@pytest.mark.parametrize("family", FAMILIES)
def test_break_starts_a_new_chunk(models: dict[str, LoadedModel], family: str) -> None:
    encoder = encoder_for(models[family])

    def embeds(prompt: str) -> torch.Tensor:
        return encoder.encode(prompt, "", do_cfg=False).prompt_embeds

    split = embeds("a b BREAK c d")
    assert chunks(split) == 2
    torch.testing.assert_close(split[:, :CHUNK], embeds("a b"))
    torch.testing.assert_close(split[:, CHUNK:], embeds("c d"))
    # an empty chunk between two BREAKs; none after a trailing one
    assert chunks(embeds("a BREAK BREAK b")) == 3
    torch.testing.assert_close(embeds("a BREAK BREAK b")[:, CHUNK : 2 * CHUNK], embeds(""))
    torch.testing.assert_close(embeds("a b BREAK"), embeds("a b"))
    # a full chunk followed by BREAK is not followed by an empty one
    assert chunks(embeds(letters(75) + " BREAK z")) == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_full_chunk_is_cut_after_a_recent_comma(
    models: dict[str, LoadedModel], family: str
) -> None:
    """A1111's comma backtrack: the words after a comma near the end move to the next chunk."""
    encoder = encoder_for(models[family])
    head, tail = letters(60), letters(20, start=5)
    cut = encoder.encode(f"{head}, {tail}", "", do_cfg=False).prompt_embeds  # 60 + 1 + 20 tokens
    assert chunks(cut) == 2
    torch.testing.assert_close(cut[:, CHUNK:], encoder.encode(tail, "", False).prompt_embeds)
    torch.testing.assert_close(cut[:, :CHUNK], encoder.encode(head + ",", "", False).prompt_embeds)


def test_split_chunks_comma_backtrack() -> None:
    comma = 9
    near = [*range(100, 160), comma, *range(200, 220)]  # comma at index 60
    sizes = [len(chunk.tokens) for chunk in split_chunks([(near, 1.0)], 75, comma)]
    assert sizes == [61, 20]
    far_back = 75 - COMMA_BACKTRACK - 1
    far = [*range(100, 100 + far_back), comma, *range(200, 240)]
    sizes = [len(chunk.tokens) for chunk in split_chunks([(far, 1.0)], 75, comma)]
    assert sizes == [75, len(far) - 75]
    # weights travel with their tokens
    moved = split_chunks(
        [(list(range(70)), 1.0), ([comma, 1, 2, 3, 4], 2.0), ([5, 6], 0.5)], 75, comma
    )
    assert moved[0].weights == [1.0] * 70 + [2.0]
    assert moved[1].tokens == [1, 2, 3, 4, 5, 6]
    assert moved[1].weights == [2.0] * 4 + [0.5] * 2


def test_split_chunks_keep_an_embedding_whole() -> None:
    """A tuple of ids (an embedding's vectors) that does not fit starts the next chunk."""
    tokens: list[int | tuple[int, ...]] = [*range(100, 174), (7, 8, 9), 5]
    chunked = split_chunks([(tokens, 1.5)], 75, None)
    assert [len(chunk.tokens) for chunk in chunked] == [74, 4]
    assert chunked[1].tokens == [7, 8, 9, 5]
    assert chunked[1].weights == [1.5] * 4


def test_split_chunks_break() -> None:
    assert [
        chunk.tokens for chunk in split_chunks([([1, 2], 1.0), None, ([3], 1.0)], 75, None)
    ] == [
        [1, 2],
        [3],
    ]
    assert [chunk.tokens for chunk in split_chunks([None], 75, None)] == [[]]
    assert [chunk.tokens for chunk in split_chunks([([1], 1.0), None], 75, None)] == [[1]]
    assert [chunk.tokens for chunk in split_chunks([], 75, None)] == [[]]


# --- weights ---


@pytest.fixture(scope="module")
def meaningful_means(
    tiny_models: TinyModels, models: dict[str, LoadedModel]
) -> dict[str, LoadedModel]:
    """Models whose chunk means are worth restoring, as a trained encoder's are.

    The random SD 1.x encoder's final layer norm has no bias, so its hidden states average
    to zero (float noise) and there is no mean to restore; a bias gives them one. SDXL's
    penultimate states come before that layer norm and have a mean already.
    """
    sd15 = load_model(
        ModelConfig(path=str(tiny_models.sd15)), RuntimeConfig(device="cpu", offline=True)
    )
    with torch.no_grad():
        for name, parameter in sd15.pipe.text_encoder.named_parameters():
            if name.endswith("final_layer_norm.bias"):
                parameter.fill_(0.1)
    return {"sd15": sd15, "sdxl": models["sdxl"]}


def weighted_and_plain(model: LoadedModel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Embeddings of "a (b:1.5) c" and "a b c", and the weight of each of the 77 tokens."""
    encoder = encoder_for(model)
    weighted = encoder.encode("a (b:1.5) c", "", do_cfg=False).prompt_embeds
    plain = encoder.encode("a b c", "", do_cfg=False).prompt_embeds
    token_weights = torch.ones(CHUNK)
    token_weights[2] = 1.5  # BOS, a, b
    return weighted, plain, token_weights


@pytest.mark.parametrize("family", FAMILIES)
def test_weight_scales_the_token_then_restores_the_mean(
    meaningful_means: dict[str, LoadedModel], family: str
) -> None:
    """(b:1.5) multiplies b's embedding by 1.5, then the chunk is rescaled to its unweighted
    mean, separately for each text encoder (SDXL has two, side by side)."""
    model = meaningful_means[family]
    weighted, plain, token_weights = weighted_and_plain(model)
    widths = encoder_widths(model)
    for before, after in zip(plain.split(widths, -1), weighted.split(widths, -1), strict=True):
        scaled = before * token_weights[None, :, None]
        torch.testing.assert_close(after, scaled * (before.mean() / scaled.mean()))
        torch.testing.assert_close(after.mean(), before.mean())
        # b's vector keeps its direction and grows 1.5 times more than its neighbours
        rescale = after[0, 1].norm() / before[0, 1].norm()
        assert rescale != pytest.approx(1.0)
        torch.testing.assert_close(after[0, 2].norm() / before[0, 2].norm(), 1.5 * rescale)
        assert torch.cosine_similarity(after[0, 2], before[0, 2], dim=0) > 0.9999
    if family == "sdxl":  # the pooled embedding is the unweighted text's
        encoder = encoder_for(model)
        torch.testing.assert_close(
            encoder.encode("a (b:1.5) c", "", False).pooled_prompt_embeds,
            encoder.encode("a b c", "", False).pooled_prompt_embeds,
        )


def test_a_zero_mean_is_not_restored(models: dict[str, LoadedModel]) -> None:
    """The random SD 1.x encoder's chunks average to float noise: dividing by that would
    give inf (A1111's arithmetic); the weights apply without rescaling instead."""
    weighted, plain, token_weights = weighted_and_plain(models["sd15"])
    assert abs(plain.mean()) < 1e-6 * plain.abs().mean()
    torch.testing.assert_close(weighted, plain * token_weights[None, :, None])


# --- positive and negative ---


@pytest.mark.parametrize("family", FAMILIES)
def test_shorter_side_is_padded_with_empty_chunks(
    models: dict[str, LoadedModel], family: str
) -> None:
    encoder = encoder_for(models[family])
    empty = encoder.encode("", "", do_cfg=False).prompt_embeds
    for prompt, negative in ((letters(150), "blurry"), ("a fox", letters(150))):
        pair = encoder.encode(prompt, negative, do_cfg=True)
        assert pair.prompt_embeds.shape == pair.negative_prompt_embeds.shape
        assert chunks(pair.prompt_embeds) == 2
        short = pair.negative_prompt_embeds if negative == "blurry" else pair.prompt_embeds
        alone = encoder.encode(negative if negative == "blurry" else prompt, "", False)
        torch.testing.assert_close(short[:, :CHUNK], alone.prompt_embeds)
        torch.testing.assert_close(short[:, CHUNK:], empty)


def test_sdxl_empty_negative_is_zeros_at_any_length(models: dict[str, LoadedModel]) -> None:
    pair = encoder_for(models["sdxl"]).encode(letters(200), "", do_cfg=True)
    assert pair.negative_prompt_embeds.shape == pair.prompt_embeds.shape
    assert chunks(pair.negative_prompt_embeds) == 3
    assert not pair.negative_prompt_embeds.any()
    assert not pair.negative_pooled_prompt_embeds.any()


def test_sd15_empty_negative_is_the_empty_prompt(models: dict[str, LoadedModel]) -> None:
    encoder = encoder_for(models["sd15"])
    pair = encoder.encode("a fox", "", do_cfg=True)
    torch.testing.assert_close(
        pair.negative_prompt_embeds, encoder.encode("", "", False).prompt_embeds
    )


# --- cache ---


@pytest.mark.parametrize("family", FAMILIES)
def test_each_text_is_encoded_once(models: dict[str, LoadedModel], family: str) -> None:
    encoder = encoder_for(models[family])
    first = encoder.encode("a fox", "blurry", do_cfg=True)
    assert encoder.encode_calls == 2
    assert encoder.encode("a fox", "blurry", do_cfg=True) is first
    assert encoder.encode_calls == 2
    encoder.encode("a fox", "dark", do_cfg=True)  # the prompt's encoding is reused
    assert encoder.encode_calls == 3
    encoder.encode("a fox", "", do_cfg=False)
    encoder.encode("blurry", "a fox", do_cfg=True)  # a text is a text, either side
    assert encoder.encode_calls == 3


# --- blends ---


def pair(model: LoadedModel) -> tuple[PromptEncoder, Conditioning, Conditioning]:
    encoder = encoder_for(model)
    return (
        encoder,
        encoder.encode("winter forest, snow", "blurry", do_cfg=True),
        encoder.encode("spring forest, (flowers:1.3)", "dark, noisy", do_cfg=True),
    )


def set_fields(conditioning: Conditioning) -> dict[str, torch.Tensor]:
    return conditioning.pipeline_kwargs()


@pytest.mark.parametrize("family", FAMILIES)
def test_linear_halfway_is_the_mean(models: dict[str, LoadedModel], family: str) -> None:
    _, a, b = pair(models[family])
    halfway = blend(a, b, 0.5, PromptBlend.linear)
    assert set(set_fields(halfway)) == set(set_fields(a))
    for name, value in set_fields(halfway).items():
        torch.testing.assert_close(value, (getattr(a, name) + getattr(b, name)) / 2)
    quarter = blend(a, b, 0.25, PromptBlend.linear)
    torch.testing.assert_close(
        quarter.prompt_embeds, 0.75 * a.prompt_embeds + 0.25 * b.prompt_embeds
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_slerp_halfway_is_at_equal_angles(models: dict[str, LoadedModel], family: str) -> None:
    """Every token vector (and pooled vector) halfway is as far in angle from both keys, and
    as long as their mean length."""
    _, a, b = pair(models[family])
    halfway = blend(a, b, 0.5, PromptBlend.slerp)
    for name, value in set_fields(halfway).items():
        first, second = getattr(a, name), getattr(b, name)
        to_first = torch.cosine_similarity(value, first, dim=-1)
        to_second = torch.cosine_similarity(value, second, dim=-1)
        torch.testing.assert_close(to_first, to_second, msg=name)
        mean_length = (first.norm(dim=-1) + second.norm(dim=-1)) / 2
        torch.testing.assert_close(value.norm(dim=-1), mean_length, msg=name)
        # on the great circle between them: the angle between the keys is split in two
        whole = torch.arccos(torch.cosine_similarity(first, second, dim=-1).clamp(-1, 1))
        half = torch.arccos(to_first.clamp(-1, 1))
        torch.testing.assert_close(half, whole / 2, atol=2e-3, rtol=0, msg=name)


def test_slerp_keeps_unit_vectors_unit() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(1, CHUNK, 16, generator=generator), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(1, CHUNK, 16, generator=generator), dim=-1)
    for weight in (0.1, 0.5, 0.9):
        mixed = blend(Conditioning(a), Conditioning(b), weight, PromptBlend.slerp).prompt_embeds
        torch.testing.assert_close(mixed.norm(dim=-1), torch.ones(1, CHUNK))
        angle = torch.arccos(torch.cosine_similarity(a, b, dim=-1))
        to_a = torch.arccos(torch.cosine_similarity(mixed, a, dim=-1).clamp(-1, 1))
        torch.testing.assert_close(to_a, weight * angle, atol=2e-3, rtol=0)


def test_slerp_falls_back_to_linear_for_parallel_and_zero_vectors() -> None:
    a = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]])
    b = torch.tensor([[[2.0, 4.0, 6.0], [1.0, 1.0, 1.0]]])
    mixed = blend(Conditioning(a), Conditioning(b), 0.5, PromptBlend.slerp).prompt_embeds
    torch.testing.assert_close(mixed, (a + b) / 2)


@pytest.mark.parametrize("mode", [PromptBlend.linear, PromptBlend.slerp])
def test_weights_zero_and_one_are_the_keys(
    models: dict[str, LoadedModel], mode: PromptBlend
) -> None:
    _, a, b = pair(models["sdxl"])
    assert blend(a, b, 0.0, mode) is a
    assert blend(a, b, 1.0, mode) is b


def test_bad_blend_arguments(models: dict[str, LoadedModel]) -> None:
    _, a, b = pair(models["sd15"])
    with pytest.raises(ValueError, match="mode"):
        blend(a, b, 0.5, PromptBlend.none)
    with pytest.raises(ValueError, match="outside"):
        blend(a, b, 1.5, PromptBlend.linear)
    with pytest.raises(ValueError, match="negative_prompt_embeds"):
        blend(a, Conditioning(b.prompt_embeds), 0.5, PromptBlend.linear)


@pytest.mark.parametrize("family", FAMILIES)
def test_align_pads_the_shorter_key(models: dict[str, LoadedModel], family: str) -> None:
    encoder, short, _ = pair(models[family])
    long = encoder.encode(letters(200), "ugly", do_cfg=True)
    with pytest.raises(ValueError, match="align"):
        blend(short, long, 0.5, PromptBlend.linear)
    padded_short, same_long = encoder.align(short, long)
    assert same_long.prompt_embeds is long.prompt_embeds
    assert padded_short.prompt_embeds.shape == long.prompt_embeds.shape
    assert padded_short.negative_prompt_embeds.shape == long.negative_prompt_embeds.shape
    empty = encoder.encode("", "", do_cfg=False).prompt_embeds
    torch.testing.assert_close(padded_short.prompt_embeds[:, :CHUNK], short.prompt_embeds)
    for extra in (1, 2):
        window = slice(extra * CHUNK, (extra + 1) * CHUNK)
        torch.testing.assert_close(padded_short.prompt_embeds[:, window], empty)
        torch.testing.assert_close(padded_short.negative_prompt_embeds[:, window], empty)
    halfway = blend(padded_short, same_long, 0.5, PromptBlend.linear)
    torch.testing.assert_close(
        halfway.prompt_embeds, (padded_short.prompt_embeds + long.prompt_embeds) / 2
    )


def test_align_keeps_sdxl_zero_negatives_zero(models: dict[str, LoadedModel]) -> None:
    encoder = encoder_for(models["sdxl"])
    no_negative = encoder.encode("a fox", "", do_cfg=True)
    long = encoder.encode(letters(200), "blurry", do_cfg=True)
    padded, _ = encoder.align(no_negative, long)
    assert chunks(padded.negative_prompt_embeds) == 3
    assert not padded.negative_prompt_embeds.any()
