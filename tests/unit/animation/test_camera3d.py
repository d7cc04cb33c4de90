"""The 3D camera against hand computations: Deforum's model, worked out on paper.

A pixel at grid place (u, v) with depth z is the point (u, v, z); the still camera sees
it at (u / (t a z), v / (t z)) with t = tan(fov / 2), the moved one at the same
projection of p @ R + T with T = (-x, y, -z) / 200; the output pixel samples the input
at (u, v) minus the difference. Each case below solves that by hand for one move.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.animation.camera3d import CameraStep3D, check_lens, sampling_grid, warp_3d
from pipeline.errors import RotoscopeError

HEIGHT, WIDTH = 24, 32


def places() -> tuple[torch.Tensor, torch.Tensor]:
    """Every pixel centre's (u, v) in grid_sample's coordinates, by hand."""
    u = torch.tensor([(2 * x + 1) / WIDTH - 1 for x in range(WIDTH)])
    v = torch.tensor([(2 * y + 1) / HEIGHT - 1 for y in range(HEIGHT)])
    return u[None, :].expand(HEIGHT, WIDTH), v[:, None].expand(HEIGHT, WIDTH)


def grid_of(depth: torch.Tensor, **move: float) -> tuple[torch.Tensor, torch.Tensor]:
    grid = sampling_grid(depth, CameraStep3D(**move))[0]
    return grid[..., 0], grid[..., 1]


def two_depths() -> torch.Tensor:
    """The left half at depth 1 (near), the right half at depth 2 (far)."""
    depth = torch.ones(HEIGHT, WIDTH)
    depth[:, WIDTH // 2 :] = 2.0
    return depth


def random_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


@pytest.mark.parametrize("fov", [40.0, 70.0, 120.0])
def test_a_still_camera_returns_the_frame(fov: float) -> None:
    image = random_image()
    depth = np.random.default_rng(1).uniform(1, 2, (HEIGHT, WIDTH)).astype(np.float32)
    for sampling in ("bicubic", "bilinear", "nearest"):
        out = warp_3d(image, depth, CameraStep3D(fov=fov, aspect_ratio=1.5),
                      sampling_mode=sampling)  # fmt: skip
        assert np.abs(out.astype(int) - image).max() <= 1  # within 1/255


def test_moving_forward_zooms_about_the_centre_by_the_hand_computed_factor() -> None:
    # flat depth 1, forward by d = 20 / 200: every place u samples u * k with
    # k = 1 - d / (t a (1 - d)), a zoom about the centre by 1 / k
    fov, aspect, forward = 70.0, 1.0, 20.0
    t, d = math.tan(math.radians(fov) / 2), forward / 200
    k = 1 - d / (t * aspect * (1 - d))
    u, v = places()
    grid_u, grid_v = grid_of(torch.ones(HEIGHT, WIDTH), translation_z=forward, fov=fov)
    assert torch.allclose(grid_u, u * k, atol=1e-6)
    assert torch.allclose(grid_v, v * k, atol=1e-6)
    # a bright dot right of and above the centre moves away from it by 1 / k
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[7:9, 22:24] = 255
    out = warp_3d(image, None, CameraStep3D(translation_z=forward, fov=fov))
    rows, cols = np.nonzero(out[..., 0] > 100)
    centre = ((WIDTH - 1) / 2, (HEIGHT - 1) / 2)
    assert abs(cols.mean() - (centre[0] + (22.5 - centre[0]) / k)) < 0.6
    assert abs(rows.mean() - (centre[1] + (7.5 - centre[1]) / k)) < 0.6


def test_moving_forward_has_parallax_by_depth() -> None:
    # per pixel: k(z) = 1 - d / (t a z (z - d)): nearer points grow faster
    fov, forward = 70.0, 10.0
    t, d = math.tan(math.radians(fov) / 2), forward / 200
    depth = two_depths()
    u, _ = places()
    k = 1 - d / (t * depth * (depth - d))
    grid_u, _ = grid_of(depth, translation_z=forward, fov=fov)
    assert torch.allclose(grid_u, u * k, atol=1e-6)
    near_pull = (1 - k[0, 0]).item()
    far_pull = (1 - k[0, -1]).item()
    assert near_pull > 3 * far_pull  # 1 / (z (z - d)): about 4x between depth 1 and 2


def test_sideways_moves_shift_by_one_over_depth() -> None:
    # R = I: the grid moves by x / (200 t a z) and -y / (200 t z), exactly (y = -2: up)
    fov, aspect = 60.0, 1.25
    t = math.tan(math.radians(fov) / 2)
    depth = two_depths()
    u, v = places()
    grid_u, grid_v = grid_of(
        depth, translation_x=4.0, translation_y=-2.0, fov=fov, aspect_ratio=aspect
    )
    assert torch.allclose(grid_u, u + 4.0 / (200 * t * aspect * depth), atol=1e-6)
    assert torch.allclose(grid_v, v + 2.0 / (200 * t * depth), atol=1e-6)
    # +x samples from the right: the camera moves right, the picture left
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[10:14, 14:18] = 255
    moved = warp_3d(image, None, CameraStep3D(translation_x=20.0, fov=fov))
    assert np.nonzero(moved[..., 0] > 100)[1].mean() < 15.5


def test_turning_about_y_pans() -> None:
    # p @ Ry = (u cos - z sin, v, u sin + z cos); at the centre column (u = 0) the grid
    # moves by exactly tan(angle) / (t a), whatever the depth: a pan
    angle, fov = 3.0, 70.0
    t = math.tan(math.radians(fov) / 2)
    theta = math.radians(angle)
    depth = two_depths()
    u, v = places()
    grid_u, grid_v = grid_of(depth, rotation_y=angle, fov=fov)
    moved_u = u * math.cos(theta) - depth * math.sin(theta)
    moved_z = u * math.sin(theta) + depth * math.cos(theta)
    expected_u = u - (moved_u / (t * moved_z) - u / (t * depth))
    expected_v = v - (v / (t * moved_z) - v / (t * depth))
    assert torch.allclose(grid_u, expected_u, atol=1e-5)
    assert torch.allclose(grid_v, expected_v, atol=1e-5)
    shift = grid_u - u
    pan = math.tan(theta) / t
    centre = shift[:, WIDTH // 2 - 1 : WIDTH // 2 + 1]  # the columns either side of u = 0
    assert torch.allclose(centre, torch.full_like(centre, pan), rtol=0.05)  # near and far
    assert (shift > 0).all()  # the whole picture moves one way: a pan, not a zoom
    # +y turns the camera right: the picture pans left
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[10:14, 14:18] = 255
    turned = warp_3d(image, None, CameraStep3D(rotation_y=angle, fov=fov))
    expected_cols = 15.5 - pan * WIDTH / 2
    assert abs(np.nonzero(turned[..., 0] > 100)[1].mean() - expected_cols) < 0.6


def test_turning_about_z_rolls_about_the_centre() -> None:
    # p @ Rz = (u cos + v sin, -u sin + v cos, z): with flat depth the grid is that
    # rotation of (u, v) scaled about the centre by 1 / (t z), as Deforum's roll is
    angle, fov = 2.0, 70.0
    t = math.tan(math.radians(fov) / 2)
    theta = math.radians(angle)
    u, v = places()
    grid_u, grid_v = grid_of(torch.ones(HEIGHT, WIDTH), rotation_z=angle, fov=fov)
    rolled_u = u * math.cos(theta) + v * math.sin(theta)
    rolled_v = -u * math.sin(theta) + v * math.cos(theta)
    assert torch.allclose(grid_u, u - (rolled_u - u) / t, atol=1e-6)
    assert torch.allclose(grid_v, v - (rolled_v - v) / t, atol=1e-6)


def test_padding_and_sampling_modes() -> None:
    image = random_image(2)
    step = CameraStep3D(translation_x=40.0, fov=70.0)  # uncovers the right edge
    zeros = warp_3d(image, None, step, padding_mode="zeros", sampling_mode="nearest")
    assert (zeros[:, -2:] == 0).all()
    border = warp_3d(image, None, step, padding_mode="border", sampling_mode="nearest")
    assert (border[:, -2:] == image[:, -1:]).all()
    reflection = warp_3d(image, None, step, padding_mode="reflection", sampling_mode="nearest")
    assert not np.array_equal(reflection[:, -2:], border[:, -2:])
    # nearest picks input pixels: every output colour is one of the input's
    colours = {tuple(pixel) for pixel in image.reshape(-1, 3)}
    assert {tuple(pixel) for pixel in border.reshape(-1, 3)} <= colours
    with pytest.raises(RotoscopeError, match="padding mode 'edge'"):
        warp_3d(image, None, step, padding_mode="edge")
    with pytest.raises(RotoscopeError, match="sampling mode"):
        warp_3d(image, None, step, sampling_mode="area")


@pytest.mark.parametrize(
    ("lens", "problem"),
    [({"fov": 0.0}, "fov"), ({"fov": 180.0}, "fov"), ({"near": 5.0, "far": 5.0}, "near plane")],
)
def test_a_lens_without_meaning_is_refused(lens: dict[str, float], problem: str) -> None:
    with pytest.raises(RotoscopeError, match=problem):
        check_lens(CameraStep3D(**lens))
