"""The final report of a job: what it did, how long it took, what it cost, where it put it.

Written however the job ended (finished, interrupted or failed), so an overnight queue
can be checked in the morning without reading logs, and printed as one line. A job that
renders writes it as the run folder's ``report.json``; a preview as
``preview/report.json``; every job also adds it as a line to ``jobs.jsonl``
(:func:`append_job`), the folder's list of the jobs run in it.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from pipeline.atomic import write_text

# Whose versions every report records: what a frame's pixels depend on.
VERSIONED_PACKAGES = ("torch", "diffusers", "transformers")


@dataclass
class JobReport:
    """Counts, timings and outputs of one job (one run folder)."""

    run_dir: str
    status: str = "running"  # done | interrupted | failed
    error: str | None = None
    started: str = ""  # local time, ISO 8601
    stages: list[str] = field(default_factory=list)
    planned: int = 0
    rendered: int = 0
    reused: int = 0
    skipped: int = 0  # input frames that could not be decoded, left out (on_bad_frame=skip)
    repeated: int = 0  # ... replaced by the previous good frame (on_bad_frame=repeat)
    reasons: dict[str, int] = field(default_factory=dict)  # why frames were rendered
    rendered_frames: str = ""  # e.g. "0-3,7"
    skipped_frames: list[str] = field(default_factory=list)
    repeated_frames: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # rendering alone: the model load and the other stages are not frame time
    render_seconds: float | None = None
    model_load_seconds: float | None = None
    seconds_per_frame: float | None = None
    peak_rss_mib: float = 0.0
    peak_gpu_mib: float | None = None
    outputs: list[str] = field(default_factory=list)
    # where the deliverables this job replaced were kept (history/), and what all kept
    # history (earlier looks' frames, earlier deliverables) takes on disk
    previous_outputs: list[str] = field(default_factory=list)
    history_bytes: int = 0
    resume_command: str | None = None
    # finishing: frames brought to the delivered size (the upscale stage) and by what, and
    # frames made between delivered ones (the assemble stage)
    upscaler: str | None = None
    upscaled: int = 0
    upscale_reused: int = 0
    upscale_seconds: float | None = None
    in_between: int = 0
    in_between_reused: int = 0
    # flicker (the metrics stage): mean warp error of the output and of the source
    warp_error: float | None = None
    source_warp_error: float | None = None
    # what rendered: the device (set by the render stage) and the library versions
    device: str | None = None
    versions: dict[str, str | None] = field(default_factory=lambda: library_versions())
    _rendered: list[int] = field(default_factory=list, repr=False)
    _reasons: Counter[str] = field(default_factory=Counter, repr=False)

    def count_render(self, index: int, reason: str) -> None:
        self._rendered.append(index)
        self._reasons[reason] += 1

    def finish(self, seconds: float) -> None:
        """Fill in the derived fields: ranges, reasons, timing and peak memory."""
        self.rendered = len(self._rendered)
        self.rendered_frames = frame_ranges(self._rendered)
        self.reasons = dict(self._reasons.most_common())
        self.seconds = round(seconds, 3)
        frame_time = seconds if self.render_seconds is None else self.render_seconds
        self.seconds_per_frame = round(frame_time / self.rendered, 3) if self.rendered else None
        self.peak_rss_mib = round(peak_rss_bytes() / 2**20, 1)
        self.peak_gpu_mib = peak_gpu_mib()

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def write(self, path: Path) -> Path:
        """Write the report as JSON to ``path`` (the run folder's ``report.json``)."""
        return write_text(path, json.dumps(self.as_dict(), indent=2) + "\n")

    def line(self) -> str:
        """The closing line: for a job that renders, what it rendered and reused; for one
        that does not (a preview, a re-encode), its stages."""
        renders = "render" in self.stages or not self.stages
        if not renders:
            return "; ".join([f"{self.status}: {'+'.join(self.stages)}", *self._tail(False)])
        why = ", ".join(f"{count} {reason}" for reason, count in self.reasons.items())
        parts = [
            f"{self.status}: {self.rendered} rendered" + (f" ({why})" if why else ""),
            f"{self.reused} reused",
        ]
        return "; ".join(parts + self._tail(True))

    def _tail(self, renders: bool) -> list[str]:
        parts: list[str] = []
        if self.skipped and renders:
            parts.append(f"{self.skipped} skipped (bad input)")
        if self.repeated and renders:
            parts.append(f"{self.repeated} repeated (bad input)")
        if self.seconds_per_frame:
            parts.append(f"{self.seconds_per_frame:.2f} s/frame")
        if self.upscaler:
            parts.append(
                f"{self.upscaled} upscaled, {self.upscale_reused} reused ({self.upscaler})"
            )
        if self.in_between or self.in_between_reused:
            parts.append(f"{self.in_between} in-between frames made")
        if self.warp_error is not None:
            parts.append(f"warp error {self.warp_error:.5f} (source {self.source_warp_error:.5f})")
        parts.append(f"peak RAM {self.peak_rss_mib:.0f} MiB")
        if self.peak_gpu_mib is not None:
            parts.append(f"peak GPU {self.peak_gpu_mib:.0f} MiB")
        if self.previous_outputs:
            kept = [os.path.relpath(path, self.run_dir) for path in self.previous_outputs]
            parts.append("previous output kept as " + ", ".join(kept))
        if self.history_bytes and (renders or self.previous_outputs):
            parts.append(
                f"kept history {format_bytes(self.history_bytes)} (rotoscope-prune frees it)"
            )
        return parts


def append_job(path: Path, report: JobReport) -> None:
    """Add ``report`` as one line to the folder's job list (``jobs.jsonl``), durably."""
    line = json.dumps(report.as_dict(), ensure_ascii=False) + "\n"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def format_bytes(count: int) -> str:
    """``812 KiB``, ``3.4 MiB``, ``1.2 GiB``."""
    if count < 2**20:
        return f"{count / 2**10:.0f} KiB"
    if count < 2**30:
        return f"{count / 2**20:.1f} MiB"
    return f"{count / 2**30:.2f} GiB"


def library_versions() -> dict[str, str | None]:
    """Python's and the rendering libraries' versions, read from package metadata (no
    import, so a dry run stays light); None for a package that is not installed."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def frame_ranges(indices: list[int]) -> str:
    """Compact ranges: [0, 1, 2, 5, 7, 8] -> "0-2,5,7-8"."""
    ranges: list[str] = []
    ordered = sorted(set(indices))
    start = previous = None
    for index in [*ordered, None]:
        if index is not None and previous is not None and index == previous + 1:
            previous = index
            continue
        if start is not None:
            ranges.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = index
    return ",".join(ranges)


def peak_rss_bytes() -> int:
    """Peak resident memory of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def peak_gpu_mib() -> float | None:
    torch = sys.modules.get("torch")  # only if rendering imported it: never import it here
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)
