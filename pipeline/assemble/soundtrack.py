"""Which audio goes on the output video: the input video's own, or a soundtrack file.

``output.audio`` is true (the input's audio, cut to the selected range: the default),
false (none), or the path of an audio file (or a video with audio) that plays from its
start, as Deforum's ``add_soundtrack`` adds one; it is cut to the video's length, never
the other way round (see :func:`pipeline.assemble.encode.ffmpeg_command`).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.assemble.encode import AudioSpec
from pipeline.config.schema import OutputConfig
from pipeline.errors import RotoscopeError
from pipeline.source.base import SourceInfo


def soundtrack_file(output: OutputConfig) -> Path | None:
    """The soundtrack file ``output.audio`` names, or None for true/false."""
    if isinstance(output.audio, bool) or output.audio.lower() in ("true", "false"):
        return None
    return Path(output.audio).expanduser()


def soundtrack(output: OutputConfig, info: SourceInfo, frame_count: int) -> AudioSpec | None:
    """The audio of a video of ``frame_count`` rendered frames (None: silent); a retimed
    output keeps their duration (:mod:`pipeline.assemble.timeline`)."""
    path = soundtrack_file(output)
    if path is not None:
        # the clip lasts its rendered frames at the render's rate, whatever output.fps
        return AudioSpec(path=path, start=0.0, duration=frame_count / info.fps)
    wanted = output.audio if isinstance(output.audio, bool) else output.audio.lower() == "true"
    if wanted and info.has_audio:
        return AudioSpec(path=info.path, start=info.start_time, duration=frame_count / info.fps)
    return None


def check_soundtrack(output: OutputConfig) -> None:
    """A soundtrack file must be there before anything renders; nothing is downloaded."""
    path = soundtrack_file(output)
    if path is None:
        return
    if "://" in str(output.audio):
        raise RotoscopeError(
            f"output.audio='{output.audio}' is a URL, and rotoscope downloads nothing",
            "download the file and give its path",
        )
    if not path.is_file():
        raise RotoscopeError(
            f"output.audio='{output.audio}' is not a file",
            "give an audio file (or a video with audio), true for the input's audio, or false",
        )
