"""The run's page is built from the run folder's records alone: whatever a frame's record
holds is shown, a half-written line is not, and the charts follow the plan's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.records.run_folder import RunFolder
from pipeline.report.charts import flicker_svg, plan_values
from pipeline.report.live import LivePage
from pipeline.report.page import render_page
from pipeline.report.queue import QueueJob, QueueRecords
from pipeline.report.view import frames_made, origin_of, read_view


def row(index: int, **values: object) -> dict[str, object]:
    return {"index": index, "prompt": "ink", "strength": 0.5, "seed": 42, "width": 8,
            "height": 8, **values}  # fmt: skip


def run_folder(tmp_path: Path, rows: list[dict], records: list[dict], torn: str = "") -> RunFolder:
    folder = RunFolder(tmp_path / "run")
    folder.frames.mkdir(parents=True)
    folder.plan_jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for record in records:
        Image.fromarray(np.full((8, 8, 3), 40 * record["index"], np.uint8)).save(
            folder.path / record["file"]
        )
    lines = "".join(json.dumps(r) + "\n" for r in records)
    folder.manifest.write_text(lines + torn)
    return folder


def record(index: int, row_values: dict, key: str = "", **extra: object) -> dict[str, object]:
    key = key or f"{index:02d}" * 32
    return {"index": index, "file": RunFolder.frame_name(key), "key": key, "source_index": index,
            "source_name": None, "time": index / 8, "row": row_values, **extra}  # fmt: skip


def test_the_page_shows_what_each_record_holds_and_no_half_written_line(tmp_path: Path) -> None:
    rows = [row(0), row(1), row(2)]
    torn = json.dumps(record(2, rows[2]))[:40]  # the writer is appending this line
    upscaled = "upscaled/0101.png"
    folder = run_folder(
        tmp_path, rows, [record(0, rows[0]), record(1, rows[1], carried=True, upscaled=upscaled)],
        torn,
    )  # fmt: skip
    (folder.path / "upscaled").mkdir()
    Image.new("RGB", (16, 16)).save(folder.path / upscaled)
    view = read_view(folder)
    assert [frame.index for frame in view.frames] == [0, 1] and view.planned == 3
    # a field this module does not know (another feature's) is in the frame's data
    assert view.frames[1].origin == "carried" and view.frames[1].record["upscaled"] == upscaled
    assert ("upscaled", upscaled) in view.frames[1].maps  # an image it names is shown
    # thumbnails are made once per key for frames that have none
    assert all((folder.path / frame.thumbnail).is_file() for frame in view.frames)
    html = render_page(view)
    assert html.count("class='thumb'") == 2 and f'"upscaled":"{upscaled}"' in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_a_frames_mask_control_maps_and_depth_are_shown_when_there(tmp_path: Path) -> None:
    rows = [row(0), row(1)]
    masked = record(0, rows[0], mask="9" * 64, control="canny-key")
    folder = run_folder(tmp_path, rows, [masked, record(1, rows[1])])
    for path in (folder.mask("9" * 64), folder.control_map("canny", 0),
                 folder.depth_map(str(masked["key"]))):  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), 255).save(path)
    first, second = read_view(folder).frames
    assert first.mask == f"masks/{'9' * 16}.png"
    assert first.maps == [("control: canny", "control/canny/000000.png"),
                          ("depth", folder.depth_map(str(masked["key"])).relative_to(folder.path)
                           .as_posix())]  # fmt: skip
    assert second.mask is None and second.maps == []


def test_a_frame_of_another_plan_is_not_shown_as_done(tmp_path: Path) -> None:
    rows = [row(0), row(1)]
    folder = run_folder(tmp_path, rows, [record(0, rows[0]), record(1, row(1, strength=0.9))])
    assert [frame.index for frame in read_view(folder).frames] == [0]
    assert frames_made(folder)[:2] == (1, 2)


def test_origin_comes_from_the_record() -> None:
    assert origin_of({"origin": "upscaled"}) == "upscaled"
    assert origin_of({"carried_from": 3}) == "carried"
    assert origin_of({"carried_from": None, "key": "k"}) == "diffused"


def test_the_plan_chart_charts_what_varies_and_lists_the_rest() -> None:
    rows = [
        row(0, loras={"ink": 0.5}, prompt_to="paper", blend=0.0),
        row(1, loras={"ink": 0.7}, prompt_to="paper", blend=0.5, strength=0.6),
        row(2, loras={"ink": 0.9}, prompt="paper", blend=0.0),
    ]
    values = plan_values(rows)
    assert [curve.name for curve in values.varying] == ["strength", "loras.ink", "blend"]
    assert ("seed", "42") in values.constants
    assert values.prompt_keys == [(0, "ink → paper"), (2, "paper")]


def test_the_flicker_chart_names_its_means_and_the_better_side() -> None:
    metrics = {"warp_error": 0.01, "source_warp_error": 0.03,
               "frames": [{"index": 1, "warp_error": 0.01, "source_warp_error": 0.03},
                          {"index": 2, "warp_error": None, "source_warp_error": 0.03}]}  # fmt: skip
    svg = flicker_svg(metrics)
    assert "3.0x steadier than the source" in svg and "lower is steadier" in svg
    assert "mean 0.01" in svg and "frame 2: source (reference) 0.03" in svg


def test_the_live_page_is_written_at_start_and_says_how_it_ended(tmp_path: Path) -> None:
    rows = [row(0), row(1)]
    folder = run_folder(tmp_path, rows, [record(0, rows[0])])
    page = LivePage(folder, "rotoscope input.path=clip.mp4", interval=3600)
    page.start()
    running = folder.page.read_text()
    assert "running" in running and "1 of 2 frames" in running and "Resume with" in running
    folder.report.write_text(json.dumps({"run_dir": str(folder), "status": "failed",
                                         "error": "disk full while writing frame 1",
                                         "stages": ["render"]}))  # fmt: skip
    page.close()
    ended = folder.page.read_text()
    assert "status failed" in ended and "disk full while writing frame 1" in ended


def test_the_queue_page_has_a_row_per_job(tmp_path: Path) -> None:
    rows = [row(0), row(1)]
    folder = run_folder(tmp_path, rows, [record(0, rows[0])])
    records = QueueRecords(tmp_path / "queue", tmp_path / "queue/.states")
    records.record(QueueJob(0, ["input.path=a.mp4", "seed=1"], "running", str(folder.path)))
    records.record(QueueJob(1, ["input.path=a.mp4", "seed=2"], "failed", error="no such file"))
    records.record(QueueJob(2, ["input.path=a.mp4", "seed=3"]))
    html = records.page.read_text()
    assert html.count("<tr class='job'") == 3 and "1 running, 1 failed, 1 queued" in html
    assert "1/2 frames" in html and "no such file" in html
    assert "report</a>" not in html  # no link before the job's page exists
    assert ">seed=1<" in html  # only what tells the jobs apart


def test_prune_removes_the_thumbnails_of_earlier_looks_only(tmp_path: Path) -> None:
    from pipeline.records.prune import prune

    rows = [row(0)]
    earlier, current = record(0, rows[0]), record(0, rows[0], key="ab" * 32)
    current["file"] = RunFolder.frame_name(current["key"])
    folder = run_folder(tmp_path, rows, [earlier, current])
    read_view(folder)  # makes the current frame's thumbnail
    stale = folder.thumbnail(earlier["key"])
    stale.write_bytes(b"jpeg")
    folder.thumbnail(earlier["key"], of_source=True).write_bytes(b"jpeg")
    removed = {item.path: item.why for item in prune(folder)}
    assert removed[stale] == "earlier look's thumbnail" and not stale.exists()
    assert not folder.thumbnail(earlier["key"], of_source=True).exists()
    assert folder.thumbnail(current["key"]).is_file()
