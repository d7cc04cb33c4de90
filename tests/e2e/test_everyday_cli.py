"""A newcomer's day (issue 17): iterate on a clip, batch photos, queue a sweep, Ctrl-C,
restore a kept look; every refused command changes nothing, every output says what
made it, and no message misleads."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.cli import log_of, rotoscope, start_forked, wait_for_log
from support.cli_runner import ROOT, cli_env
from support.media import half_transparent, identity_image, make_video, write_image
from support.run_files import frames_of, manifest_lines, preview_plan, queue_of, report_of

RECORDS = ("report.json", "config.yaml", "plan.jsonl", "plan.csv", "source.json", "run.json")


def one_error(result) -> str:
    """A user error: exit 2, one ``error:`` line, no traceback, no closing report line."""
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "failed:" not in result.stderr and "kept history" not in result.stderr
    return errors[0]


def history(*args: str, cwd: Path):
    import subprocess
    import sys

    command = [sys.executable, "-m", "pipeline.cli.history", *args]
    env = {**cli_env(cwd), "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=3, fps=8)


@pytest.fixture
def base(tiny_models, clip: Path) -> tuple[str, ...]:
    return (f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=2")


@pytest.fixture(scope="module")
def rendered(tiny_models, clip: Path, tmp_path_factory: pytest.TempPathFactory):
    """One finished render of the clip, whose records the refused commands must keep."""
    work = tmp_path_factory.mktemp("rendered")
    args = (f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=2",
            "prompt=a cat")  # fmt: skip
    result = rotoscope(*args, cwd=work)
    assert result.returncode == 0, result.stderr
    return work, args


def records_of(run_dir: Path) -> dict[str, bytes]:
    return {name: (run_dir / name).read_bytes() for name in RECORDS}


def test_a_refused_command_a_preview_and_a_stage_alone_keep_the_renders_record(
    rendered, tmp_path: Path
) -> None:
    work, args = rendered
    run_dir = work / "outputs/clip"
    before = records_of(run_dir)
    refused = {
        "strength=2": "strength at frame 0: 2 is outside 0..1",
        "steps=1000000": "1000000 steps is more than the model's 1000 noise levels",
        "strength=0:(0.5), 2:(1.5)": "strength at frame 2: 1.5 is outside 0..1",
        "render.batch_size=0": "render.batch_size=0 must be at least 1",
        "stages=[plan,assemble]": "plans without rendering",
    }
    for override, needle in refused.items():
        assert needle in one_error(rotoscope(*args, override, cwd=work))
    assert records_of(run_dir) == before
    assert "command: rotoscope" in log_of(run_dir) and "strength=2" in log_of(run_dir)
    # a preview of another prompt goes to preview/, apart from the render's records
    preview = rotoscope(*args, "prompt=a dog,\nink", "stages=[plan]", cwd=work)
    assert preview.returncode == 0, preview.stderr
    assert preview_plan(run_dir)[0]["prompt"] == "a dog, ink"  # a line break reads as a space
    assert (run_dir / "preview/plan.png").is_file() and records_of(run_dir) == before
    assert "done: plan;" in preview.stderr and "kept history" not in preview.stderr
    # a stage alone works on the last render's plan: the same command line re-encodes...
    again = rotoscope(*args, "stages=[assemble]", "output=webm", cwd=work)
    assert again.returncode == 0, again.stderr
    assert (run_dir / "clip.webm").is_file() and records_of(run_dir) == before
    # ... and one that plans other frames is told so, instead of "no rendered frames"
    other = one_error(rotoscope(*args, "prompt=a dog", "stages=[assemble]", cwd=work))
    assert "last render's plan" in other and "frame 0: prompt 'a dog' here, 'a cat' there" in other
    jobs = [json.loads(line) for line in (run_dir / "jobs.jsonl").read_text().splitlines()]
    assert [job["stages"] for job in jobs] == [
        ["plan", "render", "upscale", "assemble", "metrics"], ["plan"], ["assemble"],
    ]  # fmt: skip


def test_run_folder_names_are_one_name_and_never_taken_over(rendered, tmp_path: Path) -> None:
    work, args = rendered
    other = make_video(tmp_path / "other.mp4", frames=2, fps=8)
    for name in ("../escape", "a/b"):
        assert "is not a folder name" in one_error(rotoscope(*args, f"name={name}", cwd=work))
    line = one_error(rotoscope(f"input.path={other}", *args[1:], "name=clip", cwd=work))
    assert "holds the run of" in line and "would render" in line
    assert not (work / "escape").exists() and not (work / "outputs/a").exists()


def test_several_outputs_provenance_history_and_restoring_a_look(base, tmp_path: Path) -> None:
    run_dir = tmp_path / "outputs/clip"
    both = rotoscope(*base, "prompt=a cat", "output=[mp4,images]", cwd=tmp_path)
    assert both.returncode == 0, both.stderr
    assert " s loading), " in both.stderr  # the render line says the model load apart
    assert (run_dir / "clip.mp4").is_file() and len(list((run_dir / "images").iterdir())) == 3
    sidecar = json.loads((run_dir / "clip.mp4.json").read_text())
    assert (
        sidecar["command"].startswith("rotoscope ") and "output=[mp4,images]" in sidecar["command"]
    )
    assert sidecar["config"]["prompt"] == "a cat" and sidecar["prompts"] == ["a cat"]
    keys = [frame["key"] for frame in sidecar["frames"]]
    assert keys == [line["key"] for line in manifest_lines(run_dir)]
    assert json.loads((run_dir / "images.json").read_text())["look"] == sidecar["look"]
    dog = rotoscope(*base, "prompt=a dog", cwd=tmp_path)
    assert dog.returncode == 0, dog.stderr
    assert not (run_dir / "images").exists()  # not an output of this render: in history
    kept = sorted(path.name for path in (run_dir / "history").iterdir())
    assert len(kept) == 4 and sum(name.endswith(".json") for name in kept) == 2
    listed = history(str(run_dir), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 2 and "a dog" in lines[0] and "(current)" in lines[0]
    assert lines[1].startswith(sidecar["look"]) and "a cat" in lines[1] and "kept" in lines[1]
    restored = history(str(run_dir), "restore", sidecar["look"], cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert "loading model" not in restored.stderr  # its frames are kept: nothing renders
    log = (run_dir / "rotoscope.log").read_text(encoding="utf-8")
    assert f"command: rotoscope-history {run_dir} restore {sidecar['look']}" in log
    current = {line["index"]: line["key"] for line in manifest_lines(run_dir)}
    assert [current[index] for index in range(3)] == keys
    assert "prompt: a cat" in (run_dir / "config.yaml").read_text()
    assert (run_dir / "images").is_dir() and (run_dir / "clip.mp4").is_file()
    back = rotoscope(*base, "prompt=a cat", "output=[mp4,images]", cwd=tmp_path)
    assert "0 rendered; 3 reused" in back.stderr, back.stderr


def test_a_photo_batch_is_keyed_by_file(base, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for number, name in enumerate(("b.png", "c.png", "d.jpg")):
        write_image(photos / name, identity_image(number + 1))
    write_image(photos / "e_cut.png", half_transparent((64, 48), (200, 40, 40)))
    args = (f"input.path={photos}", *base[1:], "output=images")
    first = rotoscope(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "fps" not in first.stderr and "warp error" not in first.stderr  # unrelated photos
    out = tmp_path / "outputs/photos/images"
    assert sorted(path.name for path in out.iterdir()) == ["b.png", "c.png", "d.png", "e_cut.png"]
    cut = np.asarray(Image.open(out / "e_cut.png"))
    assert cut.shape[2] == 4 and cut[:, :32, 3].max() == 0 and cut[:, 32:, 3].min() == 255
    write_image(photos / "a_first.png", identity_image(9))  # sorts first
    added = rotoscope(*args, cwd=tmp_path)
    assert "1 rendered (1 new); 4 reused" in added.stderr, added.stderr  # not 4 re-rendered
    (photos / "c.png").rename(photos / "c2.png")
    write_image(photos / "b.png", identity_image(12))
    changed = rotoscope(*args, cwd=tmp_path)
    assert "2 rendered (1 input changed, 1 new); 3 reused" in changed.stderr, changed.stderr
    kept = [entry for entry in (tmp_path / "outputs/photos/history").iterdir() if entry.is_dir()]
    assert len(kept) == 1 and sorted(p.name for p in kept[0].iterdir()) == ["b.png", "c.png"]


def test_a_queue_is_named_by_what_differs_and_loads_its_model_once(
    base, tiny_models, tmp_path: Path
) -> None:
    sweep = ("-m", *base, "input.max_frames=2", "guidance_scale=5,7", "stages=[plan,render]")
    first = rotoscope(*sweep, 'prompt="a cat, oil","a dog"', cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("loading model") == 1  # four jobs, one model load
    jobs = queue_of(tmp_path / "outputs")
    names = sorted(Path(job["run_dir"]).name for job in jobs)
    assert names == [
        "clip--guidance_scale=5,prompt=a_cat,_oil", "clip--guidance_scale=5,prompt=a_dog",
        "clip--guidance_scale=7,prompt=a_cat,_oil", "clip--guidance_scale=7,prompt=a_dog",
    ]  # fmt: skip
    assert sorted(path.name for path in (tmp_path / "outputs").iterdir()) == [*names, "queues"]
    # the same queue with another shared value: the same folders, their frames re-rendered
    second = rotoscope(*sweep, 'prompt="a cat, oil","a dog"', "strength=0.6", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stderr.count("2 rendered (2 changed strength)") == 4
    queues = sorted((tmp_path / "outputs/queues").iterdir())
    assert len(queues) == 2 and all((q / "queue.json").is_file() for q in queues)
    # a job in a queue (the model kept from the job before) makes a lone run's frames
    alone = rotoscope(*base, "input.max_frames=2", "guidance_scale=7", "prompt=a dog",
                      "strength=0.6", "name=alone", "stages=[plan,render]",
                      cwd=tmp_path)  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    queued = frames_of(tmp_path / "outputs/clip--guidance_scale=7,prompt=a_dog")
    assert all(
        np.array_equal(a, b)
        for a, b in zip(frames_of(tmp_path / "outputs/alone"), queued, strict=True)
    )
    assert "only with -m" in one_error(rotoscope(*base, 'prompt="a cat","a dog"', cwd=tmp_path))


def test_ctrl_c_stops_every_stage_and_a_second_one_stops_at_once(base, tmp_path: Path) -> None:
    run_dir = tmp_path / "outputs/clip"
    for stage in ("assemble", "metrics"):
        proc = start_forked(*base, cwd=tmp_path, env={"ROTOSCOPE_PAUSE_AT": f"{stage}:2"})
        wait_for_log(run_dir, f"paused at {stage} safe point 2", proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate()
        assert proc.returncode == 130 and "Traceback" not in stderr, stderr
        assert "Resume with:" in stderr and report_of(run_dir)["status"] == "interrupted"
        if stage == "assemble":  # the video half-written was never published
            assert not (run_dir / "clip.mp4").exists()
    proc = start_forked(*base, "name=twice", cwd=tmp_path,
                        env={"ROTOSCOPE_PAUSE_AT": "render:2:hold"})  # fmt: skip
    twice = tmp_path / "outputs/twice"
    wait_for_log(twice, "paused at render safe point 2", proc)
    proc.send_signal(signal.SIGINT)
    wait_for_log(twice, "stop requested by SIGINT", proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate()
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.count("stopped now (second Ctrl-C)") == 1 and "Resume with:" in stderr
    assert report_of(twice)["status"] == "interrupted"
    resumed = rotoscope(*base, "name=twice", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    report = report_of(twice)  # the frames finished before the second Ctrl-C are kept
    assert report["reused"] >= 1 and report["reused"] + report["rendered"] == 3
    plan = start_forked(*base, "name=planning", "stages=[plan]", cwd=tmp_path,
                        env={"ROTOSCOPE_PAUSE_AT": "plan:2"})  # fmt: skip
    wait_for_log(tmp_path / "outputs/planning", "paused at plan safe point 2", plan)
    plan.send_signal(signal.SIGINT)
    _, stderr = plan.communicate()
    assert plan.returncode == 130 and "interrupted before the job wrote anything" in stderr
    assert "Run it again with: rotoscope " in stderr and "name=planning" in stderr
    assert "Traceback" not in stderr and not (tmp_path / "outputs/planning").exists()


def test_first_contact(clip: Path, tmp_path: Path) -> None:
    version = rotoscope("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("rotoscope ")
    line = one_error(rotoscope(str(clip), cwd=tmp_path))
    assert f"give the input as input.path={clip}" in line
    assert "did you mean 'iter'?" in one_error(
        rotoscope(f"input.path={clip}", "seed_behavior=iterr", cwd=tmp_path)
    )
    keyframes = tmp_path / "anim.yaml"
    keyframes.write_text(
        "prompts:\n  0: |\n    winter forest,\n    snow\nschedules:\n  strenght: '0.4'\n"
    )
    line = one_error(rotoscope(f"input.path={clip}", f"keyframes={keyframes}", cwd=tmp_path))
    assert "unknown schedule 'schedules.strenght'" in line and "did you mean 'strength'?" in line
    keyframes.write_text("prompts:\n  0: |\n    winter forest,\n    snow\n  2: spring\n")
    shown = rotoscope(f"input.path={clip}", f"keyframes={keyframes}", "--cfg", "job", cwd=tmp_path)
    assert shown.returncode == 0 and "'2': spring" in shown.stdout, shown.stderr  # the file's
    replaced = rotoscope(f"input.path={clip}", f"keyframes={keyframes}", "prompt=a cat",
                         "stages=[plan]", cwd=tmp_path)  # fmt: skip
    assert "replaces the 2 prompt keyframe(s)" in replaced.stderr
    (tmp_path / "styles.csv").write_text("name,prompt,negative_prompt\nink,{prompt} ink,\n")
    styled = rotoscope(f"input.path={clip}", "prompt=a cat", "styles=ink", "stages=[plan]",
                       "name=styled", cwd=tmp_path)  # fmt: skip
    assert styled.returncode == 0, styled.stderr
    assert preview_plan(tmp_path / "outputs/styled")[0]["prompt"] == "a cat ink"
    unit = ("controlnet=tiny_canny", "controlnet.units.tiny_canny.source=nope.mp4")
    line = one_error(rotoscope(f"input.path={clip}", *unit, cwd=tmp_path))
    assert "controlnet.units.tiny_canny.source 'nope.mp4' does not exist" in line
