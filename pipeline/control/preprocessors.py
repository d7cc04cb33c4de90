"""ControlNet control maps: turn each input frame into the image a ControlNet conditions on.

A preprocessor is chosen by name with a small dict of parameters (from the config). Three
entry points serve the three moments of a run:

- :func:`check_preprocessor` before anything renders, so a typo or a missing weight
  file fails in the first second instead of after the model has loaded;
- :func:`preprocessor_signature` for frame cache keys, so changing a threshold or
  replacing a weight file re-renders exactly the frames it affects;
- :func:`make_preprocessor` once per run, returning a function applied to every frame.

The cheap maps (canny, shuffle, tile, blur, grayscale, none) are plain OpenCV here. The
learned ones (HED, MiDaS, OpenPose, ...) run through controlnet_aux's own detector classes
(:mod:`pipeline.control.detectors`), loaded from a local annotator folder, never a hub.
Every map has exactly the frame's height and width, whatever size the detector works at.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.config.keys import did_you_mean
from pipeline.control.detectors import DETECTORS, load_detector
from pipeline.errors import RotoscopeError

ANNOTATORS_REPO = "lllyasviel/Annotators"  # the hub repo that ships every weight file below
# An inpaint ControlNet's preprocessor: its map is the frame itself, and the render marks
# the frame's masked pixels in it (pipeline.render.masking.control).
INPAINT_PREPROCESSOR = "inpaint"


@dataclass(frozen=True)
class _Param:
    """One preprocessor parameter.

    The default's type is the parameter's type (bool, int or float: an int is accepted
    for a float, a bool never for a number), so a config typo such as ``sigma: "5"``
    fails before the run. ``valid`` and ``rule`` bound the value, e.g. a blur sigma of
    0, which OpenCV would reject with an assertion only once the first frame arrives.
    """

    default: bool | int | float
    valid: Callable[[float], bool] | None = None
    rule: str = ""

    def check(self, preprocessor: str, key: str, value: Any) -> bool | int | float:
        """``value`` converted to the parameter's type, or a RotoscopeError naming it."""
        kind = type(self.default)
        is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if kind is bool:
            ok, wanted = isinstance(value, bool), "true or false"
        elif kind is int:
            ok, wanted = is_number and isinstance(value, numbers.Integral), "a whole number"
        else:
            ok, wanted = is_number and math.isfinite(value), "a number"
        if ok and self.valid is not None and not self.valid(value):
            ok, wanted = False, f"{wanted} {self.rule}"
        if not ok:
            raise RotoscopeError(
                f"preprocessor '{preprocessor}' parameter '{key}' is {value!r}; "
                f"it must be {wanted}",
                f"its default is {json.dumps(self.default)}",
            )
        return kind(value)


def _at_least(low: float) -> Callable[[float], bool]:
    """The ``valid`` test "value >= low"."""
    return lambda value: value >= low


_RESOLUTION = _Param(512, lambda v: 64 <= v <= 4096, "between 64 and 4096")
_FLAG_OFF = _Param(False)
_FLAG_ON = _Param(True)

# Parameters per preprocessor, with their defaults. The detectors' options are the
# keyword arguments of the controlnet_aux detector's __call__, under the same names.
_PARAMS: Mapping[str, Mapping[str, _Param]] = {
    "none": {},
    INPAINT_PREPROCESSOR: {},
    "canny": {
        "low_threshold": _Param(100, _at_least(0), "of 0 or more"),
        "high_threshold": _Param(200, _at_least(0), "of 0 or more"),
    },
    "shuffle": {
        "seed": _Param(0, _at_least(0), "of 0 or more"),
        "cell_size": _Param(256, lambda v: 8 <= v <= 1024, "between 8 and 1024"),
    },
    "tile": {"factor": _Param(4.0, _at_least(1), "of 1 or more")},
    "blur": {"sigma": _Param(5.0, lambda v: v > 0, "above 0")},
    "grayscale": {},
    "hed": {"detect_resolution": _RESOLUTION, "safe": _FLAG_OFF, "scribble": _FLAG_OFF},
    "pidinet": {
        "detect_resolution": _RESOLUTION,
        "safe": _FLAG_OFF,
        "scribble": _FLAG_OFF,
        "apply_filter": _FLAG_OFF,
    },
    "lineart": {"detect_resolution": _RESOLUTION, "coarse": _FLAG_OFF},
    "lineart_anime": {"detect_resolution": _RESOLUTION},
    "depth_midas": {"detect_resolution": _RESOLUTION},
    "depth_zoe": {"detect_resolution": _RESOLUTION, "gamma_corrected": _FLAG_OFF},
    "openpose": {
        "detect_resolution": _RESOLUTION,
        "include_body": _FLAG_ON,
        "include_hand": _FLAG_OFF,
        "include_face": _FLAG_OFF,
    },
    "normal_bae": {"detect_resolution": _RESOLUTION},
    "mlsd": {
        "detect_resolution": _RESOLUTION,
        "thr_v": _Param(0.1, lambda v: v > 0, "above 0"),
        "thr_d": _Param(0.1, lambda v: v > 0, "above 0"),
    },
}

# ControlNet 1.1 calls its HED model "softedge"; both names give the same map.
_ALIASES: Mapping[str, str] = {"softedge": "hed"}

PREPROCESSORS: tuple[str, ...] = tuple(
    alias
    for name in _PARAMS
    for alias in (name, *(a for a, target in _ALIASES.items() if target == name))
)

WEIGHT_FILES: dict[str, list[str]] = {
    name: list(DETECTORS[_ALIASES.get(name, name)].weights.values())
    for name in PREPROCESSORS
    if _ALIASES.get(name, name) in DETECTORS
}


def check_preprocessor(name: str, params: Mapping[str, Any], annotators: Path) -> None:
    """Fail early on anything about a preprocessor that would fail mid-run.

    Checks the name, every parameter's name, type and range, and for weight-based
    preprocessors that each weight file is in ``annotators``. Cheap: no import of
    controlnet_aux, no file is read.
    """
    canonical, _ = _resolve(name, params)
    if canonical in DETECTORS:
        _check_weights(name, Path(annotators))


def make_preprocessor(
    name: str, params: Mapping[str, Any], annotators: Path, device: str = "cpu"
) -> Callable[[np.ndarray], np.ndarray]:
    """Build the function that turns an RGB uint8 (H, W, 3) frame into its control map.

    The map is RGB uint8 with exactly the frame's H and W. Weight-based detectors are
    loaded here, once, onto ``device``; this is the only place controlnet_aux is
    imported, so OpenCV-only runs never pay for (or break on) it.
    """
    canonical, options = _resolve(name, params)
    if canonical in DETECTORS:
        _check_weights(name, Path(annotators))
        convert = load_detector(canonical, options, Path(annotators), device)
    else:
        convert = functools.partial(_OPENCV_MAPS[canonical], **options)

    def preprocess(frame: np.ndarray) -> np.ndarray:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(
                f"preprocessor '{name}' takes RGB uint8 (H, W, 3) frames, "
                f"got {frame.dtype} {frame.shape}"
            )
        return convert(frame)

    return preprocess


def preprocessor_signature(name: str, params: Mapping[str, Any], annotators: Path) -> str:
    """A stable string that changes whenever the control maps could change.

    It holds the canonical name (an alias gives the same string), every parameter with
    defaults filled in (so spelling out a default does not invalidate a cache), the
    version of the code that draws the map (OpenCV or controlnet-aux), and for weight
    files their size and modification time: stat only, because hashing a 1.3 GB depth
    model for every run would cost more than the frames it saves.
    """
    canonical, options = _resolve(name, params)
    parts: dict[str, Any] = {"preprocessor": canonical, "params": options}
    if canonical in DETECTORS:
        _check_weights(name, Path(annotators))
        parts["controlnet_aux"] = _controlnet_aux_version()
        stats = {file: (Path(annotators) / file).stat() for file in WEIGHT_FILES[name]}
        parts["weights"] = {file: [st.st_size, st.st_mtime_ns] for file, st in stats.items()}
    elif canonical not in ("none", INPAINT_PREPROCESSOR):
        parts["opencv"] = cv2.__version__
    return json.dumps(parts, sort_keys=True, separators=(",", ":"))


def _resolve(name: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Canonical name and validated parameters with defaults filled in."""
    if name not in PREPROCESSORS:
        raise RotoscopeError(
            f"unknown controlnet preprocessor {name!r}",
            f"{did_you_mean(name, PREPROCESSORS)}use one of: {', '.join(PREPROCESSORS)}",
        )
    canonical = _ALIASES.get(name, name)
    spec = _PARAMS[canonical]
    unknown = sorted(str(key) for key in params if key not in spec)
    if unknown:
        raise RotoscopeError(
            f"preprocessor '{name}' has no parameter {', '.join(map(repr, unknown))}",
            f"{did_you_mean(unknown[0], spec)}its parameters are: {', '.join(spec)}"
            if spec
            else "it takes no parameters",
        )
    options = {
        key: param.check(name, key, params[key]) if key in params else param.default
        for key, param in spec.items()
    }
    if canonical == "canny" and options["low_threshold"] > options["high_threshold"]:
        raise RotoscopeError(
            f"preprocessor 'canny' low_threshold {options['low_threshold']} is above "
            f"high_threshold {options['high_threshold']}",
            "edges weaker than low_threshold are dropped, stronger than high_threshold kept",
        )
    return canonical, options


def _check_weights(name: str, annotators: Path) -> None:
    """Raise naming every missing weight file of preprocessor ``name`` and its source."""
    missing = [file for file in WEIGHT_FILES[name] if not (annotators / file).is_file()]
    if missing:
        paths = ", ".join(f"'{annotators / file}'" for file in missing)
        raise RotoscopeError(
            f"controlnet annotator weights {paths} not found (preprocessor '{name}')",
            f"download {ANNOTATORS_REPO}' {', '.join(missing)} into {annotators}/ or point "
            "controlnet.annotators at the folder that holds them",
        )


def _controlnet_aux_version() -> str:
    """controlnet-aux's installed version, read from its metadata without importing it."""
    try:
        return importlib.metadata.version("controlnet-aux")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _none(frame: np.ndarray) -> np.ndarray:
    """The frame itself: for control sources that already are maps (a rendered depth pass)."""
    return frame


def _canny(frame: np.ndarray, low_threshold: int, high_threshold: int) -> np.ndarray:
    """White Canny edges on black, three equal channels.

    Canny runs on the RGB frame itself, not on a grey copy, as ControlNet's own
    annotator did when its canny model was trained: OpenCV then takes the strongest
    gradient over the channels, which keeps edges between equally bright colours.
    """
    edges = cv2.Canny(frame, low_threshold, high_threshold)
    return cv2.cvtColor(edges, cv2.COLOR_GRAY2RGB)


def _shuffle(frame: np.ndarray, seed: int, cell_size: int) -> np.ndarray:
    """ControlNet's content shuffle: the frame's pixels dragged along a smooth random field.

    Every output pixel copies the input pixel at a position given by two smooth random
    fields (x and y, see :func:`_shuffle_field`), which scrambles layout while keeping
    colours and local textures: what the shuffle ControlNet was trained to read. The
    field depends only on (size, seed, cell_size), so every frame of a clip is shuffled
    the same way and the maps stay as steady as the footage.
    """
    map_x, map_y = _shuffle_field(frame.shape[0], frame.shape[1], seed, cell_size)
    return cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@functools.lru_cache(maxsize=8)
def _shuffle_field(
    height: int, width: int, seed: int, cell_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates for :func:`_shuffle`, cached because every frame reuses them.

    Method: for x and then y, draw uniform values on a coarse grid with one node every
    ``cell_size`` pixels (numpy's PCG64 generator seeded with ``seed``) plus a margin
    node on each side, upsample it bicubically to the frame size plus one cell of margin
    on each side, crop the margin (it holds the interpolation's edge effects), stretch
    the values to span 0..1 and scale them to 0..width-1 (x) or 0..height-1 (y).
    Larger cells give broader swirls.
    """
    rng = np.random.default_rng(seed)
    grid = (height // cell_size + 2, width // cell_size + 2)
    fields = []
    for extent in (width, height):
        coarse = rng.random(grid, dtype=np.float32)
        fine = cv2.resize(
            coarse, (width + 2 * cell_size, height + 2 * cell_size), interpolation=cv2.INTER_CUBIC
        )[cell_size : cell_size + height, cell_size : cell_size + width]
        fine = (fine - fine.min()) / max(float(fine.max() - fine.min()), 1e-6)
        field = np.ascontiguousarray(fine * (extent - 1), dtype=np.float32)
        field.setflags(write=False)  # shared by every frame through the cache
        fields.append(field)
    return fields[0], fields[1]


def _tile(frame: np.ndarray, factor: float) -> np.ndarray:
    """The tile ControlNet's input: the frame shrunk by ``factor`` and enlarged back.

    Area averaging on the way down removes detail without aliasing; bicubic on the way
    up gives the soft, detail-free picture the tile model re-details. Factor 1 keeps the
    frame as is.
    """
    height, width = frame.shape[:2]
    small = cv2.resize(
        frame,
        (max(1, round(width / factor)), max(1, round(height / factor))),
        interpolation=cv2.INTER_AREA,
    )
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _blur(frame: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel size from sigma)."""
    return cv2.GaussianBlur(frame, (0, 0), sigmaX=sigma, sigmaY=sigma)


def _grayscale(frame: np.ndarray) -> np.ndarray:
    """Luma (BT.601 weights, as OpenCV and PIL use) copied into three channels."""
    return cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


_OPENCV_MAPS: Mapping[str, Callable[..., np.ndarray]] = {
    "none": _none,
    INPAINT_PREPROCESSOR: _none,
    "canny": _canny,
    "shuffle": _shuffle,
    "tile": _tile,
    "blur": _blur,
    "grayscale": _grayscale,
}
