"""Shared fixtures. The suite is offline and CPU-only: nothing may touch the network."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pipeline.testing.tiny_models import TinyModels

# Before anything imports huggingface_hub (or torch), which read these once, at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["TRANSFORMERS_VERBOSITY"] = "error"
os.environ["DIFFUSERS_VERBOSITY"] = "error"
# The tiny models are latency-bound: one thread runs a 64x64 img2img in ~40 ms, while
# torch's default of one OpenMP thread per core made the same call take ~5 s whenever
# the cores were shared with another process (spinning workers waiting for each other).
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_sessionfinish(session: pytest.Session) -> None:
    from support.cli_runner import close_server

    close_server()


def pytest_configure(config: pytest.Config) -> None:
    # diffusers' schedulers call np.array() on torch tensors; numpy >= 2.4 warns about
    # torch's __array__ signature on every step, thousands of times per run.
    for message in (
        "__array__ implementation doesn't accept a copy keyword",
        "__array_wrap__ must",
    ):
        config.addinivalue_line("filterwarnings", f"ignore:{message}:DeprecationWarning")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """The tiny random-weight SD 1.x / SDXL models, built once per test session.

    Paths: ``.sd15`` and ``.sdxl`` (diffusers folders), ``.sd15_single`` (the SD 1.x
    model as an A1111-style .safetensors; load it with ``config=.sd15``).
    """
    from pipeline.testing.tiny_models import build_tiny_models  # torch only for tests that need it

    return build_tiny_models(tmp_path_factory.mktemp("tiny_models"))


if TYPE_CHECKING:
    from pipeline.testing.tiny_controlnet import TinyControlNets


@pytest.fixture(scope="session")
def tiny_controlnets(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: TinyModels
) -> TinyControlNets:
    """Tiny random-weight ControlNets for the tiny models, built once per test session.

    Paths: ``.sd15`` and ``.sdxl`` (diffusers folders), ``.sd15_single`` (the SD 1.x one
    as an A1111-style .safetensors; its config comes from the base model's UNet).
    """
    from pipeline.testing.tiny_controlnet import build_tiny_controlnets

    return build_tiny_controlnets(tmp_path_factory.mktemp("tiny_controlnets"), tiny_models)


if TYPE_CHECKING:
    from pipeline.testing.tiny_adapters import TinyAdapters


@pytest.fixture(scope="session")
def tiny_adapters(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: TinyModels
) -> TinyAdapters:
    """Tiny LoRAs (kohya and diffusers format) and embeddings for the tiny models.

    ``.loras`` and ``.embeddings`` are the folders (``model.lora_dir``,
    ``model.embeddings_dir``); the files are named ``sd15_kohya``, ``sd15_diffusers``,
    ``sdxl_kohya``, ``sdxl_diffusers`` (LoRAs) and ``sd15_style``, ``sd15_learned``,
    ``sdxl_style`` (embeddings, activated by those words).
    """
    from pipeline.testing.tiny_adapters import build_tiny_adapters

    return build_tiny_adapters(tmp_path_factory.mktemp("tiny_adapters"), tiny_models)


if TYPE_CHECKING:
    from pipeline.testing.tiny_finishing import TinyFinishing


@pytest.fixture(scope="session")
def tiny_finishing(tmp_path_factory: pytest.TempPathFactory) -> TinyFinishing:
    """A tiny random-weight 2x ESRGAN (``.esrgan``: .safetensors, ``.esrgan_pth``: the same
    as a weights-only .pth) and RIFE 4.6 (``.rife``: a .pkl like flownet.pkl)."""
    from pipeline.testing.tiny_finishing import build_tiny_finishing

    return build_tiny_finishing(tmp_path_factory.mktemp("tiny_finishing"))


@pytest.fixture(scope="session")
def tiny_inpaint(tmp_path_factory: pytest.TempPathFactory, tiny_models: TinyModels) -> Path:
    """A tiny SD 1.x inpainting checkpoint (9-channel UNet, the tiny model widened), as a
    diffusers folder, built once per test session."""
    from pipeline.testing.tiny_inpaint import build_tiny_inpaint

    return build_tiny_inpaint(tmp_path_factory.mktemp("tiny_inpaint"), tiny_models.sd15)


@pytest.fixture(scope="session")
def annotators(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An annotator folder with random-init HED, PiDiNet and lineart weights (~90 MB).

    Each network is controlnet_aux's own class at its real size, saved in the layout its
    ``from_pretrained`` reads (PiDiNet wraps its state dict in ``{"state_dict": ...}``).
    Building and saving all four takes about a second and under 1 GB of memory.
    """
    import torch

    with warnings.catch_warnings():  # controlnet_aux's import warns about optional extras
        warnings.simplefilter("ignore")
        from controlnet_aux.hed import ControlNetHED_Apache2
        from controlnet_aux.lineart import Generator
        from controlnet_aux.pidi.model import pidinet

    folder = tmp_path_factory.mktemp("annotators")
    torch.manual_seed(0)
    torch.save(ControlNetHED_Apache2().state_dict(), folder / "ControlNetHED.pth")
    torch.save({"state_dict": pidinet().state_dict()}, folder / "table5_pidinet.pth")
    torch.save(Generator(3, 1, 3).state_dict(), folder / "sk_model.pth")
    torch.save(Generator(3, 1, 3).state_dict(), folder / "sk_model2.pth")
    return folder


@pytest.fixture(scope="session")
def tiny_depth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding the tiny random Depth Anything model (``tiny/depth``), for
    ``paths.models=...`` with ``animation.depth.model=tiny``. Built once (about 3 s)."""
    from pipeline.testing.tiny_depth import build_tiny_depth

    models = tmp_path_factory.mktemp("depth_models")
    build_tiny_depth(models / "tiny")
    return models
