"""Contract suites: behaviour every registered component of a kind must show.

Each suite is a pytest class parametrised over ``component_name``: by default every name in the
kind's registry (plugins included); a plugin's own tests subclass a suite and set ``names``::

    from distgen.testing import EncoderContract

    class TestMyEncoder(EncoderContract):
        names = ["my_encoder"]

Components are built from their defaults plus the class attribute ``example_params`` (a dict) if
they define one, with the data-dependent parameters injected from ``tiny_info()``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
import torch
import yaml

from distgen.backbones.base import Condition
from distgen.config import build_component, resolve_node
from distgen.registry import registry
from distgen.testing.fixtures import N_GENES, tiny_batch, tiny_info, tiny_labels, tiny_table

COND_DIM = 8


def injected() -> dict[str, Any]:
    info = tiny_info()
    return {"info": info, "n_genes": info.n_genes, "cond_dim": COND_DIM, "population_dim": 0, "seen_perturbations": None}


def example_node(kind: str, name: str) -> dict[str, Any]:
    """``{name, **example_params}`` for a registered component."""
    cls = registry(kind).get(name)
    return {"name": name, **copy.deepcopy(getattr(cls, "example_params", {}))}


def make(kind: str, name: str, seed: int = 0, **extra: Any) -> Any:
    """Build a component for contract tests (seeded, with injected tiny-data sizes)."""
    torch.manual_seed(seed)
    return build_component(kind, example_node(kind, name), **{**injected(), **extra})


class _Contract:
    kind: ClassVar[str] = ""
    names: ClassVar[Sequence[str] | None] = None

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "component_name" in metafunc.fixturenames:
            names = list(self.names) if self.names is not None else registry(self.kind).names()
            metafunc.parametrize("component_name", names)

    def test_describes_itself(self, component_name: str) -> None:
        info = registry(self.kind).info(component_name)
        assert info.kind == self.kind and info.name == component_name
        assert info.summary, f"{component_name}: give the class a docstring; its first line is the summary"
        assert info.provider and info.version

    def test_config_round_trip(self, component_name: str, tmp_path: Any) -> None:
        node = resolve_node(self.kind, example_node(self.kind, component_name))
        path = tmp_path / "node.yaml"
        path.write_text(yaml.safe_dump(node, sort_keys=False))
        assert yaml.safe_load(path.read_text()) == node
        assert resolve_node(self.kind, node) == node  # resolving is idempotent
        build_component(self.kind, node, **injected())  # and the resolved node builds


class KernelContract(_Contract):
    kind = "kernels"

    def test_gram_shape_symmetry_and_grad(self, component_name: str) -> None:
        k = make(self.kind, component_name)
        x = torch.randn(2, 5, 4, requires_grad=True)
        y = torch.randn(2, 3, 4)
        kxy = k.gram(x, y, ref=y)
        assert kxy.shape == (2, 5, 3)
        assert torch.isfinite(kxy).all()
        kxx = k.gram(x, x, ref=x)
        torch.testing.assert_close(kxx, kxx.transpose(-1, -2), atol=1e-5, rtol=1e-5)
        kxy.sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()

    def test_positive_semidefinite_when_declared(self, component_name: str) -> None:
        k = make(self.kind, component_name)
        x = torch.randn(1, 16, 3, dtype=torch.float64)
        gram = k.gram(x, x, ref=x)[0]
        if k.capabilities.get("conditionally_pd"):
            # conditionally p.d.: v^T K v >= 0 for v summing to zero
            c = torch.eye(16, dtype=torch.float64) - 1.0 / 16
            gram = c @ gram @ c
        assert torch.linalg.eigvalsh(gram).min() > -1e-6 * gram.abs().max()


class EncoderContract(_Contract):
    kind = "encoders"

    def test_shape(self, component_name: str) -> None:
        enc = make(self.kind, component_name).eval()
        b = tiny_batch()
        z = enc(b.target, b.target_mask)
        assert z.shape == (3, enc.dim)
        assert torch.isfinite(z).all()

    def test_mask_respected(self, component_name: str) -> None:
        enc = make(self.kind, component_name).eval()
        b = tiny_batch()
        z = enc(b.target, b.target_mask)
        garbage = b.target.clone()
        garbage[~b.target_mask] = 1e3
        torch.testing.assert_close(enc(garbage, b.target_mask), z, atol=1e-4, rtol=1e-4)

    def test_permutation_invariant(self, component_name: str) -> None:
        enc = make(self.kind, component_name).eval()
        b = tiny_batch(pad_last=0)
        perm = torch.randperm(b.target.shape[1], generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(enc(b.target[:, perm], b.target_mask[:, perm]), enc(b.target, b.target_mask), atol=1e-4, rtol=1e-4)

    def test_deterministic_under_seed(self, component_name: str) -> None:
        b = tiny_batch()
        z1 = make(self.kind, component_name, seed=3).eval()(b.target, b.target_mask)
        z2 = make(self.kind, component_name, seed=3).eval()(b.target, b.target_mask)
        torch.testing.assert_close(z1, z2)

    def test_distance_finite_differentiable(self, component_name: str) -> None:
        enc = make(self.kind, component_name)
        b = tiny_batch()
        p = b.target.clone().requires_grad_(True)
        d = enc.distance(p, b.target_mask, b.control, b.control_mask)
        assert d.shape == (3,)
        assert torch.isfinite(d).all()
        d.sum().backward()
        assert p.grad is not None and torch.isfinite(p.grad).all()
        assert p.grad[~b.target_mask].abs().max() == 0, "padded cells must not influence the distance"


class ConditionerContract(_Contract):
    kind = "conditioners"

    def test_shape_and_null(self, component_name: str) -> None:
        c = make(self.kind, component_name)
        labels = tiny_labels(4)
        e = c(labels)
        assert e.shape == (4, c.dim) and torch.isfinite(e).all()
        drop = torch.tensor([True, False, True, False])
        ed = c(labels, drop)
        torch.testing.assert_close(ed[0], ed[2])
        torch.testing.assert_close(ed[1], e[1])

    def test_can_embed(self, component_name: str) -> None:
        c = make(self.kind, component_name)
        atoms = list(tiny_info().perturbations)
        out = c.can_embed([*atoms, "NOT_A_GENE_XYZ"])
        assert len(out) == len(atoms) + 1 and all(isinstance(v, bool) for v in out)
        assert out[-1] is False, "a name the conditioner has never heard of cannot be embeddable"

    def test_differentiable(self, component_name: str) -> None:
        c = make(self.kind, component_name)
        c(tiny_labels(4)).pow(2).sum().backward()
        grads = [p.grad for p in c.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads)


def _condition(batch: Any, backbone: Any) -> Condition:
    torch.manual_seed(0)
    b = batch.target.shape[0]
    return Condition(
        gene_ids=batch.gene_ids,
        embedding=torch.randn(b, COND_DIM),
        control=batch.control,
        control_mask=batch.control_mask,
        population=None,
        labels=batch.labels,
    )


class BackboneContract(_Contract):
    kind = "backbones"

    def test_shape_and_grad(self, component_name: str) -> None:
        net = make(self.kind, component_name)
        batch = tiny_batch()
        x = batch.target.clone().requires_grad_(True)
        t = torch.rand(3, batch.target.shape[1])
        out = net(x, t, _condition(batch, net))
        assert out.shape == x.shape and torch.isfinite(out).all()
        out.pow(2).mean().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()

    def test_permutation_equivariant_when_declared(self, component_name: str) -> None:
        net = make(self.kind, component_name).eval()
        if not net.capabilities.get("permutation_equivariant", False):
            pytest.skip("backbone does not declare permutation equivariance over cells")
        batch = tiny_batch(pad_last=0)
        t = torch.rand(1).expand(3, batch.target.shape[1]).contiguous()
        perm = torch.randperm(batch.target.shape[1], generator=torch.Generator().manual_seed(2))
        cond = _condition(batch, net)
        out = net(batch.target, t, cond)
        assert cond.control is not None and cond.control_mask is not None
        cond_p = Condition(**{**cond.__dict__, "control": cond.control[:, perm], "control_mask": cond.control_mask[:, perm]})
        out_p = net(batch.target[:, perm], t[:, perm], cond_p)
        torch.testing.assert_close(out_p, out[:, perm], atol=1e-4, rtol=1e-4)

    def test_gene_subsampling_when_declared(self, component_name: str) -> None:
        net = make(self.kind, component_name).eval()
        if not net.capabilities.get("supports_gene_subsampling", False):
            pytest.skip("backbone does not declare gene subsampling")
        batch = tiny_batch().select_genes(torch.tensor([0, 3, 5, 7]))
        out = net(batch.target, torch.rand(3, batch.target.shape[1]), _condition(batch, net))
        assert out.shape == batch.target.shape


class _LinearField(torch.nn.Module):
    """A tiny trainable field for dynamics contracts."""

    def __init__(self, g: int = N_GENES) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(g + 1, g)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, *, x_self_cond: Any = None, uncond: bool = False) -> torch.Tensor:
        return self.lin(torch.cat([x_t, t[..., None].expand(*x_t.shape[:2], 1)], -1))


class DynamicsContract(_Contract):
    kind = "dynamics"

    def test_loss_finite_and_differentiable(self, component_name: str) -> None:
        dyn = make(self.kind, component_name)
        field = _LinearField()
        batch = tiny_batch()
        source = dyn.draw_source(batch.target, batch.control)
        out = dyn.loss(field, batch.target, batch.target_mask, source, make("couplings", "independent"))
        assert out.loss.dim() == 0 and torch.isfinite(out.loss)
        out.loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in field.parameters())
        assert out.extras["x1_hat"].shape == batch.target.shape

    def test_sample_shape_nfe_and_seed(self, component_name: str) -> None:
        dyn = make(self.kind, component_name)
        field = _LinearField().eval()
        batch = tiny_batch()
        torch.manual_seed(5)
        x0 = dyn.draw_source(batch.control, batch.control)
        with torch.no_grad():
            torch.manual_seed(7)
            a = dyn.sample(field, x0, batch.control_mask)
            torch.manual_seed(7)
            b = dyn.sample(field, x0, batch.control_mask)
        assert a.cells.shape == batch.control.shape and torch.isfinite(a.cells).all()
        assert a.nfe > 0
        torch.testing.assert_close(a.cells, b.cells)


class CouplingContract(_Contract):
    kind = "couplings"

    def test_pairs_by_permutation_within_sets(self, component_name: str) -> None:
        cp = make(self.kind, component_name)
        batch = tiny_batch()
        x0 = torch.randn_like(batch.target)
        out = cp.pair(x0, batch.target, batch.target_mask)
        assert out.shape == x0.shape
        for b in range(x0.shape[0]):
            m = batch.target_mask[b]
            got = out[b][m].sort(dim=0).values
            torch.testing.assert_close(got, x0[b][m].sort(dim=0).values)
            torch.testing.assert_close(out[b][~m], x0[b][~m])


class MetricContract(_Contract):
    kind = "metrics"

    def _ev(self, same: bool = False) -> Any:
        from distgen.evaluation.metrics.base import PerturbationEval

        g = torch.Generator().manual_seed(0)
        real = torch.rand(20, N_GENES, generator=g) * 2
        pred = real.clone() if same else torch.rand(20, N_GENES, generator=g) * 2
        ctrl = torch.rand(20, N_GENES, generator=g) * 2
        return PerturbationEval(pred=pred, real=real, control_real=ctrl, control_pred=ctrl.clone(), name="G0",
                                targets=("G0",), genes=tiny_info().genes)

    def test_returns_finite_float(self, component_name: str) -> None:
        m = make(self.kind, component_name)
        v = m(self._ev())
        assert isinstance(v, float)

    def test_compute_over_perturbations(self, component_name: str) -> None:
        """``compute(EvalData)`` gives ``[P]`` float64 values and a reason for every NaN."""
        from distgen.evaluation.evaldata import EvalData, Population

        g = torch.Generator().manual_seed(1)
        p, n = 3, 8

        def pop() -> Population:
            return Population(X=torch.rand(p * n, N_GENES, generator=g) * 2, offsets=torch.arange(p + 1) * n,
                              control=torch.rand(10, N_GENES, generator=g) * 2)

        data = EvalData(real=pop(), pred=pop(), perts=("G0", "G1", "G0+G1"), targets=(("G0",), ("G1",), ("G0", "G1")),
                        genes=tiny_info().genes)
        res = make(self.kind, component_name).compute(data)
        assert res.values.shape == (p,) and res.values.dtype == torch.float64
        for i in torch.isnan(res.values).nonzero().flatten().tolist():
            assert res.reasons.get(i), f"{component_name}: NaN for perturbation {i} without a reason"

    def test_perfect_prediction_is_no_worse(self, component_name: str) -> None:
        m = make(self.kind, component_name)
        perfect, noisy = m(self._ev(same=True)), m(self._ev())
        if perfect != perfect or noisy != noisy:  # NaN: metric undefined on this input
            pytest.skip("metric undefined on tiny random input")
        assert (perfect >= noisy - 1e-9) if m.higher_is_better else (perfect <= noisy + 1e-9)


class ModelContract(_Contract):
    kind = "models"

    def _model(self, name: str) -> Any:
        from distgen.models.generator import build_model

        torch.manual_seed(0)
        return build_model(example_node(self.kind, name), tiny_info())

    def test_fit_predict_contract(self, component_name: str) -> None:
        model = self._model(component_name)
        table = tiny_table()
        fit_kwargs = getattr(type(model), "example_fit_kwargs", {})
        from distgen.train import fit

        fit(model, table, **fit_kwargs)
        batch = tiny_batch()
        out = model.predict(batch.control, batch.control_mask, batch.labels)
        assert out.shape == batch.control.shape
        assert torch.isfinite(torch.as_tensor(out)).all()

    def test_can_predict_lists_bools(self, component_name: str) -> None:
        model = self._model(component_name)
        out = model.can_predict(list(tiny_info().perturbations))
        assert len(out) == 4 and all(isinstance(v, bool) for v in out)


class MatcherContract(_Contract):
    kind = "matchers"

    def test_returns_valid_indices_deterministically(self, component_name: str) -> None:
        m = make(self.kind, component_name)
        pool_ctx = torch.tensor([0, 0, 1, 1, 1, 0])
        pool_batch = torch.tensor([0, 1, 0, 1, 0, 1])
        g = torch.Generator().manual_seed(1)
        target, pool_x = torch.rand(10, 5, generator=g), torch.rand(6, 5, generator=g)
        a = m.match(1, 0, pool_ctx, pool_batch, 10, torch.Generator().manual_seed(0), target, pool_x)
        b = m.match(1, 0, pool_ctx, pool_batch, 10, torch.Generator().manual_seed(0), target, pool_x)
        assert a.shape == (10,) and a.dtype == torch.long
        assert ((a >= 0) & (a < 6)).all()
        torch.testing.assert_close(a, b)

    def test_respects_context_when_declared(self, component_name: str) -> None:
        """Matchers other than ``random`` draw controls of the set's own context."""
        if component_name == "random":
            return
        m = make(self.kind, component_name)
        pool_ctx = torch.tensor([0, 0, 1, 1, 1, 0])
        pool_batch = torch.tensor([0, 1, 0, 1, 0, 1])
        g = torch.Generator().manual_seed(1)
        idx = m.match(1, 0, pool_ctx, pool_batch, 7, g, torch.rand(7, 5, generator=g), torch.rand(6, 5, generator=g))
        assert (pool_ctx[idx] == 1).all()


ALL_CONTRACTS = (
    KernelContract,
    EncoderContract,
    ConditionerContract,
    BackboneContract,
    DynamicsContract,
    CouplingContract,
    MetricContract,
    ModelContract,
    MatcherContract,
)
