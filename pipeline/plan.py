"""The plan: one row of generation parameters per output frame, as plain data.

Everything downstream reads the plan and nothing recomputes it, so what a frame will
get is inspectable before a model loads (``stages=[plan]``) and a frame's cache key can
be computed from its row alone. Rows are written to ``plan.jsonl`` and ``plan.csv``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from pipeline.config import RunConfig
from pipeline.errors import RotoscopeError
from pipeline.samplers import canonical_sampler

PLAN_JSONL = "plan.jsonl"
PLAN_CSV = "plan.csv"


@dataclass(frozen=True)
class FrameJob:
    """What one output frame is generated with; ``index`` is the output frame number."""

    index: int
    prompt: str
    negative_prompt: str
    strength: float
    guidance_scale: float
    steps: int
    sampler: str
    seed: int
    width: int
    height: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)


def build_plan(cfg: RunConfig, frame_count: int, width: int, height: int) -> list[FrameJob]:
    """Rows for ``frame_count`` frames; raises RotoscopeError naming the bad key."""
    check_values(cfg)
    sampler = canonical_sampler(cfg.sampler)
    return [
        FrameJob(
            index=index,
            prompt=cfg.prompt,
            negative_prompt=cfg.negative_prompt,
            strength=float(cfg.strength),
            guidance_scale=float(cfg.guidance_scale),
            steps=int(cfg.steps),
            sampler=sampler,
            seed=int(cfg.seed),
            width=width,
            height=height,
        )
        for index in range(frame_count)
    ]


def check_values(cfg: RunConfig) -> None:
    """Reject values diffusers would fail on mid-run, before any work starts."""
    if not 0.0 <= cfg.strength <= 1.0:
        raise RotoscopeError(f"strength={cfg.strength} is outside 0..1 (0 keeps the input frame)")
    if cfg.steps < 1:
        raise RotoscopeError(f"steps={cfg.steps} must be at least 1")
    if 0 < cfg.strength * cfg.steps < 1:
        raise RotoscopeError(
            f"steps={cfg.steps} x strength={cfg.strength} runs no denoising step",
            f"raise steps to at least {int(1 / cfg.strength) + 1} or strength",
        )
    if cfg.guidance_scale < 0:
        raise RotoscopeError(f"guidance_scale={cfg.guidance_scale} must not be negative")
    if not 0 <= cfg.seed < 2**64:
        raise RotoscopeError(f"seed={cfg.seed} must be between 0 and 2**64-1")


def write_plan(rows: list[FrameJob], run_dir: Path) -> None:
    """Write the plan as JSON lines (for the renderer) and CSV (for people)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / PLAN_JSONL).write_text(
        "".join(row.to_json() + "\n" for row in rows), encoding="utf-8"
    )
    names = [f.name for f in fields(FrameJob)]
    with (run_dir / PLAN_CSV).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))


def read_plan(run_dir: Path) -> list[FrameJob]:
    """Load the rows the plan stage wrote; a missing plan means the stage did not run."""
    path = run_dir / PLAN_JSONL
    if not path.exists():
        raise RotoscopeError(
            f"no plan in {run_dir}", "run the plan stage first: stages=[plan,render,assemble]"
        )
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            rows.append(FrameJob(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise RotoscopeError(
                f"{path} line {number} is not a plan row", "rerun the plan stage"
            ) from exc
    return rows
