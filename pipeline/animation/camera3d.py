"""Deforum's 3D camera: the previous frame lifted by its depth and seen by a moved camera.

Deforum's 3D mode (its ``anim_frame_warp_3d`` and ``transform_image_3d``, after Disco
Diffusion) moves a perspective camera through the previous output. This is rotoscope's
own implementation of that model, in torch (``grid_sample`` on the device the frames
render on):

- Every pixel is a point ``(u, v, z)``: its place on the frame in ``grid_sample``'s
  coordinates (``u``, ``v`` from -1 to 1, left to right and top to bottom, at pixel
  centres) and its depth ``z`` (1 at the nearest point, 2 at the farthest: see
  :mod:`pipeline.models.depth`; 1 everywhere without a depth map).
- Two perspective cameras see these points: the still one, and the moved one, rotated
  by ``R`` and translated by ``T`` the way PyTorch3D's cameras are (a point ``p`` is at
  ``p @ R + T`` in the moved camera's view, row vectors). Each projects a point to
  ``(x / (t a z), y / (t z))``, with ``t = tan(fov / 2)`` and ``a`` the aspect ratio (the
  x and y of PyTorch3D's ``FoVPerspectiveCameras``). Its near and far planes bound the
  depth buffer of that projection, which a warp does not use: as in Deforum they are
  checked and recorded, and change no pixel.
- A pixel's motion is the difference of its two projections, and each output pixel
  samples the previous frame at its own place minus that motion: a backward warp that
  takes the motion at the output pixel for the motion at its source, which is exact for
  a uniform motion and close for the small steps of an animation.

Units and signs are Deforum's, so imported settings move the same way: translations are
divided by 200 (Disco's scale, the distance to the nearest point), ``translation_x`` > 0
moves the camera right (the picture left), ``translation_y`` > 0 the picture down,
``translation_z`` > 0 forward (a zoom in, nearer points growing faster); rotations are in
degrees, composed as XYZ Euler angles (``R = Rx Ry Rz``, PyTorch3D's
``euler_angles_to_matrix(..., "XYZ")``), ``rotation_3d_y`` > 0 turning the camera right
(the picture pans left).

One deliberate difference: Deforum puts the points at ``linspace(-1, 1)`` (the edge
pixels' centres at -1 and 1) but samples on ``grid_sample``'s pixel-centre grid; here
both are the pixel centres, so the still camera maps every pixel exactly onto itself
and a camera that does not move returns the frame (to rounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.errors import RotoscopeError

# Deforum's (and Disco Diffusion's) translation units: 200 per unit of depth.
TRANSLATION_SCALE = 1.0 / 200.0
# A point the move puts this close to the camera, or behind it, has no place on the
# frame: its pixel is filled like the area the move uncovers.
MIN_DEPTH = 1e-3
PADDING_MODES = ("border", "reflection", "zeros")
SAMPLING_MODES = ("bicubic", "bilinear", "nearest")


@dataclass(frozen=True)
class CameraStep3D:
    """One frame's 3D camera move and lens (Deforum's units, see the module notes)."""

    translation_x: float = 0.0
    translation_y: float = 0.0
    translation_z: float = 0.0
    rotation_x: float = 0.0  # degrees
    rotation_y: float = 0.0
    rotation_z: float = 0.0
    fov: float = 70.0  # degrees
    near: float = 200.0
    far: float = 10000.0
    aspect_ratio: float = 1.0

    def is_still(self) -> bool:
        """No translation and no rotation: the camera sees what it saw."""
        return not any(
            (self.translation_x, self.translation_y, self.translation_z,
             self.rotation_x, self.rotation_y, self.rotation_z)
        )  # fmt: skip


def rotation_matrix(x_degrees: float, y_degrees: float, z_degrees: float) -> torch.Tensor:
    """``Rx @ Ry @ Rz`` (float64): the rotation of XYZ Euler angles, as PyTorch3D builds it.

    Each is the right-handed rotation about its axis (``Rx = [[1, 0, 0], [0, c, -s],
    [0, s, c]]`` and so on); a point rotates as the row vector ``p @ R``.
    """
    x, y, z = (math.radians(value) for value in (x_degrees, y_degrees, z_degrees))
    about_x = torch.tensor(
        [[1.0, 0.0, 0.0], [0.0, math.cos(x), -math.sin(x)], [0.0, math.sin(x), math.cos(x)]],
        dtype=torch.float64,
    )
    about_y = torch.tensor(
        [[math.cos(y), 0.0, math.sin(y)], [0.0, 1.0, 0.0], [-math.sin(y), 0.0, math.cos(y)]],
        dtype=torch.float64,
    )
    about_z = torch.tensor(
        [[math.cos(z), -math.sin(z), 0.0], [math.sin(z), math.cos(z), 0.0], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
    )
    return about_x @ about_y @ about_z


def pixel_centres(count: int, device: torch.device) -> torch.Tensor:
    """The ``grid_sample`` coordinates of ``count`` pixel centres (``align_corners=False``)."""
    return (torch.arange(count, device=device, dtype=torch.float32) * 2 + 1) / count - 1


def sampling_grid(depth: torch.Tensor, step: CameraStep3D) -> torch.Tensor:
    """Where each output pixel samples the previous frame: a ``(1, H, W, 2)`` grid of
    ``grid_sample`` coordinates, from the ``H x W`` depth map and the camera step."""
    check_lens(step)
    height, width = depth.shape
    device = depth.device
    v, u = torch.meshgrid(pixel_centres(height, device), pixel_centres(width, device),
                          indexing="ij")  # fmt: skip
    z = depth.to(torch.float32)
    points = torch.stack((u, v, z), dim=-1)
    rotation = rotation_matrix(step.rotation_x, step.rotation_y, step.rotation_z)
    translation = torch.tensor(
        [
            -step.translation_x * TRANSLATION_SCALE,
            step.translation_y * TRANSLATION_SCALE,
            -step.translation_z * TRANSLATION_SCALE,
        ],
        dtype=torch.float64,
    )
    moved = points @ rotation.to(device, torch.float32) + translation.to(device, torch.float32)
    scale_x = 1.0 / (math.tan(math.radians(step.fov) / 2) * step.aspect_ratio)
    scale_y = 1.0 / math.tan(math.radians(step.fov) / 2)
    moved_z = moved[..., 2]
    visible = moved_z > MIN_DEPTH
    moved_z = torch.where(visible, moved_z, torch.ones_like(moved_z))
    motion_x = moved[..., 0] * scale_x / moved_z - u * scale_x / z
    motion_y = moved[..., 1] * scale_y / moved_z - v * scale_y / z
    grid = torch.stack((u - motion_x, v - motion_y), dim=-1)
    # far outside the frame: filled as the padding mode fills what the move uncovers
    grid = torch.where(visible[..., None], grid, torch.full_like(grid, 4.0))
    return grid[None]


def warp_3d(
    image: np.ndarray,
    depth: np.ndarray | None,
    step: CameraStep3D,
    *,
    padding_mode: str = "border",
    sampling_mode: str = "bicubic",
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """``image`` (RGB uint8 ``H x W x 3``) as the camera sees it after ``step``, through
    ``depth`` (``H x W``, 1 nearest to 2 farthest; None: a flat scene at depth 1).

    ``padding_mode`` fills what the move uncovers (``border``, ``reflection``, ``zeros``)
    and ``sampling_mode`` resamples (``bicubic``, ``bilinear``, ``nearest``), as torch's
    ``grid_sample`` names them and Deforum's settings do. This is the whole warp, reusable
    by anything that moves a picture with the 3D camera (a loopback frame, the frames
    between diffused ones).
    """
    if padding_mode not in PADDING_MODES:
        raise RotoscopeError(
            f"unknown padding mode '{padding_mode}'", f"use one of: {', '.join(PADDING_MODES)}"
        )
    if sampling_mode not in SAMPLING_MODES:
        raise RotoscopeError(
            f"unknown sampling mode '{sampling_mode}'", f"use one of: {', '.join(SAMPLING_MODES)}"
        )
    target = torch.device(device)
    grid = sampling_grid(depth_tensor(depth, image.shape, target), step)
    pixels = torch.tensor(image, device=target)  # a copy: frames may be read-only views
    pixels = pixels.permute(2, 0, 1)[None].to(torch.float32)
    warped = F.grid_sample(
        pixels, grid, mode=sampling_mode, padding_mode=padding_mode, align_corners=False
    )
    out = warped[0].permute(1, 2, 0).clamp(0, 255).round().to(torch.uint8)
    return out.cpu().numpy()


def sample_3d(
    maps: np.ndarray,
    depth: np.ndarray | None,
    step: CameraStep3D,
    *,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Float maps (``H x W x C``: a depth map carried with its picture, a flow field) moved
    by ``step`` as :func:`warp_3d` moves a picture through ``depth`` (the same sampling
    grid), bilinear, with the border's values where the move uncovers; float32 out."""
    target = torch.device(device)
    grid = sampling_grid(depth_tensor(depth, maps.shape, target), step)
    values = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32)).to(target)
    warped = F.grid_sample(
        values.permute(2, 0, 1)[None], grid, mode="bilinear", padding_mode="border",
        align_corners=False,
    )  # fmt: skip
    return np.ascontiguousarray(warped[0].permute(1, 2, 0).cpu().numpy())


def depth_tensor(
    depth: np.ndarray | None, shape: tuple[int, ...], device: torch.device
) -> torch.Tensor:
    """``depth`` (or a flat scene at depth 1) as a tensor for pictures of ``shape``."""
    height, width = shape[:2]
    if depth is None:
        return torch.ones((height, width), dtype=torch.float32, device=device)
    if depth.shape != (height, width):
        raise ValueError(f"depth map {depth.shape} does not match the picture {shape}")
    return torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32)).to(device)


def check_lens(step: CameraStep3D) -> None:
    """Refuse a lens the projection has no meaning for (the plan checks each frame's
    schedule values first, naming the key; this guards direct callers)."""
    if not 0 < abs(step.fov) < 180:
        raise RotoscopeError(f"fov {step.fov:g} is not a field of view between 0 and 180 degrees")
    if step.near >= step.far:
        raise RotoscopeError(f"near plane {step.near:g} is not in front of far plane {step.far:g}")
    if step.aspect_ratio == 0:
        raise RotoscopeError("aspect ratio 0")
