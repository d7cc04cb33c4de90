"""Depth models for the 3D camera: Deforum's normalisation, the tiny model through the
real loading code, the blend, and missing weights as one line saying where to put them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.config.schema import DepthConfig, DepthModel
from pipeline.errors import RotoscopeError
from pipeline.models.depth import (
    check_depth_weights,
    deforum_depth,
    depth_identity,
    load_depth,
    working_size,
)


def test_inverse_depth_and_depth_both_put_the_nearest_point_at_1() -> None:
    # a ramp of MiDaS-like inverse depth (left near) and of metres (left near)
    inverse = np.tile(np.linspace(30.0, 2.0, 50), (4, 1))
    metres = np.tile(np.linspace(1.0, 9.0, 50), (4, 1))
    for depth in (deforum_depth(inverse, True), deforum_depth(metres, False)):
        assert depth.dtype == np.float32 and depth.shape == (4, 50)
        assert depth[0, 0] == pytest.approx(1.0, abs=0.03)
        assert depth[0, -1] == pytest.approx(2.0)
        assert (np.diff(depth[0]) >= 0).all()  # farther to the right, never nearer


def test_depth_is_histogram_equalised() -> None:
    # most pixels far away, a few near: equalised, the depths spread evenly over 1..2
    metres = np.concatenate([np.full(10, 1.0), np.linspace(8.0, 9.0, 990)])
    depth = deforum_depth(metres[None, :], False)[0]
    assert np.median(depth) == pytest.approx(1.5, abs=0.02)
    assert depth[:10].max() < 1.02


@pytest.mark.parametrize("raw", [np.full((3, 3), 4.0), np.array([[1.0, np.nan], [2.0, 3.0]])])
def test_flat_or_broken_output_is_flat_depth(raw: np.ndarray) -> None:
    np.testing.assert_array_equal(deforum_depth(raw, True), np.ones(raw.shape, np.float32))


def test_working_sizes() -> None:
    assert working_size(512, 512, 384, nearest_to_one=True) == (384, 384)
    assert working_size(1024, 576, 384, nearest_to_one=True) == (672, 384)  # MiDaS "minimal"
    assert working_size(1024, 576, 512, nearest_to_one=False) == (512, 288)


def test_the_tiny_model_loads_like_depth_anything(tiny_depth: Path) -> None:
    config = DepthConfig(model=DepthModel.tiny)
    check_depth_weights(config, str(tiny_depth))
    estimate = load_depth(config, str(tiny_depth), "cpu")
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    depth = estimate(image)
    assert depth.shape == (40, 56) and depth.dtype == np.float32
    assert depth.min() >= 1.0 and depth.max() <= 2.0 and depth.max() - depth.min() > 0.5
    np.testing.assert_array_equal(depth, estimate(image))  # deterministic
    assert "tiny:folder:" in depth_identity(config, str(tiny_depth))
    flat = load_depth(DepthConfig(model=DepthModel.none), str(tiny_depth), "cpu")
    np.testing.assert_array_equal(flat(image), np.ones((40, 56), np.float32))


def test_a_blend_mixes_by_midas_weight(tiny_depth: Path, tmp_path: Path) -> None:
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    tiny = load_depth(DepthConfig(model=DepthModel.tiny), str(tiny_depth), "cpu")(image)
    # the tiny network blended with itself (as Depth Anything): any weight gives it back
    same = DepthConfig(
        model=DepthModel.tiny, blend=DepthModel.depth_anything, midas_weight=0.25,
        folder=str(tiny_depth / "tiny" / "depth"),
    )  # fmt: skip
    np.testing.assert_allclose(load_depth(same, str(tiny_depth), "cpu")(image), tiny, atol=1e-6)
    assert "midas_weight=0.25" in depth_identity(same, str(tiny_depth))
    with_zoe = DepthConfig(model=DepthModel.tiny, blend=DepthModel.zoe, annotators=str(tmp_path))
    with pytest.raises(RotoscopeError, match=r"ZoeD_M12_N\.pt"):  # both models' weights count
        check_depth_weights(with_zoe, str(tiny_depth))


@pytest.mark.parametrize(
    ("model", "named", "where"),
    [
        (DepthModel.midas, "dpt_hybrid-midas-501f0c75.pt", "lllyasviel/Annotators"),
        (DepthModel.zoe, "ZoeD_M12_N.pt", "lllyasviel/Annotators"),
        (DepthModel.depth_anything, "config.json", "Depth-Anything-V2-Small-hf"),
        (DepthModel.tiny, "config.json", "make_tiny_models.py"),
    ],
)
def test_missing_weights_are_one_line_naming_the_file_and_where_to_put_it(
    model: DepthModel, named: str, where: str, tmp_path: Path
) -> None:
    config = DepthConfig(model=model, annotators=str(tmp_path / "annotators"),
                         folder=str(tmp_path / "dav2"))  # fmt: skip
    with pytest.raises(RotoscopeError) as info:
        check_depth_weights(config, str(tmp_path / "models"))
    text = str(info.value)
    assert "\n" not in text and f"animation.depth.model={model.value}" in text
    assert named in text and where in text and str(tmp_path) in text
