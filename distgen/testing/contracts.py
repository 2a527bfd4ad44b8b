"""Contract suites: behaviour every registered component of a kind must show.

Each suite is a pytest class parametrised over ``component_name``: by default every name in the
kind's registry (plugins included); a plugin's own tests subclass a suite and set ``names``::

    from distgen.testing import EncoderContract

    class TestMyEncoder(EncoderContract):
        names = ["my_encoder"]

Components are built from their defaults plus the class attribute ``example_params`` (a dict) if
they define one, with the data-dependent parameters injected from ``tiny_info()``. Every suite
also runs the cheap checks of ``distgen.testing.checks`` (the ones the registry runs when a plugin's
component is first built), so what the suite accepts is what distgen accepts at run time.

The dynamics parts have suites of their own, modelled on diffusers' shared scheduler tests:
paths reach the source at ``t = 0`` and the data at ``t = 1`` and their velocity is the time
derivative; solvers integrate a linear ODE to tolerance; schedules have ``abar`` falling in
``(0, 1]``; a diffusion sampler given a perfect denoiser returns the data.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
import torch
import yaml

from distgen.backbones.base import Condition
from distgen.capabilities import resolve
from distgen.config import build_component, resolve_node
from distgen.registry import registry
from distgen.testing.checks import COND_DIM, POP_DIM, example_node, injected, make, problems
from distgen.testing.checks import _LinearField as _LinearField
from distgen.testing.fixtures import N_GENES, tiny_batch, tiny_info, tiny_labels, tiny_table
from distgen.wording import counted


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
        assert isinstance(info.capabilities, type(resolve(registry(self.kind).base))), "declare the capabilities of its kind"

    def test_cheap_checks_pass(self, component_name: str) -> None:
        """What the registry checks when a plugin's component is first built: shapes, finiteness, no crash."""
        found = problems(self.kind, make(self.kind, component_name))
        assert not found, f"{component_name}: {found}"

    def test_config_round_trip(self, component_name: str, tmp_path: Any) -> None:
        node = resolve_node(self.kind, example_node(self.kind, component_name))
        path = tmp_path / "node.yaml"
        path.write_text(yaml.safe_dump(node, sort_keys=False), encoding="utf-8")
        assert yaml.safe_load(path.read_text(encoding="utf-8")) == node
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

    def test_from_gram_equals_gram_when_declared(self, component_name: str) -> None:
        k = make(self.kind, component_name)
        x = torch.randn(2, 5, 4, dtype=torch.float64)
        y = torch.randn(2, 3, 4, dtype=torch.float64)
        bound = k.bind(y)
        from distgen.kernels import InnerProductKernel

        # the capability and the interface agree, for the kernel and for what bind returns
        assert k.capabilities.inner_product == isinstance(k, InnerProductKernel) == isinstance(bound, InnerProductKernel)
        if not isinstance(bound, InnerProductKernel):
            return
        got = bound.from_gram(x @ y.transpose(-1, -2), (x * x).sum(-1), (y * y).sum(-1))
        torch.testing.assert_close(got, bound.gram(x, y), rtol=1e-10, atol=1e-12)

    def test_positive_semidefinite_when_declared(self, component_name: str) -> None:
        k = make(self.kind, component_name)
        x = torch.randn(1, 16, 3, dtype=torch.float64)
        gram = k.gram(x, x, ref=x)[0]
        if k.capabilities.conditionally_pd:
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

    def test_gene_subsets_unless_a_fixed_panel_is_declared(self, component_name: str) -> None:
        """Without ``fixed_gene_panel=True`` a model may score gene subsets with ``distance`` (a distribution loss under
        ``genes_per_step``): it must take any subset of the genes."""
        enc = make(self.kind, component_name).eval()
        if enc.capabilities.fixed_gene_panel:
            return
        b = tiny_batch()
        k = max(1, b.target.shape[-1] // 2)
        try:
            d = enc.distance(b.target[..., :k], b.target_mask, b.control[..., :k], b.control_mask)
        except (RuntimeError, ValueError) as err:
            raise AssertionError(
                f"{component_name}.distance fails on a subset of the genes ({err}); an encoder that reads the full gene panel "
                "must declare capabilities = EncoderCapabilities(fixed_gene_panel=True), so that assembly refuses it with "
                "genes_per_step"
            ) from err
        assert d.shape == (3,) and torch.isfinite(d).all()

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

    def test_unseen_capability_is_true(self, component_name: str) -> None:
        """Built on seen atoms {G0}: ``supports_unseen_perturbations`` iff some unseen atom is embeddable."""
        c = make(self.kind, component_name, seen_perturbations=("G0",))
        declared = c.capabilities.supports_unseen_perturbations
        assert isinstance(declared, bool), "a built conditioner resolves supports_unseen_perturbations to a bool"
        unseen = [a for a in tiny_info().perturbations if a != "G0"]
        assert declared == any(c.can_embed(unseen)), f"declares {declared} but can_embed({unseen}) = {c.can_embed(unseen)}"

    def _declared_and_changed(self, component_name: str, capability: str, label: str) -> tuple[bool, bool]:
        """(``capability`` as the built conditioner resolves it, whether its embedding changes when ``labels.<label>`` is swapped)."""
        c = make(self.kind, component_name)
        declared = getattr(c.capabilities, capability)
        assert isinstance(declared, bool), f"a built conditioner resolves {capability} to a bool"
        labels = tiny_labels(4)
        swapped = dataclasses.replace(labels, **{label: 1 - getattr(labels, label)})
        return declared, not torch.allclose(c(labels), c(swapped))

    def test_batch_capability_is_true(self, component_name: str) -> None:
        """``embeds_batches`` resolves to a bool, True exactly when the embedding changes with ``labels.batch``."""
        declared, changed = self._declared_and_changed(component_name, "embeds_batches", "batch")
        assert declared == changed, f"declares embeds_batches={declared} but swapping the batches {'changes' if changed else 'keeps'} the embedding"

    def test_context_capability_is_true(self, component_name: str) -> None:
        """``embeds_contexts`` resolves to a bool; a conditioner that declares a learned row per context changes with ``labels.context``."""
        declared, changed = self._declared_and_changed(component_name, "embeds_contexts", "context")
        if declared:
            assert changed, "declares embeds_contexts but swapping the contexts keeps the embedding"

    def test_dose_capability_is_true(self, component_name: str) -> None:
        """``reads_dose`` resolves to a bool, True exactly when the embedding changes with ``labels.dose`` (the pre-flight warns
        about a model trained on doses whose conditioners all declare False)."""
        c = make(self.kind, component_name)
        declared = c.capabilities.reads_dose
        assert isinstance(declared, bool), "a built conditioner resolves reads_dose to a bool"
        labels = tiny_labels(4)
        changed = not torch.allclose(c(labels), c(dataclasses.replace(labels, dose=labels.dose * 3.0)))
        assert declared == changed, f"declares reads_dose={declared} but tripling the doses {'changes' if changed else 'keeps'} the embedding"

    def test_differentiable(self, component_name: str) -> None:
        c = make(self.kind, component_name)
        c(tiny_labels(4)).pow(2).sum().backward()
        grads = [p.grad for p in c.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads)


def _condition(batch: Any, backbone: Any) -> Condition:
    """An embedding, control cells, labels, and a ``[B, POP_DIM]`` population embedding when the backbone requires one."""
    torch.manual_seed(0)
    b = batch.target.shape[0]
    needs_population = "population" in getattr(backbone, "requires", ())
    return Condition(
        gene_ids=batch.gene_ids,
        embedding=torch.randn(b, COND_DIM),
        control=batch.control,
        control_mask=batch.control_mask,
        population=torch.randn(b, POP_DIM) if needs_population else None,
        labels=batch.labels,
    )


def _close_to(x: torch.Tensor, y: torch.Tensor, atol: float, what: str) -> None:
    err = float((x - y).abs().max())
    assert err <= atol, f"{what}: max error {err:.3g} > {atol}"


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
        if not net.capabilities.permutation_equivariant:
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
        if not net.capabilities.gene_subsampling:
            pytest.skip("backbone does not declare gene subsampling")
        batch = tiny_batch().select_genes(torch.tensor([0, 3, 5, 7]))
        out = net(batch.target, torch.rand(3, batch.target.shape[1]), _condition(batch, net))
        assert out.shape == batch.target.shape

    def test_independent_sets_when_declared(self, component_name: str) -> None:
        """Sets declared independent: two batches stacked along sets give each batch's own outputs."""
        net = make(self.kind, component_name).eval()
        if not net.capabilities.independent_sets:
            pytest.skip("backbone does not declare independent sets")
        from distgen.models.generator import stack_conditions

        batch = tiny_batch()
        other = tiny_batch(seed=5)
        t1 = torch.rand(3, 1).expand(3, batch.target.shape[1])
        t2 = torch.rand(3, 1).expand(3, batch.target.shape[1])
        c1, c2 = _condition(batch, net), _condition(other, net)
        c1.labels = c2.labels = None
        assert c2.embedding is not None
        c2.embedding = c2.embedding + 1.0
        with torch.no_grad():
            both = net(torch.cat([batch.target, other.target]), torch.cat([t1, t2]), stack_conditions(c1, c2))
            torch.testing.assert_close(both[:3], net(batch.target, t1, c1), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(both[3:], net(other.target, t2, c2), atol=1e-5, rtol=1e-5)

    def test_input_copies_when_declared(self, component_name: str) -> None:
        """``copies=2`` under two stacked conditions equals the input repeated twice (guidance's shared input)."""
        net = make(self.kind, component_name).eval()
        if not net.capabilities.input_copies:
            pytest.skip("backbone does not declare input copies")
        from distgen.models.generator import stack_conditions

        batch = tiny_batch()
        t = torch.rand(3, 1).expand(3, batch.target.shape[1])
        c1, c2 = _condition(batch, net), _condition(batch, net)
        c1.labels = c2.labels = None
        assert c2.embedding is not None
        c2.embedding = c2.embedding + 1.0
        pair = stack_conditions(c1, c2)
        kw = {"x_self_cond": batch.target.flip(1)} if net.capabilities.self_conditioning else {}
        kw2 = {k: torch.cat([v, v]) for k, v in kw.items()}
        with torch.no_grad():
            want = net(torch.cat([batch.target, batch.target]), torch.cat([t, t]), pair, **kw2)
            torch.testing.assert_close(net(batch.target, t, pair, copies=2, **kw), want, atol=1e-5, rtol=1e-5)

    def test_embeds_perturbations_as_declared(self, component_name: str) -> None:
        """A backbone that tokenises perturbations says which atoms it embeds, and its unseen capability is true."""
        net = make(self.kind, component_name, seen_perturbations=("G0",))
        caps = net.capabilities
        if not caps.embeds_perturbations:
            pytest.skip("backbone does not declare embeds_perturbations")
        assert callable(getattr(net, "can_embed", None)), "declares embeds_perturbations but has no can_embed(atoms)"
        unseen = [a for a in tiny_info().perturbations if a != "G0"]
        out = net.can_embed(["G0", *unseen, "NOT_A_GENE_XYZ"])
        assert len(out) == len(unseen) + 2 and all(isinstance(v, bool) for v in out), f"can_embed returned {out!r}"
        assert out[0] is True and out[-1] is False, f"a seen atom is embeddable and an unknown name is not: {out!r}"
        declared = caps.supports_unseen_perturbations
        assert declared == any(out[1:-1]), f"declares supports_unseen_perturbations={declared} but can_embed({unseen}) = {out[1:-1]}"

    def test_self_conditioning_as_declared(self, component_name: str) -> None:
        """A self-conditioning backbone takes ``x_self_cond`` and its output depends on it; the others do not take it."""
        net = make(self.kind, component_name).eval()
        batch = tiny_batch()
        t, cond = torch.rand(3, batch.target.shape[1]), _condition(batch, net)
        if not net.capabilities.self_conditioning:  # it takes no estimate, or ignores one
            try:
                ignored = net(batch.target, t, cond, x_self_cond=batch.control)
            except TypeError:
                return
            torch.testing.assert_close(ignored, net(batch.target, t, cond))
            return
        plain = net(batch.target, t, cond)
        fed = net(batch.target, t, cond, x_self_cond=batch.control)
        assert fed.shape == plain.shape and not torch.allclose(fed, plain), "the previous estimate must reach the output"


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
    """Metrics on ``tiny_eval``: 3 perturbations with clear, distinct effects, so every metric is defined."""

    kind = "metrics"

    @staticmethod
    def _data(metric: Any, perfect: bool = False) -> Any:
        """The metric's example data (``example_data``, a ``distgen.testing.fixtures`` function; ``tiny_eval`` by default)."""
        from distgen.testing import fixtures

        return getattr(fixtures, getattr(metric, "example_data", "tiny_eval"))(perfect)

    def _ev(self, metric: Any, perfect: bool = False) -> Any:
        """The first perturbation of the example data as a ``PerturbationEval`` (the one-perturbation call)."""
        from distgen.evaluation.metrics.base import PerturbationEval

        data = self._data(metric, perfect)
        return PerturbationEval(pred=data.pred.cells(0), real=data.real.cells(0), control_real=data.real.control,
                                control_pred=data.pred.control, name=data.perts[0], targets=data.targets[0], genes=data.genes)

    def test_returns_finite_float(self, component_name: str) -> None:
        """A Python float, finite wherever the metric is defined (NaN does not pass; a statistic that needs
        more perturbations than the example has must be NaN with a reason)."""
        m = make(self.kind, component_name)
        data = self._data(m)
        res = m.compute(data)
        if data.n_perts >= m.capabilities.min_perturbations:
            assert bool(torch.isfinite(res.values).all()), f"{component_name}: non-finite values {res.values.tolist()} on well-defined data"
        else:
            nan = torch.isnan(res.values).nonzero().flatten().tolist()
            assert len(nan) == data.n_perts and all(res.reasons.get(i) for i in nan), (
                f"{component_name} needs {counted(m.capabilities.min_perturbations, 'perturbation')}: NaN with a reason expected, got {res.values.tolist()}")
        v = m(self._ev(m))
        assert isinstance(v, float)
        if m.capabilities.min_perturbations <= 1:
            assert math.isfinite(v), f"{component_name}: the one-perturbation call returned {v}"
        else:  # a statistic across perturbations has no value for one; it must say so
            assert math.isnan(v) and m.compute(self._ev(m).to_data()).reasons, "a NaN needs a reason"

    def test_compute_over_perturbations(self, component_name: str) -> None:
        """``compute(EvalData)`` gives ``[P]`` float64 values and a reason for every NaN."""
        res = make(self.kind, component_name).compute(_random_eval(seed=1))
        assert res.values.shape == (3,) and res.values.dtype == torch.float64
        for i in torch.isnan(res.values).nonzero().flatten().tolist():
            assert res.reasons.get(i), f"{component_name}: NaN for perturbation {i} without a reason"

    def test_values_within_bounds(self, component_name: str) -> None:
        """Every defined value lies within the declared ``capabilities.bounds`` (intervals are cut there, so a bound the
        metric can cross would cut real values off): on the example data, a perfect copy of it and random cells.
        Rounding may step past a bound by 1e-9 of its size (a sum of float64 precisions of 1.0000000000000002)."""
        m = make(self.kind, component_name)
        lo, hi = m.capabilities.bounds
        assert lo <= hi, f"{component_name}: bounds {m.capabilities.bounds} have low > high"
        random = _random_eval(seed=2)
        for what, data in (("example", self._data(m)), ("perfect", self._data(m, perfect=True)), ("random", random)):
            values = m.compute(data).values
            v = values[torch.isfinite(values)]
            tol_lo, tol_hi = (1e-9 * max(1.0, abs(b)) if math.isfinite(b) else 0.0 for b in (lo, hi))
            outside = v[(v < lo - tol_lo) | (v > hi + tol_hi)].tolist()
            assert not outside, (f"{component_name} declares bounds {m.capabilities.bounds} but gives {outside} on the "
                                 f"{what} data: declare only the range its definition guarantees")

    def test_perfect_prediction_is_better(self, component_name: str) -> None:
        """A copy of the real cells scores strictly better than a prediction with the wrong effects.

        The wrong prediction gives each perturbation the next one's effect, which every metric on
        ``tiny_eval`` separates (no metric is skipped: a NaN fails), so this catches a reversed
        ``higher_is_better`` as well as a metric that cannot tell right from wrong.
        """
        m = make(self.kind, component_name)
        data = self._data(m)
        if m.capabilities.diagnostic or data.n_perts < m.capabilities.min_perturbations:
            pytest.skip(f"{component_name} does not rank predictions on this data (diagnostic, or needs more perturbations)")
        perfect, wrong = m.compute(self._data(m, perfect=True)).values, m.compute(data).values
        assert bool(torch.isfinite(perfect).all() and torch.isfinite(wrong).all()), f"undefined: {perfect}, {wrong}"
        p, w = float(perfect.mean()), float(wrong.mean())
        assert (p > w) if m.higher_is_better else (p < w), f"{component_name}: perfect {p} vs wrong {w}"


class ModelContract(_Contract):
    kind = "models"

    def _model(self, name: str, **kw: Any) -> Any:
        return make(self.kind, name, **kw)

    def test_fit_predict_contract(self, component_name: str) -> None:
        """Fit on ``tiny_table`` (atoms G0, G1, G2; never G3), predict, and tell the truth about unseen atoms.

        ``supports_unseen_perturbations`` must agree with ``can_predict(["G3"])`` once trained.
        """
        model = self._model(component_name, seen_perturbations=("G0", "G1", "G2"))
        table = tiny_table()
        fit_kwargs = getattr(type(model), "example_fit_kwargs", {})
        from distgen.train import fit

        fit(model, table, **fit_kwargs)
        batch = tiny_batch()
        out = model.predict(batch.control, batch.control_mask, batch.labels)
        assert out.shape == batch.control.shape
        assert torch.isfinite(torch.as_tensor(out)).all()
        declared = model.capabilities.supports_unseen_perturbations
        assert isinstance(declared, bool), "a built model resolves supports_unseen_perturbations to a bool"
        can = model.can_predict(["G3"])
        assert declared == can[0], f"declares supports_unseen_perturbations={declared} but can_predict(['G3']) = {can}"

    def test_can_predict_lists_bools(self, component_name: str) -> None:
        model = self._model(component_name)
        out = model.can_predict(list(tiny_info().perturbations))
        assert len(out) == 4 and all(isinstance(v, bool) for v in out)


class PathContract(_Contract):
    """A probability path reaches the source at ``t = 0`` and the data at ``t = 1``; ``u_t = d x_t / dt``."""

    kind = "paths"

    def test_ends_and_velocity(self, component_name: str) -> None:
        path = make(self.kind, component_name)
        g = torch.Generator().manual_seed(0)
        x0, x1 = torch.randn(2, 5, 4, dtype=torch.float64, generator=g), torch.randn(2, 5, 4, dtype=torch.float64, generator=g)
        ones = torch.ones(2, 5, dtype=torch.float64)
        a0, s0, _, _ = path.schedule(0 * ones)
        _close_to(path.sample(x0, x1, 0 * ones)[0], s0[..., None] * x0, 1e-9, "x_0 is the (scaled) source")
        _close_to(a0, 0 * ones, 1e-9, "alpha(0)")
        _close_to(path.sample(x0, x1, ones)[0], x1 + path.schedule(ones)[1][..., None] * x0, 1e-9, "x_1 is the data")
        _close_to(path.schedule(ones)[0], ones, 1e-9, "alpha(1)")
        t = torch.rand(2, 5, dtype=torch.float64, generator=g) * 0.9 + 0.05
        h = 1e-6
        u = path.sample(x0, x1, t)[1]
        fd = (path.sample(x0, x1, t + h)[0] - path.sample(x0, x1, t - h)[0]) / (2 * h)
        _close_to(u, fd, 1e-6, "u_t vs finite difference of x_t")

    def test_prediction_conversions_round_trip(self, component_name: str) -> None:
        path = make(self.kind, component_name)
        g = torch.Generator().manual_seed(1)
        x0, x1 = torch.randn(3, 4, dtype=torch.float64, generator=g), torch.randn(3, 4, dtype=torch.float64, generator=g)
        t = torch.tensor([0.1, 0.5, 0.8], dtype=torch.float64)
        x_t, u = path.sample(x0, x1, t)
        _close_to(path.velocity_to_x1(x_t, u, t), x1, 1e-9, "velocity -> x1")
        _close_to(path.x1_to_velocity(x_t, x1, t), u, 1e-9, "x1 -> velocity")


class TimeSamplerContract(_Contract):
    kind = "time_samplers"

    def test_in_unit_interval_and_seeded(self, component_name: str) -> None:
        ts = make(self.kind, component_name)
        torch.manual_seed(3)
        a = ts.sample((64, 8), "cpu", torch.float64)
        torch.manual_seed(3)
        b = ts.sample((64, 8), "cpu", torch.float64)
        assert a.shape == (64, 8) and a.dtype == torch.float64 and bool(((a >= 0) & (a <= 1)).all())
        torch.testing.assert_close(a, b)
        assert float(a.std()) > 0.01, "times must vary"


class ODESolverContract(_Contract):
    """``dx/dt = A x`` from ``t0`` to ``t1`` (both directions) matches ``expm((t1 - t0) A) x0``."""

    kind = "ode_solvers"

    def test_linear_ode(self, component_name: str) -> None:
        solver = make(self.kind, component_name)
        g = torch.Generator().manual_seed(0)
        a = torch.tensor([[-1.0, 0.5], [-0.5, -0.2]], dtype=torch.float64)
        x0 = torch.randn(3, 2, dtype=torch.float64, generator=g)
        for t0, t1 in ((0.0, 1.0), (0.9, 0.2)):
            res = solver.solve(lambda t, x: x @ a.T, x0, t0, t1)
            exact = x0 @ torch.linalg.matrix_exp((t1 - t0) * a).T
            assert res.nfe > 0
            _close_to(res.x1, exact, 5e-2, f"{component_name} from t={t0} to t={t1}")

    def test_converges(self, component_name: str) -> None:
        """Four times the steps (or tolerances 10^4 tighter) at least halve the error."""
        cls = registry(self.kind).get(component_name)
        a = torch.tensor([[-1.0, 2.0], [-2.0, -1.0]], dtype=torch.float64)
        x0 = torch.ones(1, 2, dtype=torch.float64)
        exact = x0 @ torch.linalg.matrix_exp(a).T
        coarse, fine = (
            (cls(steps=4), cls(steps=16))
            if not cls.capabilities.adaptive
            else (cls(rtol=1e-2, atol=1e-2), cls(rtol=1e-6, atol=1e-6, max_nfe=100_000))
        )
        errs = [float((s.solve(lambda t, x: x @ a.T, x0).x1 - exact).abs().max()) for s in (coarse, fine)]
        assert errs[1] < errs[0] / 2, f"errors coarse {errs[0]:.3g}, fine {errs[1]:.3g}"

    def test_evaluates_only_inside_the_interval(self, component_name: str) -> None:
        """``solve`` calls ``f`` only at times in ``[t0, t1]``; ``solve_short`` never at ``t1`` itself."""
        solver = make(self.kind, component_name)
        a = torch.tensor([[-1.0, 0.5], [-0.5, -0.2]], dtype=torch.float64)
        x0 = torch.ones(2, 2, dtype=torch.float64)
        seen: list[float] = []

        def f(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            seen.append(float(t))
            return x @ a.T

        for t0, t1 in ((0.0, 1.0), (0.9, 0.2)):
            seen.clear()
            solver.solve(f, x0, t0, t1)
            lo, hi = min(t0, t1), max(t0, t1)
            assert min(seen) >= lo - 1e-12 and max(seen) <= hi + 1e-12, f"{component_name}: f evaluated at {sorted(seen)} outside [{lo}, {hi}]"
            seen.clear()
            res, t_stop = solver.solve_short(f, x0, t0, t1)
            assert abs(t_stop - t0) < abs(t1 - t0) and (t_stop - t0) * (t1 - t0) >= 0, f"t_stop={t_stop} not in [{t0}, {t1})"
            assert all(abs(t - t1) > 1e-6 for t in seen), f"{component_name}: solve_short evaluated f at t1={t1}"
            _close_to(res.x1, x0 @ torch.linalg.matrix_exp((t_stop - t0) * a).T, 5e-2, f"{component_name}: state at t_stop={t_stop}")


class SDESolverContract(_Contract):
    """``dy = -y dt + s dW`` (Ornstein-Uhlenbeck): the mean and variance at ``t = 1`` match the exact ones."""

    kind = "sde_solvers"

    def test_ornstein_uhlenbeck_moments(self, component_name: str) -> None:
        solver = make(self.kind, component_name)
        s, n = 0.5, 4000
        y0 = torch.full((n, 1), 2.0, dtype=torch.float64)
        torch.manual_seed(0)
        y1 = solver.solve(lambda t, y: -y, lambda t, y: torch.full_like(y, s), y0, 0.0, 1.0)
        mean, var = 2.0 * math.exp(-1.0), s**2 * (1 - math.exp(-2.0)) / 2
        assert abs(float(y1.mean()) - mean) < 0.03, f"mean {float(y1.mean()):.4f} vs {mean:.4f}"
        assert abs(float(y1.var()) - var) < 0.2 * var, f"variance {float(y1.var()):.4f} vs {var:.4f}"

    def test_seeded(self, component_name: str) -> None:
        solver = make(self.kind, component_name)
        outs = []
        for _ in range(2):
            torch.manual_seed(4)
            outs.append(solver.solve(lambda t, y: -y, lambda t, y: torch.ones_like(y), torch.zeros(3, 2), 0.0, 1.0))
        torch.testing.assert_close(outs[0], outs[1])


class NoiseScheduleContract(_Contract):
    """``abar`` falls strictly in ``(0, 1]``; the continuous clock agrees with the discrete chain at its knots."""

    kind = "noise_schedules"

    def test_abar_decreasing_in_unit_interval(self, component_name: str) -> None:
        sch = make(self.kind, component_name)
        ab = sch.abar(torch.arange(-1, sch.T))
        assert float(ab[0]) == 1.0 and bool((ab > 0).all()) and bool((ab[1:] < ab[:-1]).all())
        tau = torch.linspace(0, 1, 257, dtype=torch.float64)
        cont = sch.abar_tau(tau)
        assert bool((cont > 0).all() and (cont <= 1).all() and (cont[1:] <= cont[:-1]).all())
        assert bool((sch.beta_tau(tau) > 0).all())

    def test_continuous_matches_discrete(self, component_name: str) -> None:
        sch = make(self.kind, component_name)
        n = torch.arange(sch.T)
        tau = (n.to(torch.float64) + 1.0) / sch.T
        _close_to(sch.abar_tau(tau), sch.abar(n), 1e-12, "abar(tau_n) vs abar_n")
        _close_to(sch.step_to_t(n), 1 - tau, 1e-12, "t of step n")


class DiffusionSamplerContract(_Contract):
    """With a perfect denoiser (it always answers the data) every sampler returns the data."""

    kind = "diffusion_samplers"

    @staticmethod
    def _perfect(data: torch.Tensor) -> Any:
        def denoise(x: torch.Tensor, abar: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
            ab = torch.as_tensor(abar, dtype=x.dtype)
            assert 0.0 <= t <= 1.0, f"distgen time out of [0, 1]: {t}"
            return data, (x - ab.sqrt() * data) / (1 - ab).sqrt()

        return denoise

    def test_perfect_denoiser_returns_the_data(self, component_name: str) -> None:
        sampler = make(self.kind, component_name)
        sch = make("noise_schedules", "linear", timesteps=100)
        sampler.check(sch)
        g = torch.Generator().manual_seed(0)
        data = torch.rand(2, 3, 4, dtype=torch.float64, generator=g)
        torch.manual_seed(1)
        out = sampler.sample(self._perfect(data), torch.randn(2, 3, 4, dtype=torch.float64, generator=g), sch)
        _close_to(out, data, 1e-6, component_name)

    def test_deterministic_unless_declared_stochastic(self, component_name: str) -> None:
        sampler = make(self.kind, component_name)
        sch = make("noise_schedules", "linear", timesteps=100)
        x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))

        def shrink(x: torch.Tensor, abar: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
            ab = torch.as_tensor(abar, dtype=x.dtype)
            x0 = 0.5 * x
            return x0, (x - ab.sqrt() * x0) / (1 - ab).clamp_min(1e-12).sqrt()

        outs = []
        for seed in (1, 1, 2):
            torch.manual_seed(seed)
            outs.append(sampler.sample(shrink, x.clone(), sch))
        assert all(bool(torch.isfinite(o).all()) for o in outs)
        torch.testing.assert_close(outs[0], outs[1])  # seeded: reproducible
        stochastic = bool(sampler.capabilities.stochastic)
        assert stochastic != torch.allclose(outs[0], outs[2]), f"capabilities.stochastic={stochastic} is not what it does"

    def test_rejects_a_schedule_it_cannot_walk(self, component_name: str) -> None:
        sampler = make(self.kind, component_name)
        short = make("noise_schedules", "cosine", timesteps=1)
        try:
            sampler.check(short)
        except ValueError as exc:
            assert str(exc)
        else:  # a sampler that accepts T = 1 must still sample it
            data = torch.ones(1, 2, 3, dtype=torch.float64)
            torch.testing.assert_close(sampler.sample(self._perfect(data), torch.randn(1, 2, 3, dtype=torch.float64), short), data)


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
    PathContract,
    TimeSamplerContract,
    ODESolverContract,
    SDESolverContract,
    NoiseScheduleContract,
    DiffusionSamplerContract,
    CouplingContract,
    MetricContract,
    ModelContract,
    MatcherContract,
)


def _random_eval(seed: int) -> Any:
    """An ``EvalData`` of 3 perturbations (two singles and their pair) x 8 random cells a side, 10 controls a side."""
    from distgen.evaluation.evaldata import EvalData, Population

    g = torch.Generator().manual_seed(seed)
    p, n = 3, 8

    def pop() -> Population:
        return Population(X=torch.rand(p * n, N_GENES, generator=g) * 2, offsets=torch.arange(p + 1) * n,
                          control=torch.rand(10, N_GENES, generator=g) * 2)

    return EvalData(real=pop(), pred=pop(), perts=("G0", "G1", "G0+G1"), targets=(("G0",), ("G1",), ("G0", "G1")),
                    genes=tiny_info().genes)
