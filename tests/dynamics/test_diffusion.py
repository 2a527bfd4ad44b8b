"""Diffusion dynamics against the exact denoiser of Gaussian data.

For data ``x0 ~ N(mu, sd^2 I)`` and ``x = a x0 + s eps`` the posterior mean is
``E[x0 | x] = mu + a sd^2 / (a^2 sd^2 + s^2) (x - a mu)``; a field returning it is the optimal
network, so every correct sampler must return samples with mean ``mu`` and std ``sd``.
"""

import pytest
import torch

from distgen.config import ConfigError, build_component
from distgen.couplings.independent import IndependentCoupling
from distgen.dynamics.diffusion import Diffusion
from distgen.dynamics.diffusion_predictions import from_x0_noise
from distgen.dynamics.diffusion_samplers import DDIM, NonFiniteSampleError
from distgen.registry import registry

MU, SD = 2.0, 0.5


class GaussianField:
    """Exact denoiser of N(mu, sd^2) data, answering in the dynamics' prediction space."""

    def __init__(self, dyn, mu=MU, sd=SD, mu_null=None, nan_after=None):
        self.dyn, self.mu, self.sd, self.mu_null = dyn, mu, sd, mu_null
        self.calls, self.self_conds, self.nan_after = 0, [], nan_after

    def __call__(self, x, t, *, x_self_cond=None, uncond=False):
        self.calls += 1
        self.self_conds.append(None if x_self_cond is None else x_self_cond.clone())
        mu = self.mu_null if uncond else self.mu
        abar = self.dyn.schedule.abar_tau(1.0 - t[..., None].double()).to(x.dtype)
        a, s = abar.sqrt(), (1 - abar).sqrt()
        x0 = mu + a * self.sd**2 / (a**2 * self.sd**2 + s**2) * (x - a * mu)
        eps = (x - a * x0) / s
        out = from_x0_noise(self.dyn.prediction, x0, eps, a, s)
        if self.nan_after is not None and self.calls > self.nan_after:
            out = out * float("nan")
        return out


def _sample(dyn, field=None, b=4, m=64, g=3, seed=0):
    torch.manual_seed(seed)
    x0 = torch.randn(b, m, g, dtype=torch.float64)
    field = field or GaussianField(dyn)
    with torch.no_grad():
        return dyn.sample(field, x0, torch.ones(b, m, dtype=torch.bool))


@pytest.mark.parametrize(
    "params",
    [
        {"sampler": {"name": "ddim", "steps": 50}},
        {"sampler": {"name": "ddim", "steps": 50, "eta": 1.0}},
        {"sampler": {"name": "ddpm", "steps": 100}},
        {"sampler": {"name": "ddpm", "steps": 100, "variance": "large"}},
        {"sampler": {"name": "sde", "solver": {"name": "euler", "steps": 200}}},
        {"sampler": {"name": "sde", "solver": {"name": "srk", "steps": 50}}},
        {"sampler": {"name": "ode", "solver": {"name": "rk4", "steps": 50}}},
        {"sampler": {"name": "ode", "solver": "dopri5"}},
        {"sampler": DDIM(steps=50), "schedule": "cosine"},
    ],
)
def test_samplers_reproduce_gaussian_data(params):
    dyn = Diffusion(prediction="x0", **params)
    out = _sample(dyn)
    cells = out.cells
    assert cells.shape == (4, 64, 3) and out.nfe > 0
    assert cells.mean().item() == pytest.approx(MU, abs=0.05)
    assert cells.std().item() == pytest.approx(SD, rel=0.12)


def test_official_truncated_ddim_is_not_a_strided_ddim():
    # the released sampler starts from N(0, I) at step 99, where the true marginal is mostly data
    dyn = Diffusion(prediction="x0", sampler={"name": "ddim_official_truncated", "start_step": 99})
    out = _sample(dyn)
    assert out.nfe == 100
    assert abs(out.cells.mean().item() - MU) > 0.3  # biased toward the noise it started from
    strided = _sample(Diffusion(prediction="x0", sampler={"name": "ddim", "steps": 100}))
    assert strided.cells.mean().item() == pytest.approx(MU, abs=0.05)


@pytest.mark.parametrize("sampler", [{"name": "ddim", "steps": 20}, {"name": "ode", "solver": {"name": "rk4", "steps": 20}}])
def test_prediction_types_give_the_same_deterministic_samples(sampler):
    outs = [_sample(Diffusion(prediction=k, sampler=sampler)).cells for k in ("noise", "x0", "velocity")]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(outs[0], outs[2], rtol=1e-6, atol=1e-6)


def test_ddim_eta_one_is_the_ddpm_posterior():
    a = _sample(Diffusion(prediction="x0", sampler={"name": "ddim", "steps": 30, "eta": 1.0}), seed=3).cells
    b = _sample(Diffusion(prediction="x0", sampler={"name": "ddpm", "steps": 30}), seed=3).cells
    torch.testing.assert_close(a, b)


def test_guidance_in_noise_space():
    # exact Gaussian denoisers are linear, so guidance shifts the mean to mu_null + w (mu_cond - mu_null);
    # w = 2 is PerturbDiff's (1 + 1) eps_cond - 1 eps_null
    dyn = Diffusion(prediction="x0", sampler={"name": "ddim", "steps": 50}, guidance=2.0)
    field = GaussianField(dyn, mu=2.0, mu_null=1.0)
    out = _sample(dyn, field)
    assert out.cells.mean().item() == pytest.approx(3.0, abs=0.05)
    assert out.nfe == 100 == field.calls
    plain = Diffusion(prediction="x0", sampler={"name": "ddim", "steps": 50})  # w = 1: no unconditional pass
    field = GaussianField(plain, mu=2.0, mu_null=None)
    assert _sample(plain, field).nfe == 50 == field.calls


def test_self_conditioning_feeds_the_previous_estimate():
    dyn = Diffusion(prediction="noise", sampler={"name": "ddim", "steps": 5}, self_condition=0.5)
    field = GaussianField(dyn)
    _sample(dyn, field)
    assert field.self_conds[0] is None and all(sc is not None for sc in field.self_conds[1:])
    # the estimate fed at a step is exactly the x0 the denoiser returned at the step before
    field = GaussianField(dyn)
    denoise, _ = dyn.denoiser(field)
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    first, _ = denoise(x, torch.tensor(0.3), 0.4)
    denoise(x + 1, torch.tensor(0.5), 0.6)
    torch.testing.assert_close(field.self_conds[1], first)


def test_clip_denoised_zeroes_small_values():
    dyn = Diffusion(prediction="x0", sampler={"name": "ddim", "steps": 20}, clip_denoised=0.3)
    cells = _sample(dyn, GaussianField(dyn, mu=0.2, sd=0.3)).cells
    assert (cells == 0).any()
    assert not ((cells > 0) & (cells < 0.3)).any() and not (cells < 0).any()


@pytest.mark.parametrize(
    "sampler",
    [{"name": "ddim", "steps": 10}, {"name": "ddpm", "steps": 10}, {"name": "sde", "solver": {"name": "euler", "steps": 10}},
     {"name": "ode", "solver": {"name": "rk4", "steps": 10}}],
)
def test_non_finite_values_stop_sampling_with_step_and_time(sampler):
    dyn = Diffusion(prediction="noise", sampler=sampler)
    with pytest.raises(NonFiniteSampleError, match=r"step \d+ \(t=0\.\d+"):
        _sample(dyn, GaussianField(dyn, nan_after=3))


@pytest.mark.parametrize("kind", ["noise", "x0", "velocity"])
def test_loss_is_zero_for_the_exact_denoiser_of_a_point_mass(kind):
    dyn = Diffusion(prediction=kind, schedule={"name": "linear", "timesteps": 100})
    field = GaussianField(dyn, mu=1.5, sd=0.0)
    x1 = torch.full((3, 5, 4), 1.5, dtype=torch.float64)
    mask = torch.ones(3, 5, dtype=torch.bool)
    torch.manual_seed(0)
    out = dyn.loss(field, x1, mask, torch.randn_like(x1), IndependentCoupling())
    assert out.loss.item() == pytest.approx(0.0, abs=1e-8)
    torch.testing.assert_close(out.extras["x1_hat"], x1)
    t = out.extras["t"]
    assert (t == t[:, :1]).all(), "one noise level per set"
    assert ((t >= 0) & (t < 1)).all()


def test_loss_feeds_the_network_the_noised_data_of_its_step():
    dyn = Diffusion(prediction="x0", schedule={"name": "linear", "timesteps": 100})
    seen = []

    def field(x_t, t, **kw):
        seen.append((x_t, t))
        return torch.zeros_like(x_t)

    torch.manual_seed(3)
    x1, eps = torch.rand(3, 4, 5), torch.randn(3, 4, 5)
    dyn.loss(field, x1, torch.ones(3, 4, dtype=torch.bool), eps, IndependentCoupling())
    x_t, t = seen[0]
    abar = dyn.schedule.abar_tau(1.0 - t[..., None].double())  # q(x_t | x1) = N(sqrt(abar) x1, (1 - abar) I)
    torch.testing.assert_close(x_t.double(), abar.sqrt() * x1.double() + (1 - abar).sqrt() * eps.double(), atol=1e-6, rtol=1e-6)


def test_loss_self_conditioning_runs_a_no_grad_first_pass():
    dyn = Diffusion(prediction="x0", self_condition=1.0, schedule={"name": "linear", "timesteps": 100})
    field = GaussianField(dyn)
    x1 = torch.randn(2, 4, 3, dtype=torch.float64)
    dyn.loss(field, x1, torch.ones(2, 4, dtype=torch.bool), torch.randn_like(x1), IndependentCoupling())
    assert field.calls == 2 and field.self_conds[0] is None and field.self_conds[1] is not None


def test_bad_parameters_name_the_key():
    for kwargs, key in [
        ({"sampler": "euler"}, "unknown diffusion_samplers component 'euler'"),
        ({"prediction": "score"}, "prediction"),
        ({"guidance": -1.0}, "guidance"),
        ({"sampler": {"name": "ddim", "steps": 0}}, "steps"),
        ({"sampler": {"name": "ddim", "steps": 50}, "schedule": {"name": "linear", "timesteps": 30}}, r"steps must be in \[1, timesteps=30\]"),
        ({"sampler": {"name": "ddim_official_truncated", "start_step": 30}, "schedule": {"name": "linear", "timesteps": 30}}, "start_step"),
        ({"schedule": {"name": "linear", "timesteps": 20}}, "use timesteps > 20"),
        ({"self_condition": 1.5}, "self_condition"),
        ({"sampler": {"name": "sde", "solver": "heun"}}, "unknown sde_solvers component 'heun'"),
    ]:
        with pytest.raises(ValueError, match=key):
            Diffusion(**kwargs)
    assert set(registry("diffusion_samplers").names()) >= {"ddim", "ddim_official_truncated", "ddpm", "sde", "ode"}


def test_old_flat_keys_say_where_they_moved():
    for key, where in [("sample_steps", "sampler"), ("timesteps", "schedule"), ("start_step", "ddim_official_truncated"),
                       ("ode_method", "solver"), ("eta", "sampler")]:
        with pytest.raises(ConfigError, match=f"'{key}' is no longer a parameter here; .*{where}"):
            build_component("dynamics", {"name": "diffusion", key: 1})


@pytest.mark.parametrize("name", ["diffusion", "flow_matching"])
def test_old_key_messages_give_an_override_of_that_setting(name):
    """Each dotted override a moved-key message suggests sets the moved setting (``eta`` used to say ``...sampler.steps=``)."""
    import re

    from distgen.registry import registry as reg

    for key, message in reg("dynamics").get(name).moved_params.items():
        for path in re.findall(r"model\.dynamics\.([\w.]+)=", message):
            leaf = path.rsplit(".", 1)[-1]
            assert key.endswith(leaf), f"{key!r}: the message suggests model.dynamics.{path}=..., which sets {leaf!r}"


def test_a_bare_name_is_the_part_with_its_defaults():
    a = build_component("dynamics", {"name": "diffusion", "sampler": "ddpm", "schedule": "cosine"})
    b = build_component("dynamics", {"name": "diffusion", "sampler": {"name": "ddpm"}, "schedule": {"name": "cosine"}})
    assert (a.sampler.steps, a.sampler.variance, a.schedule.T) == (b.sampler.steps, b.sampler.variance, b.schedule.T) == (100, "small", 1000)
    torch.testing.assert_close(a.schedule.betas, b.schedule.betas)


def test_masked_mse_without_padding_equals_the_masked_formula():
    from distgen.dynamics.base import masked_mse

    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(3, 5, 7, generator=g), torch.randn(3, 5, 7, generator=g)
    full = torch.ones(3, 5, dtype=torch.bool)
    want = ((pred - target).pow(2)).sum() / (15 * 7)
    torch.testing.assert_close(masked_mse(pred, target, full), want)
    padded = full.clone()
    padded[1, 3:] = False
    target_garbage = target.clone()
    target_garbage[~padded] = 1e6
    want_padded = ((pred - target).pow(2) * padded[..., None]).sum() / (13 * 7)
    torch.testing.assert_close(masked_mse(pred, target_garbage, padded), want_padded)
    assert masked_mse(pred[:, :0], target[:, :0], full[:, :0]) == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_zero_below_is_where_below_the_threshold(dtype):
    from distgen.dynamics.diffusion import zero_below

    x = (torch.randn(5000, generator=torch.Generator().manual_seed(0)) * 1e-3).to(dtype)
    x[:5] = torch.tensor([float("nan"), 1e-4, -float("inf"), float("inf"), -0.0]).to(dtype)
    x[5] = torch.nextafter(torch.tensor(1e-4, dtype=dtype), torch.tensor(0.0, dtype=dtype))  # just below the cut
    for c in (1e-4, 0.0, -0.5):
        want = torch.where(x < c, torch.zeros_like(x), x)
        got = zero_below(x, c)
        assert torch.equal(torch.isnan(got), torch.isnan(want))
        assert torch.equal(got.nan_to_num(7.0), want.nan_to_num(7.0))


def test_check_finite_names_the_step_and_tolerates_an_overflowing_sum():
    from distgen.dynamics.diffusion_samplers import NonFiniteSampleError, check_finite

    big = torch.full((4, 1000), 3e38)  # every value finite, their sum is not
    check_finite(big, 3, 0.5, "ddim")
    for bad in (float("nan"), float("inf")):
        x = torch.zeros(4, 1000)
        x[2, 7] = bad
        with pytest.raises(NonFiniteSampleError, match=r"1 non-finite value.*step 3"):
            check_finite(x, 3, 0.5, "ddim")
