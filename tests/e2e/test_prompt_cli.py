"""A1111's prompt language through the command line: LoRAs, embeddings, prompt editing,
styles, CLIP skip, LCM and Deforum files, on the tiny models and tiny adapters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from support import DATA
from support.cli import rotoscope
from support.media import write_image
from support.run_files import frame_file, frames_of, preview_plan

from pipeline.render.pngmeta import read_png_metadata

DEFORUM = DATA / "deforum"


@pytest.fixture
def still(tmp_path: Path) -> Path:
    gradient = np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3).astype(np.uint8)
    return write_image(tmp_path / "still.png", gradient)


@pytest.fixture
def folders(tmp_path: Path, tiny_adapters) -> tuple[Path, Path]:
    """Copies of the tiny adapter folders this test may change."""
    loras, embeddings = tmp_path / "Lora", tmp_path / "embeddings"
    shutil.copytree(tiny_adapters.loras, loras)
    shutil.copytree(tiny_adapters.embeddings, embeddings)
    return loras, embeddings


def plan_rows(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run_dir / "plan.jsonl").read_text().splitlines()]


def test_a_lora_fades_out_and_a_changed_file_rerenders_its_frames(
    tiny_models, still: Path, folders: tuple[Path, Path], tmp_path: Path
) -> None:
    loras, embeddings = folders
    keyframes = tmp_path / "fade.yaml"
    keyframes.write_text('prompts:\n  0: "a cat <lora:sd15_kohya:0.8>, sd15_style"\n  2: "a cat"\n')
    args = (
        f"input.path={still}", "input.repeat=5", f"model.path={tiny_models.sd15}",
        "runtime=cpu", "steps=3", "strength=0.7", "output=images", f"keyframes={keyframes}",
        f"model.lora_dir={loras}", f"model.embeddings_dir={embeddings}",
    )  # fmt: skip
    first = rotoscope(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "outputs/still"
    rows = plan_rows(run_dir)
    assert [row.get("loras") for row in rows] == [
        {"sd15_kohya": 0.8}, {"sd15_kohya": 0.4}, None, None, None,
    ]  # fmt: skip
    parameters = read_png_metadata(frame_file(run_dir, 0))["parameters"]
    assert parameters.splitlines()[0] == "a cat <lora:sd15_kohya:0.8>, sd15_style"
    assert 'Lora hashes: "sd15_kohya: ' in parameters and 'TI hashes: "sd15_style: ' in parameters
    frames = frames_of(run_dir)
    assert not np.array_equal(frames[0], frames[2])
    # the LoRA file changes (retrained): the two frames that use it render again
    lora = loras / "sd15_kohya.safetensors"
    lora.write_bytes(lora.read_bytes())  # same content, new file: its identity changes
    again = rotoscope(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "2 rendered (2 changed network_files); 3 reused" in again.stderr
    assert all(np.array_equal(a, b) for a, b in zip(frames, frames_of(run_dir), strict=True))


def test_prompt_editing_styles_clip_skip_and_lcm(tiny_models, still: Path, tmp_path: Path) -> None:
    styles = tmp_path / "styles.csv"
    styles.write_text('name,prompt,negative_prompt\nink,"ink drawing of {prompt}",color\n')
    args = (
        f"input.path={still}", "input.repeat=2", f"model.path={tiny_models.sd15}",
        "runtime=cpu", "prompt=a [cat:dog:0.5] in [snow|rain]", "styles=[ink]",
        f"styles_file={styles}", "clip_skip=2", "sampler=LCM", "steps=2", "strength=0.6",
        "guidance_scale=1.5", "output=images",
    )  # fmt: skip
    result = rotoscope(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "outputs/still"
    parameters = read_png_metadata(frame_file(run_dir, 0))["parameters"]
    lines = parameters.splitlines()
    assert lines[0] == "ink drawing of a [cat:dog:0.5] in [snow|rain]"
    assert lines[1] == "Negative prompt: color"
    assert "Sampler: LCM" in lines[2] and "Clip skip: 2" in lines[2]
    fresh = rotoscope(*args, "name=fresh", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert all(
        np.array_equal(a, b)
        for a, b in zip(frames_of(run_dir), frames_of(tmp_path / "outputs/fresh"), strict=True)
    )


@pytest.mark.parametrize(
    ("prompt", "needle"),
    [
        ("a cat <lora:sd15_kohyaa:1>", "LoRA 'sd15_kohyaa' not found in"),
        ("a cat <lora:../sd15/unet/x:1>", "reaches outside model.lora_dir"),
        ("a cat <lora:sdxl_kohya:1>", "is an SDXL LoRA but the model is SD 1.x/2.x"),
        ("a cat AND a dog", "composable prompts"),
        ("a cat --neg embedding:nothing_here", "embedding 'nothing_here' not found"),
    ],
)
def test_prompt_mistakes_are_one_line_exit_2(
    tiny_models, tiny_adapters, still: Path, tmp_path: Path, prompt: str, needle: str
) -> None:
    result = rotoscope(
        f"input.path={still}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=2",
        f"model.lora_dir={tiny_adapters.loras}", f"model.embeddings_dir={tiny_adapters.embeddings}",
        f"prompt={prompt}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and needle in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_newer_deforum_file_renders(
    tiny_models, still: Path, folders: tuple[Path, Path], tmp_path: Path
) -> None:
    """An A1111 1.9-era Deforum file: steps 1 at strength 0.35, sampler_name + scheduler,
    CLIP skip scheduling, a zoom of 0 at one key, a LoRA tag, an embedding, prompt
    editing and alternation in its prompts."""
    loras, embeddings = folders
    shutil.copy(loras / "sd15_kohya.safetensors", loras / "papercut.safetensors")
    shutil.copy(embeddings / "sd15_style.pt", embeddings / "EasyNegative.pt")
    shutil.copy(embeddings / "sd15_learned.bin", embeddings / "bad-hands-5.bin")
    result = rotoscope(
        f"input.path={still}", f"keyframes={DEFORUM / 'a1111_2024_settings.txt'}",
        f"model.path={tiny_models.sd15}", "runtime=cpu", "input.max_frames=4",
        "input.width=64", "input.height=64", f"model.lora_dir={loras}",
        f"model.embeddings_dir={embeddings}", "output=images", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "outputs/still"
    assert len(frames_of(run_dir)) == 4
    parameters = read_png_metadata(frame_file(run_dir, 1))["parameters"]
    assert "Steps: 1, Sampler: DPM++ 2M Karras" in parameters and "Clip skip: 2" in parameters
    assert "papercut: " in parameters and "bad-hands-5: " in parameters
    # the prompts of frames 2-3 edit: they count steps as A1111's img2img, in their rows,
    # the plan's summary line and their frames' metadata
    counted = [row.get("prompt_editing_steps") for row in plan_rows(run_dir)]
    assert counted == [None, None, "a1111", "a1111"]
    assert "prompt editing counts steps as a1111 does" in result.stderr
    plan = read_png_metadata(frame_file(run_dir, 2))["rotoscope"]["plan"]
    assert plan["prompt_editing_steps"] == "a1111"


def test_prompt_editing_steps_reaches_only_the_rows_that_edit(
    tiny_models, still: Path, tmp_path: Path
) -> None:
    """``prompt_editing_steps=a1111`` goes into the rows whose prompt uses prompt
    editing; the others keep the rows (and frame keys) of the default."""
    args = (
        f"input.path={still}", "input.repeat=4", f"model.path={tiny_models.sd15}",
        "prompts={0: a cat, 2: a [cat:dog:0.5]}", "prompt_blend=none", "stages=[plan]",
    )  # fmt: skip
    default = rotoscope(*args, "name=default", cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    counted = rotoscope(*args, "name=a1111", "prompt_editing_steps=a1111", cwd=tmp_path)
    assert counted.returncode == 0, counted.stderr
    before = preview_plan(tmp_path / "outputs/default")  # stages=[plan]: a preview
    after = preview_plan(tmp_path / "outputs/a1111")
    assert [row.get("prompt_editing_steps") for row in after] == [None, None, "a1111", "a1111"]
    assert before[:2] == after[:2] and "prompt_editing_steps" not in json.dumps(before)
    assert "prompt editing counts steps as a1111 does" in counted.stderr
    assert "prompt editing" not in default.stderr
