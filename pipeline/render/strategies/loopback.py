"""The loopback strategy (Deforum's 2D and 3D modes): frame 0 from the first source
frame, every later frame from the output before it, moved by the row's camera step.

Each later input is made by :class:`pipeline.animation.loopback.LoopbackInputs`. In 3D
(``animation.mode=3d``) the camera moves through the depth of the previous output,
estimated by ``animation.depth.model`` once per output and kept in the run folder by the
output's key (:class:`pipeline.animation.depth_cache.DepthCache`), so a resumed job
reads the depth back instead of running the model again; ``animation.save_depth`` keeps
every output's depth for the depth video.

In loopback the input pixels come from the previous output, so a change to one frame
changes the keys of every frame after it, and only those re-render. Each frame goes to
the producer as a :class:`LoopbackFrame`, which learns its key (the depth cache's key)
and, where colours are matched after generation (``color_coherence_output``, and frame
0 against a video), applies that match and adds the reference to the frame's key. The
whole animation is one chain: one unit, on one worker.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace

import numpy as np

from pipeline.animation.camera3d import CameraStep3D
from pipeline.animation.color_match import match_colors
from pipeline.animation.depth_cache import DepthCache
from pipeline.animation.loopback import (
    COLOR_SPACES,
    AntiBlur,
    CameraStep,
    InputTools,
    LoopbackInputs,
    LoopbackSettings,
    PerlinShape,
    PerspectiveFlip,
)
from pipeline.config.schema import ColorCoherence, HybridMask, RunConfig
from pipeline.errors import RotoscopeError
from pipeline.plan.rows import PlanRow
from pipeline.records.manifest import image_digest
from pipeline.records.run_folder import RunFolder
from pipeline.render.producer import FrameProducer, check_size
from pipeline.render.renderer import FrameHooks
from pipeline.render.strategies.base import Dispatch, RenderStrategy, UnitContext
from pipeline.render.strategies.hybrid import HybridVideo, Previous
from pipeline.render.strategies.loopback_cadence import LoopbackCadence
from pipeline.render.units import ChainUnit, FrameOrigin, WorkUnit
from pipeline.source.base import Source
from pipeline.source.open import open_source

log = logging.getLogger("rotoscope")


def camera_step(row: PlanRow) -> CameraStep:
    """The row's 2D camera move (unset values: no move)."""
    defaults = CameraStep()

    def value(given: float | None, default: float) -> float:
        return default if given is None else given

    return CameraStep(
        zoom=value(row.zoom, defaults.zoom),
        angle=value(row.angle, defaults.angle),
        translation_x=value(row.translation_x, defaults.translation_x),
        translation_y=value(row.translation_y, defaults.translation_y),
        center_x=value(row.transform_center_x, defaults.center_x),
        center_y=value(row.transform_center_y, defaults.center_y),
    )


def camera_step_3d(row: PlanRow) -> CameraStep3D:
    """The row's 3D camera move and lens (unset values: Deforum's defaults, no move)."""
    defaults = CameraStep3D()
    given = {
        "translation_x": row.translation_x, "translation_y": row.translation_y,
        "translation_z": row.translation_z, "rotation_x": row.rotation_3d_x,
        "rotation_y": row.rotation_3d_y, "rotation_z": row.rotation_3d_z, "fov": row.fov,
        "near": row.near, "far": row.far, "aspect_ratio": row.aspect_ratio,
    }  # fmt: skip
    return replace(defaults, **{name: value for name, value in given.items() if value is not None})


def input_tools(row: PlanRow) -> InputTools:
    """What the row's loopback input gets besides its camera step."""
    anti_blur = None
    if row.anti_blur_amount is not None:
        anti_blur = AntiBlur(
            row.anti_blur_amount, row.anti_blur_kernel or 1, row.anti_blur_sigma or 0.0,
            row.anti_blur_threshold or 0.0,
        )  # fmt: skip
    perlin = None
    if row.perlin_octaves is not None:
        perlin = PerlinShape(row.perlin_octaves, row.perlin_persistence or 0.0)
    flip = None
    if row.perspective_flip_fv is not None:
        flip = PerspectiveFlip(
            row.perspective_flip_theta or 0.0, row.perspective_flip_phi or 0.0,
            row.perspective_flip_gamma or 0.0, row.perspective_flip_fv,
        )  # fmt: skip
    return InputTools(
        noise=row.noise or 0.0,
        perlin=perlin,
        contrast=1.0 if row.contrast is None else row.contrast,
        anti_blur=anti_blur,
        flip=flip,
    )


class LoopbackFrame:
    """One loopback frame as the producer sees it (``ChainedInput``): its input, the
    colour match of its output where one applies, and, once produced, its key."""

    def __init__(
        self, image: np.ndarray, match: Callable[[np.ndarray], np.ndarray] | None, match_id: str
    ) -> None:
        self.image = image
        self.match = match
        self.dependencies = match_id  # the reference its output is matched to, if any
        self.key = ""

    def prepare(self) -> tuple[np.ndarray, FrameHooks | None]:
        return self.image, None

    def rendered(self, key: str, output: np.ndarray) -> np.ndarray:
        self.key = key
        return self.match(output) if self.match is not None else output

    def blank(self, key: str, output: np.ndarray) -> np.ndarray:
        """A frame made without the UNet is the frame the next one starts from, as a
        rendered one is."""
        return self.rendered(key, output)

    def reused(self, key: str, output: np.ndarray) -> None:
        self.key = key

    def committed(self) -> None:
        """Nothing waits for the manifest line."""


class DepthMaps:
    """Each output's depth: read from the run folder, or estimated (the model loads at
    the first estimate, so a job whose maps are all there never loads it)."""

    def __init__(self, cfg: RunConfig, folder: RunFolder, device: str) -> None:
        from pipeline.models.depth import depth_identity

        self.cfg = cfg
        self.device = device
        self.folder = folder
        identity = depth_identity(cfg.animation.depth, cfg.paths.models)
        self.cache = DepthCache(folder.depth_map, identity)
        self._estimate: Callable[[np.ndarray], np.ndarray] | None = None
        self.last: tuple[str, np.ndarray] | None = None  # the newest map, kept for the next frame

    def of(self, key: str, image: np.ndarray) -> np.ndarray:
        if self.last is not None and self.last[0] == key:
            return self.last[1]
        depth = self.cache.depth(key, lambda: self.estimate(image))
        self.last = (key, depth)
        return depth

    def estimate(self, image: np.ndarray) -> np.ndarray:
        if self._estimate is None:
            from pipeline.models.depth import load_depth

            self._estimate = load_depth(self.cfg.animation.depth, self.cfg.paths.models,
                                        self.device)  # fmt: skip
        return self._estimate(image)

    def summary(self) -> None:
        cache = self.cache
        if cache.estimated or cache.read:
            log.info(
                "depth: %d map(s) estimated, %d read from %s",
                cache.estimated, cache.read, self.folder.depth,
            )  # fmt: skip


class ColourReferences:
    """``color_coherence=video``: the frame of the video (or image) each frame's colours
    follow, its frame ``n * every`` for frames ``n * every`` to ``(n + 1) * every - 1``,
    the last one held once the video ends."""

    def __init__(self, frames: Iterator[np.ndarray], every: int, size: tuple[int, int]) -> None:
        self.frames = frames
        self.every = every
        self.width, self.height = size
        self.number = -1
        self.current: np.ndarray | None = None

    @classmethod
    def open(cls, cfg: RunConfig, stack: ExitStack, size: tuple[int, int]) -> ColourReferences:
        """The frames of ``animation.color_coherence_video``, at the animation's size."""
        animation = cfg.animation
        assert animation.color_coherence_video
        given = replace(
            cfg.input, path=animation.color_coherence_video, start=None, end=None, every=1,
            max_frames=None, repeat=1, width=size[0], height=size[1], scale=None,
        )  # fmt: skip
        source: Source = stack.enter_context(open_source(given))
        return cls((frame.image for frame in source), animation.color_coherence_every, size)

    def at(self, index: int) -> np.ndarray:
        wanted = index - index % self.every
        while self.number < wanted:
            image = next(self.frames, None)
            if image is None:
                break
            self.number += 1
            self.current = image
        if self.current is None:
            raise RotoscopeError("animation.color_coherence_video has no frame to match")
        if self.current.shape[:2] != (self.height, self.width):
            raise RotoscopeError(
                f"animation.color_coherence_video's frames are {self.current.shape[1]}x"
                f"{self.current.shape[0]}, the animation {self.width}x{self.height}",
                "give a video of the animation's size, or leave it unset to follow the input",
            )
        return self.current


class LoopbackStrategy(RenderStrategy):
    """Every frame from the one before (see the module notes)."""

    sequential = "loopback renders each frame from the one before"

    def __init__(self, cfg: RunConfig, folder: RunFolder) -> None:
        self.cfg = cfg
        self.folder = folder

    def feed(
        self, producer: FrameProducer, rows: list[PlanRow], source: Source, dispatch: Dispatch
    ) -> None:
        """The first source frame and every row, as one chain (with every later source
        frame where the colours follow the input's frames)."""
        frames = iter(source)
        first = next(frames, None)
        if not self.follows_input():
            source.close()  # the rest of the source is not read
        if first is None:
            raise RotoscopeError(f"input.path '{source.info.path}' has no frame to start from")
        check_size(rows[0], first.image.shape)
        chain = itertools.chain([first], frames) if self.follows_input() else [first]
        dispatch.chain(chain, [row.index for row in rows], maps_ahead=False)

    def follows_input(self) -> bool:
        """Whether colours follow the input's own frames (``color_coherence=video`` with no
        video given): then the chain carries them."""
        animation = self.cfg.animation
        return (
            animation.color_coherence is ColorCoherence.video
            and not animation.color_coherence_video
        )

    def render_unit(self, producer: FrameProducer, unit: WorkUnit, context: UnitContext) -> None:
        assert isinstance(unit, ChainUnit), "the loopback strategy makes one chain"
        from pipeline.models.devices import resolve_device

        animation = self.cfg.animation
        source_frames = iter(unit.frames)
        first = next(source_frames)
        info = context.info
        device = str(resolve_device(self.cfg.runtime.device))
        inputs = LoopbackInputs(
            LoopbackSettings(
                border=animation.border, color_coherence=animation.color_coherence,
                padding_mode=animation.padding_mode, sampling_mode=animation.sampling_mode,
                perlin_cells=(animation.perlin_cells_x, animation.perlin_cells_y),
                device=device,
            )
        )  # fmt: skip
        three_d = animation.mode.in_3d
        depth_masks = animation.hybrid.mask in (HybridMask.depth, HybridMask.video_depth)
        depth = (
            DepthMaps(self.cfg, self.folder, device)
            if three_d or animation.save_depth or depth_masks
            else None
        )
        with ExitStack() as stack:
            video = None
            size = (first.image.shape[1], first.image.shape[0])
            hybrid = (
                HybridVideo.open(self.cfg, self.folder, stack, size, depth.of if depth else None)
                if animation.hybrid.active
                else None
            )
            if self.follows_input():
                later = (frame.image for frame in source_frames)
                images = itertools.chain([first.image], later)
                video = ColourReferences(images, animation.color_coherence_every, size)
            elif animation.color_coherence is ColorCoherence.video:
                video = ColourReferences.open(self.cfg, stack, size)
            previous: tuple[np.ndarray, str] | None = None  # output and key
            cadence = self.cadence(producer, inputs, context.rows, depth)
            for index in unit.indices:
                row = context.rows[index]
                reference = video.at(index) if video is not None else None
                after = None  # the hybrid composite onto the output
                if previous is None:
                    image = first.image
                    origin = FrameOrigin(str(info.path), first.source_index, 0.0, first.name, None)
                else:
                    origin = FrameOrigin(
                        str(info.path), -1, index / info.fps if info.fps else 0.0, first.name,
                        index - 1,
                    )  # fmt: skip
                if previous is not None and cadence is not None:  # Deforum's cadence
                    produced, key = cadence.frame(
                        row, previous[0], origin, reference,
                        lambda image: self.frame(image, index, reference, inputs),  # noqa: B023
                    )  # fmt: skip
                else:
                    if previous is not None:
                        output, key = previous
                        step: CameraStep | CameraStep3D
                        step = camera_step_3d(row) if three_d else camera_step(row)
                        frame_depth = depth.of(key, output) if three_d and depth else None
                        made_from = Previous(output, key)
                        image = inputs.next_input(
                            output, step, input_tools(row), row.seed, frame_depth, reference,
                            hybrid.before_img2img(index, row, made_from) if hybrid else None,
                        )  # fmt: skip
                        after = hybrid.after_generation(index, row, made_from) if hybrid else None
                    frame = self.frame(image, index, reference, inputs, after)
                    made = producer.produce(row, image, origin, need_output=True, chained=frame)
                    assert made is not None  # asked for
                    produced, key = made, frame.key
                    if cadence is not None:
                        cadence.first(key, produced)
                inputs.output(produced)
                previous = (produced, key)
                if animation.save_depth and depth is not None:
                    depth.of(key, produced)  # every output's, for the depth video
        if depth is not None:
            depth.summary()

    def cadence(
        self,
        producer: FrameProducer,
        inputs: LoopbackInputs,
        rows: list[PlanRow],
        depth: DepthMaps | None,
    ) -> LoopbackCadence | None:
        """Deforum's cadence over the frames after frame 0 (None: every frame diffused)."""
        if self.cfg.cadence.every <= 1:
            return None
        three_d = self.cfg.animation.mode.in_3d
        moves = camera_step_3d if three_d else camera_step
        depth_of = (depth.of, depth.cache.identity) if three_d and depth is not None else None
        return LoopbackCadence(
            self.cfg, self.folder, producer, inputs, rows, moves, input_tools, depth_of
        )

    def frame(
        self,
        image: np.ndarray,
        index: int,
        reference: np.ndarray | None,
        inputs: LoopbackInputs,
        after: tuple[Callable[[np.ndarray], np.ndarray], str] | None = None,
    ) -> LoopbackFrame:
        """The frame for the producer, with what is done to its output: ``after`` (the
        hybrid composite after generation, and its key's part), then the colour match
        where one applies: frame 0 against a video's frame (always, as Deforum does),
        later frames against their reference with ``color_coherence_output``."""
        animation = self.cfg.animation
        space = COLOR_SPACES.get(animation.color_coherence)
        target = reference if reference is not None else inputs.reference
        matched = (
            space is not None
            and target is not None
            and (
                animation.color_coherence_output
                or (index == 0 and animation.color_coherence is ColorCoherence.video)
            )
        )
        steps = [after] if after is not None else []
        if matched:
            assert space is not None and target is not None
            match_id = f"colour match {space}: {image_digest(target)}"
            steps.append((lambda output: match_colors(output, target, space), match_id))
        if not steps:
            return LoopbackFrame(image, None, "")

        def finish(output: np.ndarray) -> np.ndarray:
            for apply, _ in steps:
                output = apply(output)
            return output

        return LoopbackFrame(image, finish, "; ".join(part for _, part in steps))
