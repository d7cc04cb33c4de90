"""A1111's schedule types: how a sampler spaces its noise levels, on diffusers' schedulers.

Since 1.9, A1111 picks a sampler ("Euler a", "DPM++ 2M") and a schedule type ("Karras",
"SGM Uniform", ...) separately, and writes both into a PNG's parameters ("Sampler: DPM++
2M, Schedule type: Karras"). Each schedule type is a list of noise levels (sigmas) for
``n`` steps, computed from the model's own training sigmas; the definitions below follow
A1111's ``sd_schedulers.py`` and k-diffusion's ``get_sigmas_*`` (the model's sigmas
``sqrt((1 - alphas_cumprod) / alphas_cumprod)``, its timestep/sigma conversions by
log-linear interpolation, and its whole range, smallest to largest training sigma).

diffusers' k-diffusion style schedulers (Euler, Heun, LMS, DPM2, DPM++ ...) turn the
sigmas of their ``use_karras_sigmas`` option into timesteps, second-order steps and a
final sigma themselves; a scheduler class made by :func:`scheduled_class` fills that
slot with the schedule type's sigmas instead of Karras', so every sampler that has the
option runs any schedule type exactly as it runs Karras. Euler a has no such option in
diffusers: its class gets the schedule type's sigmas and timesteps after its own
``set_timesteps``. DDIM, PLMS and LCM step through timesteps of their own, not sigmas,
and take no schedule type (A1111 runs them with their own schedule too).

Not offered: A1111's "DDIM" schedule type (it makes a number of steps of its own, which
diffusers' img2img cannot follow).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.config.schema import ModelFamily
from pipeline.errors import RotoscopeError

AUTOMATIC = "Automatic"

# Align Your Steps' sigmas for 10 steps (NVIDIA's published lists, as A1111 uses them).
AYS_SD15 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)
KARRAS_RHO = 7.0  # A1111's default rho for Karras ...
POLYEXPONENTIAL_RHO = 1.0  # ... and for Polyexponential
BETA_ALPHA = BETA_BETA = 0.6  # A1111's beta_dist_alpha and beta_dist_beta defaults


class ModelSigmas:
    """A model's training noise levels and k-diffusion's conversions between a (fractional)
    timestep and a sigma."""

    def __init__(self, alphas_cumprod: Any) -> None:
        cumprod = np.asarray(alphas_cumprod, dtype=np.float64)
        self.sigmas = np.sqrt((1.0 - cumprod) / cumprod)  # ascending, one per timestep
        self.log_sigmas = np.log(self.sigmas)

    @property
    def smallest(self) -> float:
        return float(self.sigmas[0])

    @property
    def largest(self) -> float:
        return float(self.sigmas[-1])

    def t_to_sigma(self, t: np.ndarray) -> np.ndarray:
        """The sigma at fractional timesteps: log-sigma interpolated between neighbours."""
        t = np.asarray(t, dtype=np.float64)
        low = np.floor(t).astype(int)
        high = np.ceil(t).astype(int)
        weight = t - low
        return np.exp((1 - weight) * self.log_sigmas[low] + weight * self.log_sigmas[high])

    def sigma_to_t(self, sigma: float) -> float:
        """The fractional timestep of a sigma (the inverse of :meth:`t_to_sigma`)."""
        log_sigma = math.log(sigma)
        above = np.cumsum(log_sigma - self.log_sigmas >= 0)
        low = min(int(np.argmax(above)), len(self.log_sigmas) - 2)
        low_log, high_log = self.log_sigmas[low], self.log_sigmas[low + 1]
        weight = min(max((low_log - log_sigma) / (low_log - high_log), 0.0), 1.0)
        return (1 - weight) * low + weight * (low + 1)


def _uniform(n: int, model: ModelSigmas, family: ModelFamily) -> np.ndarray:
    return model.t_to_sigma(np.linspace(len(model.sigmas) - 1, 0, n))


def _karras(n: int, model: ModelSigmas, family: ModelFamily) -> np.ndarray:
    ramp = np.linspace(0, 1, n)
    top, bottom = model.largest ** (1 / KARRAS_RHO), model.smallest ** (1 / KARRAS_RHO)
    return np.asarray((top + ramp * (bottom - top)) ** KARRAS_RHO)


def _exponential(n: int, model: ModelSigmas, family: ModelFamily) -> np.ndarray:
    return np.exp(np.linspace(math.log(model.largest), math.log(model.smallest), n))


def _polyexponential(n: int, model: ModelSigmas, family: ModelFamily) -> np.ndarray:
    ramp = np.linspace(1, 0, n) ** POLYEXPONENTIAL_RHO
    low, high = math.log(model.smallest), math.log(model.largest)
    return np.exp(ramp * (high - low) + low)


def _sgm_uniform(n: int, model: ModelSigmas, family: ModelFamily) -> np.ndarray:
    start, end = model.sigma_to_t(model.largest), model.sigma_to_t(model.smallest)
    return model.t_to_sigma(np.linspace(start, end, n + 1)[:-1])


def _kl_optimal(n: int, model: ModelSigmas, family: ModelFamily) -> np.ndarray:
    """n + 1 levels: the last is the smallest training sigma, not 0 (see FINAL_SIGMA_MIN)."""
    low, high = math.atan(model.smallest), math.atan(model.largest)
    fraction = np.arange(n + 1) / n
    return np.tan(fraction * low + (1.0 - fraction) * high)


def _align_your_steps(n: int, model: ModelSigmas, family: ModelFamily) -> np.ndarray:
    levels = np.array(AYS_SDXL if family is ModelFamily.sdxl else AYS_SD15)
    if n == len(levels):
        return levels
    # log-linear interpolation of the decreasing list to n levels
    known = np.linspace(0, 1, len(levels))
    wanted = np.linspace(0, 1, n)
    return np.exp(np.interp(wanted, known, np.log(levels[::-1])))[::-1].copy()


def _simple(n: int, model: ModelSigmas, family: ModelFamily) -> np.ndarray:
    stride = len(model.sigmas) / n
    return np.array([model.sigmas[-(1 + int(x * stride))] for x in range(n)])


def _normal(n: int, model: ModelSigmas, family: ModelFamily) -> np.ndarray:
    start, end = model.sigma_to_t(model.largest), model.sigma_to_t(model.smallest)
    return model.t_to_sigma(np.linspace(start, end, n))


def _beta(n: int, model: ModelSigmas, family: ModelFamily) -> np.ndarray:
    from scipy import stats

    quantiles = stats.beta.ppf(1 - np.linspace(0, 1, n), BETA_ALPHA, BETA_BETA)
    return model.smallest + np.asarray(quantiles) * (model.largest - model.smallest)


Levels = Callable[[int, ModelSigmas, ModelFamily], np.ndarray]

# A1111's label -> the noise levels of n steps (without the final 0 A1111 appends)
SCHEDULE_TYPES: dict[str, Levels] = {
    "Uniform": _uniform,
    "Karras": _karras,
    "Exponential": _exponential,
    "Polyexponential": _polyexponential,
    "SGM Uniform": _sgm_uniform,
    "KL Optimal": _kl_optimal,
    "Align Your Steps": _align_your_steps,
    "Simple": _simple,
    "Normal": _normal,
    "Beta": _beta,
}
# Schedules whose last step ends at the smallest training sigma, not at 0
FINAL_SIGMA_MIN = ("KL Optimal",)
NAMES: tuple[str, ...] = (AUTOMATIC, *SCHEDULE_TYPES)
# Samplers that step through timesteps of their own and take no schedule type
OWN_TIMESTEPS = ("DDIM", "PLMS", "LCM")


def _slug(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


# A1111's internal names (sgm_uniform, kl_optimal), its alias SGMUniform, any case
_BY_SLUG = {_slug(name): name for name in NAMES}


def canonical_schedule_type(name: str) -> str:
    """A1111's label for a schedule type given in any common spelling."""
    canonical = _BY_SLUG.get(_slug(name))
    if canonical is None:
        hint = (
            "A1111's DDIM schedule type is not offered (it changes the number of steps)"
            if _slug(name) == "ddim"
            else f"use one of: {', '.join(NAMES)}"
        )
        raise RotoscopeError(f"unknown schedule type scheduler='{name}'", hint)
    return canonical


def check_schedule_type(sampler: str, scheduler: str) -> str | None:
    """The schedule type a row records for ``sampler`` with ``scheduler``: None for
    Automatic (the sampler's own), else A1111's label; an impossible pair is refused in
    one line naming both. ``sampler`` is an A1111 sampler name, already canonical."""
    schedule = canonical_schedule_type(scheduler)
    if schedule == AUTOMATIC:
        return None
    if sampler in OWN_TIMESTEPS:
        raise RotoscopeError(
            f"sampler '{sampler}' with scheduler='{schedule}': {sampler} steps through "
            "timesteps of its own, not a schedule of noise levels",
            "use scheduler=Automatic with it, or a sampler such as Euler or DPM++ 2M",
        )
    if sampler.endswith(" Karras"):
        if schedule == "Karras":
            return None  # the sampler's name says it already
        plain = sampler.removesuffix(" Karras")
        raise RotoscopeError(
            f"sampler '{sampler}' with scheduler='{schedule}': the sampler's name already "
            "picks the Karras schedule",
            f"use sampler='{plain}' scheduler='{schedule}'",
        )
    return schedule


def model_sigmas(scheduler: Any) -> ModelSigmas:
    """The training sigmas of the model a diffusers scheduler was made for."""
    return ModelSigmas(scheduler.alphas_cumprod.numpy())


def levels(schedule: str, n: int, model: ModelSigmas, family: ModelFamily) -> np.ndarray:
    """The noise levels the ``n`` model evaluations of ``schedule`` start from."""
    return SCHEDULE_TYPES[schedule](n, model, family)[:n]


@functools.cache
def scheduled_class(cls: Any, schedule: str, family: ModelFamily) -> Any:
    """``cls`` (a diffusers scheduler class) running ``schedule``'s noise levels; build it
    with :func:`schedule_options` set."""
    if hasattr(cls, "_convert_to_karras"):

        def convert(self: Any, in_sigmas: Any, num_inference_steps: int | None = None) -> Any:
            steps = num_inference_steps or self.num_inference_steps
            return levels(schedule, steps, model_sigmas(self), family)

        members: dict[str, Any] = {"_convert_to_karras": convert}
    else:  # Euler a: no sigma option; its levels replaced after its own set_timesteps

        def set_timesteps(self: Any, num_inference_steps: int, device: Any = None) -> None:
            import torch

            cls.set_timesteps(self, num_inference_steps, device)
            model = model_sigmas(self)
            sigmas = levels(schedule, num_inference_steps, model, family)
            final = model.smallest if schedule in FINAL_SIGMA_MIN else 0.0
            timesteps = np.array([model.sigma_to_t(float(s)) for s in sigmas], np.float32)
            self.sigmas = torch.from_numpy(np.append(sigmas, final).astype(np.float32))
            self.timesteps = torch.from_numpy(timesteps).to(device=device)

        members = {"set_timesteps": set_timesteps}
    name = f"{cls.__name__}_{_slug(schedule)}"
    return type(name, (cls,), {**members, "schedule_type": schedule, "__module__": __name__})


def schedule_options(cls: Any, schedule: str) -> dict[str, Any]:
    """The config options :func:`scheduled_class`'s class needs for ``schedule``."""
    accepted = inspect.signature(cls.__init__).parameters
    options: dict[str, Any] = {}
    if "use_karras_sigmas" in accepted:
        options["use_karras_sigmas"] = True
    if "final_sigmas_type" in accepted:
        ends_at_training_minimum = schedule in FINAL_SIGMA_MIN and any(
            base.__name__ in TRAINING_SIGMA_MIN for base in cls.__mro__
        )
        options["final_sigmas_type"] = "sigma_min" if ends_at_training_minimum else "zero"
    return options


# The schedulers whose final_sigmas_type "sigma_min" is the smallest training sigma (the
# others' repeats the schedule's last level): a KL Optimal schedule ends there on these,
# at 0 elsewhere (a last step of 0.03 more denoising).
TRAINING_SIGMA_MIN = ("EulerDiscreteScheduler", "DPMSolverMultistepScheduler")
