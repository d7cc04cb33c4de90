"""Make a short sample clip with sound, offline: a camera panning over a textured picture.

Used by the demo (``--still`` also writes its first frame, the 3D fly-through's start);
also handy for trying options without a clip of your own. The picture
is procedural (``pipeline.testing.synthetic``: gradients, blobs, shapes and lines) and
the motion is a steady pan, so temporal coherence has real motion to follow and the
flicker metric a clean reference; the sound is a 440 Hz tone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ffmpeg
from PIL import Image

from pipeline.ffmpeg_exe import ffmpeg_exe
from pipeline.testing.synthetic import pan_clip


def make_sample_clip(path: Path, seconds: float, fps: int, width: int, height: int) -> Path:
    """A panning picture with a 440 Hz tone, H.264 (near-lossless) + AAC in mp4."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = pan_clip(frames=round(seconds * fps), width=width, height=height).frames
    video = ffmpeg.input(
        "pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=fps
    )
    audio = ffmpeg.input("sine=frequency=440:sample_rate=44100", f="lavfi", t=seconds)
    process = (
        ffmpeg.output(
            video, audio, str(path), vcodec="libx264", crf=12, pix_fmt="yuv420p", acodec="aac"
        )
        .overwrite_output()
        .run_async(cmd=ffmpeg_exe(), pipe_stdin=True, quiet=True)
    )
    process.communicate(input=b"".join(frame.tobytes() for frame in frames))
    if process.returncode != 0:
        raise SystemExit(f"ffmpeg failed writing {path}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("samples/clip.mp4"))
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--fps", type=int, default=12)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument(
        "--still", type=Path, default=None,
        help="also write the clip's first frame as a PNG (a start picture for loopback and 3D)",
    )  # fmt: skip
    args = parser.parse_args()
    print(make_sample_clip(args.out, args.seconds, args.fps, args.width, args.height))
    if args.still is not None:
        first = pan_clip(frames=1, width=args.width, height=args.height).frames[0]
        args.still.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(first).save(args.still)
        print(args.still)


if __name__ == "__main__":
    main()
