"""The example plugin's dynamics parts pass distgen's contracts and plug into the built-in dynamics by name."""

import torch

from distgen.config import build_component, load_config
from distgen.registry import registry
from distgen.testing import DiffusionSamplerContract, ODESolverContract, PathContract


class TestPowerPath(PathContract):
    names = ["power"]


class TestHeun3(ODESolverContract):
    names = ["heun3"]


class TestQuadraticDDIM(DiffusionSamplerContract):
    names = ["ddim_quadratic"]


def test_discovered_through_entry_points():
    for kind, name in (("paths", "power"), ("ode_solvers", "heun3"), ("diffusion_samplers", "ddim_quadratic")):
        assert registry(kind).info(name).provider == "distgen-example"


def test_flow_matching_with_the_plugin_path_and_solver():
    dyn = build_component("dynamics", {"name": "flow_matching", "path": {"name": "power", "exponent": 1.0}, "solver": "heun3"})
    ref = build_component("dynamics", {"name": "flow_matching", "solver": {"name": "rk4", "steps": 20}})
    # exponent 1 is the rectified path: the same target velocity as condot
    x0, x1, t = torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.rand(2, 3)
    torch.testing.assert_close(dyn.path.sample(x0, x1, t)[1], ref.path.sample(x0, x1, t)[1])
    field = lambda x, tt, **kw: -x  # noqa: E731  (dx/dt = -x: x1 = x0 / e)
    out = dyn.sample(field, x0, torch.ones(2, 3, dtype=torch.bool))
    torch.testing.assert_close(out.cells, x0 * torch.exp(torch.tensor(-1.0)), rtol=1e-4, atol=1e-5)
    assert out.nfe == 3 * 20


def test_the_perturbdiff_preset_with_the_plugin_sampler():
    node = load_config("perturbdiff", ["model.dynamics.sampler={name: ddim_quadratic, steps: 20}"])["model"]["dynamics"]
    dyn = build_component("dynamics", node)
    assert type(dyn.sampler).__name__ == "QuadraticDDIM" and dyn.sampler.steps == 20
