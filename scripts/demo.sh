#!/usr/bin/env bash
# The example job, from nothing: set up .venv, build the offline demo model, make a
# sample clip with sound, render a keyframed animation of it with temporal coherence and
# a 3D fly-through from its first frame, print where the videos are, and how much the
# animation flickers next to the same clip rendered frame by frame, and its report page.
# Extra arguments are passed to rotoscope (e.g. output=webm steps=4).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# transformers/diffusers print import-time notices and save progress bars; not useful here
export TRANSFORMERS_VERBOSITY=error DIFFUSERS_VERBOSITY=error HF_HUB_DISABLE_PROGRESS_BARS=1
.venv/bin/python scripts/make_tiny_models.py --out models/tiny >/dev/null
.venv/bin/python scripts/make_sample_clip.py samples/clip.mp4 --still samples/still.png >/dev/null
# a keyframed prompt animation (winter -> spring -> summer, strength easing 0.65 -> 0.45)
# with the tiny kohya-format LoRA on every frame (constant, so fused into the model),
# each frame carrying the one before along the clip's motion (coherence=full)
demo=(model=tiny input.path=samples/clip.mp4 keyframes=keyframes/seasons.yaml
      +model.loras.sd15_kohya=0.6 steps=8 seed=7)
video=$(.venv/bin/rotoscope "${demo[@]}" coherence=full name=demo "$@")
# the same animation frame by frame, only to measure its flicker (no video)
.venv/bin/rotoscope "${demo[@]}" coherence=none name=demo-frame-by-frame \
  "stages=[plan,render,metrics]" "$@" >/dev/null
# a 3D fly-through from a still (Deforum's 3D mode): each frame is the one before, seen by
# a camera moving forward through its depth and turning, then repainted; the tiny depth
# model stands in for MiDaS, and the depth of every frame is written beside the video.
# With Deforum's diffusion cadence 2, every other frame is diffused and the frames between
# are tweened by the camera's motion (half the diffusions)
flythrough=$(.venv/bin/rotoscope model=tiny input.path=samples/still.png input.repeat=36 \
  input.fps=12 keyframes=keyframes/forest_flythrough.yaml animation.depth.model=tiny steps=8 \
  cadence.every=2 name=demo-3d "$@")
echo "demo video: $video"
echo "3D fly-through (diffusion cadence 2): $flythrough (and its depth: ${flythrough%.*}-depth.mp4)"
echo "report page (open it in a browser): $(dirname "$video")/report.html"
.venv/bin/python - "$(dirname "$video")" outputs/demo-frame-by-frame <<'PY'
import json, sys
coherent, alone = (json.load(open(f"{folder}/metrics.json")) for folder in sys.argv[1:])
print(
    f"flicker (warp error, lower is steadier): {coherent['warp_error']:.5f} with "
    f"coherence=full, {alone['warp_error']:.5f} frame by frame "
    f"({alone['warp_error'] / coherent['warp_error']:.1f}x); the source itself "
    f"{coherent['source_warp_error']:.5f}"
)
PY
