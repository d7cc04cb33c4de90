"""A1111 sampler names mapped to diffusers schedulers.

Users come from AUTOMATIC1111, Deforum and ComfyUI and know samplers by A1111's names
("DPM++ 2M Karras"), so that is the vocabulary of ``sampler=`` and of the PNG
"Sampler:" field. Each name becomes a diffusers scheduler built from the loaded
pipeline's own scheduler config, which keeps the model's training settings (beta
schedule, prediction type, timestep spacing) and changes only what defines the sampler.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.config.schema import ModelFamily
from pipeline.errors import RotoscopeError
from pipeline.models.schedule_types import check_schedule_type, schedule_options, scheduled_class

if TYPE_CHECKING:  # diffusers is imported only when a scheduler is built: planning stays light
    from diffusers import SchedulerMixin


@dataclass(frozen=True)
class _Sampler:
    scheduler: str  # diffusers class name
    options: dict[str, Any] = field(default_factory=dict)
    requires: str | None = None  # pip package (== import name) the scheduler needs


_MULTISTEP = "DPMSolverMultistepScheduler"
_KARRAS = {"use_karras_sigmas": True}

_SAMPLERS: dict[str, _Sampler] = {
    "Euler a": _Sampler("EulerAncestralDiscreteScheduler"),
    "Euler": _Sampler("EulerDiscreteScheduler"),
    "LMS": _Sampler("LMSDiscreteScheduler", requires="scipy"),
    "LMS Karras": _Sampler("LMSDiscreteScheduler", _KARRAS, requires="scipy"),
    "Heun": _Sampler("HeunDiscreteScheduler"),
    "DPM2": _Sampler("KDPM2DiscreteScheduler"),
    "DPM2 Karras": _Sampler("KDPM2DiscreteScheduler", _KARRAS),
    "DPM2 a": _Sampler("KDPM2AncestralDiscreteScheduler"),
    "DPM2 a Karras": _Sampler("KDPM2AncestralDiscreteScheduler", _KARRAS),
    "DPM++ 2M": _Sampler(_MULTISTEP, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "DPM++ 2M Karras": _Sampler(
        _MULTISTEP, {"algorithm_type": "dpmsolver++", "solver_order": 2, **_KARRAS}
    ),
    "DPM++ 2M SDE": _Sampler(_MULTISTEP, {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "DPM++ 2M SDE Karras": _Sampler(
        _MULTISTEP, {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, **_KARRAS}
    ),
    "DPM++ 3M SDE": _Sampler(_MULTISTEP, {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}),
    "DPM++ 3M SDE Karras": _Sampler(
        _MULTISTEP, {"algorithm_type": "sde-dpmsolver++", "solver_order": 3, **_KARRAS}
    ),
    # DPMSolverSDEScheduler draws its noise from a torchsde Brownian tree seeded by
    # ``noise_sampler_seed``, not from the pipeline's generator: see seed_scheduler().
    "DPM++ SDE": _Sampler("DPMSolverSDEScheduler", {"noise_sampler_seed": 0}, "torchsde"),
    "DPM++ SDE Karras": _Sampler(
        "DPMSolverSDEScheduler", {"noise_sampler_seed": 0, **_KARRAS}, "torchsde"
    ),
    "DDIM": _Sampler("DDIMScheduler"),
    "PLMS": _Sampler("PNDMScheduler", {"skip_prk_steps": True}),
    "UniPC": _Sampler("UniPCMultistepScheduler"),
    # Latent consistency models and LCM-LoRAs: 1-8 steps, guidance 0-2.
    "LCM": _Sampler("LCMScheduler"),
}
# LCMScheduler picks its steps from a schedule of this many (its original_inference_steps).
LCM_MAX_STEPS = 50

SAMPLER_NAMES: tuple[str, ...] = tuple(_SAMPLERS)

# Flags that replace the model's sigma schedule. A base config may carry one of them
# from its own scheduler, so every sampler states them explicitly: "Euler" built from a
# Karras config must still be plain Euler.
_SIGMA_FLAGS = (
    "use_karras_sigmas",
    "use_exponential_sigmas",
    "use_beta_sigmas",
    "use_lu_lambdas",
    "use_flow_sigmas",
)


def _slug(name: str) -> str:
    """Spelling-independent form: case, ``++``/``pp``, separators and ``k_`` ignored."""
    text = name.strip().lower()
    text = text.removeprefix("k_")  # k-diffusion / early A1111 API names: k_euler_a
    text = text.replace("++", "pp").replace("ancestral", "a")
    return re.sub(r"[\s_\-.]+", "", text)


_BY_SLUG = {_slug(name): name for name in SAMPLER_NAMES}


def canonical_sampler(name: str) -> str:
    """The A1111 spelling of a sampler name given in any common form.

    Accepts ``"DPM++ 2M Karras"``, ``"dpm++ 2m karras"``, ``"dpmpp_2m_karras"``,
    ``"Euler a"``, ``"euler_a"``, ``"k_euler_a"``, ``"euler_ancestral"``.
    """
    canonical = _BY_SLUG.get(_slug(name))
    if canonical is None:
        close = difflib.get_close_matches(_slug(name), list(_BY_SLUG), n=1, cutoff=0.6)
        mean = f"did you mean '{_BY_SLUG[close[0]]}'? " if close else ""
        raise RotoscopeError(
            f"unknown sampler '{name}'",
            f"{mean}use one of: {', '.join(SAMPLER_NAMES)}",
        )
    return canonical


def _check_requirement(sampler: str, package: str | None) -> None:
    if package is not None and importlib.util.find_spec(package) is None:
        raise RotoscopeError(
            f"sampler '{sampler}' needs the Python package '{package}', which is not installed",
            f"pip install {package}, or pick another sampler",
        )


def inference_steps(steps: int, strength: float) -> int:
    """The ``num_inference_steps`` that makes img2img run at least one step.

    diffusers' img2img runs ``int(steps * strength)`` of ``steps`` steps, none when that
    is below 1, where A1111 still runs one (a Turbo or LCM model at 1 step and strength
    0.35, or a Deforum file with ``steps: 1``). Raising the step count until one step
    runs keeps diffusers' own rule: that step is the last one of the longer schedule,
    whose noise level is closest to what ``strength`` asks for. Strength 0 runs nothing.
    """
    if strength <= 0:
        return steps
    count = max(steps, 1)
    while int(count * strength) < 1:
        count += 1
    return count


def denoising_steps(scheduler: SchedulerMixin, num_inference_steps: int, strength: float) -> int:
    """How many iterations diffusers' img2img loop runs for these arguments (the number
    prompt editing counts in): its ``get_timesteps``, on a fresh copy of ``scheduler``.
    Second-order samplers (Heun, DPM2) run more iterations than steps, as A1111 counts."""
    scratch: Any = type(scheduler).from_config(scheduler.config)  # type: ignore[attr-defined]
    scratch.set_timesteps(num_inference_steps)
    kept = min(int(num_inference_steps * strength), num_inference_steps)
    start = max(num_inference_steps - kept, 0)
    return len(scratch.timesteps[start * scratch.order :])


def check_sampler_steps(sampler: str, steps: int, strength: float) -> tuple[str, str] | None:
    """(problem, hint) when ``sampler`` cannot run ``steps`` at ``strength``, else None."""
    needed = inference_steps(steps, strength)
    if canonical_sampler(sampler) == "LCM" and needed > LCM_MAX_STEPS:
        return (
            f"LCM runs at most {LCM_MAX_STEPS} steps, and {steps} steps x strength "
            f"{strength:g} needs {needed}",
            "LCM is made for 1-8 steps: lower steps or raise strength",
        )
    return None


def make_scheduler(
    name: str,
    base_config: Mapping[str, Any],
    schedule: str | None = None,
    family: ModelFamily = ModelFamily.sd15,
) -> SchedulerMixin:
    """A fresh scheduler for sampler ``name``, built on the pipeline's scheduler config.

    ``base_config`` is ``pipe.scheduler.config`` of the loaded model (keep a copy of the
    original: the model's training settings live there). Only the options that define
    the sampler are overridden. ``schedule`` is an A1111 schedule type (None: the
    sampler's own; see :mod:`pipeline.models.schedule_types`), for a model of ``family``.
    """
    canonical = canonical_sampler(name)
    spec = _SAMPLERS[canonical]
    _check_requirement(canonical, spec.requires)
    import diffusers

    cls = getattr(diffusers, spec.scheduler)
    accepted = inspect.signature(cls.__init__).parameters
    options = {flag: False for flag in _SIGMA_FLAGS if flag in accepted}
    options.update(spec.options)
    if schedule is not None:
        check_schedule_type(canonical, schedule)
        cls = scheduled_class(cls, schedule, family)
        options.update(schedule_options(cls, schedule))
    return cls.from_config(dict(base_config), **options)


def seed_scheduler(scheduler: SchedulerMixin, seed: int) -> None:
    """Tie a scheduler's own noise source to the frame seed.

    Most samplers take their noise from the ``generator`` passed to the pipeline, but
    DPMSolverSDEScheduler (DPM++ SDE) seeds a torchsde Brownian tree from
    ``noise_sampler_seed`` when ``set_timesteps`` runs. Call this before each frame so
    that frame's SDE noise depends on its seed alone (it is a no-op for the others).
    """
    if hasattr(scheduler, "noise_sampler_seed"):
        setattr(scheduler, "noise_sampler_seed", seed)  # noqa: B010 (DPM++ SDE's own fields)
        setattr(scheduler, "noise_sampler", None)  # noqa: B010
