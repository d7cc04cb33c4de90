"""Masks through the CLI on the tiny models: a matte folder, a matte video, a chroma key,
an inpainting checkpoint and a Deforum settings file stylize only their area, with every
pixel elsewhere the source frame's; mattes and alpha come out; edits, kill -9 and resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.cli import probe_output, rotoscope, start_stopping_at, wait_until_stopped
from support.media import make_video, run_ffmpeg
from support.run_files import frame_file, frames_of, report_of

from pipeline.config.schema import InputConfig
from pipeline.render.pngmeta import read_png_metadata
from pipeline.source.mask_shape import KEY_COLORS
from pipeline.source.open import open_source
from pipeline.source.probe import probe_video
from pipeline.source.video import VideoReader

FRAMES = 6


def square(index: int, shift: int = 8) -> np.ndarray:
    """Frame ``index``'s mask: a 16 x 24 block (on the latents' 8-pixel grid) moving right."""
    mask = np.zeros((48, 64), np.uint8)
    mask[16:32, shift * index % 40 : shift * index % 40 + 24] = 255
    return mask


def write_masks(folder: Path, masks: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, mask in enumerate(masks):
        Image.fromarray(mask).save(folder / f"{index:03d}.png")
    return folder


def write_mask_video(path: Path, masks: list[np.ndarray]) -> Path:
    """A lossless matte video (PNG in .mov): each frame decodes to exactly its mask."""
    frames = write_masks(path.with_suffix(""), masks)
    run_ffmpeg("-framerate", "6", "-i", str(frames / "%03d.png"), "-c:v", "png", str(path))
    return path


def source_frames(clip: Path) -> list[np.ndarray]:
    return [frame.image for frame in open_source(InputConfig(path=str(clip)))]


def assert_only_the_mask_changed(frames: list, sources: list, masks: list) -> None:
    """Outside each mask the source frame's pixels exactly; inside, a new picture."""
    assert len(frames) == len(sources) == len(masks)
    for index, (frame, source, mask) in enumerate(zip(frames, sources, masks, strict=True)):
        outside = mask == 0
        assert np.array_equal(frame[outside], source[outside]), f"frame {index} outside"
        change = np.abs(frame[~outside].astype(int) - source[~outside]).mean()
        assert change > 5, f"frame {index} inside barely changed ({change:.1f})"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def clip(media: Path) -> Path:
    return make_video(media / "dance.mp4", frames=FRAMES, fps=6)


@pytest.fixture(scope="module")
def sources(clip: Path) -> list[np.ndarray]:
    return source_frames(clip)


@pytest.fixture(scope="module")
def masks() -> list[np.ndarray]:
    return [square(index) for index in range(FRAMES)]


@pytest.fixture(scope="module")
def mask_folder(media: Path, masks: list[np.ndarray]) -> Path:
    return write_masks(media / "masks", masks)


@pytest.fixture(scope="module")
def base(tiny_models, clip: Path) -> tuple[str, ...]:
    return (
        f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=4",
        "strength=0.6", "prompt=an oil painting", "mask.overlay_blur=0",
    )  # fmt: skip


def test_a_matte_folder_stylizes_its_area_and_writes_alpha_and_mattes(
    base, mask_folder, masks, sources, tmp_path
) -> None:
    result = rotoscope(
        *base, f"mask.path={mask_folder}", "output=images", "output.alpha=true",
        "output.matte=true", "name=folder", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "outputs/folder"
    frames = frames_of(run_dir)
    assert_only_the_mask_changed(frames, sources, masks)
    # RGBA images with the mask as alpha, their parameters kept; the mattes beside them
    for index, name in enumerate(sorted(p.name for p in (run_dir / "images").iterdir())):
        with Image.open(run_dir / "images" / name) as image:
            rgba = np.asarray(image)
            assert "Inpaint area: Whole picture" in image.text["parameters"]
        assert np.array_equal(rgba[..., 3], masks[index])
        assert np.array_equal(rgba[..., :3], frames[index])
        assert np.array_equal(np.asarray(Image.open(run_dir / "mattes" / name)), masks[index])
    parameters = read_png_metadata(frame_file(run_dir, 2))["parameters"]
    assert "Mask blur: 0, Inpaint area: Whole picture, Masked area padding: 32, Masked " \
        "content: original" in parameters  # fmt: skip
    plan = (run_dir / "plan.csv").read_text().splitlines()
    assert "mask_overlay_blur" in plan[0] and ",full," in plan[1]
    assert f"mask {mask_folder}" in (run_dir / "rotoscope.log").read_text()  # the plan line
    metrics = json.loads((run_dir / "metrics.json").read_text())["mask"]
    assert metrics["warp_error_outside"] == metrics["source_warp_error_outside"]
    assert metrics["warp_error_inside"] != metrics["source_warp_error_inside"]


def test_black_mask_is_the_source_without_a_model_and_white_is_plain_img2img(
    base, media, sources, tmp_path
) -> None:
    black, white = media / "black.png", media / "white.png"
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(black)
    Image.fromarray(np.full((48, 64), 255, np.uint8)).save(white)
    args = (*base, "stages=[plan,render]", "input.max_frames=3")
    runs = {
        "black": rotoscope(*args, f"mask.path={black}", "name=black", cwd=tmp_path),
        "white": rotoscope(
            *args, f"mask.path={white}", "mask.composite=false", "name=white", cwd=tmp_path
        ),
        "plain": rotoscope(*args, "name=plain", cwd=tmp_path),
    }
    for result in runs.values():
        assert result.returncode == 0, result.stderr
    outputs = tmp_path / "outputs"
    for frame, source in zip(frames_of(outputs / "black"), sources, strict=False):
        assert np.array_equal(frame, source)
    assert report_of(outputs / "black")["model_load_seconds"] is None  # no UNet, no model
    assert "Model:" not in read_png_metadata(frame_file(outputs / "black", 0))["parameters"]
    for a, b in zip(frames_of(outputs / "white"), frames_of(outputs / "plain"), strict=True):
        assert np.abs(a.astype(int) - b).max() <= 1


def test_a_chroma_key_repaints_a_green_screen_and_keeps_the_subject(
    tiny_models, media, tmp_path
) -> None:
    folder = media / "screen"
    folder.mkdir()
    screens = []
    for index in range(3):
        frame = np.empty((48, 64, 3), np.uint8)
        frame[:] = KEY_COLORS["green"]
        frame[:, 40:] = (0, 120, 45)  # the screen in shadow
        frame[8:40, 8 + 8 * index : 32 + 8 * index] = (220, 170, 140)  # the subject
        Image.fromarray(frame).save(folder / f"{index}.png")
        screens.append(np.all(frame[..., 1:] == (177, 64), axis=-1) | (frame[..., 1] == 120))
    result = rotoscope(
        f"input.path={folder}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=4",
        "strength=0.8", "prompt=a jungle", "mask.key=green", "mask.overlay_blur=0",
        "stages=[plan,render]", "name=screen", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    inputs = source_frames(folder)
    keyed = [np.where(screen, 255, 0).astype(np.uint8) for screen in screens]
    assert_only_the_mask_changed(frames_of(tmp_path / "outputs/screen"), inputs, keyed)


def test_a_mask_folder_with_a_missing_frame_is_refused(base, masks, media, tmp_path) -> None:
    folder = write_masks(media / "short", masks)
    (folder / "003.png").unlink()
    result = rotoscope(*base, f"mask.path={folder}", "name=short", cwd=tmp_path)
    assert result.returncode != 0
    (line,) = [line for line in result.stderr.splitlines() if "error" in line]
    assert f"mask.path '{folder}' has 5 frames but the input's 6 selected frames need 6" in line
    assert not (tmp_path / "outputs/short/frames").exists()


def test_editing_a_matte_video_rerenders_exactly_the_frames_whose_mask_changed(
    base, masks, media, tmp_path
) -> None:
    matte = write_mask_video(media / "matte.mov", masks)
    args = (*base, f"mask.path={matte}", "stages=[plan,render]", "name=edit")
    first = rotoscope(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    edited = [square(index, shift=4) if index in (1, 3, 4) else mask for index, mask in
              enumerate(masks)]  # fmt: skip
    write_mask_video(matte, edited)
    second = rotoscope(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    report = report_of(tmp_path / "outputs/edit")
    assert report["rendered_frames"] == "1,3-4" and report["reused"] == 3
    assert report["reasons"] == {"mask changed": 3}


def test_masked_area_with_prores_and_vp9_alpha_outputs(
    base, mask_folder, masks, sources, tmp_path
) -> None:
    args = (*base, f"mask.path={mask_folder}", "mask.area=masked", "mask.padding=8",
            "input.max_frames=3", "name=crop")  # fmt: skip
    result = rotoscope(*args, "output=prores_alpha", "output.matte=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "outputs/crop"
    assert_only_the_mask_changed(frames_of(run_dir), sources[:3], masks[:3])
    assert (
        "Inpaint area: Only masked, Masked area padding: 8"
        in (read_png_metadata(frame_file(run_dir, 0))["parameters"])
    )
    # the last assemble's outputs are the run folder's: both formats, and their mattes
    webm = rotoscope(*args, "output.format=[prores_alpha,webm_alpha]", "output.matte=true",
                     "stages=[assemble]", cwd=tmp_path)  # fmt: skip
    assert webm.returncode == 0, webm.stderr
    assert "yuva444p" in probe_output(run_dir / "crop.mov")
    assert "alpha_mode" in probe_output(run_dir / "crop.webm")
    for video in ("crop.mov", "crop.webm", "crop.matte.mov"):
        probe = probe_video(run_dir / video)
        decoded = list(VideoReader(probe, 0, None, 1, None))
        assert len(decoded) == 3
        for picture, mask in zip(decoded, masks, strict=False):
            # the matte's luma, the others' alpha: the mask
            matte = picture[..., 3] if video != "crop.matte.mov" else picture[..., 0]
            assert np.abs(matte.astype(int) - mask).mean() < 4
            assert probe.has_alpha or video == "crop.matte.mov"


def test_an_inpainting_checkpoint_with_an_inpaint_controlnet(
    tiny_inpaint, tiny_controlnets, clip, mask_folder, masks, sources, tmp_path
) -> None:
    result = rotoscope(
        f"input.path={clip}", f"model.path={tiny_inpaint}", "runtime=cpu", "steps=4",
        "prompt=ink", f"mask.path={mask_folder}", "mask.overlay_blur=0", "input.max_frames=2",
        "stages=[plan,render]", f"+controlnet.units.fix.model={tiny_controlnets.sd15}",
        "+controlnet.units.fix.preprocessor=inpaint", "name=inpaint", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert_only_the_mask_changed(frames_of(tmp_path / "outputs/inpaint"), sources[:2], masks[:2])


def test_a_deforum_settings_file_with_a_mask_video(base, masks, media, sources, tmp_path) -> None:
    """A Video Input run's settings: its mask video, combined with a logo file by the mask
    schedule (a union), inverted: the background and the logo are repainted."""
    matte = write_mask_video(media / "deforum_matte.mov", masks)
    logo = np.zeros((48, 64), np.uint8)
    logo[:8, :16] = 255
    Image.fromarray(logo).save(media / "logo.png")
    settings = json.loads((Path(__file__).parents[1] / "data/deforum/video_input_2023_settings.txt")
                          .read_text())  # fmt: skip
    settings.update(
        use_mask_video=True, video_mask_path=str(matte), invert_mask=True, overlay_mask=True,
        mask_overlay_blur=0, full_res_mask=False,
        mask_schedule=f'0: ("{{video_mask}} \\ [{media / "logo.png"}]")',
    )  # fmt: skip
    path = tmp_path / "deforum_settings.txt"
    path.write_text(json.dumps(settings))
    result = rotoscope(
        *base, f"keyframes={path}", "input.max_frames=2", "input.width=64", "input.height=48",
        "steps=4", "stages=[plan,render]", "name=deforum", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rendered = [255 - np.minimum(mask, 255 - logo) for mask in masks[:2]]  # inverted
    assert_only_the_mask_changed(frames_of(tmp_path / "outputs/deforum"), sources[:2], rendered)


def test_kill_9_and_resume_with_masks_and_coherence(tiny_models, clip, media, tmp_path) -> None:
    """Coherent chains through masks with empty frames in them: killed and resumed, the
    frames are those of an uninterrupted run."""
    masks = [square(index) if index % 4 != 2 else np.zeros((48, 64), np.uint8)
             for index in range(FRAMES)]  # fmt: skip
    folder = write_masks(media / "gaps", masks)
    args = (
        f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=8",
        "prompt=ink", f"mask.path={folder}", "coherence=full", "stages=[plan,render]",
    )  # fmt: skip
    whole = rotoscope(*args, "name=whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    proc = start_stopping_at(2, *args, "name=killed", cwd=tmp_path)
    run_dir = tmp_path / "outputs/killed"
    wait_until_stopped(proc)
    proc.kill()
    proc.communicate()
    resumed = rotoscope(*args, "name=killed", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert 0 < report_of(run_dir)["reused"] < FRAMES
    for a, b in zip(frames_of(run_dir), frames_of(tmp_path / "outputs/whole"), strict=True):
        assert np.array_equal(a, b)
