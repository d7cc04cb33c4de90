"""What users type: prompts verbatim, keyframed prompts, '+' keys, one-line messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli.command import check_bare_words, job_config_requested, overrides_of
from pipeline.cli.overrides import expand_lists, quote_text_values, quoted_list
from pipeline.cli.prompt_map import parse_prompt_map
from pipeline.config.compose import compose_checked
from pipeline.config.schema import RunConfig
from pipeline.errors import RotoscopeError
from pipeline.run.configure import apply_keyframes


def compose(*args: str, multirun: bool = False) -> RunConfig:
    """Compose like the command line does: quoting first, then the checked config."""
    quoted = quote_text_values(["-m", *args] if multirun else list(args))
    return compose_checked([a for a in quoted if not a.startswith("-")], multirun=multirun)


def error_of(*args: str, multirun: bool = False) -> str:
    with pytest.raises(RotoscopeError) as info:
        compose("input.path=a.mp4", *args, multirun=multirun)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "prompt",
    [
        "a sign saying ${price}",
        '"Starry Night" by van Gogh, "oil"',
        "'single quoted' and ${a.b} and \\${escaped}",
        '"fully quoted"',
        "choice(a, b) is just text here",
    ],
)
def test_any_prompt_passes_verbatim(prompt: str) -> None:
    assert compose("input.path=a.mp4", f"prompt={prompt}").prompt == prompt
    assert compose("input.path=a.mp4", f"negative_prompt={prompt}").negative_prompt == prompt


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("{0: a cat, 10: a dog}", {"0": "a cat", "10": "a dog"}),
        ("{0: 'a cat', 10: 'a dog'}", {"0": "a cat", "10": "a dog"}),
        ('{"0": "a cat, oil", "10": "a dog"}', {"0": "a cat, oil", "10": "a dog"}),
        (
            '{0: a cat, (oil:1.2), 2.5s: a dog --neg blurry, max_f/2: "Starry" by ${x}}',
            {"0": "a cat, (oil:1.2)", "2.5s": "a dog --neg blurry", "max_f/2": '"Starry" by ${x}'},
        ),
        ("{}", {}),
    ],
)
def test_keyframed_prompts_on_the_command_line(typed: str, expected: dict[str, str]) -> None:
    assert parse_prompt_map(typed) == expected
    assert compose("input.path=a.mp4", f"prompts={typed}").prompts == expected


def test_single_prompt_keyframes_add_to_each_other_and_to_prompt() -> None:
    cfg = compose("input.path=a.mp4", "prompt=a cat", "+prompts.10=a dog, (x:1.2)", "prompts.20=b")
    assert cfg.prompt == "a cat" and cfg.prompts == {"10": "a dog, (x:1.2)", "20": "b"}
    from pipeline.plan.build import prompt_keys

    keys = prompt_keys(cfg, 30, 24.0, {})
    assert [(k.frame, k.prompt) for k in keys] == [(0, "a cat"), (10, "a dog, (x:1.2)"), (20, "b")]


def test_prompt_maps_that_cannot_be_read_say_how() -> None:
    assert "for example prompts='{0: a cat, 10: a dog}'" in error_of("prompts=a cat")
    assert "expected a frame key" in error_of("prompts={a cat}")


def test_a_prompt_sweep_stays_a_sweep_under_multirun() -> None:
    args = quote_text_values(["-m", 'prompt=choice("a, b","c")'])
    assert args[1] == 'prompt=choice("a, b","c")'


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("+strenght=0.9", "unknown config key 'strenght' (did you mean 'strength'?)"),
        ("+input.widht=32", "unknown config key 'input.widht' (did you mean 'input.width'?)"),
        (
            "+controlnet.units.tiny_canny.weigth=0.2",
            "(did you mean 'controlnet.units.tiny_canny.weight'?)",
        ),
        (
            "controlnet.units.tiny_canny.wieght=0.5",
            "(did you mean 'controlnet.units.tiny_canny.weight'?)",
        ),
        (
            "+schedule_interpolation.strenght=cubic",
            "schedule_interpolation.strenght names no schedule (did you mean 'strength'?)",
        ),
        ("+strength=0.3", "strength already exists (set it without '+': strength=0.3)"),
    ],
)
def test_plus_keys_outside_open_maps_are_unknown_keys(override: str, needle: str) -> None:
    assert needle in error_of("controlnet=tiny_canny", override)


def test_open_maps_take_new_keys() -> None:
    cfg = compose(
        "input.path=a.mp4", "+controlnet.units.mine.model=/m",
        "+controlnet.units.mine.params.low=5", "+schedule_interpolation.strength=cubic",
        "++strength=0.3", "+prompts.4=a",
    )  # fmt: skip
    assert cfg.controlnet.units["mine"].params == {"low": 5}
    assert cfg.schedule_interpolation["strength"].value == "cubic"
    assert (cfg.strength, cfg.prompts) == ("0.3", {"4": "a"})


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("model=tinyy", "unknown model preset 'tinyy' (did you mean 'tiny'? choose from sd15,"),
        (
            "controlnet=[tiny_canny,cany]",
            "unknown controlnet preset 'cany' (did you mean 'canny'? choose from canny,",
        ),
        ("output=mp5", "unknown output preset 'mp5' (did you mean 'mp4'? choose from gif,"),
    ],
)
def test_unknown_presets_list_the_choices(override: str, needle: str) -> None:
    assert needle in error_of(override)


def test_a_value_list_without_multirun_is_one_line() -> None:
    message = error_of("guidance_scale=5,7")
    assert "guidance_scale=5,7 gives several values" in message and "-m" in message
    assert compose("input.path=a.mp4", "guidance_scale=5,7", multirun=True).guidance_scale == "5"


def test_a_command_line_size_replaces_the_keyframe_files_size(tmp_path: Path) -> None:
    keyframes = tmp_path / "k.yaml"
    keyframes.write_text("settings:\n  input.width: 512\n  input.height: 512\n  seed: 3\n")
    cfg = compose("input.path=a.mp4", f"keyframes={keyframes}", "input.width=768")
    applied, _ = apply_keyframes(cfg, {"input.path", "keyframes", "input.width"})
    assert (applied.input.width, applied.input.height, applied.seed) == (768, None, 3)
    plain = compose("input.path=a.mp4", f"keyframes={keyframes}")
    from_file, _ = apply_keyframes(plain, {"input.path", "keyframes"})
    assert (from_file.input.width, from_file.input.height) == (512, 512)


def test_keyframe_file_prompts_merge_with_single_ones_from_the_command_line(
    tmp_path: Path,
) -> None:
    keyframes = tmp_path / "k.yaml"
    keyframes.write_text("prompts:\n  0: a forest ${x}\n  10: a desert\n")
    cfg = compose("input.path=a.mp4", f"keyframes={keyframes}", "+prompts.10=a sea")
    applied, _ = apply_keyframes(cfg, {"input.path", "keyframes", "prompts.10"})
    assert applied.prompts == {"0": "a forest ${x}", "10": "a sea"}


# -- issue 17: lists, prompt lists, bare words, flags ------------------------------------


def test_a_quoted_prompt_list_is_a_sweep_under_multirun_and_refused_without() -> None:
    args = quote_text_values(["-m", 'prompt="a cat, oil","a dog"'])
    assert args[1] == "prompt='a cat, oil','a dog'"  # two jobs, not one quoted literal
    assert compose("input.path=a.mp4", 'prompt="a cat, oil","a dog"', multirun=True).prompt == (
        "a cat, oil"
    )
    assert "lists 2 prompts, which run as several jobs only with -m" in error_of(
        'prompt="a cat","a dog"'
    )
    assert quoted_list('"Starry Night" by van Gogh') is None  # one prompt that has quotes
    assert quoted_list("'it\\'s', \"b\"") == ["it's", "b"]


def test_a_list_key_takes_one_value_and_output_takes_several_presets() -> None:
    assert expand_lists(["styles=ink", "stages=plan", "output.format=webm"]) == [
        "styles=[ink]", "stages=[plan]", "output.format=[webm]",
    ]  # fmt: skip
    assert expand_lists(["-m", "output.format=mp4,webm"])[1] == "output.format=[mp4],[webm]"
    both = expand_lists(["input.path=a.mp4", "output=[mp4,images]"])
    assert both[-1] == "output.format=[mp4,images]"  # merged presets alone keep the last
    cfg = compose_checked(both, multirun=False)
    assert [fmt.value for fmt in cfg.output.format] == ["mp4", "images"]
    assert compose_checked(expand_lists(["input.path=a.mp4", "styles=ink"])).styles == ["ink"]
    assert "did you mean 'iter'?" in error_of("seed_behavior=iterr")


def test_a_bare_word_suggests_input_path_and_flag_values_are_not_bare(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    with pytest.raises(RotoscopeError, match=r"give the input as input.path=.*clip\.mp4"):
        check_bare_words([str(clip)])
    with pytest.raises(RotoscopeError, match="settings are key=value"):
        check_bare_words(["strength"])
    check_bare_words(["--cfg", "job", "-cn", "config", "input.path=a.mp4"])
    assert job_config_requested(["input.path=a.mp4", "--cfg", "job"])
    assert not job_config_requested(["--cfg", "hydra"])
    assert overrides_of(["-m", "--cfg", "job", "a=1"]) == ["a=1"]


def test_import_deforum_help_names_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.import_deforum import main as import_main

    with pytest.raises(SystemExit):
        import_main(["--help"])
    assert capsys.readouterr().out.startswith("usage: rotoscope-import-deforum ")
