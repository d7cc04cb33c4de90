"""Booby-trapped pickles given as a ControlNet or a VAE: refused in one line naming the
file, before any of their code runs (LoRAs, embeddings and checkpoints:
``tests/unit/render/test_adapters.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.traps import save_trap

from pipeline.config.schema import ModelConfig, RuntimeConfig
from pipeline.errors import RotoscopeError
from pipeline.models.controlnets import load_controlnet
from pipeline.models.loader import load_model
from pipeline.testing.tiny_models import TinyModels

SUFFIXES = [".pth", ".pt", ".ckpt", ".bin"]


def assert_refused(info: pytest.ExceptionInfo[RotoscopeError], field: str, trap: Path) -> None:
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{field} '{trap}' is a pickle that would run code to load")
    assert "posix.system" in message or "os.system" in message


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_trapped_controlnet_never_runs(
    tiny_models: TinyModels, tmp_path: Path, suffix: str
) -> None:
    marker = tmp_path / "pwned"
    trap = save_trap(tmp_path / f"evil{suffix}", marker, lambda bomb: {"state_dict": {"x": bomb}})
    base = load_model(ModelConfig(path=str(tiny_models.sd15)), RuntimeConfig("cpu"))
    with pytest.raises(RotoscopeError) as info:
        load_controlnet(str(trap), base, offline=True)
    assert not marker.exists()
    assert_refused(info, "controlnet", trap)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_trapped_vae_never_runs(tiny_models: TinyModels, tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "pwned"
    trap = save_trap(tmp_path / f"evil{suffix}", marker, lambda bomb: {"state_dict": {"x": bomb}})
    with pytest.raises(RotoscopeError) as info:
        load_model(ModelConfig(path=str(tiny_models.sd15), vae=str(trap)), RuntimeConfig("cpu"))
    assert not marker.exists()
    assert_refused(info, "model.vae", trap)
