"""RIFE 4.6 (Huang et al., "Real-Time Intermediate Flow Estimation for Video Frame
Interpolation", ECCV 2022; Practical-RIFE's v4.6 weights) written for rotoscope.

What the network does: it estimates, for the wanted moment ``t``, two flows from that
moment back to each frame and a blending mask, coarse to fine. Four levels see the frames
at 1/8, 1/4, 1/2 and full size; the first sees the two frames and ``t``, each later one
also the frames warped by the flows so far and the mask, and adds a correction. A level
is a flow block: two stride-2 convolutions, eight residual convolutions (each scaled by a
learned per-channel factor), and a transposed convolution with a pixel shuffle back to
the level's size, giving 4 flow channels, 1 mask channel (and one unused). The picture
is the two frames warped along their flows, blended by the sigmoid of the mask.

The module and parameter names follow the published weights (``block0.conv0.0.0``,
``block0.convblock.N.beta``, ``block0.lastconv.0``...) so Practical-RIFE's ``flownet.pkl``
(Deforum's ``RIFE46.pkl``) loads as it is; the channel widths are read from the file, so a
small random network of the same layout loads the same way (the tests' tiny RIFE).
Weights are read safely (:mod:`pipeline.models.safe_load`), never unpickled as code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import RotoscopeError
from pipeline.models.safe_load import load_weights

# Channels in of the first level (two RGB frames and the moment) and of the later ones
# (the two warped frames, the moment, the mask, and the 4 flow channels).
FIRST_INPUTS = 7
LATER_INPUTS = 12
OUTPUTS = 24  # before the pixel shuffle: 6 channels at twice the size
LEVELS = 4
RESIDUALS = 8
SCALES = (8, 4, 2, 1)  # how much each level shrinks the frames
SLOPE = 0.2  # of the leaky ReLUs


class _Residual(nn.Module):
    """A 3x3 convolution added back to its input, scaled per channel by ``beta``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x) * self.beta + x, SLOPE)


def _halving(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, 2, 1), nn.LeakyReLU(SLOPE))


class _FlowBlock(nn.Module):
    """One level: the flow and mask (or their corrections) from what it is shown."""

    def __init__(self, inputs: int, width: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_halving(inputs, width // 2), _halving(width // 2, width))
        self.convblock = nn.Sequential(*(_Residual(width) for _ in range(RESIDUALS)))
        self.lastconv = nn.Sequential(
            nn.ConvTranspose2d(width, OUTPUTS, 4, 2, 1), nn.PixelShuffle(2)
        )

    def forward(
        self, x: torch.Tensor, flow: torch.Tensor | None, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = _resized(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat((x, _resized(flow, 1.0 / scale) / scale), 1)
        out = _resized(self.lastconv(self.convblock(self.conv0(x))), scale)
        return out[:, :4] * scale, out[:, 4:5]


def _resized(x: torch.Tensor, factor: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` sampled at each pixel plus ``flow`` (pixels; bilinear, edges repeated)."""
    batch, _, height, width = flow.shape
    xs = torch.linspace(-1.0, 1.0, width, device=flow.device, dtype=flow.dtype)
    ys = torch.linspace(-1.0, 1.0, height, device=flow.device, dtype=flow.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    to_unit = torch.tensor(
        [2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], device=flow.device, dtype=flow.dtype
    )
    offsets = flow.permute(0, 2, 3, 1) * to_unit
    grid = torch.stack((grid_x, grid_y), -1).unsqueeze(0).expand(batch, -1, -1, -1) + offsets
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


class IFNet(nn.Module):
    """The four levels; ``widths`` are their channel counts (192, 128, 96, 64 published)."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.block0 = _FlowBlock(FIRST_INPUTS, widths[0])
        self.block1 = _FlowBlock(LATER_INPUTS, widths[1])
        self.block2 = _FlowBlock(LATER_INPUTS, widths[2])
        self.block3 = _FlowBlock(LATER_INPUTS, widths[3])

    def forward(
        self, first: torch.Tensor, second: torch.Tensor, moment: torch.Tensor, size: float = 1.0
    ) -> torch.Tensor:
        """The picture at ``moment`` (N x 1 x H x W, 0..1) between ``first`` and ``second``
        (N x 3 x H x W in [0, 1], sides a multiple of ``32 / size``); ``size`` < 1 lets
        every level see the frames smaller (for large frames)."""
        flow: torch.Tensor | None = None
        mask = torch.zeros_like(moment)
        warped_first, warped_second = first, second
        for block, shrink in zip(
            (self.block0, self.block1, self.block2, self.block3), SCALES, strict=True
        ):
            if flow is None:
                flow, mask = block(torch.cat((first, second, moment), 1), None, shrink / size)
            else:
                shown = torch.cat((warped_first, warped_second, moment, mask), 1)
                more_flow, more_mask = block(shown, flow, shrink / size)
                flow, mask = flow + more_flow, mask + more_mask
            warped_first = warp(first, flow[:, :2])
            warped_second = warp(second, flow[:, 2:4])
        weight = torch.sigmoid(mask)
        return warped_first * weight + warped_second * (1 - weight)


@dataclass
class LoadedRife:
    """RIFE ready to run on a device, at a precision."""

    network: IFNet
    device: torch.device
    dtype: torch.dtype

    @torch.inference_mode()
    def between(
        self, first: np.ndarray, second: np.ndarray, moments: list[float]
    ) -> list[np.ndarray]:
        """The pictures at ``moments`` between two RGB uint8 frames of one size."""
        height, width = first.shape[:2]
        size = 0.5 if max(height, width) > 2048 else 1.0  # Practical-RIFE's advice for 4K
        multiple = int(32 / size)
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        frames = [self._tensor(image, pad_h, pad_w) for image in (first, second)]
        pictures = []
        for moment in moments:
            shape = (1, 1, height + pad_h, width + pad_w)
            at = torch.full(shape, moment, device=self.device, dtype=self.dtype)
            out = self.network(frames[0], frames[1], at, size)[0, :, :height, :width]
            pixels = (out.float().clamp(0, 1) * 255.0).round().byte()
            pictures.append(pixels.permute(1, 2, 0).cpu().numpy())
        return pictures

    def _tensor(self, image: np.ndarray, pad_h: int, pad_w: int) -> torch.Tensor:
        tensor = torch.from_numpy(np.array(image)).to(self.device)  # a writable copy
        tensor = tensor.permute(2, 0, 1).unsqueeze(0).to(self.dtype) / 255.0
        return F.pad(tensor, (0, pad_w, 0, pad_h))


def load_rife(path: Path, device: torch.device, dtype: torch.dtype) -> LoadedRife:
    """RIFE 4.6 from ``path`` (``output.interpolation_model``), on ``device`` at ``dtype``."""
    state, _ = load_weights(path, "output.interpolation_model")
    if not isinstance(state, dict):
        raise _not_rife(path, f"it holds a {type(state).__name__}")
    state = {str(key).removeprefix("module."): value for key, value in state.items()}
    widths = []
    for level in range(LEVELS):
        first = state.get(f"block{level}.conv0.0.0.weight")
        last = state.get(f"block{level}.lastconv.0.weight")
        expected = FIRST_INPUTS if level == 0 else LATER_INPUTS
        if first is None or last is None or f"block{level}.convblock.0.beta" not in state:
            raise _not_rife(path, f"it has no block{level} of RIFE 4.6's layout")
        if first.shape[1] != expected or last.shape[1] != OUTPUTS:
            raise _not_rife(path, "its flow blocks have another number of channels")
        widths.append(int(first.shape[0]) * 2)
    network = IFNet(tuple(widths))
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise _not_rife(path, str(exc).splitlines()[0]) from exc
    network.to(device=device, dtype=dtype).eval()
    return LoadedRife(network, device, dtype)


def _not_rife(path: Path, why: str) -> RotoscopeError:
    return RotoscopeError(
        f"output.interpolation_model '{path}' is not RIFE 4.6's flow network ({why})",
        "use Practical-RIFE v4.6's train_log/flownet.pkl (Deforum's RIFE46.pkl), or "
        "output.interpolation=flow",
    )
