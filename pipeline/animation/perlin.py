"""Perlin noise: the envelope that gives Deforum's "perlin" noise type its patches.

Deforum's Perlin noise is white noise times ``(perlin + 1) / 2``, a smooth gradient
noise summed over octaves: each octave has twice the lattice cells of the one before
and ``persistence`` times its amplitude. So some areas of the loopback input get more
fresh noise than others, in blobs about a lattice cell across, and img2img repaints
unevenly instead of everywhere alike. This is rotoscope's own gradient noise (random
unit gradients at the lattice points, the quintic fade ``6t^5 - 15t^4 + 10t^3``
between them); the lattice is laid over the whole frame, whatever its size (Deforum
crops its size to multiples of 64 and stretches the result back).
"""

from __future__ import annotations

import math

import numpy as np


def perlin_envelope(
    height: int,
    width: int,
    cells_x: int,
    cells_y: int,
    octaves: int,
    persistence: float,
    seed: int,
) -> np.ndarray:
    """``(perlin + 1) / 2`` over an ``height x width`` frame (float32, about 0..1 with one
    octave; more octaves add their amplitudes), drawn from ``seed`` alone."""
    if octaves < 1 or cells_x < 1 or cells_y < 1:
        raise ValueError("Perlin noise needs at least one octave and one cell each way")
    # its own stream: the white noise it shapes is drawn from the seed too
    rng = np.random.Generator(np.random.PCG64([seed, 0x9E3779B9]))
    total = np.zeros((height, width), dtype=np.float64)
    amplitude = 1.0
    for octave in range(octaves):
        total += amplitude * gradient_noise(
            height, width, cells_x * 2**octave, cells_y * 2**octave, rng
        )
        amplitude *= persistence
    return ((total + 1.0) / 2.0).astype(np.float32)


def gradient_noise(
    height: int, width: int, cells_x: int, cells_y: int, rng: np.random.Generator
) -> np.ndarray:
    """One octave of gradient noise, about -1..1, with ``cells_x`` by ``cells_y`` cells."""
    angles = rng.uniform(0.0, 2 * math.pi, size=(cells_y + 1, cells_x + 1))
    gradients = np.stack((np.cos(angles), np.sin(angles)), axis=-1)
    x = (np.arange(width) + 0.5) / width * cells_x  # pixel centres in lattice units
    y = (np.arange(height) + 0.5) / height * cells_y
    column, row = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - column, y - row

    def corner(dy: int, dx: int) -> np.ndarray:
        grad = gradients[(row + dy)[:, None], (column + dx)[None, :]]
        return grad[..., 0] * (fx - dx)[None, :] + grad[..., 1] * (fy - dy)[:, None]

    fade_x, fade_y = _fade(fx)[None, :], _fade(fy)[:, None]
    top = corner(0, 0) + fade_x * (corner(0, 1) - corner(0, 0))
    bottom = corner(1, 0) + fade_x * (corner(1, 1) - corner(1, 0))
    return math.sqrt(2) * (top + fade_y * (bottom - top))


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6 - 15) + 10)
