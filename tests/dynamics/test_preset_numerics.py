"""The dynamics of each preset, as built from its config nodes, against independent formulas.

The refactor that turned the string switches of ``FlowMatching``/``Diffusion`` into registered
parts (paths, time samplers, solvers, schedules, samplers) must not change a single number. These
tests rebuild each preset's dynamics from its nodes and compare, on a fixed seed, its training loss
and its samples with the same quantities written out by hand here: scDFM's CondOT loss and 3/8-rule
RK4 on ``linspace(0, 1, steps + 1)``; PerturbDiff's x0-prediction DDPM loss with self-conditioning
and its released sampler (DDIM over steps ``start_step..0`` from pure noise, guidance in noise space,
clipping). They share no code with ``distgen.dynamics`` beyond the config loader.
(When the refactor landed, the old code gave bit-identical losses and samples for these presets
and twelve other variants; that one-off comparison is recorded in the commit message.)
"""

import itertools
import math

import pytest
import torch

from distgen.config import build_component, load_config
from distgen.couplings.independent import IndependentCoupling
from distgen.testing.fixtures import N_GENES, tiny_batch


class Field(torch.nn.Module):
    """A fixed affine field in float64 that reads the time, the previous estimate and the null flag."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(123)
        self.w = torch.randn(N_GENES + 1, N_GENES, generator=g, dtype=torch.float64) * 0.3
        self.ws = torch.randn(N_GENES, N_GENES, generator=g, dtype=torch.float64) * 0.1

    def forward(self, x_t, t, *, x_self_cond=None, uncond=False):
        h = torch.cat([x_t, t[..., None].expand(*x_t.shape[:2], 1)], -1) @ self.w
        if x_self_cond is not None:
            h = h + x_self_cond @ self.ws
        return 0.5 * h if uncond else h


def _batch():
    b = tiny_batch()
    return b.target.double(), b.target_mask, b.control.double()


def _mse(pred, target, mask):
    w = mask.double()[..., None]
    return ((pred - target) ** 2 * w).sum() / (w.sum() * pred.shape[-1])


# ---------------------------------------------------------------------------- scDFM: flow matching
def _rk4_38(f, x, grid):
    for t0, t1 in itertools.pairwise(grid):
        dt = t1 - t0
        k1 = f(t0, x)
        k2 = f(t0 + dt / 3, x + dt * k1 / 3)
        k3 = f(t0 + 2 * dt / 3, x + dt * (k2 - k1 / 3))
        k4 = f(t1, x + dt * (k1 - k2 + k3))
        x = x + dt * (k1 + 3 * (k2 + k3) + k4) / 8
    return x


@pytest.mark.parametrize(("preset", "steps"), [("scdfm", 19), ("scdfm-small", 5)])
def test_scdfm_dynamics(preset, steps):
    node = load_config(preset)["model"]["dynamics"]
    dyn = build_component("dynamics", node)
    field = Field()
    x1, mask, ctrl = _batch()

    torch.manual_seed(1)
    x0 = torch.randn_like(x1)
    out = dyn.loss(field, x1, mask, x0, IndependentCoupling())
    torch.manual_seed(1)
    torch.randn_like(x1)
    t = torch.rand(x1.shape[:2], dtype=torch.float64)  # one time per cell, drawn after the source
    x_t = t[..., None] * x1 + (1 - t[..., None]) * x0
    v = field(x_t, t)
    assert out.loss.item() == pytest.approx(_mse(v, x1 - x0, mask).item(), rel=1e-12)
    torch.testing.assert_close(out.extras["x1_hat"], x_t + (1 - t[..., None]) * v)

    torch.manual_seed(2)
    noise = torch.randn_like(ctrl)
    with torch.no_grad():
        s = dyn.sample(field, noise, mask)
    grid = [i / steps for i in range(steps + 1)]
    want = _rk4_38(lambda tt, x: field(x, torch.full(x.shape[:2], tt, dtype=x.dtype)), noise, grid).clamp_min(0.0)
    torch.testing.assert_close(s.cells, want, rtol=1e-10, atol=1e-10)
    assert s.nfe == 4 * steps


# ---------------------------------------------------------------------------- PerturbDiff: diffusion
def _abar(n: int) -> float:
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    return 1.0 if n < 0 else float(torch.cumprod(1 - betas, 0)[n])


@pytest.mark.parametrize("preset", ["perturbdiff", "perturbdiff-small"])
def test_perturbdiff_dynamics(preset):
    node = load_config(preset)["model"]["dynamics"]
    dyn = build_component("dynamics", node)
    field = Field()
    x1, mask, ctrl = _batch()
    b, m, _ = x1.shape

    for seed in range(4):  # the self-conditioning coin falls both ways over these seeds
        torch.manual_seed(seed)
        eps = torch.randn_like(x1)
        out = dyn.loss(field, x1, mask, eps, IndependentCoupling())
        torch.manual_seed(seed)
        torch.randn_like(x1)
        n = torch.randint(1000, (b,))
        a = torch.tensor([_abar(int(k)) for k in n], dtype=torch.float64)[:, None, None]
        x_t = a.sqrt() * x1 + (1 - a).sqrt() * eps
        t = (1 - (n.double() + 1) / 1000)[:, None].expand(b, m)
        sc = field(x_t, t) if float(torch.rand(())) < 0.5 else None  # x0 prediction: the estimate is the output
        x0_hat = field(x_t, t, x_self_cond=sc)
        assert out.loss.item() == pytest.approx(_mse(x0_hat, x1, mask).item(), rel=1e-12)
        torch.testing.assert_close(out.extras["x1_hat"], x0_hat)

    torch.manual_seed(2)
    x = torch.randn_like(ctrl)
    with torch.no_grad():
        s = dyn.sample(field, x.clone(), mask)
    prev = None
    for k in range(99, -1, -1):  # sampling.start_time=100: consecutive steps 99..0, from pure noise
        ab, ab_prev = _abar(k), _abar(k - 1)
        ra, rs = math.sqrt(ab), math.sqrt(1 - ab)
        tt = torch.full((b, m), 1 - (k + 1) / 1000, dtype=torch.float64)
        cond, null = field(x, tt, x_self_cond=prev), field(x, tt, x_self_cond=prev, uncond=True)
        e_c, e_n = (x - ra * cond) / rs, (x - ra * null) / rs
        e = e_n + 2.0 * (e_c - e_n)  # guidance_strength 1: (1 + 1) eps_cond - 1 eps_null
        x0 = (x - rs * e) / ra
        x0 = torch.where(x0 < 1e-4, torch.zeros_like(x0), x0)  # clip_denoised
        e = (x - ra * x0) / rs
        prev = x0
        x = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * e  # DDIM, eta = 0
    torch.testing.assert_close(s.cells, x, rtol=1e-9, atol=1e-9)
    assert s.nfe == 200
