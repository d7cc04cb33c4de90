"""The Source stage on real (tiny) media made by ffmpeg: selection, rotation, VFR,
resize, alpha, broken inputs and streaming memory.

Frames carry their own number (see ``media.frame_id``), so selection and seeking are
checked for exact frame identity, not just counts.
"""

from __future__ import annotations

import logging
import os
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps
from support.media import (
    frame_id,
    frame_levels,
    half_transparent,
    identity_image,
    make_image_folder,
    make_video,
    truncate,
    vfr_times,
    write_image,
)

from pipeline.config.schema import BadFramePolicy, InputConfig, ResizeMode
from pipeline.errors import RotoscopeError
from pipeline.source.base import Source
from pipeline.source.images import load_image, natural_key
from pipeline.source.open import open_source
from pipeline.source.probe import probe_video
from pipeline.source.resize import flatten_alpha, parse_color, resize_frame, target_size
from pipeline.source.video import VideoReader, VideoSource

FPS = 12
FRAMES = 48
WHITE = (255, 255, 255)


def source(path: Path, **cfg: object) -> Source:
    return open_source(InputConfig(path=str(path), **cfg))  # type: ignore[arg-type]


def ids(src: Source) -> list[int]:
    return [frame_id(frame.image) for frame in src]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def clip(media: Path) -> Path:
    """4 s at 12 fps, 64x48, with audio, a keyframe every 5 frames, B-frames."""
    return make_video(media / "clip.mp4", frames=FRAMES, fps=FPS, audio=True)


# --- video: reading and probing --------------------------------------------------------


def test_video_info_and_every_frame(clip: Path) -> None:
    with source(clip) as src:
        info = src.info
        frames = list(src)
    assert (info.kind.value, info.path) == ("video", clip)
    assert (info.width, info.height, info.source_width, info.source_height) == (64, 48, 64, 48)
    assert (info.source_fps, info.fps, info.start_time) == (FPS, FPS, 0.0)
    assert (info.expected_frames, info.has_audio, info.rotation) == (FRAMES, True, 0)
    assert [frame_id(f.image) for f in frames] == list(range(FRAMES))
    assert [(f.index, f.source_index, f.name) for f in frames[:2]] == [(0, 0, None), (1, 1, None)]
    assert frames[30].time == pytest.approx(30 / FPS)
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert src.frames_read == FRAMES and not src.ended_early
    assert src.count_frames() == FRAMES


@pytest.mark.parametrize("name", ["clip.mkv", "clip.mov", "clip.webm", "clip.avi"])
def test_containers(media: Path, name: str) -> None:
    path = make_video(media / name, frames=12, fps=FPS)
    with source(path) as src:
        assert ids(src) == list(range(12))
        assert src.info.expected_frames == 12


def test_gif_uses_its_average_rate(media: Path) -> None:
    """GIF delays are whole centiseconds, so 12 fps comes back at about 12: all frames,
    in order, with at most one held over."""
    path = make_video(media / "clip.gif", frames=12, fps=FPS)
    with source(path) as src:
        got = ids(src)
        assert abs(len(got) - src.info.expected_frames) <= 1
    assert sorted(set(got)) == list(range(12)) and got == sorted(got)


def test_iteration_starts_over_and_close_stops_ffmpeg(clip: Path) -> None:
    with source(clip) as src:
        first = [frame_id(f.image) for f, _ in zip(src, range(3), strict=False)]
        src.close()
        assert _ffmpeg_children() == []
        again = [frame_id(f.image) for f, _ in zip(src, range(2), strict=False)]
    assert (first, again) == ([0, 1, 2], [0, 1])
    assert _ffmpeg_children() == []


def _ffmpeg_children() -> list[int]:
    """Live ffmpeg processes started by this test process (Linux /proc)."""
    if not Path("/proc").exists():
        pytest.skip("needs /proc")
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # "pid (name) state ppid ..."
            name, rest = stat.read_text().split("(", 1)[1].rsplit(")", 1)
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        state, ppid = rest.split()[:2]
        if int(ppid) == os.getpid() and "ffmpeg" in name and state != "Z":
            found.append(int(stat.parent.name))
    return found


def test_streaming_memory_does_not_grow_with_clip_length(media: Path) -> None:
    path = make_video(media / "long.mp4", frames=300, fps=30, size=(64, 64))
    clip_bytes = 300 * 64 * 64 * 3
    with source(path) as src:
        tracemalloc.start()
        try:
            count = sum(1 for _ in src)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert count == 300
    assert peak < clip_bytes / 10, f"peak {peak} bytes for a {clip_bytes}-byte clip"


# --- video: selection --------------------------------------------------------------------


def test_select_by_frame_numbers(clip: Path) -> None:
    with source(clip, start="13", end="29", every=3) as src:
        frames = list(src)
        info = src.info
    assert [frame_id(f.image) for f in frames] == [13, 16, 19, 22, 25, 28]
    assert [f.source_index for f in frames] == [13, 16, 19, 22, 25, 28]
    assert [f.index for f in frames] == list(range(6))
    assert frames[1].time == pytest.approx(16 / FPS)
    assert info.start_time == pytest.approx(13 / FPS)
    assert (info.expected_frames, info.fps) == (6, FPS / 3)


@pytest.mark.parametrize("start", [1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 23, 24, 25, 40, 46, 47])
def test_seeking_is_frame_exact(clip: Path, start: int) -> None:
    """Keyframes are every 5 frames and B-frames reorder: any start gives that frame."""
    with source(clip, start=str(start), max_frames=3) as src:
        assert ids(src) == list(range(start, min(start + 3, FRAMES)))


@pytest.mark.parametrize("name", ["seek.mkv", "seek.webm"])
def test_seeking_is_frame_exact_in_matroska(media: Path, name: str) -> None:
    """Matroska stores millisecond timestamps, which 1/12 s steps never hit exactly."""
    path = make_video(media / name, frames=FRAMES, fps=FPS)
    for start in (7, 13, 29, 41):
        with source(path, start=str(start), max_frames=2) as src:
            assert ids(src) == [start, start + 1]


def test_later_starts_seek_instead_of_decoding_from_the_start(clip: Path) -> None:
    src = source(clip, start="25", end="30", every=2)
    assert isinstance(src, VideoSource)
    command = VideoReader(src.probe, 25, 30, 2, 3).command()
    assert command[command.index("-ss") + 1] == f"{24 / FPS:.6f}"
    assert "-noaccurate_seek" in command and "-copyts" in command
    assert command.index("-ss") < command.index("-i")
    assert "-ss" not in VideoReader(src.probe, 0, None, 1, None).command()


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("1s", "0:02.5", list(range(12, 30))),
        ("00:00:01.5", None, list(range(18, FRAMES))),
        ("0.25s", "0:00:00.5", [3, 4, 5]),  # [0.25 s, 0.5 s): end is exclusive
        (None, "1s", list(range(12))),
    ],
)
def test_select_by_time(
    clip: Path, start: str | None, end: str | None, expected: list[int]
) -> None:
    with source(clip, start=start, end=end) as src:
        assert ids(src) == expected
        assert src.info.expected_frames == len(expected)


def test_every_and_max_frames(clip: Path) -> None:
    with source(clip, start="5", every=2, max_frames=4) as src:
        assert src.info.expected_frames == 4
        assert ids(src) == [5, 7, 9, 11]
    with source(clip, start="40", end="1000") as src:  # an end past the clip is fine
        assert src.info.expected_frames == 8
        assert ids(src) == list(range(40, FRAMES))


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        ({"every": 0}, "input.every"),
        ({"max_frames": 0}, "input.max_frames"),
        ({"start": "10", "end": "10"}, "input.end"),
        ({"start": "2s", "end": "1s"}, "input.end"),
        ({"start": "48"}, "input.start"),
        ({"start": "5s"}, "input.start"),
        ({"start": "abc"}, "input.start"),
        ({"end": "2.5"}, "input.end"),
        ({"start": "-3"}, "input.start"),
        ({"width": 0}, "input.width"),
        ({"height": 9000}, "input.height"),
        ({"width": -64}, "input.width"),
        ({"scale": 0.0}, "input.scale"),
        ({"scale": 0.5, "width": 32}, "input.scale"),
        ({"scale": 300.0}, "input.scale"),
        ({"background": "nope"}, "input.background"),
        ({"fps": 0.0}, "input.fps"),
    ],
)
def test_bad_values_name_the_key(clip: Path, cfg: dict[str, object], key: str) -> None:
    with pytest.raises(RotoscopeError) as err:
        source(clip, **cfg)
    assert key in str(err.value)
    assert "\n" not in str(err.value)


# --- video: rotation, VFR, resize, alpha ---------------------------------------------------


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_phone_clip_comes_out_upright(media: Path, rotation: int) -> None:
    path = make_video(media / f"rot{rotation}.mp4", frames=12, fps=FPS, rotation=rotation)
    top, bottom = frame_levels(5)  # 8 and 88: the picture's top is dark, its bottom light
    with source(path, start="5", max_frames=1) as src:
        info = src.info
        (frame,) = list(src)
    image = frame.image.astype(int)
    upright = (48, 64) if rotation in (90, 270) else (64, 48)
    assert (info.rotation, (info.source_width, info.source_height)) == (rotation, upright)
    assert (info.width, info.height) == upright
    assert image.shape == (upright[1], upright[0], 3)
    halves = {
        90: (image[:, -8:], image[:, :8]),  # clockwise: the top goes to the right
        180: (image[-8:], image[:8]),
        270: (image[:, :8], image[:, -8:]),
    }[rotation]
    assert np.abs(halves[0] - top).max() <= 3 and np.abs(halves[1] - bottom).max() <= 3


@pytest.mark.parametrize("name", ["vfr.mp4", "vfr.mkv"])
def test_variable_frame_rate_becomes_constant(media: Path, name: str) -> None:
    """Frame n is the picture shown at n / fps (nearest), at the probed average rate."""
    frames = 24
    path = make_video(media / name, frames=frames, fps=FPS, vfr=True)
    duration = probe_video(path).duration
    assert duration is not None
    times = vfr_times(frames, FPS)
    with source(path) as src:
        rate = src.info.source_fps
        got = ids(src)
    assert abs(len(got) - round(duration * rate)) <= 1
    for n, k in enumerate(got):
        shown_until = (n + 0.5) / rate
        assert times[k] <= shown_until + 0.002, (n, k)
        assert k + 1 == frames or times[k + 1] >= shown_until - 0.002, (n, k)


def test_anamorphic_pixels_are_made_square(media: Path) -> None:
    path = make_video(media / "sar.mp4", frames=6, fps=FPS, sar="2/1")
    with source(path) as src:
        assert (src.info.source_width, src.info.source_height) == (128, 48)
        assert ids(src) == list(range(6))


@pytest.mark.parametrize(
    ("cfg", "size"),
    [
        ({"width": 32}, (32, 24)),
        ({"height": 96}, (128, 96)),
        ({"scale": 0.5}, (32, 24)),
        ({"width": 40, "height": 40, "resize_mode": ResizeMode.crop}, (40, 40)),
        ({"width": 100, "height": 30, "resize_mode": ResizeMode.stretch}, (104, 32)),
    ],
)
def test_video_resize(clip: Path, cfg: dict[str, object], size: tuple[int, int]) -> None:
    with source(clip, max_frames=20, **cfg) as src:
        frames = list(src)
        assert (src.info.width, src.info.height) == size
    assert all(f.image.shape == (size[1], size[0], 3) for f in frames)
    assert [frame_id(f.image) for f in frames] == list(range(20))


def test_video_fit_pads_with_background(clip: Path) -> None:
    with source(clip, width=64, height=64, resize_mode=ResizeMode.fit, background="#00ff00") as src:
        frame = next(iter(src))
    assert frame.image.shape == (64, 64, 3)
    assert (frame.image[:8] == (0, 255, 0)).all() and (frame.image[-8:] == (0, 255, 0)).all()
    assert frame_id(frame.image[8:-8]) == 0


@pytest.mark.parametrize("name", ["alpha.mov", "alpha.webm"])
def test_video_alpha_is_flattened(media: Path, name: str) -> None:
    path = make_video(media / name, frames=6, fps=FPS, alpha=True)
    with source(path, background="#ff0000", start="3") as src:
        frames = list(src)
    assert len(frames) == 3
    for k, frame in enumerate(frames, start=3):
        left, right = frame.image[:, :28].astype(int), frame.image[:, 36:].astype(int)
        assert np.abs(left - (255, 0, 0)).max() <= 3
        top, bottom = frame_levels(k)
        assert np.abs(right[:20] - top).max() <= 3 and np.abs(right[-20:] - bottom).max() <= 3


# --- video: broken files ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cut.mkv", "cut.mp4"])
def test_truncated_video_renders_what_it_has(
    media: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = truncate(make_video(media / name, frames=FRAMES, fps=FPS), 0.75)
    with caplog.at_level(logging.WARNING), source(path) as src:
        assert src.info.expected_frames == FRAMES
        got = ids(src)
        assert src.ended_early and src.frames_read == len(got)
    assert 0 < len(got) < FRAMES - 1
    assert got == list(range(len(got)))
    message = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert name in message and f"{len(got)} of {FRAMES}" in message


def test_truncated_header_is_an_error(media: Path) -> None:
    path = make_video(media / "moov_at_end.mp4", frames=FRAMES, faststart=False)
    truncate(path, 0.5)
    with pytest.raises(RotoscopeError, match=r"moov_at_end\.mp4"):
        source(path)


def test_unreadable_and_empty_videos(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(RotoscopeError, match=r"cannot read video '.*notes\.mp4'"):
        source(text)
    empty = tmp_path / "empty.mov"
    empty.touch()
    with pytest.raises(RotoscopeError, match=r"empty\.mov.*0 bytes"):
        source(empty)


def test_missing_path_and_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(
        RotoscopeError, match=r"input.path 'nowhere/clip.mp4' does not exist"
    ) as err:
        source(Path("nowhere/clip.mp4"))
    assert err.value.hint and "folder of images" in err.value.hint
    odd = tmp_path / "clip.xyz"
    odd.write_text("x")
    with pytest.raises(RotoscopeError, match=r"\.xyz") as err:
        source(odd)
    assert ".mp4" in str(err.value) and ".png" in str(err.value)


# --- images ------------------------------------------------------------------------------


def test_natural_key() -> None:
    names = ["frame_10.png", "10.png", "frame_2.png", "2.png", "Frame_3.PNG", "1.png", "a.png"]
    assert sorted(names, key=natural_key) == [
        "1.png", "2.png", "10.png", "a.png", "frame_2.png", "Frame_3.PNG", "frame_10.png",
    ]  # fmt: skip


def test_folder_natural_order_and_skipped_files(tmp_path: Path) -> None:
    names = ["frame_10.png", "frame_2.JPG", "frame_1.webp", "frame_3.bmp", "frame_11.tiff"]
    make_image_folder(tmp_path, names)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "data.json").write_text("{}")
    (tmp_path / ".DS_Store").write_text("x")
    (tmp_path / "sub").mkdir()
    with source(tmp_path, fps=10.0) as src:
        frames = list(src)
        assert (src.info.kind.value, src.info.expected_frames, src.info.source_fps) == (
            "folder",
            5,
            10,
        )
        notes = " ".join(src.notes)  # the plan stage logs them, once
    assert [f.name for f in frames] == [
        "frame_1.webp", "frame_2.JPG", "frame_3.bmp", "frame_10.png", "frame_11.tiff",
    ]  # fmt: skip
    assert [frame_id(f.image) for f in frames] == [2, 1, 3, 0, 4]  # i-th written carries i
    assert [f.time for f in frames] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    assert "notes.txt" in notes and "data.json" in notes and ".DS_Store" not in notes


def test_folder_selection(tmp_path: Path) -> None:
    make_image_folder(tmp_path, [f"{i}.png" for i in range(10)])
    with source(tmp_path, start="2", every=3) as src:
        assert [f.name for f in src] == ["2.png", "5.png", "8.png"]
        assert src.info.fps == pytest.approx(8.0)
    with source(tmp_path, start="0.5s", end="7", max_frames=10, fps=10.0) as src:
        frames = list(src)
        assert src.info.start_time == pytest.approx(0.5)
    assert [(f.index, f.source_index) for f in frames] == [(0, 5), (1, 6)]


def test_folder_size_comes_from_the_first_image(tmp_path: Path) -> None:
    write_image(tmp_path / "1.png", identity_image(1, (64, 48)))
    write_image(tmp_path / "2.png", identity_image(2, (128, 128)))
    write_image(tmp_path / "3.png", identity_image(3, (30, 20)))
    with source(tmp_path) as src:
        frames = list(src)
        assert (src.info.width, src.info.height) == (64, 48)
    assert all(f.image.shape == (48, 64, 3) for f in frames)
    assert [frame_id(f.image) for f in frames] == [1, 2, 3]


def test_single_image_repeats(tmp_path: Path) -> None:
    path = write_image(tmp_path / "still.png", identity_image(7))
    with source(path, repeat=5) as src:
        frames = list(src)
        assert (src.info.kind.value, src.info.expected_frames) == ("image", 5)
    assert [(f.index, f.source_index, f.name) for f in frames][-1] == (4, 4, "still.png")
    assert all(np.array_equal(f.image, frames[0].image) for f in frames)
    assert frame_id(frames[0].image) == 7
    frames[0].image[:] = 0  # frames do not share pixels
    assert frame_id(frames[1].image) == 7
    with source(path, repeat=5, start="1", end="3") as src:
        assert [f.source_index for f in src] == [1, 2]


@pytest.mark.parametrize(
    ("background", "rgb"), [(None, WHITE), ("black", (0, 0, 0)), ("10,20,30", (10, 20, 30))]
)
@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_image_alpha_is_flattened(
    tmp_path: Path, suffix: str, background: str | None, rgb: tuple[int, int, int]
) -> None:
    path = tmp_path / f"logo{suffix}"
    Image.fromarray(half_transparent((64, 48), (200, 40, 90))).save(path, lossless=True)
    cfg = {} if background is None else {"background": background}
    with source(path, **cfg) as src:
        image = next(iter(src)).image
    assert (image[:, :32] == rgb).all()
    assert (image[:, 32:] == (200, 40, 90)).all()


def test_half_transparent_pixels_blend() -> None:
    rgba = np.array([[[255, 0, 0, 128]]], np.uint8)
    assert tuple(flatten_alpha(rgba, (0, 0, 255))[0, 0]) == (128, 0, 127)


def test_gray_and_16_bit_images(tmp_path: Path) -> None:
    gray = np.full((48, 64), 100, np.uint8)
    deep = np.full((48, 64, 3), 0, np.uint16)
    deep[..., 0] = 65535  # OpenCV order: blue
    deep[..., 2] = 257 * 40
    write_image(tmp_path / "gray.png", gray)
    Image.fromarray(np.full((48, 64), 257 * 77, np.uint16)).save(tmp_path / "gray16.png")
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    assert (load_image(tmp_path / "gray.png", WHITE) == 100).all()
    assert (load_image(tmp_path / "gray16.png", WHITE) == 77).all()
    assert (load_image(tmp_path / "deep.png", WHITE) == (40, 0, 255)).all()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:10, :20] = (255, 0, 0)
    pixels[15:, 30:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path, exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert np.array_equal(load_image(path, WHITE), expected)


def test_image_errors(tmp_path: Path) -> None:
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(RotoscopeError, match="contains no images"):
        source(empty_dir)
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("x")
    with pytest.raises(RotoscopeError, match=r"texts' contains no images"):
        source(texts)
    zero = tmp_path / "zero"
    make_image_folder(zero, ["1.png", "2.png"])
    (zero / "3.png").touch()
    with pytest.raises(RotoscopeError, match=r"3\.png' is empty"):
        source(zero)
    with pytest.raises(RotoscopeError, match=r"3\.png' is empty"):
        source(zero / "3.png")
    bad = tmp_path / "bad"
    make_image_folder(bad, ["1.png"])
    (bad / "2.png").write_bytes(b"not a png at all")
    with (
        source(bad, on_bad_frame=BadFramePolicy.stop) as src,
        pytest.raises(RotoscopeError, match=r"frame 1: cannot decode image '.*2\.png'"),
    ):
        list(src)
    with pytest.raises(RotoscopeError, match=r"cannot decode image '.*2\.png'"):
        source(bad / "2.png")


def test_bad_frame_policies_skip_or_repeat_and_report(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    make_image_folder(folder, ["1.png", "3.png"])
    (folder / "2.png").write_bytes(b"not a png at all")
    with source(folder) as src:  # default: skip
        frames = list(src)
        assert [f.index for f in frames] == [0, 2]
        assert src.failures == [(1, "2.png: cannot decode image '" + str(folder / "2.png") + "'")]
    with source(folder, on_bad_frame=BadFramePolicy.repeat) as src:
        frames = list(src)
        assert [f.index for f in frames] == [0, 1, 2]
        assert np.array_equal(frames[1].image, frames[0].image)
        assert [index for index, _ in src.repeats] == [1] and src.failures == []


# --- resize and colours -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "requested", "size"),
    [
        ((64, 48), (None, None, None), (64, 48)),
        ((100, 75), (None, None, None), (104, 72)),  # nearest multiple of 8
        ((1920, 1080), (512, None, None), (512, 288)),
        ((1080, 1920), (None, 768, None), (432, 768)),
        ((1920, 1080), (None, None, 0.25), (480, 272)),
        ((3, 2), (None, None, None), (8, 8)),  # never below 8
        ((640, 480), (500, 300, None), (504, 304)),
    ],
)
def test_target_size(
    src: tuple[int, int], requested: tuple[int | None, int | None, float | None], size: tuple
) -> None:
    assert target_size(*src, *requested) == size


def test_target_size_limit() -> None:
    assert target_size(64, 48, 8192, None, None) == (8192, 6144)
    with pytest.raises(RotoscopeError, match="larger than 8192"):
        target_size(4000, 3000, None, None, 3.0)


def _stripes() -> np.ndarray:
    """80x40: red | green | blue columns (20, 40, 20 wide)."""
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, :20] = (255, 0, 0)
    image[:, 20:60] = (0, 255, 0)
    image[:, 60:] = (0, 0, 255)
    return image


def test_crop_cuts_evenly_from_both_sides() -> None:
    out = resize_frame(_stripes(), 40, 40, ResizeMode.crop, WHITE)
    assert out.shape == (40, 40, 3) and (out == (0, 255, 0)).all()
    assert out.flags.c_contiguous


def test_fit_pads_with_background() -> None:
    out = resize_frame(_stripes(), 80, 80, ResizeMode.fit, (1, 2, 3))
    assert out.shape == (80, 80, 3)
    assert (out[:20] == (1, 2, 3)).all() and (out[60:] == (1, 2, 3)).all()
    assert (out[20:60, 30:50] == (0, 255, 0)).all()


def test_stretch_and_upscale() -> None:
    out = resize_frame(_stripes(), 40, 80, ResizeMode.stretch, WHITE)
    assert out.shape == (80, 40, 3)
    assert (out[:, 12:28] == (0, 255, 0)).all()
    big = resize_frame(_stripes(), 160, 80, ResizeMode.crop, WHITE)
    assert big.shape == (80, 160, 3) and (big[:, 50:110] == (0, 255, 0)).all()


@pytest.mark.parametrize(
    ("text", "rgb"),
    [
        ("#ffffff", WHITE),
        ("#FF8000", (255, 128, 0)),
        ("#fff", WHITE),
        ("white", WHITE),
        ("black", (0, 0, 0)),
        ("128,128,128", (128, 128, 128)),
        (" 1, 2 ,3 ", (1, 2, 3)),
    ],
)
def test_parse_color(text: str, rgb: tuple[int, int, int]) -> None:
    assert parse_color(text) == rgb


@pytest.mark.parametrize("text", ["", "nope", "#12", "1,2", "1,2,300", "#gggggg"])
def test_parse_color_errors(text: str) -> None:
    with pytest.raises(RotoscopeError, match=r"input\.background"):
        parse_color(text)


def test_a_photo_folder_keeps_each_images_own_size_when_asked(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png", np.full((48, 64, 3), 90, np.uint8))  # landscape
    write_image(folder / "b.png", np.full((64, 40, 3), 160, np.uint8))  # portrait
    Image.fromarray(np.full((40, 64, 3), 30, np.uint8)).save(  # landscape pixels, EXIF: turn
        folder / "c.jpg", exif=_exif_orientation(6)
    )
    own = open_source(InputConfig(path=str(folder), width=32), own_sizes=True)
    assert own.info.frame_sizes == [(32, 24), (32, 48), (32, 48)]
    assert [frame.image.shape[:2] for frame in own] == [(24, 32), (48, 32), (48, 32)]
    one = open_source(InputConfig(path=str(folder), width=32))
    assert one.info.frame_sizes is None
    assert {frame.image.shape[:2] for frame in one} == {(24, 32)}
    assert "2 of 3 images (b.png, c.jpg) differ in size or orientation" in " ".join(one.notes)


def _exif_orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


def test_sizes_below_8_are_refused_and_a_changed_aspect_is_noted(clip: Path) -> None:
    with pytest.raises(RotoscopeError, match=r"input\.width is 7; it must be between 8"):
        target_size(64, 48, 7, None, None)
    with source(clip, width=8) as src:
        assert (src.info.width, src.info.height) == (8, 8)
        assert "changes the aspect ratio of 64x48 by 25%" in " ".join(src.notes)
    with source(clip, width=32) as src:
        assert src.notes == []
