"""Weight files from other people, through the command line: a booby-trapped pickle given
as a ControlNet or a VAE ends the run in one line naming it, and its code never runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.cli import rotoscope
from support.media import write_image
from support.traps import save_trap


@pytest.mark.parametrize(
    ("setting", "name", "field"),
    [
        ("+controlnet.units.edges.model", "evil.pth", "controlnet"),
        ("model.vae", "evil.ckpt", "model.vae"),
    ],
)
def test_a_trapped_pickle_is_refused_in_one_line(
    tiny_models, tmp_path: Path, setting: str, name: str, field: str
) -> None:
    marker = tmp_path / "pwned"
    trap = save_trap(tmp_path / name, marker, lambda bomb: {"state_dict": {"x": bomb}})
    still = write_image(tmp_path / "still.png", np.full((64, 64, 3), 90, np.uint8))
    result = rotoscope(
        f"input.path={still}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=2",
        f"{setting}={trap}", cwd=tmp_path,
    )  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{field} '{trap}' is a pickle that would run code to load" in errors[0]
    assert not marker.exists()
