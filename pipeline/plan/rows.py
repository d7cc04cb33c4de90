"""Plan rows: what one output frame is generated with, and the plan files that hold them.

A row is plain data. The render stage reads rows back from ``plan.jsonl`` instead of
recomputing schedules, and a frame's cache key hashes its row's JSON. Fields added after
the first release are left out of that JSON while they are unset (None), so a feature a
plan does not use never changes the keys of frames rendered before it existed.

A frame of an image folder is keyed by its file, not its position: its row names the
file (``source_file``) and its key leaves the frame number out (:meth:`PlanRow.key_json`),
so adding, removing or renaming one photo renders only that photo.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any

from pipeline.atomic import write_text
from pipeline.config.schema import MaskArea, MaskFill, PromptBlend
from pipeline.errors import RotoscopeError
from pipeline.records.run_folder import RunFolder

# Marks a field that :meth:`PlanRow.to_json` leaves out while it is None.
OPTIONAL = {"omit_when_unset": True}


@dataclass(frozen=True)
class ControlValues:
    """One ControlNet unit's values on one frame (each a schedule of its own)."""

    weight: float = 1.0  # the conditioning scale
    start: float = 0.0  # the fraction of the steps where the unit starts to act
    end: float = 1.0  # ... and where it stops


@dataclass(frozen=True)
class PlanRow:
    """What one output frame is generated with; ``index`` is the output frame number.

    Between two prompt keyframes the frame's conditioning lies ``blend`` of the way from
    (prompt, negative_prompt) to (prompt_to, negative_prompt_to). Motion values are set
    only in loopback and 3d modes (the 2D ones in loopback, the 3D camera's in 3d).
    Prompts keep their ``<lora:...>`` tags as written (the PNG metadata shows them, as
    A1111's does); ``loras`` holds the weights the tags resolve to for this frame, blended
    between keyframes like the embeddings.
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
    blend_mode: PromptBlend = PromptBlend.linear
    zoom: float | None = None
    angle: float | None = None
    translation_x: float | None = None
    translation_y: float | None = None
    transform_center_x: float | None = None
    transform_center_y: float | None = None
    noise: float | None = None
    # ControlNet units by name, each with its values on this frame
    controls: dict[str, ControlValues] | None = None
    # LoRA weights in effect on this frame, by name (None: no LoRA).
    loras: dict[str, float] | None = field(default=None, metadata=OPTIONAL)
    # Identity of each LoRA and embedding file the frame uses: "lora:NAME" or
    # "embedding:NAME" -> file fingerprint, so a changed file re-renders its frames.
    network_files: dict[str, str] | None = field(default=None, metadata=OPTIONAL)
    # A1111's CLIP skip when it is not 1 (1 = the text encoder's last layer).
    clip_skip: int | None = field(default=None, metadata=OPTIONAL)
    # How prompt editing counts steps ("a1111"), set only when it is not the default and
    # the row's prompts use prompt editing (None: over the denoising steps that run).
    prompt_editing_steps: str | None = field(default=None, metadata=OPTIONAL)

    # Temporal coherence (set only when it is on): the first frame of this frame's
    # segment (its anchor; the frame itself for a segment's first frame), the fraction
    # of steps with cross-frame attention, and the weights of what is carried along the
    # flow: the previous residual into the latents, the previous output into the init
    # picture and into the output.
    segment_start: int | None = field(default=None, metadata=OPTIONAL)
    attention_steps: float | None = field(default=None, metadata=OPTIONAL)
    flow_fusion: float | None = field(default=None, metadata=OPTIONAL)
    flow_init: float | None = field(default=None, metadata=OPTIONAL)
    flow_output: float | None = field(default=None, metadata=OPTIONAL)
    # An image folder's frame: the name of its file in the folder. Such a frame is keyed
    # by its file, not its position (see :meth:`key_json`).
    source_file: str | None = field(default=None, metadata=OPTIONAL)

    # Masks (set only with a mask): how the frame's mask is shaped (Deforum's contrast and
    # brightness adjustments, threshold, grow and blur in pixels), the feather where the
    # render meets the source frame, and how the masked area is rendered: A1111's masked
    # content, inpaint area and its padding, and whether the source is put back outside.
    mask_contrast: float | None = field(default=None, metadata=OPTIONAL)
    mask_brightness: float | None = field(default=None, metadata=OPTIONAL)
    mask_threshold: float | None = field(default=None, metadata=OPTIONAL)
    mask_grow: float | None = field(default=None, metadata=OPTIONAL)
    mask_blur: float | None = field(default=None, metadata=OPTIONAL)
    mask_overlay_blur: float | None = field(default=None, metadata=OPTIONAL)
    mask_fill: MaskFill | None = field(default=None, metadata=OPTIONAL)
    mask_area: MaskArea | None = field(default=None, metadata=OPTIONAL)
    mask_padding: int | None = field(default=None, metadata=OPTIONAL)
    mask_composite: bool | None = field(default=None, metadata=OPTIONAL)
    # A1111's initial noise multiplier, where it is not 1.
    noise_multiplier: float | None = field(default=None, metadata=OPTIONAL)
    # A1111's variation seed, where its strength is not 0: the subseed whose noise the
    # seed's is slerped toward, and how far (0..1).
    subseed: int | None = field(default=None, metadata=OPTIONAL)
    subseed_strength: float | None = field(default=None, metadata=OPTIONAL)
    # A1111's "resize seed from" (pixels), where it differs from the frame's size.
    seed_resize_from_w: int | None = field(default=None, metadata=OPTIONAL)
    seed_resize_from_h: int | None = field(default=None, metadata=OPTIONAL)
    # A1111's schedule type, where it is not Automatic (the sampler's own).
    scheduler: str | None = field(default=None, metadata=OPTIONAL)
    # Generated from noise alone (a loopback's first frame without an input image).
    txt2img: bool | None = field(default=None, metadata=OPTIONAL)
    # Loopback (2D and 3D): the input's contrast multiplier where it is not 1; the
    # unsharp mask (when animation.anti_blur is on); the Perlin noise's octaves and
    # persistence (with noise_type=perlin); the perspective flip (when it is on).
    contrast: float | None = field(default=None, metadata=OPTIONAL)
    anti_blur_amount: float | None = field(default=None, metadata=OPTIONAL)
    anti_blur_kernel: int | None = field(default=None, metadata=OPTIONAL)
    anti_blur_sigma: float | None = field(default=None, metadata=OPTIONAL)
    anti_blur_threshold: float | None = field(default=None, metadata=OPTIONAL)
    perlin_octaves: int | None = field(default=None, metadata=OPTIONAL)
    perlin_persistence: float | None = field(default=None, metadata=OPTIONAL)
    perspective_flip_theta: float | None = field(default=None, metadata=OPTIONAL)
    perspective_flip_phi: float | None = field(default=None, metadata=OPTIONAL)
    perspective_flip_gamma: float | None = field(default=None, metadata=OPTIONAL)
    perspective_flip_fv: float | None = field(default=None, metadata=OPTIONAL)
    # Hybrid video (loopback with animation.hybrid): how far along the video's flow a
    # frame moves; the composite's alpha and its mask's contrast, blend and cutoffs.
    hybrid_flow_factor: float | None = field(default=None, metadata=OPTIONAL)
    hybrid_alpha: float | None = field(default=None, metadata=OPTIONAL)
    hybrid_mask_contrast: float | None = field(default=None, metadata=OPTIONAL)
    hybrid_mask_blend_alpha: float | None = field(default=None, metadata=OPTIONAL)
    hybrid_mask_cutoff_low: float | None = field(default=None, metadata=OPTIONAL)
    hybrid_mask_cutoff_high: float | None = field(default=None, metadata=OPTIONAL)
    # The 3D camera's move and lens (animation.mode=3d), in Deforum's units.
    translation_z: float | None = field(default=None, metadata=OPTIONAL)
    rotation_3d_x: float | None = field(default=None, metadata=OPTIONAL)
    rotation_3d_y: float | None = field(default=None, metadata=OPTIONAL)
    rotation_3d_z: float | None = field(default=None, metadata=OPTIONAL)
    fov: float | None = field(default=None, metadata=OPTIONAL)
    near: float | None = field(default=None, metadata=OPTIONAL)
    far: float | None = field(default=None, metadata=OPTIONAL)
    aspect_ratio: float | None = field(default=None, metadata=OPTIONAL)
    # Cadence (cadence.every > 1): the diffused frames a frame is made from, the earlier
    # and the later (None: from the earlier alone), unset on a frame diffused on its own.
    # On an input video, a carried frame lies between them; in loopback (Deforum's
    # cadence) frames from one diffused frame to the next are tweened between the two
    # diffused before, so a diffused frame names itself as the later. The strength of
    # the repair pass over what neither covers (video, where it is not 0), and the flow
    # factor of Deforum's optical flow cadence (loopback, with cadence.flow).
    cadence_from: int | None = field(default=None, metadata=OPTIONAL)
    cadence_to: int | None = field(default=None, metadata=OPTIONAL)
    repair_strength: float | None = field(default=None, metadata=OPTIONAL)
    cadence_flow_factor: float | None = field(default=None, metadata=OPTIONAL)

    def to_json(self) -> str:
        """The row as its plan line holds it."""
        return json.dumps(self.keyed_fields(), sort_keys=True, ensure_ascii=False)

    def key_json(self) -> str:
        """The row as its frame's key hashes it: :meth:`to_json`, without the frame number
        for a frame of an image folder (its file names it; its pixels are hashed too), so
        a photo keeps its key wherever it sorts in the folder."""
        if self.source_file is None:
            return self.to_json()
        values = {name: value for name, value in self.keyed_fields().items() if name != "index"}
        return json.dumps(values, sort_keys=True, ensure_ascii=False)

    def as_record(self) -> dict[str, Any]:
        """Every field as plain JSON values, as a manifest line records the row."""
        return {
            name: value.value if isinstance(value, Enum) else value
            for name, value in asdict(self).items()
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> PlanRow:
        """The row a plan line (or a manifest record) holds."""
        values = dict(record)
        values["blend_mode"] = PromptBlend(values.get("blend_mode", PromptBlend.linear.value))
        if values.get("mask_fill") is not None:
            values["mask_fill"] = MaskFill(values["mask_fill"])
        if values.get("mask_area") is not None:
            values["mask_area"] = MaskArea(values["mask_area"])
        if values.get("controls"):
            values["controls"] = {
                unit: ControlValues(**unit_values)
                for unit, unit_values in values["controls"].items()
            }
        return cls(**values)

    @property
    def diffused(self) -> bool:
        """Whether the frame is diffused (else it is made from diffused frames alone)."""
        return self.cadence_from is None or self.cadence_to == self.index

    @property
    def carried_from(self) -> list[int]:
        """The diffused frames the frame is made from besides itself (cadence), in order."""
        made_from = (self.cadence_from, self.cadence_to)
        return [index for index in made_from if index is not None and index != self.index]

    @property
    def masked(self) -> bool:
        """Whether the frame is rendered through a mask."""
        return self.mask_area is not None

    def keyed_fields(self) -> dict[str, Any]:
        """The row as a dict, without the later-added fields that are unset."""
        omitted = {f.name for f in fields(self) if f.metadata.get("omit_when_unset")}
        return {
            name: value
            for name, value in self.as_record().items()
            if not (name in omitted and value is None)
        }


def write_plan(rows: list[PlanRow], folder: RunFolder) -> None:
    """Write the rows as JSON lines (for the renderer) and CSV (for people)."""
    write_text(folder.plan_jsonl, "".join(row.to_json() + "\n" for row in rows))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=[f.name for f in fields(PlanRow)])
    writer.writeheader()
    for row in rows:
        values = row.as_record()
        for name in ("controls", "loras", "network_files"):
            values[name] = json.dumps(values[name]) if values[name] else ""
        writer.writerow(values)
    write_text(folder.plan_csv, table.getvalue())


def read_plan(folder: RunFolder) -> list[PlanRow]:
    """Load the rows the plan stage wrote; a missing plan means the stage did not run."""
    path = folder.plan_jsonl
    if not path.exists():
        raise RotoscopeError(
            f"no plan in {folder}", "run the plan stage first: stages=[plan,render,assemble]"
        )
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            rows.append(PlanRow.from_record(json.loads(line)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise RotoscopeError(
                f"{path} line {number} is not a plan row", "rerun the plan stage"
            ) from exc
    return rows
