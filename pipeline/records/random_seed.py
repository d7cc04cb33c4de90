"""``seed=-1``: a base seed drawn once for a run folder and kept in it.

A1111 and Deforum draw a random seed when the seed is -1. A run folder resumes, and a
re-run finds its frames current, only if their seeds are the same as before: so the seed
is drawn the first time a job runs in the folder, written to it when the job is
accepted (``RunFolder.random_seed``), and read back by every later job there. The job records it
in ``config.yaml`` too, and the plan and each frame's metadata carry the frames' seeds.
"""

from __future__ import annotations

import json
import secrets

from pipeline.atomic import write_text
from pipeline.errors import RotoscopeError
from pipeline.records.run_folder import RunFolder

# Drawn seeds stay 32-bit, the range A1111 and Deforum draw from.
SEED_RANGE = 2**32


def run_seed(folder: RunFolder) -> tuple[int, bool]:
    """The base seed drawn for ``folder`` and whether it is new: the one kept there, or a
    new one, which :func:`keep_run_seed` writes once the job is accepted (a refused
    command writes nothing)."""
    path = folder.random_seed
    if path.is_file():
        try:
            return int(json.loads(path.read_text(encoding="utf-8"))["seed"]), False
        except (ValueError, KeyError, TypeError) as exc:
            raise RotoscopeError(
                f"{path} does not hold the seed drawn for this run folder",
                "delete it to draw a new one (the frames made with the old one re-render), "
                "or give seed=N",
            ) from exc
    return secrets.randbelow(SEED_RANGE), True


def keep_run_seed(folder: RunFolder, seed: int) -> None:
    """Keep the seed drawn for ``folder`` there, for every later job."""
    write_text(folder.random_seed, json.dumps({"seed": seed}) + "\n")
