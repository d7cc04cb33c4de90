"""Weight-based ControlNet annotators, run through controlnet_aux's own classes.

rotoscope does not reimplement HED, MiDaS, OpenPose and the rest: it calls the same
detector classes and the same ``from_pretrained`` loaders that A1111's and ComfyUI's
preprocessors are built on, so a control map matches what the ControlNet was trained
with. Two things are ours:

- the loader is always pointed at a LOCAL folder (``controlnet.annotators``) with every
  file name given explicitly, so it never falls through to a hub download and the file
  names checked before the run are exactly the ones loaded;
- controlnet_aux rounds its working size to multiples of 64 (a 64x48 frame comes back
  64x64), so every map is resized back to the frame's exact size here.

controlnet_aux is imported only inside :func:`load_detector`: its package import pulls in
timm, scikit-image and torchvision, takes seconds, and breaks whenever one of those
moves, so runs that use only the OpenCV preprocessors must never touch it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from pipeline.errors import RotoscopeError


@dataclass(frozen=True)
class Detector:
    """How to load one controlnet_aux detector from an annotator folder.

    ``weights`` maps each ``from_pretrained`` file-name keyword to the file it must
    load; passing them all explicitly pins the names (the defaults differ by version
    and by repo id). ``nearest`` resizes the map without blending, for maps made of
    flat colour-coded strokes (pose skeletons) whose colours must not mix.
    """

    class_name: str
    weights: Mapping[str, str] = field(default_factory=dict)
    nearest: bool = False


DETECTORS: Mapping[str, Detector] = {
    "hed": Detector("HEDdetector", {"filename": "ControlNetHED.pth"}),
    "pidinet": Detector("PidiNetDetector", {"filename": "table5_pidinet.pth"}),
    "lineart": Detector(
        "LineartDetector", {"filename": "sk_model.pth", "coarse_filename": "sk_model2.pth"}
    ),
    "lineart_anime": Detector("LineartAnimeDetector", {"filename": "netG.pth"}),
    "depth_midas": Detector("MidasDetector", {"filename": "dpt_hybrid-midas-501f0c75.pt"}),
    "depth_zoe": Detector("ZoeDetector", {"filename": "ZoeD_M12_N.pt"}),
    # from_pretrained loads the hand and face networks even when only bodies are drawn.
    "openpose": Detector(
        "OpenposeDetector",
        {
            "filename": "body_pose_model.pth",
            "hand_filename": "hand_pose_model.pth",
            "face_filename": "facenet.pth",
        },
        nearest=True,
    ),
    "normal_bae": Detector("NormalBaeDetector", {"filename": "scannet.pt"}),
    "mlsd": Detector("MLSDdetector", {"filename": "mlsd_large_512_fp32.pth"}),
}


def load_detector(
    name: str, options: Mapping[str, Any], annotators: Path, device: str
) -> Callable[[np.ndarray], np.ndarray]:
    """Load detector ``name`` from ``annotators`` once and return frame -> control map.

    ``options`` are validated keyword arguments of the detector's ``__call__``,
    ``detect_resolution`` among them. The caller has already checked that every weight
    file exists: given a missing folder, controlnet_aux would treat the path as a hub id.
    """
    spec = DETECTORS[name]
    detector_class = getattr(_import_controlnet_aux(), spec.class_name)
    try:
        detector = detector_class.from_pretrained(str(annotators), **spec.weights)
    except Exception as exc:  # torch.load / load_state_dict raise many different types
        files = ", ".join(spec.weights.values())
        raise RotoscopeError(
            f"controlnet annotator weights for '{name}' in '{annotators}' could not be "
            f"loaded: {_first_line(exc)}",
            f"download {files} again from lllyasviel/Annotators; the file may be truncated "
            "or belong to another model",
        ) from exc
    detector.to(device)
    interpolation = cv2.INTER_NEAREST if spec.nearest else cv2.INTER_LINEAR
    resolution = options["detect_resolution"]
    call_options = dict(options)

    def detect(frame: np.ndarray) -> np.ndarray:
        # image_resolution = detect_resolution keeps controlnet_aux from resampling the
        # map a second time; the one resize that matters is ours, to the frame size.
        control = detector(frame, image_resolution=resolution, output_type="np", **call_options)
        control = np.asarray(control, dtype=np.uint8)
        if control.ndim == 2:
            control = np.repeat(control[:, :, None], 3, axis=2)
        height, width = frame.shape[:2]
        return cv2.resize(control, (width, height), interpolation=interpolation)

    return detect


def _import_controlnet_aux() -> ModuleType:
    """Import controlnet_aux, turning any failure into an install hint.

    Any exception type is caught: a broken install shows up as ImportError, but also as
    RuntimeError (a torchvision built for another torch) or AttributeError (a timm API
    it expects has moved). Its import-time warnings (no mediapipe, deprecated timm
    paths) are silenced because none of them concern the detectors used here.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import controlnet_aux
    except Exception as exc:
        raise RotoscopeError(
            f"the controlnet_aux package could not be imported: {_first_line(exc)}",
            "the weight-based preprocessors need it: pip install controlnet-aux",
        ) from exc
    return controlnet_aux


def _first_line(exc: BaseException) -> str:
    """The exception's type and the first line of its message: enough to search for."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
