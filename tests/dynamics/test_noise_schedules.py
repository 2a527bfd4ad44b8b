"""Noise schedules, the discrete <-> distgen time map, and exact prediction conversions."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from distgen.config import build_component
from distgen.dynamics.diffusion_predictions import PREDICTIONS, from_x0_noise, to_noise, to_x0
from distgen.dynamics.noise_schedules import CosineSchedule, LinearSchedule, strided_steps


def test_linear_schedule_matches_published_alpha_bar_values():
    # PerturbDiff dossier reference values for the linear 1e-4..0.02, T=1000 schedule
    sch = LinearSchedule(1000)
    ab = sch.alpha_bar
    assert ab[99].item() == pytest.approx(0.897, abs=1e-3)
    assert ab[199].item() == pytest.approx(0.659, abs=1e-3)
    assert ab[499].item() == pytest.approx(0.079, abs=1e-3)
    assert ab[999].item() == pytest.approx(4e-5, abs=5e-6)


def test_cosine_schedule_follows_its_closed_form():
    sch = CosineSchedule(1000, s=0.008)
    s = 0.008
    for n in (0, 100, 500, 900):
        tau = (n + 1) / 1000
        want = math.cos((tau + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
        assert sch.alpha_bar[n].item() == pytest.approx(want, rel=1e-6)


def test_linear_betas_rescale_with_T():
    # the same noise range for any T: abar at the end is comparable
    a1000 = LinearSchedule(1000).alpha_bar[-1]
    a100 = LinearSchedule(100).alpha_bar[-1]
    assert 0.1 < float(a100 / a1000) < 10 and a100 < 1e-3


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_continuous_schedule_interpolates_the_discrete_one(name):
    sch = build_component("noise_schedules", {"name": name, "timesteps": 50})
    n = torch.arange(50)
    taus = (n + 1).double() / 50
    torch.testing.assert_close(sch.abar_tau(taus), sch.alpha_bar)
    assert sch.abar_tau(torch.tensor(0.0)).item() == 1.0
    # beta is the rate: log abar(tau) = -int_0^tau beta
    grid = torch.linspace(0, 0.7, 7001, dtype=torch.float64)
    integral = torch.trapezoid(sch.beta_tau(grid), grid)
    assert (-integral).item() == pytest.approx(sch.log_abar_tau(torch.tensor(0.7)).item(), rel=2e-3)


def test_time_map_noise_is_t0_data_is_t1():
    sch = LinearSchedule(1000)
    assert sch.step_to_t(torch.tensor(999)).item() == 0.0
    assert sch.step_to_t(torch.tensor(0)).item() == pytest.approx(0.999)
    assert sch.abar(torch.tensor(-1)).item() == 1.0  # "step -1" is the clean data


def test_strided_steps():
    s = strided_steps(1000, 100)
    assert s[0] == 999 and s[-1] == 0 and len(s) == 100
    assert s == sorted(set(s), reverse=True)
    with pytest.raises(ValueError, match=r"steps must be in \[1, timesteps=10\]"):
        strided_steps(10, 11)


def test_unknown_schedule_lists_choices():
    with pytest.raises(ValueError, match=r"sigmoid.*Available: cosine, linear"):
        build_component("noise_schedules", "sigmoid")


def test_bad_schedule_parameters_name_them():
    with pytest.raises(ValueError, match="beta_start < beta_end"):
        LinearSchedule(10, beta_start=0.02, beta_end=1e-4)
    with pytest.raises(ValueError, match="timesteps"):
        CosineSchedule(0)
    with pytest.raises(ValueError, match="timesteps=10 makes the last beta 2 >= 1"):
        LinearSchedule(10)


@settings(max_examples=25, deadline=None)
@given(abar=st.floats(1e-4, 1 - 1e-4), kind=st.sampled_from(PREDICTIONS), seed=st.integers(0, 1000))
def test_prediction_conversions_are_exact_inverses(abar, kind, seed):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    a, s = torch.tensor(abar, dtype=torch.float64).sqrt(), torch.tensor(1 - abar, dtype=torch.float64).sqrt()
    x = a * x0 + s * eps
    pred = from_x0_noise(kind, x0, eps, a, s)
    torch.testing.assert_close(to_x0(pred, kind, x, a, s), x0, rtol=1e-6, atol=1e-6 / a.item())
    torch.testing.assert_close(to_noise(pred, kind, x, a, s), eps, rtol=1e-6, atol=1e-6 / s.item())


def test_velocity_definition():
    a, s = torch.tensor(0.6), torch.tensor(0.8)
    x0, eps = torch.tensor([1.0]), torch.tensor([2.0])
    assert from_x0_noise("velocity", x0, eps, a, s).item() == pytest.approx(0.6 * 2.0 - 0.8 * 1.0)
