"""Plan rows of the A1111/Deforum extras: the init strength of a loopback's first frame,
a txt2img start, and hybrid video's schedules (only when hybrid video is on)."""

from __future__ import annotations

import pytest
from support.configs import make_cfg

from pipeline.config.schema import AnimationMode, HybridComposite, HybridMotion
from pipeline.errors import RotoscopeError
from pipeline.plan.build import build_plan
from pipeline.plan.checks import check_hybrid


def test_init_strength_is_frame_0s_alone_and_only_from_an_input() -> None:
    cfg = make_cfg(strength="0.4", animation__mode=AnimationMode.loopback,
                   animation__init_strength=0.2)  # fmt: skip
    rows = build_plan(cfg, 3, 64, 64, 12.0).rows
    assert [row.strength for row in rows] == [0.2, 0.4, 0.4]
    from_noise = build_plan(cfg, 3, 64, 64, 12.0, from_noise=True).rows
    assert from_noise[0].txt2img and from_noise[0].strength == 1.0
    assert from_noise[1].strength == 0.4 and from_noise[1].txt2img is None


def test_hybrid_schedules_fill_rows_only_with_hybrid_video() -> None:
    plain = build_plan(make_cfg(animation__mode=AnimationMode.loopback), 2, 64, 64, 12.0).rows
    assert plain[1].hybrid_alpha is None and plain[1].hybrid_flow_factor is None
    cfg = make_cfg(animation__mode=AnimationMode.loopback)
    cfg.animation.hybrid.motion = HybridMotion.optical_flow
    cfg.animation.hybrid.composite = HybridComposite.normal
    cfg.animation.hybrid.alpha = "0:(0.2), 2:(0.6)"
    rows = build_plan(cfg, 3, 64, 64, 12.0).rows
    assert [row.hybrid_alpha for row in rows] == [0.2, 0.4, 0.6]
    assert rows[1].hybrid_flow_factor == 1.0


def test_hybrid_video_is_refused_outside_a_loopback_and_without_a_video() -> None:
    cfg = make_cfg()
    cfg.animation.hybrid.motion = HybridMotion.affine
    with pytest.raises(RotoscopeError, match="animation=loopback or 3d"):
        check_hybrid(cfg)
    cfg.animation.mode = AnimationMode.loopback
    cfg.input.path = None
    with pytest.raises(RotoscopeError, match="needs a video"):
        check_hybrid(cfg)


def test_hybrid_keys_without_hybrid_video_are_refused() -> None:
    cfg = make_cfg(animation__mode=AnimationMode.loopback)
    check_hybrid(cfg)  # the defaults: nothing to say
    cfg.animation.hybrid.video = "/nonexistent.mp4"
    with pytest.raises(RotoscopeError, match=r"hybrid.video is set but hybrid video is off"):
        check_hybrid(cfg)
