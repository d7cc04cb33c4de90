"""LoRA tags, embedding names and styles in the plan: files found safely, weights per frame,
one-line errors (no model needed: the plan only reads folders and file stats)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config.schema import InputConfig, ModelConfig, PromptBlend, RunConfig
from pipeline.errors import RotoscopeError
from pipeline.plan.build import build_plan
from pipeline.plan.networks import (
    Networks,
    embedding_name,
    lora_tags,
    strip_network_tags,
    words,
)
from pipeline.records.manifest import frame_key


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """A LoRA folder (ink, watercolor, styles/pencil) and an embeddings folder."""
    loras, embeddings = tmp_path / "Lora", tmp_path / "embeddings"
    (loras / "styles").mkdir(parents=True)
    embeddings.mkdir()
    for name in ("ink.safetensors", "watercolor.pt", "styles/pencil.safetensors"):
        (loras / name).write_bytes(b"lora")
    for name in ("EasyNegative.safetensors", "bad-hands-5.pt", "my_style.bin"):
        (embeddings / name).write_bytes(b"embedding")
    (tmp_path / "secret.safetensors").write_bytes(b"not yours")
    return loras, embeddings


def make_cfg(folders: tuple[Path, Path], **values: object) -> RunConfig:
    loras, embeddings = folders
    model = ModelConfig(path="m", lora_dir=str(loras), embeddings_dir=str(embeddings))
    cfg = RunConfig(input=InputConfig(path="clip.mp4"), model=model)
    for key, value in values.items():
        setattr(cfg, key, value)
    return cfg


def plan(folders: tuple[Path, Path], frames: int = 3, **values: object):
    return build_plan(make_cfg(folders, **values), frames, 64, 48, 12.0).rows


# --- tags ---


def test_lora_tags_and_weights() -> None:
    tags = lora_tags("a <lora:ink:0.8>, <lora:pencil>, <lyco:old:0.5> <lora:x:0.3:0.3>", "cli")
    assert [(t.name, t.weight) for t in tags] == [
        ("ink", 0.8), ("pencil", 1.0), ("old", 0.5), ("x", 0.3),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("<lora:ink:strong>", "weight 'strong' is not a number"),
        ("<lora:ink:0.5:0.8>", "separate text-encoder and UNet weights"),
        ("<hypernet:anime:1>", "hypernetworks are not supported"),
        ("<wildcard:colors>", "not an extra network rotoscope knows"),
    ],
)
def test_bad_tags_are_one_line(text: str, needle: str) -> None:
    with pytest.raises(RotoscopeError) as info:
        lora_tags(text, "command line")
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_the_encoder_never_sees_tags() -> None:
    """As in A1111 the tag is cut out exactly (the comma before it stays);
    ComfyUI's embedding:name becomes the name."""
    text = "a cat, <lora:ink:0.8>, (embedding:EasyNegative.safetensors:1.2)"
    assert strip_network_tags(text) == "a cat, , (EasyNegative:1.2)"


def test_clip_words() -> None:
    assert words("Bad-Hands-5, (EasyNegative:1.2) it's") == [
        "bad", "-", "hands", "-", "5", ",", "(", "easynegative", ":", "1", ".", "2", ")",
        "it", "'s",
    ]  # fmt: skip


# --- finding files, safely ---


@pytest.mark.parametrize(
    "name",
    ["../secret", "../../etc/passwd", "/etc/passwd", "~/x", "styles/../../secret", "..\\secret"],
)
def test_names_never_reach_outside_the_folder(folders: tuple[Path, Path], name: str) -> None:
    with pytest.raises(RotoscopeError) as info:
        plan(folders, prompt=f"a cat <lora:{name}:1>")
    assert "reaches outside model.lora_dir" in str(info.value)


def one_line_refusal(folders: tuple[Path, Path], prompt: str) -> str:
    with pytest.raises(RotoscopeError) as info:
        plan(folders, prompt=prompt)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", ["../secret", "../../etc/passwd", "/etc/passwd", "..\\secret"])
def test_embedding_names_never_reach_outside_the_folder(
    folders: tuple[Path, Path], name: str
) -> None:
    message = one_line_refusal(folders, f"a cat --neg embedding:{name}")
    assert f"embedding name '{name}' reaches outside model.embeddings_dir ({folders[1]})" in message


@pytest.mark.parametrize(
    ("prompt", "name"),
    [
        ("a cat <lora:escape:1>", "escape"),  # Lora/escape.safetensors -> ../secret...
        ("a cat <lora:outside/secret:1>", "outside/secret"),  # Lora/outside -> its parent
        ("a cat --neg embedding:escape", "escape"),
        ("a cat, escape", "escape"),  # an embedding named as words
    ],
)
def test_a_link_out_of_the_folder_is_refused(
    folders: tuple[Path, Path], prompt: str, name: str
) -> None:
    """The name's text stays inside, but the file it finds is a link to a file outside:
    the folder's real path decides, not the name."""
    loras, embeddings = folders
    secret = loras.parent / "secret.safetensors"
    (loras / "escape.safetensors").symlink_to(secret)
    (loras / "outside").symlink_to(loras.parent, target_is_directory=True)
    (embeddings / "escape.safetensors").symlink_to(secret)
    message = one_line_refusal(folders, prompt)
    kind, key, folder = (
        ("LoRA", "model.lora_dir", loras) if "lora" in prompt else
        ("embedding", "model.embeddings_dir", embeddings)
    )  # fmt: skip
    assert f"{kind} name '{name}' reaches outside {key} ({folder})" in message
    assert f"links to {secret}" in message


def test_links_that_stay_inside_are_followed(folders: tuple[Path, Path], tmp_path: Path) -> None:
    """A link to another file of the folder, and a folder that is itself a link."""
    loras, embeddings = folders
    (loras / "alias.safetensors").symlink_to(loras / "styles/pencil.safetensors")
    linked = tmp_path / "linked_loras"
    linked.symlink_to(loras, target_is_directory=True)
    rows = plan((linked, embeddings), prompt="a cat <lora:alias:1> <lora:ink:0.5>")
    assert rows[0].loras == {"alias": 1.0, "ink": 0.5}


def test_subfolders_and_suffixes(folders: tuple[Path, Path]) -> None:
    networks = Networks(str(folders[0]), str(folders[1]))
    assert networks.lora_file("pencil").name == "pencil.safetensors"  # found by name
    assert networks.lora_file("styles/pencil") == folders[0] / "styles/pencil.safetensors"
    assert networks.lora_file("watercolor.pt").suffix == ".pt"


def test_a_missing_lora_lists_the_folder(folders: tuple[Path, Path]) -> None:
    with pytest.raises(RotoscopeError) as info:
        plan(folders, prompt="a cat <lora:inkk:1>")
    message = str(info.value)
    assert "LoRA 'inkk' not found in" in message and "\n" not in message
    assert "has: ink, pencil, watercolor" in message  # the closest name first


def test_a_missing_lora_folder_says_which_key(tmp_path: Path) -> None:
    with pytest.raises(RotoscopeError, match=r"set model\.lora_dir"):
        plan((tmp_path / "nowhere", tmp_path), prompt="<lora:ink:1>")


# --- LoRA weights in the rows ---


def test_plain_rows_have_no_lora_fields_and_keep_their_keys(folders: tuple[Path, Path]) -> None:
    row = plan(folders, prompt="a cat")[0]
    assert row.loras is None and row.network_files is None and row.clip_skip is None
    assert not {"loras", "network_files", "clip_skip"} & set(json.loads(row.to_json()))


def test_a_lora_fades_out_between_keyframes(folders: tuple[Path, Path]) -> None:
    rows = plan(folders, 5, prompts={"0": "a cat <lora:ink:0.8>", "4": "a dog"})
    assert [row.loras for row in rows] == [
        {"ink": 0.8}, {"ink": 0.6}, {"ink": 0.4}, {"ink": 0.2}, None,
    ]  # fmt: skip
    assert set(rows[2].network_files or {}) == {"lora:ink"}
    assert rows[4].network_files is None


def test_hard_cuts_switch_loras_at_the_key(folders: tuple[Path, Path]) -> None:
    rows = plan(
        folders, 4, prompts={"0": "<lora:ink:1>", "2": "<lora:watercolor:0.5>"},
        prompt_blend=PromptBlend.none,
    )  # fmt: skip
    assert [row.loras for row in rows] == [{"ink": 1.0}] * 2 + [{"watercolor": 0.5}] * 2


def test_model_loras_apply_everywhere_and_add_to_tags(folders: tuple[Path, Path]) -> None:
    cfg = make_cfg(folders, prompts={"0": "a <lora:ink:0.5>", "2": "b"})
    cfg.model.loras = {"ink": 0.25, "styles/pencil": 1.0}
    rows = build_plan(cfg, 3, 64, 48, 12.0).rows
    assert rows[0].loras == {"ink": 0.75, "styles/pencil": 1.0}
    assert rows[2].loras == {"ink": 0.25, "styles/pencil": 1.0}


def test_zero_weight_is_no_lora(folders: tuple[Path, Path]) -> None:
    row = plan(folders, prompt="a cat <lora:ink:0>")[0]
    assert row.loras is None and row.network_files is None


def test_a_lora_in_a_negative_prompt_is_refused(folders: tuple[Path, Path]) -> None:
    with pytest.raises(RotoscopeError, match="is in a negative prompt"):
        plan(folders, prompt="a cat --neg blurry <lora:ink:1>")


def test_a_changed_file_changes_the_key(folders: tuple[Path, Path]) -> None:
    row = plan(folders, prompt="a cat <lora:ink:0.8>")[0]
    before = frame_key(row, "pixels", "model")
    lora = folders[0] / "ink.safetensors"
    lora.write_bytes(b"retrained lora")
    refreshed = Networks(str(folders[0]), str(folders[1])).refreshed([row])[0]
    assert frame_key(refreshed, "pixels", "model") != before
    lora.unlink()
    with pytest.raises(RotoscopeError, match="LoRA 'ink' not found"):
        Networks(str(folders[0]), str(folders[1])).refreshed([row])


# --- embeddings ---


def test_embeddings_are_found_by_their_name_as_words(folders: tuple[Path, Path]) -> None:
    rows = plan(folders, prompt="(easynegative:1.2), a cat, bad-hands-5 --neg my_style, badhands")
    assert sorted(map(embedding_name, rows[0].network_files or {})) == [
        "EasyNegative", "bad-hands-5", "my_style",
    ]  # fmt: skip
    assert plan(folders, prompt="easynegatives, bad hands 5")[0].network_files is None


def test_an_explicit_embedding_must_exist(folders: tuple[Path, Path]) -> None:
    row = plan(folders, prompt="a cat --neg embedding:EasyNegative, blurry")[0]
    assert list(row.network_files or {}) == ["embedding:EasyNegative"]
    with pytest.raises(RotoscopeError) as info:
        plan(folders, prompt="a cat --neg embedding:EasyNegativeV2")
    assert "embedding 'EasyNegativeV2' not found" in str(info.value)
    assert "has: EasyNegative" in str(info.value)


# --- styles, AND, few steps, CLIP skip ---


def test_styles_expand_like_a1111(folders: tuple[Path, Path], tmp_path: Path) -> None:
    styles = tmp_path / "styles.csv"
    styles.write_text(
        "name,prompt,negative_prompt\n"
        'ink,"ink drawing of {prompt}, cross-hatching","color, blurry"\n'
        "film,35mm film grain,\n",
        encoding="utf-8-sig",
    )
    row = plan(folders, prompt="a cat --neg dogs", styles=["ink", "film"], styles_file=str(styles))[
        0
    ]
    assert row.prompt == "ink drawing of a cat, cross-hatching, 35mm film grain"
    assert row.negative_prompt == "dogs, color, blurry"
    with pytest.raises(RotoscopeError) as info:
        plan(folders, prompt="x", styles=["inky"], styles_file=str(styles))
    assert "style 'inky' is not in" in str(info.value) and "film, ink" in str(info.value)
    with pytest.raises(RotoscopeError, match=r"styles_file .* does not exist"):
        plan(folders, prompt="x", styles=["ink"], styles_file=str(tmp_path / "none.csv"))


def test_and_is_refused_at_plan_time(folders: tuple[Path, Path]) -> None:
    with pytest.raises(RotoscopeError, match="AND"):
        plan(folders, prompt="a cat AND a dog")


def test_steps_times_strength_below_one_plans(folders: tuple[Path, Path]) -> None:
    row = plan(folders, prompt="x", steps="1", strength="0.35", sampler="LCM")[0]
    assert (row.steps, row.strength, row.sampler) == (1, 0.35, "LCM")


def test_clip_skip_is_in_the_row_only_when_not_one(folders: tuple[Path, Path]) -> None:
    assert plan(folders, prompt="x", clip_skip=2)[0].clip_skip == 2
    assert plan(folders, prompt="x", clip_skip=1)[0].clip_skip is None
