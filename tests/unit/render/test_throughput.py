"""Throughput pieces in process: the ordered writer, prefetch, batching, speed settings."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config.schema import ModelConfig, RunConfig, RuntimeConfig
from pipeline.errors import RotoscopeError
from pipeline.models.loader import load_model
from pipeline.plan.rows import ControlValues, PlanRow
from pipeline.records.manifest import FrameRecord
from pipeline.records.writer import FrameOutcome, FrameWriter
from pipeline.render.batch import Batcher, FrameInput, call_signature
from pipeline.render.renderer import LoadedControlNet, Renderer
from pipeline.source.base import Frame, Selection, Source, SourceInfo, SourceKind
from pipeline.source.prefetch import Prefetch


def record(index: int) -> FrameRecord:
    return FrameRecord(index, f"frames/{index}.png", f"key{index}", index, None, 0.0)


# --- the writer ---
#
# No timing: threads wait on events, and a test that must see the render loop waiting
# for room watches the writer say so (WatchedWriter) rather than sleeping first.


class WatchedWriter(FrameWriter):
    """A writer that reports when a ``fill`` waits for room in the pool: while it waits it
    calls ``check`` again (every 0.1 s, for an earlier frame's error), so a second
    ``check`` within one ``fill`` means the render loop is held up."""

    def __init__(self, commit, threads: int) -> None:
        super().__init__(commit, threads)
        self.waiting = threading.Event()
        self._checks = 0

    def fill(self, *args, **kwargs) -> None:
        self._checks = 0
        super().fill(*args, **kwargs)

    def check(self) -> None:
        self._checks += 1
        if self._checks > 1:
            self.waiting.set()
        super().check()


def test_writer_commits_in_frame_order_whatever_order_writes_finish() -> None:
    """Frame 0's write waits for frame 1's, which waits for frame 2's: those files are
    done 2, 1, 0, the outcomes still committed 0-5."""
    committed: list[int] = []
    written: list[int] = []
    done = [threading.Event() for _ in range(6)]
    with FrameWriter(lambda outcome: committed.append(outcome.index), threads=3) as writer:
        for index in range(6):
            writer.reserve(index)

            def write(index: int = index) -> None:
                if index < 2:
                    assert done[index + 1].wait(timeout=60)
                written.append(index)
                done[index].set()

            writer.fill(FrameOutcome(index, record(index), "new"), write)
    assert [index for index in written if index < 3] == [2, 1, 0]  # really out of order
    assert committed == list(range(6))


def test_a_frame_waits_for_the_frames_before_it_even_without_a_file() -> None:
    committed: list[int] = []
    release = threading.Event()
    writer = FrameWriter(lambda outcome: committed.append(outcome.index), threads=1)
    writer.reserve(0)
    writer.reserve(1)
    writer.fill(FrameOutcome(0, record(0), "new"), release.wait)
    writer.fill(FrameOutcome(1, None))  # reused: no file, but it is after frame 0
    assert committed == []
    release.set()
    writer.close()
    assert committed == [0, 1]


def test_a_failed_write_stops_the_commits_after_it_and_is_raised() -> None:
    committed: list[int] = []

    def full() -> None:
        raise OSError("disk full")

    writer = FrameWriter(lambda outcome: committed.append(outcome.index), threads=2)
    with pytest.raises(OSError, match="disk full"), writer:
        for index in range(4):
            writer.reserve(index)
            writer.fill(FrameOutcome(index, record(index), "new"), full if index == 1 else None)
    assert committed == [0]  # frames 2 and 3 were ready, but come after the failed one


def feed_until_held_up(writer: WatchedWriter, writes: list) -> tuple[list[int], threading.Thread]:
    """Hand ``writes`` (one per frame) to ``writer`` from a render-loop thread until the
    writer says that thread waits for room; the frames handed so far, and the thread."""
    handed: list[int] = []

    def feed() -> None:
        for index, write in enumerate(writes):
            writer.reserve(index)
            writer.fill(FrameOutcome(index, None, "new"), write)
            handed.append(index)
        writer.waiting.set()  # all handed without waiting: the assertions say so at once

    feeder = threading.Thread(target=feed)
    feeder.start()
    assert writer.waiting.wait(timeout=60), f"neither held up nor done; handed {handed}"
    return handed, feeder


def test_the_pool_holds_a_bounded_number_of_frames() -> None:
    from pipeline.records.writer import PENDING_PER_THREAD

    release = threading.Event()
    writer = WatchedWriter(lambda outcome: None, threads=2)
    try:
        handed, feeder = feed_until_held_up(writer, [release.wait] * 20)
        assert len(handed) == 2 * PENDING_PER_THREAD  # the render loop waits for room
    finally:
        release.set()
    feeder.join()
    writer.close()
    assert len(handed) == 20


def test_a_written_frame_keeps_its_place_until_it_is_committed() -> None:
    """A stalled first frame (a slow fsync) holds up the render loop: the frames written
    after it cannot pile up uncommitted, or kill -9 would lose more than the pool."""
    from pipeline.records.writer import PENDING_PER_THREAD

    release = threading.Event()
    committed: list[int] = []
    writer = WatchedWriter(lambda outcome: committed.append(outcome.index), threads=2)
    try:
        handed, feeder = feed_until_held_up(writer, [release.wait] + [lambda: None] * 19)
        assert len(handed) == 2 * PENDING_PER_THREAD and committed == []
    finally:
        release.set()  # a failed test must not leave the pool's threads waiting
    feeder.join()
    writer.close()
    assert committed == list(range(20))


# --- prefetch ---


class ListSource(Source):
    """Frames from a list; ``fail_at`` raises there, as a decoder that stops would."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        kind = SourceKind.folder
        info = SourceInfo(kind, Path("x"), 8, 8, 8, 8, 24.0, 24.0, 0.0, count, False, 0)
        super().__init__(info, Selection(0, None, 1, None))
        self.count, self.fail_at = count, fail_at

    def _frames(self):
        for index in range(self.count):
            if index == self.fail_at:
                raise RotoscopeError(f"frame {index} is unreadable")
            self.frames_read += 1
            yield Frame(index, index, index / 24, None, np.full((8, 8, 3), index, np.uint8))


def test_prefetch_yields_the_source_frames_in_order() -> None:
    inner = ListSource(10)
    frames = list(Prefetch(inner, depth=3))
    assert [f.index for f in frames] == list(range(10))
    assert all(f.image[0, 0, 0] == f.index for f in frames)


def test_prefetch_raises_a_decode_error_at_its_frame() -> None:
    seen = []
    with pytest.raises(RotoscopeError, match="frame 4 is unreadable"):
        for frame in Prefetch(ListSource(10, fail_at=4), depth=2):
            seen.append(frame.index)
    assert seen == [0, 1, 2, 3]


def test_prefetch_stops_its_thread_when_the_loop_breaks_early() -> None:
    feed = Prefetch(ListSource(1000), depth=2)
    for frame in feed:
        if frame.index == 3:
            break
    feed.close()
    assert not any(thread.name == "prefetch" for thread in threading.enumerate())


# --- batching ---


def plan_row(index: int = 0, **changes: object) -> PlanRow:
    base = dict(
        index=index, prompt="winter forest", negative_prompt="blurry", strength=0.6,
        guidance_scale=7.0, steps=4, sampler="Euler a", seed=10 + index, width=64, height=64,
    )  # fmt: skip
    base.update(changes)
    return PlanRow(**base)  # type: ignore[arg-type]


class Item:
    def __init__(self, row: PlanRow) -> None:
        self.row = row


def test_batches_are_cut_on_a_grid_and_where_rows_differ() -> None:
    rows = [plan_row(i) for i in range(10)]
    rows[6] = plan_row(6, strength=0.7)  # another call: it goes alone
    batcher: Batcher[Item] = Batcher(4)
    batches = [b for row in rows for b in batcher.add(Item(row))] + batcher.flush()
    assert [[item.row.index for item in b] for b in batches] == [
        [0, 1, 2, 3], [4, 5], [6], [7], [8, 9],
    ]  # fmt: skip


def test_batch_signature_ignores_what_stays_per_frame() -> None:
    a = plan_row(0)
    assert call_signature(a) == call_signature(plan_row(1, prompt="summer", seed=99, clip_skip=2))
    assert call_signature(a) != call_signature(plan_row(1, loras={"ink": 0.5}))
    assert call_signature(a) != call_signature(plan_row(1, guidance_scale=5.0))


@pytest.fixture(scope="module")
def renderer(tiny_models) -> Renderer:
    model = load_model(ModelConfig(path=str(tiny_models.sd15)), RuntimeConfig(device="cpu"))
    return Renderer(model)


def frames_for(rows: list[PlanRow]) -> list[FrameInput]:
    rng = np.random.default_rng(3)
    return [FrameInput(row, rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for row in rows]


def max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    return max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(a, b, strict=True))


def test_batch_of_four_matches_one_by_one_within_1_of_255(renderer: Renderer) -> None:
    # different prompts, a keyframe blend, prompt editing and a long (two-chunk) prompt
    rows = [
        plan_row(0),
        plan_row(1, prompt="summer forest, (sun:1.3)"),
        plan_row(2, prompt_to="summer forest", negative_prompt_to="", blend=0.5),
        plan_row(3, prompt="a [cat:dog:0.5] in the snow"),
        plan_row(4, prompt=", ".join(["a very long prompt about a forest"] * 12)),
        plan_row(5, seed=10),
    ]
    frames = frames_for(rows)
    alone = [renderer.render(f.row, f.image) for f in frames]
    batched = renderer.render_batch(frames)
    assert max_difference(alone, batched) <= 1
    assert renderer.render_batch(frames)[3].tobytes() == batched[3].tobytes()  # run to run
    assert not np.array_equal(batched[0], batched[5])  # each frame its own seed


def test_batching_with_a_sampler_that_seeds_itself_renders_each_frame_alone(
    renderer: Renderer,
) -> None:
    rows = [plan_row(i, sampler="DPM++ SDE") for i in range(2)]
    frames = frames_for(rows)
    alone = [renderer.render(f.row, f.image) for f in frames]
    assert max_difference(alone, renderer.render_batch(frames)) == 0


def test_controlnet_batch_matches_one_by_one(tiny_models, tiny_controlnets) -> None:
    from pipeline.config.schema import ControlMode
    from pipeline.models.controlnets import load_controlnet

    model = load_model(ModelConfig(path=str(tiny_models.sd15)), RuntimeConfig(device="cpu"))
    net = load_controlnet(str(tiny_controlnets.sd15), model, offline=True)
    unit = LoadedControlNet("canny", str(tiny_controlnets.sd15), "canny", net, "id")
    renderer = Renderer(model, [unit], ControlMode.img2img)
    controls = {"canny": ControlValues(weight=0.8, start=0.0, end=1.0)}
    rng = np.random.default_rng(5)
    frames = [
        FrameInput(f.row, f.image, [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)])
        for f in frames_for([plan_row(i, controls=controls) for i in range(3)])
    ]
    alone = [renderer.render(f.row, f.image, f.maps) for f in frames]
    assert max_difference(alone, renderer.render_batch(frames)) <= 1


# --- options ---


def test_workers_without_ray_say_how_to_install_it(monkeypatch) -> None:
    from pipeline.render.executors import executor_for

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "pipeline.render.executors.ray", raising=False)
    with pytest.raises(RotoscopeError, match=r"pip install 'rotoscope\[ray\]'"):
        executor_for(RuntimeConfig(workers=2))


def test_batch_size_and_workers_must_be_at_least_one() -> None:
    from pipeline.render.stage import check_speed_options

    cfg = RunConfig()
    cfg.render.batch_size = 0
    with pytest.raises(RotoscopeError, match=r"render.batch_size=0 must be at least 1"):
        check_speed_options(cfg)
    cfg = RunConfig()
    cfg.runtime.workers = 0
    with pytest.raises(RotoscopeError, match=r"runtime.workers=0 must be at least 1"):
        check_speed_options(cfg)


def test_speed_settings_report_sdpa_and_compile_the_unet_when_asked(
    tiny_models, monkeypatch
) -> None:
    from pipeline.models.speed import tune_for_speed

    model = load_model(ModelConfig(path=str(tiny_models.sd15)), RuntimeConfig(device="cpu"))
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module: compiled.append(module) or module)
    assert tune_for_speed(model, compile_unet=False, hooks_attention=False) == ["SDPA attention"]
    assert compiled == []
    applied = tune_for_speed(model, compile_unet=True, hooks_attention=False)
    assert compiled == [model.pipe.unet] and any("torch.compile" in a for a in applied)
    compiled.clear()
    tune_for_speed(model, compile_unet=True, hooks_attention=True)  # cross-frame attention
    assert compiled == []


def test_runtime_compile_from_the_command_line_compiles_the_unet(
    tiny_models, monkeypatch, caplog
) -> None:
    from pipeline.config.compose import compose_checked
    from pipeline.render.loading import load_renderer, plan_networks

    overrides = ["input.path=x.mp4", f"model.path={tiny_models.sd15}", "runtime=cpu"]
    cfg = compose_checked([*overrides, "runtime.compile=true"])
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module: compiled.append(module) or module)
    with caplog.at_level("INFO", logger="rotoscope"):
        renderer = load_renderer(cfg, [], plan_networks(cfg))
    assert compiled == [renderer.pipe.unet]
    assert "speed: SDPA attention, torch.compile" in caplog.text
