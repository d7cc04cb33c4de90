"""Parsing of ``ffmpeg -i`` output, on texts as ffmpeg prints them (no ffmpeg run)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.errors import RotoscopeError
from pipeline.source.probe import parse_probe, parse_rate

CLIP = Path("clip.mp4")

PHONE = """\
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'clip.mp4':
  Metadata:
    major_brand     : qt
  Duration: 00:01:02.50, start: 0.000000, bitrate: 15000 kb/s
  Stream #0:0[0x1](und): Video: hevc (Main) (hvc1 / 0x31637668), yuv420p(tv, bt709), \
1920x1080, 14000 kb/s, 29.97 fps, 29.97 tbr, 600 tbn (default)
    Metadata:
      handler_name    : Core Media Video
    Side data:
      displaymatrix: rotation of -90.00 degrees
  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, stereo, fltp, 128 kb/s
At least one output file must be specified
"""


def test_phone_clip() -> None:
    probe = parse_probe(PHONE, CLIP)
    assert (probe.coded_width, probe.coded_height) == (1920, 1080)
    assert probe.display_size == (1080, 1920)
    assert probe.rotation == 90
    assert probe.fps == Fraction(30000, 1001)
    assert probe.duration == pytest.approx(62.5)
    assert probe.total_frames == round(62.5 * 30000 / 1001)
    assert probe.has_audio and not probe.has_alpha
    assert (probe.codec, probe.pix_fmt, probe.stream_index) == ("hevc", "yuv420p", 0)


def test_old_rotate_tag_and_attached_picture() -> None:
    text = """\
  Duration: 00:00:10.00, start: 0.000000, bitrate: 800 kb/s
  Stream #0:0: Video: mjpeg (Baseline), yuvj420p(pc), 600x600, 90k tbr, 90k tbn (attached pic)
  Stream #0:1(eng): Video: h264 (avc1 / 0x31637661), yuv420p, 640x480 [SAR 1:1 DAR 4:3], \
25 fps, 25 tbr, 12800 tbn
    Metadata:
      rotate          : 270
"""
    probe = parse_probe(text, CLIP)
    assert probe.stream_index == 1
    assert probe.rotation == 270
    assert probe.display_size == (480, 640)
    assert not probe.has_audio


@pytest.mark.parametrize(
    ("matrix", "rotation"),
    [("90.00", 270), ("-90.00", 90), ("180.00", 180), ("-180.00", 180), ("45.00", 0)],
)
def test_display_matrix_angles(matrix: str, rotation: int) -> None:
    text = f"""\
  Stream #0:0: Video: h264, yuv420p, 64x48, 12 fps, 12 tbr, 12288 tbn
    Side data:
      Display Matrix: rotation of {matrix} degrees
"""
    assert parse_probe(text, CLIP).rotation == rotation


def test_gif_with_only_tbr_and_anamorphic_pixels() -> None:
    text = """\
  Duration: 00:00:02.00, start: 0.000000, bitrate: 51 kb/s
  Stream #0:0: Video: gif, bgra, 64x48 [SAR 2:1 DAR 8:3], 10 tbr, 100 tbn
"""
    probe = parse_probe(text, Path("a.gif"))
    assert probe.fps == 10
    assert probe.has_alpha
    assert probe.display_size == (128, 48)
    assert probe.total_frames == 20


def test_webm_alpha_uses_libvpx_and_matroska_stream_duration() -> None:
    text = """\
  Duration: 00:00:03.00, start: 0.000000, bitrate: 21 kb/s
  Stream #0:0: Video: vp9 (Profile 0), yuv420p(tv, progressive), 64x48, SAR 1:1 DAR 4:3, \
12 fps, 12 tbr, 1k tbn
    Metadata:
      alpha_mode      : 1
      DURATION        : 00:00:02.500000000
  Stream #0:1: Audio: opus, 48000 Hz, mono, fltp
    Metadata:
      DURATION        : 00:00:03.000000000
"""
    probe = parse_probe(text, Path("a.webm"))
    assert probe.has_alpha and probe.decoder == "libvpx-vp9"
    assert probe.duration == pytest.approx(2.5)
    assert probe.has_audio


def test_unknown_duration() -> None:
    text = "  Duration: N/A, bitrate: N/A\n  Stream #0:0: Video: h264, yuv420p, 64x48, 25 fps\n"
    probe = parse_probe(text, CLIP)
    assert probe.duration is None and probe.total_frames is None


@pytest.mark.parametrize(
    ("token", "rate"),
    [
        ("25", Fraction(25)),
        ("29.97", Fraction(30000, 1001)),
        ("23.98", Fraction(24000, 1001)),
        ("59.94", Fraction(60000, 1001)),
        ("12.5", Fraction(25, 2)),
        ("30k", Fraction(30000)),
        ("1k", Fraction(1000)),
        ("30", Fraction(30)),
    ],
)
def test_parse_rate(token: str, rate: Fraction) -> None:
    assert parse_rate(token) == rate


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "[in#0 @ 0x1] moov atom not found\n"
            "Error opening input file clip.mp4.\n"
            "Error opening input files: Invalid data found when processing input\n",
            "Invalid data found",
        ),
        ("  Stream #0:0: Audio: mp3, 44100 Hz, stereo, fltp, 128 kb/s\n", "no video stream"),
    ],
)
def test_unreadable_names_the_file(text: str, reason: str) -> None:
    with pytest.raises(RotoscopeError, match=reason) as err:
        parse_probe(text, CLIP)
    assert "clip.mp4" in err.value.message


def test_missing_rate_is_an_error() -> None:
    with pytest.raises(RotoscopeError, match="frame rate"):
        parse_probe("  Stream #0:0: Video: h264, yuv420p, 64x48, 1000 tbn\n", CLIP)
