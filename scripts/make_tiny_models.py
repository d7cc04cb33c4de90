"""Build the tiny random-weight models used by the offline demo and the tests.

    python scripts/make_tiny_models.py [--out FOLDER]

The default folder is the ``tiny`` folder of rotoscope's models folder (``paths.models``:
the checkout's ``models/`` when run from a checkout, see pipeline/config/paths.py), where
the ``model=tiny*`` and ``controlnet=tiny_*`` presets look.

Writes <out>/sd15/ and <out>/sdxl/ (diffusers folders) and <out>/sd15.safetensors,
<out>/sdxl.safetensors (the same models as A1111-style single-file checkpoints), plus
ControlNets for both (<out>/controlnet_sd15/, <out>/controlnet_sd15.safetensors,
<out>/controlnet_sdxl/), LoRAs in kohya and diffusers format (<out>/loras/) and
textual-inversion embeddings (<out>/embeddings/) for both, a tiny Depth Anything depth
model (<out>/depth/, ``animation.depth.model=tiny``), a 2x ESRGAN upscaler
(<out>/upscalers/tiny_esrgan_2x.safetensors and .pth) and a RIFE 4.6
(<out>/upscalers/tiny_rife46.pkl), then prints their paths. A complete earlier build is
reused, so running it again is instant.
"""

from __future__ import annotations

import argparse
from dataclasses import astuple
from pathlib import Path

from pipeline.config.paths import rotoscope_home
from pipeline.models.weights import TINY_MODELS_FOLDER
from pipeline.testing.tiny_adapters import build_tiny_adapters
from pipeline.testing.tiny_controlnet import build_tiny_controlnets
from pipeline.testing.tiny_depth import build_tiny_depth
from pipeline.testing.tiny_finishing import build_tiny_finishing
from pipeline.testing.tiny_models import build_tiny_models


def main() -> None:
    default = rotoscope_home() / "models" / TINY_MODELS_FOLDER
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=default, help=f"output folder (default: {default})"
    )
    args = parser.parse_args()
    models = build_tiny_models(args.out)
    controlnets = build_tiny_controlnets(args.out, models)
    adapters = build_tiny_adapters(args.out, models)
    depth = build_tiny_depth(args.out)
    finishing = build_tiny_finishing(args.out / "upscalers")
    built = (
        *astuple(models),
        *astuple(controlnets),
        *astuple(adapters),
        depth,
        *astuple(finishing),
    )
    for path in built:
        print(path)


if __name__ == "__main__":
    main()
