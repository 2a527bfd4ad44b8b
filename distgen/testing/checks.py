"""Cheap behavioural checks of one component on tiny data: shapes, finiteness, basic contracts.

The contract suites (``distgen.testing.contracts``) assert that these find nothing for every
registered name, and the registry runs them the first time a plugin's component is built
(``Registry.verify``), so a plugin that returns the wrong shape or NaN is named in the error before
it can spoil a run. They build a separate tiny instance (``make``) under a forked random state,
so checking never changes a seeded run. This module does not import pytest.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from distgen.capabilities import resolve
from distgen.config import build_component
from distgen.errors import DistgenRuntimeWarning, warn
from distgen.registry import registry
from distgen.testing.fixtures import N_GENES, tiny_batch, tiny_info, tiny_labels
from distgen.wording import counted

COND_DIM = 8
#: Width of the population embedding given to a backbone that declares ``population`` in ``requires``.
POP_DIM = 6


def injected() -> dict[str, Any]:
    """Data-dependent parameters of the tiny fixtures (what assembly would inject)."""
    info = tiny_info()
    return {"info": info, "n_genes": info.n_genes, "cond_dim": COND_DIM, "population_dim": 0, "seen_perturbations": None}


def example_node(kind: str, name: str) -> dict[str, Any]:
    """``{name, **example_params}`` for a registered component."""
    cls = registry(kind).get(name)
    return {"name": name, **copy.deepcopy(getattr(cls, "example_params", {}))}


def make(kind: str, name: str, seed: int = 0, **extra: Any) -> Any:
    """Build a component for checks and contract tests (seeded, with injected tiny-data sizes).

    A backbone that declares ``population`` in ``requires`` is built with ``population_dim=POP_DIM``
    (as assembly injects its population encoder's width).
    """
    torch.manual_seed(seed)
    if kind == "models":
        from distgen.models.generator import build_model

        return build_model(example_node(kind, name), tiny_info(), **extra)
    obj = build_component(kind, example_node(kind, name), **{**injected(), **extra})
    if kind == "backbones" and "population" in getattr(obj, "requires", ()) and "population_dim" not in extra:
        torch.manual_seed(seed)
        obj = build_component(kind, example_node(kind, name), **{**injected(), "population_dim": POP_DIM, **extra})
    return obj


def tiny_condition(batch: Any, cond_dim: int = COND_DIM, requires: Any = None) -> Any:
    """A ``Condition`` for ``batch`` with a random ``[B, cond_dim]`` embedding (seeded).

    Given a backbone's ``requires``, the condition holds what assembly guarantees it: control cells and
    labels always, the embedding only when ``embedding`` is required (assembly refuses a conditioner
    the backbone does not read) and a ``[B, POP_DIM]`` population embedding when ``population`` is.
    Without ``requires``: an embedding and no population.
    """
    from distgen.backbones.base import Condition

    g = torch.Generator().manual_seed(0)
    b = batch.target.shape[0]
    embedding = torch.randn(b, cond_dim, generator=g)
    population = torch.randn(b, POP_DIM, generator=g) if requires is not None and "population" in requires else None
    return Condition(
        gene_ids=batch.gene_ids,
        embedding=embedding if requires is None or "embedding" in requires else None,
        control=batch.control,
        control_mask=batch.control_mask,
        population=population,
        labels=batch.labels,
    )


def _tensor(name: str, x: Any, shape: tuple[int, ...] | None) -> list[str]:
    if not isinstance(x, Tensor):
        return [f"{name} returned {type(x).__name__}, expected a tensor"]
    out = []
    if shape is not None and tuple(x.shape) != shape:
        out.append(f"{name} returned shape {tuple(x.shape)}, expected {shape}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        out.append(f"{name} returned {int((~torch.isfinite(x)).sum())} non-finite value(s) (NaN/inf)")
    return out


def _kernels(k: Any) -> list[str]:
    x, y = torch.randn(2, 5, 4), torch.randn(2, 3, 4)
    return _tensor("gram(x [2, 5, 4], y [2, 3, 4])", k.gram(x, y, ref=y), (2, 5, 3))


def _encoders(enc: Any) -> list[str]:
    b = tiny_batch()
    enc.eval()
    out = _tensor(f"forward(cells {tuple(b.target.shape)}, mask)", enc(b.target, b.target_mask), (3, enc.dim))
    out += _tensor("distance(P, Q)", enc.distance(b.target, b.target_mask, b.control, b.control_mask), (3,))
    if out or getattr(resolve(enc), "fixed_gene_panel", False):
        return out
    k = max(1, b.target.shape[-1] // 2)  # a distribution loss under genes_per_step scores gene subsets
    try:
        d = enc.distance(b.target[..., :k], b.target_mask, b.control[..., :k], b.control_mask)
    except Exception as exc:
        return [f"distance fails on a subset of the genes ({type(exc).__name__}: {exc}) but fixed_gene_panel is not declared: "
                "an encoder that reads its full gene panel declares capabilities = EncoderCapabilities(fixed_gene_panel=True)"]
    return _tensor(f"distance(P, Q) on {k} of the genes", d, (3,))


def _conditioners(c: Any) -> list[str]:
    c.eval()  # (a separate instance) dropout would make two calls differ
    labels = tiny_labels(4)
    emb = c(labels)
    out = _tensor("forward(labels of 4 sets)", emb, (4, c.dim))
    atoms = [*tiny_info().perturbations, "NOT_A_GENE_XYZ"]
    can = c.can_embed(atoms)
    if len(can) != len(atoms) or not all(isinstance(v, bool) for v in can):
        out.append(f"can_embed({counted(len(atoms), 'atom')}) returned {can!r}, expected {counted(len(atoms), 'bool')}")
    if out:
        return out
    declared = getattr(resolve(c), "embeds_batches", None)  # the pre-flight trusts it to refuse untrained batch rows
    changed = not torch.allclose(emb, c(dataclasses.replace(labels, batch=1 - labels.batch)))
    if declared is not changed:
        out.append(f"capabilities.embeds_batches is {declared!r} but swapping the batches {'changes' if changed else 'keeps'} "
                   "the embedding; declare what the conditioner does")
    declared, rows = getattr(resolve(c), "embeds_contexts", None), _context_rows(c, labels)
    if declared is not rows:  # trusted as embeds_batches is; frozen context vectors (a context table) hold no learned row
        out.append(f"capabilities.embeds_contexts is {declared!r} but the conditioner {'has' if rows else 'has no'} learned "
                   "parameters that only one context trains (a learned row per context); declare what the conditioner does (frozen "
                   "context vectors with exact zeros in different places count as such rows: give example_params vectors without "
                   "zeros)")
    return out


def _context_rows(c: Any, labels: Any) -> bool:
    """Whether some trainable entries of ``c`` get a gradient from context 0 only and others from context 1 only
    (a learned row per context; frozen context vectors through a shared layer train the same entries for both).

    An entry counts for a context when it gets a gradient at the initial weights or at any of ``_POINTS`` random
    weights around them: a ReLU unit that one context leaves off at the initial weights is on at others (so it is no
    row of the other context), while a row the context index picks is never reached by another context.
    """
    named = {n: p.detach() for n, p in c.named_parameters() if p.requires_grad}
    if not named:
        return False
    g = torch.Generator().manual_seed(3)
    w = torch.randn(labels.context.shape[0], c.dim, generator=g)
    support = [{n: torch.zeros_like(p, dtype=torch.bool) for n, p in named.items()} for _ in (0, 1)]
    with torch.enable_grad():
        for k in range(_POINTS):
            point = {n: (p if k == 0 else p + torch.randn(p.shape, generator=g).to(p) * (1 + float(p.abs().max())))
                     .clone().requires_grad_() for n, p in named.items()}
            try:
                grads = [_embedding_grads(c, point, dataclasses.replace(labels, context=torch.full_like(labels.context, ctx)), w)
                         for ctx in (0, 1)]
            except Exception:
                if k == 0:
                    raise
                continue  # weights the conditioner refuses (a Cholesky factor of a random matrix): not its own, skipped
            for ctx, found in enumerate(grads):
                for n, grad in found.items():
                    support[ctx][n] |= grad != 0
    return all(any(bool((a[n] & ~b[n]).any()) for n in named) for a, b in ((support[0], support[1]), (support[1], support[0])))


def _embedding_grads(c: Any, point: dict[str, Tensor], labels: Any, w: Tensor) -> dict[str, Tensor]:
    """Gradients of ``(c(labels) * w).sum()`` at the weights ``point``, by name (none when no trainable entry is read)."""
    out = torch.func.functional_call(c, point, (labels,))
    if not out.requires_grad:  # no trainable entry reaches the embedding (e.g. only the unused null row)
        return {}
    grads = torch.autograd.grad((out * w.to(out)).sum(), list(point.values()), allow_unused=True)
    return {n: grad for n, grad in zip(point, grads, strict=True) if grad is not None}


#: weight points (the initial ones and random ones around them) at which ``_context_rows`` reads the gradients
_POINTS = 16


def _backbones(net: Any) -> list[str]:
    b = tiny_batch()
    net.eval()
    t = torch.rand(3, b.target.shape[1], generator=torch.Generator().manual_seed(1))
    requires = frozenset(getattr(net, "requires", ()))
    full = tiny_condition(b, requires=requires | {"embedding"})
    out = _tensor(f"forward(x_t {tuple(b.target.shape)}, t, cond)", net(b.target, t, full), tuple(b.target.shape))
    if out or "embedding" in requires:
        return out
    try:  # what a model without a conditioner gives it: no embedding
        net(b.target, t, tiny_condition(b, requires=requires))
    except Exception as exc:
        out.append(
            f"forward fails on a Condition without an embedding ({type(exc).__name__}: {exc}), but requires = {sorted(requires)} "
            "does not declare 'embedding': declare every Condition field it reads in requires (assembly then gives it one)"
        )
    return out


class _LinearField(torch.nn.Module):
    """A tiny trainable field ``(x_t, t) -> like x_t`` for dynamics checks."""

    def __init__(self, g: int = N_GENES) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(g + 1, g)

    def forward(self, x_t: Tensor, t: Tensor, *, x_self_cond: Any = None, uncond: bool = False) -> Tensor:
        return self.lin(torch.cat([x_t, t[..., None].expand(*x_t.shape[:2], 1)], -1))  # type: ignore[no-any-return]


def _dynamics(dyn: Any) -> list[str]:
    field = _LinearField()
    b = tiny_batch()
    out = dyn.loss(field, b.target, b.target_mask, dyn.draw_source(b.target, b.control), make("couplings", "independent"))
    problems = _tensor("loss(...).loss", out.loss, ())
    x1_hat = out.extras.get("x1_hat")
    problems += _tensor('loss(...).extras["x1_hat"]', x1_hat, tuple(b.target.shape))
    if not problems and not x1_hat.requires_grad:  # a distribution loss on it would be computed, logged and train nothing
        problems.append('loss(...).extras["x1_hat"] carries no gradient to the network (detached?): a distribution loss '
                        "on it would train nothing; return the estimate computed from the field's output")
    with torch.no_grad():
        s = dyn.sample(field.eval(), dyn.draw_source(b.control, b.control), b.control_mask)
    problems += _tensor("sample(...).cells", s.cells, tuple(b.control.shape))
    if not s.nfe > 0:
        problems.append(f"sample(...).nfe is {s.nfe}; count the network evaluations")
    return problems


def _couplings(cp: Any) -> list[str]:
    b = tiny_batch()
    x0 = torch.randn_like(b.target)
    out = cp.pair(x0, b.target, b.target_mask)
    found = _tensor("pair(x0, x1, mask)", out, tuple(b.target.shape))
    if found:
        return found
    for i, m in enumerate(b.target_mask):  # a coupling reorders each set's own real cells; padding stays put
        if not torch.equal(out[i][m].sort(dim=0).values, x0[i][m].sort(dim=0).values):
            return [f"pair(x0, x1, mask) did not return set {i}'s own source cells reordered within each set (a coupling pairs "
                    "each set's targets with a permutation of that set's real source cells, never another set's)"]
        if not torch.equal(out[i][~m], x0[i][~m]):
            return [f"pair(x0, x1, mask) moved the padded positions of set {i} (mask False); leave them in place"]
    return []


def _metrics(m: Any) -> list[str]:
    from distgen.evaluation.metrics.base import result_problem
    from distgen.testing import fixtures

    example = getattr(fixtures, getattr(m, "example_data", "tiny_eval"))
    data = example()
    res = m.compute(data)
    problem = result_problem(res, data.n_perts)
    if problem:
        return [problem]
    caps = resolve(m)
    if data.n_perts < getattr(caps, "min_perturbations", 1):  # undefined here: NaN with reasons
        nan = torch.isnan(res.values).nonzero().flatten().tolist()
        if not all(res.reasons.get(i) for i in nan):
            return [f"compute({counted(data.n_perts, 'perturbation')}, fewer than it needs) must return NaN with a reason for each"]
        return []
    out = _tensor(f"compute({counted(data.n_perts, 'perturbation')} with clear effects).values", res.values, (data.n_perts,))
    if out or getattr(caps, "diagnostic", False):
        return out
    # the orientation is read, never checked, by rankings, normalised scores and verdicts: one the metric's values
    # contradict (a correlation that declares nothing is taken as lower-is-better) reverses every comparison
    res_perfect = m.compute(example(True))
    problem = result_problem(res_perfect, data.n_perts)
    if problem:
        return [f"on a perfect prediction: {problem}"]
    p, w = float(res_perfect.values.mean()), float(res.values.mean())
    higher = bool(getattr(caps, "higher_is_better", False))
    if p == p and w == w and ((p < w) if higher else (p > w)):
        declared = "declares higher_is_better=True" if higher else (
            "is taken as lower-is-better (higher_is_better=False" + (", the default: it declares no capabilities)"
                                                                     if "capabilities" not in _own_attrs(m) else ")"))
        out.append(f"a perfect prediction scores {p:.4g} and a wrong one {w:.4g}, but the metric {declared}: declare "
                   f"capabilities = MetricCapabilities(higher_is_better={not higher}) (diagnostic=True if it does not rank predictions)")
    return out


def _own_attrs(obj: Any) -> set[str]:
    """Attributes set by ``obj``'s class or a base class outside distgen's interfaces (what a component declared itself)."""
    names: set[str] = set(vars(obj)) if hasattr(obj, "__dict__") else set()
    for klass in type(obj).__mro__:
        if not klass.__module__.startswith("distgen.") or not klass.__module__.endswith(".base"):
            names |= set(vars(klass))
    return names


def _models(model: Any) -> list[str]:
    atoms = list(tiny_info().perturbations)
    can = model.can_predict(atoms)
    if len(can) != len(atoms) or not all(isinstance(v, bool) for v in can):
        return [f"can_predict({counted(len(atoms), 'atom')}) returned {can!r}, expected {counted(len(atoms), 'bool')}"]
    return []


def _matchers(m: Any) -> list[str]:
    ctx, bat = torch.tensor([0, 0, 1, 1, 1, 0]), torch.tensor([0, 1, 0, 1, 0, 1])
    g = torch.Generator().manual_seed(1)
    idx = m.match(1, 0, ctx, bat, 10, torch.Generator().manual_seed(0), torch.rand(10, 5, generator=g), torch.rand(6, 5, generator=g))
    out = _tensor("match(... n=10 ...)", idx, (10,))
    if isinstance(idx, Tensor) and not out and (idx.dtype != torch.long or bool(((idx < 0) | (idx >= 6)).any())):
        out.append("match returned indices outside the control pool [0, 6) or not long")
    return out


def _paths(path: Any) -> list[str]:
    x0, x1, t = torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.rand(2, 3)
    x_t, u = path.sample(x0, x1, t)
    return _tensor("sample(x0, x1, t) x_t", x_t, (2, 3, 4)) + _tensor("sample(x0, x1, t) u_t", u, (2, 3, 4))


def _time_samplers(ts: Any) -> list[str]:
    t = ts.sample((4, 5), "cpu", torch.float32)
    out = _tensor("sample((4, 5))", t, (4, 5))
    if not out and not bool(((t >= 0) & (t <= 1)).all()):
        out.append("sample returned times outside [0, 1]")
    return out


def _ode_solvers(solver: Any) -> list[str]:
    res = solver.solve(lambda t, x: -x, torch.ones(2, 3), 0.0, 1.0)
    return _tensor("solve(dx/dt = -x, x0 [2, 3]).x1", res.x1, (2, 3))


def _sde_solvers(solver: Any) -> list[str]:
    y = solver.solve(lambda t, y: -y, lambda t, y: torch.full_like(y, 0.1), torch.ones(2, 3), 0.0, 1.0)
    return _tensor("solve(dy = -y dt + 0.1 dW, y0 [2, 3])", y, (2, 3))


def _noise_schedules(sch: Any) -> list[str]:
    ab = sch.abar(torch.arange(-1, sch.T))
    out = _tensor("abar(-1 .. T-1)", ab, (sch.T + 1,))
    if not out and not (bool((ab > 0).all()) and bool((ab[1:] < ab[:-1]).all()) and float(ab[0]) == 1.0):
        out.append("abar_n must fall strictly from abar_{-1} = 1 and stay > 0")
    return out


def _diffusion_samplers(sampler: Any) -> list[str]:
    sch = make("noise_schedules", "linear", timesteps=50)
    data = torch.rand(2, 3, 4)

    def perfect(x: Tensor, abar: Tensor, t: float) -> tuple[Tensor, Tensor]:
        ab = torch.as_tensor(abar, dtype=x.dtype)
        return data, (x - ab.sqrt() * data) / (1 - ab).clamp_min(1e-12).sqrt()

    try:
        sampler.check(sch)
    except ValueError:
        return []  # example parameters made for another schedule: nothing cheap to say
    return _tensor("sample(perfect denoiser, noise [2, 3, 4])", sampler.sample(perfect, torch.randn(2, 3, 4), sch), (2, 3, 4))


CHECKS: dict[str, Callable[[Any], list[str]]] = {
    "kernels": _kernels,
    "encoders": _encoders,
    "conditioners": _conditioners,
    "backbones": _backbones,
    "dynamics": _dynamics,
    "paths": _paths,
    "time_samplers": _time_samplers,
    "ode_solvers": _ode_solvers,
    "sde_solvers": _sde_solvers,
    "noise_schedules": _noise_schedules,
    "diffusion_samplers": _diffusion_samplers,
    "couplings": _couplings,
    "metrics": _metrics,
    "models": _models,
    "matchers": _matchers,
}


def problems(kind: str, obj: Any) -> list[str]:
    """What the cheap checks find wrong with ``obj`` (a ``kind`` component built by ``make``); empty if nothing."""
    check = CHECKS.get(kind)
    if check is None:
        return []
    try:
        with torch.no_grad() if kind not in ("dynamics",) else torch.enable_grad():
            return check(obj)
    except Exception as exc:  # a crash on tiny, well-formed inputs is a finding too
        return [f"raised {type(exc).__name__}: {exc}"]


def check_component(kind: str, name: str) -> list[str]:
    """Build ``name`` on tiny data and run the cheap checks, without touching the caller's random state.

    Inference mode is switched off for the check (a first build under ``torch.inference_mode`` would leave the gradient
    checks nothing to read and refuse a good component)."""
    with torch.random.fork_rng(devices=[]), torch.inference_mode(False):
        try:
            obj = make(kind, name)
        except Exception as exc:  # cannot be built on tiny data (e.g. it needs a file): nothing cheap to check
            warn(
                f"distgen could not run its cheap checks on {kind} component {name!r}: building it on the tiny test data "
                f"with its example_params failed ({type(exc).__name__}: {exc}); set example_params on the class",
                DistgenRuntimeWarning,
            )
            return []
        return problems(kind, obj)


__all__ = ["CHECKS", "COND_DIM", "POP_DIM", "check_component", "example_node", "injected", "make", "problems", "tiny_condition"]
