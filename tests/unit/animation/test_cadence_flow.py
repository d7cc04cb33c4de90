"""Deforum's optical flow cadence methods (``cadence.flow``): each finds a known motion;
RAFT runs from a local weights file only, and a missing or wrong one is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.animation.cadence_flow import cadence_flow
from pipeline.config.schema import CadenceFlow
from pipeline.errors import RotoscopeError
from pipeline.testing.synthetic import pan_clip


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """Two frames of a pan: the content moves 3 px left from the first to the second."""
    frames = pan_clip(frames=2, width=64, height=64, velocity=(3.0, 0.0)).frames
    return frames[0], frames[1]


@pytest.mark.parametrize(
    "method", [CadenceFlow.dis_medium, CadenceFlow.dis_fine, CadenceFlow.farneback]
)
def test_each_classical_method_finds_the_pan(pair, method: CadenceFlow) -> None:
    flow = cadence_flow(*pair, method)
    assert flow.shape == (64, 64, 2) and flow.dtype == np.float32
    inner = flow[16:48, 16:48]  # away from the borders, where content leaves the frame
    assert abs(float(np.median(inner[..., 0])) + 3.0) < 0.5
    assert abs(float(np.median(inner[..., 1]))) < 0.5


def test_raft_runs_from_a_local_state_dict_only(pair, tmp_path: Path) -> None:
    import torch
    from torchvision.models.optical_flow import raft_large  # type: ignore[import-untyped]

    with pytest.raises(RotoscopeError, match="needs RAFT's weights"):
        cadence_flow(*pair, CadenceFlow.raft, str(tmp_path / "missing.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(RotoscopeError, match="is not a RAFT"):
        cadence_flow(*pair, CadenceFlow.raft, str(wrong))
    torch.manual_seed(0)
    weights = tmp_path / "raft_large.pth"
    torch.save(raft_large(weights=None, progress=False).state_dict(), weights)
    a, b = pair[0][:60, :62], pair[1][:60, :62]  # padded to a multiple of 8, cropped back
    flow = cadence_flow(a, b, CadenceFlow.raft, str(weights))
    assert flow.shape == (60, 62, 2) and np.isfinite(flow).all()
