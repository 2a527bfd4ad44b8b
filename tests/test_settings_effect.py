"""Every parameter of every built-in component changes something observable (ablation-settings round, 2026-12-07).

An ablation is a one-line change of a config; a parameter that is accepted and read by nothing gives two identical runs
and a table that says the setting does not matter. For each parameter of each registered built-in component (found in
the registries: a new component or parameter is covered without an edit here) this builds the component on the tiny
fixtures with its ``example_params`` and once more with one other value of that parameter (same seed), and asserts that
something a user could see differs: the output of the component on fixed inputs (a kernel's Gram matrix, an encoder's
embedding and distance, a conditioner's embedding, a backbone's output, a dynamics' loss and sampled cells, a solver's
solution, a metric's values, a fitted model's predictions) or the shapes and values of its parameters.

A pass is one of: (a) a measured change of those outputs or parameters (the warnings' texts are not counted: another
warning is not another result); (b) an ``InertSettingWarning`` that names this component and this parameter (a warning
about some other setting, or one that names the parameter but not whose it is, does not count: round 2, 2026-12-07);
(c) a refusal, a ``ConfigError`` whose text names the parameter (the component's name alone is in every refusal built
here); (d) an entry of ``NO_EFFECT_HERE``, a parameter that legitimately changes nothing on these inputs, with the
reason (an implementation choice with the same numbers, a size that only the fixtures' sizes hide...), checked to still
change nothing and not to be warned about. Plugins are left to their own tests (``distgen.testing``).
"""

from __future__ import annotations

import copy
import enum
import re
import typing
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from distgen.config import INJECTED, ConfigError, InertSettingWarning, _component_kind, signature_schema
from distgen.registry import KINDS, registry
from distgen.testing.checks import example_node, injected, tiny_condition
from distgen.testing.fixtures import tiny_batch, tiny_info, tiny_labels, tiny_table

#: Kinds whose components are built on the tiny fixtures here (models: the fitted baselines and the generator). Metrics
#: are probed in tests/evaluation/test_metric_settings_effect.py: their options (``preset``, ``control_source``,
#: ``exclude``, ``fdr``, ``k``) need evaluation data shaped for them (DE calls near the threshold, one-condition tables).
KINDS_PROBED = tuple(k for k in KINDS if k != "metrics")

#: (kind, name, parameter) -> the other value tried, where the generic choice (a flipped bool, another Literal value,
#: twice a number, another registered name) does not apply (a ``None`` default) or hides the effect on the fixtures.
OTHER_VALUE: dict[tuple[str, str, str], Any] = {
    ("kernels", "imq", "c2"): [2.0],
    ("kernels", "rbf", "bandwidths"): [0.7],
    ("encoders", "kme", "unbiased"): False,
    ("encoders", "kme", "features"): 16,
    ("encoders", "kme", "feature_map"): "nystroem",
    ("encoders", "kme", "seed"): 1,
    ("conditioners", "covariate", "dim"): 6,
    ("conditioners", "covariate", "onehot_std"): 0.3,  # (0.5 is the default's part_dim ** -0.5 on the example)
    ("backbones", "cross_dit", "time_scale"): 10.0,
    ("backbones", "cross_dit", "time_input"): "scaled",
    ("dynamics", "diffusion", "clip_denoised"): 0.5,
    ("dynamics", "flow_matching", "clamp_min"): 0.0,
    ("models", "generator", "genes_per_step"): 6,
    ("models", "generator", "predict_genes"): 6,
    ("metrics", "overlap_at_N", "k"): 3,
    ("metrics", "precision_at_N", "k"): 3,
    ("models", "linear", "n_components"): 2,
    ("conditioners", "covariate", "perturbation"): "table",  # (refused without perturbation_table: the refusal names it)
    ("conditioners", "covariate", "perturbation_table"): {"G0": [1.0, 0.0], "G1": [0.0, 1.0], "G2": [0.5, 0.5], "G3": [1.0, 1.0]},
    ("conditioners", "covariate", "context_table"): {"ctxA": [1.0, 0.0], "ctxB": [0.0, 1.0]},
    ("conditioners", "embedding_table", "table"): {"G0": [0.0, 1.0, 0.5], "G1": [1.0, 0.0, -0.5], "G2": [0.3, 0.3, 0.0],
                                                   "G3": [-1.0, 0.2, 0.1]},
    ("conditioners", "embedding_table", "dose"): "log",
    ("conditioners", "gene_vocab", "dose"): "log",
    ("conditioners", "onehot", "dose"): "log",
    **{("conditioners", c, "pool"): "mean" for c in ("embedding_table", "gene_vocab", "onehot")},
    ("conditioners", "covariate", "key_column"): "gene",
    # other components, kept CPU-small (their defaults are sized for a GPU)
    ("diffusion_samplers", "sde", "solver"): {"name": "srk", "steps": 4},
    ("diffusion_samplers", "ode", "solver"): {"name": "euler", "steps": 4},
    ("models", "generator", "backbone"): {"name": "mlp", "hidden": 16, "depth": 2},
    ("models", "generator", "dynamics"): {"name": "diffusion", "schedule": {"name": "linear", "timesteps": 50},
                                          "sampler": {"name": "ddim", "steps": 3}},
    ("conditioners", "embedding_table", "key_column"): "gene",  # (more than the fixtures' 12 genes is cut to them)
}
for _m in ("edistance", "edistance_scperturb", "edistance_sq", "mmd", "pearson_edistance", "sinkhorn", "w2"):
    OTHER_VALUE["metrics", _m, "max_cells"] = 5  # (the fixtures hold 30 cells a perturbation)

#: (kind, name, parameter) -> why its other value changes nothing observable on the tiny fixtures (not a finding).
NO_EFFECT_HERE: dict[tuple[str, str, str], str] = {
    # implementation choices: the same numbers, another memory or time
    ("backbones", "pad_transformer", "checkpointing"): "activation checkpointing: memory against time, same numbers",
    # limits and tolerances reached only by a problem harder than the fixtures' (the default already converges there)
    **{("ode_solvers", s, "max_nfe"): "a budget of evaluations the fixtures' ODE never reaches" for s in ("adaptive_heun", "bosh3", "dopri5")},
    ("couplings", "exact_ot", "num_itermax"): "the network simplex solves a 6 x 6 plan long before either limit",
    ("couplings", "sinkhorn", "num_itermax"): "Sinkhorn on a 6 x 6 plan stops at stop_threshold before either limit",
    ("couplings", "sinkhorn", "stop_threshold"): "a 6 x 6 plan converges to the same float32 pairs at 1e-9 or 2e-9",
    # read only with inputs the fixtures do not hold
    ("conditioners", "embedding_table", "case_sensitive"): "the fixtures' atoms are spelt as in the table",
    ("conditioners", "gene_vocab", "case_sensitive"): "the fixtures' atoms are spelt as their genes",
    ("conditioners", "gene_vocab", "share_gene_embedding"): "read when a backbone has gene tokens (pad_transformer); "
                                                            "elsewhere an InertSettingWarning (tests/models/test_inert_settings.py)",
    ("backbones", "pad_transformer", "missing_perturbation_genes"): "the fixtures' atoms are all genes of the panel",
    ("backbones", "pad_transformer", "perturbation_encoding"): "auto is gene on the fixtures' genetic perturbations",
    # checked where the combination is known (assembly refuses the combination that would make it inert)
    ("dynamics", "diffusion", "self_condition"): "the probe's field takes no self-conditioning input; assembly refuses that "
                                                 "combination (distgen.models.assembly.dynamics_backbone_problems)",
    **{("dynamics", d, "guidance"): "the probe's field has no null condition; assembly refuses guidance without "
                                    "p_drop_condition > 0" for d in ("diffusion", "flow_matching")},
}


def _plain_kind(hint: Any) -> str | None:
    try:
        return _component_kind(hint)
    except Exception:
        return None


def other_value(kind: str, name: str, param: str, hint: Any, current: Any) -> Any:
    """One value of ``param`` other than ``current`` that the signature accepts (``OTHER_VALUE`` first)."""
    if (kind, name, param) in OTHER_VALUE:
        return OTHER_VALUE[kind, name, param]
    sub = _plain_kind(hint)
    if sub is not None:
        now = current.get("name") if isinstance(current, dict) else getattr(current, "name", current)
        others = [n for n in built_in(sub) if n != now]
        return others[0] if others else pytest.skip(f"no other {sub}")
    if typing.get_origin(hint) is typing.Literal:
        return next(v for v in typing.get_args(hint) if v != current)
    for h in (hint, *typing.get_args(hint)):
        if isinstance(h, type) and issubclass(h, enum.Enum):
            return next(m.value for m in h if m.value != current and m.name != current)
    if isinstance(current, bool):
        return not current
    if isinstance(current, str):  # the choices a module spells as a tuple of names holding the default (POOLS, DOSE_MODES)
        cls = registry(kind).get(name)
        for mod in {__import__(c.__module__, fromlist=["_"]) for c in type.mro(cls) if c.__module__.startswith("distgen.")}:
            for v in vars(mod).values():
                if isinstance(v, tuple) and current in v and all(isinstance(x, str) for x in v) and len(v) > 1:
                    return next(x for x in v if x != current)
    if isinstance(current, int):
        return current * 2 if current else 1
    if isinstance(current, float):
        return current * 2 if current else 0.25
    if isinstance(current, tuple | list) and current and all(isinstance(v, int | float) for v in current):
        return [v * 2 for v in current]
    raise LookupError(f"no other value known for {kind}.{name}.{param} (default {current!r}): add one to OTHER_VALUE")


#: (kind, name) -> parameters set on the example (and kept in the other build) to keep the probe CPU-small.
SMALL: dict[tuple[str, str], dict[str, Any]] = {
    ("sde_solvers", "euler"): {"steps": 4},
    ("sde_solvers", "srk"): {"steps": 4},
    ("diffusion_samplers", "sde"): {"solver": {"name": "euler", "steps": 4}},
    ("diffusion_samplers", "ode"): {"solver": {"name": "rk4", "steps": 4}},
}


def built_in(kind: str) -> list[str]:
    reg = registry(kind)
    out = []
    for n in reg.names():
        try:
            cls = reg.get(n)
        except Exception:
            continue
        if getattr(cls, "__module__", "").startswith("distgen."):
            out.append(n)
    return out


def cases() -> list[tuple[str, str, str]]:
    out = []
    for kind in KINDS_PROBED:
        for n in built_in(kind):
            cls = registry(kind).get(n)
            for p in signature_schema(cls):
                if p not in INJECTED:
                    out.append((kind, n, p))
    return out


# ------------------------------------------------------------------------------------------------------------ probes
def _g(seed: int = 7) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _params(obj: Any) -> list[Any]:
    """Every tensor of the state dict, and which parameters train (``frozen``)."""
    if isinstance(obj, torch.nn.Module):
        return [*(t.detach() for t in obj.state_dict().values() if isinstance(t, Tensor)),
                torch.tensor([p.requires_grad for p in obj.parameters()])]
    return []


def _wake(net: torch.nn.Module) -> None:
    """Give every all-zero parameter seeded small values (after reading the initial state).

    adaLN-Zero gates and zero-initialised output layers make a freshly built network ignore its time and condition, so
    a parameter that only acts through them would look inert at initialisation; a trained network has no such zeros.
    """
    g = _g(11)
    with torch.no_grad():
        for p in net.parameters():
            if p.numel() and not bool(p.any()):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def _kernels(k: Any) -> list[Any]:
    x, y = torch.rand(2, 5, 4, generator=_g()) * 3, torch.rand(2, 3, 4, generator=_g(8)) * 3
    return [k.gram(x, y, ref=y)]


def _encoders(enc: Any) -> list[Any]:
    b = tiny_batch()
    enc.eval()
    return [enc(b.target, b.target_mask), enc.distance(b.target, b.target_mask, b.control, b.control_mask), *_params(enc)]


def _labels_with_doses() -> Any:
    import dataclasses

    labels = tiny_labels(4)
    return dataclasses.replace(labels, dose=labels.dose * torch.tensor([[2.0], [0.5], [1.0], [3.0]]))


def _conditioners(c: Any) -> list[Any]:
    state = _params(c)
    _wake(c)
    c.eval()
    return [c(_labels_with_doses()), *state]


def _backbones(net: Any) -> list[Any]:
    b = tiny_batch()
    t = torch.rand(3, b.target.shape[1], generator=_g(1))
    cond = tiny_condition(b, requires=frozenset(getattr(net, "requires", ())) | {"embedding"})
    state = _params(net)
    _wake(net)
    net.eval()
    out = [net(b.target, t, cond)]
    net.train()
    torch.manual_seed(3)
    out.append(net(b.target, t, cond))
    if getattr(net, "self_conditioning", False):
        out.append(net(b.target, t, cond, x_self_cond=b.control))
    return [*out, *state]


def _dynamics(dyn: Any) -> list[Any]:
    from distgen.testing.checks import _LinearField, make

    torch.manual_seed(5)
    field = _LinearField()
    b = tiny_batch()
    torch.manual_seed(6)
    out = dyn.loss(field, b.target, b.target_mask, dyn.draw_source(b.target, b.control), make("couplings", "independent"))
    torch.manual_seed(6)
    with torch.no_grad():
        s = dyn.sample(field.eval(), dyn.draw_source(b.control, b.control), b.control_mask)
    return [out.loss.detach(), s.cells]


def _couplings(cp: Any) -> list[Any]:
    b = tiny_batch()
    torch.manual_seed(2)
    return [cp.pair(torch.rand(b.target.shape, generator=_g()) * 3, b.target, b.target_mask)]


def _metrics(m: Any) -> list[Any]:
    from distgen.testing import fixtures

    example = getattr(fixtures, getattr(m, "example_data", "tiny_eval"))
    return [m.compute(example()).values]


def _matchers(m: Any) -> list[Any]:
    ctx, bat = torch.arange(24) % 2, torch.arange(24) // 2 % 2  # 6 controls of each context and batch
    g = _g(1)
    return [m.match(1, 0, ctx, bat, 4, torch.Generator().manual_seed(0), torch.rand(4, 5, generator=g), torch.rand(24, 5, generator=g))]


def _paths(path: Any) -> list[Any]:
    g = _g()
    x0, x1, t = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g), torch.rand(2, 3, generator=g)
    return list(path.sample(x0, x1, t))


def _time_samplers(ts: Any) -> list[Any]:
    torch.manual_seed(4)
    return [ts.sample((4, 5), "cpu", torch.float32)]


def _ode_solvers(solver: Any) -> list[Any]:
    return [solver.solve(lambda t, x: -x * (1 + t) ** 2, torch.ones(2, 3), 0.0, 1.0).x1]


def _sde_solvers(solver: Any) -> list[Any]:
    torch.manual_seed(4)
    return [solver.solve(lambda t, y: -y, lambda t, y: torch.full_like(y, 0.1), torch.ones(2, 3), 0.0, 1.0)]


def _noise_schedules(sch: Any) -> list[Any]:
    return [sch.abar(torch.arange(-1, sch.T))]


def _diffusion_samplers(sampler: Any) -> list[Any]:
    from distgen.testing.checks import make

    sch = make("noise_schedules", "linear", timesteps=200)
    data = torch.rand(2, 3, 4, generator=_g())
    w = torch.randn(4, 4, generator=_g(2)) * 0.3

    def imperfect(x: Tensor, abar: Tensor, t: float) -> tuple[Tensor, Tensor]:  # a denoiser that depends on x
        ab = torch.as_tensor(abar, dtype=x.dtype)
        x0 = data + 0.2 * x @ w
        return x0, (x - ab.sqrt() * x0) / (1 - ab).clamp_min(1e-12).sqrt()

    sampler.check(sch)
    torch.manual_seed(4)
    return [sampler.sample(imperfect, torch.randn(2, 3, 4, generator=_g(3)), sch)]


def _models(model: Any) -> list[Any]:
    from distgen.train import fit

    table = tiny_table()
    torch.manual_seed(9)
    fit(model, table, **getattr(type(model), "example_fit_kwargs", {}))
    b = tiny_batch()
    torch.manual_seed(10)
    with torch.no_grad():
        return [torch.as_tensor(model.predict(b.control, b.control_mask, b.labels)), *_params(model)]


PROBES: dict[str, Callable[[Any], list[Any]]] = {
    "kernels": _kernels, "encoders": _encoders, "conditioners": _conditioners, "backbones": _backbones,
    "dynamics": _dynamics, "paths": _paths, "time_samplers": _time_samplers, "ode_solvers": _ode_solvers,
    "sde_solvers": _sde_solvers, "noise_schedules": _noise_schedules, "diffusion_samplers": _diffusion_samplers,
    "couplings": _couplings, "metrics": _metrics, "models": _models, "matchers": _matchers,
}


def observe(kind: str, node: dict[str, Any]) -> list[Any]:
    """What the probe of ``kind`` sees of the component ``node`` built on the tiny fixtures (seeded)."""
    from distgen.config import build_component

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.manual_seed(0)
        if kind == "models":
            from distgen.models.generator import build_model

            obj = build_model(node, tiny_info(), seen_perturbations=("G0", "G1", "G2"))
        else:
            obj = build_component(kind, node, **injected())
            if kind == "backbones" and "population" in getattr(obj, "requires", ()):
                from distgen.testing.checks import POP_DIM

                torch.manual_seed(0)
                obj = build_component(kind, node, **{**injected(), "population_dim": POP_DIM})
            if kind == "backbones" and callable(getattr(obj, "prepare", None)):
                obj.prepare(tiny_table())  # what training does first (pad_transformer builds its gene graph)
        ctx = torch.enable_grad() if kind in ("dynamics", "models") else torch.no_grad()
        with ctx:
            seen = PROBES[kind](obj)
    inert = [str(w.message) for w in caught if issubclass(w.category, InertSettingWarning)]
    return [*seen, *inert]


def same(a: list[Any], b: list[Any]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, str) or isinstance(y, str):
            if x != y:
                return False
            continue
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        if x.shape != y.shape or not torch.equal(torch.nan_to_num(x, nan=1e30), torch.nan_to_num(y, nan=1e30)):
            return False
    return True


CASES = cases()


@pytest.mark.parametrize("kind, name, param", CASES, ids=[".".join(c) for c in CASES])
def test_every_parameter_of_every_component_changes_something(kind: str, name: str, param: str) -> None:
    if kind not in PROBES:
        pytest.skip(f"no probe for {kind}")
    hint, default = signature_schema(registry(kind).get(name))[param]
    base = {**example_node(kind, name), **SMALL.get((kind, name), {})}
    current = base.get(param, default)
    if current is inspect_empty():
        pytest.skip("required parameter: the example's value is the only one built here")
    alt = other_value(kind, name, param, hint, copy.deepcopy(current))
    try:
        seen = observe(kind, {**base, param: alt})
    except ConfigError as exc:  # refused on the fixtures: the user is told, which is not silence, if it names the key
        assert re.search(rf"\b{param}\b", str(exc)), f"{kind}.{name}: {param}={alt!r} refused without naming {param}: {exc}"
        return
    said = [m for m in seen if isinstance(m, str) and names(m, name, param)]
    if said:  # an InertSettingWarning naming this component and this parameter: the user is told
        assert (kind, name, param) not in NO_EFFECT_HERE, f"{kind}.{name}.{param} is now warned about: remove it from NO_EFFECT_HERE"
        return
    reference = observe(kind, base)
    why = NO_EFFECT_HERE.get((kind, name, param))
    if why:
        assert same(values(seen), values(reference)), (
            f"{kind}.{name}.{param} now changes something: remove it from NO_EFFECT_HERE ({why})")
        return
    assert not same(values(seen), values(reference)), (
        f"{kind} {name!r}: {param}={alt!r} (instead of {current!r}) changed nothing the probe sees"
        + (f" (warned, but without naming {name} and {param}: {[m for m in seen if isinstance(m, str)]})"
           if any(isinstance(m, str) for m in seen) else "")
        + ": the parameter is accepted and ignored, so an ablation over it measures nothing. Make it work, refuse or warn "
        "about it naming the component and the parameter, or list it in NO_EFFECT_HERE with the reason")


def names(message: str, name: str, param: str) -> bool:
    """Whether a warning's text names the component ``name`` and the parameter ``param`` (as words)."""
    return all(re.search(rf"(?<![\w.]){re.escape(w)}(?![\w])", message) for w in (name, param))


def values(seen: list[Any]) -> list[Any]:
    """What the probe measured, without the warnings' texts (another warning is not a change of the output)."""
    return [x for x in seen if not isinstance(x, str)]


def inspect_empty() -> Any:
    import inspect

    return inspect.Parameter.empty
