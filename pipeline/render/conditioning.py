"""Prompt text to the embeddings diffusers' img2img call takes, the way A1111 makes them.

``pipe.encode_prompt`` truncates at 77 tokens and knows no attention syntax, so a prompt
written for A1111 would render differently here. :class:`PromptEncoder` encodes like
A1111 instead:

1. the prompt is parsed into weighted pieces (:func:`pipeline.plan.prompt_syntax.parse_attention`);
2. each piece is tokenized without special tokens, the tokens are concatenated and split
   into chunks of 75 (``BREAK`` closes the current chunk; a chunk that fills up within
   20 tokens of a comma is cut after the comma, A1111's default "comma padding
   backtrack", so a phrase is not torn across chunks);
3. each chunk becomes BOS + tokens + EOS, padded to 77 with the tokenizer's pad token
   (which is EOS for CLIP-L; A1111 and diffusers place SDXL's OpenCLIP pad token "!"
   after the EOS too), and runs through the text encoder;
4. the token embeddings are multiplied by their weights and the chunk rescaled so its
   mean is what it was unweighted (A1111's "restore original mean", per chunk and per
   text encoder);
5. chunks are concatenated along the sequence axis: long prompts are chunked, never
   truncated. Positive and negative are padded to the same chunk count with the
   encoding of an empty prompt.

SD 1.x uses the text encoder's last hidden state. SDXL uses the penultimate hidden
states of both encoders side by side, the pooled embedding of the first chunk from the
encoder with a projection, and, like diffusers (``force_zeros_for_empty_prompt``), zeros
for an empty negative prompt. For an unweighted prompt of at most 75 tokens the result
equals ``pipe.encode_prompt``'s.

CLIP skip (:class:`TextSettings`) is A1111's: 1 is the last layer, ``n`` the hidden state
``n`` layers from the end, put through the final layer norm as A1111 does. SDXL is
trained on the penultimate layer (without that norm), i.e. at CLIP skip 2 already, so
there 1 and 2 both mean SDXL's own layer and ``n`` > 2 goes further back, for both
encoders; the pooled embedding always comes from the last layer (as in A1111 and ComfyUI).

Textual inversion (:meth:`PromptEncoder.add_embedding`, installed by
:mod:`pipeline.models.textual_inversion`) adds one token per vector to each tokenizer and
its vector as a row of the text encoder's token embeddings. A text uses an
embedding where the tokens of its name appear as whole words (A1111 compares tokens; the
whole-word rule is what the plan can check without a tokenizer), and only embeddings
its :class:`TextSettings` allow. Its vectors carry the weight of the piece they are in
and are never split across two chunks (a chunk without room moves them to the next).

Between keyframes a prompt animation morphs: :func:`blend` mixes two conditionings after
:meth:`PromptEncoder.align` has given them the same chunk count.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Generic, TypeVar

import torch

from pipeline.config.schema import ModelFamily, PromptBlend
from pipeline.errors import RotoscopeError
from pipeline.models.loader import Pipeline
from pipeline.models.textual_inversion import InstalledEmbedding, install_embedding
from pipeline.plan.prompt_syntax import BREAK, parse_attention

# A full chunk cut this close after a comma moves its tail to the next chunk (A1111's
# default for its "comma padding backtrack" setting).
COMMA_BACKTRACK = 20
# Distinct texts (and prompt pairs) kept encoded. A plan has a handful of keyframe
# prompts; the bound only matters for a schedule whose text changes every frame.
CACHE_ENTRIES = 64
# Token vectors closer to parallel than this blend linearly: slerp divides by sin(angle).
_PARALLEL_COSINE = 0.9995
# A chunk mean below this fraction of the chunk's mean magnitude is float noise, not a
# statistic worth restoring.
_NEGLIGIBLE_MEAN = 1e-4
_COMMA = ",</w>"  # the comma as a word-final token in CLIP's BPE vocabulary

_Key = TypeVar("_Key", bound=Hashable)
_Value = TypeVar("_Value")


@dataclass(frozen=True)
class Conditioning:
    """Everything the img2img call needs for one (prompt, negative) pair.

    Embeddings are ``(1, 77 * chunks, features)``; pooled ones ``(1, features)`` and SDXL
    only. The negatives are None when classifier-free guidance is off. Positive and
    negative always have the same chunk count, as diffusers requires.
    """

    prompt_embeds: torch.Tensor
    negative_prompt_embeds: torch.Tensor | None = None
    pooled_prompt_embeds: torch.Tensor | None = None
    negative_pooled_prompt_embeds: torch.Tensor | None = None

    def pipeline_kwargs(self) -> dict[str, torch.Tensor]:
        """The tensors that are set, keyed as diffusers' img2img ``__call__`` takes them."""
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class TextSettings:
    """What shapes a text's encoding besides the text itself (and so is part of the cache
    keys): the CLIP skip, the embeddings the text may use, and the LoRA weights in effect
    on the text encoders (they change the encoders' output)."""

    clip_skip: int = 1
    embeddings: frozenset[str] = frozenset()
    lora: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class _TextEncoder:
    tokenizer: Any  # transformers' CLIPTokenizer(Fast)
    model: Any  # CLIPTextModel or CLIPTextModelWithProjection
    penultimate: bool  # SDXL conditions on hidden_states[-2], SD 1.x on the last one
    embeddings: dict[str, InstalledEmbedding] = field(default_factory=dict)

    @property
    def text_model(self) -> Any:
        """The CLIPTextModel itself (inside a CLIPTextModelWithProjection)."""
        return getattr(self.model, "text_model", self.model)

    @property
    def width(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[1])


@dataclass(frozen=True)
class _TextEncoding:
    hidden: torch.Tensor  # (1, 77 * chunks, features)
    pooled: torch.Tensor | None  # (1, features), from the first chunk


# A token id, or the ids of an embedding's vectors, which must stay in one chunk.
Token = int | tuple[int, ...]


@dataclass
class TokenChunk:
    """Up to 75 token ids of one chunk and the attention weight of each."""

    tokens: list[int]
    weights: list[float]


class _Cache(Generic[_Key, _Value]):
    """A small least-recently-used map."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[_Key, _Value] = OrderedDict()

    def get_or_make(self, key: _Key, make: Callable[[], _Value]) -> _Value:
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = make()
        self._entries[key] = value
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return value


class PromptEncoder:
    """Encodes prompt pairs A1111's way, each distinct text and pair only once.

    ``encode_calls`` counts text encodings (one per distinct text: each runs all of the
    model's text encoders on all of the text's chunks at once), so tests can see the cache.
    """

    def __init__(self, pipe: Pipeline, family: ModelFamily, device: torch.device) -> None:
        if family is ModelFamily.auto:
            raise ValueError("the model family must be resolved: sd15 or sdxl")
        sdxl = family is ModelFamily.sdxl
        pairs = [(pipe.tokenizer, pipe.text_encoder)]
        if sdxl:  # an SDXL refiner has only the second encoder
            pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
        self._encoders = [
            _TextEncoder(tokenizer, model, penultimate=sdxl)
            for tokenizer, model in pairs
            if model is not None
        ]
        self._device = device
        self._zeros_for_empty_negative = sdxl and bool(
            pipe.config.get("force_zeros_for_empty_prompt", False)
        )
        # a misconfigured tokenizer can claim a huge model_max_length; the encoder can't
        self._chunk_length = min(
            min(encoder.tokenizer.model_max_length, encoder.model.config.max_position_embeddings)
            for encoder in self._encoders
        )
        self._texts: _Cache[tuple[str, TextSettings], _TextEncoding] = _Cache(CACHE_ENTRIES)
        self._pairs: _Cache[tuple[str, str, bool, TextSettings], Conditioning] = _Cache(
            CACHE_ENTRIES
        )
        self.encode_calls = 0

    @property
    def widths(self) -> list[int]:
        """The token-embedding width of each text encoder, in order (SDXL: CLIP-L, then G)."""
        return [encoder.width for encoder in self._encoders]

    @torch.inference_mode()
    def add_embedding(self, name: str, vectors: Sequence[torch.Tensor]) -> None:
        """Make ``name`` a textual-inversion embedding: ``vectors`` holds one (count, width)
        tensor per text encoder, in the order of :attr:`widths`; each is installed into
        its encoder (:func:`pipeline.models.textual_inversion.install_embedding`) and a
        text that names it is tokenized with its vectors from then on.
        """
        if len(vectors) != len(self._encoders) or any(
            tensor.ndim != 2 or tensor.shape[1] != width
            for tensor, width in zip(vectors, self.widths, strict=False)
        ):
            raise ValueError(f"embedding {name!r} needs one (count, width) tensor per encoder")
        for encoder, tensor in zip(self._encoders, vectors, strict=True):
            encoder.embeddings[name] = install_embedding(
                encoder.tokenizer, encoder.model, name, tensor
            )
        self._texts = _Cache(CACHE_ENTRIES)  # a text may read differently now
        self._pairs = _Cache(CACHE_ENTRIES)

    @torch.inference_mode()
    def encode(
        self, prompt: str, negative: str, do_cfg: bool, settings: TextSettings | None = None
    ) -> Conditioning:
        """The conditioning for ``prompt`` and ``negative`` ("" for none).

        Without classifier-free guidance (``do_cfg`` false) the negative is not encoded.
        Raises :class:`pipeline.plan.prompt_syntax.PromptSyntaxError` for an unparsable weight.
        """
        settings = settings or TextSettings()
        return self._pairs.get_or_make(
            (prompt, negative, do_cfg, settings),
            lambda: self._conditioning(prompt, negative, do_cfg, settings),
        )

    @torch.inference_mode()
    def align(
        self, a: Conditioning, b: Conditioning, settings: TextSettings | None = None
    ) -> tuple[Conditioning, Conditioning]:
        """``a`` and ``b`` padded to the same chunk count, ready for :func:`blend`.

        Missing chunks are the encoding of an empty prompt (with ``settings``, those of the
        texts), as for a negative shorter than its positive, except in an all-zero negative
        (SDXL's empty negative), which stays all zeros: zeros are how diffusers says "no
        negative" at any length.
        """
        settings = settings or TextSettings()
        chunks = max(self._chunk_count(a.prompt_embeds), self._chunk_count(b.prompt_embeds))
        return self._padded(a, chunks, settings), self._padded(b, chunks, settings)

    def _conditioning(
        self, prompt: str, negative: str, do_cfg: bool, settings: TextSettings
    ) -> Conditioning:
        positive = self._text(prompt, settings)
        if not do_cfg:
            return Conditioning(positive.hidden, pooled_prompt_embeds=positive.pooled)
        if not negative and self._zeros_for_empty_negative and positive.pooled is not None:
            return Conditioning(
                positive.hidden,
                torch.zeros_like(positive.hidden),
                positive.pooled,
                torch.zeros_like(positive.pooled),
            )
        unwanted = self._text(negative, settings)
        chunks = max(self._chunk_count(positive.hidden), self._chunk_count(unwanted.hidden))
        return Conditioning(
            self._pad(positive.hidden, chunks, settings),
            self._pad(unwanted.hidden, chunks, settings),
            positive.pooled,
            unwanted.pooled,
        )

    def _padded(
        self, conditioning: Conditioning, chunks: int, settings: TextSettings
    ) -> Conditioning:
        negative = conditioning.negative_prompt_embeds
        if negative is not None:
            if negative.any():
                negative = self._pad(negative, chunks, settings)
            else:
                negative = negative.new_zeros(1, chunks * self._chunk_length, negative.shape[-1])
        return replace(
            conditioning,
            prompt_embeds=self._pad(conditioning.prompt_embeds, chunks, settings),
            negative_prompt_embeds=negative,
        )

    def _pad(self, hidden: torch.Tensor, chunks: int, settings: TextSettings) -> torch.Tensor:
        """``hidden`` extended to ``chunks`` chunks with empty-prompt chunks."""
        missing = chunks - self._chunk_count(hidden)
        if missing <= 0:
            return hidden
        empty = self._text("", settings).hidden
        return torch.cat([hidden, empty.repeat(1, missing, 1)], dim=1)

    def _chunk_count(self, hidden: torch.Tensor) -> int:
        return hidden.shape[1] // self._chunk_length

    def _text(self, text: str, settings: TextSettings) -> _TextEncoding:
        return self._texts.get_or_make((text, settings), lambda: self._encode_text(text, settings))

    def _encode_text(self, text: str, settings: TextSettings) -> _TextEncoding:
        self.encode_calls += 1
        pieces = parse_attention(text)
        hidden_states: list[torch.Tensor] = []
        pooled = None
        for encoder in self._encoders:
            tokens = [
                None if piece == BREAK else self._tokenize(encoder, piece, settings.embeddings)
                for piece in pieces
            ]
            comma = encoder.tokenizer.get_vocab().get(_COMMA)
            chunks = split_chunks(tokens, self._chunk_length - 2, comma)
            ids, weights = self._framed(encoder.tokenizer, chunks)
            output = encoder.model(ids.to(self._device), output_hidden_states=True)
            hidden = _layer(encoder, output, settings.clip_skip)
            hidden_states.append(_restore_mean(hidden, weights.to(self._device)))
            if getattr(output, "text_embeds", None) is not None:
                pooled = output.text_embeds[:1]  # A1111 and diffusers: the first chunk's
        if len({hidden.shape[0] for hidden in hidden_states}) > 1:
            raise RotoscopeError(
                f"the model's two tokenizers split prompt '{text}' into different chunk counts",
                "load each textual inversion into both text encoders",
            )
        hidden = torch.cat(hidden_states, dim=-1)
        return _TextEncoding(hidden.reshape(1, -1, hidden.shape[-1]), pooled)

    def _tokenize(
        self, encoder: _TextEncoder, piece: tuple[str, float], allowed: frozenset[str]
    ) -> tuple[list[Token], float]:
        """A piece's token ids, each allowed embedding's name replaced by its vectors' ids."""
        text, weight = piece
        # verbose=False: a long piece is not a problem here, it is what chunking is for
        ids = encoder.tokenizer(text, add_special_tokens=False, verbose=False).input_ids
        embeddings = sorted(
            (embedding for name, embedding in encoder.embeddings.items() if name in allowed),
            key=lambda embedding: -len(embedding.name_ids),  # the longest name wins
        )
        if not embeddings:
            return ids, weight
        word_ends = [
            token.endswith("</w>") for token in encoder.tokenizer.convert_ids_to_tokens(ids)
        ]
        tokens: list[Token] = []
        position = 0
        while position < len(ids):
            at_word_start = position == 0 or word_ends[position - 1]
            match = next(
                (
                    embedding
                    for embedding in embeddings
                    if at_word_start
                    and tuple(ids[position : position + len(embedding.name_ids)])
                    == embedding.name_ids
                ),
                None,
            )
            if match is None:
                tokens.append(ids[position])
                position += 1
            else:
                tokens.append(match.vector_ids)
                position += len(match.name_ids)
        return tokens, weight

    def _framed(
        self, tokenizer: Any, chunks: list[TokenChunk]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and weights, (chunks, 77): BOS + tokens + EOS, then pad tokens.

        Special and pad tokens weigh 1.0.
        """
        bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
        ids, weights = [], []
        for chunk in chunks:
            padding = self._chunk_length - 2 - len(chunk.tokens)
            ids.append([bos, *chunk.tokens, eos] + [pad] * padding)
            weights.append([1.0, *chunk.weights] + [1.0] * (padding + 1))
        return torch.tensor(ids, dtype=torch.long), torch.tensor(weights, dtype=torch.float32)


def split_chunks(
    pieces: Sequence[tuple[Sequence[Token], float] | None], size: int, comma: int | None
) -> list[TokenChunk]:
    """Weighted token pieces (None for a BREAK) cut into chunks of at most ``size`` tokens.

    A BREAK closes the current chunk even if it is empty; a trailing empty chunk is
    dropped, but a prompt always has at least one chunk. When a token arrives at a full
    chunk whose last comma is at most ``COMMA_BACKTRACK`` tokens back, the tokens after
    the comma move on to the next chunk with it. A tuple of ids (an embedding's vectors)
    stays whole: when it does not fit, it starts the next chunk (as in A1111).
    """
    chunks: list[TokenChunk] = []
    current = TokenChunk([], [])
    last_comma = -1
    for piece in pieces:
        if piece is None:
            chunks.append(current)
            current, last_comma = TokenChunk([], []), -1
            continue
        tokens, weight = piece
        for token in tokens:
            group = token if isinstance(token, tuple) else (token,)
            if len(current.tokens) == size:
                backtrack = (
                    token != comma and last_comma >= 0 and size - last_comma <= COMMA_BACKTRACK
                )
                cut = last_comma + 1 if backtrack else size
                chunks.append(TokenChunk(current.tokens[:cut], current.weights[:cut]))
                current, last_comma = TokenChunk(current.tokens[cut:], current.weights[cut:]), -1
            if len(current.tokens) + len(group) > size:
                chunks.append(current)
                current, last_comma = TokenChunk([], []), -1
            if token == comma:
                last_comma = len(current.tokens)
            current.tokens.extend(group)
            current.weights.extend([weight] * len(group))
    if current.tokens or not chunks:
        chunks.append(current)
    return chunks


def _layer(encoder: _TextEncoder, output: Any, clip_skip: int) -> torch.Tensor:
    """The hidden states the UNet is conditioned on, ``clip_skip`` as A1111 means it."""
    layers = encoder.text_model.config.num_hidden_layers
    if not 1 <= clip_skip <= layers:
        raise RotoscopeError(
            f"clip_skip={clip_skip} but the model's text encoder has {layers} layers",
            f"use 1 to {layers} (2 is the common choice)",
        )
    if encoder.penultimate:
        return output.hidden_states[-max(clip_skip, 2)]
    if clip_skip == 1:
        return output.last_hidden_state
    return encoder.text_model.final_layer_norm(output.hidden_states[-clip_skip])


def _restore_mean(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Token embeddings times their weights, rescaled to the unweighted mean of each chunk.

    Scaling alone would also change the overall magnitude the UNet sees; A1111 restores
    the mean so emphasis shifts attention between tokens instead. Where a chunk's mean is
    next to zero, as in a text encoder whose final layer norm has no bias (random test
    weights), the ratio of means is noise, so it is not applied: A1111 would give inf or
    NaN there. Computed in float32 so fp16 models lose nothing; with all weights 1.0 the
    result is ``hidden`` exactly.
    """
    original = hidden.float()
    weighted = original * weights.unsqueeze(-1)
    chunk_axes = (1, 2)
    before = original.mean(dim=chunk_axes, keepdim=True)
    after = weighted.mean(dim=chunk_axes, keepdim=True)
    meaningful = (before.abs() > _NEGLIGIBLE_MEAN * original.abs().mean(chunk_axes, True)) & (
        after.abs() > _NEGLIGIBLE_MEAN * weighted.abs().mean(chunk_axes, True)
    )
    scale = torch.where(meaningful, before / torch.where(meaningful, after, 1.0), 1.0)
    return (weighted * scale).to(hidden.dtype)


@torch.inference_mode()
def blend(a: Conditioning, b: Conditioning, weight: float, mode: PromptBlend) -> Conditioning:
    """The conditioning ``weight`` of the way from ``a`` (0) to ``b`` (1).

    ``mode`` linear mixes every tensor as (1 - w)·a + w·b. slerp turns each token
    vector (and pooled vector) along the great circle from a's direction to b's while its
    length goes linearly from a's length to b's: a halfway frame is at equal angles from
    both keys and as long as they are on average, where a linear mix of two diverging
    vectors comes out shorter than either. Vectors almost parallel (or zero) mix
    linearly. Negatives and pooled embeddings blend too. ``a`` and ``b`` must have the
    same chunk count: pass them through :meth:`PromptEncoder.align` first. Weights 0 and
    1 return ``a`` and ``b`` themselves.
    """
    mixers = {PromptBlend.linear: _lerp, PromptBlend.slerp: _slerp}
    if mode not in mixers:
        raise ValueError(f"blend mode {mode.value} mixes nothing: use linear or slerp")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"blend weight {weight} is outside [0, 1]")
    if weight == 0.0:
        return a
    if weight == 1.0:
        return b
    mixed: dict[str, torch.Tensor | None] = {}
    for part in fields(Conditioning):
        first, second = getattr(a, part.name), getattr(b, part.name)
        if first is None and second is None:
            mixed[part.name] = None
        elif first is None or second is None or first.shape != second.shape:
            raise ValueError(
                f"cannot blend {part.name}: shapes {_shape(first)} and {_shape(second)} "
                "differ (align the conditionings with PromptEncoder.align first)"
            )
        else:
            mixed[part.name] = mixers[mode](first, second, weight)
    return Conditioning(**mixed)  # type: ignore[arg-type]


def _shape(tensor: torch.Tensor | None) -> tuple[int, ...] | None:
    return None if tensor is None else tuple(tensor.shape)


def _lerp(a: torch.Tensor, b: torch.Tensor, weight: float) -> torch.Tensor:
    return ((1.0 - weight) * a.float() + weight * b.float()).to(a.dtype)


def _slerp(a: torch.Tensor, b: torch.Tensor, weight: float) -> torch.Tensor:
    """Spherical interpolation of the direction of each vector along the last axis, with
    its length interpolated linearly."""
    a32, b32 = a.float(), b.float()
    a_norm = a32.norm(dim=-1, keepdim=True)
    b_norm = b32.norm(dim=-1, keepdim=True)
    degenerate = (a_norm == 0) | (b_norm == 0)
    a_unit = a32 / torch.where(degenerate, 1.0, a_norm)
    b_unit = b32 / torch.where(degenerate, 1.0, b_norm)
    cosine = (a_unit * b_unit).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    linear = degenerate | (cosine.abs() > _PARALLEL_COSINE)
    angle = torch.acos(cosine)
    sine = torch.where(linear, 1.0, torch.sin(angle))
    direction = (
        torch.sin((1.0 - weight) * angle) * a_unit + torch.sin(weight * angle) * b_unit
    ) / sine
    spherical = direction * ((1.0 - weight) * a_norm + weight * b_norm)
    straight = (1.0 - weight) * a32 + weight * b32
    return torch.where(linear, straight, spherical).to(a.dtype)
