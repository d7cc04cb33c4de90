"""Control-map preprocessors: the OpenCV maps, parameter and weight checks, cache signatures,
and weight-based detectors run end to end through controlnet_aux's real loading code.

No annotator weights are downloaded: the ``annotators`` fixture builds controlnet_aux's own
networks (HED, PiDiNet, lineart) at their real architectures with seeded random init and
saves them under the file names their ``from_pretrained`` expects. Random weights draw
meaningless maps, but they go through the same load, inference and resize path as real ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.control.preprocessors import (
    PREPROCESSORS,
    WEIGHT_FILES,
    check_preprocessor,
    make_preprocessor,
    preprocessor_signature,
)
from pipeline.errors import RotoscopeError

OPENCV_MAPS = ["none", "inpaint", "canny", "shuffle", "tile", "blur", "grayscale"]
SIZES = [(72, 40), (64, 48), (33, 17)]  # width x height; the last is odd both ways


def picture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A deterministic RGB frame with flat areas, edges and fine noise."""
    rng = np.random.default_rng(seed)
    frame = np.zeros((height, width, 3), np.uint8)
    frame[:, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    frame[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = (200, 180, 40)
    noise = rng.integers(-20, 21, frame.shape)
    return np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def high_frequency_energy(frame: np.ndarray) -> float:
    """Mean squared Laplacian: what blurring must lower."""
    return float(np.mean(cv2.Laplacian(frame.astype(np.float32), cv2.CV_32F) ** 2))


def test_preprocessor_names() -> None:
    assert set(PREPROCESSORS) == {
        "none", "inpaint", "canny", "shuffle", "tile", "blur", "grayscale", "hed", "softedge",
        "pidinet", "lineart", "lineart_anime", "depth_midas", "depth_zoe", "openpose",
        "normal_bae", "mlsd",
    }  # fmt: skip
    assert set(WEIGHT_FILES) == set(PREPROCESSORS) - set(OPENCV_MAPS)
    assert WEIGHT_FILES["softedge"] == WEIGHT_FILES["hed"] == ["ControlNetHED.pth"]
    assert WEIGHT_FILES["openpose"] == ["body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"]


@pytest.mark.parametrize("name", OPENCV_MAPS)
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_opencv_maps_keep_the_frame_size(name: str, width: int, height: int) -> None:
    frame = picture(width, height)
    control = make_preprocessor(name, {}, Path("unused"))(frame)
    assert control.shape == (height, width, 3)
    assert control.dtype == np.uint8
    np.testing.assert_array_equal(control, make_preprocessor(name, {}, Path("unused"))(frame))


def test_none_returns_the_frame_unchanged() -> None:
    frame = picture(64, 48)
    np.testing.assert_array_equal(make_preprocessor("none", {}, Path("unused"))(frame), frame)


def test_canny_draws_white_edges_on_the_border_of_a_square() -> None:
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[12:36, 16:48] = 255
    control = make_preprocessor("canny", {}, Path("unused"))(frame)
    assert set(np.unique(control)) == {0, 255}
    assert (control[..., 0] == control[..., 1]).all() and (control[..., 0] == control[..., 2]).all()
    border = np.zeros((48, 64), bool)
    border[11:37, 15:49] = True
    border[14:34, 18:46] = False  # a band 1 px either side of the square's edge
    edges = control[..., 0] > 0
    assert edges[border].sum() > 80
    assert not edges[~border].any()


def test_canny_thresholds_are_used() -> None:
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[12:36, 16:48] = 60  # a faint square: its gradient is below the thresholds below
    faint = {"low_threshold": 500, "high_threshold": 900}
    assert make_preprocessor("canny", {}, Path("unused"))(frame).any()
    assert not make_preprocessor("canny", faint, Path("unused"))(frame).any()


def test_grayscale_is_luma_in_three_channels() -> None:
    frame = np.zeros((40, 72, 3), np.uint8)
    frame[:, :36] = (255, 0, 0)
    frame[:, 36:] = (0, 0, 255)
    control = make_preprocessor("grayscale", {}, Path("unused"))(frame)
    assert (control[:, :36] == 76).all()  # 0.299 * 255
    assert (control[:, 36:] == 29).all()  # 0.114 * 255


@pytest.mark.parametrize(
    ("name", "params"),
    [("blur", {}), ("blur", {"sigma": 2}), ("tile", {}), ("tile", {"factor": 2.5})],
)
def test_blur_and_tile_remove_high_frequencies(name: str, params: dict) -> None:
    frame = picture(72, 40)
    control = make_preprocessor(name, params, Path("unused"))(frame)
    assert high_frequency_energy(control) < 0.25 * high_frequency_energy(frame)
    assert abs(float(control.mean()) - float(frame.mean())) < 8  # same picture, softer


def test_stronger_blur_removes_more() -> None:
    frame = picture(72, 40)
    soft = make_preprocessor("blur", {"sigma": 1.0}, Path("unused"))(frame)
    softer = make_preprocessor("blur", {"sigma": 4.0}, Path("unused"))(frame)
    assert high_frequency_energy(softer) < high_frequency_energy(soft)


def test_tile_factor_one_keeps_the_frame() -> None:
    frame = picture(64, 48)
    control = make_preprocessor("tile", {"factor": 1}, Path("unused"))(frame)
    np.testing.assert_array_equal(control, frame)


def test_shuffle_is_deterministic_per_seed() -> None:
    frame = picture(640, 360)  # bigger than a cell, so the field really varies
    first = make_preprocessor("shuffle", {"seed": 7}, Path("unused"))(frame)
    again = make_preprocessor("shuffle", {"seed": 7}, Path("unused"))(frame)
    other = make_preprocessor("shuffle", {"seed": 8}, Path("unused"))(frame)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other.astype(int)).mean() > 10
    assert np.abs(first.astype(int) - frame.astype(int)).mean() > 10


def test_shuffle_moves_pixels_without_changing_colours() -> None:
    flat = np.full((48, 64, 3), (10, 120, 230), np.uint8)
    np.testing.assert_array_equal(make_preprocessor("shuffle", {}, Path("unused"))(flat), flat)
    two_tone = np.zeros((48, 64, 3), np.uint8)
    two_tone[:, 32:] = 255
    control = make_preprocessor("shuffle", {"cell_size": 16}, Path("unused"))(two_tone)
    assert control.min() == 0 and control.max() == 255


def test_frames_must_be_rgb_uint8() -> None:
    preprocess = make_preprocessor("blur", {}, Path("unused"))
    with pytest.raises(ValueError, match="RGB uint8"):
        preprocess(np.zeros((48, 64), np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        preprocess(np.zeros((48, 64, 3), np.float32))


def test_unknown_preprocessor_lists_the_valid_names() -> None:
    with pytest.raises(RotoscopeError, match="unknown controlnet preprocessor 'sobel'") as info:
        check_preprocessor("sobel", {}, Path("unused"))
    assert all(name in str(info.value) for name in PREPROCESSORS)


def test_unknown_parameter_lists_the_valid_ones() -> None:
    with pytest.raises(RotoscopeError, match="'canny' has no parameter 'low'") as info:
        check_preprocessor("canny", {"low": 50}, Path("unused"))
    assert "low_threshold, high_threshold" in str(info.value)
    with pytest.raises(RotoscopeError, match="takes no parameters"):
        check_preprocessor("grayscale", {"sigma": 2}, Path("unused"))


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("blur", {"sigma": "5"}, "'sigma' is '5'; it must be a number"),
        ("blur", {"sigma": 0}, "must be a number above 0"),
        ("blur", {"sigma": float("nan")}, "must be a number"),
        ("blur", {"sigma": True}, "must be a number"),
        ("canny", {"low_threshold": 50.5}, "must be a whole number"),
        ("canny", {"high_threshold": -1}, "whole number of 0 or more"),
        ("canny", {"low_threshold": 210}, "low_threshold 210 is above high_threshold 200"),
        ("shuffle", {"seed": -1}, "of 0 or more"),
        ("shuffle", {"cell_size": 4}, "between 8 and 1024"),
        ("tile", {"factor": 0.5}, "of 1 or more"),
        ("hed", {"safe": 1}, "'safe' is 1; it must be true or false"),
        ("softedge", {"detect_resolution": 32}, "between 64 and 4096"),
        ("mlsd", {"thr_v": 0}, "above 0"),
    ],
)
def test_bad_parameter_values_are_rejected(name: str, params: dict, message: str) -> None:
    with pytest.raises(RotoscopeError, match=message.replace("(", r"\(")):
        check_preprocessor(name, params, Path("unused"))


def test_parameter_values_are_converted_to_their_type() -> None:
    frame = picture(64, 48)
    by_int = make_preprocessor("blur", {"sigma": 3}, Path("unused"))(frame)
    by_float = make_preprocessor("blur", {"sigma": 3.0}, Path("unused"))(frame)
    np.testing.assert_array_equal(by_int, by_float)
    signature = preprocessor_signature("blur", {"sigma": np.int64(3)}, Path("unused"))
    assert signature == preprocessor_signature("blur", {"sigma": 3.0}, Path("unused"))


def test_signature_fills_defaults_and_follows_params() -> None:
    unused = Path("unused")
    default = preprocessor_signature("canny", {}, unused)
    explicit = {"low_threshold": 100, "high_threshold": 200}
    assert preprocessor_signature("canny", explicit, unused) == default
    assert preprocessor_signature("canny", {"low_threshold": 99}, unused) != default
    assert preprocessor_signature("blur", {}, unused) != preprocessor_signature("tile", {}, unused)
    assert '"high_threshold":200' in default and cv2.__version__ in default


def test_signature_follows_weight_files(tmp_path: Path) -> None:
    weights = tmp_path / "ControlNetHED.pth"
    weights.write_bytes(b"weights")
    os.utime(weights, ns=(1_700_000_000_000_000_000,) * 2)
    first = preprocessor_signature("hed", {}, tmp_path)
    assert preprocessor_signature("hed", {}, tmp_path) == first
    assert preprocessor_signature("softedge", {}, tmp_path) == first  # an alias, same maps
    assert preprocessor_signature("hed", {"safe": True}, tmp_path) != first
    os.utime(weights, ns=(1_700_000_000_000_000_000, 1_700_000_001_000_000_000))
    touched = preprocessor_signature("hed", {}, tmp_path)
    assert touched != first
    weights.write_bytes(b"other weights")
    os.utime(weights, ns=(1_700_000_001_000_000_000,) * 2)
    assert preprocessor_signature("hed", {}, tmp_path) != touched  # same mtime, new size


@pytest.mark.parametrize("name", sorted(WEIGHT_FILES))
def test_missing_weights_name_the_exact_file(name: str, tmp_path: Path) -> None:
    annotators = tmp_path / "annotators"
    for call in (check_preprocessor, preprocessor_signature, make_preprocessor):
        with pytest.raises(RotoscopeError, match="controlnet annotator weights") as info:
            call(name, {}, annotators)
        message = str(info.value)
        for file in WEIGHT_FILES[name]:
            assert f"'{annotators / file}'" in message
        assert "lllyasviel/Annotators" in message
        assert f"into {annotators}/" in message


def test_only_the_missing_weight_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "body_pose_model.pth").write_bytes(b"")
    with pytest.raises(RotoscopeError) as info:
        check_preprocessor("openpose", {}, tmp_path)
    assert "body_pose_model" not in info.value.message
    assert "hand_pose_model.pth" in info.value.message and "facenet.pth" in info.value.message


def test_opencv_maps_never_import_controlnet_aux() -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from pipeline.control.preprocessors import check_preprocessor, make_preprocessor\n"
        "try:\n"
        "    check_preprocessor('hed', {}, Path('missing'))\n"
        "except Exception:\n"
        "    pass\n"
        "for name in ('canny', 'shuffle', 'tile', 'blur', 'grayscale', 'none'):\n"
        "    make_preprocessor(name, {}, Path('unused'))(np.zeros((8, 8, 3), np.uint8))\n"
        "print(sorted(m for m in ('controlnet_aux', 'torch') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_a_broken_controlnet_aux_install_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ControlNetHED.pth").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "controlnet_aux", None)  # makes its import fail
    with pytest.raises(RotoscopeError, match="pip install controlnet-aux") as info:
        make_preprocessor("hed", {}, tmp_path)
    assert "could not be imported: ModuleNotFoundError" in info.value.message


# --- weight-based detectors, end to end with locally generated weights -----------------


@pytest.fixture(scope="module")
def hed(annotators: Path) -> Callable[[np.ndarray], np.ndarray]:
    """One loaded HED preprocessor shared by the tests below (loading is the slow part)."""
    return make_preprocessor("hed", {"detect_resolution": 64}, annotators)


def test_hed_keeps_the_frame_size_and_is_deterministic(
    hed: Callable[[np.ndarray], np.ndarray],
) -> None:
    frame = picture(64, 48)  # controlnet_aux works at 64x64 here: 48 rounds up to 64
    control = hed(frame)
    assert control.shape == (48, 64, 3) and control.dtype == np.uint8
    np.testing.assert_array_equal(control, hed(frame))
    assert not np.array_equal(control, hed(picture(64, 48, seed=1)))  # it reads the frame


def test_hed_at_the_default_resolution(annotators: Path) -> None:
    frame = picture(72, 40)  # detected at 896x512, mapped back to 72x40
    control = make_preprocessor("softedge", {}, annotators)(frame)
    assert control.shape == (40, 72, 3)


def test_hed_options_reach_the_detector(
    annotators: Path, hed: Callable[[np.ndarray], np.ndarray]
) -> None:
    frame = picture(64, 48)
    safe = make_preprocessor("hed", {"detect_resolution": 64, "safe": True}, annotators)
    assert not np.array_equal(safe(frame), hed(frame))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("pidinet", {}),
        ("pidinet", {"scribble": True}),
        ("lineart", {}),
        ("lineart", {"coarse": True}),
    ],
)
def test_other_detectors_keep_the_frame_size(annotators: Path, name: str, params: dict) -> None:
    preprocess = make_preprocessor(name, {"detect_resolution": 128, **params}, annotators)
    frame = picture(72, 40)
    control = preprocess(frame)
    assert control.shape == (40, 72, 3) and control.dtype == np.uint8
    np.testing.assert_array_equal(control, preprocess(frame))


def test_unloadable_weights_are_reported(tmp_path: Path, annotators: Path) -> None:
    # ``annotators`` only to skip with the other detector tests when controlnet_aux is absent.
    (tmp_path / "ControlNetHED.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(RotoscopeError, match="could not be loaded") as info:
        make_preprocessor("hed", {}, tmp_path)
    assert "ControlNetHED.pth" in str(info.value)
