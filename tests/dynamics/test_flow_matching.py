"""Flow matching: paths, conversions, time samplers, loss and torchdiffeq sampling with NFE counts."""

import pytest
import torch

from distgen.config import ConfigError, build_component
from distgen.couplings.independent import IndependentCoupling
from distgen.dynamics.flow_matching import FlowMatching
from distgen.dynamics.ode_solvers import RK4, SolverBudgetError
from distgen.dynamics.paths import CondOTPath, CosinePath
from distgen.dynamics.time_samplers import LogitNormalTime, UniformTime
from distgen.registry import registry


@pytest.mark.parametrize("path", [CondOTPath(0.0), CondOTPath(0.1), CosinePath()])
def test_path_velocity_is_time_derivative(path):
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    t = torch.rand(4, generator=g).requires_grad_(True)
    x_t, u = path.sample(x0, x1, t)
    # d x_t / d t, coordinate by coordinate, by autograd
    grads = torch.stack([torch.autograd.grad(x_t[:, j].sum(), t, retain_graph=True)[0] for j in range(3)], -1)
    torch.testing.assert_close(grads, u)


def test_path_endpoints():
    x0, x1 = torch.randn(5, 2), torch.randn(5, 2)
    for path in (CondOTPath(0.0), CosinePath()):
        a, _ = path.sample(x0, x1, torch.zeros(5))
        b, _ = path.sample(x0, x1, torch.ones(5))
        torch.testing.assert_close(a, x0)
        torch.testing.assert_close(b, x1, atol=1e-6, rtol=0)
    a, s, _, _ = CosinePath().schedule(torch.linspace(0, 1, 7))
    torch.testing.assert_close(a**2 + s**2, torch.ones(7))


@pytest.mark.parametrize("path", [CondOTPath(0.0), CondOTPath(0.05), CosinePath()])
def test_conversions_invert_each_other(path):
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    t = torch.rand(6, generator=g) * 0.9
    x_t, u = path.sample(x0, x1, t)
    torch.testing.assert_close(path.velocity_to_x1(x_t, u, t), x1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(path.x1_to_velocity(x_t, x1, t), u, atol=1e-5, rtol=1e-5)


def test_condot_one_step_estimate_is_scdfm_formula():
    x_t, v, t = torch.randn(3, 5), torch.randn(3, 5), torch.rand(3)
    torch.testing.assert_close(CondOTPath(0.0).velocity_to_x1(x_t, v, t), x_t + (1 - t)[:, None] * v)


def test_bad_path_names():
    with pytest.raises(ValueError, match="unknown paths component 'vp_linear'"):
        FlowMatching(path="vp_linear")
    with pytest.raises(ConfigError, match=r"cosine\]: unknown key 'sigma_min'"):
        FlowMatching(path={"name": "cosine", "sigma_min": 0.1})
    with pytest.raises(ValueError, match="sigma_min must be in"):
        CondOTPath(1.0)


def test_time_samplers():
    torch.manual_seed(0)
    u = UniformTime().sample((20000,), "cpu", torch.float32)
    assert u.min() >= 0 and u.max() <= 1 and abs(u.mean() - 0.5) < 0.01
    ln = LogitNormalTime(loc=1.0, scale=0.5).sample((20000,), "cpu", torch.float32)
    assert ln.min() > 0 and ln.max() < 1
    assert abs(ln.median() - torch.sigmoid(torch.tensor(1.0))) < 0.01  # median of sigmoid(z) = sigmoid(loc)
    with pytest.raises(ValueError, match="unknown time_samplers component 'beta'"):
        FlowMatching(time_sampler="beta")


class _PointTargetField(torch.nn.Module):
    """Exact CondOT field towards a single point ``c``: velocity ``(c - x)/(1 - t)`` or endpoint ``c``."""

    def __init__(self, c, endpoint=False):
        super().__init__()
        self.c, self.endpoint = c, endpoint

    def forward(self, x_t, t, *, x_self_cond=None, uncond=False):
        if self.endpoint:
            return self.c.expand_as(x_t)
        return (self.c - x_t) / (1 - t)[..., None].clamp_min(1e-6)


@pytest.mark.parametrize("prediction", ["velocity", "endpoint"])
def test_loss_zero_for_exact_field_and_x1_hat(prediction):
    torch.manual_seed(0)
    c = torch.tensor([1.0, -2.0, 0.5])
    x1 = c.expand(2, 4, 3).clone()
    mask = torch.ones(2, 4, dtype=torch.bool)
    fm = FlowMatching(prediction=prediction)
    out = fm.loss(_PointTargetField(c, prediction == "endpoint"), x1, mask, torch.randn_like(x1), IndependentCoupling())
    assert out.loss < 1e-6
    torch.testing.assert_close(out.extras["x1_hat"], x1, atol=1e-4, rtol=1e-4)
    # a wrong field gives a positive loss
    bad = fm.loss(_PointTargetField(c + 1, prediction == "endpoint"), x1, mask, torch.randn_like(x1), IndependentCoupling())
    assert bad.loss > 0.1


def test_loss_ignores_padded_cells():
    torch.manual_seed(0)
    c = torch.zeros(3)
    x1 = torch.zeros(1, 4, 3)
    x1[0, 3] = 100.0  # padded cell with a value the field cannot match
    mask = torch.tensor([[True, True, True, False]])
    out = FlowMatching().loss(_PointTargetField(c), x1, mask, torch.randn_like(x1), IndependentCoupling())
    assert out.loss < 1e-6


class _GaussianField(torch.nn.Module):
    """Exact marginal CondOT velocity from N(0, 1) to N(mu, s^2): the flow map is x1 = mu + s x0."""

    def __init__(self, mu, s):
        super().__init__()
        self.mu, self.s = mu, s
        self.calls = 0

    def forward(self, x_t, t, *, x_self_cond=None, uncond=False):
        self.calls += 1
        t = t[..., None]
        var = (t * self.s) ** 2 + (1 - t) ** 2
        return self.mu + (t * self.s**2 - (1 - t)) / var * (x_t - t * self.mu)


@pytest.mark.parametrize(("solver", "steps", "nfe", "tol"), [("euler", 10, 10, 0.3), ("midpoint", 10, 20, 0.05), ("rk4", 19, 76, 1e-4)])
def test_fixed_step_solvers_accuracy_and_nfe(solver, steps, nfe, tol):
    torch.manual_seed(0)
    x0 = torch.randn(2, 5, 3)
    field = _GaussianField(2.0, 0.5)
    out = FlowMatching(solver={"name": solver, "steps": steps}).sample(field, x0, torch.ones(2, 5, dtype=torch.bool))
    assert out.nfe == nfe == field.calls
    err = (out.cells - (2.0 + 0.5 * x0)).abs().max()
    assert err < tol


def test_dopri5_tolerance_and_nfe():
    torch.manual_seed(0)
    x0 = torch.randn(2, 5, 3)
    mask = torch.ones(2, 5, dtype=torch.bool)
    loose = FlowMatching(solver={"name": "dopri5", "rtol": 1e-3, "atol": 1e-3}).sample(_GaussianField(2.0, 0.5), x0, mask)
    tight = FlowMatching(solver={"name": "dopri5", "rtol": 1e-7, "atol": 1e-7}).sample(_GaussianField(2.0, 0.5), x0, mask)
    assert 0 < loose.nfe < tight.nfe
    assert (tight.cells - (2.0 + 0.5 * x0)).abs().max() < 1e-5
    assert tight.info["ode_evals"] == tight.nfe


class _RecordingEndpoint(torch.nn.Module):
    """Endpoint network ``x1_hat = scale * E[x1 | x_t]`` for the Gaussian problem of ``_GaussianField`` (CondOT path).

    ``scale = 1`` is the exact endpoint; ``scale = 1.01`` a network 1 % off, as any trained one is. Records the times.
    """

    def __init__(self, mu, s, scale=1.0):
        super().__init__()
        self.mu, self.s, self.scale, self.times = mu, s, scale, []

    def forward(self, x_t, t, *, x_self_cond=None, uncond=False):
        self.times.append(float(t.max()))
        t = t[..., None]
        var = (t * self.s) ** 2 + (1 - t) ** 2
        return self.scale * (self.mu + t * self.s**2 / var * (x_t - t * self.mu))


_ALL_SOLVERS = [{"name": "euler", "steps": 4}, {"name": "midpoint", "steps": 4}, {"name": "rk4", "steps": 4}, "rk4",
                "dopri5", "bosh3", "adaptive_heun"]


@pytest.mark.parametrize("solver", _ALL_SOLVERS)
@pytest.mark.parametrize("path", ["condot", "cosine"])
def test_endpoint_prediction_lands_on_the_true_endpoint_without_evaluating_t1(solver, path):
    """A network that returns the true ``x1`` of each cell: the conditional path is followed exactly and ends on ``x1``."""
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(2, 5, 3, generator=g), 3.0 * torch.rand(2, 5, 3, generator=g)
    times = []

    def true_x1(x_t, t, *, x_self_cond=None, uncond=False):
        times.append(float(t.max()))
        return x1

    out = FlowMatching(prediction="endpoint", path=path, solver=solver).sample(true_x1, x0, torch.ones(2, 5, dtype=torch.bool))
    torch.testing.assert_close(out.cells, x1, atol=1e-4, rtol=1e-4)
    assert max(times) < 1.0, f"the endpoint network was evaluated at t={max(times)} (singular velocity at t = 1)"
    assert out.nfe == len(times)


@pytest.mark.parametrize("steps", [4, 20])
def test_endpoint_rk4_with_an_inexact_network_stays_in_the_data_range(steps):
    """rk4's last stage at t = 1 divided the network's endpoint error by sigma(1) = 0 (floored at 1e-4): 1 % -> x100."""
    torch.manual_seed(0)
    x0 = torch.randn(2, 50, 3)
    exact = 2.0 + 0.5 * x0  # the exact flow's endpoint: N(2, 0.25) samples in about [0.5, 3.7]
    net = _RecordingEndpoint(2.0, 0.5, scale=1.01)
    out = FlowMatching(prediction="endpoint", solver={"name": "rk4", "steps": steps}).sample(net, x0, torch.ones(2, 50, dtype=torch.bool))
    width = float(exact.max() - exact.min())
    assert exact.min() - 0.1 * width < out.cells.min() and out.cells.max() < exact.max() + 0.1 * width
    assert (out.cells - exact).abs().max() < 0.3  # the 1 % network error, a little amplified by the ODE, not x100
    assert max(net.times) < 1.0 and out.nfe == 4 * (steps - 1) + 1 == len(net.times)


def test_endpoint_sampling_of_the_exact_gaussian_flow():
    """The exact endpoint network of the Gaussian problem: euler as with velocity (its last step already lands on
    ``x1_hat``); rk4 and dopri5 close to the exact flow map ``mu + s x0`` (the last step is first order)."""
    torch.manual_seed(0)
    x0 = torch.randn(2, 5, 3)
    mask = torch.ones(2, 5, dtype=torch.bool)
    euler = {"name": "euler", "steps": 10}
    by_velocity = FlowMatching(solver=euler).sample(_GaussianField(2.0, 0.5), x0, mask).cells
    by_endpoint = FlowMatching(solver=euler, prediction="endpoint").sample(_RecordingEndpoint(2.0, 0.5), x0, mask).cells
    torch.testing.assert_close(by_endpoint, by_velocity, atol=1e-5, rtol=1e-5)
    for solver, tol in (({"name": "rk4", "steps": 19}, 0.02), ("dopri5", 5e-3)):
        out = FlowMatching(solver=solver, prediction="endpoint").sample(_RecordingEndpoint(2.0, 0.5), x0, mask)
        assert (out.cells - (2.0 + 0.5 * x0)).abs().max() < tol, solver


def test_unmeetable_tolerance_is_reported_not_hung():
    x0 = torch.randn(1, 4, 3)
    fm = FlowMatching(solver={"name": "dopri5", "rtol": 1e-13, "atol": 1e-13, "max_nfe": 30})
    with pytest.raises(SolverBudgetError, match="max_nfe=30"):
        fm.sample(_GaussianField(2.0, 0.5), x0, torch.ones(1, 4, dtype=torch.bool))


def test_unknown_solver_lists_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown ode_solvers component 'leapfrog'.*Available: .*dopri5.*rk4"):
        FlowMatching(solver="leapfrog")


def test_solver_object_node_and_name_are_the_same_solver():
    x0 = torch.randn(1, 3, 2, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(1, 3, dtype=torch.bool)
    outs = [FlowMatching(solver=s).sample(_GaussianField(1.0, 0.5), x0, mask).cells for s in (RK4(steps=7), {"name": "rk4", "steps": 7})]
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert FlowMatching(solver="rk4").solver.steps == RK4().steps == 20


def test_clamp_and_guidance():
    class TwoField(torch.nn.Module):
        def forward(self, x_t, t, *, x_self_cond=None, uncond=False):
            return torch.full_like(x_t, -1.0 if uncond else 1.0)

    x0 = torch.zeros(1, 2, 3)
    mask = torch.ones(1, 2, dtype=torch.bool)
    plain = FlowMatching(solver={"name": "euler", "steps": 4}).sample(TwoField(), x0, mask)
    torch.testing.assert_close(plain.cells, torch.ones_like(x0))
    guided = FlowMatching(solver={"name": "euler", "steps": 4}, guidance=2.0).sample(TwoField(), x0, mask)
    torch.testing.assert_close(guided.cells, torch.full_like(x0, 3.0))  # -1 + 2 * (1 - -1)
    assert guided.nfe == 2 * plain.nfe
    weak = FlowMatching(solver={"name": "euler", "steps": 4}, guidance=0.25).sample(TwoField(), x0, mask)
    torch.testing.assert_close(weak.cells, torch.full_like(x0, -0.5))  # -1 + 0.25 * (1 - -1)
    clamped = FlowMatching(solver={"name": "euler", "steps": 4}, guidance=0.25, clamp_min=0.0).sample(TwoField(), x0, mask)
    torch.testing.assert_close(clamped.cells, torch.zeros_like(x0))


@pytest.mark.parametrize("name", ["flow_matching", "diffusion"])
def test_guidance_zero_is_refused_with_the_convention(name):
    """w = 0 is the unconditional model (identical predictions across perturbations): users of the w = 0 = 'off'
    convention must be told that distgen's 'off' is 1."""
    with pytest.raises(ValueError, match=r"guidance=0 would sample the unconditional model.*w = 1 is plain conditional.*guidance: 1"):
        build_component("dynamics", {"name": name, "guidance": 0.0})
    cls = registry("dynamics").get(name)
    for bad in (-1.0, float("nan"), float("inf")):  # (a config refuses nan and inf before the constructor)
        with pytest.raises(ValueError, match=r"guidance must be a finite weight > 0.*guidance: 1"):
            cls(guidance=bad)
    assert build_component("dynamics", {"name": name, "guidance": 0.5}).guidance == 0.5


def test_source_control_and_config_errors():
    fm = build_component("dynamics", {"name": "flow_matching", "source": "control", "path": "cosine", "time_sampler": "logit_normal"})
    ctrl = torch.rand(2, 3, 4)
    assert fm.draw_source(torch.zeros(2, 3, 4), ctrl) is ctrl
    for bad in ({"solver": "rk45"}, {"prediction": "noise"}, {"solver": {"name": "rk4", "steps": 0}},
                {"solver": {"name": "dopri5", "rtol": 0.0}}, {"source": "poisson"}):
        with pytest.raises(ValueError):
            FlowMatching(**bad)
    for key in ("steps", "rtol", "sigma_min", "time_loc"):  # old flat keys say where they went
        with pytest.raises(ConfigError, match=f"'{key}' is no longer a parameter here"):
            build_component("dynamics", {"name": "flow_matching", key: 1})
