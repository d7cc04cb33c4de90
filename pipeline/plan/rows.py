"""Plan rows: what one output frame is generated with, and the plan files that hold them.

A row is plain data. The render stage reads rows back from ``plan.jsonl`` instead of
recomputing schedules, and a frame's cache key hashes its row's JSON.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, fields

from pipeline.atomic import write_text
from pipeline.errors import RotoscopeError
from pipeline.jobs.run_folder import RunFolder

# Row fields added after the first release: omitted from a row's JSON while None.
LATER_FIELDS = frozenset({"segment_start", "attention_steps", "flow_weight"})


@dataclass(frozen=True)
class FrameJob:
    """What one output frame is generated with; ``index`` is the output frame number.

    Between two prompt keyframes the frame's conditioning lies ``blend`` of the way from
    (prompt, negative_prompt) to (prompt_to, negative_prompt_to). Motion values are set
    only in loopback mode.
    """

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
    prompt_to: str | None = None
    negative_prompt_to: str | None = None
    blend: float = 0.0
    blend_mode: str = "linear"
    zoom: float | None = None
    angle: float | None = None
    translation_x: float | None = None
    translation_y: float | None = None
    transform_center_x: float | None = None
    transform_center_y: float | None = None
    noise: float | None = None
    # ControlNet units by name: {"canny": {"weight": 1.0, "start": 0.0, "end": 1.0}}
    controls: dict[str, dict[str, float]] | None = None
    # Temporal coherence (set only when it is on): the first frame of this frame's
    # segment (its anchor; the frame itself for a segment's first frame), the fraction
    # of steps with cross-frame attention, the weight of the flow-moved previous output.
    segment_start: int | None = None
    attention_steps: float | None = None
    flow_weight: float | None = None

    def to_json(self) -> str:
        """The row as JSON: what a frame's key hashes. Fields added after the first
        release are left out while unset, so rows (and keys) of runs that do not use
        them are what they always were."""
        values = {
            name: value
            for name, value in asdict(self).items()
            if value is not None or name not in LATER_FIELDS
        }
        return json.dumps(values, sort_keys=True, ensure_ascii=False)


def write_plan(rows: list[FrameJob], folder: RunFolder) -> None:
    """Write the rows as JSON lines (for the renderer) and CSV (for people)."""
    write_text(folder.plan_jsonl, "".join(row.to_json() + "\n" for row in rows))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=[f.name for f in fields(FrameJob)])
    writer.writeheader()
    for row in rows:
        values = asdict(row)
        values["controls"] = json.dumps(row.controls) if row.controls else ""
        writer.writerow(values)
    write_text(folder.plan_csv, table.getvalue())


def read_plan(folder: RunFolder) -> list[FrameJob]:
    """Load the rows the plan stage wrote; a missing plan means the stage did not run."""
    path = folder.plan_jsonl
    if not path.exists():
        raise RotoscopeError(
            f"no plan in {folder}", "run the plan stage first: stages=[plan,render,assemble]"
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
