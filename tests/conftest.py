"""Shared fixtures. The suite is offline and CPU-only: nothing may touch the network."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pipeline.tiny_models import TinyModels

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
    from pipeline.tiny_models import build_tiny_models  # torch only for tests that need it

    return build_tiny_models(tmp_path_factory.mktemp("tiny_models"))
