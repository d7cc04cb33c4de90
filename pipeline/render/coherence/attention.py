"""Cross-frame self-attention for frames rendered one at a time, with a storable cache.

In a UNet self-attention layer (``attn1``) every position of a frame attends to every
other position of the same frame. Cross-frame attention lets the current frame's queries
also attend to the keys and values of *anchor* frames (the first frame of its segment,
the previous frame, or both), so appearance is looked up from frames already rendered
instead of being invented again (Text2Video-Zero attends to the first frame,
ControlVideo to the first and the previous one).

Those methods render all frames in one batched call. rotoscope renders one frame at a
time and must resume anywhere, so an anchor's attention inputs are *recorded* while it
renders and *replayed* while later frames render:

* :class:`AttentionCache` holds, for one rendered frame, what each selected ``attn1``
  layer turns into keys and values (its hidden states after the layer's own norms),
  keyed by ``(layer name, step index)``, with the frame's timesteps. Hidden states are
  half the size of K and V together; K and V are recomputed from them by the layer's
  ``to_k``/``to_v``. The batch dimension is kept, so with classifier-free guidance the
  anchor's unconditional half (row 0) meets the current frame's unconditional queries
  and its conditional half the conditional ones. Stored as safetensors, bit-exact.
* :class:`CrossFrameAttention` installs a :class:`CrossFrameAttnProcessor` on each
  selected ``attn1`` of ``pipe.unet`` (a ControlNet's own layers are left alone),
  counts the UNet calls of a frame to know the step, and, for one frame
  (:meth:`CrossFrameAttention.frame`), records its cache and replays the anchors'.

The current frame keeps its own keys and values next to the anchors' (the anchors are
concatenated, not substituted), so content the anchors never saw, such as an area the
camera just revealed, can still attend to itself. When the only anchor is the frame's own
recording the result equals plain attention (to float rounding), which the tests check.

Steps: step ``i`` is the frame's ``i``-th UNet call. The anchors are used on steps
``i < ceil(fraction * n)``, ``n`` the frame's denoising steps; an anchor recorded with
another schedule (a different strength) is matched by nearest timestep.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from pipeline.atomic import atomic_path

# Where the anchors are used: the decoder (up blocks) decides appearance, the encoder
# keeps following the current frame's own structure.
LAYER_PREFIXES = {"up": ("up_blocks.",), "all": ("",)}


def self_attention_layers(unet: Any, layers: str) -> list[str]:
    """Names of the processors (``...attn1.processor``) that ``layers`` selects."""
    prefixes = LAYER_PREFIXES[layers]
    return [
        name
        for name in unet.attn_processors
        if name.endswith("attn1.processor") and name.startswith(prefixes)
    ]


def steps_covered(fraction: float, total: int) -> int:
    """How many of ``total`` steps the first ``fraction`` covers (ceil, within [0, total])."""
    return max(0, min(total, math.ceil(fraction * total - 1e-9)))


@dataclass
class AttentionCache:
    """One frame's recorded attention inputs: ``states[(layer, step)]`` is ``B x N x C``."""

    states: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)
    timesteps: list[float] = field(default_factory=list)

    def lookup(self, layer: str, step: int, timestep: float | None) -> torch.Tensor | None:
        """The state for ``layer`` at the recorded step matching ``step`` and ``timestep``."""
        off_schedule = step >= len(self.timesteps) or self.timesteps[step] != timestep
        if timestep is not None and self.timesteps and off_schedule:
            step = min(range(len(self.timesteps)), key=lambda i: abs(self.timesteps[i] - timestep))
        return self.states.get((layer, step))

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """The states as named tensors (``<prefix><layer>|<step>``), for safetensors."""
        return {
            f"{prefix}{layer}|{step}": tensor.detach().contiguous().cpu()
            for (layer, step), tensor in self.states.items()
        }

    @classmethod
    def from_tensors(
        cls, tensors: dict[str, torch.Tensor], timesteps: list[float], prefix: str = ""
    ) -> AttentionCache:
        states = {}
        for name, tensor in tensors.items():
            if name.startswith(prefix):
                layer, step = name[len(prefix) :].rsplit("|", 1)
                states[(layer, int(step))] = tensor
        return cls(states, list(timesteps))

    def save(self, path: Path) -> None:
        """Write as safetensors, atomically; :meth:`load` gives it back bit for bit."""
        from safetensors.torch import save_file

        with atomic_path(path) as tmp:
            save_file(self.tensors(), str(tmp), metadata={"timesteps": json.dumps(self.timesteps)})

    @classmethod
    def load(cls, path: Path, device: torch.device | str = "cpu") -> AttentionCache:
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path), device=str(device))
        return cls.from_tensors(tensors, json.loads(metadata.get("timesteps", "[]")))


def pair_batch(anchor: torch.Tensor, batch: int) -> torch.Tensor:
    """An anchor's rows lined up with the current call's (CFG halves stay paired)."""
    if anchor.shape[0] == batch:
        return anchor
    if anchor.shape[0] == 1:
        return anchor.expand(batch, -1, -1)
    if batch == 1:  # anchor rendered with CFG, current frame without: its cond half
        return anchor[-1:]
    raise ValueError(f"an anchor of batch {anchor.shape[0]} cannot serve a batch of {batch}")


class CrossFrameAttnProcessor:
    """``attn1`` processor: scaled-dot-product attention with record and replay.

    Follows diffusers' ``AttnProcessor2_0`` step by step (spatial and group norms, 4-D
    inputs, masks, q/k norms, residual, output rescale), so with no anchors it computes
    what the default processor computes.
    """

    def __init__(self, controller: CrossFrameAttention, name: str) -> None:
        self.controller = controller
        self.name = name

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(
                attention_mask, sequence_length, batch_size
            )
            attention_mask = attention_mask.view(
                batch_size, attn.heads, -1, attention_mask.shape[-1]
            )
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        is_self = encoder_hidden_states is None
        if is_self:
            encoder_hidden_states = hidden_states
            self.controller.record(self.name, hidden_states)
            anchors = self.controller.anchor_states(self.name, batch_size)
        else:
            anchors = []
            if attn.norm_cross:
                encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        assert encoder_hidden_states is not None  # the frame's own states in self-attention
        context = torch.cat([encoder_hidden_states, *anchors], dim=1)
        if attention_mask is not None and anchors:  # anchor keys are never masked
            attention_mask = F.pad(attention_mask, (0, context.shape[1] - sequence_length))

        head_dim = query.shape[-1] // attn.heads

        def heads(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)

        query, key, value = heads(query), heads(attn.to_k(context)), heads(attn.to_v(context))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )
        out = out.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class CrossFrameAttention:
    """Installs cross-frame processors on a UNet and drives record and replay per frame.

    One frame at a time::

        attention = CrossFrameAttention(pipe.unet, "up")
        with attention.frame(pipe, anchors=[first, previous], fraction=0.5) as recording:
            image = pipe(...)
        # ``recording`` holds this frame's cache, an anchor for later frames

    ``anchors`` may be empty (a segment's first frame is only recorded); the same cache
    given twice is used once. :meth:`remove` restores the UNet's own processors.
    """

    def __init__(self, unet: Any, layers: str) -> None:
        self.unet = unet
        self.layers = self_attention_layers(unet, layers)
        if not self.layers:
            raise ValueError(f"the UNet has no self-attention layer in {layers!r}")
        self._original = dict(unet.attn_processors)
        self._processors = {name: CrossFrameAttnProcessor(self, name) for name in self.layers}
        unet.set_attn_processor({**self._original, **self._processors})
        self._hook = unet.register_forward_pre_hook(self._before_unet, with_kwargs=True)
        self._pipe: Any = None
        self._active = False
        self._anchors: list[AttentionCache] = []
        self._recording = AttentionCache()
        self._fraction = 0.0
        self._record_fraction = 0.0
        self._step = -1
        self._timestep: float | None = None
        self._use_steps = 0
        self._record_steps = 0

    def ensure_installed(self) -> None:
        """Put the cross-frame processors back where something replaced them (diffusers'
        attention slicing replaces every layer's processor)."""
        current = self.unet.attn_processors
        if any(current[name] is not processor for name, processor in self._processors.items()):
            self.unet.set_attn_processor({**current, **self._processors})

    def remove(self) -> None:
        """Put the UNet's own processors back and drop the step hook."""
        self.unet.set_attn_processor(self._original)
        self._hook.remove()

    @contextmanager
    def frame(
        self,
        pipe: Any,
        anchors: Sequence[AttentionCache],
        fraction: float,
        record_fraction: float,
    ) -> Iterator[AttentionCache]:
        """Render one frame inside this block; yields the cache it records into.

        ``fraction`` of the steps use the anchors; ``record_fraction`` of them are
        recorded for later frames (0: the frame is nobody's anchor; recording costs
        memory while the frame renders).
        """
        self._pipe = pipe
        self._anchors = list({id(cache): cache for cache in anchors}.values())
        self._recording = AttentionCache()
        self._fraction = fraction
        self._record_fraction = record_fraction
        self._step = -1
        self._active = True
        try:
            yield self._recording
        finally:
            self._active = False
            self._pipe = None
            self._anchors = []

    def _before_unet(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Count the frame's UNet calls and note each step's timestep."""
        if not self._active:
            return
        self._step += 1
        timestep = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        if torch.is_tensor(timestep):
            self._timestep = float(timestep.flatten()[0])
        else:
            self._timestep = None if timestep is None else float(timestep)
        if self._step == 0:
            total = int(getattr(self._pipe, "num_timesteps", 0) or 0)
            self._use_steps = steps_covered(self._fraction, total)
            self._record_steps = steps_covered(self._record_fraction, total)
        if self._step < self._record_steps and self._timestep is not None:
            self._recording.timesteps.append(self._timestep)

    def record(self, layer: str, states: torch.Tensor) -> None:
        """Keep ``states`` (a layer's attention input) if this step is recorded."""
        if self._active and 0 <= self._step < self._record_steps:
            self._recording.states[(layer, self._step)] = states.detach().clone()

    def anchor_states(self, layer: str, batch: int) -> list[torch.Tensor]:
        """The anchors' states for ``layer`` at this step (none outside the used steps)."""
        if not self._active or not 0 <= self._step < self._use_steps:
            return []
        found = []
        for cache in self._anchors:
            state = cache.lookup(layer, self._step, self._timestep)
            if state is not None:
                found.append(pair_batch(state, batch))
        return found
