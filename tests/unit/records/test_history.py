"""Kept history: frames by key, earlier looks found again, deliverables versioned, pruning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli.prune import main as prune_main
from pipeline.plan.rows import PlanRow
from pipeline.records.history import (
    Recipes,
    history_bytes,
    publish,
    retire_others,
    superseded_frames,
)
from pipeline.records.manifest import FrameRecord, Manifest
from pipeline.records.prune import prunable, prune
from pipeline.records.run_folder import RunFolder
from pipeline.records.upscaled import UpscaledFrame, UpscaledFrames


def row(index: int) -> PlanRow:
    return PlanRow(index, "a fox", "", 0.5, 7.0, 4, "Euler a", 1, 64, 64)


def record(folder: RunFolder, index: int, key: str, content: bytes = b"png") -> FrameRecord:
    """A finished frame on disk and in the manifest, as the producer leaves it."""
    path = folder.frame(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    record = row(index).as_record()
    entry = FrameRecord(index, RunFolder.frame_name(key), key, index, None, 0.0, record)
    Manifest(folder).add(entry)
    return entry


def test_a_new_look_keeps_the_old_frame_and_going_back_finds_it(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    first = record(folder, 0, "a" * 64, b"first look")
    second = record(folder, 0, "b" * 64, b"second look")
    assert first.file != second.file and folder.frame(first.key).read_bytes() == b"first look"
    manifest = Manifest(folder)
    assert manifest.finished([row(0)]) == ([second], [])
    assert manifest.find(0, "a" * 64) == (first, True)  # the earlier look, found by its key
    manifest.add(first)  # its line again (the render loop's writer does this)
    assert Manifest(folder).finished([row(0)]) == ([first], [])  # ... current again
    assert manifest.find(0, "c" * 64) is None


def test_publish_keeps_the_previous_deliverable_unless_it_is_the_same(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    final = folder.video("mp4")

    def staged(content: bytes) -> Path:
        path = folder.staging(final.name)
        path.write_bytes(content)
        return path

    assert publish(folder, staged(b"look 1"), final, "recipe 1") is None
    assert publish(folder, staged(b"look 1 again"), final, "recipe 1") is None  # a re-encode
    kept = publish(folder, staged(b"look 2"), final, "recipe 2")
    assert kept is not None and kept.parent == folder.history
    assert kept.name.startswith(f"{tmp_path.name}-") and kept.suffix == ".mp4"
    assert kept.read_bytes() == b"look 1 again" and final.read_bytes() == b"look 2"
    again = publish(folder, staged(b"look 3"), final, "recipe 3")
    assert again is not None and again != kept and kept.read_bytes() == b"look 1 again"
    images = folder.images
    for number, recipe in ((1, "a"), (2, "b")):
        stage = folder.staging(images.name)
        stage.mkdir()
        (stage / "x.png").write_bytes(f"images {number}".encode())
        previous = publish(folder, stage, images, recipe)
    assert previous is not None and (previous / "x.png").read_bytes() == b"images 1"
    assert (images / "x.png").read_bytes() == b"images 2"


def test_prune_removes_only_what_no_current_frame_or_kept_deliverable_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = RunFolder(tmp_path / "clip")
    old = record(folder, 0, "a" * 64, b"x" * 1000)
    current = record(folder, 0, "b" * 64)
    other = record(folder, 1, "c" * 64)
    folder.staging("clip.mp4").write_bytes(b"killed mid-assemble")
    folder.history.mkdir()
    (folder.history / "clip-20250101-100000.mp4").write_bytes(b"older")
    (folder.history / "clip-20250102-100000.mp4").write_bytes(b"newer")
    assert superseded_frames(folder, Manifest(folder)) == [folder.frame(old.key)]
    assert history_bytes(folder) == 1000 + len(b"older") + len(b"newer")
    prune_main([str(tmp_path), "--dry-run"])
    listed = capsys.readouterr()
    assert str(folder.frame(old.key)) in listed.out and "earlier look" in listed.out
    assert "would free" in listed.err and "1 run folder" in listed.err
    assert folder.frame(old.key).exists()  # a dry run deletes nothing
    assert [item.path for item in prunable(folder, keep_history=1)][-1].name == (
        "clip-20250101-100000.mp4"
    )
    removed = prune(folder)
    assert {item.why for item in removed} == {"earlier look", "unfinished write"}
    assert (
        not folder.frame(old.key).exists()
        and (folder.history / "clip-20250101-100000.mp4").exists()
    )
    manifest = Manifest(folder)
    assert manifest.finished([row(0), row(1)]) == ([current, other], [])
    lines = [json.loads(line) for line in folder.manifest.read_text().splitlines()]
    assert [line["key"] for line in lines] == [current.key, other.key]  # compacted
    assert manifest.find(0, old.key) is None  # pruned looks are gone for good
    prune(folder, keep_history=0)
    assert not folder.history.exists() and history_bytes(folder) == 0


def test_prune_refuses_a_path_that_is_not_a_folder(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        prune_main([str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    assert "is not a folder" in capsys.readouterr().err


def upscaled(folder: RunFolder, frame: FrameRecord, recipe: str, key: str) -> UpscaledFrame:
    """An upscaled frame on disk and in ``upscaled.jsonl``, as the upscale stage leaves it."""
    made = UpscaledFrame(frame.index, frame.key, recipe, key, RunFolder.upscaled_name(key), 8, 8)
    path = folder.upscaled_frame(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"upscaled")
    UpscaledFrames(folder).add(made)
    return made


def test_upscaled_and_in_between_frames_are_kept_while_their_frames_are_delivered(
    tmp_path: Path,
) -> None:
    folder = RunFolder(tmp_path)
    old = record(folder, 0, "a" * 64)
    current = record(folder, 0, "b" * 64)
    other = record(folder, 1, "c" * 64)
    of_old = upscaled(folder, old, "x2", "d" * 64)
    one = upscaled(folder, current, "x2", "e" * 64)
    upscaled(folder, current, "x4", "f" * 64)  # another size: an earlier look, kept
    two = upscaled(folder, other, "x2", "0" * 64)
    index = UpscaledFrames(folder)
    assert index.current(current.key, "x2") == one
    assert index.current(current.key, "x3") is None
    assert index.find(of_old.key) == of_old
    kept = folder.between_frame(one.key, two.key, "1" * 64)
    stale = folder.between_frame(of_old.key, two.key, "2" * 64)
    for path in (kept, stale):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"between")
    reasons = {item.path: item.why for item in prunable(folder)}
    assert reasons[folder.upscaled_frame(of_old.key)] == "earlier look's upscaled frame"
    assert reasons[stale] == "earlier look's in-between frame"
    assert kept not in reasons and folder.upscaled_frame(one.key) not in reasons
    prune(folder)
    assert kept.exists() and not stale.exists()
    assert {record.key for record in UpscaledFrames(folder).lines} == {one.key, "f" * 64, two.key}


def test_prune_removes_the_masks_of_earlier_looks_only(tmp_path: Path) -> None:
    from dataclasses import replace

    folder = RunFolder(tmp_path / "clip")
    for key, digest in (("a" * 64, "1" * 64), ("b" * 64, "2" * 64)):  # the second is current
        frame = record(folder, 0, key)
        folder.mask(digest).parent.mkdir(parents=True, exist_ok=True)
        folder.mask(digest).write_bytes(b"mask")
        Manifest(folder).add(replace(frame, mask=digest))
    removed = {item.path: item.why for item in prune(folder)}
    assert removed[folder.mask("1" * 64)] == "earlier look's mask"
    assert folder.mask("2" * 64).exists() and not folder.mask("1" * 64).exists()


def test_an_image_folder_keeps_only_its_changed_files_and_sidecars_travel(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)

    def images(files: dict[str, bytes], recipe: str) -> Path | None:
        stage = folder.staging(folder.images.name)
        stage.mkdir()
        for name, content in files.items():
            (stage / name).write_bytes(content)
        return publish(folder, stage, folder.images, recipe, {"look": recipe})

    assert images({"a.png": b"a", "b.png": b"b", "c.png": b"c"}, "1") is None
    assert json.loads(RunFolder.sidecar(folder.images).read_text()) == {"look": "1"}
    assert images({"a.png": b"a", "b.png": b"b", "c.png": b"c", "0.png": b"0"}, "2") is None
    kept = images({"0.png": b"0", "a.png": b"a", "b.png": b"B"}, "3")  # b changed, c gone
    assert kept is not None and sorted(p.name for p in kept.iterdir()) == ["b.png", "c.png"]
    assert json.loads(RunFolder.sidecar(kept).read_text()) == {"look": "2"}
    video = folder.video("mp4")
    staged = folder.staging(video.name)
    staged.write_bytes(b"video")
    publish(folder, staged, video, "v", {"look": "v"})
    moved = retire_others(folder, [video])  # images/ was not made by this assemble
    assert [path.parent for path in moved] == [folder.history] and not folder.images.exists()
    assert RunFolder.sidecar(moved[0]).is_file() and set(Recipes.read(folder).by_name) == {
        video.name
    }
    removed = [item.path for item in prune(folder, keep_history=0)]
    assert RunFolder.sidecar(kept) in removed and not folder.history.exists()
