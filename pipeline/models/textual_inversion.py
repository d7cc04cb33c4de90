"""Textual inversion: an embedding's vectors installed into a text encoder as new tokens.

A1111 and diffusers both add one token per vector to the tokenizer and the vector as a
new row of the encoder's token-embedding table; a prompt that names the embedding is
then tokenized with those tokens in place of the name (see
:class:`pipeline.render.conditioning.PromptEncoder`). The files themselves are read by
:mod:`pipeline.models.embeddings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class InstalledEmbedding:
    """An embedding in one text encoder: how its name tokenizes, and its vectors' tokens."""

    name_ids: tuple[int, ...]  # the name as the tokenizer splits it
    vector_ids: tuple[int, ...]  # the added tokens that hold its vectors


@torch.inference_mode()
def install_embedding(
    tokenizer: Any, text_encoder: Any, name: str, vectors: torch.Tensor
) -> InstalledEmbedding:
    """Add ``vectors`` (count, width) to ``tokenizer`` and ``text_encoder`` as ``name``.

    A CLIP config with the legacy ``eos_token_id`` 2 pools at the highest token id, which
    an added token would now be, so such an encoder is switched to pooling at the first
    end-of-text token: the same position for every prompt without added tokens, and the
    right one with them.
    """
    placeholders = [f"<rotoscope-embedding:{name}:{k}>" for k in range(len(vectors))]
    tokenizer.add_tokens(placeholders)
    ids = tokenizer.convert_tokens_to_ids(placeholders)
    table = text_encoder.get_input_embeddings()
    if table.num_embeddings < len(tokenizer):
        text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        table = text_encoder.get_input_embeddings()
    table.weight[ids] = vectors.to(table.weight.device, table.weight.dtype)
    text_model = getattr(text_encoder, "text_model", text_encoder)
    if text_model.eos_token_id == 2:
        text_model.eos_token_id = tokenizer.eos_token_id
    name_ids = tokenizer(name, add_special_tokens=False).input_ids
    return InstalledEmbedding(tuple(name_ids), tuple(ids))
