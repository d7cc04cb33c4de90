"""What a coherent frame depends on and keeps: keys, recordings, state files, refusals."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from pipeline.config.compose import compose_checked
from pipeline.config.schema import AttentionAnchors, CoherenceConfig
from pipeline.errors import RotoscopeError
from pipeline.plan.build import build_plan
from pipeline.plan.checks import check_strategies
from pipeline.plan.rows import PlanRow
from pipeline.records.history import history_bytes
from pipeline.records.manifest import FrameRecord, Manifest
from pipeline.records.prune import prune
from pipeline.records.run_folder import RunFolder
from pipeline.render.coherence.attention import AttentionCache, CrossFrameAttnProcessor
from pipeline.render.coherence.chain import ChainSettings, CoherenceChain, FrameState


def rows(count: int, attention_steps: float = 0.5) -> list[PlanRow]:
    base = PlanRow(0, "a fox", "", 0.5, 7.0, 4, "Euler a", 1, 64, 64)
    return [
        replace(base, index=i, segment_start=0, attention_steps=attention_steps)
        for i in range(count)
    ]


def settings(**config: object) -> ChainSettings:
    return ChainSettings.from_config(CoherenceConfig(**config), rows(3))  # type: ignore[arg-type]


def test_a_frame_depends_on_the_frames_it_is_rendered_from_and_no_others() -> None:
    row = rows(3)[2]
    first = settings(attention=True)  # anchors: first
    assert "previous=p" not in first.dependencies(row, "p", "a")
    assert "anchor=a" in first.dependencies(row, "p", "a")
    both = settings(attention=True, attention_anchors=AttentionAnchors.both)
    assert {"previous=p", "anchor=a"} <= set(both.dependencies(row, "p", "a").split("|"))
    flow = settings(flow=True)
    assert "previous=p" in flow.dependencies(row, "p", "a")
    assert "anchor=a" not in flow.dependencies(row, "p", "a")


def test_how_much_an_anchor_records_is_part_of_the_keys() -> None:
    low = ChainSettings.from_config(CoherenceConfig(attention=True), rows(3, 0.25))
    high = ChainSettings.from_config(CoherenceConfig(attention=True), rows(3, 1.0))
    assert low.record_fraction == 0.25 and high.record_fraction == 1.0
    assert low.signature() != high.signature()


def test_only_frames_a_later_frame_reads_record_their_attention() -> None:
    first = settings(attention=True)
    assert first.records(anchor=True) and not first.records(anchor=False)
    previous = settings(attention=True, attention_anchors=AttentionAnchors.previous)
    assert previous.records(anchor=False)
    assert not settings(flow=True).records(anchor=True)


def test_repeating_a_prompt_at_a_keyframe_does_not_start_a_segment() -> None:
    cfg = compose_checked(
        ["input.path=a.mp4", "coherence=full", "prompt_blend=none", "+prompts.0=a cat",
         "+prompts.4=a cat", "+prompts.8=a dog"]
    )  # fmt: skip
    starts = {row.segment_start for row in build_plan(cfg, 12, 64, 64, 12.0).rows}
    assert starts == {0, 8}


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["coherence=full", "animation=loopback"], "coherence with animation.mode=loopback"),
        (["coherence=flow", "controlnet=tiny_canny", "controlnet.mode=txt2img"], "txt2img"),
        (["coherence=full", "coherence.cut_threshold=-1"], "cut_threshold=-1 is outside 0..1"),
        (["coherence=full", "coherence.reanchor_every=-3"], "reanchor_every=-3 is negative"),
    ],
)
def test_coherence_refuses_what_it_cannot_serve(overrides: list[str], needle: str) -> None:
    with pytest.raises(RotoscopeError, match=needle):
        check_strategies(compose_checked(["input.path=a.mp4", *overrides]))
    allowed = ["coherence=attention", "controlnet=tiny_canny", "controlnet.mode=txt2img"]
    check_strategies(compose_checked(["input.path=a.mp4", *allowed]))


def state(index: int, key: str, anchor: bool) -> FrameState:
    image = np.zeros((8, 8, 3), np.uint8)
    recording = AttentionCache({("up_blocks.1.attn1", 0): torch.ones(2, 4, 8)}, [999.0])
    return FrameState(index, key, anchor, image, image, recording, [torch.zeros(1, 4, 1, 1)])


def test_a_recording_goes_only_once_the_next_frame_is_recorded(tmp_path) -> None:
    folder = RunFolder(tmp_path)
    config = CoherenceConfig(attention=True, attention_anchors=AttentionAnchors.both, flow=True)
    chain = CoherenceChain(config, folder, rows(3))
    anchor, second, third = (
        state(0, "a" * 64, True),
        state(1, "b" * 64, False),
        state(2, "c" * 64, False),
    )
    for frame in (anchor, second):
        chain.store(frame)
    chain.committed(anchor)  # frame 1 is recorded: the anchor's recording is still needed
    chain.store(third)  # a crash here must leave frame 1's recording for the resume
    assert folder.anchor_attention(second.key).is_file()
    chain.committed(second)
    assert not folder.anchor_attention(second.key).exists()
    assert folder.anchor_attention(anchor.key).is_file()  # ... the anchor's stays
    assert folder.coherence_latents(second.key).is_file()  # latents are kept for every frame
    restored = FrameState(2, third.key, False, third.source, third.output)
    assert chain.restore(restored, torch.device("cpu"))
    assert torch.equal(restored.latents[0], third.latents[0])


def test_prune_removes_the_coherence_state_of_earlier_looks(tmp_path) -> None:
    folder = RunFolder(tmp_path)
    chain = CoherenceChain(CoherenceConfig(flow=True, attention=True), folder, rows(1))
    current, earlier = state(0, "c" * 64, True), state(0, "e" * 64, True)
    for frame in (current, earlier):
        chain.store(frame)
    folder.frame(current.key).parent.mkdir(parents=True)
    folder.frame(current.key).write_bytes(b"png")
    Manifest(folder).add(FrameRecord(0, RunFolder.frame_name(current.key), current.key, 0, None, 0))
    (folder.coherence / ".0123456789ab.tmp").write_bytes(b"torn")
    folder.flow.mkdir()
    folder.flow_pair(1).write_bytes(b"flow")
    assert history_bytes(folder) > 0  # the earlier look's state is kept history
    removed = {item.path for item in prune(folder, flow=True)}
    assert folder.anchor_attention(earlier.key) in removed
    assert folder.coherence_latents(earlier.key) in removed
    assert folder.coherence / ".0123456789ab.tmp" in removed and folder.flow in removed
    assert folder.anchor_attention(current.key).is_file()


def test_attention_processors_come_back_after_attention_slicing(tiny_models) -> None:
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
        str(tiny_models.sd15), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    chain = CoherenceChain(CoherenceConfig(attention=True), RunFolder(tiny_models.sd15), rows(1))

    def ours() -> int:
        processors = pipe.unet.attn_processors.values()
        return sum(isinstance(p, CrossFrameAttnProcessor) for p in processors)

    assert chain.attention(pipe) is not None and ours() > 0
    pipe.enable_attention_slicing()  # the out-of-memory saver replaces every processor
    assert ours() == 0
    chain.attention(pipe)
    assert ours() > 0
    chain.close()
    assert ours() == 0
