"""ControlNets: loading them next to a base model, and the diffusers pipelines that use them.

A ControlNet steers a base model with images (edges, depth, pose...) of each frame. This
module loads ControlNets the way :mod:`pipeline.models.loader` loads the base model (hub
id, local diffusers folder or A1111-style single file; offline means offline; one-line
errors naming the setting), checks each against the base model's architecture before
its weights are read, and builds the diffusers ControlNet pipeline around the base
model's own components, so adding a ControlNet costs only the ControlNet's memory.

A single-file ControlNet (``control_v11p_sd15_canny.pth`` and the like) carries no
config. Rather than asking diffusers to fetch a default one from the hub (impossible
offline), its config is derived from the base model's UNet: a standard ControlNet is by
construction a copy of its base UNet's encoder, which is exactly what
``ControlNetModel.from_unet`` describes. A ControlNet of another shape (the "mid" and
"small" SDXL ones) comes as a diffusers folder, whose own config is used.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pipeline.config.schema import ModelFamily
from pipeline.errors import RotoscopeError
from pipeline.models.loader import LoadedModel, Pipeline
from pipeline.models.safe_load import refused_pickle
from pipeline.models.weights import (
    CHECKPOINT_SUFFIXES,
    FAMILY_NAMES,
    file_fingerprint,
    first_line,
    folder_fingerprint,
    hub_file,
    is_hub_id,
    is_offline,
    loading,
    not_found,
    own_aligned_memory,
)

if TYPE_CHECKING:  # diffusers itself is imported when a ControlNet is loaded
    import PIL.Image
    from diffusers import ControlNetModel

_FIELD = "controlnet"


def load_controlnet(path: str, base: LoadedModel, offline: bool) -> ControlNetModel:
    """Load the ControlNet at ``path`` for ``base``, in the base model's dtype and device.

    A ControlNet made for another architecture (an SD 1.x one on SDXL, or an SD 2.x one on
    SD 1.5) is refused before its weights are read: diffusers would otherwise fail deep
    inside the first frame with a tensor shape error.
    """
    from diffusers import ControlNetModel

    # HF_HUB_OFFLINE in the environment is as binding as runtime.offline
    offline = offline or is_offline()
    location = Path(path).expanduser()
    kwargs: dict[str, Any] = {"torch_dtype": base.dtype}
    with loading(f"{_FIELD} '{path}'"):
        if location.is_dir():
            config_file = location / "config.json"
            if not config_file.is_file():
                raise RotoscopeError(
                    f"{_FIELD} '{path}' is a folder without config.json (no diffusers ControlNet)",
                    "point it at the folder that holds config.json, or at a .safetensors file",
                )
            _check_family(path, _read_config(config_file), base)
            controlnet = ControlNetModel.from_pretrained(str(location), **kwargs)
        elif location.is_file():
            if location.suffix.lower() not in CHECKPOINT_SUFFIXES:
                raise RotoscopeError(
                    f"{_FIELD} '{path}' is not a checkpoint file",
                    f"use a {'/'.join(CHECKPOINT_SUFFIXES)} file, a diffusers folder or a hub id",
                )
            _check_family(path, _file_signature(location), base)
            controlnet = _load_single_file(location, base, offline, kwargs)
        elif is_hub_id(path):
            config_file = hub_file(_FIELD, path, "config.json", offline)
            _check_family(path, _read_config(config_file), base)
            controlnet = ControlNetModel.from_pretrained(path, local_files_only=offline, **kwargs)
        else:
            raise not_found(_FIELD, path)
    controlnet.to(base.device)
    own_aligned_memory([controlnet])
    return controlnet


def controlnet_identity(path: str) -> str:
    """A fingerprint of the ControlNet at ``path`` for frame cache keys (no weights read).

    Folders and files are fingerprinted by path, sizes and modification times, hub ids by
    the commit the local cache (or, online, the hub) resolves them to; so replacing the
    weights changes the identity, as :func:`pipeline.models.loader.load_model` does for the
    base model. A single file's derived config is covered by the base model's identity.
    """
    location = Path(path).expanduser()
    if location.is_dir():
        fingerprint = folder_fingerprint(location)
    elif location.is_file():
        fingerprint = file_fingerprint(location)
    elif is_hub_id(path):
        commit = hub_file(_FIELD, path, "config.json", is_offline()).parent.name
        fingerprint = f"hub:{path}@{commit}"
    else:
        raise not_found(_FIELD, path)
    return hashlib.sha256(f"controlnet\n{fingerprint}".encode()).hexdigest()


def control_pipeline(
    base: LoadedModel, controlnets: list[ControlNetModel], img2img: bool
) -> Pipeline:
    """The ControlNet pipeline of ``base``'s family, sharing ``base.pipe``'s components.

    ``img2img`` picks the pipeline that starts from the input frame (strength applies)
    over the one that generates from noise guided only by the control maps. Several
    ControlNets become diffusers' ``MultiControlNetModel`` (the pipeline wraps the list
    itself, whatever module the installed diffusers keeps that class in).

    ``from_pipe`` passes the very same unet, VAE, text encoders, tokenizers and scheduler
    objects, so no weights are copied; it also casts the new pipeline to ``torch_dtype``
    (float32 when not given), which would silently convert a half-precision base model's
    shared modules, hence the explicit dtype.
    """
    from diffusers import (
        StableDiffusionControlNetImg2ImgPipeline,
        StableDiffusionControlNetPipeline,
        StableDiffusionXLControlNetImg2ImgPipeline,
        StableDiffusionXLControlNetPipeline,
    )

    if not controlnets:
        raise ValueError("control_pipeline needs at least one ControlNet")
    classes = {
        (ModelFamily.sd15, True): StableDiffusionControlNetImg2ImgPipeline,
        (ModelFamily.sd15, False): StableDiffusionControlNetPipeline,
        (ModelFamily.sdxl, True): StableDiffusionXLControlNetImg2ImgPipeline,
        (ModelFamily.sdxl, False): StableDiffusionXLControlNetPipeline,
    }
    cls = classes[(base.family, img2img)]
    controlnet = controlnets[0] if len(controlnets) == 1 else list(controlnets)
    with loading("the ControlNet pipeline"):
        pipe = cls.from_pipe(base.pipe, controlnet=controlnet, torch_dtype=base.dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def control_kwargs(
    img2img: bool,
    init_image: PIL.Image.Image | None,
    maps: list[PIL.Image.Image],
    scales: list[float],
    starts: list[float],
    ends: list[float],
    width: int,
    height: int,
) -> dict[str, Any]:
    """The ControlNet arguments of the control pipeline's ``__call__``, one entry per unit.

    The img2img pipelines take the input frame as ``image`` and the maps as
    ``control_image``; the text-to-image ones take the maps as ``image``. With one unit
    the values are single (diffusers requires a float scale for a single ControlNet),
    with several they are lists in unit order.

    A unit whose guidance window is empty (``end <= start``, e.g. a keyframed end that
    reaches 0) contributes nothing, exactly as at scale 0; diffusers refuses such a
    window, so the unit is passed as scale 0 over the whole run instead.
    """
    units = len(maps)
    if units == 0 or not len(scales) == len(starts) == len(ends) == units:
        raise ValueError(
            f"one scale, start and end per control map: {units} maps, {len(scales)} scales, "
            f"{len(starts)} starts, {len(ends)} ends"
        )
    if img2img and init_image is None:
        raise ValueError("control img2img needs the input frame as init_image")
    scale_values, start_values, end_values = [], [], []
    for scale, start, end in zip(scales, starts, ends, strict=True):
        active = end > start
        scale_values.append(float(scale) if active else 0.0)
        start_values.append(float(start) if active else 0.0)
        end_values.append(float(end) if active else 1.0)

    def per_unit(values: list[Any]) -> Any:
        return values[0] if units == 1 else values

    images = (
        {"image": init_image, "control_image": per_unit(maps)}
        if img2img
        else {"image": per_unit(maps)}
    )
    return {
        **images,
        "controlnet_conditioning_scale": per_unit(scale_values),
        "control_guidance_start": per_unit(start_values),
        "control_guidance_end": per_unit(end_values),
        "width": width,
        "height": height,
    }


# --- architecture checks ---


def _read_config(config_file: Path) -> dict[str, Any]:
    try:
        return json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RotoscopeError(
            f"{_FIELD} config '{config_file}' is unreadable ({first_line(exc)})",
            "download the ControlNet again",
        ) from exc


def _file_signature(path: Path) -> dict[str, Any]:
    """The config entries :func:`_check_family` compares, read from a checkpoint's tensors.

    The text-embedding width is the input width of any cross-attention key projection;
    SDXL's size/crop conditioning lives in ``label_emb`` (``add_embedding`` in the
    diffusers layout). Only safetensors headers are read; pickles are memory-mapped.
    """
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                # a safe_open handle is not iterable, hence .keys()
                shapes = {key: handle.get_slice(key).get_shape() for key in handle.keys()}  # noqa: SIM118
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
            while isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
            shapes = {
                key: list(value.shape)
                for key, value in dict(state).items()
                if isinstance(value, torch.Tensor)
            }
    except pickle.UnpicklingError as exc:  # it wanted to run code: never loaded further
        raise refused_pickle(_FIELD, path, exc) from exc
    except Exception as exc:  # safetensors/pickle/zip errors have no common base class
        raise RotoscopeError(
            f"{_FIELD} '{path}' is not a readable checkpoint ({first_line(exc)})",
            "the file is probably truncated or corrupt: download it again",
        ) from exc
    widths = [shape[1] for key, shape in shapes.items() if key.endswith("attn2.to_k.weight")]
    sdxl = any("label_emb." in key or "add_embedding." in key for key in shapes)
    return {
        "cross_attention_dim": widths[0] if widths else None,
        "addition_embed_type": "text_time" if sdxl else None,
    }


def _check_family(path: str, config: dict[str, Any], base: LoadedModel) -> None:
    """Refuse a ControlNet whose conditioning does not fit the base UNet's.

    SDXL ControlNets, like the SDXL UNet, take the size/crop embedding
    (``addition_embed_type: text_time``); the text-embedding width (768 for SD 1.x, 1024
    for 2.x, 2048 for SDXL) tells apart ControlNets of the same family.
    """
    unet = base.pipe.unet.config
    sdxl = config.get("addition_embed_type") == "text_time"
    family = ModelFamily.sdxl if sdxl else ModelFamily.sd15
    width = config.get("cross_attention_dim")
    base_width = unet.cross_attention_dim
    if family == base.family and width in (None, base_width):
        return
    raise RotoscopeError(
        f"{_FIELD} '{path}' is an {FAMILY_NAMES[family]} ControlNet (text width {width}) but "
        f"the model is {FAMILY_NAMES[base.family]} (text width {base_width})",
        "use a ControlNet trained for the model's architecture",
    )


def _load_single_file(
    path: Path, base: LoadedModel, offline: bool, kwargs: dict[str, Any]
) -> ControlNetModel:
    """``ControlNetModel.from_single_file`` with the config derived from the base UNet.

    The config is made on the meta device (no weights allocated) and written to a
    temporary folder, the form ``from_single_file(config=...)`` reads offline.
    """
    from diffusers import ControlNetModel

    with torch.device("meta"):
        template = ControlNetModel.from_unet(base.pipe.unet, load_weights_from_unet=False)
    with tempfile.TemporaryDirectory(prefix="rotoscope-controlnet-") as config_dir:
        template.save_config(config_dir)
        return ControlNetModel.from_single_file(
            str(path), config=config_dir, local_files_only=offline, **kwargs
        )
