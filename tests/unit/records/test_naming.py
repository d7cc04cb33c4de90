"""Run folder names: readable, never shared by two inputs or two multirun jobs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from pipeline.errors import RotoscopeError
from pipeline.records.naming import (
    MAX_NAME,
    RunOwner,
    bounded,
    check_name,
    check_owner,
    check_writable,
    choose_folder,
    folder_names,
    folder_neutral_keys,
    job_part,
    owner_of,
    queue_folder,
    short_hash,
)
from pipeline.records.run_folder import RunFolder

LONG_A = "prompt='masterpiece, best quality, highly detailed watercolor painting of a misty " \
    "mountain village at dawn'"  # fmt: skip
LONG_B = LONG_A.replace("at dawn", "at night")


def test_long_override_sets_keep_a_readable_prefix_and_never_share_a_folder() -> None:
    a, b = job_part(LONG_A), job_part(LONG_B)
    assert a != b
    assert a.startswith("prompt=masterpiece") and len(a) <= MAX_NAME // 2
    assert job_part("guidance_scale=5") == "guidance_scale=5"  # short sets stay as they are


def test_long_names_are_bounded_with_a_hash() -> None:
    long = "y" * 251
    assert len(bounded(long)) <= MAX_NAME and bounded(long) != bounded(long[:-1] + "z")
    assert bounded("dance") == "dance"


def make_input(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"clip")
    return path


def claim(root: Path, folder: str, source: Path, job: str = "") -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    owner_of(str(source), job).write(RunFolder(root / folder))


def test_a_different_input_with_the_same_name_gets_its_own_folder(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    a = make_input(tmp_path / "shotA/take01.mp4")
    b = make_input(tmp_path / "shotB/take01.mp4")
    c = make_input(tmp_path / "other/shotB/take01.mp4")
    assert choose_folder(root, "take01", str(a)) == root / "take01"
    claim(root, "take01", a)
    assert choose_folder(root, "take01", str(a)) == root / "take01"  # its own folder again
    assert choose_folder(root, "take01", str(b)) == root / "take01-shotB"
    claim(root, "take01-shotB", b)
    third = choose_folder(root, "take01", str(c))  # the parent name is taken too: a hash
    assert third.name.startswith("take01-") and third.name not in ("take01", "take01-shotB")
    # a name given with name= is used as given
    assert choose_folder(root, "take01", str(b), explicit=True) == root / "take01"


def test_multirun_jobs_are_told_apart_by_input_and_overrides(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    a = make_input(tmp_path / "shotA/take01.mp4")
    b = make_input(tmp_path / "shotB/take01.mp4")
    first = choose_folder(root, "take01", str(a), "guidance_scale=5")
    assert first == root / "take01--guidance_scale=5"
    claim(root, first.name, a, "guidance_scale=5")
    assert choose_folder(root, "take01", str(b), "guidance_scale=5").name == (
        "take01-shotB--guidance_scale=5"
    )
    # two override sets that sanitize to the same text: the folder records its own
    claim(root, "take01--prompt=a_cat", a, "prompt='a cat!'")
    other = choose_folder(root, "take01", str(a), "prompt='a cat?'")
    assert other != root / "take01--prompt=a_cat"


def test_a_folder_from_before_run_json_is_reused(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    (root / "take01").mkdir(parents=True)
    source = make_input(tmp_path / "shotA/take01.mp4")
    assert choose_folder(root, "take01", str(source)) == root / "take01"


def test_owner_record_round_trips_and_a_damaged_one_reads_as_none(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    owner = RunOwner(input="/clips/a.mp4", job="seed=1", name="a")
    owner.write(folder)
    assert RunOwner.read(folder) == owner
    folder.run_json.write_text("{not json")
    assert RunOwner.read(folder) is None
    assert folder_names("a", "/clips/a.mp4", "seed=1")[0] == "a--seed=1"


def test_unwritable_output_folders_are_one_line(tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RotoscopeError, match="is not a folder"):
        check_writable(blocker / "outputs" / "take01")
    run = tmp_path / "outputs" / "take01"
    (run / "rotoscope.log").mkdir(parents=True)  # a log Hydra could not open
    with pytest.raises(RotoscopeError, match=r"cannot write run folder .*rotoscope\.log"):
        check_writable(run)

    def denied(*args, **kwargs):  # as tempfile raises it: naming its own file
        raise PermissionError(13, "Permission denied", str(tmp_path / "tmpk3x9_q2w"))

    monkeypatch.setattr(tempfile, "TemporaryFile", denied)
    with pytest.raises(RotoscopeError, match="Permission denied") as info:
        check_writable(tmp_path / "new")
    assert "\n" not in str(info.value) and "output.root" in str(info.value)
    assert "tmpk3x9_q2w" not in str(info.value) and f"{tmp_path} is not writable" in str(info.value)


def test_a_given_name_is_one_folder_name_and_never_another_inputs_folder(tmp_path: Path) -> None:
    for name in ("../escape", "a/b", "..", " ", "a\\b"):
        with pytest.raises(RotoscopeError, match="is not a folder name"):
            check_name(name)
    check_name("take01")
    root = tmp_path / "outputs"
    a = make_input(tmp_path / "shotA/take01.mp4")
    b = make_input(tmp_path / "shotB/other.mp4")
    claim(root, "take01", a)
    folder = RunFolder(root / "take01")
    with pytest.raises(RotoscopeError, match=r"holds the run of .*shotA/take01.mp4; name=take01"):
        check_owner(folder, owner_of(str(b)), explicit=True)
    check_owner(folder, owner_of(str(a)), explicit=True)  # its own folder
    check_owner(folder, owner_of(str(b)), explicit=False)  # a default name moves on instead


def test_queue_jobs_are_named_by_what_differs_and_a_queue_gets_a_folder_of_its_own(
    tmp_path: Path,
) -> None:
    keys = folder_neutral_keys(["input.max_frames", "model.path"])
    assert {"input.max_frames", "model.path", "render.batch_size", "input.path"} <= set(keys)
    assert job_part("guidance_scale=5,prompt='a cat, oil'") == "guidance_scale=5,prompt=a_cat,_oil"
    names = folder_names("clip", "/clips/clip.mp4", "prompt='a/cat'")
    assert names[-1].startswith("clip-") and names[-1].endswith(short_hash("prompt='a/cat'"))
    first, second = queue_folder(tmp_path), None
    first.mkdir(parents=True)
    second = queue_folder(tmp_path)
    assert first.parent == second.parent == tmp_path / "queues" and first != second
