"""The LoRAs and embeddings of a plan, loaded once into the model; what each frame gets.

The plan has already resolved every name to a file (``pipeline.plan.networks``) and put
each frame's LoRA weights and file identities in its row. Here the files the whole plan
uses are loaded when the model is (LoRAs into the pipeline, embeddings into the prompt
encoder), and for each frame :meth:`Adapters.settings` sets the LoRA weights and says
how its texts are encoded: the row's CLIP skip, the embeddings it may use and the LoRA
weights in effect on the text encoders.

An embedding made for another model family (an SD 1.x one on SDXL, or one whose width
fits no text encoder) is skipped with a warning, as A1111 skips it: its name stays
plain words.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pipeline.models.embeddings import read_embedding, short_hash
from pipeline.models.loader import LoadedModel
from pipeline.models.lora import LoraFile, LoraSet
from pipeline.plan.networks import EMBEDDING_KEY, LORA_KEY, Networks, embedding_name
from pipeline.plan.rows import PlanRow
from pipeline.render.conditioning import PromptEncoder, TextSettings

log = logging.getLogger("rotoscope")


class Adapters:
    """LoRAs and embeddings of one plan, ready to apply per frame."""

    def __init__(
        self,
        model: LoadedModel,
        rows: Sequence[PlanRow] = (),
        networks: Networks | None = None,
        fuse_loras: bool = True,
    ) -> None:
        keys = sorted({key for row in rows for key in row.network_files or {}})
        if keys and networks is None:
            raise ValueError("rows name LoRA or embedding files: pass the plan's Networks")
        files = {key: networks.file_of(key) for key in keys} if networks else {}
        self.loras = LoraSet(
            model,
            [
                LoraFile(key.removeprefix(LORA_KEY), path)
                for key, path in files.items()
                if key.startswith(LORA_KEY)
            ],
            [row.loras for row in rows],
            fuse=fuse_loras,
        )
        self.embeddings = [
            read_embedding(embedding_name(key), path)
            for key, path in files.items()
            if key.startswith(EMBEDDING_KEY)
        ]
        self._embedding_hashes = {
            embedding.name: short_hash(embedding.path) for embedding in self.embeddings
        }
        self._installed: set[str] = set()

    def install_embeddings(self, encoder: PromptEncoder) -> None:
        """Add every embedding that fits the model's text encoders to ``encoder``."""
        for embedding in self.embeddings:
            # an SDXL file has a tensor per encoder, a one-tensor file fits one-encoder models
            if embedding.widths != encoder.widths:
                log.warning(
                    "embedding '%s' (%s) %s: it is skipped and its name read as words",
                    embedding.name, embedding.path, mismatch(embedding.widths, encoder.widths),
                )  # fmt: skip
                continue
            encoder.add_embedding(embedding.name, embedding.vectors)
            self._installed.add(embedding.name)

    def settings(self, row: PlanRow) -> TextSettings:
        """Set the frame's LoRA weights; how its texts are to be encoded."""
        lora_state = self.loras.apply(row.loras)
        names = frozenset(
            embedding_name(key)
            for key in row.network_files or {}
            if key.startswith(EMBEDDING_KEY) and embedding_name(key) in self._installed
        )
        return TextSettings(clip_skip=row.clip_skip or 1, embeddings=names, lora=lora_state)

    def infotext(self, row: PlanRow) -> list[tuple[str, str]]:
        """A1111's ``Lora hashes`` and ``TI hashes`` entries for a frame's metadata."""
        entries = []
        loras = [f"{name}: {self.loras.hashes[name]}" for name in sorted(row.loras or {})]
        if loras:
            entries.append(("Lora hashes", ", ".join(loras)))
        embeddings = sorted(
            embedding_name(key)
            for key in row.network_files or {}
            if key.startswith(EMBEDDING_KEY) and embedding_name(key) in self._installed
        )
        if embeddings:
            hashes = [f"{name}: {self._embedding_hashes[name]}" for name in embeddings]
            entries.append(("TI hashes", ", ".join(hashes)))
        return entries


def mismatch(widths: Sequence[int], encoders: Sequence[int]) -> str:
    """Why an embedding with vectors of ``widths`` does not fit text encoders of
    ``encoders`` widths, in the words a user knows (the model families)."""

    def listed(values: Sequence[int]) -> str:
        return " and ".join(str(value) for value in values)

    if len(widths) == 1 and len(encoders) == 2:
        return (
            f"is an SD 1.x/2.x embedding (one {widths[0]}-wide vector set), and this SDXL "
            f"model needs one for each of its two text encoders ({listed(encoders)} wide)"
        )
    if len(widths) == 2 and len(encoders) == 1:
        return (
            f"is an SDXL embedding (vectors for two text encoders, {listed(widths)} wide), "
            f"and this model has one text encoder ({encoders[0]} wide)"
        )
    return (
        f"has {listed(widths)}-wide vectors, and this model's text encoder is "
        f"{listed(encoders)} wide: it was made for another base model"
    )
