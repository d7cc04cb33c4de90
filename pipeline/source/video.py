"""Stream the selected frames of a video through one ffmpeg process.

Frame numbers refer to the constant-rate stream at the video's average frame rate,
so a variable-frame-rate phone clip and a constant-rate export of it number their
frames alike. ffmpeg builds that stream and does the selection too:

    fps=R:start_time=0   resample to constant rate R; output frame n is at n/R, and
                         a stream that starts late is padded from 0, so n is the
                         frame number on the whole clip's grid
    trim=start_frame:end_frame   keep frames [start, stop)
    framestep=every      keep every n-th of those

Seeking is exact because timestamps are never rebased: ``-copyts -start_at_zero``
keeps the clip's own timeline, ``-noaccurate_seek`` makes the demuxer land on a
keyframe at or before one frame ahead of ``start``, and every frame from that
keyframe on goes through the fps filter, which places frames by their own timestamps.
So the frames after a seek are the same frames a decode from the beginning gives.

Frames are decoded at the displayed source size (autorotated by ffmpeg, non-square
pixels scaled to square) and resized in Python afterwards, so videos and images
share one resize path. RGBA is requested only when the stream has alpha.
"""

from __future__ import annotations

import io
import logging
import subprocess
import threading
from collections.abc import Generator, Iterator
from typing import IO, cast

import ffmpeg
import numpy as np

from pipeline.config.schema import InputConfig
from pipeline.errors import RotoscopeError
from pipeline.ffmpeg_exe import ffmpeg_exe
from pipeline.source.base import Frame, Selection, Source, SourceInfo
from pipeline.source.probe import VideoProbe
from pipeline.source.resize import flatten_alpha, parse_color, resize_frame

logger = logging.getLogger(__name__)

# ffmpeg's first error lines (they name the cause) are kept; later ones are read and dropped.
_STDERR_LINES = 3
# A clip one frame shorter than its container duration promises is normal (rounding,
# audio that outlasts the video by a few milliseconds); more than that is not.
_SHORTFALL_SLACK = 1


class VideoReader:
    """One pass over a video: an ffmpeg process whose stdout carries raw frames.

    Iterating yields (H, W, 3) RGB or (H, W, 4) RGBA uint8 arrays, one at a time,
    so memory does not depend on the clip's length. ``close`` kills ffmpeg when the
    consumer stops early.
    """

    def __init__(
        self, probe: VideoProbe, start: int, stop: int | None, every: int, count: int | None
    ) -> None:
        self.probe = probe
        self.start, self.stop, self.every, self.count = start, stop, every, count
        self.channels = 4 if probe.has_alpha else 3
        self.returncode: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr_head: list[str] = []
        self._stderr_thread: threading.Thread | None = None

    @property
    def stderr_head(self) -> str:
        """ffmpeg's first error lines, joined into one line for messages."""
        return " | ".join(self._stderr_head)

    def command(self) -> list[str]:
        """The full ffmpeg command line (for logs and tests)."""
        return self._spec().compile(cmd=ffmpeg_exe())

    def __iter__(self) -> Iterator[np.ndarray]:
        width, height = self.probe.display_size
        frame_bytes = width * height * self.channels
        process = ffmpeg.run_async(
            self._spec(), cmd=ffmpeg_exe(), pipe_stdout=True, pipe_stderr=True
        )
        self._process = process
        self._stderr_thread = threading.Thread(
            target=_drain, args=(process.stderr, self._stderr_head), daemon=True
        )
        self._stderr_thread.start()
        # an unbuffered-size pipe from Popen is a BufferedReader, which reads into a buffer
        stdout = cast(io.BufferedReader | None, process.stdout)
        while (data := _read_exact(stdout, frame_bytes)) is not None:
            yield np.frombuffer(data, np.uint8).reshape(height, width, self.channels)
        self.returncode = process.wait()
        self._stderr_thread.join()

    def close(self) -> None:
        """Stop ffmpeg if it is still running and release its pipes."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        self.returncode = process.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        self._process = None

    def _spec(self) -> ffmpeg.nodes.OutputStream:
        """The ffmpeg-python graph: input seek, fps/trim/framestep, raw output."""
        probe = self.probe
        fps = probe.fps
        input_args: dict[str, object] = {}
        if probe.decoder:
            input_args["c:v"] = probe.decoder
        if self.start > 1:  # keyframe at or before frame start-1: all of frame start's inputs
            input_args.update(noaccurate_seek=None, ss=f"{float((self.start - 1) / fps):.6f}")
        stream = ffmpeg.input(str(probe.path.resolve()), **input_args)[str(probe.stream_index)]
        width, height = probe.display_size
        if probe.sar != 1:
            stream = stream.filter("scale", width, height)
        stream = stream.filter("fps", fps=f"{fps.numerator}/{fps.denominator}", start_time=0)
        trim_args = {"start_frame": self.start}
        if self.stop is not None:
            trim_args["end_frame"] = self.stop
        stream = stream.filter("trim", **trim_args)
        if self.every > 1:
            stream = stream.filter("framestep", step=self.every)
        output_args: dict[str, object] = {
            "format": "rawvideo",
            "pix_fmt": "rgba" if self.channels == 4 else "rgb24",
            "fps_mode": "passthrough",  # no dup/drop after selection: one frame per pick
        }
        if self.count is not None:
            output_args["frames:v"] = self.count
        return stream.output("pipe:", **output_args).global_args(
            "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error",
            "-copyts", "-start_at_zero",
        )  # fmt: skip


def _read_exact(stream: io.BufferedReader | None, size: int) -> bytearray | None:
    """Read one whole frame; None at end of stream (a partial last frame is dropped).

    A fresh writable buffer per frame lets the yielded array be used and modified
    without a copy, and dropped by the consumer without holding the next one.
    """
    assert stream is not None
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    while filled < size:
        got = stream.readinto(view[filled:])
        if not got:
            return None
        filled += got
    return buffer


def _drain(stream: IO[bytes] | None, head: list[str]) -> None:
    """Read ffmpeg's stderr to the end so the pipe never fills and blocks ffmpeg."""
    assert stream is not None
    for line in iter(stream.readline, b""):
        text = line.decode(errors="replace").strip()
        if text and len(head) < _STDERR_LINES:
            head.append(text)


class VideoSource(Source):
    """Frames of a video file, decoded by one ffmpeg process per pass."""

    def __init__(
        self, info: SourceInfo, selection: Selection, probe: VideoProbe, cfg: InputConfig
    ) -> None:
        super().__init__(info, selection)
        self.probe = probe
        self._cfg = cfg
        self._background = parse_color(cfg.background)

    def _frames(self) -> Generator[Frame, None, None]:
        sel = self.selection
        reader = VideoReader(self.probe, sel.start, sel.stop, sel.every, sel.count(None))
        try:
            for raw in reader:
                source_index = sel.start + self.frames_read * sel.every
                frame = Frame(
                    index=self.frames_read,
                    source_index=source_index,
                    time=float(source_index / self.probe.fps),
                    name=None,
                    image=self._to_render(raw),
                )
                self.frames_read += 1
                yield frame
            self._check_end(reader)
        finally:
            reader.close()

    def _to_render(self, raw: np.ndarray) -> np.ndarray:
        """Decoded pixels (RGB or RGBA at display size) to the render frame."""
        rgb = flatten_alpha(raw, self._background) if raw.shape[2] == 4 else raw
        info = self.info
        return resize_frame(rgb, info.width, info.height, self._cfg.resize_mode, self._background)

    def _check_end(self, reader: VideoReader) -> None:
        """After ffmpeg's last frame: fail if it decoded nothing, warn if it stopped short."""
        path = self.info.path
        if self.frames_read == 0 and reader.returncode != 0:
            raise RotoscopeError(
                f"ffmpeg could not decode video '{path}': {reader.stderr_head or 'no output'}",
                "check that the file plays in a video player; re-export or remux it",
            )
        expected = self.info.expected_frames
        if expected is not None and self.frames_read < expected - _SHORTFALL_SLACK:
            self.ended_early = True
            logger.warning(
                "video '%s' ended early: got %d of %d expected frames "
                "(the file may be truncated); rendering the frames it has%s",
                path, self.frames_read, expected,
                f" [ffmpeg: {reader.stderr_head}]" if reader.stderr_head else "",
            )  # fmt: skip
