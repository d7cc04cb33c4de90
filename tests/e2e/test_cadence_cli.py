"""Cadence through the command line: every n-th frame diffused, the frames between carried
along the source's motion (a video) or tweened as Deforum does (loopback); keys, resume
and re-render of exactly the frames a change reaches."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.cli import rotoscope, start_stopping_at, wait_until_stopped
from support.run_files import frame_file, frames_of, manifest_lines, report_of

from pipeline.animation.flow import FlowPair
from pipeline.animation.flow_cache import FlowCache
from pipeline.animation.loopback import LoopbackInputs, LoopbackSettings
from pipeline.metrics.warp_error import pair_warp_error
from pipeline.plan.rows import read_plan
from pipeline.records.run_folder import RunFolder
from pipeline.render.pngmeta import read_png_metadata
from pipeline.render.strategies.loopback import camera_step, input_tools
from pipeline.report.view import read_view
from pipeline.testing.synthetic import occluder_clip, pan_clip, static_clip


def write_folder(frames: list[np.ndarray], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{index:03d}.png")
    return folder


@pytest.fixture(scope="module")
def pan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames = pan_clip(frames=12, width=64, height=64, velocity=(1.5, 0.5)).frames
    return write_folder(frames, tmp_path_factory.mktemp("pan") / "pan")


def common(tiny_models) -> list[str]:
    return [
        f"model.path={tiny_models.sd15}", "prompt=ink", "steps=4", "strength=0.5", "seed=5",
        "runtime=cpu", "output=images",
    ]  # fmt: skip


def run(work: Path, *args: str) -> Path:
    result = rotoscope(*args, cwd=work)
    assert result.returncode == 0, result.stderr
    name = next(arg.split("=", 1)[1] for arg in args if arg.startswith("name="))
    return work / "outputs" / name


@pytest.fixture(scope="module")
def coherent_cadence(pan: Path, tiny_models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pan with coherence=full and cadence.every=4: frames 0, 4, 8 diffused as one
    coherent chain, the others carried."""
    work = tmp_path_factory.mktemp("cadence")
    return run(work, f"input.path={pan}", *common(tiny_models), "coherence=full",
               "cadence.every=4", "name=pan")  # fmt: skip


def test_a_quarter_of_the_frames_is_diffused_and_the_rest_moves_with_the_source(
    coherent_cadence: Path,
) -> None:
    run_dir = coherent_cadence
    rows = read_plan(RunFolder(run_dir))
    assert [row.index for row in rows if row.diffused] == [0, 4, 8]
    log = (run_dir / "rotoscope.log").read_text()
    assert "cadence every 4: 3 of 12 frames diffused (0, 4, 8)" in log
    assert report_of(run_dir)["rendered"] == 12
    for index in range(12):
        metadata = read_png_metadata(frame_file(run_dir, index))
        details = metadata["rotoscope"]
        if index % 4 == 0:  # diffused: by the model
            assert details["model"] is not None and "cadence" not in details
        else:  # carried: no UNet call, and the frames it is made from say so
            assert details["model"] is None
            made_from = [index - index % 4, index - index % 4 + 4][: 1 if index > 8 else 2]
            assert details["cadence"] == {"diffused": False, "made_from": made_from}
            words = " and ".join(map(str, made_from))
            assert (
                f"Cadence: carried from frame{'s' if len(made_from) > 1 else ''} {words}"
                in (metadata["parameters"])
            )
    dependencies = {line["index"]: line["dependencies"] for line in manifest_lines(run_dir)}
    keys = {line["index"]: line["key"] for line in manifest_lines(run_dir)}
    # the report page shows carried frames as carried, each with its thumbnails
    lines = {line["index"]: line for line in manifest_lines(run_dir)}
    assert lines[5]["carried_from"] == [4, 8] and lines[4]["carried_from"] == []
    folder = RunFolder(run_dir)
    assert all(folder.thumbnail(key).is_file() for key in keys.values())  # by the writer
    view = {frame.index: frame for frame in read_view(folder).frames}
    assert [index for index in range(12) if view[index].origin == "carried"] == [
        index for index in range(12) if index % 4
    ]
    assert "carried" in (run_dir / "report.html").read_text(encoding="utf-8")
    assert f"from={keys[4]}" in dependencies[5] and f"to={keys[8]}" in dependencies[5]
    assert f"previous={keys[4]}" in dependencies[8]  # the chain of diffused frames
    # carried frames move with the picture: along the source's flow they change less
    # than in place
    frames, flows = frames_of(run_dir), FlowCache(RunFolder(run_dir).flow_pair)
    along, in_place = [], []
    for index in range(1, 12):
        pair = flows.stored(index)
        assert pair is not None
        still = FlowPair(np.zeros_like(pair.forward), np.zeros_like(pair.backward))
        along.append(pair_warp_error(frames[index - 1], frames[index], pair))
        in_place.append(pair_warp_error(frames[index - 1], frames[index], still))
    assert np.mean(along) < 0.5 * np.mean(in_place)


def test_kill_9_then_resume_matches_an_uninterrupted_run(
    coherent_cadence: Path, pan: Path, tiny_models, tmp_path: Path
) -> None:
    """Killed once the manifest holds 5 lines (the three diffused frames, then carried
    ones): the resumed run reuses what it holds and carries the rest as the whole run
    did."""
    args = [f"input.path={pan}", *common(tiny_models), "coherence=full", "cadence.every=4"]
    proc = start_stopping_at(5, *args, "name=killed", cwd=tmp_path)
    wait_until_stopped(proc)
    kept = [line["index"] for line in manifest_lines(tmp_path / "outputs/killed")]
    proc.kill()
    proc.communicate()
    assert kept[:5] == [0, 4, 8, 1, 2]  # a span is carried after its diffused frames
    run_dir = run(tmp_path, *args, "name=killed")
    report = report_of(run_dir)
    assert (report["reused"], report["rendered"]) == (len(kept), 12 - len(kept))
    for got, want in zip(frames_of(run_dir), frames_of(coherent_cadence), strict=True):
        assert np.array_equal(got, want)


def test_editing_a_diffused_frame_rerenders_the_frames_carried_from_it_only(
    pan: Path, tiny_models, tmp_path: Path
) -> None:
    """Frame 4's prompt changes: frame 4 is diffused again, and the frames carried from it
    (1-3 and 5-7); frames 0 and 8-11 are reused."""
    args = [f"input.path={pan}", *common(tiny_models), "cadence.every=4", "name=edit",
            "prompt_blend=none", "coherence.reanchor=[]", "+prompts.0=ink",
            "+prompts.5=ink"]  # fmt: skip
    run(tmp_path, *args, "+prompts.4=oil")
    run_dir = run(tmp_path, *args, "+prompts.4=chalk")
    assert report_of(run_dir)["rendered_frames"] == "1-7"


def test_a_static_clip_carried_is_its_diffused_frame(tiny_models, tmp_path: Path) -> None:
    frames = static_clip(frames=9, width=64, height=64).frames
    clip = write_folder(frames, tmp_path / "static")
    run_dir = run(tmp_path, f"input.path={clip}", *common(tiny_models), "cadence.every=4",
                  "name=static")  # fmt: skip
    outputs = frames_of(run_dir)
    # a folder with a cadence is a clip's frames, not a batch of photos: flicker measured
    assert "warp_error" in json.loads((run_dir / "metrics.json").read_text())
    assert np.array_equal(outputs[0], outputs[4])  # the same frame, row and seed
    for frame in outputs:
        assert np.abs(frame.astype(int) - outputs[0]).max() <= 1


def test_what_the_diffused_frame_never_saw_is_repaired_from_the_source(
    tiny_models, tmp_path: Path
) -> None:
    """A square slides over a still background, one diffused frame (0): what it uncovers
    is painted from the source frame by the repair pass, not guessed from frame 0."""
    clip = occluder_clip(frames=8, width=64, height=64, square=20, speed=3)
    folder = write_folder(clip.clip.frames, tmp_path / "occluder")
    errors = {}
    for repair in ("0", "0.4"):
        run_dir = run(tmp_path, f"input.path={folder}", *common(tiny_models), "steps=8",
                      "cadence.every=8", f"cadence.repair_strength={repair}",
                      f"name=repair{repair}", "stages=[plan,render]")  # fmt: skip
        outputs, found = frames_of(run_dir), []
        for index in range(3, 8):
            uncovered = np.zeros((64, 64), bool)
            uncovered[22:42, 8 : min(28, 8 + 3 * index)] = True  # hidden at 0, not now
            source = clip.clip.frames[index][uncovered].astype(int)
            found.append(np.abs(outputs[index][uncovered] - source).mean())
        errors[repair] = float(np.mean(found))
        repaired = read_png_metadata(frame_file(run_dir, 5))["rotoscope"]["model"]
        assert (repaired is not None) == (repair != "0")  # the repair pass is a UNet call
    assert errors["0.4"] < 0.75 * errors["0"]


def test_a_diffused_frame_at_every_scene_cut(tiny_models, tmp_path: Path) -> None:
    first = pan_clip(frames=7, width=64, height=64, seed=0).frames
    second = [np.ascontiguousarray(frame[::-1, :, ::-1]) for frame in static_clip(5, 64, 64).frames]
    clip = write_folder(first + second, tmp_path / "two_shots")
    run_dir = run(tmp_path, f"input.path={clip}", *common(tiny_models), "cadence.every=4",
                  "stages=[plan]", "name=cuts")  # fmt: skip
    preview = RunFolder(run_dir).preview  # a job that plans without rendering
    rows = read_plan(preview)
    assert [row.index for row in rows if row.diffused] == [0, 4, 7, 8]
    assert (rows[6].cadence_from, rows[6].cadence_to) == (4, None)  # not across the cut
    assert preview.plan_chart.stat().st_size > 0


def turbo_reference(frames: list[np.ndarray], diffused: dict[int, np.ndarray]) -> None:
    """Deforum's frames for cadence 2 and a camera sliding 2 px right per frame, by hand:
    frame 1 is frame 0 moved; a diffused frame k shows half the frame before it moved
    and half what it diffused; frame k+1 is what k diffused, moved."""

    def moved(image: np.ndarray) -> np.ndarray:
        from pipeline.animation.motion import warp_2d

        return warp_2d(image, zoom=1.0, angle=0.0, translation_x=2.0, translation_y=0.0)

    def half(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        blend = a.astype(np.float32) * 0.5 + b.astype(np.float32) * 0.5
        return np.clip(np.rint(blend), 0, 255).astype(np.uint8)

    assert np.array_equal(frames[1], moved(frames[0]))
    for k in (2, 4):
        assert np.array_equal(frames[k], half(moved(frames[k - 1]), diffused[k])), k
    assert np.array_equal(frames[3], moved(diffused[2]))


def test_deforums_cadence_on_loopback_matches_a_hand_made_reference(
    tiny_models, tmp_path: Path
) -> None:
    """Cadence 2 in 2D loopback: every frame by hand from what frames 0, 2 and 4 diffused,
    and what each diffused from the frame shown before it (rendered again here)."""
    from pipeline.config.schema import ModelConfig, RuntimeConfig
    from pipeline.models.loader import load_model
    from pipeline.render.renderer import Renderer

    still = tmp_path / "still.png"
    Image.fromarray(pan_clip(frames=1, width=64, height=64).frames[0]).save(still)
    run_dir = run(tmp_path, f"input.path={still}", "input.repeat=5", *common(tiny_models),
                  "animation=loopback", "animation.zoom=1", "animation.translation_x=2",
                  "animation.color_coherence=none", "cadence.every=2", "name=turbo")  # fmt: skip
    frames, rows = frames_of(run_dir), read_plan(RunFolder(run_dir))
    newer = {
        line["index"]: re.search(r"newer=([0-9a-f]{64})", line["dependencies"])
        for line in manifest_lines(run_dir)
    }
    diffused = {0: frames[0]}
    for k in (2, 4):
        match = newer[k]
        assert match is not None
        kept = RunFolder(run_dir).cadence_diffused(match.group(1))
        diffused[k] = np.asarray(Image.open(kept).convert("RGB"))
    turbo_reference(frames, diffused)
    renderer = Renderer(load_model(ModelConfig(path=str(tiny_models.sd15)), RuntimeConfig("cpu")))
    inputs = LoopbackInputs(LoopbackSettings())
    for k in (2, 4):  # each diffused from the frame shown before it, moved by its step
        row = rows[k]
        init = inputs.next_input(frames[k - 1], camera_step(row), input_tools(row), row.seed)
        again = renderer.render(row, init)
        assert np.abs(again.astype(int) - diffused[k]).max() <= 1, k


def test_3d_cadence_resumes_mid_span_from_its_kept_diffused_frames(
    tiny_models, tiny_depth: Path, tmp_path: Path
) -> None:
    """A 3D fly-through with cadence 3 rendered to frame 4, then on to frame 7, gives the
    frames of one uninterrupted run: the resumed span starts from the diffused frame kept
    in the run folder and the depth it carries."""
    still = tmp_path / "still.png"
    Image.fromarray(static_clip(frames=1, width=64, height=64).frames[0]).save(still)
    args = [f"input.path={still}", "input.repeat=8", *common(tiny_models), "animation=3d",
            f"paths.models={tiny_depth}", "animation.depth.model=tiny",
            "animation.translation_z=3", "animation.rotation_3d_y=0.5",
            "cadence.every=3"]  # fmt: skip
    whole = run(tmp_path, *args, "name=whole")
    assert len(list((whole / "cadence").glob("diffused-*.png"))) == 2  # frames 3 and 6
    assert len(list((whole / "depth").glob("*.png"))) == 3  # no depth estimated on a tween
    run(tmp_path, *args, "input.max_frames=5", "name=resumed")
    shutil.rmtree(tmp_path / "outputs/resumed/depth")  # estimated again: the same maps
    resumed = run(tmp_path, *args, "name=resumed")
    assert report_of(resumed)["rendered_frames"] == "5-7"
    for got, want in zip(frames_of(resumed), frames_of(whole), strict=True):
        assert np.array_equal(got, want)
    record = json.loads((resumed / "manifest.jsonl").read_text().splitlines()[-1])
    assert "older=" in record["dependencies"] and "depth" in record["dependencies"]


def test_a_masked_cadence_keeps_the_source_outside_the_mask_on_carried_frames(
    pan: Path, tiny_models, tmp_path: Path
) -> None:
    """Carried frames are put into their source frame outside its mask, as diffused masked
    frames are: the source to the bit there, the carried look inside."""
    mask = np.zeros((64, 64), np.uint8)
    mask[:, :32] = 255
    Image.fromarray(mask).save(tmp_path / "left.png")
    run_dir = run(tmp_path, f"input.path={pan}", *common(tiny_models), "cadence.every=4",
                  f"mask.path={tmp_path / 'left.png'}", "name=masked")  # fmt: skip
    rows = read_plan(RunFolder(run_dir))
    assert [row.index for row in rows if row.diffused] == [0, 4, 8]
    sources = [np.asarray(Image.open(pan / f"{index:03d}.png")) for index in range(12)]
    for index, (frame, source) in enumerate(zip(frames_of(run_dir), sources, strict=True)):
        # past mask.overlay_blur's feather (4 px) around the mask's edge
        assert np.array_equal(frame[:, 36:], source[:, 36:]), f"frame {index} outside"
        change = np.abs(frame[:, :28].astype(int) - source[:, :28]).mean()
        assert change > 5, f"frame {index} inside barely changed ({change:.1f})"


def test_an_imported_deforum_cadence_is_rendered_as_deforums(tiny_models, tmp_path: Path) -> None:
    """A Deforum 2D settings file with diffusion_cadence 3 and optical flow cadence, given
    as the keyframe file: frames 0 and 3 diffused, the tweens morphed by DIS at the
    file's flow factor."""
    data = Path(__file__).parents[1] / "data/deforum/a1111_2024_settings.txt"
    settings = json.loads(data.read_text())
    settings.update(diffusion_cadence="3", optical_flow_cadence="DIS Medium",
                    cadence_flow_factor_schedule="0: (0.5)", prompts={"0": "a forest"},
                    animation_prompts_positive="", animation_prompts_negative="")  # fmt: skip
    path = tmp_path / "cadence_settings.txt"
    path.write_text(json.dumps(settings))
    still = tmp_path / "still.png"
    Image.fromarray(pan_clip(frames=1, width=64, height=64).frames[0]).save(still)
    result = rotoscope(
        f"input.path={still}", f"keyframes={path}", f"model.path={tiny_models.sd15}",
        "runtime=cpu", "input.max_frames=6", "input.width=64", "input.height=64",
        "output=images", "name=imported", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert 'optical_flow_cadence="DIS Medium" moves' in result.stderr  # a little unlike Deforum
    run_dir = tmp_path / "outputs/imported"
    rows = read_plan(RunFolder(run_dir))
    assert [row.index for row in rows if row.diffused] == [0, 3]
    assert [row.cadence_flow_factor for row in rows] == [None] * 3 + [0.5] * 3
    assert "Deforum's cadence every 3, flow dis_medium: 2 of 6 frames diffused" in result.stderr
    assert len(list((run_dir / "cadence").glob("diffused-*.png"))) == 1  # frame 3's
    assert report_of(run_dir)["rendered"] == 6


def test_adaptive_keyframes_follow_the_motion(tiny_models, tmp_path: Path) -> None:
    """cadence.max_motion diffuses an extra frame where the source moved too far since the
    last diffused frame: a fast pan gets more diffused frames than every 8th, and the plan
    writes nothing but its preview."""
    clip = write_folder(pan_clip(frames=9, width=64, height=64, velocity=(3.0, 0.0)).frames,
                        tmp_path / "fast")  # fmt: skip
    run_dir = run(tmp_path, f"input.path={clip}", *common(tiny_models), "cadence.every=8",
                  "cadence.max_motion=0.1", "stages=[plan]", "name=adaptive")  # fmt: skip
    diffused = [row.index for row in read_plan(RunFolder(run_dir).preview) if row.diffused]
    # 3 px a frame is 0.047 of the width: past 0.1 on the third frame after a diffused one
    assert diffused == [0, 3, 6, 8]
    assert not (run_dir / "flow").exists()  # measured aside: a plan writes no cache


def test_a_loopback_cadence_with_hybrid_video_is_one_line(
    pan: Path, tiny_models, tmp_path: Path
) -> None:
    """Deforum's tweens would not follow the hybrid video: refused before anything runs."""
    result = rotoscope(
        f"input.path={pan}", *common(tiny_models), "animation=loopback", "cadence.every=3",
        "animation.hybrid.motion=optical_flow", "name=hybrid", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error) == 1 and "cadence.every=3 with animation.hybrid" in error[0]
    assert not (tmp_path / "outputs/hybrid/frames").exists()


def test_controlnet_guides_a_loopback_cadences_diffused_frames(
    tiny_models, tiny_controlnets, tmp_path: Path
) -> None:
    """Cadence 2 in loopback with a canny unit: the diffused frames are made with the maps
    of their img2img input, so a weight that drops to 0 at frame 2 changes what frame 2
    diffused and nothing before it."""
    still = tmp_path / "still.png"
    Image.fromarray(pan_clip(frames=1, width=64, height=64).frames[0]).save(still)
    unit = "+controlnet.units.edges"
    args = [f"input.path={still}", "input.repeat=3", *common(tiny_models), "animation=loopback",
            "animation.translation_x=2", "cadence.every=2", f"{unit}.model={tiny_controlnets.sd15}",
            f"{unit}.preprocessor=canny"]  # fmt: skip

    def kept_diffused(run_dir: Path) -> np.ndarray:
        line = next(line for line in manifest_lines(run_dir) if line["index"] == 2)
        match = re.search(r"newer=([0-9a-f]{64})", line["dependencies"])
        assert match is not None
        return np.asarray(Image.open(RunFolder(run_dir).cadence_diffused(match.group(1))))

    full = run(tmp_path, *args, f"{unit}.weight=1", "name=full")
    off = run(tmp_path, *args, f"{unit}.weight=0:(1), 2:(0)", "name=off")
    assert RunFolder(full).control_map("edges", 2).is_file()
    before, before_off = frames_of(full)[:2], frames_of(off)[:2]
    assert all(np.array_equal(a, b) for a, b in zip(before, before_off, strict=True))
    assert not np.array_equal(kept_diffused(full), kept_diffused(off))
