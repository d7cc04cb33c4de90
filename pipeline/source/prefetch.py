"""Decoding ahead of the renderer: a source whose frames are read by a background thread.

Decoding a frame (ffmpeg's pipe, or an image file and its resize) takes a few
milliseconds of CPU that the render loop would otherwise spend with the GPU idle. A
:class:`Prefetch` wraps any :class:`Source` and reads up to ``depth`` frames ahead in a
thread; the loop takes them in order, exactly as the wrapped source yields them (same
frames, same failures and repeats, which are the wrapped source's own lists). The
queue is bounded, so memory stays flat however long the clip. An error while decoding
(an unreadable frame with ``on_bad_frame=stop``) is raised in the loop, at the frame
where it happened. Every millisecond the render loop spends between two pipeline calls
is a millisecond the GPU waits, which is why the frame's hash is computed here too.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator
from dataclasses import replace

import numpy as np

from pipeline.source.base import Frame, Source

# Frames decoded ahead by default: a few frames cover the jitter of decoding (a
# keyframe in the video, a large photo) without holding much memory.
PREFETCH_FRAMES = 4
_END = object()


class Prefetch(Source):
    """``source``'s frames, decoded up to ``depth`` frames ahead in a background thread.

    With ``digest`` (a function of the pixels), each frame's ``digest`` is computed in
    that thread too: hashing a frame for its key is then off the render loop as well.
    """

    def __init__(
        self,
        source: Source,
        depth: int = PREFETCH_FRAMES,
        digest: Callable[[np.ndarray], str] | None = None,
    ) -> None:
        super().__init__(source.info, source.selection)
        self.source = source
        self.depth = max(1, depth)
        self.digest = digest
        self.notes = source.notes

    def _frames(self) -> Generator[Frame, None, None]:
        frames: queue.Queue[object] = queue.Queue(self.depth)
        stop = threading.Event()
        started = threading.Event()

        def decode() -> None:
            try:
                passing = iter(self.source)  # a new pass: the source's lists start over
                started.set()
                for frame in passing:
                    if self.digest is not None:
                        frame = replace(frame, digest=self.digest(frame.image))
                    if not _offer(frames, frame, stop):
                        return
                _offer(frames, _END, stop)
            except BaseException as exc:  # raised in the render loop instead
                started.set()
                _offer(frames, exc, stop)
            finally:
                self.source.close()

        thread = threading.Thread(target=decode, name="prefetch", daemon=True)
        thread.start()
        started.wait()
        self.failures, self.repeats = self.source.failures, self.source.repeats
        try:
            while True:
                item = frames.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, Frame)
                self.frames_read += 1
                yield item
        finally:
            stop.set()
            _drain(frames)
            thread.join()
            self.ended_early = self.source.ended_early

    def close(self) -> None:
        super().close()
        self.source.close()


def _offer(frames: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """Put ``item`` once there is room; False if the reader stopped first."""
    while not stop.is_set():
        try:
            frames.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _drain(frames: queue.Queue[object]) -> None:
    while True:
        try:
            frames.get_nowait()
        except queue.Empty:
            return
