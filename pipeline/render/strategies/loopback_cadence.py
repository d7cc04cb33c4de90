"""Deforum's cadence in the loopback strategy (``cadence.every`` with animation 2D or 3D).

Frames 0, N, 2N, ... are diffused, each from the frame shown before it, moved by the
camera as every loopback input is; every frame is shown as Deforum's turbo frames show it,
tweened between the last two diffused frames (:mod:`pipeline.animation.turbo`). So a
diffused frame is itself shown blended with the one before: what it diffused is kept in
the run folder (``RunFolder.cadence_diffused``, by its key, written before its frame's
manifest line) for the frames tweened from it, and is diffused again only if that file is
gone. A frame's key joins the keys of the two diffused frames it is tweened from and how
it is tweened; its input is the frame shown before it. A change ripples forward exactly
as it does without cadence, and a resumed job finds the diffused frames it needs on disk
(in 3D, with their depth maps: the tweens move through the depth each diffused frame
carries along, so no depth is estimated on a tween).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
from PIL import Image

from pipeline.animation.cadence_flow import cadence_flow
from pipeline.animation.camera3d import CameraStep3D
from pipeline.animation.loopback import CameraStep, InputTools, LoopbackInputs
from pipeline.animation.turbo import Camera, Moving, TurboSpan
from pipeline.atomic import atomic_path
from pipeline.config.schema import CadenceFlow, RunConfig
from pipeline.control.maps import UnitMap
from pipeline.plan.rows import PlanRow
from pipeline.records.manifest import image_digest
from pipeline.records.run_folder import RunFolder
from pipeline.render.batch import FrameInput
from pipeline.render.producer import FrameProducer
from pipeline.render.units import FrameOrigin, PendingFrame


class Matched(Protocol):
    """A loopback frame's colour match after generation (``LoopbackFrame``): what joins
    its key, and the match."""

    dependencies: str

    def rendered(self, key: str, output: np.ndarray) -> np.ndarray: ...


# A depth map of an output, by the output's key (``DepthMaps.of``).
DepthOf = Callable[[str, np.ndarray], np.ndarray]

# How the frames are tweened: part of every frame's key with a loopback cadence.
TURBO_METHOD = "deforum turbo: prev and next moved by the camera, w=(t-k+1)/n, depth carried"


class Diffused:
    """A diffused frame of the loopback: its key, and its output (and depth) when a frame
    tweened from it needs them."""

    def __init__(
        self,
        index: int,
        key: str,
        output: Callable[[], np.ndarray],
        depth: DepthOf | None,
    ) -> None:
        """``output`` makes (or reads) the output; ``depth(key, output)`` its depth, in 3D."""
        self.index = index
        self.key = key
        self._output = output
        self._depth = depth
        self._made: np.ndarray | None = None

    def output(self) -> np.ndarray:
        if self._made is None:
            self._made = self._output()
        return self._made

    def moving(self) -> Moving:
        """The picture the frames after it start from, with its depth in 3D."""
        output = self.output()
        depth = self._depth(self.key, output) if self._depth is not None else None
        return Moving(output, depth)


class LoopbackCadence:
    """The frames of a loopback after frame 0, with Deforum's cadence."""

    def __init__(
        self,
        cfg: RunConfig,
        folder: RunFolder,
        producer: FrameProducer,
        inputs: LoopbackInputs,
        rows: list[PlanRow],
        camera: Callable[[PlanRow], CameraStep | CameraStep3D],
        tools: Callable[[PlanRow], InputTools],
        depth: tuple[DepthOf, str] | None,
    ) -> None:
        """``camera(row)`` and ``tools(row)``: a row's camera step and input tools (the
        loopback strategy's); ``depth``: in 3D, the depth of an output by its key, and the
        depth model's identity."""
        self.cfg = cfg
        self.folder = folder
        self.producer = producer
        self.inputs = inputs
        self.rows = rows
        self.step_of = camera
        self.tools_of = tools
        self.depth_of = depth[0] if depth is not None else None
        self.every = cfg.cadence.every
        self.camera = Camera(self._move, self._move_flow)
        self.older: Diffused | None = None
        self.newer: Diffused | None = None
        self.span: TurboSpan | None = None  # the current span's pictures, once needed
        self.before: Moving | None = None  # the picture before the current span
        settings = inputs.settings
        depth_identity = f", depth {depth[1]}" if depth is not None else ""
        self.method = (
            f"{TURBO_METHOD}; border {settings.border.value}, padding "
            f"{settings.padding_mode.value}, sampling {settings.sampling_mode.value}"
            f"{depth_identity}"
        )

    # --- the camera, per frame ---

    def _move(self, picture: Moving, index: int) -> Moving:
        row = self.rows[index]
        step, flip = self.step_of(row), self.tools_of(row).flip
        image = self.inputs.move(picture.image, step, flip, picture.depth)
        depth = None
        if picture.depth is not None:
            depth = self.inputs.move_maps(picture.depth, step, flip, picture.depth)
        return Moving(image, depth)

    def _move_flow(self, flow: np.ndarray, depth: np.ndarray | None, index: int) -> np.ndarray:
        row = self.rows[index]
        return self.inputs.move_maps(flow, self.step_of(row), self.tools_of(row).flip, depth)

    # --- the frames ---

    def first(self, key: str, output: np.ndarray) -> None:
        """Frame 0 is diffused and shown as it is: the first span starts from it."""
        self.newer = Diffused(0, key, lambda: output, self.depth_of)
        self.span = None
        self.before = None

    def frame(
        self,
        row: PlanRow,
        previous: np.ndarray,
        origin: FrameOrigin,
        reference: np.ndarray | None,
        loopback_frame: Callable[[np.ndarray], Matched],
    ) -> tuple[np.ndarray, str]:
        """Frame ``row.index`` (after frame 0) shown from the span it is in; ``previous``
        is the frame shown before it. A diffused frame first diffuses (or finds) what the
        frames from it on are tweened from."""
        index = row.index
        if row.cadence_to == index:
            self.start_span(row, previous, reference, loopback_frame)
        newer, older = self.newer, self.older
        assert newer is not None, "frame 0 starts the first span"
        flowing = row.cadence_flow_factor is not None
        flow = f"; flow {self.cfg.cadence.flow.value}" if flowing else ""
        named = f"|older={older.key}" if older is not None else ""
        dependencies = f"{self.method}{flow}{named}|newer={newer.key}"
        producer = self.producer
        found = producer.prepare(row, previous, origin, dependencies=dependencies, controlled=False)
        if isinstance(found, PendingFrame):
            shown = self.current_span().shown(index, row.cadence_flow_factor)
            producer.finish(found, shown, diffused=row.diffused)
            output, key = shown, found.key
        else:
            path = self.folder.path / found.file
            output, key = np.asarray(Image.open(path).convert("RGB")), found.key
        if producer.stop is not None:
            producer.stop.check()
        return output, key

    def start_span(
        self,
        row: PlanRow,
        previous: np.ndarray,
        reference: np.ndarray | None,
        loopback_frame: Callable[[np.ndarray], Matched],
    ) -> None:
        """Diffused frame ``row.index``: its input is the frame shown before it moved by its
        camera step (in 3D through the depth that frame carries), as any loopback input."""
        before = Moving(previous, self.span_end().depth if self.depth_of is not None else None)
        image = self.inputs.next_input(
            previous, self.step_of(row), self.tools_of(row), row.seed, before.depth, reference
        )
        frame = loopback_frame(image)
        maps = self.producer.control_of(row, image)  # ControlNet reads the diffused input
        key = self.producer.key(row, image_digest(image), frame.dependencies, maps)
        self.older = self.newer
        self.newer = Diffused(
            row.index, key, lambda: self.diffused(row, image, maps, frame, key), self.depth_of
        )
        self.before = before
        self.span = None

    def span_end(self) -> Moving:
        """The last frame of the current span as its pictures left it (with its depth)."""
        newer = self.newer
        assert newer is not None
        if self.span is None:  # nothing of it was made here: move the diffused frame along
            self.span = TurboSpan(newer.index, self.every, self.camera, None, newer.moving())
        return self.span.end()

    def current_span(self) -> TurboSpan:
        """The current span's pictures, made when a frame of it first needs them."""
        newer = self.newer
        assert newer is not None
        if self.span is None:
            diffused = newer.moving()
            flow = None
            row = self.rows[newer.index]
            if self.before is not None and row.cadence_flow_factor is not None:
                flow = self.flow(self.before.image, diffused.image)
            self.span = TurboSpan(newer.index, self.every, self.camera, self.before, diffused, flow)
        return self.span

    def flow(self, before: np.ndarray, diffused: np.ndarray) -> np.ndarray:
        """The optical flow from the picture before a span to its diffused frame."""
        cadence = self.cfg.cadence
        assert cadence.flow is not CadenceFlow.none
        return cadence_flow(
            before, diffused, cadence.flow, cadence.raft_weights, self.inputs.settings.device
        )

    def diffused(
        self, row: PlanRow, image: np.ndarray, maps: list[UnitMap], frame: Matched, key: str
    ) -> np.ndarray:
        """What frame ``row.index`` diffused from ``image`` (with its control ``maps``):
        kept in the run folder, or diffused now (and kept, before the frame's manifest
        line)."""
        path = self.folder.cadence_diffused(key)
        try:
            return np.asarray(Image.open(path).convert("RGB"))
        except OSError:
            pass
        pixels = self.producer.control_maps(maps)
        output = frame.rendered(key, self.producer.masked.render(FrameInput(row, image, pixels)))
        with atomic_path(path) as tmp:
            Image.fromarray(output).save(tmp, format="PNG")
        return output
