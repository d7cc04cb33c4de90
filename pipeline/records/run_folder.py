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
UPSCALED = "upscaled"
BETWEEN = "between"
MASKS = "masks"
CONTROL = "control"
HISTORY = "history"
PREVIEW = "preview"
THUMBNAILS = "thumbnails"
SIDECAR_SUFFIX = ".json"
FRAME_KEY_LENGTH = 16  # hex digits of a frame's key in its file name (64 bits)


@dataclass(frozen=True)
class RunFolder:
    """Paths of one run folder (nothing is created until a stage writes)."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)

    # --- records of the job ---
    @property
    def config(self) -> Path:
        """The resolved config of the last job that rendered (a preview's: in preview/)."""
        return self.path / "config.yaml"

    @property
    def jobs(self) -> Path:
        """One JSON line per job run in the folder: when, the command line, the stages,
        how it ended, what it wrote (every job, renders or not)."""
        return self.path / "jobs.jsonl"

    @property
    def preview(self) -> RunFolder:
        """Where a job that plans without rendering (``stages=[plan]``) keeps its plan,
        chart, config and report, so they are never taken for the last render's."""
        return RunFolder(self.path / PREVIEW)

    @property
    def log(self) -> Path:
        """The full log, progress lines included."""
        return self.path / "rotoscope.log"

    @property
    def report(self) -> Path:
        """The last rendering job's outcome: status, counts, timing, memory, versions,
        outputs."""
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

    def frame(self, key: str) -> Path:
        return self.path / self.frame_name(key)

    @staticmethod
    def frame_name(key: str) -> str:
        """A frame's path relative to the run folder, as the manifest records it.

        Frames are stored by their key, not their index: a new look of frame 3 gets a
        new file instead of replacing the old one, and going back to an earlier look
        finds its frames still there (the manifest maps each index to its current key).
        """
        return f"{FRAMES}/{key[:FRAME_KEY_LENGTH]}.png"

    @property
    def masks(self) -> Path:
        return self.path / MASKS

    def mask(self, digest: str) -> Path:
        """A frame's mask, by the digest of its pixels (the manifest line names it): frames
        with the same mask share the file, and an edited mask never overwrites one."""
        return self.path / MASKS / f"{digest[:FRAME_KEY_LENGTH]}.png"

    @property
    def thumbnails(self) -> Path:
        """Small JPEGs of the frames and their source frames, for the report page."""
        return self.path / THUMBNAILS

    def thumbnail(self, key: str, of_source: bool = False) -> Path:
        """A frame's thumbnail (``of_source``: its source frame's), by the frame's key:
        made once per key, like the frame itself."""
        suffix = ".source.jpg" if of_source else ".jpg"
        return self.thumbnails / f"{key[:FRAME_KEY_LENGTH]}{suffix}"

    @property
    def page(self) -> Path:
        """The report page (``report.html``): the run at a glance, refreshed while it runs."""
        return self.path / "report.html"

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

    @staticmethod
    def coherence_key(path: Path) -> str | None:
        """The (shortened) frame key a coherence state file belongs to, or None."""
        stem, dash, key = path.name.removesuffix(".safetensors").partition("-")
        return key if dash and stem in ("attention", "latents") else None

    @property
    def cadence(self) -> Path:
        """Loopback cadence: the diffused frames the frames shown are tweened from."""
        return self.path / "cadence"

    def cadence_diffused(self, key: str) -> Path:
        """A loopback's diffused frame (shown only blended), by its key."""
        return self.cadence / f"diffused-{key[:24]}.png"

    @staticmethod
    def cadence_key(path: Path) -> str | None:
        """The (shortened) key of the diffused frame a cadence file holds, or None."""
        stem, dash, key = path.stem.partition("-")
        return key if dash and stem == "diffused" and path.suffix == ".png" else None

    @property
    def depth(self) -> Path:
        """Depth maps of loopback outputs (3D camera, ``animation.save_depth``), by frame key."""
        return self.path / "depth"

    def depth_map(self, key: str) -> Path:
        """The depth map estimated from the output frame with this key."""
        return self.depth / f"{key[:24]}.png"

    @staticmethod
    def depth_key(path: Path) -> str | None:
        """The (shortened) frame key a depth map belongs to, or None."""
        return path.stem if path.suffix == ".png" and not path.name.startswith(".") else None

    def flow_pair(self, index: int) -> Path:
        """The source flow between frames ``index - 1`` and ``index``."""
        return self.flow / f"{index:06d}.npz"

    def hybrid_flow_pair(self, index: int) -> Path:
        """A loopback's hybrid-video flow into frame ``index`` (from the video's frame
        before, or from the moved previous output)."""
        return self.flow / f"hybrid-{index:06d}.npz"

    # --- upscale stage ---
    @property
    def upscaled(self) -> Path:
        """Frames at the delivered size, stored by their own key (``frames/`` keeps the
        render-size ones)."""
        return self.path / UPSCALED

    def upscaled_frame(self, key: str) -> Path:
        return self.path / self.upscaled_name(key)

    @staticmethod
    def upscaled_name(key: str) -> str:
        """An upscaled frame's path relative to the run folder, as its record says."""
        return f"{UPSCALED}/{key[:FRAME_KEY_LENGTH]}.png"

    @property
    def upscaled_index(self) -> Path:
        """Finished upscaled frames, one JSON line each: which frame, how, which file."""
        return self.path / "upscaled.jsonl"

    # --- assemble stage: in-between frames ---
    @property
    def between(self) -> Path:
        """Frames made between two delivered ones (``output.interpolate``/``output.fps``)."""
        return self.path / BETWEEN

    def between_frame(self, first: str, second: str, key: str) -> Path:
        """An in-between frame of the delivered frames keyed ``first`` and ``second``
        (their keys lead its name, so pruning can tell whose it is), by its own key."""
        short = FRAME_KEY_LENGTH
        return self.between / f"{first[:short]}-{second[:short]}-{key[:short]}.png"

    @staticmethod
    def between_neighbours(path: Path) -> tuple[str, str] | None:
        """The (shortened) keys of the two frames an in-between frame file was made from."""
        parts = path.stem.split("-")
        if path.suffix != ".png" or len(parts) != 3:
            return None
        return parts[0], parts[1]

    # --- metrics stage ---
    @property
    def metrics(self) -> Path:
        """Warp error per frame pair and overall, with the source's as the reference."""
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

    def video(self, extension: str) -> Path:
        """The encoded video, named after the run folder: ``<folder>/<folder>.<extension>``."""
        return self.path / f"{self.path.name}.{extension}"

    def matte_video(self, extension: str) -> Path:
        """``output.matte``: the masks as a video beside the output, ``<folder>.matte.<ext>``."""
        return self.path / f"{self.path.name}.matte.{extension}"

    @property
    def mattes(self) -> Path:
        """``output.matte`` with ``output=images``: the masks under the images' names."""
        return self.path / "mattes"

    def depth_video(self, extension: str) -> Path:
        """``animation.save_depth``: each output frame's depth, beside the video."""
        return self.path / f"{self.path.name}-depth.{extension}"

    def staging(self, name: str) -> Path:
        """Where a new deliverable is written before it replaces ``name`` (hidden)."""
        return self.path / f".new-{name}"

    @staticmethod
    def sidecar(deliverable: Path) -> Path:
        """A deliverable's provenance (``clip.mp4`` -> ``clip.mp4.json``, ``images/`` ->
        ``images.json``): what made it, kept next to it and moved into history with it."""
        return deliverable.with_name(deliverable.name + SIDECAR_SUFFIX)

    @staticmethod
    def is_sidecar(path: Path) -> bool:
        return path.name.endswith(SIDECAR_SUFFIX)

    @property
    def deliverables(self) -> Path:
        """What each current deliverable was made from, to tell a new one from a re-encode."""
        return self.path / "deliverables.json"

    # --- identity and history ---
    @property
    def run_json(self) -> Path:
        """Whose run this folder holds: the input's resolved path and the multirun job."""
        return self.path / "run.json"

    @property
    def random_seed(self) -> Path:
        """The base seed drawn for ``seed=-1``, kept so every later run of the folder uses it."""
        return self.path / "seed.json"

    @property
    def history(self) -> Path:
        """Earlier deliverables, moved aside when a different one replaced them."""
        return self.path / HISTORY
