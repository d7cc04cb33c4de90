"""A frame's initial noise as A1111 shapes it: variation seed, seed resize, noise multiplier.

diffusers draws each frame's initial noise from the frame's own generator (seeded by its
row), so a frame gets the same numbers alone or in a batch, after a resume or on another
worker. A1111 shapes that noise three ways, each a per-frame value of the plan row:

* **Variation seed** (``subseed``, ``subseed_strength``): the noise is the spherical
  interpolation of the seed's noise and the subseed's, ``subseed_strength`` of the way
  (A1111's ``slerp``, over the rows of each channel: a (C, H, W) tensor's dim 1). The
  subseed's noise is the noise the subseed would give as a seed: drawn the way the
  pipeline draws its own (the same draws before it, :class:`NoiseDraw`), so strength 1
  renders exactly the subseed's frame and strength 0 the seed's.
* **Seed resize** (``seed_resize_from_w/h``): the noise (with its variation) drawn at that
  size and pasted into the centre of the frame's own noise, cropped where it is larger;
  so a composition found at one size keeps its layout at another.
* **Noise multiplier** (A1111's ``initial_noise_multiplier``): img2img's starting noise
  scaled, after the above, as A1111 scales it (txt2img has none).

img2img adds the noise to the encoded input with one call, ``scheduler.add_noise(latents,
noise, timestep)``, inside the pipeline: for one call that method is wrapped
(:func:`initial_noise`) to shape each sample's noise. A call that starts from noise alone
(txt2img, an inpainting checkpoint at strength 1) takes the shaped noise as its
``latents`` (:func:`starting_latents`), drawn from the frame's generator first so the
generator then stands where the pipeline would have left it (an ancestral sampler's
step noise comes next, from the seed alone, as in A1111). Frames whose noise A1111 would
not shape are left to diffusers untouched.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from pipeline.errors import RotoscopeError
from pipeline.plan.rows import PlanRow


@dataclass(frozen=True)
class FrameNoise:
    """How one frame's initial noise departs from the one its seed draws."""

    seed: int
    multiplier: float = 1.0
    subseed: int | None = None
    subseed_strength: float = 0.0
    resize_from: tuple[int, int] | None = None  # (width, height) in pixels

    @classmethod
    def of(cls, row: PlanRow) -> FrameNoise:
        resize = None
        if row.seed_resize_from_w is not None and row.seed_resize_from_h is not None:
            resize = (row.seed_resize_from_w, row.seed_resize_from_h)
        return cls(
            seed=row.seed,
            multiplier=1.0 if row.noise_multiplier is None else row.noise_multiplier,
            subseed=row.subseed,
            subseed_strength=row.subseed_strength or 0.0,
            resize_from=resize,
        )

    @property
    def varied(self) -> bool:
        return self.subseed is not None and self.subseed_strength != 0

    @property
    def shaped(self) -> bool:
        """Whether the noise itself differs from the seed's (a multiplier only scales it)."""
        return self.varied or self.resize_from is not None

    @property
    def plain(self) -> bool:
        return not self.shaped and self.multiplier == 1


def slerp(strength: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """A1111's spherical interpolation of two (C, H, W) noise tensors, ``strength`` of the
    way from ``low`` to ``high``, each column of each channel on its own great circle
    (norms and angles over dim 1). Nearly parallel columns (A1111: a mean cosine above
    0.9995, a subseed equal to the seed) interpolate linearly."""
    low_unit = low / torch.norm(low, dim=1, keepdim=True)
    high_unit = high / torch.norm(high, dim=1, keepdim=True)
    cosine = (low_unit * high_unit).sum(1)
    if cosine.mean() > PARALLEL:
        return low * (1 - strength) + high * strength
    omega = torch.acos(cosine)
    sine = torch.sin(omega)
    to_low = (torch.sin((1.0 - strength) * omega) / sine).unsqueeze(1)
    to_high = (torch.sin(strength * omega) / sine).unsqueeze(1)
    return to_low * low + to_high * high


PARALLEL = 0.9995


@dataclass(frozen=True)
class NoiseDraw:
    """How the pipeline draws a seed's initial noise from a fresh CPU generator: after
    ``before`` draws of the same shape (the VAE's latent sample, in img2img) in
    ``before_dtype``, in ``dtype``. Another seed's noise drawn the same way is the noise
    that seed would give."""

    before: int
    before_dtype: torch.dtype
    dtype: torch.dtype

    def draw(self, seed: int, shape: Sequence[int]) -> torch.Tensor:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        for _ in range(self.before):
            torch.randn((1, *shape), generator=generator, dtype=self.before_dtype)
        return torch.randn((1, *shape), generator=generator, dtype=self.dtype)[0]


def noise_draw(seed: int, drawn: torch.Tensor) -> NoiseDraw:
    """How the pipeline drew ``drawn`` (one sample's noise) from ``seed``: found by
    drawing it again each way the pipelines draw it, and checked to be identical."""
    target = drawn.detach().to("cpu")
    for candidate in (
        NoiseDraw(1, drawn.dtype, drawn.dtype),  # img2img: the VAE's sample, then the noise
        NoiseDraw(0, drawn.dtype, drawn.dtype),  # the noise first (inpainting at strength 1)
        NoiseDraw(1, torch.float32, drawn.dtype),  # a VAE upcast to float32 (SDXL in fp16)
    ):
        if torch.equal(candidate.draw(seed, target.shape), target):
            return candidate
    raise RotoscopeError(
        f"cannot tell how the pipeline drew seed {seed}'s noise, which a variation seed or "
        "seed resize needs",
        "render without subseed_strength / seed_resize_from_w/h, and report this",
    )


def shaped_noise(
    spec: FrameNoise, drawn: torch.Tensor, draw: NoiseDraw, scale_factor: int
) -> torch.Tensor:
    """One frame's initial noise (C, H, W) from ``drawn``, the seed's own: varied toward
    the subseed's, drawn at the seed-resize size and pasted at the centre (the multiplier
    is the caller's). ``scale_factor`` is the VAE's (pixels per latent pixel)."""
    if not spec.shaped:
        return drawn
    shape = tuple(drawn.shape)
    if spec.resize_from is not None:
        width, height = spec.resize_from
        shape = (drawn.shape[0], height // scale_factor, width // scale_factor)
        own = draw.draw(spec.seed, shape).to(torch.float32)
    else:
        own = drawn.to("cpu", torch.float32)
    if spec.varied:
        assert spec.subseed is not None
        other = draw.draw(spec.subseed, shape).to(torch.float32)
        own = slerp(spec.subseed_strength, own, other)
    return centred(own, drawn.to("cpu", torch.float32)).to(drawn.device, drawn.dtype)


def centred(small: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    """``frame`` with ``small`` pasted at its centre, as A1111 places resized seed noise:
    offsets of half the size difference (floored), ``small`` cropped at its own centre
    where it is larger."""
    if small.shape == frame.shape:
        return small
    result = frame.clone()
    (_, height, width), (_, small_h, small_w) = frame.shape, small.shape
    dx, dy = (width - small_w) // 2, (height - small_h) // 2
    w = small_w if dx >= 0 else small_w + 2 * dx
    h = small_h if dy >= 0 else small_h + 2 * dy
    tx, ty = max(dx, 0), max(dy, 0)
    sx, sy = max(-dx, 0), max(-dy, 0)
    result[:, ty : ty + h, tx : tx + w] = small[:, sy : sy + h, sx : sx + w]
    return result


@contextmanager
def initial_noise(
    scheduler: Any, frames: Sequence[FrameNoise], scale_factor: int
) -> Iterator[None]:
    """Within the block, ``scheduler.add_noise`` shapes the noise of sample ``i`` as
    ``frames[i]`` says (one per frame of the call, in batch order); a no-op when no frame
    needs it."""
    if all(spec.plain for spec in frames):
        yield
        return
    original = scheduler.add_noise

    def add_noise(original_samples: Any, noise: Any, timesteps: Any) -> Any:
        if noise.shape[0] != len(frames):
            raise ValueError(f"{noise.shape[0]} noise samples for {len(frames)} frames")
        if any(spec.shaped for spec in frames):
            noise = torch.stack([
                shaped_noise(spec, noise[i], noise_draw(spec.seed, noise[i]), scale_factor)
                for i, spec in enumerate(frames)
            ])  # fmt: skip
        scale = torch.tensor([s.multiplier for s in frames], dtype=noise.dtype, device=noise.device)
        return original(original_samples, noise * scale.reshape(-1, *[1] * (noise.ndim - 1)),
                        timesteps)  # fmt: skip

    scheduler.add_noise = add_noise
    try:
        yield
    finally:
        del scheduler.add_noise  # the class's own method again


def starting_latents(
    frames: Sequence[FrameNoise],
    generators: Sequence[torch.Generator],
    shape: Sequence[int],
    dtype: torch.dtype,
    device: torch.device,
    scale_factor: int,
) -> torch.Tensor | None:
    """The ``latents`` argument of a call that starts from noise alone: each frame's noise
    drawn from its own generator as the pipeline draws it (``shape`` is one sample's,
    (C, H, W)), then shaped; None when no frame's noise is shaped (the pipeline draws it
    as always)."""
    if not any(spec.shaped for spec in frames):
        return None
    from diffusers.utils.torch_utils import randn_tensor

    draw = NoiseDraw(0, dtype, dtype)
    samples = []
    for spec, generator in zip(frames, generators, strict=True):
        drawn = randn_tensor((1, *shape), generator=generator, device=device, dtype=dtype)[0]
        samples.append(shaped_noise(spec, drawn, draw, scale_factor))
    return torch.stack(samples)
