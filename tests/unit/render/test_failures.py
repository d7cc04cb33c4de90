"""Overnight-job safety with real processes: kill -9, resume, edits, locks, signals, queues."""

from __future__ import annotations

import errno
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.config.schema import ModelConfig, RuntimeConfig
from pipeline.errors import RotoscopeError
from pipeline.models.loader import load_model
from pipeline.plan.rows import PlanRow
from pipeline.records.manifest import Manifest
from pipeline.records.progress import Progress
from pipeline.records.report import JobReport
from pipeline.records.run_folder import RunFolder
from pipeline.render.producer import FrameProducer
from pipeline.render.renderer import Renderer
from pipeline.render.units import FrameOrigin

FRAMES = 40


# -- simulated resource faults (in process) ------------------------------------------------


def plan_row(index: int = 0) -> PlanRow:
    return PlanRow(index=index, prompt="a cat", negative_prompt="", strength=0.5,
                    guidance_scale=7.0, steps=2, sampler="Euler a", seed=1, width=64,
                    height=64)  # fmt: skip


@pytest.fixture(scope="module")
def model(tiny_models):
    return load_model(ModelConfig(path=str(tiny_models.sd15)), RuntimeConfig(device="cpu"))


def test_out_of_memory_retries_with_memory_savers(model, monkeypatch) -> None:
    renderer = Renderer(model)
    real = renderer._render
    failures = iter([True, True, False])

    def flaky(frames: list, hooks: object) -> list[np.ndarray]:
        if next(failures):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(frames, hooks)

    monkeypatch.setattr(renderer, "_render", flaky)
    out = renderer.render(plan_row(), np.full((64, 64, 3), 100, np.uint8))
    assert out.shape == (64, 64, 3)
    assert renderer.savers.enabled == ["VAE slicing", "VAE tiling"]


def test_out_of_memory_with_every_saver_on_is_a_clear_error(model, monkeypatch) -> None:
    renderer = Renderer(model)

    def always(frames: list, hooks: object) -> list[np.ndarray]:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(renderer, "_render", always)
    with pytest.raises(RotoscopeError, match="out of GPU memory on frame 3 even with"):
        renderer.render(plan_row(3), np.full((64, 64, 3), 100, np.uint8))


def test_full_disk_mid_run_stops_cleanly(model, tmp_path: Path, monkeypatch) -> None:
    manifest = Manifest(RunFolder(tmp_path))
    producer = FrameProducer(RunFolder(tmp_path), manifest, model.identity, lambda: Renderer(model),
                             Progress(2), JobReport(str(tmp_path)))  # fmt: skip
    image = np.full((64, 64, 3), 100, np.uint8)
    producer.produce(plan_row(0), image, FrameOrigin("clip.mp4", 0, 0.0, None))
    real_save = Image.Image.save

    def full(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)  # a partial file exists, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(RotoscopeError, match="disk full while writing frame 1"):
        producer.produce(plan_row(1), image, FrameOrigin("clip.mp4", 1, 0.1, None))
    kept = Manifest(RunFolder(tmp_path)).records
    assert list(kept) == [0]
    assert [p.name for p in (tmp_path / "frames").iterdir()] == [Path(kept[0].file).name]


def test_free_disk_is_checked_before_rendering(tmp_path: Path, monkeypatch) -> None:
    from pipeline.records import disk

    monkeypatch.setattr(disk.shutil, "disk_usage", lambda _: SimpleNamespace(free=10 * 2**20))
    with pytest.raises(RotoscopeError, match="not enough free disk for 500 frames"):
        disk.check_free_space(tmp_path, 500, 512, 512)
    disk.check_free_space(tmp_path, 0, 512, 512)  # nothing left to render: no check
