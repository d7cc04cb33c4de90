"""Structured config: the schema every Hydra config group is checked against.

The dataclasses are registered in Hydra's ConfigStore, so an unknown key or a value of
the wrong type fails when the config is composed, before any frame is decoded or any
model loaded. Field comments are the reference for the README's configuration table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from pipeline.config.paths import rotoscope_home


class SeedBehavior(Enum):
    fixed = "fixed"  # every frame uses the base seed (locked: the default)
    iter = "iter"  # +1 every seed_iter_n frames
    ladder = "ladder"  # +2, -1, +2, -1, ... : s, s+2, s+1, s+3, s+2, ...
    alternate = "alternate"  # +1, -1, ... : s, s+1, s, s+1, ...
    random = "random"  # drawn per frame from the base seed (still reproducible)
    schedule = "schedule"  # the seed_schedule's value, rounded


class ResizeMode(Enum):
    """How a frame is brought to the target size when the aspect ratio differs."""

    crop = "crop"  # scale to cover the target, cut the overflow (centred)
    fit = "fit"  # scale to fit inside the target, pad with input.background
    stretch = "stretch"  # scale each axis independently


class BadFramePolicy(Enum):
    """What to do with an input frame that cannot be decoded (a corrupt image)."""

    skip = "skip"  # leave that output frame out (reported)
    repeat = "repeat"  # use the previous good input frame in its place (reported)
    stop = "stop"  # fail, keeping the frames already rendered


class OutputFormat(Enum):
    """What the assemble stage writes."""

    mp4 = "mp4"  # H.264 yuv420p, BT.709 tagged, audio as AAC
    webm = "webm"  # VP9, audio as Opus
    gif = "gif"  # palette-optimised GIF, no audio
    images = "images"  # a folder of PNGs (source file names kept for folder input)
    prores_alpha = "prores_alpha"  # ProRes 4444 in .mov, the mask as alpha; audio as AAC
    webm_alpha = "webm_alpha"  # VP9 with alpha (yuva420p) in .webm, the mask as alpha


class FrameInterpolation(Enum):
    """How the frames between two rendered ones are made (``output.interpolation``)."""

    flow = "flow"  # optical flow both ways between the frames, occlusion-aware (no weights)
    minterpolate = "minterpolate"  # ffmpeg's motion-compensated minterpolate filter
    rife = "rife"  # RIFE 4.6 from a local weights file (output.interpolation_model)
    nearest = "nearest"  # no new pictures: the nearest rendered frame, repeated or dropped


class Dtype(Enum):
    """Torch dtype of the model weights; ``auto`` is fp16 on CUDA, fp32 elsewhere."""

    auto = "auto"
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


class ModelFamily(Enum):
    """Architecture family; ``auto`` reads it from the folder or checkpoint."""

    auto = "auto"
    sd15 = "sd15"
    sdxl = "sdxl"


# The side of the square whose area each family was trained at (input.size=auto): SD 1.x
# on 512x512 pictures, SDXL on about a million pixels in aspect-ratio buckets.
NATIVE_SIDE = {ModelFamily.sd15: 512, ModelFamily.sdxl: 1024}


class Interpolation(Enum):
    """How numeric schedules move between keyframes."""

    linear = "linear"
    hold = "hold"  # step: the last key's value until the next key
    cubic = "cubic"  # smooth Hermite curve through the keys (eases at the ends)


class PromptBlend(Enum):
    """How the conditioning moves from one prompt keyframe to the next."""

    linear = "linear"
    slerp = "slerp"  # spherical, per token vector
    none = "none"  # hard cut at each keyframe


class PromptEditingSteps(Enum):
    """Which denoising steps prompt editing (``[a:b:0.5]``, alternation too) counts."""

    rotoscope = "rotoscope"  # the steps that run (img2img at strength 0.5 runs half of them)
    a1111 = "a1111"  # as A1111's img2img: a schedule over all steps, counted from the first run


class AnimationMode(Enum):
    none = "none"  # each frame from its own input frame
    loopback = "loopback"  # each frame from the previous output, moved in 2D (Deforum "2D")
    # (OmegaConf reads an enum member by its name, and "3d" is not a Python identifier:
    # hence the assignment into the class namespace)

    # each frame from the previous output, moved by a 3D camera through its depth map
    # (Deforum "3D")
    locals()["3d"] = "3d"

    @property
    def loops(self) -> bool:
        """Whether each frame after the first starts from the previous output."""
        return self is not AnimationMode.none

    @property
    def in_3d(self) -> bool:
        return self.value == "3d"


class Border(Enum):
    """What fills the area a 2D loopback camera move (or a perspective flip) uncovers."""

    replicate = "replicate"  # the edge pixels, repeated (Deforum's default)
    reflect = "reflect"  # the picture mirrored at its edge
    wrap = "wrap"  # the opposite edge (tiles)
    zeros = "zeros"  # black


class PaddingMode(Enum):
    """What fills the area the 3D camera uncovers (torch's grid_sample padding, as in Deforum)."""

    border = "border"  # the edge pixels, repeated
    reflection = "reflection"  # the picture mirrored at its edge
    zeros = "zeros"  # black


class SamplingMode(Enum):
    """How the 3D warp resamples the previous frame."""

    bicubic = "bicubic"
    bilinear = "bilinear"
    nearest = "nearest"


class ColorCoherence(Enum):
    none = "none"
    lab = "lab"  # match each loopback input's LAB histograms to frame 0's output
    hsv = "hsv"  # ... its HSV histograms
    rgb = "rgb"  # ... its RGB histograms
    # match LAB histograms to the frames of a video (or one image): color_coherence_video
    video = "video"


class NoiseType(Enum):
    """The shape of the noise added to each loopback input."""

    gaussian = "gaussian"  # white noise (Deforum's "uniform" noise type)
    perlin = "perlin"  # white noise under a Perlin envelope: patches of more and less noise


class DepthModel(Enum):
    """Where the 3D camera's depth comes from."""

    # MiDaS v3 DPT-Hybrid, dpt_hybrid-midas-501f0c75.pt in depth.annotators (the depth
    # ControlNet preprocessor's file); stands for Deforum's default "Midas-3-Hybrid",
    # which in fact loads DPT-Large weights
    midas = "midas"
    zoe = "zoe"  # ZoeDepth, ZoeD_M12_N.pt in depth.annotators
    depth_anything = "depth_anything"  # Depth Anything V2, a transformers folder (depth.folder)
    tiny = "tiny"  # a tiny random Depth Anything for tests and the demo (make_tiny_models.py)
    none = "none"  # flat: every pixel at the same depth (Deforum's use_depth_warping off)


@dataclass
class DepthConfig:
    model: DepthModel = DepthModel.midas
    # A second model blended in: depth = midas_weight * model + (1 - midas_weight) * blend,
    # after each is normalised (Deforum's midas_weight); none for the model alone.
    blend: DepthModel = DepthModel.none
    midas_weight: float = 0.2
    # Where the weights are: the MiDaS and Zoe files (lllyasviel/Annotators), and the
    # Depth Anything V2 folder (a transformers model: config.json, weights,
    # preprocessor_config.json).
    annotators: str = "${controlnet.annotators}"
    folder: str = "${paths.models}/depth_anything_v2"


class HybridMotion(Enum):
    """How a loopback frame moves with the hybrid video (Deforum's hybrid_motion)."""

    none = "none"
    optical_flow = "optical_flow"  # along the dense flow between the video's frames
    perspective = "perspective"  # by a perspective fitted to that flow
    affine = "affine"  # by a rotation, scale and translation fitted to that flow


class HybridComposite(Enum):
    """When the hybrid video's frame is composited in (Deforum's hybrid_composite)."""

    none = "none"
    normal = "normal"  # into each loopback input, after the hybrid motion
    before_motion = "before_motion"  # into each loopback input, before the hybrid motion
    after_generation = "after_generation"  # onto each output, after img2img


class HybridMask(Enum):
    """What the composite goes through (Deforum's hybrid_comp_mask_type)."""

    none = "none"  # the video blended in evenly by alpha
    depth = "depth"  # the previous output's depth (white: far, where the picture stays)
    video_depth = "video_depth"  # the video frame's depth
    blend = "blend"  # the greys of picture and video blended by mask_blend_alpha
    difference = "difference"  # where picture and video differ


class HybridEqualize(Enum):
    """When the composite's mask is equalized (Deforum's hybrid_comp_mask_equalize)."""

    none = "none"
    before = "before"  # before its contrast
    after = "after"  # after its auto contrast
    both = "both"


@dataclass
class HybridConfig:
    # The video (or image folder, or one image) whose motion and picture drive a loopback,
    # aligned by frame number with the input's selection; unset: the input itself.
    video: str | None = None
    motion: HybridMotion = HybridMotion.none
    # Take the motion from the previous output to the video's frame instead of between
    # the video's frames (Deforum's hybrid_motion_use_prev_img).
    motion_from_output: bool = False
    # Optical flow only where it agrees forward and backward, feathered by this many
    # pixels (Deforum's hybrid_flow_consistency and hybrid_consistency_blur).
    flow_consistency: bool = False
    consistency_blur: float = 2.0
    # Schedule: how far along the video's optical flow each frame moves.
    flow_factor: str = "1"
    composite: HybridComposite = HybridComposite.none
    # Schedule: the video's share of the composite (0..1).
    alpha: str = "0.5"
    mask: HybridMask = HybridMask.none
    mask_invert: bool = False
    mask_equalize: HybridEqualize = HybridEqualize.none
    mask_auto_contrast: bool = False
    # Schedules shaping the mask: contrast about its mean; mask=blend's share of the
    # video's grey; the auto contrast's low and high percentiles.
    mask_contrast: str = "1"
    mask_blend_alpha: str = "0.5"
    mask_cutoff_low: str = "0"
    mask_cutoff_high: str = "100"

    @property
    def active(self) -> bool:
        return self.motion is not HybridMotion.none or self.composite is not HybridComposite.none


@dataclass
class AnimationConfig:
    mode: AnimationMode = AnimationMode.none
    # Loopback motion schedules (Deforum 2D): per-frame zoom factor, rotation in
    # degrees (counter-clockwise), translation in pixels, centre as fractions of the size.
    zoom: str = "1.0"
    angle: str = "0"
    translation_x: str = "0"
    translation_y: str = "0"
    transform_center_x: str = "0.5"
    transform_center_y: str = "0.5"
    # Gaussian noise added to each loopback input, in 0..1 image units.
    noise: str = "0"
    border: Border = Border.replicate
    color_coherence: ColorCoherence = ColorCoherence.none
    # 3D camera schedules (mode=3d), in Deforum's units: translation_x/y (above) and
    # translation_z per frame (200 is the distance to the nearest point of the scene;
    # +z moves forward), rotations in degrees per frame about the x, y and z axes.
    translation_z: str = "0"
    rotation_3d_x: str = "0"
    rotation_3d_y: str = "0"
    rotation_3d_z: str = "0"
    # The perspective camera: field of view in degrees (smaller: more depth), its near
    # and far planes, and the aspect ratio of its depth calculation (Deforum's).
    fov: str = "70"
    near: str = "200"
    far: str = "10000"
    aspect_ratio: str = "1"
    padding_mode: PaddingMode = PaddingMode.border
    sampling_mode: SamplingMode = SamplingMode.bicubic
    depth: DepthConfig = field(default_factory=DepthConfig)
    # Write a video of each output frame's depth beside the output (mode loopback or 3d).
    save_depth: bool = False
    # Schedule: each loopback input's pixel values multiplied by this (Deforum's contrast).
    contrast: str = "1"
    # Sharpen each loopback input (an unsharp mask), against loopback's blur: schedules
    # of the amount, the Gaussian kernel's size (odd) and sigma, and the threshold below
    # which a difference is left alone (0..255).
    anti_blur: bool = False
    anti_blur_amount: str = "0.1"
    anti_blur_kernel: str = "5"
    anti_blur_sigma: str = "1"
    anti_blur_threshold: str = "0"
    noise_type: NoiseType = NoiseType.gaussian
    # Perlin noise: schedules of its octaves and their persistence (amplitude ratio), and
    # the lattice cells across the width and height at the first octave.
    perlin_octaves: str = "4"
    perlin_persistence: str = "0.5"
    perlin_cells_x: int = 8
    perlin_cells_y: int = 8
    # Perspective flip: the picture tilted as a plane in 3D; schedules of its rotations
    # (degrees about z, x and y) and the field of view it is seen with.
    perspective_flip: bool = False
    perspective_flip_theta: str = "0"
    perspective_flip_phi: str = "0"
    perspective_flip_gamma: str = "0"
    perspective_flip_fv: str = "53"
    # color_coherence=video: the video (or image) whose frames the colours follow (unset:
    # the input), its frame taken every this many frames and held in between.
    color_coherence_video: str | None = None
    color_coherence_every: int = 1
    # Also match each generated frame's colours, after generation (Deforum's default;
    # off is Deforum's legacy_colormatch: only the input, before the noise).
    color_coherence_output: bool = False
    # Hybrid video: a second video's motion and picture in the loopback (Deforum's).
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    # Frame 0's strength when the loopback starts from an input image (Deforum's init
    # strength, 1 - its "strength"); unset: the strength schedule's.
    init_strength: float | None = None


class AttentionAnchors(Enum):
    """Which earlier frames a frame's self-attention also looks at (coherence.attention)."""

    first = "first"  # the first frame of its segment
    previous = "previous"  # the frame before it
    both = "both"  # first and previous (ControlVideo's choice)


class AttentionLayers(Enum):
    """Which UNet self-attention layers look at the anchors."""

    up = "up"  # the decoder (up blocks), where appearance is decided
    all = "all"  # every self-attention layer


class Reanchor(Enum):
    """Where a new segment (a new anchor frame) starts."""

    keyframes = "keyframes"  # at prompt keyframes where the prompt switches (blend none)
    cuts = "cuts"  # at scene cuts found in the source


@dataclass
class CoherenceConfig:
    # Cross-frame attention: each frame's self-attention also attends to its anchors'.
    attention: bool = False
    attention_anchors: AttentionAnchors = AttentionAnchors.first
    attention_layers: AttentionLayers = AttentionLayers.up
    # Schedule: the fraction of a frame's denoising steps (from the first) that use the
    # anchors.
    attention_steps: str = "0.5"
    # Carry the previous frame along the source's optical flow (where it is reliable).
    flow: bool = False
    # Schedules, 0..1: how much of what the previous frame's sampler added is carried into
    # each step's latents (residual latent fusion, the main ingredient); how much of the
    # previous output goes into the init picture (flow-guided init); how much of it is
    # blended into the rendered output (temporal smoothing).
    flow_fusion: str = "1"
    flow_init: str = "0"
    flow_output: str = "0"
    # Where segments start (a segment's first frame is rendered on its own and anchors
    # the rest): at prompt keyframes where the prompt switches (prompt_blend=none; a
    # morphing prompt keeps its chain) and/or scene cuts; [] for never.
    reanchor: list[Reanchor] = field(default_factory=lambda: [Reanchor.keyframes, Reanchor.cuts])
    # Also start a segment every N frames (0: never).
    reanchor_every: int = 0
    # A scene cut: consecutive source frames whose colour histograms differ by more than
    # this (0..1, the Bhattacharyya distance of their HSV histograms).
    cut_threshold: float = 0.5


class CadenceFlow(Enum):
    """What moves a loopback's in-between frames besides the camera: the optical flow
    between the two diffused frames they are made from (Deforum's optical_flow_cadence)."""

    none = "none"  # the camera alone
    dis_medium = "dis_medium"  # OpenCV's DIS at its medium preset (Deforum's "DIS Medium")
    dis_fine = "dis_fine"  # DIS at full resolution, many iterations ("DIS Fine")
    farneback = "farneback"  # OpenCV's Farneback ("Farneback")
    raft = "raft"  # torchvision's RAFT (large), from a local weights file: cadence.raft_weights


@dataclass
class CadenceConfig:
    # Diffuse every n-th frame (1: every frame) and make the frames between from the
    # diffused ones. On an input video: frames 0, n, 2n, ... and every segment start
    # (coherence.reanchor: prompt switches, scene cuts) are diffused, the rest carried
    # along the source's optical flow from the diffused frames before and after them. In
    # loopback (2D and 3D), Deforum's diffusion_cadence: the frames between are the last
    # two diffused frames moved by the camera and tweened.
    every: int = 1
    # Video input. Schedule, 0..1: the strength of a light img2img pass that paints what
    # neither diffused frame covers (disocclusions) from the source frame; 0 fills it
    # from the nearer diffused frame instead, with no UNet call.
    repair_strength: str = "0"
    # Video input, adaptive: also diffuse a frame where the mean motion since the last
    # diffused frame passes this fraction of the frame's width (0: off) ...
    max_motion: float = 0.0
    # ... or where more than this fraction of its pixels has no reliable match in the last
    # diffused frame (0: off).
    max_occluded: float = 0.0
    # Loopback: move the frames between also by the optical flow between the two diffused
    # frames (Deforum's optical_flow_cadence), scaled by the flow_factor schedule
    # (Deforum's cadence_flow_factor_schedule).
    flow: CadenceFlow = CadenceFlow.none
    flow_factor: str = "1"
    # cadence.flow=raft: torchvision's raft_large weights (a .pth state dict), read locally.
    raft_weights: str = "${paths.models}/raft/raft_large.pth"


class ControlMode(Enum):
    """How ControlNet units shape each frame."""

    img2img = "img2img"  # the input frame is the init image; the maps guide structure
    txt2img = "txt2img"  # each frame from noise, guided only by the maps


class ControlMismatch(Enum):
    """A control source with fewer frames than the plan."""

    error = "error"  # fail at plan time, naming the unit and both counts
    hold = "hold"  # reuse its last frame for the rest
    loop = "loop"  # start it again from its first frame


@dataclass
class ControlUnitConfig:
    # ControlNet weights: a hub id, a local diffusers folder or a single file.
    model: str = MISSING
    # canny, shuffle, tile, blur, grayscale, none (use the source frames as maps), inpaint
    # (an inpaint ControlNet, with a mask: the frame with the masked pixels marked), or a
    # weight-based detector: hed/softedge, pidinet, lineart, lineart_anime, depth_midas,
    # depth_zoe, openpose, normal_bae, mlsd.
    preprocessor: str = "none"
    # Preprocessor parameters, e.g. {low_threshold: 100, high_threshold: 200}.
    params: dict[str, Any] = field(default_factory=dict)
    # Schedules: conditioning scale, and the fraction of steps the unit acts in.
    weight: str = "1.0"
    guidance_start: str = "0.0"
    guidance_end: str = "1.0"
    # Where control frames come from: "input" (each frame's own picture: its input frame,
    # or in a loopback the previous output moved, its img2img input), a video or image
    # folder aligned with the output by frame number (the input's selection), or one
    # image for every frame.
    source: str = "input"
    # How that source is fitted to the frame size (ControlNet's "Crop and Resize" = crop,
    # "Resize and Fill" = fit, "Just Resize" = stretch); unset: as input.resize_mode.
    resize_mode: ResizeMode | None = None


@dataclass
class ControlNetConfig:
    # Units by name; several units make a multi-ControlNet. Presets: controlnet=[canny,depth],
    # or a new unit: +controlnet.units.NAME.model=... (each is checked as a ControlUnitConfig
    # by to_run_config: an untyped dict here is what lets the command line add units).
    units: dict[str, Any] = field(default_factory=dict)
    mode: ControlMode = ControlMode.img2img
    # Local folder with the weight-based detectors' weight files (lllyasviel/Annotators).
    annotators: str = "${paths.annotators}"
    on_mismatch: ControlMismatch = ControlMismatch.error


class MaskFill(Enum):
    """What the masked area starts from (A1111's "Masked content")."""

    original = "original"  # the frame itself
    fill = "fill"  # the frame with the masked area filled from its surroundings
    latent_noise = "latent_noise"  # the seed's noise in the mask's latents
    latent_nothing = "latent_nothing"  # zeros in the mask's latents


class MaskArea(Enum):
    """What is rendered of a masked frame (A1111's "Inpaint area")."""

    full = "full"  # the whole frame, the mask steering the latents
    masked = "masked"  # the mask's bounding box plus mask.padding, at the model's size


@dataclass
class MaskConfig:
    # Where each frame's mask comes from (at most one): a video, a folder of images or one
    # image, aligned with the input by the same selection and resized by its rules
    # (white is rendered, black kept) ...
    path: str | None = None
    # ... a chroma key computed from each source frame: green, blue or #rrggbb, with the
    # distance from that colour (0..1, in the frame's chroma plane) that is keyed fully
    # and the width of the soft edge beyond it ...
    key: str | None = None
    key_tolerance: float = 0.2
    key_softness: float = 0.1
    # ... or a brightness range [low, high] of the source frame (0..1).
    luma: list[float] | None = None
    # Deforum's composable masks: {mask} (the mask above), {everywhere} and [image files]
    # combined with & (intersection), | (union), ^ (either), \ (difference), ! (invert)
    # and parentheses; keyed per frame as Deforum writes it (0: ("{mask} | [logo.png]")).
    expression: str | None = None
    # Render what the mask leaves out instead (the background, not the subject).
    invert: bool = False
    # Schedules shaping each frame's mask, in this order: Deforum's contrast and
    # brightness adjustments (1 keeps it), the threshold (0..1; 0 keeps grey levels, above
    # 0 pixels at or above it turn white and the rest black), grow (pixels; negative
    # shrinks) and blur (a feather this many pixels wide on each side of the edge).
    contrast: str = "1"
    brightness: str = "1"
    threshold: str = "0"
    grow: str = "0"
    blur: str = "0"
    # Schedule: the feather (pixels on each side of the edge) where the render meets the
    # source frame; farther outside the mask every pixel is the source frame's.
    overlay_blur: str = "4"
    fill: MaskFill = MaskFill.original
    area: MaskArea = MaskArea.full
    # Pixels added around the mask's bounding box with area=masked.
    padding: int = 32
    # Put the source frame back outside the mask (false: keep the raw render).
    composite: bool = True

    @property
    def active(self) -> bool:
        """Whether frames are masked at all."""
        return any(v is not None for v in (self.path, self.key, self.luma, self.expression))


@dataclass
class InputConfig:
    # A video file, a folder of images, or one image. Unset with animation.mode loopback
    # or 3d: the first frame is a txt2img render (input.frames frames of
    # input.width x input.height).
    path: str | None = None
    # Frames to make without an input (a loopback from txt2img).
    frames: int | None = None
    # First frame to use: a frame number (``12``) or a time (``2.5s``, ``00:01:02.5``).
    start: str | None = None
    # Stop before this frame number or time (exclusive); ``None`` reads to the end.
    end: str | None = None
    # Keep every n-th frame of the selected range (1 keeps all).
    every: int = 1
    # Stop after this many selected frames.
    max_frames: int | None = None
    # A single image is repeated this many frames.
    repeat: int = 1
    # Frame rate given to image folders and single images (videos use their own).
    fps: float = 24.0
    # Target size in pixels; one of them alone keeps the aspect ratio. Rounded to 8.
    width: int | None = None
    height: int | None = None
    # Scale factor applied to the source size when width/height are not set.
    scale: float | None = None
    # The render size when width, height and scale are not set: auto = the model family's
    # native area (512x512 for SD 1.x, 1024x1024 for SDXL) at the source's aspect ratio, a
    # smaller source keeping its own size; source = the source's size; a number N = the
    # area of NxN (768). The video is still delivered at the source's size (upscale.*).
    size: str = "auto"
    resize_mode: ResizeMode = ResizeMode.crop
    # Colour that transparent pixels are flattened onto (and the pad colour of ``fit``).
    background: str = "#ffffff"
    # An image that cannot be decoded (after the first, which sets the size).
    on_bad_frame: BadFramePolicy = BadFramePolicy.skip


@dataclass
class ModelConfig:
    # A hub id, a local diffusers folder, or a single-file .safetensors/.ckpt checkpoint.
    path: str = MISSING
    family: ModelFamily = ModelFamily.auto
    # For single-file checkpoints: a local diffusers-format folder holding the configs
    # (and tokenizer) of the same architecture, so loading needs no network.
    config: str | None = None
    # Optional separate VAE (hub id, folder or single file).
    vae: str | None = None
    # Weight variant to load from a diffusers folder (for example ``fp16``).
    variant: str | None = None
    # LoRAs applied to every frame, name -> weight (+model.loras.ink_style=0.8); prompts add
    # more with <lora:name:weight>. Names are files in lora_dir (.safetensors, .pt, .ckpt, .bin).
    loras: dict[str, float] = field(default_factory=dict)
    lora_dir: str = "${paths.loras}"
    # Textual-inversion embeddings, used where a prompt names them (A1111 and diffusers files).
    embeddings_dir: str = "${paths.embeddings}"


@dataclass
class UpscaleConfig:
    # What brings the rendered frames to the delivered size: a weights file of any
    # architecture spandrel recognises (ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, ...) given
    # as a path or a file name in paths.upscalers (4x-UltraSharp, with or without its
    # suffix), or lanczos (no weights). Unset: Lanczos, where input.size=auto rendered the
    # source smaller than it is; otherwise frames are delivered as rendered.
    model: str | None = None
    # The delivered size once a model is given: source (the input's size), a factor of
    # the render size (2, 1.5) or a size (1920x1080).
    to: str = "source"
    # The model sees tiles of this many render pixels per side, one at a time, so its
    # memory does not grow with the frame size; 0 = the whole frame at once.
    tile: int = 512
    # Pixels of context on each side of a tile (neighbouring tiles cross-fade inside it).
    tile_overlap: int = 32
    # Schedule: denoising strength of a tiled img2img pass at the upscaled size (0 = off).
    # Not supported yet: any other value is refused (see the finishing guide).
    refine_strength: str = "0"


@dataclass
class OutputConfig:
    # What the assemble stage writes, from the same frames: one format or several
    # (output=[mp4,images] picks both presets; output.format=[mp4,webm] the formats alone).
    format: list[OutputFormat] = field(default_factory=lambda: [OutputFormat.mp4])
    # Parent folder of run folders.
    root: str = "${paths.outputs}"
    # Output frame rate; ``None`` is the render's (the source rate divided by
    # ``input.every``). Another rate keeps the clip's duration: frames are made between
    # the rendered ones (or dropped) by ``output.interpolation``.
    fps: float | None = None
    # Frames per rendered frame: 2 delivers 24 fps renders at 48 fps, same duration.
    interpolate: int = 1
    # How in-between frames are made: flow (rotoscope's own, no weights), minterpolate
    # (ffmpeg's filter), rife (a RIFE 4.6 weights file), nearest (repeat or drop frames).
    interpolation: FrameInterpolation = FrameInterpolation.flow
    # rife's weights (RIFE46.pkl, Practical-RIFE's flownet.pkl, or .safetensors): a path
    # or a file name in paths.interpolators.
    interpolation_model: str | None = None
    # Slow motion: the frames play this many times slower (made in between, at the same
    # frame rate), so the clip lasts this many times longer; the source's audio is left out.
    slow_motion: int = 1
    # H.264/VP9 quality (lower is better) and the x264 preset.
    crf: int = 18
    preset: str = "medium"
    # Keep the source video's audio, cut to the selected range (true); none (false); or
    # the path of an audio file (or video) to play from its start, cut to the video.
    audio: bool | str = True
    # With a mask: output=images writes RGBA PNGs with the mask as alpha (prores_alpha and
    # webm_alpha always carry it) ...
    alpha: bool = False
    # ... and a separate matte (the masks, white = rendered) next to the output:
    # <folder>.matte.<ext>, or mattes/ beside images/.
    matte: bool = False


@dataclass
class RuntimeConfig:
    # ``auto`` picks cuda when available, then mps, then cpu; or name one (``cuda:1``).
    device: str = "auto"
    dtype: Dtype = Dtype.auto
    # Refuse any network access for model files (sets HF_HUB_OFFLINE).
    offline: bool = False
    # Show full tracebacks instead of one-line errors.
    verbose: bool = False
    # Seconds between progress log lines when stderr is not a terminal.
    log_every: float = 10.0
    # Ray workers rendering this job (one GPU each on CUDA, one CPU each otherwise); more
    # than 1 needs the ray extra (pip install 'rotoscope[ray]').
    workers: int = 1
    # An existing Ray cluster to render on ("auto", "ray://host:10001"); unset starts a
    # local Ray when workers > 1.
    ray_address: str | None = None
    # torch.compile the UNet (CUDA: faster after a warm-up of a minute or so per shape).
    compile: bool = False


@dataclass
class RenderConfig:
    # Consecutive frames with the same sampler, steps, strength, guidance, size, LoRA
    # weights and ControlNet values go through one pipeline call, this many at a time.
    batch_size: int = 1


@dataclass
class PathsConfig:
    """Where models and outputs live (pipeline.config.paths explains the home folder)."""

    home: str = "${rotoscope_home:}"
    models: str = "${.home}/models"
    annotators: str = "${.models}/annotators"
    # ControlNet weight files named by file name alone (controlnet.units.NAME.model=
    # x.safetensors), as A1111 lists its models/ControlNet folder
    controlnet: str = "${.models}/ControlNet"
    loras: str = "${.models}/Lora"
    embeddings: str = "${.models}/embeddings"
    upscalers: str = "${.models}/ESRGAN"
    interpolators: str = "${.models}/RIFE"
    outputs: str = "${.home}/outputs"


@dataclass
class RunConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    input: InputConfig = field(default_factory=InputConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    upscale: UpscaleConfig = field(default_factory=UpscaleConfig)
    # Run folder name under output.root; by default the input's file or folder name
    # (without an input, the keyframe file's name, else "animation").
    name: str = "${run_name:${input.path},${keyframes}}"
    # Stages to run, in order: plan, control (maps + preview only), render, upscale (to
    # the delivered size; nothing to do when frames are delivered as rendered), assemble,
    # metrics (flicker measure).
    stages: list[str] = field(
        default_factory=lambda: ["plan", "render", "upscale", "assemble", "metrics"]
    )
    # A keyframe file (keyframes/*.yaml, a Deforum prompt object or settings file).
    # Its values apply to every key not given on the command line.
    keyframes: str | None = None
    # One prompt for every frame; or keyframed prompts {frame or "2.5s": text}. Keys may
    # arrive as numbers from the command line ({0: a cat}); to_run_config makes them text.
    prompt: str = ""
    prompts: dict[Any, str] = field(default_factory=dict)
    # Added to every frame's negative prompt.
    negative_prompt: str = ""
    prompt_prefix: str = ""
    prompt_suffix: str = ""
    prompt_blend: PromptBlend = PromptBlend.linear
    # A1111 styles applied to every prompt, in order, from styles_file (A1111's styles.csv).
    styles: list[str] = field(default_factory=list)
    styles_file: str = "${paths.home}/styles.csv"
    # A1111's CLIP skip: 1 = the text encoder's last layer, 2 = the one before, ...
    clip_skip: int = 1
    # How prompt editing's "when" counts steps: over the denoising steps that run, or as
    # A1111's img2img counts them (Deforum imports set a1111).
    prompt_editing_steps: PromptEditingSteps = PromptEditingSteps.rotoscope
    # Numbers or Deforum schedules ("0:(0.65), 60:(0.45)").
    # strength is diffusers' strength: 0 keeps the input frame, 1 ignores it.
    strength: str = "0.5"
    guidance_scale: str = "7"
    steps: str = "20"
    # A1111's initial noise multiplier: img2img's starting noise scaled by this (above 1
    # repaints more of the input, below 1 less); a schedule.
    noise_multiplier: str = "1"
    # A1111 sampler name ("Euler a", "DPM++ 2M Karras") or its slug (euler_a).
    sampler: str = "Euler a"
    # A1111 schedule type: how the sampler spaces its noise levels (Automatic: the
    # sampler's own; Uniform, Karras, Exponential, Polyexponential, SGM Uniform, KL
    # Optimal, Align Your Steps, Simple, Normal, DDIM, Beta).
    scheduler: str = "Automatic"
    # Base seed and how frames derive theirs; fixed (locked) is the default. -1 draws a
    # base seed once for the run folder (kept in it, so a resumed run uses it again).
    seed: int = 42
    seed_behavior: SeedBehavior = SeedBehavior.fixed
    seed_iter_n: int = 1
    seed_schedule: str = "0:(s)"
    # A1111's variation seed, schedules: each frame's initial noise is the spherical
    # interpolation of its seed's noise and the subseed's, subseed_strength of the way (0:
    # the seed's alone, 1: the subseed's); a subseed of -1 is drawn per frame from the
    # base seed, as A1111 draws one per generation.
    subseed: str = "-1"
    subseed_strength: str = "0"
    # A1111's "resize seed from" (pixels, both or neither; 0: off): the noise drawn as at
    # that size and placed at the centre, so a composition found at one size keeps its
    # layout at another.
    seed_resize_from_w: int = 0
    seed_resize_from_h: int = 0
    # Interpolation of every schedule, and per schedule name (strength: cubic).
    interpolation: Interpolation = Interpolation.linear
    schedule_interpolation: dict[str, Interpolation] = field(default_factory=dict)
    animation: AnimationConfig = field(default_factory=AnimationConfig)
    controlnet: ControlNetConfig = field(default_factory=ControlNetConfig)
    coherence: CoherenceConfig = field(default_factory=CoherenceConfig)
    # Stylize only part of each frame (the subject, or the background).
    mask: MaskConfig = field(default_factory=MaskConfig)
    # Diffuse every n-th frame and carry the look to the frames between.
    cadence: CadenceConfig = field(default_factory=CadenceConfig)


STAGES = ("plan", "control", "render", "upscale", "assemble", "metrics")


def run_name(input_path: str | None, keyframes: str | None = None) -> str:
    """Default run name: the input's stem (``dance.mp4`` -> ``dance``); without an input,
    the keyframe file's (a Deforum settings file's), else ``animation``."""
    named = input_path if input_path is not None else keyframes
    if named is None:
        return NO_INPUT_NAME
    path = Path(str(named).rstrip("/\\"))
    return path.stem or "run"


NO_INPUT_NAME = "animation"


def register() -> None:
    """Register the schema and the resolvers (idempotent)."""
    if not OmegaConf.has_resolver("run_name"):
        OmegaConf.register_new_resolver("run_name", run_name)
    if not OmegaConf.has_resolver("rotoscope_home"):
        OmegaConf.register_new_resolver("rotoscope_home", lambda: str(rotoscope_home()))
    ConfigStore.instance().store(name="rotoscope_schema", node=RunConfig)
    # controlnet/ presets start from this, so their units have every field, typed
    ConfigStore.instance().store(name="controlnet_unit", node=ControlUnitConfig)
