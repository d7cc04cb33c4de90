"""No input: the frames of an animation made from noise (Deforum without an init image).

A loopback animation needs no input image: its first frame is a txt2img render and every
later frame grows from the one before. Its "input" is then ``input.frames`` black frames
of ``input.width`` x ``input.height`` at ``input.fps``: only the first is read (the
loopback's start, which the plan marks txt2img, so its pixels are never painted on), and
the count and rate shape the plan and the video like any input's.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import numpy as np

from pipeline.config.schema import InputConfig
from pipeline.errors import RotoscopeError
from pipeline.source.base import Frame, Selection, Source, SourceInfo, SourceKind
from pipeline.source.resize import target_size

# What source.json and the logs show as the path of no input
NO_INPUT = Path("(txt2img)")


def planned_frames(cfg: InputConfig) -> int | None:
    """How many frames an animation without an input makes: ``input.frames``, or the
    Deforum import's ``input.max_frames``."""
    return cfg.frames if cfg.frames is not None else cfg.max_frames


class BlankSource(Source):
    """``count`` black frames of the render size (see the module notes)."""

    def __init__(self, info: SourceInfo, selection: Selection, count: int) -> None:
        super().__init__(info, selection)
        self.count = count

    def _frames(self) -> Generator[Frame, None, None]:
        black = np.zeros((self.info.height, self.info.width, 3), np.uint8)
        for index in range(self.count):
            self.frames_read += 1
            yield Frame(index, index, index / self.info.fps, None, black.copy())


def open_blank(cfg: InputConfig) -> BlankSource:
    """The frames of an animation without an input; its size and count must be given."""
    missing = [key for key in ("width", "height") if getattr(cfg, key) is None]
    if missing:
        raise RotoscopeError(
            f"without input.path, input.{missing[0]} is needed: the size to make frames at",
            "set input.width and input.height (e.g. 512 and 512), or give an input.path",
        )
    count = planned_frames(cfg)
    if count is None:
        raise RotoscopeError(
            "without input.path, input.frames is needed: how many frames to make",
            "for example input.frames=48, or give an input.path",
        )
    if count < 1:
        raise RotoscopeError(f"input.frames is {count}; it must be 1 or more")
    assert cfg.width is not None and cfg.height is not None
    width, height = target_size(cfg.width, cfg.height, cfg.width, cfg.height, None)
    info = SourceInfo(
        kind=SourceKind.none, path=NO_INPUT, width=width, height=height,
        source_width=width, source_height=height, source_fps=cfg.fps, fps=cfg.fps,
        start_time=0.0, expected_frames=count, has_audio=False, rotation=0,
    )  # fmt: skip
    return BlankSource(info, Selection(0, None, 1, count), count)
