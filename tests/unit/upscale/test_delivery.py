"""The delivered size of a frame, and the upscale settings refused before anything renders."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.config.schema import InputConfig, ModelConfig, OutputFormat, RunConfig
from pipeline.errors import RotoscopeError
from pipeline.upscale.delivery import check_upscale_options, delivered_size, parse_target

HD = (1920, 1080)


def config(**changes: object) -> RunConfig:
    """A config with ``input.*``/``upscale.*``/``output.*`` changes (dotted names)."""
    cfg = RunConfig(input=InputConfig(path="clip.mp4", size="512"), model=ModelConfig(path="m"))
    for key, value in changes.items():
        group, name = key.split("__")
        cfg = replace(cfg, **{group: replace(getattr(cfg, group), **{name: value})})
    return cfg


@pytest.mark.parametrize(
    ("changes", "render", "source", "delivered"),
    [
        ({}, (680, 384), HD, HD),  # size by area shrank the source: delivered at its size
        ({}, (384, 680), (1080, 1920), (1080, 1920)),  # portrait alike
        ({}, (64, 48), (64, 48), (64, 48)),  # a small source is rendered and kept as it is
        ({"input__width": 768}, (768, 432), HD, (768, 432)),  # A1111: width is the output
        ({"input__scale": 0.5}, (960, 544), HD, (960, 544)),
        ({"input__size": "source"}, HD, HD, HD),
        ({"upscale__model": "lanczos"}, (680, 384), HD, HD),  # upscale.to=source
        ({"upscale__model": "lanczos", "upscale__to": "2"}, (680, 384), HD, (1360, 768)),
        ({"upscale__model": "lanczos", "upscale__to": "1.5x"}, (680, 384), HD, (1020, 576)),
        ({"upscale__model": "lanczos", "upscale__to": "1280x720"}, (680, 384), HD, (1280, 720)),
        # another shape than the source's (explicit width and height): the largest of its
        # shape inside the source, nothing stretched
        ({"input__width": 512, "input__height": 512, "upscale__model": "lanczos"},
         (512, 512), HD, (1080, 1080)),
        # a video needs even sizes; an image folder keeps the exact ones
        ({"upscale__model": "lanczos", "upscale__to": "1.5"}, (64, 40), (99, 61), (96, 60)),
        ({"upscale__model": "lanczos", "output__format": [OutputFormat.images]}, (64, 40),
         (99, 61), (99, 61)),
    ],
)  # fmt: skip
def test_delivered_size_rules(
    changes: dict[str, object],
    render: tuple[int, int],
    source: tuple[int, int],
    delivered: tuple[int, int],
) -> None:
    assert delivered_size(config(**changes), render, source) == delivered


@pytest.mark.parametrize("text", ["", "big", "0", "-2", "20", "1920x", "4x3x2", "4x1"])
def test_upscale_to_must_be_source_a_factor_or_a_size(text: str) -> None:
    with pytest.raises(RotoscopeError, match=r"upscale\.to="):
        parse_target(text)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"upscale__tile": 16}, "upscale.tile=16"),
        ({"upscale__tile": 64, "upscale__tile_overlap": 32}, "upscale.tile_overlap=32"),
        ({"upscale__refine_strength": "0.3"}, "upscale.refine_strength=0.3"),
        ({"upscale__to": "huge"}, "upscale.to=huge"),
    ],
)
def test_upscale_settings_that_cannot_work_are_refused(
    changes: dict[str, object], key: str
) -> None:
    with pytest.raises(RotoscopeError, match=key.replace(".", r"\.")):
        check_upscale_options(config(**changes))


def test_an_upscaler_is_found_by_name_in_paths_upscalers(tmp_path: Path, tiny_finishing) -> None:
    folder = tmp_path / "ESRGAN"
    folder.mkdir()
    (folder / "4x-Tiny.safetensors").write_bytes(tiny_finishing.esrgan.read_bytes())
    cfg = config(upscale__model="4x-Tiny")
    cfg = replace(cfg, paths=replace(cfg.paths, upscalers=str(folder)))
    check_upscale_options(cfg)
    with pytest.raises(RotoscopeError, match=r"put 4x-Other\.safetensors .or \.pth. into"):
        check_upscale_options(replace(cfg, upscale=replace(cfg.upscale, model="4x-Other")))
