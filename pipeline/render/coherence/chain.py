"""Segments rendered as chains: what each frame takes from the frames before it.

With temporal coherence on, frame ``t`` of a segment is rendered from

* with ``coherence.flow``: what the previous frame's sampler added at each step,
  carried along the source flow into this frame's latents (residual latent fusion,
  ``flow_fusion``), and, if asked, the previous output carried into the init picture
  (``flow_init``) and into the output (``flow_output``);
* with ``coherence.attention``: the recorded self-attention inputs of the segment's
  first frame and/or of the previous frame, which its own self-attention also looks at.

A frame's key chains the keys of the earlier frames it is actually rendered from (its
predecessor with flow or a ``previous`` attention anchor, the segment's first frame with a
``first`` anchor), so a change re-renders exactly the frames after it up to the next
anchor, and every key is known before anything renders. What a frame hands on
(:class:`FrameState`) is written to the run folder before the frame's manifest line:

* its per-step residual latents (``coherence/latents-<key>.safetensors``, a few hundred
  kB at 512x512), kept for every frame, so any frame can be re-rendered from its
  predecessor;
* its attention recording (``coherence/attention-<key>.safetensors``, about 130 MiB per
  frame for SD 1.5 at 512x512), made only when a later frame will read it and kept only
  as long: a segment's first frame's for the whole segment, another frame's until the
  next frame is safely recorded.

So a job killed at any point resumes with the same frames. A render that starts in the
middle of a segment without its predecessor's recording (an edit there, with
``attention_anchors`` including ``previous``) first replays the frames before it from the
segment's start to rebuild it (:func:`pipeline.render.strategies.coherent.rebuild_states`).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.animation import carry as carry_settings
from pipeline.animation.carry import carry
from pipeline.animation.flow import ConsistencyThresholds, FlowPair
from pipeline.animation.flow_cache import ESTIMATOR
from pipeline.atomic import atomic_path
from pipeline.config.schema import AttentionAnchors, CoherenceConfig
from pipeline.plan.rows import PlanRow
from pipeline.records.run_folder import RunFolder
from pipeline.render.callbacks import StepCallback
from pipeline.render.coherence.attention import AttentionCache, CrossFrameAttention
from pipeline.render.coherence.fusion import ResidualFusion, init_latents, posterior_mean

# How this version of rotoscope carries frames along the flow, with every setting that
# shapes the result; it joins the keys of coherent frames, so a change re-renders them.
FLOW_METHOD = (
    f"residual fusion, lanczos, posterior mean; flow {ESTIMATOR}; "
    f"consistency {ConsistencyThresholds()}; "
    f"carry mask erode {carry_settings.MASK_ERODE} blur {carry_settings.MASK_BLUR}"
)


@dataclass(frozen=True)
class ChainSettings:
    """The run-wide coherence settings (per-frame values are in the plan rows)."""

    attention: bool
    anchors: AttentionAnchors
    layers: str  # AttentionLayers' value
    flow: bool
    # the share of its steps a frame records for later frames: the largest share any
    # frame of the plan attends with, so one recording serves them all
    record_fraction: float

    @classmethod
    def from_config(cls, config: CoherenceConfig, rows: list[PlanRow]) -> ChainSettings:
        fraction = max((row.attention_steps or 0.0) for row in rows) if config.attention else 0.0
        return cls(
            config.attention,
            config.attention_anchors,
            config.attention_layers.value,
            config.flow,
            fraction,
        )

    @property
    def uses_first(self) -> bool:
        """Frames attend to their segment's first frame."""
        return self.attention and self.anchors is not AttentionAnchors.previous

    @property
    def uses_previous(self) -> bool:
        """Frames attend to the frame before them."""
        return self.attention and self.anchors is not AttentionAnchors.first

    @property
    def uses_predecessor(self) -> bool:
        """A frame is rendered from the frame before it (flow, or a previous anchor)."""
        return self.flow or self.uses_previous

    def records(self, anchor: bool) -> bool:
        """Whether a frame's attention recording will be read by a later frame."""
        return (anchor and self.uses_first) or self.uses_previous

    def signature(self) -> str:
        """What of these settings shapes a frame: part of every coherent frame's key."""
        parts = {
            "attention": self.attention
            and f"{self.anchors.value}/{self.layers}/records {self.record_fraction:g}",
            "flow": self.flow and FLOW_METHOD,
        }
        return json.dumps(parts, sort_keys=True)

    def dependencies(self, row: PlanRow, previous_key: str, anchor_key: str) -> str:
        """The part of a frame's key that names what it is rendered from besides its row,
        source and model: these settings, and the keys of the earlier frames it uses."""
        parts = [self.signature()]
        if previous_key and self.uses_predecessor:
            parts.append(f"previous={previous_key}")
        if anchor_key and self.uses_first:
            parts.append(f"anchor={anchor_key}")
        return "|".join(parts)


@dataclass
class FrameState:
    """What a rendered frame hands to the next one of its segment."""

    index: int
    key: str
    anchor: bool  # the first frame of its segment
    source: np.ndarray
    output: np.ndarray
    attention: AttentionCache | None = None  # its recorded self-attention inputs
    latents: list[torch.Tensor] = field(default_factory=list)  # residual after each step
    blank: bool = False  # not diffused (an empty mask): it hands on its output alone


def save_latents(latents: list[torch.Tensor], path: Path) -> None:
    """A frame's per-step latents as safetensors, atomically (bit-exact round trip)."""
    from safetensors.torch import save_file

    tensors = {str(i): tensor.detach().contiguous().cpu() for i, tensor in enumerate(latents)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def load_latents(path: Path, device: torch.device) -> list[torch.Tensor] | None:
    """The latents :func:`save_latents` wrote, or None when the file is missing or torn."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device=str(device))
    except (OSError, ValueError):
        return None
    return [tensors[str(i)] for i in range(len(tensors))]


class FrameCoherence:
    """One frame's coherence: its init image, and hooks inside its pipeline call.

    Implements the renderer's ``FrameHooks``: ``enter`` installs this frame's attention
    recording/replay and residual fusion; after the call :meth:`finish` applies the
    output blend and :meth:`state` gives what the frame hands on.
    """

    def __init__(
        self,
        chain: CoherenceChain,
        row: PlanRow,
        source: np.ndarray,
        previous: FrameState | None,
        anchor: FrameState | None,
        pair: FlowPair | None,
    ) -> None:
        self.chain = chain
        self.row = row
        self.source = source
        self.previous = previous
        self.anchor = anchor
        self.pair = pair
        self.recording: AttentionCache | None = None
        self.fusion: ResidualFusion | None = None

    def init_image(self) -> np.ndarray:
        """The img2img init: the source, with the previous output carried in (flow_init)."""
        if self.previous is None or self.pair is None:
            return self.source
        return carry(self.source, self.previous.output, self.pair, self.row.flow_init or 0.0)

    def enter(self, stack: ExitStack, pipe: Any) -> list[StepCallback]:
        settings = self.chain.settings
        callbacks: list[StepCallback] = []
        attention = self.chain.attention(pipe)
        if attention is not None:
            anchors = []
            if settings.uses_first and self.anchor is not None and self.anchor.attention:
                anchors.append(self.anchor.attention)
            if settings.uses_previous and self.previous is not None and self.previous.attention:
                anchors.append(self.previous.attention)
            records = settings.records(anchor=self.previous is None)
            self.recording = stack.enter_context(
                attention.frame(
                    pipe,
                    anchors,
                    self.row.attention_steps or 0.0,
                    settings.record_fraction if records else 0.0,
                )
            )
        if settings.flow:
            stack.enter_context(posterior_mean(pipe))
            caught = stack.enter_context(init_latents(pipe))
            previous_residuals = self.previous.latents if self.previous is not None else []
            weight = self.row.flow_fusion or 0.0
            self.fusion = ResidualFusion(weight, caught, self.pair, previous_residuals)
            callbacks.append(self.fusion)
        return callbacks

    def finish(self, output: np.ndarray) -> np.ndarray:
        """The rendered frame with the previous output blended in (flow_output)."""
        if self.previous is None or self.pair is None:
            return output
        return carry(output, self.previous.output, self.pair, self.row.flow_output or 0.0)

    def state(self, key: str, output: np.ndarray) -> FrameState:
        recording = self.recording if self.recording and self.recording.states else None
        return FrameState(
            index=self.row.index,
            key=key,
            anchor=self.previous is None,
            source=self.source,
            output=output,
            attention=recording,
            latents=self.fusion.recorded if self.fusion is not None else [],
        )


class CoherenceChain:
    """The coherence of one run: settings, the attention processors, the state files."""

    def __init__(self, config: CoherenceConfig, folder: RunFolder, rows: list[PlanRow]) -> None:
        self.settings = ChainSettings.from_config(config, rows)
        self.folder = folder
        self._attention: CrossFrameAttention | None = None

    def attention(self, pipe: Any) -> CrossFrameAttention | None:
        """The cross-frame processors on ``pipe``'s UNet (None: off), installed on first
        use and again whenever something replaced them (diffusers' attention slicing, an
        out-of-memory saver, installs its own processors on every layer)."""
        if not self.settings.attention:
            return None
        if self._attention is None or self._attention.unet is not pipe.unet:
            self._attention = CrossFrameAttention(pipe.unet, self.settings.layers)
        else:
            self._attention.ensure_installed()
        return self._attention

    def close(self) -> None:
        """Give the UNet its own processors back (the renderer may serve other work)."""
        if self._attention is not None:
            self._attention.remove()
            self._attention = None

    def store(self, state: FrameState) -> None:
        """Write what ``state`` hands on, before its frame's manifest line."""
        if state.latents:
            save_latents(state.latents, self.folder.coherence_latents(state.key))
        if state.attention is not None:
            state.attention.save(self.folder.anchor_attention(state.key))

    def committed(self, previous: FrameState | None) -> None:
        """The frame after ``previous`` is recorded: ``previous``'s attention recording is
        no longer needed unless it anchors its segment."""
        if previous is not None and not (previous.anchor and self.settings.uses_first):
            self.folder.anchor_attention(previous.key).unlink(missing_ok=True)

    def restore(self, state: FrameState, device: torch.device) -> bool:
        """Fill a reused frame's recordings from the run folder; False if one is missing
        (it must then be rebuilt by rendering the frame again). A blank frame recorded
        nothing."""
        if state.blank:
            return True
        if self.settings.flow:
            latents = load_latents(self.folder.coherence_latents(state.key), device)
            if latents is None:
                return False
            state.latents = latents
        if self.settings.records(state.anchor):
            path = self.folder.anchor_attention(state.key)
            if not path.is_file():
                return False
            state.attention = AttentionCache.load(path, device)
        return True
