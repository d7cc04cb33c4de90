"""What a Deforum settings file holds, as tables: which keys the import maps, which never
change the picture, and the features rotoscope cannot reproduce (with when a file uses
them). The importer (:mod:`.importer`) reads these; a new Deforum feature that rotoscope
learns moves from :data:`UNSUPPORTED` to :data:`MAPPED` and the importer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipeline.interop.deforum.schedules import constant_value
from pipeline.interop.deforum.values import as_int, is_off, is_on

# rotoscope schedule name -> Deforum key; copied in loopback modes (the camera in 2D only)
MOTION_SCHEDULES = {
    "zoom": "zoom",
    "angle": "angle",
    "translation_x": "translation_x",
    "translation_y": "translation_y",
    "transform_center_x": "transform_center_x",
    "transform_center_y": "transform_center_y",
    "noise": "noise_schedule",
}
LOOPBACK_MODES = ("2D", "3D")
# Deforum's 2D-only camera: its 3D mode ignores these (and moves by translation_x/y/z
# and rotation_3d_*).
TWO_D_ONLY = ("zoom", "angle", "transform_center_x", "transform_center_y")
# rotoscope schedule name -> Deforum key, in 3D mode: the camera and its lens
THREE_D_SCHEDULES = {
    "translation_z": "translation_z",
    "rotation_3d_x": "rotation_3d_x",
    "rotation_3d_y": "rotation_3d_y",
    "rotation_3d_z": "rotation_3d_z",
    "fov": "fov_schedule",
    "near": "near_schedule",
    "far": "far_schedule",
    "aspect_ratio": "aspect_ratio_schedule",
}
# The Colab notebook's lens: one number each, where later files have schedules
THREE_D_NUMBERS = {"fov": "fov", "near": "near_plane", "far": "far_plane"}
# Deforum's depth_algorithm -> (model, model blended in by midas_weight, what is lost).
# AdaBins and LeReS are not offered: ZoeDepth, a metric depth model like them, stands in.
DEPTH_ALGORITHMS: dict[str, tuple[str, str, str]] = {
    "midas-3-hybrid": ("midas", "none", ""),
    "midas-3.1-beitlarge": ("midas", "none", "MiDaS 3.1 BEiT-Large is not offered: MiDaS "
                            "DPT-Hybrid (Midas-3-Hybrid) is used"),
    "zoe": ("zoe", "none", ""),
    "adabins": ("zoe", "none", "AdaBins is not offered: ZoeDepth is used"),
    "leres": ("zoe", "none", "LeReS is not offered: ZoeDepth is used"),
    "midas+adabins (old)": ("midas", "zoe", "AdaBins is not offered: MiDaS is blended with "
                            "ZoeDepth by midas_weight instead, with Deforum's current depth "
                            "normalisation"),
    "zoe+adabins (old)": ("zoe", "none", "AdaBins is not offered: ZoeDepth alone is used"),
    # Deforum for Forge's default; the size is whichever folder animation.depth.folder holds
    "depth-anything-v2-small": ("depth_anything", "none", ""),
    "depth-anything-v2-base": ("depth_anything", "none", "Depth Anything V2 Base: put "
                               "depth-anything/Depth-Anything-V2-Base-hf in "
                               "animation.depth.folder"),
    "depth-anything-v2-large": ("depth_anything", "none", "Depth Anything V2 Large: put "
                                "depth-anything/Depth-Anything-V2-Large-hf in "
                                "animation.depth.folder"),
}  # fmt: skip
PADDING_MODES = ("border", "reflection", "zeros")
SAMPLING_MODES = ("bicubic", "bilinear", "nearest")
# rotoscope schedule name -> Deforum key: what each loopback input gets (2D and 3D)
ANTI_BLUR_SCHEDULES = {
    "anti_blur_amount": "amount_schedule",
    "anti_blur_kernel": "kernel_schedule",
    "anti_blur_sigma": "sigma_schedule",
    "anti_blur_threshold": "threshold_schedule",
}
FLIP_SCHEDULES = {
    f"perspective_flip_{part}": f"perspective_flip_{part}"
    for part in ("theta", "phi", "gamma", "fv")
}
COLOR_MODES = {"none": "none", "false": "none", "lab": "lab", "hsv": "hsv", "rgb": "rgb"}
# Deforum's noise image spreads over about 0.36 of the range; rotoscope adds Gaussian
# noise with the schedule's value as its standard deviation.
NOISE_SCALE = Decimal("0.36")
# A1111 1.9's "Automatic" scheduler for the samplers whose default is not uniform.
AUTOMATIC_KARRAS = ("DPM++ 2M", "DPM++ SDE")
# Schedulers that are the sampler's own sigmas in diffusers terms.
PLAIN_SCHEDULERS = ("uniform", "normal", "")
ANIMATION_MODES = {
    "2D": "loopback",
    "3D": "3d",
    "None": "none",
    "Video Input": "none",
    "Interpolation": "none",  # reported: txt2img per frame has no rotoscope mode
}
SEED_BEHAVIORS = ("iter", "fixed", "random", "ladder", "alternate", "schedule")
BORDERS = ("replicate", "wrap")
# Sampler names of Deforum's Colab era that pipeline.models.samplers does not spell
SAMPLER_ALIASES = {"klms": "LMS"}
# Deforum's mask settings (A1111's inpainting options under Deforum's names)
MASK_KEYS = (
    "use_mask", "mask_file", "use_mask_video", "video_mask_path", "invert_mask",
    "mask_contrast_adjust", "mask_brightness_adjust", "overlay_mask", "mask_overlay_blur",
    "full_res_mask", "full_res_mask_padding", "fill", "mask_schedule",
)  # fmt: skip
# Deforum's (A1111's) inpainting_fill numbers -> mask.fill
MASK_FILLS = {0: "fill", 1: "original", 2: "latent_noise", 3: "latent_nothing"}
# Deforum's optical_flow_cadence -> cadence.flow
CADENCE_FLOWS = {
    "None": "none",
    "DIS Medium": "dis_medium",
    "DIS Fine": "dis_fine",
    "Farneback": "farneback",
    "RAFT": "raft",
}
CADENCE_KEYS = ("diffusion_cadence", "optical_flow_cadence", "cadence_flow_factor_schedule")

# Finishing: Deforum's upscaler (a Real-ESRGAN model and factor) and frame interpolation
FINISHING = (
    "r_upscale_video", "r_upscale_factor", "r_upscale_model", "frame_interpolation_engine",
    "frame_interpolation_x_amount", "frame_interpolation_slow_mo_enabled",
    "frame_interpolation_slow_mo_amount",
)  # fmt: skip
# Deforum's interpolation engines; RIFE 4.0 and 4.3 run as 4.6, the version rotoscope has
RIFE_ENGINES = ("RIFE", "RIFE v4.0", "RIFE v4.3", "RIFE v4.6")
FILM_ENGINE = "FILM"
# The RIFE weights Deforum downloads (into models/Deforum): RIFE46.pkl
RIFE_WEIGHTS = "RIFE46"
# A1111's variation seed and "resize seed from", under Deforum's names
VARIATION_KEYS = (
    "subseed", "subseed_strength", "seed_enable_extras", "seed_resize_from_w",
    "seed_resize_from_h", "enable_subseed_scheduling", "subseed_schedule",
    "subseed_strength_schedule",
)  # fmt: skip
# The init image and the soundtrack
INIT_KEYS = ("use_init", "init_image", "strength", "strength_0_no_init", "use_alpha_as_mask")
SOUNDTRACK_KEYS = ("add_soundtrack", "soundtrack_path")
# Deforum's ControlNet units: cn_1 .. cn_5, each with these settings
CONTROLNET_UNITS = range(1, 6)
CONTROLNET_PARTS = (
    "enabled", "model", "module", "weight", "guidance_start", "guidance_end",
    "control_mode", "resize_mode", "vid_path", "mask_vid_path", "overwrite_frames",
    "low_vram", "pixel_perfect", "processor_res", "threshold_a", "threshold_b",
    "loopback_mode",
)  # fmt: skip
# sd-webui-controlnet's preprocessor modules -> (rotoscope's preprocessor, its params,
# what is lost, said to the user)
CONTROLNET_MODULES: dict[str, tuple[str, dict[str, Any], str]] = {
    "none": ("none", {}, ""),
    "canny": ("canny", {}, ""),
    "tile_resample": ("tile", {}, ""),
    "tile_colorfix": ("tile", {}, "its colour fix is not offered: plain tile resampling"),
    "tile_colorfix+sharp": ("tile", {}, "its colour fix is not offered: plain tile resampling"),
    "depth": ("depth_midas", {}, ""),
    "depth_midas": ("depth_midas", {}, ""),
    "depth_zoe": ("depth_zoe", {}, ""),
    "depth_leres": ("depth_midas", {}, "LeReS depth is not offered: MiDaS is used"),
    "depth_leres++": ("depth_midas", {}, "LeReS++ depth is not offered: MiDaS is used"),
    "openpose": ("openpose", {}, ""),
    "openpose_hand": ("openpose", {"include_hand": True}, ""),
    "openpose_face": ("openpose", {"include_face": True}, ""),
    "openpose_full": ("openpose", {"include_hand": True, "include_face": True}, ""),
    "hed": ("hed", {}, ""),
    "softedge_hed": ("hed", {}, ""),
    "softedge_hedsafe": ("hed", {"safe": True}, ""),
    "pidinet": ("pidinet", {}, ""),
    "softedge_pidinet": ("pidinet", {}, ""),
    "softedge_pidisafe": ("pidinet", {"safe": True}, ""),
    "scribble_hed": ("hed", {"scribble": True}, ""),
    "scribble_pidinet": ("pidinet", {"scribble": True}, ""),
    "lineart": ("lineart", {}, ""),
    "lineart_realistic": ("lineart", {}, ""),
    "lineart_coarse": ("lineart", {"coarse": True}, ""),
    "lineart_anime": ("lineart_anime", {}, ""),
    "normal_bae": ("normal_bae", {}, ""),
    "mlsd": ("mlsd", {}, ""),
    "shuffle": ("shuffle", {}, ""),
    "blur_gaussian": ("blur", {}, ""),
    "inpaint": ("inpaint", {}, ""),
    "inpaint_only": ("inpaint", {}, ""),
}
# The modules whose processor_res is their detect resolution, and canny's thresholds
DETECTORS = frozenset(
    {"hed", "pidinet", "lineart", "lineart_anime", "depth_midas", "depth_zoe", "openpose",
     "normal_bae", "mlsd"}
)  # fmt: skip
# ControlNet 1.0 names -> their diffusers repositories (1.1's are lllyasviel/<name>)
CONTROLNET_V10 = {
    f"control_sd15_{kind}": f"lllyasviel/sd-controlnet-{kind}"
    for kind in ("canny", "depth", "hed", "mlsd", "normal", "openpose", "scribble", "seg")
}
CONTROLNET_V11 = re.compile(r"control_v11[a-z0-9]*_sd15[a-z0-9]*_\w+")
# ControlNet's resize modes -> rotoscope's (its "Inner Fit" crops, "Outer Fit" pads)
CONTROLNET_RESIZE = {
    "Inner Fit (Scale to Fit)": "crop", "Crop and Resize": "crop",
    "Outer Fit (Shrink to Fit)": "fit", "Resize and Fill": "fit",
    "Just Resize": "stretch",
}  # fmt: skip
# Deforum's hybrid video -> rotoscope's animation.hybrid values
HYBRID_MOTIONS = {"None": "none", "Optical Flow": "optical_flow", "Perspective": "perspective",
                  "Affine": "affine"}  # fmt: skip
HYBRID_COMPOSITES = {"None": "none", "Normal": "normal", "Before Motion": "before_motion",
                     "After Generation": "after_generation"}  # fmt: skip
HYBRID_MASKS = {"None": "none", "Depth": "depth", "Video Depth": "video_depth", "Blend": "blend",
                "Difference": "difference"}  # fmt: skip
HYBRID_EQUALIZE = {"None": "none", "Before": "before", "After": "after", "Both": "both"}
# rotoscope's hybrid schedule -> Deforum's key
HYBRID_SCHEDULES = {
    "hybrid_flow_factor": "hybrid_flow_factor_schedule",
    "hybrid_alpha": "hybrid_comp_alpha_schedule",
    "hybrid_mask_contrast": "hybrid_comp_mask_contrast_schedule",
    "hybrid_mask_blend_alpha": "hybrid_comp_mask_blend_alpha_schedule",
    "hybrid_mask_cutoff_low": "hybrid_comp_mask_auto_contrast_cutoff_low_schedule",
    "hybrid_mask_cutoff_high": "hybrid_comp_mask_auto_contrast_cutoff_high_schedule",
}
HYBRID_KEYS = (
    "hybrid_motion", "hybrid_composite", "hybrid_motion_use_prev_img",
    "hybrid_flow_consistency", "hybrid_consistency_blur", "hybrid_flow_method",
    "hybrid_comp_mask_type", "hybrid_comp_mask_inverse", "hybrid_comp_mask_equalize",
    "hybrid_comp_mask_auto_contrast", "hybrid_use_first_frame_as_init_image",
    "hybrid_use_init_image", "hybrid_generate_inputframes", "hybrid_comp_save_extra_frames",
    *HYBRID_SCHEDULES.values(),
)  # fmt: skip

# Keys the import reads (their values become keyframe-file entries or are checked there).
MAPPED = frozenset(
    {
        "prompts", "animation_prompts", "animation_prompts_positive",
        "animation_prompts_negative", "positive_prompts", "negative_prompts",
        "strength_schedule", "cfg_scale_schedule", "scale", "steps", "steps_schedule",
        "enable_steps_scheduling", "seed", "seed_behavior", "seed_iter_N", "seed_schedule",
        "sampler", "sampler_name", "scheduler", "fps", "max_frames", "W", "H", "width",
        "height", "enable_clipskip_scheduling", "clipskip_schedule", "animation_mode", "border",
        "color_coherence", "color_coherence_image_path",
        "color_coherence_video_every_N_frames", "video_init_path", "extract_nth_frame",
        "extract_from_frame", "extract_to_frame", "sd_model_name", "sd_model_hash",
        *MOTION_SCHEDULES.values(), *MASK_KEYS, *FINISHING,
        # the 3D camera, its depth and the rest of a loopback frame
        *THREE_D_SCHEDULES.values(), *THREE_D_NUMBERS.values(), "aspect_ratio_use_old_formula",
        "use_depth_warping", "depth_algorithm", "use_zoe_depth", "midas_weight",
        "padding_mode", "sampling_mode", "save_depth_maps", "contrast_schedule",
        *ANTI_BLUR_SCHEDULES.values(), "noise_type", "perlin_w", "perlin_h", "perlin_octaves",
        "perlin_persistence", "enable_noise_multiplier_scheduling",
        "noise_multiplier_schedule", "legacy_colormatch", "enable_perspective_flip",
        "flip_2d_perspective", *FLIP_SCHEDULES.values(),
        # Deforum's cadence (2D and 3D)
        *CADENCE_KEYS,
        # variation seeds, init image, soundtrack, ControlNet units, hybrid video
        *VARIATION_KEYS, *INIT_KEYS, *SOUNDTRACK_KEYS, *HYBRID_KEYS,
        *(f"cn_{unit}_{part}" for unit in CONTROLNET_UNITS for part in CONTROLNET_PARTS),
    }
)  # fmt: skip

# Keys that never change the picture: names, folders, what is saved or shown, how the
# video is encoded, bookkeeping, and constants the UI stores.
IGNORED = frozenset(
    {
        # names, folders, saving, display
        "batch_name", "outdir", "filename_format", "save_settings", "save_samples",
        "display_samples", "save_sample_per_step", "show_sample_per_step",
        "show_info_on_ui", "timestring", "deforum_git_commit_id",
        "overwrite_extracted_frames", "image_path", "mp4_path", "store_frames_in_ram",
        # video encoding (the frames are the same)
        "skip_video_creation", "skip_video_for_run_all", "make_gif", "delete_imgs",
        # what finishing keeps on disk (rotoscope keeps upscaled and in-between frames, and
        # interpolates the delivered frames, upscaled when upscaling is on)
        "r_upscale_keep_imgs", "frame_interpolation_keep_imgs",
        "frame_interpolation_use_upscaled",
        "delete_input_frames", "ffmpeg_location", "ffmpeg_crf", "ffmpeg_preset",
        "render_steps", "path_name_modifier", "max_video_frames", "use_manual_settings",
        # what to do when the safety filter blanks a frame (rotoscope has no such filter)
        "reroll_blank_frames", "reroll_patience",
        # fixed latent constants and per-image batch counts of the still-image mode
        "C", "f", "precision", "n_samples", "n_batch",
        # the Colab notebook's prompt-weight switches (A1111 always parses weights)
        "prompt_weighting", "normalize_prompt_weights", "log_weighted_subprompts",
        # used only with an instruct-pix2pix checkpoint
        "pix2pix_img_cfg_scale_schedule",
        # the Colab notebook's batch-mode prompt and grid, and its runtime placeholders
        "prompt", "make_grid", "grid_rows", "init_latent", "init_sample", "init_c",
    }
)  # fmt: skip


@dataclass(frozen=True)
class UnsupportedFeature:
    """A Deforum feature rotoscope cannot reproduce, and when a file uses it."""

    what: str  # what is lost, said to the user
    keys: tuple[str, ...]  # shown with their values when the feature is in use
    active: Callable[[Mapping[str, Any]], bool]
    covers: tuple[str, ...] = ()  # more settings of the feature, not shown


def animation_mode(data: Mapping[str, Any]) -> str:
    return str(data.get("animation_mode", "2D"))


def is_moving(data: Mapping[str, Any]) -> bool:
    return animation_mode(data) in LOOPBACK_MODES


def uses_mask(data: Mapping[str, Any]) -> bool:
    """A mask file or a mask video is switched on."""
    return is_on(data.get("use_mask", False)) or is_on(data.get("use_mask_video", False))


def _not(key: str, neutral: str) -> Callable[[Mapping[str, Any]], bool]:
    """Active when ``key`` is present and is not the constant schedule ``neutral``."""
    return lambda data: key in data and constant_value(data[key]) != Decimal(neutral)


def _switch(key: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda data: is_on(data.get(key, False))


def _switch_and_not(switch: str, key: str, neutral: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda data: is_on(data.get(switch, False)) and _not(key, neutral)(data)


_LOOPER_COVERS = (
    "blendFactorMax",
    "blendFactorSlope",
    "tweening_frames_schedule",
    "color_correction_factor",
)

UNSUPPORTED: tuple[UnsupportedFeature, ...] = (
    UnsupportedFeature(
        "human masks for the hybrid composite are not supported (they need a model Deforum "
        "downloads)",
        ("hybrid_generate_human_masks",),
        lambda data: not is_off(data.get("hybrid_generate_human_masks")),
    ),
    UnsupportedFeature(
        "the init image's alpha as a mask is not supported",
        ("use_alpha_as_mask",),
        lambda data: is_on(data.get("use_init")) and is_on(data.get("use_alpha_as_mask")),
    ),
    UnsupportedFeature(
        "optical-flow redo generation is not supported",
        ("optical_flow_redo_generation",),
        lambda data: not is_off(data.get("optical_flow_redo_generation")),
        ("redo_flow_factor_schedule",),
    ),
    UnsupportedFeature(
        "diffusion redo is not supported",
        ("diffusion_redo",),
        lambda data: as_int(data.get("diffusion_redo", 0), 0) != 0,
    ),
    UnsupportedFeature(
        "masks with 2D and 3D animation are not supported (a loopback frame is made from "
        "the previous output, not from a frame to keep): the mask is not imported",
        ("use_mask", "mask_file", "use_mask_video", "video_mask_path"),
        lambda data: is_moving(data) and uses_mask(data),
    ),
    UnsupportedFeature(
        "noise masks are not supported",
        ("use_noise_mask", "noise_mask_schedule"),
        _switch("use_noise_mask"),
    ),
    UnsupportedFeature(
        "sampler scheduling is not supported: one sampler for all frames",
        ("enable_sampler_scheduling", "sampler_schedule"),
        _switch("enable_sampler_scheduling"),
    ),
    UnsupportedFeature(
        "checkpoint scheduling is not supported: one model for all frames",
        ("enable_checkpoint_scheduling", "checkpoint_schedule"),
        _switch("enable_checkpoint_scheduling"),
    ),
    UnsupportedFeature(
        "DDIM eta scheduling is not supported",
        ("enable_ddim_eta_scheduling", "ddim_eta_schedule"),
        _switch_and_not("enable_ddim_eta_scheduling", "ddim_eta_schedule", "0"),
    ),
    UnsupportedFeature(
        "ancestral eta scheduling is not supported",
        ("enable_ancestral_eta_scheduling", "ancestral_eta_schedule"),
        _switch_and_not("enable_ancestral_eta_scheduling", "ancestral_eta_schedule", "1"),
    ),
    UnsupportedFeature("tiling is not supported", ("tiling",), _switch("tiling")),
    UnsupportedFeature(
        "the Colab notebook's sample clamping (dynamic/static threshold) is not supported",
        ("dynamic_threshold", "static_threshold"),
        lambda data: (
            not (is_off(data.get("dynamic_threshold")) and is_off(data.get("static_threshold")))
        ),
    ),
    UnsupportedFeature(
        "DDIM eta is not supported (rotoscope's DDIM runs at eta 0)",
        ("ddim_eta",),
        lambda data: constant_value(data.get("ddim_eta", 0)) not in (None, 0),
    ),
    UnsupportedFeature(
        "interpolating between keyframe images is not supported",
        ("interpolate_key_frames", "interpolate_x_frames"),
        _switch("interpolate_key_frames"),
    ),
    UnsupportedFeature(
        "face restoration is not supported", ("restore_faces",), _switch("restore_faces")
    ),
    UnsupportedFeature(
        "forcing grayscale is not supported",
        ("color_force_grayscale",),
        _switch("color_force_grayscale"),
    ),
    UnsupportedFeature(
        "resuming a Deforum run is not imported: rotoscope resumes from its own run folder",
        ("resume_from_timestring", "resume_timestring"),
        _switch("resume_from_timestring"),
    ),
    UnsupportedFeature(
        "a Parseq manifest replaces Deforum's schedules and is not supported",
        ("parseq_manifest",),
        lambda data: not is_off(data.get("parseq_manifest")),
        ("parseq_use_deltas",),
    ),
    UnsupportedFeature(
        "guided images (the looper) are not supported",
        ("use_looper", "init_images", "image_strength_schedule"),
        _switch("use_looper"),
        _LOOPER_COVERS,
    ),
)

# Families of keys that the rules above cover by prefix
HYBRID = re.compile(r"hybrid_")
CONTROLNET = re.compile(r"cn_(\d+)_")
COVERED = frozenset(key for rule in UNSUPPORTED for key in (*rule.keys, *rule.covers))
