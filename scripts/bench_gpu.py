"""SD 1.5 at full size on a CUDA GPU: a naive diffusers loop against rotoscope.

What is measured: img2img of the same 512x512 clip, strength 0.5 x 20 steps (10
denoising steps) with classifier-free guidance (scale 7), Euler a, one seed per frame,
with a random-weight Stable Diffusion 1.5 built locally from SD 1.5's real component
configs (UNet 860M parameters, the KL VAE, a CLIP ViT-L/14 text encoder; speed does not
depend on weight values, and nothing is downloaded). Two sides, measured in the same
run, in separate processes:

* **naive**: what a user writes by hand: ``StableDiffusionImg2ImgPipeline`` in fp16 on
  the GPU, one frame per call, each PNG saved before the next frame starts;
* **rotoscope**: the CLI, with ``render.batch_size`` frames per call (``--batch``), the
  decode/PNG/fsync overlap, fp16, SDPA attention and channels_last (its defaults on
  CUDA), and with ``--compile`` a second run with ``runtime.compile=true``.

Compared: frames per second of render time (model loading left out on both sides;
rotoscope's ``render_seconds`` from ``report.json``, which includes its first-frame
warm-up, as the naive loop's time includes its own). Printed: both rates and the ratio.

Without a CUDA GPU there is nothing to measure: the script says so and exits 0.
``--cpu-check`` runs the same steps on the CPU with the same full-size model at a toy
image size and step count, to check the script itself (its figures mean nothing).

    .venv/bin/python scripts/bench_gpu.py [--frames 48] [--batch 8] [--compile]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (
    PYTHON,
    add_common_options,
    bench_env,
    cli_command,
    make_clip,
    print_table,
    run_in_tempdir,
    run_quiet,
    timed_run,
    tiny_sd15,
)

PROMPT = "a watercolor painting of a street, soft light"
SEED = 7

# Stable Diffusion 1.5's component configs (stable-diffusion-v1-5/stable-diffusion-v1-5).
UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, center_input_sample=False,
    flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                      "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                    "CrossAttnUpBlock2D"),
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, downsample_padding=1,
    mid_block_scale_factor=1, act_fn="silu", norm_num_groups=32, norm_eps=1e-5,
    cross_attention_dim=768, attention_head_dim=8,
)  # fmt: skip
VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
    layers_per_block=2, act_fn="silu", latent_channels=4, norm_num_groups=32, sample_size=512,
    scaling_factor=0.18215,
)  # fmt: skip
TEXT = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
    num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
    projection_dim=768,
)  # fmt: skip
SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1,
)  # fmt: skip

NAIVE_LOOP = """\
import json, sys, time, warnings
from pathlib import Path

import imageio_ffmpeg
import torch
from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionImg2ImgPipeline
from PIL import Image

warnings.simplefilter("ignore")  # random weights overflow fp16 now and then: NaN pixels
clip, model, out, device = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
steps, frames = int(sys.argv[5]), int(sys.argv[6])
dtype = torch.float16 if device == "cuda" else torch.float32
pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
    model, torch_dtype=dtype, safety_checker=None, requires_safety_checker=False
).to(device)
pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
pipe.set_progress_bar_config(disable=True)
out.mkdir(parents=True, exist_ok=True)
reader = imageio_ffmpeg.read_frames(clip)
meta = next(reader)
started = time.time()
count = 0
for index, raw in enumerate(reader):
    if index >= frames:
        break
    frame = Image.frombytes("RGB", meta["size"], raw)
    image = pipe(prompt=PROMPT, image=frame, strength=0.5, guidance_scale=7.0,
                 num_inference_steps=steps,
                 generator=torch.Generator("cpu").manual_seed(SEED)).images[0]
    image.save(out / f"{index:06d}.png")
    count += 1
if device == "cuda":
    torch.cuda.synchronize()
print(json.dumps({"frames": count, "seconds": time.time() - started}))
"""


def build_sd15(folder: Path, tokenizer_dir: Path, device: str) -> Path:
    """A random-weight SD 1.5 img2img pipeline saved (fp16) as a diffusers folder."""
    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionImg2ImgPipeline,
        UNet2DConditionModel,
    )
    from diffusers.utils import logging as diffusers_logging
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    diffusers_logging.set_verbosity_error()  # notes on casting a random VAE to fp16
    diffusers_logging.disable_progress_bar()

    # the tiny models' tokenizer: its ids all fall inside CLIP's 49408-token table
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(0)
    with torch.device(device):  # initialising 1B parameters is much faster on a GPU
        unet = UNet2DConditionModel(**UNET)
        vae = AutoencoderKL(**VAE)
        text = CLIPTextModel(
            CLIPTextConfig(
                **TEXT, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )  # fmt: skip
    pipe = StableDiffusionImg2ImgPipeline(
        vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
        scheduler=PNDMScheduler(**SCHEDULER), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.to(torch.float16).save_pretrained(str(folder))
    return folder


def body(args: argparse.Namespace, tmp: Path) -> bool:
    import torch

    env = bench_env(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    size, steps, frames = (64, 2, 3) if args.cpu_check else (512, 20, args.frames)
    tiny = tiny_sd15(args.models, tmp, env)
    model = build_sd15(tmp / "sd15-random", tiny / "tokenizer", device)
    clip = make_clip(tmp / "clip.mp4", frames, 24, size, size, env)
    naive_script = tmp / "naive.py"
    naive_script.write_text(f"PROMPT = {PROMPT!r}\nSEED = {SEED}\n" + NAIVE_LOOP)
    naive = json.loads(
        run_quiet(
            [PYTHON, str(naive_script), str(clip), str(model), str(tmp / "naive"), device,
             str(steps), str(frames)],
            env=env,
        ).strip().splitlines()[-1]
    )  # fmt: skip
    rows = [["naive diffusers loop", naive["frames"], naive["seconds"],
             naive["frames"] / naive["seconds"]]]  # fmt: skip
    runs = [("rotoscope", [])] + ([("rotoscope + compile", ["runtime.compile=true"])]
                                   if args.compile else [])  # fmt: skip
    rates = {}
    for label, extra in runs:
        name = label.replace(" ", "").replace("+", "-")
        cmd = cli_command(
            clip, model, tmp / "outputs", name, prompt=PROMPT, steps=steps, strength=0.5,
            seed=SEED, guidance=7.0,
        )  # fmt: skip
        cmd = [c for c in cmd if c != "runtime=cpu"]  # the GPU when there is one
        run = timed_run(
            [*cmd, f"runtime.device={device}", f"render.batch_size={args.batch}",
             "stages=[plan,render]", *extra],
            env, tmp,
        )  # fmt: skip
        if run.proc.returncode != 0:
            print(run.proc.stderr[-3000:])
            raise SystemExit(f"{label}: the CLI failed")
        report = json.loads((tmp / "outputs" / name / "report.json").read_text())
        rates[label] = report["rendered"] / report["render_seconds"]
        rows.append([f"{label} (batch {args.batch})", report["rendered"],
                     report["render_seconds"], rates[label]])  # fmt: skip
    print(f"SD 1.5 (random weights, full size) img2img {size}x{size}, strength 0.5 x {steps} "
          f"steps, CFG 7, Euler a, on {describe(device)}\n")  # fmt: skip
    print_table(["side", "frames", "render s", "frames/s"], rows)
    base = naive["frames"] / naive["seconds"]
    for label, rate in rates.items():
        print(f"\n{label} / naive: {rate / base:.2f}x")
    if args.cpu_check:
        print("\n(--cpu-check: the script ran end to end; these figures are not a benchmark)")
    return True


def describe(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(0) if device == "cuda" else "the CPU (--cpu-check)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8, help="rotoscope's render.batch_size")
    parser.add_argument("--compile", action="store_true", help="also run runtime.compile=true")
    parser.add_argument(
        "--cpu-check", action="store_true", help="check the script on the CPU (toy sizes)"
    )
    add_common_options(parser)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available() and not args.cpu_check:
        print(
            "bench_gpu.py: no CUDA GPU on this machine (torch.cuda.is_available() is False), "
            "so there is nothing to measure; run it where there is one. "
            "(--cpu-check runs the same steps at toy size on the CPU to check the script.)"
        )
        sys.exit(0)
    run_in_tempdir("rotoscope-bench-gpu-", args.keep, body, args)


if __name__ == "__main__":
    main()
