"""Assemble stage: every output is decoded again and checked, offline, on tiny frames.

Frame timing is read exactly from packet timestamps (``-f framecrc``), audio length
from decoded PCM, colours from decoded RGB, tags from ``ffmpeg -i``; the bundled ffmpeg
has no ffprobe.
"""

from __future__ import annotations

import itertools
import stat
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from pipeline.assemble import encode
from pipeline.assemble.encode import (
    AudioSpec,
    check_output_options,
    encode_video,
    exact_rate,
    ffmpeg_command,
    last_error_line,
    video_extension,
    webm_audio_encoder,
)
from pipeline.assemble.images import png_names, write_image_folder
from pipeline.config.schema import OutputConfig, OutputFormat
from pipeline.errors import RotoscopeError
from pipeline.ffmpeg_exe import ffmpeg_exe

W, H = 64, 48
SOURCE_SECONDS = 3
AUDIO_RATE = 48000
mp4, webm, gif = OutputFormat.mp4, OutputFormat.webm, OutputFormat.gif


# --- helpers -------------------------------------------------------------------------


def run_ffmpeg(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([ffmpeg_exe(), "-hide_banner", *args], capture_output=True)


def make_frames(folder: Path, colours: list[tuple[int, int, int]], start: int = 0) -> list[Path]:
    """Flat-colour 64x48 PNGs named like the render stage names them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for offset, colour in enumerate(colours):
        path = folder / f"{start + offset:06d}.png"
        Image.fromarray(np.full((H, W, 3), colour, np.uint8)).save(path)
        paths.append(path)
    return paths


def grays(count: int) -> list[tuple[int, int, int]]:
    return [(v, v, v) for v in np.linspace(30, 220, count).astype(int).tolist()]


def info(path: Path) -> str:
    """What ``ffmpeg -i`` prints about a file (it exits non-zero: no output given)."""
    return run_ffmpeg("-i", str(path)).stderr.decode()


def video_timing(path: Path) -> tuple[int, set[Fraction]]:
    """Number of video packets and the set of exact frame steps in seconds."""
    out = run_ffmpeg("-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-")
    lines = out.stdout.decode().splitlines()
    tb = Fraction(next(line for line in lines if line.startswith("#tb 0:")).split(":")[1].strip())
    pts = sorted(int(line.split(",")[2]) for line in lines if line.startswith("0,"))
    return len(pts), {tb * (b - a) for a, b in itertools.pairwise(pts)}


def decode_rgb(path: Path, vf: str = "null") -> np.ndarray:
    """All frames as RGB; ffmpeg's default decode honours the file's colour tags."""
    raw = run_ffmpeg("-i", str(path), "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-")
    return np.frombuffer(raw.stdout, np.uint8).reshape(-1, H, W, 3).astype(float)


def decode_audio(path: Path) -> np.ndarray:
    """The first audio stream as mono float samples at 48 kHz."""
    out = run_ffmpeg(
        "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(AUDIO_RATE), "-f", "s16le", "-"
    )
    assert out.returncode == 0, out.stderr.decode()
    return np.frombuffer(out.stdout, np.int16) / 32768.0


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples**2)))


def folder_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s clip whose audio is silent for the first second, then a 440 Hz tone, so a
    cut that starts at 1 s is loud from its first sample and one at 0 s is not."""
    path = tmp_path_factory.mktemp("src") / "source.mp4"
    tone = "aevalsrc=if(lt(t\\,1)\\,0\\,0.5*sin(2*PI*440*t)):s=48000:d=3"
    out = run_ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=12:duration={SOURCE_SECONDS}",
        "-f", "lavfi", "-i", tone, "-c:v", "libx264", "-c:a", "aac", str(path),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr.decode()
    return path


@pytest.fixture(scope="module")
def silent_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clip with no audio stream at all."""
    path = tmp_path_factory.mktemp("src") / "silent.mp4"
    out = run_ffmpeg("-f", "lavfi", "-i", f"color=c=gray:size={W}x{H}:rate=12:d=1", str(path))
    assert out.returncode == 0, out.stderr.decode()
    return path


# --- small pure pieces -----------------------------------------------------------------


def test_video_extension_names_the_container() -> None:
    assert [video_extension(fmt) for fmt in (mp4, webm, gif)] == ["mp4", "webm", "gif"]
    with pytest.raises(ValueError, match="not a video format"):
        video_extension(OutputFormat.images)


def test_exact_rate_recovers_rational_frame_rates() -> None:
    assert exact_rate(30000 / 1001) == Fraction(30000, 1001)
    assert exact_rate(30000 / 1001 / 7) == Fraction(30000, 7007)  # input.every=7
    assert exact_rate(24) == 24
    assert exact_rate(12.5) == Fraction(25, 2)
    with pytest.raises(RotoscopeError, match="frame rate"):
        exact_rate(0)


def test_mp4_command_line_with_audio(tmp_path: Path) -> None:
    audio = AudioSpec(tmp_path / "src.mp4", 1.0, 5.0)
    (tmp_path / "src.mp4").touch()
    rate = Fraction(30000, 1001)
    args = ffmpeg_command(tmp_path / "o.mp4", mp4, (W, H), rate, 30, 18, "medium", audio)
    line = " ".join(args)
    assert "-framerate 30000/1001" in line and "-i pipe:" in line
    assert "-ss 1.000000 -t 1.001000 -i" in line  # cut, and capped at 30 frames' length
    assert "-map 1:a:0?" in line and "-c:a aac" in line
    assert "out_color_matrix=bt709:out_range=tv" in line and "-movflags +faststart" in line
    assert "-shortest" not in args  # it would drop frames when the audio is short


def test_webm_audio_encoder_falls_back_to_vorbis() -> None:
    assert webm_audio_encoder(frozenset({"libopus", "libvorbis"})) == "libopus"
    assert webm_audio_encoder(frozenset({"libvorbis"})) == "libvorbis"
    with pytest.raises(RotoscopeError, match="libopus"):
        webm_audio_encoder(frozenset())


def test_missing_video_encoder_is_reported(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(encode, "_encoders", frozenset)
    frames = make_frames(tmp_path / "frames", grays(2))
    with pytest.raises(RotoscopeError, match="no libx264 encoder"):
        encode_video(frames, tmp_path / "out.mp4", mp4, 12)


def test_last_error_line_skips_ffmpeg_consequences() -> None:
    stderr = (
        "x264 [error]: invalid preset 'nonsense'\n"
        "[libx264 @ 0x561f433bfb40] Error setting preset/tune nonsense/(null).\n"
        "[vost#0:0/libx264 @ 0x5610] [enc:libx264 @ 0x5611] Error while opening encoder - "
        "maybe incorrect parameters such as bit_rate, rate, width or height.\n"
        "[vf#0:0 @ 0x561f433c1000] Task finished with error code: -22 (Invalid argument)\n"
        "[out#0/mp4 @ 0x561f433be280] Nothing was written into output file, because ...\n"
        "Conversion failed!\n"
    )
    assert last_error_line(stderr) == "libx264: Error setting preset/tune nonsense/(null)."
    assert last_error_line("") == "no error message (exit status only)"


# --- video -------------------------------------------------------------------------------


def test_mp4_has_every_frame_at_the_exact_rate_and_bt709_tags(tmp_path: Path) -> None:
    frames = make_frames(tmp_path / "frames", grays(10))
    out = encode_video(frames, tmp_path / "run" / "clip.mp4", mp4, 12)
    assert out == tmp_path / "run" / "clip.mp4"
    assert video_timing(out) == (10, {Fraction(1, 12)})
    text = info(out)
    assert "Video: h264" in text and "yuv420p(tv, bt709, progressive)" in text
    assert "Audio:" not in text
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart
    assert folder_files(out.parent) == ["clip.mp4"]  # no temporary left behind


def test_fractional_fps_is_exact(tmp_path: Path) -> None:
    frames = make_frames(tmp_path / "frames", grays(12))
    out = encode_video(frames, tmp_path / "ntsc.mp4", mp4, 30000 / 1001)
    assert video_timing(out) == (12, {Fraction(1001, 30000)})
    assert "29.97 fps" in info(out)


def test_frames_are_taken_in_list_order_across_gaps(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    levels = [40, 200, 90, 150]
    frames = [  # numbered with gaps, listed out of numeric order
        make_frames(folder, [(v, v, v)], start=number)[0]
        for v, number in zip(levels, [7, 0, 3, 11], strict=True)
    ]
    out = encode_video(frames, tmp_path / "gaps.mp4", mp4, 24)
    decoded = decode_rgb(out).mean(axis=(1, 2, 3))
    assert np.allclose(decoded, levels, atol=3)


@pytest.mark.parametrize("fmt", [mp4, webm])
@pytest.mark.parametrize("colour", [(128, 128, 128), (200, 60, 40)])
def test_flat_colours_survive_without_matrix_shift(tmp_path: Path, fmt, colour) -> None:
    frames = make_frames(tmp_path / "frames", [colour] * 3)
    out = encode_video(frames, tmp_path / f"flat.{fmt.value}", fmt, 12)
    assert np.abs(decode_rgb(out) - colour).max() <= 3
    if len(set(colour)) > 1:  # the check is sensitive: a BT.601 decode is visibly off
        wrong = decode_rgb(out, "scale=in_color_matrix=bt601:in_range=tv")
        assert np.abs(wrong - colour).max() > 8


def test_a_frame_of_another_size_is_named(tmp_path: Path) -> None:
    frames = make_frames(tmp_path / "frames", grays(3))
    Image.new("RGB", (W + 8, H)).save(frames[1])
    with pytest.raises(RotoscopeError, match=r"000001\.png is 72x48, expected 64x48"):
        encode_video(frames, tmp_path / "out" / "clip.mp4", mp4, 12)
    assert folder_files(tmp_path / "out") == []


def test_ffmpeg_failure_is_one_line_and_keeps_the_previous_file(tmp_path: Path) -> None:
    frames = make_frames(tmp_path / "frames", grays(3))
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"previous good encode")
    with pytest.raises(RotoscopeError) as caught:
        encode_video(frames, out, mp4, 12, preset="nonsense")
    message = str(caught.value)
    assert str(out) in message and "nonsense" in message and "\n" not in message
    assert out.read_bytes() == b"previous good encode"
    assert folder_files(tmp_path) == ["clip.mp4", "frames"]


def test_output_gets_normal_file_permissions(tmp_path: Path) -> None:
    frames = make_frames(tmp_path / "frames", grays(2))
    out = encode_video(frames, tmp_path / "clip.mp4", mp4, 12)
    reference = tmp_path / "reference"
    reference.touch()
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)


def test_empty_frame_list_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RotoscopeError, match="no rendered frames to assemble"):
        encode_video([], tmp_path / "clip.mp4", mp4, 12)
    with pytest.raises(RotoscopeError, match="no rendered frames to assemble"):
        write_image_folder([], None, tmp_path / "images")


def test_gif_loops_forever_without_audio(tmp_path: Path, source: Path) -> None:
    frames = make_frames(tmp_path / "frames", grays(6))
    out = encode_video(frames, tmp_path / "loop.gif", gif, 12, audio=AudioSpec(source, 0, 1))
    count, _ = video_timing(out)
    assert count == 6
    assert b"NETSCAPE2.0\x03\x01\x00\x00" in out.read_bytes()  # loop count 0 = forever
    text = info(out)
    assert "Video: gif" in text and "Audio:" not in text


# --- audio -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "codec", "start"), [(mp4, "aac", 1.0), (mp4, "aac", 0.0), (webm, "opus", 1.0)]
)
def test_audio_is_cut_to_the_selected_range(tmp_path: Path, source: Path, fmt, codec, start):
    frames = make_frames(tmp_path / "frames", grays(12))  # 1 s at 12 fps
    audio = AudioSpec(source, start, 1.0)
    out = encode_video(frames, tmp_path / f"a.{fmt.value}", fmt, 12, audio=audio)
    text = info(out)
    assert f"Audio: {codec}" in text and ("Video: h264" in text or "Video: vp9" in text)
    assert video_timing(out)[0] == 12
    samples = decode_audio(out)
    assert abs(len(samples) / AUDIO_RATE - 1.0) < 0.03  # the video's duration
    opening = rms(samples[: AUDIO_RATE // 5])
    assert opening > 0.2 if start == 1.0 else opening < 0.01  # the tone starts at 1 s


def test_audio_longer_than_the_video_is_capped(tmp_path: Path, source: Path) -> None:
    frames = make_frames(tmp_path / "frames", grays(12))
    out = encode_video(frames, tmp_path / "a.mp4", mp4, 12, audio=AudioSpec(source, 0.0, 3.0))
    assert video_timing(out)[0] == 12
    assert abs(len(decode_audio(out)) / AUDIO_RATE - 1.0) < 0.03


def test_audio_shorter_than_the_video_keeps_every_frame(tmp_path: Path, source: Path) -> None:
    frames = make_frames(tmp_path / "frames", grays(12))
    late = AudioSpec(source, SOURCE_SECONDS - 0.5, 1.0)  # only 0.5 s of audio left
    out = encode_video(frames, tmp_path / "a.mp4", mp4, 12, audio=late)
    assert video_timing(out) == (12, {Fraction(1, 12)})
    assert abs(len(decode_audio(out)) / AUDIO_RATE - 0.5) < 0.03


def test_source_without_audio_still_encodes(tmp_path: Path, silent_source: Path) -> None:
    frames = make_frames(tmp_path / "frames", grays(4))
    out = encode_video(frames, tmp_path / "a.mp4", mp4, 12, audio=AudioSpec(silent_source, 0, 1))
    assert video_timing(out)[0] == 4
    assert "Audio:" not in info(out)


def test_missing_audio_source_is_named(tmp_path: Path) -> None:
    frames = make_frames(tmp_path / "frames", grays(2))
    missing = tmp_path / "gone.mp4"
    with pytest.raises(RotoscopeError, match=r"gone\.mp4 not found"):
        encode_video(frames, tmp_path / "a.mp4", mp4, 12, audio=AudioSpec(missing, 0, 1))


# --- image folder ----------------------------------------------------------------------


def test_png_names_keep_stems_and_resolve_collisions() -> None:
    names = ["photo_01.jpg", "a.jpg", "a.png", "A.gif", "a_png.jpg", "sub/b.tiff", "c"]
    assert png_names(names) == [
        "photo_01.png",
        "a.png",  # first in order keeps the natural name
        "a_png_2.png",  # "a_png.png" belongs to the source a_png.jpg
        "A_gif.png",  # case-insensitive: A.png would overwrite a.png on macOS/Windows
        "a_png.png",
        "b.png",
        "c.png",
    ]


def test_image_folder_copies_bytes_with_metadata(tmp_path: Path) -> None:
    frames = make_frames(tmp_path / "frames", grays(3), start=5)
    meta = PngInfo()
    meta.add_text("parameters", "watercolour, seed 42")
    Image.open(frames[0]).save(frames[0], pnginfo=meta)
    out_dir = tmp_path / "run" / "photos"

    written = write_image_folder(frames, ["x.jpg", "x.png", "y.webp"], out_dir)

    assert [p.name for p in written] == ["x.png", "x_png.png", "y.png"]
    assert folder_files(out_dir) == ["x.png", "x_png.png", "y.png"]
    for src, dst in zip(frames, written, strict=True):
        assert dst.read_bytes() == src.read_bytes()
    with Image.open(written[0]) as image:
        assert image.text["parameters"] == "watercolour, seed 42"


def test_image_folder_numbers_frames_by_position(tmp_path: Path) -> None:
    frames = make_frames(tmp_path / "frames", grays(3), start=7)
    written = write_image_folder(frames, None, tmp_path / "seq")
    assert [p.name for p in written] == ["000000.png", "000001.png", "000002.png"]


def test_image_folder_refuses_the_frames_folder_and_non_png(tmp_path: Path) -> None:
    frames = make_frames(tmp_path / "frames", grays(1))
    with pytest.raises(RotoscopeError, match="folder holding the rendered frames"):
        write_image_folder(frames, ["a.jpg"], tmp_path / "frames")
    jpeg = tmp_path / "frames" / "000001.png"
    Image.new("RGB", (W, H)).save(jpeg, format="JPEG")
    with pytest.raises(RotoscopeError, match="not a PNG"):
        write_image_folder([jpeg], None, tmp_path / "out")


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"crf": 100}, "output.crf=100 is outside 0-51 for mp4"),
        ({"crf": -1}, "output.crf=-1 is outside 0-51 for mp4"),
        ({"format": [OutputFormat.webm], "crf": 64}, "output.crf=64 is outside 0-63 for webm"),
        ({"preset": "fsat"}, "output.preset=fsat is not an x264 preset (did you mean 'fast'?"),
    ],
)
def test_encoder_options_outside_their_range_are_refused(options: dict, needle: str) -> None:
    with pytest.raises(RotoscopeError) as info:
        check_output_options(OutputConfig(**options))
    assert needle in str(info.value)
    check_output_options(OutputConfig(format=[OutputFormat.webm], crf=30))
    check_output_options(OutputConfig(format=[OutputFormat.gif], crf=100))  # gif has no crf
    with pytest.raises(RotoscopeError, match="must name each format once"):
        check_output_options(OutputConfig(format=[OutputFormat.mp4, OutputFormat.mp4]))


# --- the mask as alpha: prores_alpha, webm_alpha, RGBA images, mattes ----------------


def make_masks(folder: Path, count: int) -> list[Path]:
    """Grey masks of the frames' size: a vertical band that moves right each frame."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        mask = np.zeros((H, W), np.uint8)
        mask[:, 8 + 8 * index : 32 + 8 * index] = 255
        path = folder / f"{index:06d}.png"
        Image.fromarray(mask).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize(
    ("fmt", "pixels"),
    [(OutputFormat.prores_alpha, "yuva444p"), (OutputFormat.webm_alpha, "yuva420p")],
)
def test_alpha_formats_decode_with_the_masks_as_alpha(tmp_path: Path, fmt, pixels) -> None:
    from pipeline.source.probe import probe_video
    from pipeline.source.video import VideoReader

    frames = make_frames(tmp_path / "frames", [(200, 40, 40), (40, 200, 40), (40, 40, 200)])
    masks = make_masks(tmp_path / "masks", 3)
    out = tmp_path / f"clip.{video_extension(fmt)}"
    encode_video(frames, out, fmt, 12, crf=20, alphas=masks)
    # the stream carries alpha, as ffmpeg -i reports it (the libvpx decoder for VP9's)
    decoder = ["-c:v", "libvpx-vp9"] if fmt is OutputFormat.webm_alpha else []
    described = run_ffmpeg(*decoder, "-i", str(out)).stderr.decode()
    assert pixels in described
    probe = probe_video(out)
    assert probe.has_alpha
    decoded = list(VideoReader(probe, 0, None, 1, None))
    assert len(decoded) == 3
    for picture, mask in zip(decoded, masks, strict=True):
        alpha = picture[..., 3].astype(int)
        wanted = np.asarray(Image.open(mask)).astype(int)
        assert np.abs(alpha - wanted).mean() < 4  # lossy at edges, exact in flat areas
        assert (alpha[wanted == 255] > 240).mean() > 0.95 and (alpha[wanted == 0] < 15).all()


def test_rgba_images_take_the_mask_as_alpha_and_keep_their_parameters(tmp_path: Path) -> None:
    frame = tmp_path / "frame.png"
    info = PngInfo()
    info.add_itxt("parameters", "a cat\nSteps: 4")
    Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(frame, pnginfo=info)
    (mask,) = make_masks(tmp_path / "masks", 1)
    (written,) = write_image_folder(
        [frame], None, tmp_path / "images", [np.asarray(Image.open(mask))]
    )
    with Image.open(written) as image:
        assert image.mode == "RGBA" and image.text["parameters"] == "a cat\nSteps: 4"
        rgba = np.asarray(image)
    assert np.array_equal(rgba[..., 3], np.asarray(Image.open(mask)))
    assert (rgba[..., :3] == 90).all()


def test_mask_outputs_need_a_mask() -> None:
    from pipeline.assemble.encode import check_mask_outputs

    for output in (
        OutputConfig(format=[OutputFormat.prores_alpha]),
        OutputConfig(format=[OutputFormat.images], alpha=True), OutputConfig(matte=True),
    ):  # fmt: skip
        with pytest.raises(RotoscopeError, match="no mask is given"):
            check_mask_outputs(output, masked=False)
        check_mask_outputs(output, masked=True)
    check_mask_outputs(OutputConfig(), masked=False)
    with pytest.raises(RotoscopeError, match=r"makes RGBA images, and output\.format is mp4"):
        check_mask_outputs(OutputConfig(alpha=True), masked=True)
