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

Between keyframes a prompt animation morphs: :func:`blend` mixes two conditionings after
:meth:`PromptEncoder.align` has given them the same chunk count.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import torch

from pipeline.errors import RotoscopeError
from pipeline.plan.prompt_syntax import BREAK, parse_attention

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

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
class _TextEncoder:
    tokenizer: Any  # transformers' CLIPTokenizer(Fast)
    model: Any  # CLIPTextModel or CLIPTextModelWithProjection
    penultimate: bool  # SDXL conditions on hidden_states[-2], SD 1.x on the last one


@dataclass(frozen=True)
class _TextEncoding:
    hidden: torch.Tensor  # (1, 77 * chunks, features)
    pooled: torch.Tensor | None  # (1, features), from the first chunk


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

    def __init__(self, pipe: DiffusionPipeline, family: str, device: torch.device) -> None:
        if family == "sd15":
            pairs = [(pipe.tokenizer, pipe.text_encoder)]
        elif family == "sdxl":
            # an SDXL refiner has only the second encoder
            pairs = [(pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)]
        else:
            raise ValueError(f"unknown model family {family!r}: expected 'sd15' or 'sdxl'")
        self._encoders = [
            _TextEncoder(tokenizer, model, penultimate=family == "sdxl")
            for tokenizer, model in pairs
            if model is not None
        ]
        self._pipe = pipe
        self._device = device
        self._zeros_for_empty_negative = family == "sdxl" and bool(
            pipe.config.get("force_zeros_for_empty_prompt", False)
        )
        # a misconfigured tokenizer can claim a huge model_max_length; the encoder can't
        self._chunk_length = min(
            min(encoder.tokenizer.model_max_length, encoder.model.config.max_position_embeddings)
            for encoder in self._encoders
        )
        self._texts: _Cache[str, _TextEncoding] = _Cache(CACHE_ENTRIES)
        self._pairs: _Cache[tuple[str, str, bool], Conditioning] = _Cache(CACHE_ENTRIES)
        self.encode_calls = 0

    @torch.inference_mode()
    def encode(self, prompt: str, negative: str, do_cfg: bool) -> Conditioning:
        """The conditioning for ``prompt`` and ``negative`` ("" for none).

        Without classifier-free guidance (``do_cfg`` false) the negative is not encoded.
        Raises :class:`pipeline.plan.prompt_syntax.PromptSyntaxError` for an unparsable weight.
        """
        return self._pairs.get_or_make(
            (prompt, negative, do_cfg), lambda: self._conditioning(prompt, negative, do_cfg)
        )

    @torch.inference_mode()
    def align(self, a: Conditioning, b: Conditioning) -> tuple[Conditioning, Conditioning]:
        """``a`` and ``b`` padded to the same chunk count, ready for :func:`blend`.

        Missing chunks are the encoding of an empty prompt, as for a negative shorter than
        its positive, except in an all-zero negative (SDXL's empty negative), which stays
        all zeros: zeros are how diffusers says "no negative" at any length.
        """
        chunks = max(self._chunk_count(a.prompt_embeds), self._chunk_count(b.prompt_embeds))
        return self._padded(a, chunks), self._padded(b, chunks)

    def _conditioning(self, prompt: str, negative: str, do_cfg: bool) -> Conditioning:
        positive = self._text(prompt)
        if not do_cfg:
            return Conditioning(positive.hidden, pooled_prompt_embeds=positive.pooled)
        if not negative and self._zeros_for_empty_negative and positive.pooled is not None:
            return Conditioning(
                positive.hidden,
                torch.zeros_like(positive.hidden),
                positive.pooled,
                torch.zeros_like(positive.pooled),
            )
        unwanted = self._text(negative)
        chunks = max(self._chunk_count(positive.hidden), self._chunk_count(unwanted.hidden))
        return Conditioning(
            self._pad(positive.hidden, chunks),
            self._pad(unwanted.hidden, chunks),
            positive.pooled,
            unwanted.pooled,
        )

    def _padded(self, conditioning: Conditioning, chunks: int) -> Conditioning:
        negative = conditioning.negative_prompt_embeds
        if negative is not None:
            if negative.any():
                negative = self._pad(negative, chunks)
            else:
                negative = negative.new_zeros(1, chunks * self._chunk_length, negative.shape[-1])
        return replace(
            conditioning,
            prompt_embeds=self._pad(conditioning.prompt_embeds, chunks),
            negative_prompt_embeds=negative,
        )

    def _pad(self, hidden: torch.Tensor, chunks: int) -> torch.Tensor:
        """``hidden`` extended to ``chunks`` chunks with empty-prompt chunks."""
        missing = chunks - self._chunk_count(hidden)
        if missing <= 0:
            return hidden
        empty = self._text("").hidden
        return torch.cat([hidden, empty.repeat(1, missing, 1)], dim=1)

    def _chunk_count(self, hidden: torch.Tensor) -> int:
        return hidden.shape[1] // self._chunk_length

    def _text(self, text: str) -> _TextEncoding:
        return self._texts.get_or_make(text, lambda: self._encode_text(text))

    def _encode_text(self, text: str) -> _TextEncoding:
        self.encode_calls += 1
        pieces = parse_attention(text)
        hidden_states: list[torch.Tensor] = []
        pooled = None
        for encoder in self._encoders:
            tokens = [
                None if piece == BREAK else self._tokenize(encoder, piece) for piece in pieces
            ]
            comma = encoder.tokenizer.get_vocab().get(_COMMA)
            chunks = split_chunks(tokens, self._chunk_length - 2, comma)
            ids, weights = self._framed(encoder.tokenizer, chunks)
            output = encoder.model(ids.to(self._device), output_hidden_states=True)
            hidden = output.hidden_states[-2] if encoder.penultimate else output.last_hidden_state
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

    def _tokenize(self, encoder: _TextEncoder, piece: tuple[str, float]) -> tuple[list[int], float]:
        text, weight = piece
        tokenizer = encoder.tokenizer
        # diffusers' textual inversion: a multi-vector token expands to one token per vector.
        # Asked only when the tokenizer has such added words, because the check tokenizes
        # the whole piece and makes transformers warn that long text "will result in
        # indexing errors", which chunking makes untrue.
        convert = getattr(self._pipe, "maybe_convert_prompt", None)
        added_words = set(tokenizer.added_tokens_encoder) - set(tokenizer.all_special_tokens)
        if convert is not None and added_words:
            text = convert(text, tokenizer)
        # verbose=False: a long piece is not a problem here, it is what chunking is for
        ids = tokenizer(text, add_special_tokens=False, verbose=False).input_ids
        return ids, weight

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
    pieces: Sequence[tuple[list[int], float] | None], size: int, comma: int | None
) -> list[TokenChunk]:
    """Weighted token pieces (None for a BREAK) cut into chunks of at most ``size`` tokens.

    A BREAK closes the current chunk even if it is empty; a trailing empty chunk is
    dropped, but a prompt always has at least one chunk. When a token arrives at a full
    chunk whose last comma is at most ``COMMA_BACKTRACK`` tokens back, the tokens after
    the comma move on to the next chunk with it.
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
            if len(current.tokens) == size:
                backtrack = (
                    token != comma and last_comma >= 0 and size - last_comma <= COMMA_BACKTRACK
                )
                cut = last_comma + 1 if backtrack else size
                chunks.append(TokenChunk(current.tokens[:cut], current.weights[:cut]))
                current, last_comma = TokenChunk(current.tokens[cut:], current.weights[cut:]), -1
            if token == comma:
                last_comma = len(current.tokens)
            current.tokens.append(token)
            current.weights.append(weight)
    if current.tokens or not chunks:
        chunks.append(current)
    return chunks


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
def blend(a: Conditioning, b: Conditioning, weight: float, mode: str) -> Conditioning:
    """The conditioning ``weight`` of the way from ``a`` (0) to ``b`` (1).

    ``mode`` "linear" mixes every tensor as (1 - w)·a + w·b. "slerp" turns each token
    vector (and pooled vector) along the great circle from a's direction to b's while its
    length goes linearly from a's length to b's: a halfway frame is at equal angles from
    both keys and as long as they are on average, where a linear mix of two diverging
    vectors comes out shorter than either. Vectors almost parallel (or zero) mix
    linearly. Negatives and pooled embeddings blend too. ``a`` and ``b`` must have the
    same chunk count: pass them through :meth:`PromptEncoder.align` first. Weights 0 and
    1 return ``a`` and ``b`` themselves.
    """
    mixers = {"linear": _lerp, "slerp": _slerp}
    if mode not in mixers:
        raise ValueError(f"blend mode {mode!r} is not one of {sorted(mixers)}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"blend weight {weight} is outside [0, 1]")
    if weight == 0.0:
        return a
    if weight == 1.0:
        return b
    mixed: dict[str, torch.Tensor | None] = {}
    for field in fields(Conditioning):
        first, second = getattr(a, field.name), getattr(b, field.name)
        if first is None and second is None:
            mixed[field.name] = None
        elif first is None or second is None or first.shape != second.shape:
            raise ValueError(
                f"cannot blend {field.name}: shapes {_shape(first)} and {_shape(second)} "
                "differ (align the conditionings with PromptEncoder.align first)"
            )
        else:
            mixed[field.name] = mixers[mode](first, second, weight)
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
