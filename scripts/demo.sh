#!/usr/bin/env bash
# The example job, from nothing: set up .venv, build the offline random-weight demo
# model, make a sample clip with sound, render a keyframed animation of it and print
# where the video is.
# Extra arguments are passed to rotoscope (e.g. output=webm steps=4).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# transformers/diffusers print import-time notices and save progress bars; not useful here
export TRANSFORMERS_VERBOSITY=error DIFFUSERS_VERBOSITY=error HF_HUB_DISABLE_PROGRESS_BARS=1
.venv/bin/python scripts/make_tiny_models.py --out models/tiny >/dev/null
.venv/bin/python scripts/make_sample_clip.py samples/clip.mp4 >/dev/null
# a keyframed prompt animation (winter -> spring -> summer, strength easing 0.65 -> 0.45)
# with the tiny kohya-format LoRA on every frame (constant, so fused into the model)
video=$(.venv/bin/rotoscope model=tiny input.path=samples/clip.mp4 name=demo \
  keyframes=keyframes/seasons.yaml +model.loras.sd15_kohya=0.6 steps=8 seed=7 "$@")
echo "demo video: $video"
