"""A1111's schedule types on diffusers' schedulers: each changes the sigmas as its
definition says, for every sampler that takes one; impossible pairs are refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pipeline.config.schema import ModelFamily
from pipeline.errors import RotoscopeError
from pipeline.models.samplers import make_scheduler
from pipeline.models.schedule_types import (
    AYS_SD15,
    AYS_SDXL,
    NAMES,
    canonical_schedule_type,
    check_schedule_type,
)

SD_SCHEDULER = {
    "_class_name": "PNDMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085,
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "steps_offset": 1,
    "set_alpha_to_one": False, "skip_prk_steps": True, "prediction_type": "epsilon",
}  # fmt: skip
STEPS = 12


def training_sigmas() -> np.ndarray:
    """SD's 1000 training sigmas, ascending, from its scaled-linear betas."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    cumprod = np.cumprod(1 - betas)
    return np.sqrt((1 - cumprod) / cumprod)


SIGMAS = training_sigmas()
LOW, HIGH = SIGMAS[0], SIGMAS[-1]


def at(t: np.ndarray) -> np.ndarray:
    """The sigma at fractional timesteps, log-linear between the two around it."""
    low = np.floor(t).astype(int)
    w = t - low
    return np.exp((1 - w) * np.log(SIGMAS[low]) + w * np.log(SIGMAS[np.minimum(low + 1, 999)]))


# Each schedule type written out from its definition (A1111's sd_schedulers.py and
# k-diffusion), n = STEPS levels before the final one.
EXPECTED = {
    "Uniform": at(np.linspace(999, 0, STEPS)),
    "Karras": (HIGH ** (1 / 7) + np.linspace(0, 1, STEPS) * (LOW ** (1 / 7) - HIGH ** (1 / 7)))
    ** 7,
    "Exponential": np.exp(np.linspace(math.log(HIGH), math.log(LOW), STEPS)),
    "Polyexponential": np.exp(np.linspace(math.log(HIGH), math.log(LOW), STEPS)),  # rho 1
    # the top and bottom sigmas are timesteps 999 and 0 exactly
    "SGM Uniform": at(np.linspace(999, 0, STEPS + 1)[:-1]),
    "Normal": at(np.linspace(999, 0, STEPS)),
    "KL Optimal": np.tan(
        np.arange(STEPS) / STEPS * math.atan(LOW) + (1 - np.arange(STEPS) / STEPS) * math.atan(HIGH)
    ),
    "Simple": np.array([SIGMAS[-(1 + int(x * 1000 / STEPS))] for x in range(STEPS)]),
    "Beta": LOW + stats.beta.ppf(1 - np.linspace(0, 1, STEPS), 0.6, 0.6) * (HIGH - LOW),
    "Align Your Steps": np.exp(
        np.interp(np.linspace(0, 1, STEPS), np.linspace(0, 1, 11), np.log(AYS_SD15[::-1]))
    )[::-1],
}


@pytest.mark.parametrize("schedule", list(EXPECTED))
def test_each_schedule_type_gives_the_sigmas_of_its_definition(schedule: str) -> None:
    scheduler = make_scheduler("Euler", SD_SCHEDULER, schedule)
    scheduler.set_timesteps(STEPS)
    sigmas = scheduler.sigmas.numpy()
    assert np.allclose(sigmas[:STEPS], EXPECTED[schedule], rtol=2e-5)
    final = LOW if schedule == "KL Optimal" else 0.0  # KL Optimal stops at the lowest sigma
    assert sigmas[STEPS] == pytest.approx(final, rel=1e-4)
    # the timesteps are the sigmas' own (what the UNet is told)
    assert len(scheduler.timesteps) == STEPS


def test_the_schedule_types_differ_from_each_other_and_from_automatic() -> None:
    automatic = make_scheduler("Euler", SD_SCHEDULER)
    automatic.set_timesteps(STEPS)
    for schedule in ("Karras", "Exponential", "SGM Uniform", "Beta", "KL Optimal", "Simple"):
        assert not np.allclose(EXPECTED[schedule], automatic.sigmas.numpy()[:STEPS], rtol=1e-3)


@pytest.mark.parametrize(
    "sampler", ["Euler a", "DPM++ 2M", "DPM++ 2M SDE", "LMS", "Heun", "DPM2", "DPM2 a", "UniPC"]
)
def test_every_sigma_sampler_runs_the_schedule_type(sampler: str) -> None:
    scheduler = make_scheduler(sampler, SD_SCHEDULER, "Karras")
    scheduler.set_timesteps(STEPS)
    levels = np.unique(scheduler.sigmas.numpy()[:-1].round(4))[::-1]  # second order repeats
    assert np.allclose(levels[:3], EXPECTED["Karras"][:3].round(4), atol=2e-4)


def test_align_your_steps_has_a_list_per_family() -> None:
    for family, levels in ((ModelFamily.sd15, AYS_SD15), (ModelFamily.sdxl, AYS_SDXL)):
        scheduler = make_scheduler("Euler", SD_SCHEDULER, "Align Your Steps", family)
        scheduler.set_timesteps(len(levels))
        assert np.allclose(scheduler.sigmas.numpy()[: len(levels)], levels, rtol=1e-5)


def test_schedule_type_spellings_and_impossible_pairs() -> None:
    assert canonical_schedule_type("sgm_uniform") == "SGM Uniform"
    assert canonical_schedule_type("SGMUniform") == "SGM Uniform"
    assert canonical_schedule_type("karras") == "Karras"
    assert "Automatic" in NAMES
    assert check_schedule_type("Euler a", "Automatic") is None
    assert check_schedule_type("DPM++ 2M Karras", "Karras") is None  # the name says it
    assert check_schedule_type("Euler", "kl_optimal") == "KL Optimal"
    with pytest.raises(RotoscopeError, match="sampler 'DDIM' with scheduler='Karras'"):
        check_schedule_type("DDIM", "Karras")
    with pytest.raises(RotoscopeError, match=r"sampler 'DPM\+\+ 2M Karras' with scheduler='Beta'"):
        check_schedule_type("DPM++ 2M Karras", "Beta")
    with pytest.raises(RotoscopeError, match="unknown schedule type"):
        canonical_schedule_type("Sigmoid")
