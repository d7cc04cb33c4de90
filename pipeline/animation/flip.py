"""Deforum's perspective flip: the picture tilted as a plane in 3D and seen in perspective.

The frame is a flat rectangle facing a pinhole camera with a field of view of ``fv``
degrees, at the distance where the rectangle's diagonal fills that view. The rectangle
turns about its centre by ``phi`` degrees about the horizontal axis, ``gamma`` about the
vertical axis and ``theta`` in its own plane (Deforum's ``getRotationMatrixManual``:
``R = Rx(phi) Ry(gamma) Rz(theta)``), and its corners are projected back onto the frame;
the homography between the corners before and after is the flip. Angles of 0 give the
identity; a smaller ``fv`` brings the camera closer, so the same tilt foreshortens more.

One deliberate difference: Deforum composes its re-centring translation on the wrong
side of the homography (``M @ T`` where ``T @ M`` centres it), which turns the plane about
a point right of and below the frame's centre (for 512x512 at ``fv`` 53, about pixel
(404, 404)) and drops the 2D translation when the flip is on; here the plane turns about
the frame's centre and the 2D move is kept.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def flip_matrix(
    width: int, height: int, theta: float, phi: float, gamma: float, fv: float
) -> np.ndarray:
    """The 3x3 homography (pixel-centre coordinates, source to destination) of a flip."""
    if not 0 < fv < 180:
        raise ValueError(f"perspective flip fv {fv:g} is not between 0 and 180 degrees")
    half = math.radians(fv) / 2
    diagonal = math.hypot(width, height)
    distance = diagonal / (2 * math.sin(half))  # where the diagonal fills the view
    rotation = _rotation(math.radians(phi), math.radians(gamma), math.radians(theta))
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    corners = np.array(
        [[-width / 2, -height / 2], [width / 2, -height / 2],
         [width / 2, height / 2], [-width / 2, height / 2]]
    )  # fmt: skip
    turned = np.column_stack([corners, np.zeros(4)]) @ rotation.T
    projected = turned[:, :2] * (distance / (distance - turned[:, 2:3]))
    return cv2.getPerspectiveTransform(
        (corners + centre).astype(np.float32), (projected + centre).astype(np.float32)
    )


def _rotation(phi: float, gamma: float, theta: float) -> np.ndarray:
    cos, sin = math.cos, math.sin
    about_x = np.array([[1, 0, 0], [0, cos(phi), -sin(phi)], [0, sin(phi), cos(phi)]])
    about_y = np.array([[cos(gamma), 0, sin(gamma)], [0, 1, 0], [-sin(gamma), 0, cos(gamma)]])
    about_z = np.array([[cos(theta), -sin(theta), 0], [sin(theta), cos(theta), 0], [0, 0, 1]])
    return about_x @ about_y @ about_z
