"""Reference jobs whose frames must not change when the code is reorganised.

Each job renders a few 64x64 frames through the CLI on the tiny models (built with fixed
seeds), and the test compares a hash of every frame's pixels with the value recorded
before a refactor. A change in these hashes means a change of behaviour: a refactor
that moves code must keep them; a deliberate change of what a frame is made from updates
them in the same commit, saying why.

The jobs: the demo's keyframed animation (prompt blending, a fused LoRA, coherence=full),
a 2D loopback with every loopback tool, a coherence job with both attention anchors, and
a ControlNet job.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from support import ROOT
from support.cli_runner import cli_env, run_cli
from support.media import make_pan_folder
from support.run_files import frames_of

# sha256 of each job's frames (pixels, in frame order), first 16 hex digits
REFERENCE = {
    "demo": "81011c080a2351af",
    "loopback": "341652399d8da114",
    "coherence": "afbb11beacef7fef",
    "controlnet": "643221499835986a",
}


def pixels_hash(frames: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(str(frame.shape).encode())
        digest.update(np.ascontiguousarray(frame).tobytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def pan_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pan_folder(tmp_path_factory.mktemp("reference") / "pan", frames=4)


def render(tmp_path: Path, *args: str) -> list[np.ndarray]:
    result = run_cli(
        ["runtime=cpu", "steps=4", "stages=[plan,render]", *args], tmp_path, cli_env(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    run_dir = Path(tmp_path / "outputs")
    (folder,) = [path for path in run_dir.iterdir() if path.is_dir()]
    return frames_of(folder)


def check(name: str, frames: list[np.ndarray]) -> None:
    assert pixels_hash(frames) == REFERENCE[name], name


def test_demo_animation(tiny_models, tiny_adapters, pan_folder, tmp_path) -> None:
    frames = render(
        tmp_path, f"model.path={tiny_models.sd15}", f"input.path={pan_folder}",
        f"keyframes={ROOT / 'keyframes/seasons.yaml'}", f"model.lora_dir={tiny_adapters.loras}",
        "+model.loras.sd15_kohya=0.6", "seed=7", "coherence=full",
    )  # fmt: skip
    check("demo", frames)


def test_loopback(tiny_models, pan_folder, tmp_path) -> None:
    frames = render(
        tmp_path, f"model.path={tiny_models.sd15}", f"input.path={pan_folder / '000.png'}",
        "input.repeat=4", "animation=loopback", "animation.zoom=0:(1.05)",
        "animation.angle=0:(2)", "animation.translation_x=0:(3)", "animation.noise=0:(0.02)",
        "animation.color_coherence=lab", "animation.border=reflect", "prompt=a lighthouse",
        "strength=0.5",
    )  # fmt: skip
    check("loopback", frames)


def test_coherence(tiny_models, pan_folder, tmp_path) -> None:
    frames = render(
        tmp_path, f"model.path={tiny_models.sd15}", f"input.path={pan_folder}",
        "coherence=full", "coherence.attention_anchors=both", "prompt=ink drawing",
        "sampler=DPM++ 2M Karras",
    )  # fmt: skip
    check("coherence", frames)


def test_controlnet(tiny_models, tiny_controlnets, pan_folder, tmp_path) -> None:
    frames = render(
        tmp_path, f"model.path={tiny_models.sd15}", f"input.path={pan_folder}",
        f"+controlnet.units.edges.model={tiny_controlnets.sd15}",
        "+controlnet.units.edges.preprocessor=canny", "+controlnet.units.edges.weight=0:(0.8)",
        "prompt=a city", "render.batch_size=2",
    )  # fmt: skip
    check("controlnet", frames)
