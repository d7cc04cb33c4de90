"""Config composition: every preset composes and type-checks; bad keys fail in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import ROOT

from pipeline.cli.overrides import quote_text_values
from pipeline.config.compose import compose_checked
from pipeline.config.schema import OutputFormat, ResizeMode, RunConfig, run_name
from pipeline.errors import RotoscopeError

CONF = ROOT / "pipeline" / "conf"
GROUPS = ["paths", "input", "model", "render", "output", "runtime", "animation", "controlnet"]


def presets(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(("group", "preset"), [(g, p) for g in GROUPS for p in presets(g)])
def test_every_preset_composes(group: str, preset: str) -> None:
    cfg = compose_checked([f"{group}={preset}", "input.path=clip.mp4"])
    assert isinstance(cfg, RunConfig)


def test_defaults_and_overrides_are_typed() -> None:
    cfg = compose_checked(
        ["input.path=dance.mp4", "strength=0.45", "input.resize_mode=fit", "output=webm"]
    )
    assert cfg.strength == "0.45"  # a number is a constant schedule
    assert cfg.input.resize_mode is ResizeMode.fit
    assert cfg.output.format == [OutputFormat.webm]
    assert cfg.name == "dance"


def test_render_preset_sets_global_keys() -> None:
    cfg = compose_checked(["input.path=a.mp4", "render=quality"])
    assert (cfg.steps, cfg.sampler) == ("30", "DPM++ 2M Karras")


def test_run_name_defaults_to_input_stem() -> None:
    assert run_name("clips/dance.mp4") == "dance"
    assert run_name("photos/") == "photos"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (
            ["input.path=a.mp4", "strenght=0.5"],
            "unknown config key 'strenght' (did you mean 'strength'?)",
        ),
        (["input.path=a.mp4", "seed=abc"], "bad value for seed"),
        (["input.path=a.mp4", "seed_behavior=wobble"], "bad value for seed_behavior"),
        (["input.path=a.mp4", "input.resize_mode=zoom"], "bad value for input.resize_mode"),
        (["input.path=a.mp4", "model=nope"], "choose from"),
        (["input.path=a.mp4", "seed="], "bad value for seed"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(overrides: list[str], needle: str) -> None:
    with pytest.raises(RotoscopeError) as info:
        compose_checked(overrides)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_without_an_input_the_run_is_named_after_the_keyframe_file() -> None:
    assert compose_checked(["animation=loopback"]).input.path is None
    assert run_name(None) == "animation" and run_name(None, "keyframes/deforum.txt") == "deforum"


def test_sweep_overrides_check_the_first_combination() -> None:
    cfg = compose_checked(["input.path=a.mp4", "guidance_scale=3,5,7"])
    assert cfg.guidance_scale == "3"


@pytest.mark.parametrize(
    "prompt",
    [
        "a cat, (oil painting:1.2), [blurry]",
        "it's \\(not\\) a weight, BREAK ends\\",
        "quotes \"inside\" and 'single'",
        "50% = {braces} $5",
    ],
)
def test_prompts_pass_through_hydra_verbatim(prompt: str) -> None:
    args = quote_text_values(["input.path=my clips/a (1).mp4", f"prompt={prompt}"])
    cfg = compose_checked(args)
    assert cfg.prompt == prompt
    assert cfg.input.path == "my clips/a (1).mp4"


def test_quoting_leaves_other_syntax_alone() -> None:
    args = ["-m", "steps=2,4", "input.path='already'", "prompt=choice(a,b)", "seed=1"]
    assert quote_text_values(args) == args


# --- paths: one home for models and outputs, whatever folder the command runs from ---


def test_home_is_the_environment_variable_then_the_checkout_then_a_user_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pipeline.config import paths

    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path / "studio"))
    assert paths.rotoscope_home() == tmp_path / "studio"
    monkeypatch.delenv(paths.HOME_ENV)
    checkout = ROOT
    assert paths.rotoscope_home() == checkout  # the tests run from a checkout
    monkeypatch.setattr(paths, "source_checkout", lambda: None)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(paths.sys, "platform", "linux")
    assert paths.rotoscope_home() == tmp_path / "data" / "rotoscope"


def test_every_path_and_preset_follows_the_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTOSCOPE_HOME", "/studio")
    cfg = compose_checked(["input.path=a.mp4", "model=tiny_single", "controlnet=tiny_canny"])
    assert (cfg.paths.models, cfg.paths.loras, cfg.paths.embeddings) == (
        "/studio/models", "/studio/models/Lora", "/studio/models/embeddings",
    )  # fmt: skip
    assert cfg.model.path == "/studio/models/tiny/sd15.safetensors"
    assert cfg.model.config == "/studio/models/tiny/sd15"
    assert cfg.controlnet.units["tiny_canny"].model == "/studio/models/tiny/controlnet_sd15"
    assert cfg.controlnet.annotators == "/studio/models/annotators"
    assert cfg.output.root == "/studio/outputs"
    moved = compose_checked(["input.path=a.mp4", "model=tiny", "paths.models=/data/sd"])
    assert (moved.model.path, moved.output.root) == ("/data/sd/tiny/sd15", "/studio/outputs")


def test_bundled_keyframe_files_are_found_from_any_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pipeline.config.paths import BUNDLED_KEYFRAMES, find_keyframes

    monkeypatch.chdir(tmp_path)
    bundled = BUNDLED_KEYFRAMES / "seasons.yaml"
    assert find_keyframes("keyframes/seasons.yaml") == bundled
    assert find_keyframes("seasons.yaml") == bundled
    (tmp_path / "seasons.yaml").write_text("prompts: {0: mine}")
    assert find_keyframes("seasons.yaml") == Path("seasons.yaml")  # the user's own file wins
    assert find_keyframes("missing.yaml") == Path("missing.yaml")  # left for the usual error
