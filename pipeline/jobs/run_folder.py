"""The run folder: every file and folder a job keeps, named in one place.

The run folder is the only state the stages share (``stages=[assemble]`` re-encodes
what an earlier render left there), so its layout is a contract between them and with
users, who read ``report.json`` or ``plan.csv`` in the morning. Every stage asks a
:class:`RunFolder` for a path instead of joining names of its own; the README's table
of run-folder files is this class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FRAMES = "frames"
CONTROL = "control"


@dataclass(frozen=True)
class RunFolder:
    """Paths of one run folder (nothing is created until a stage writes)."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)

    # --- records of the job ---
    @property
    def config(self) -> Path:
        """The resolved config of the last run."""
        return self.path / "config.yaml"

    @property
    def log(self) -> Path:
        """The full log, progress lines included."""
        return self.path / "rotoscope.log"

    @property
    def report(self) -> Path:
        """The job's outcome: status, counts, timing, memory, versions, outputs."""
        return self.path / "report.json"

    @property
    def lock(self) -> Path:
        """Held (flock) while a job runs in the folder."""
        return self.path / ".lock"

    # --- plan stage ---
    @property
    def plan_jsonl(self) -> Path:
        return self.path / "plan.jsonl"

    @property
    def plan_csv(self) -> Path:
        return self.path / "plan.csv"

    @property
    def plan_chart(self) -> Path:
        return self.path / "plan.png"

    @property
    def source_json(self) -> Path:
        """What was read: kind, sizes, rates, start time, audio."""
        return self.path / "source.json"

    # --- render stage ---
    @property
    def frames(self) -> Path:
        return self.path / FRAMES

    def frame(self, index: int) -> Path:
        return self.path / self.frame_name(index)

    @staticmethod
    def frame_name(index: int) -> str:
        """A frame's path relative to the run folder, as the manifest records it."""
        return f"{FRAMES}/{index:06d}.png"

    @property
    def manifest(self) -> Path:
        """Finished frames and their keys, one JSON line each."""
        return self.path / "manifest.jsonl"

    @property
    def flow(self) -> Path:
        """Optical flow between consecutive source frames, one file per pair."""
        return self.path / "flow"

    @property
    def coherence(self) -> Path:
        """Temporal coherence state: attention recordings and per-step latents."""
        return self.path / "coherence"

    def anchor_attention(self, key: str) -> Path:
        """A frame's recorded self-attention inputs (a later frame's anchor), by its key."""
        return self.coherence / f"attention-{key[:24]}.safetensors"

    def coherence_latents(self, key: str) -> Path:
        """A frame's latents after each step (latent fusion of the next frame), by its key."""
        return self.coherence / f"latents-{key[:24]}.safetensors"

    # --- metrics stage ---
    @property
    def metrics(self) -> Path:
        """Warp error per frame pair and overall, with the source's as the floor."""
        return self.path / "metrics.json"

    @property
    def metrics_chart(self) -> Path:
        return self.path / "metrics.png"

    # --- control stage ---
    @property
    def control(self) -> Path:
        return self.path / CONTROL

    def control_unit(self, unit: str) -> Path:
        """A ControlNet unit's cached maps and their index."""
        return self.path / CONTROL / unit

    def control_map(self, unit: str, index: int) -> Path:
        return self.control_unit(unit) / f"{index:06d}.png"

    def control_index(self, unit: str) -> Path:
        """The keys of a unit's cached maps, one JSON line per map."""
        return self.control_unit(unit) / "maps.jsonl"

    @property
    def control_preview(self) -> Path:
        return self.path / CONTROL / "preview.mp4"

    # --- assemble stage ---
    @property
    def images(self) -> Path:
        """``output=images``: the frames under their output names."""
        return self.path / "images"

    def video(self, name: str, extension: str) -> Path:
        """The encoded video, ``<name>.<extension>``."""
        return self.path / f"{name}.{extension}"
