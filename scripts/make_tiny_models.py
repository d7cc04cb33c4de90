"""Build the tiny random-weight models used by the offline demo and the tests.

    python scripts/make_tiny_models.py [--out models/tiny]

Writes <out>/sd15/ and <out>/sdxl/ (diffusers folders) and <out>/sd15.safetensors,
<out>/sdxl.safetensors (the same models as A1111-style single-file checkpoints), plus
ControlNets for both (<out>/controlnet_sd15/, <out>/controlnet_sd15.safetensors,
<out>/controlnet_sdxl/), then prints their paths. A complete earlier build is reused,
so running it again is instant.
"""

from __future__ import annotations

import argparse
from dataclasses import astuple
from pathlib import Path

from pipeline.testing.tiny_controlnet import build_tiny_controlnets
from pipeline.testing.tiny_models import DEFAULT_DIR, build_tiny_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_DIR, help=f"output folder (default: {DEFAULT_DIR})"
    )
    args = parser.parse_args()
    models = build_tiny_models(args.out)
    controlnets = build_tiny_controlnets(args.out, models)
    for path in (*astuple(models), *astuple(controlnets)):
        print(path)


if __name__ == "__main__":
    main()
