"""Plan rows, frame metadata, the manifest and progress reporting (no model needed)."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from support.configs import make_cfg
from support.media import make_video

from pipeline.errors import RotoscopeError
from pipeline.plan.build import build_plan
from pipeline.plan.rows import PlanRow, read_plan, write_plan
from pipeline.records.manifest import (
    FrameRecord,
    Manifest,
    frame_key,
    image_digest,
    rerender_reason,
)
from pipeline.records.progress import Progress
from pipeline.records.report import JobReport
from pipeline.records.run_folder import RunFolder
from pipeline.render.pngmeta import a1111_parameters, read_png_metadata, write_png


def plan_row(**changes: object) -> PlanRow:
    base = dict(
        index=0, prompt="a cat, (oil:1.2)", negative_prompt="blurry", strength=0.45,
        guidance_scale=7.0, steps=20, sampler="DPM++ 2M Karras", seed=42, width=64, height=48,
    )  # fmt: skip
    base.update(changes)
    return PlanRow(**base)  # type: ignore[arg-type]


def test_plan_rows_round_trip(tmp_path: Path) -> None:
    plan = build_plan(make_cfg(sampler="dpmpp_2m_karras", prompt="x"), 5, 64, 48, 12.0)
    rows = plan.rows
    assert [r.index for r in rows] == [0, 1, 2, 3, 4]
    assert rows[0].sampler == "DPM++ 2M Karras"
    write_plan(plan.rows, RunFolder(tmp_path))
    assert read_plan(RunFolder(tmp_path)) == rows
    csv_lines = (tmp_path / "plan.csv").read_text().splitlines()
    assert len(csv_lines) == 6 and csv_lines[0].startswith("index,")


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"strength": "1.5"}, "strength at frame 0: 1.5 is outside 0..1"),
        ({"strength": "0:(0.5), 2:(1.5)"}, "strength at frame 2: 1.5 is outside"),
        ({"steps": "0"}, "steps at frame 0: 0 steps"),
        ({"steps": "60", "sampler": "LCM"}, "LCM runs at most 50 steps"),
        ({"steps": "1", "strength": "0.01", "sampler": "LCM"}, "needs 100"),
        ({"clip_skip": 0}, "clip_skip at frame 0: 0 is below 1"),
        ({"guidance_scale": "-1"}, "guidance_scale at frame 0"),
        ({"seed": -5}, "seed=-5"),
        ({"sampler": "Eulr a"}, "Eulr a"),
        ({"strength": "0:(0.5"}, "strength"),
    ],
)
def test_plan_rejects_bad_values(values: dict[str, object], needle: str) -> None:
    with pytest.raises(RotoscopeError) as info:
        build_plan(make_cfg(**values), 3, 64, 48, 12.0)
    assert needle in str(info.value)


def test_missing_plan_names_the_stage(tmp_path: Path) -> None:
    with pytest.raises(RotoscopeError, match="plan stage"):
        read_plan(RunFolder(tmp_path))


def test_a1111_parameters_layout() -> None:
    text = a1111_parameters(plan_row(), "tiny-sd15", "abcdef1234")
    assert text.splitlines() == [
        "a cat, (oil:1.2)",
        "Negative prompt: blurry",
        "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 42, Size: 64x48, "
        "Model hash: abcdef1234, Model: tiny-sd15, Denoising strength: 0.45",
    ]
    assert "Negative prompt" not in a1111_parameters(plan_row(negative_prompt=""), "m", None)
    assert 'Model: "a, b"' in a1111_parameters(plan_row(), "a, b", None)


def test_png_keeps_both_chunks_and_pixels(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    path = tmp_path / "frames" / "000000.png"
    write_png(path, image, "params", {"plan": {"seed": 1}})
    meta = read_png_metadata(path)
    assert meta == {"parameters": "params", "rotoscope": {"plan": {"seed": 1}}}
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(path)), image)
    assert [p.name for p in path.parent.iterdir()] == ["000000.png"]  # no temp left


def test_frame_key_changes_with_each_input() -> None:
    image = np.zeros((48, 64, 3), np.uint8)
    digest = image_digest(image)
    base = frame_key(plan_row(), digest, "model-a")
    assert base == frame_key(plan_row(), image_digest(image.copy()), "model-a")
    other = image.copy()
    other[0, 0, 0] = 1
    keys = {
        base,
        frame_key(plan_row(seed=43), digest, "model-a"),
        frame_key(plan_row(), digest, "model-b"),
        frame_key(plan_row(), image_digest(other), "model-a"),
    }
    assert len(keys) == 4


def test_rerender_reasons_name_what_changed() -> None:
    digest = image_digest(np.zeros((4, 4, 3), np.uint8))
    old = FrameRecord(0, "f", frame_key(plan_row(), digest, "m"), 0, None, 0.0,
                      row=plan_row().as_record(), input=digest, model="m")  # fmt: skip
    assert rerender_reason(None, plan_row(), digest, "m") == "new"
    assert rerender_reason(old, plan_row(), digest, "m") == "file missing"
    assert rerender_reason(old, plan_row(prompt="a dog"), digest, "m") == "changed prompt"
    assert rerender_reason(old, plan_row(), digest, "m2") == "model changed"
    assert rerender_reason(old, plan_row(), "other", "m") == "input changed"
    # a mask joins the key only when there is one; a new mask digest is named
    assert frame_key(plan_row(), digest, "m", mask="d1|method") not in (
        old.key, frame_key(plan_row(), digest, "m", mask="d2|method"),
    )  # fmt: skip
    key = frame_key(plan_row(), digest, "m", mask="d1|method")
    masked = FrameRecord(0, "f", key, 0, None, 0.0, row=plan_row().as_record(), input=digest,
                         model="m", mask="d1")  # fmt: skip
    assert rerender_reason(masked, plan_row(), digest, "m", mask="d2|method") == "mask changed"


def test_manifest_reuses_only_matching_existing_frames(tmp_path: Path) -> None:
    manifest = Manifest(RunFolder(tmp_path))
    (tmp_path / "frames").mkdir()
    for index in range(3):
        key = f"k{index}"
        (tmp_path / RunFolder.frame_name(key)).write_bytes(b"png")
        row = plan_row(index=index).as_record()
        manifest.add(FrameRecord(index, RunFolder.frame_name(key), key, index, None, 0.0, row))
    (tmp_path / RunFolder.frame_name("k2")).unlink()
    reloaded = Manifest(RunFolder(tmp_path))
    assert reloaded.find(0, "k0") is not None
    assert reloaded.find(1, "other") is None
    assert reloaded.find(2, "k2") is None  # file gone
    rows = [plan_row(index=index) for index in range(3)]
    assert [r.index for r in reloaded.finished(rows)[0]] == [0, 1]
    # a frame made for another row (an earlier look) is not a frame of this plan
    finished, outdated = reloaded.finished([plan_row(index=0, prompt="other"), *rows[1:]])
    assert [r.index for r in finished] == [1] and outdated == [0]


def test_manifest_survives_a_torn_last_line(tmp_path: Path) -> None:
    manifest = Manifest(RunFolder(tmp_path))
    (tmp_path / "frames").mkdir()
    (tmp_path / RunFolder.frame_name("k0")).write_bytes(b"png")
    (tmp_path / RunFolder.frame_name("k1")).write_bytes(b"png")
    manifest.add(FrameRecord(0, RunFolder.frame_name("k0"), "k0", 0, None, 0.0))
    with (tmp_path / "manifest.jsonl").open("a") as fh:
        fh.write('{"index": 5, "fi')  # killed mid-write
    recovered = Manifest(RunFolder(tmp_path))
    recovered.add(FrameRecord(1, RunFolder.frame_name("k1"), "k1", 1, None, 0.0))
    assert sorted(Manifest(RunFolder(tmp_path)).records) == [0, 1]
    last = (tmp_path / "manifest.jsonl").read_text().splitlines()[-1]
    assert json.loads(last)["index"] == 1


def test_progress_logs_rate_and_eta_when_not_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    ticks = iter([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    stream = io.StringIO()
    progress = Progress(4, log_every=0.0, stream=stream, clock=lambda: next(ticks))
    with caplog.at_level("INFO", logger="rotoscope"):
        progress.advance(reused=True)
        progress.advance()
        progress.advance()
    assert stream.getvalue() == ""  # nothing drawn: not a terminal
    last = caplog.records[-1].getMessage()
    assert "render 3/4 frames (75%, 1 reused)" in last
    assert "0.67 frames/s" in last and "ETA 0:00:02" in last


def test_progress_without_rendered_frames_promises_no_rate() -> None:
    ticks = iter([0.0, 3.0, 3.0])
    progress = Progress(2, log_every=100.0, stream=io.StringIO(), clock=lambda: next(ticks))
    progress.advance(reused=True)
    assert progress.line(3.0) == "render 1/2 frames (50%, 1 reused), elapsed 0:00:03"


def test_a_plain_rows_key_is_unchanged_by_the_later_row_fields() -> None:
    """Rows that use no LoRA, embedding or CLIP skip hash exactly as before those fields
    existed, so upgrading never re-renders finished frames (the key was computed by the
    previous release for this row)."""
    row = PlanRow(
        index=3, prompt="winter forest, (snow:1.2)", negative_prompt="blurry", strength=0.5,
        guidance_scale=7.0, steps=20, sampler="Euler a", seed=42, width=64, height=48,
        prompt_to="spring", negative_prompt_to="", blend=0.25,
    )  # fmt: skip
    expected = "169b8fd1a2c27b5ef29268416d3386bfe4b992732e6edb565c14a721ec72ae96"
    assert frame_key(row, "digest", "identity", "") == expected
    with_lora = PlanRow(**{**asdict(row), "loras": {"ink": 0.5}})
    assert frame_key(with_lora, "digest", "identity", "") != expected


def test_a1111_parameters_with_clip_skip_and_network_hashes() -> None:
    text = a1111_parameters(
        plan_row(prompt="a cat <lora:ink:0.8>", clip_skip=2, loras={"ink": 0.8}),
        "m", None, None, [("Lora hashes", "ink: 0123456789ab"), ("TI hashes", "bad: ba5e")],
    )  # fmt: skip
    assert text.splitlines()[0] == "a cat <lora:ink:0.8>"  # tags stay, as A1111 shows them
    assert text.splitlines()[-1].endswith(
        'Denoising strength: 0.45, Clip skip: 2, Lora hashes: "ink: 0123456789ab", '
        'TI hashes: "bad: ba5e"'
    )


def test_model_load_is_not_frame_time_in_rate_eta_or_report() -> None:
    ticks = iter([0.0, 101.0])
    progress = Progress(10, log_every=100.0, stream=io.StringIO(), clock=lambda: next(ticks))
    progress.exclude(100.0)  # the model took 100 s to load before the first frame
    progress.advance()
    assert "1.00 frames/s" in progress.line(101.0) and "ETA 0:00:09" in progress.line(101.0)
    report = JobReport("run")
    report.count_render(0, "new")
    report.count_render(1, "new")
    report.render_seconds = 3.0  # rendering alone; the job took 103 s with the load
    report.finish(103.0)
    assert report.seconds_per_frame == 1.5 and report.seconds == 103.0


def test_time_spent_excluding_is_left_out_even_when_the_block_fails() -> None:
    ticks = iter([0.0, 10.0, 14.0, 20.0, 27.0])
    progress = Progress(10, log_every=100.0, stream=io.StringIO(), clock=lambda: next(ticks))
    with progress.excluding():  # 10 -> 14: starting Ray, say
        pass
    with pytest.raises(RuntimeError), progress.excluding():  # 20 -> 27, then an error
        raise RuntimeError("stop")
    assert progress.excluded == 11.0


def test_one_frame_is_singular_and_repeated_frames_are_not_called_skipped() -> None:
    progress = Progress(1, log_every=100.0, stream=io.StringIO(), clock=lambda: 0.0)
    assert progress.line(0.0).startswith("render 0/1 frame (0%)")
    report = JobReport("run", repeated=1, skipped=0)
    report.finish(1.0)
    assert "1 repeated (bad input)" in report.line() and "skipped" not in report.line()


def test_the_closing_line_says_where_history_is_and_what_it_costs() -> None:
    report = JobReport("/out/clip", previous_outputs=["/out/clip/history/clip-1.mp4"])
    report.history_bytes = 3 * 2**20
    report.finish(1.0)
    line = report.line()
    assert "previous output kept as history/clip-1.mp4" in line
    assert "kept history 3.0 MiB (rotoscope-prune frees it)" in line


def test_a_permission_error_inside_a_job_is_one_line_in_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.config.compose import compose_checked
    from pipeline.run import job as run_module

    def denied(path: Path, text: str, durable: bool = True) -> Path:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(run_module, "write_text", denied)
    run_dir = tmp_path / "clip"
    run_dir.mkdir()
    (run_dir / "plan.jsonl").write_text("")  # an earlier run's: the folder is kept
    clip = make_video(tmp_path / "clip.mp4", frames=2, fps=8)
    cfg = compose_checked([f"input.path={clip}", "stages=[plan]"])
    with pytest.raises(RotoscopeError, match=r"cannot write .*config\.yaml: Permission denied"):
        run_module.run_job(cfg, run_dir)
    report = json.loads((run_dir / "preview/report.json").read_text())  # a preview's
    assert report["status"] == "failed" and "Permission denied" in report["error"]


def test_a_job_that_fails_before_making_anything_leaves_no_folder(tmp_path: Path) -> None:
    from pipeline.config.compose import compose_checked
    from pipeline.run.job import run_job

    cfg = compose_checked([f"input.path={tmp_path / 'missing.mp4'}", "stages=[plan]"])
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "rotoscope.log").write_text("")  # what Hydra makes before the job starts
    with pytest.raises(RotoscopeError, match="does not exist"):
        run_job(cfg, fresh)
    assert not fresh.exists()
    used = tmp_path / "used"
    used.mkdir()
    (used / "plan.jsonl").write_text("")
    with pytest.raises(RotoscopeError, match="does not exist"):
        run_job(cfg, used)
    # an earlier run's folder is kept as it was: a refused command writes nothing (the
    # lock it held while it checked the command is no record)
    assert {p.name for p in used.iterdir()} - {".lock"} == {"plan.jsonl"}


def test_a_photo_is_keyed_by_its_file_wherever_it_sorts_and_a_video_frame_by_its_place(
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    photo = replace(plan_row(), source_file="b.png")
    assert frame_key(photo, "pixels", "m") == frame_key(replace(photo, index=3), "pixels", "m")
    assert frame_key(photo, "pixels", "m") != frame_key(
        replace(photo, source_file="c.png"), "pixels", "m"
    )  # a renamed photo is another picture
    assert frame_key(plan_row(), "pixels", "m") != frame_key(
        replace(plan_row(), index=3), "pixels", "m"
    )
    assert "source_file" not in plan_row().to_json()  # video keys are those of before
    folder = RunFolder(tmp_path)
    key = frame_key(photo, "pixels", "m")
    folder.frame(key).parent.mkdir(parents=True)
    folder.frame(key).write_bytes(b"png")
    record = FrameRecord(0, RunFolder.frame_name(key), key, 0, "b.png", 0.0, photo.as_record())
    Manifest(folder).add(record)
    manifest = Manifest(folder)
    assert manifest.find(1, key) == (record, True)  # found at its old place: moved by the caller
    assert manifest.by_file["b.png"] == record
    moved = replace(photo, index=1)
    assert rerender_reason(record, replace(moved, seed=9), "pixels", "m") == "changed seed"


def test_ctrl_c_is_a_flag_during_a_job_and_a_second_one_ends_the_process_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import signal

    from pipeline.records import interrupts

    stop = interrupts.GracefulStop()  # not installed: the handler is called by hand
    with pytest.raises(KeyboardInterrupt):  # no job yet: nothing to finish, stop at once
        stop._handle(signal.SIGINT, None)
    exits: list[int] = []
    monkeypatch.setattr(interrupts.os, "_exit", exits.append)
    with stop.job(lambda: "rotoscope: report written"):
        stop._handle(signal.SIGTERM, None)  # a flag, checked at the next safe point
        with pytest.raises(interrupts.StopRequested) as raised:
            stop.safe_point("render")
        assert raised.value.exit_code == 128 + signal.SIGTERM
        stop._handle(signal.SIGINT, None)  # the second one: the job's last words, exit
    assert exits == [130]
    err = capfd.readouterr().err
    assert "press Ctrl-C again to stop now" in err and err.strip().endswith("report written")
