"""Make a short sample clip with sound from ffmpeg's built-in test sources (offline).

Used by the demo; also handy for trying options without a clip of your own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ffmpeg

from pipeline.ffmpeg_exe import ffmpeg_exe


def make_sample_clip(path: Path, seconds: float, fps: int, width: int, height: int) -> Path:
    """A moving test pattern with a 440 Hz tone, H.264 + AAC in mp4."""
    path.parent.mkdir(parents=True, exist_ok=True)
    video = ffmpeg.input(f"testsrc2=size={width}x{height}:rate={fps}", f="lavfi", t=seconds)
    audio = ffmpeg.input("sine=frequency=440:sample_rate=44100", f="lavfi", t=seconds)
    (
        ffmpeg.output(video, audio, str(path), vcodec="libx264", pix_fmt="yuv420p", acodec="aac")
        .overwrite_output()
        .run(cmd=ffmpeg_exe(), quiet=True)
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, nargs="?", default=Path("samples/clip.mp4"))
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--fps", type=int, default=12)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=96)
    args = parser.parse_args()
    print(make_sample_clip(args.out, args.seconds, args.fps, args.width, args.height))


if __name__ == "__main__":
    main()
