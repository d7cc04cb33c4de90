"""A tiny random-weight ESRGAN and RIFE, built locally for the finishing tests and demo.

The ESRGAN is spandrel's own RRDBNet class (the "old" ESRGAN layout that 4x-UltraSharp
and most community upscalers use) with 8 filters and one RRDB block instead of 64 and
23, saved as ``.safetensors`` and as a weights-only ``.pth``; spandrel recognises it from
its tensors like a real one. Its last layer is scaled up and biased to mid-grey so its
output spans the range instead of sitting near black, so tiling tests compare pictures,
not zeros. The RIFE is rotoscope's IFNet at 16/16/8/8 channels instead of 192/128/96/64,
saved as ``flownet.pkl`` is (a pickled state dict with ``module.`` prefixes).
"""

from __future__ import annotations

import json
from dataclasses import astuple, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from pipeline.models.rife import IFNet
from pipeline.testing.tiny_models import save_into_place

TINY_FORMAT = 1
SEED = 0
SCALE = 2  # the tiny ESRGAN's factor
_STAMP = "tiny_finishing.json"


@dataclass(frozen=True)
class TinyFinishing:
    """Where the tiny upscaler (two files, one network) and RIFE are."""

    esrgan: Path  # 2x, .safetensors
    esrgan_pth: Path  # the same weights as a weights-only pickle
    rife: Path  # RIFE 4.6 layout, tiny widths, .pkl


def build_tiny_finishing(out_dir: Path) -> TinyFinishing:
    """Build them under ``out_dir`` (a no-op if a complete build is there)."""
    from spandrel.architectures.ESRGAN import ESRGAN

    out_dir = Path(out_dir)
    paths = TinyFinishing(
        esrgan=out_dir / "tiny_esrgan_2x.safetensors",
        esrgan_pth=out_dir / "tiny_esrgan_2x.pth",
        rife=out_dir / "tiny_rife46.pkl",
    )
    stamp = out_dir / _STAMP
    if _is_complete(stamp, paths):
        return paths
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        esrgan = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=SCALE)
        state = {key: value.contiguous() for key, value in esrgan.state_dict().items()}
        last = max(int(key.split(".")[1]) for key in state if key.startswith("model."))
        state[f"model.{last}.weight"] = state[f"model.{last}.weight"] * 6.0
        state[f"model.{last}.bias"] = torch.full_like(state[f"model.{last}.bias"], 0.45)
        save_into_place(paths.esrgan, lambda path: save_file(state, str(path)))
        save_into_place(paths.esrgan_pth, lambda path: torch.save(state, path))
        rife = IFNet((16, 16, 8, 8))
        prefixed = {f"module.{key}": value for key, value in rife.state_dict().items()}
        save_into_place(paths.rife, lambda path: torch.save(prefixed, path))
    stamp.write_text(json.dumps({"format": TINY_FORMAT}) + "\n")
    return paths


def _is_complete(stamp: Path, paths: TinyFinishing) -> bool:
    try:
        built = json.loads(stamp.read_text()).get("format")
    except (OSError, ValueError):
        return False
    return built == TINY_FORMAT and all(path.exists() for path in astuple(paths))
