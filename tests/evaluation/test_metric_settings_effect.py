"""Every option of every registered built-in metric changes its values on data built for it (ablation-settings round,
2026-12-07; the components are in ``tests/test_settings_effect.py``, which leaves metrics here).

A metric's option (``fdr``, ``k``, ``preset``, ``control_source``, ``control``, ``exclude``, ``single_condition``,
``max_cells``...) that is accepted and read by nothing gives an evaluation table that says the option does not matter. The
cases come from the metrics registry (a new metric or option is covered without an edit here); each option is tried with
every other value it takes (``other_values``) on data where it should matter (``data_for``): raw counts of 3 single-gene
perturbations and a two-gene combination over 60 genes, with graded effects (p-values on both sides of any DE threshold,
more DE genes than any ``k`` tried), each perturbation's own gene knocked down, predicted controls that are not the real
ones, more cells than ``max_cells``; one condition for ``single_condition``. A value is observed when the metric's values
(and NaN reasons) differ, when it is refused (``ConfigError``/``ValueError`` naming the option), or when an
``InertSettingWarning`` names it. ``NO_EFFECT_HERE`` lists, with the reason, the combinations that legitimately change
nothing.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

import pytest
import torch

from distgen.config import INJECTED, ConfigError, InertSettingWarning, build_component, signature_schema
from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.metrics.celleval2_settings import PRESETS, settings_for
from distgen.evaluation.metrics.discrimination import SINGLE_CONDITION, TIES
from distgen.registry import registry
from distgen.testing.checks import example_node

N_GENES, N_CELLS = 60, 24

#: option name -> every value it takes (the module's own lists where they are spelt; others from the docstrings).
CHOICES: dict[str, tuple[Any, ...]] = {
    "exclude": ("atoms", "label", "none"),
    "control": ("own", "real"),
    "single_condition": SINGLE_CONDITION,
    "ties": TIES,
    "preset": tuple(PRESETS),
    "control_source": (None, "real", "pred"),
}

#: option name -> the other value tried where the generic (twice a number) would not matter on the probe's sizes.
OTHER: dict[str, Any] = {
    "k": 5,  # more DE genes than 5 in the probe; 50..500 and their doubles all exceed its 60 genes
    "max_cells": 5,  # the probe holds 24 cells a perturbation
}

#: (metric, option, value) -> why that value changes nothing observable on the probe's data (not a finding).
NO_EFFECT_HERE: dict[tuple[str, str, Any], str] = {
    ("de_wilcoxon_nsig_counts_real", "preset", "cell-eval-0.7.6"):
        "counts the real cells' calls, which both presets make alike (Wilcoxon against the real controls, BH at 0.05 per "
        "perturbation); the presets differ in how the prediction is scored",
}


def built_in() -> list[str]:
    reg = registry("metrics")
    return [n for n in reg.names() if getattr(reg.get(n), "__module__", "").startswith("distgen.")]


def options(name: str) -> dict[str, tuple[Any, Any]]:
    return {p: v for p, v in signature_schema(registry("metrics").get(name)).items() if p not in INJECTED}


def current(name: str, option: str) -> Any:
    return example_node("metrics", name).get(option, options(name)[option][1])


def same_settings(name: str, option: str, value: Any) -> bool:
    """Whether ``value`` of a cell-eval2 option names the settings the current value does (a preset's alias; the
    preset's own control source), which cannot differ by construction."""
    node = example_node("metrics", name)
    preset = node.get("preset", options(name).get("preset", (None, "v2"))[1])
    source = node.get("control_source", options(name).get("control_source", (None, None))[1])
    if option == "preset":
        return settings_for(value, source) == settings_for(preset, source)
    if option == "control_source":
        return settings_for(preset, value) == settings_for(preset, source)
    return False


def other_values(name: str, option: str) -> list[Any]:
    now = current(name, option)
    if option in OTHER:
        return [OTHER[option]]
    if option in CHOICES:
        return [v for v in CHOICES[option] if v != now and not same_settings(name, option, v)]
    if isinstance(now, bool):
        return [not now]
    if isinstance(now, int | float):
        return [now * 2 if now else 0.25]
    if isinstance(now, tuple | list) and now:
        return [[v * 2 for v in now]]
    raise LookupError(f"no other value known for metrics.{name}.{option} (default {now!r}): add its choices to CHOICES or "
                      "a value to OTHER")


def cases() -> list[tuple[str, str, Any]]:
    return [(n, p, v) for n in built_in() for p in options(n) for v in other_values(n, p)]


# ---------------------------------------------------------------------------------------------------------------- data
def probe_data(n_perts: int = 9, combination: bool = True, seed: int = 0) -> EvalData:
    """Counts of ``n_perts`` single-gene perturbations ``G0..`` (and one of two other genes, ``G9+G10``) over ``N_GENES``
    genes with graded effects (more conditions: finer discrimination ranks).

    Perturbation ``p`` multiplies gene ``j`` by ``exp(s_pj a_j)``, ``a_j`` from 1.2 down to 0 over the genes (shuffled
    per perturbation, signs ``s`` random), so DE p-values span every threshold; its own gene(s) drop to 10% (a knock-down
    the prediction misses). The
    prediction of each is half its effect and half the next one's (near ties for the discrimination ranks) on fresh
    cells, and its controls are drawn with means 30% higher than the real controls."""
    g = torch.Generator().manual_seed(seed)
    base = 8.0 + 30.0 * torch.rand(N_GENES, generator=g)
    perts = [f"G{i}" for i in range(n_perts)] + ([f"G{n_perts}+G{n_perts + 1}"] if combination else [])
    targets = [tuple(p.split("+")) for p in perts]
    ramp = torch.linspace(1.2, 0.0, N_GENES)
    log_fold = torch.stack([ramp[torch.randperm(N_GENES, generator=g)] * (torch.randint(0, 2, (N_GENES,), generator=g) * 2 - 1)
                            for _ in perts])
    for i, t in enumerate(targets):
        for gene in t:
            log_fold[i, int(gene[1:])] = math.log(0.1)
            base[int(gene[1:])] = 300.0  # a knock-down large beside the other effects

    def draw(mean: torch.Tensor) -> torch.Tensor:
        return torch.poisson(mean.expand(N_CELLS, -1).contiguous(), generator=g)

    def population(effects: torch.Tensor, control_scale: float) -> Population:
        cells = torch.cat([draw(base * torch.exp(lf)) for lf in effects])
        return Population(X=cells, offsets=torch.arange(len(perts) + 1) * N_CELLS, control=draw(base * control_scale))

    mixed = 0.5 * log_fold + 0.5 * log_fold.roll(-1, 0)
    for t in targets:  # the prediction misses every knock-down: whether the target genes are left out decides much
        for gene in t:
            mixed[:, int(gene[1:])] = 0.0
    return EvalData(real=population(log_fold, 1.0), pred=population(mixed, 1.3), perts=tuple(perts), targets=tuple(targets),
                    genes=tuple(f"G{i}" for i in range(N_GENES)))


#: Seeds of the probe's data: a rank-valued metric (discrimination, PDS) can keep every rank on one draw; the next seed is
#: tried only where the first showed no difference.
SEEDS = (0, 1, 2)


def data_for(option: str, seed: int = 0) -> EvalData:
    """The probe's data for ``option``: one condition for ``single_condition`` (what it decides); for ``ties``, ``G2``'s
    cells replaced by ``G1``'s on both sides (one real effect twice: an exact tie); else ``probe_data``."""
    if option == "single_condition":
        return probe_data(n_perts=1, combination=False, seed=seed)
    data = probe_data(seed=seed)
    if option == "ties":
        for pop in (data.real, data.pred):
            pop.X[2 * N_CELLS : 3 * N_CELLS] = pop.X[N_CELLS : 2 * N_CELLS]
    return data


def observe(name: str, node: dict[str, Any], data: EvalData) -> list[Any]:
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.manual_seed(0)
        metric = build_component("metrics", node)
        res = metric.compute(data)
    inert = sorted(str(w.message) for w in caught if issubclass(w.category, InertSettingWarning))
    return [res.values.to(torch.float64), sorted(res.reasons.items()), inert]


def same(a: list[Any], b: list[Any]) -> bool:
    return (torch.equal(torch.nan_to_num(a[0], nan=1e30), torch.nan_to_num(b[0], nan=1e30)) and a[1] == b[1]
            and a[2] == b[2])


CASES = cases()


@pytest.mark.parametrize("name, option, value", CASES, ids=[f"{n}.{p}={v}" for n, p, v in CASES])
def test_every_option_of_every_metric_changes_its_values(name: str, option: str, value: Any) -> None:
    base = example_node("metrics", name)
    differs = []
    for seed in SEEDS:
        try:
            seen = observe(name, {**base, option: value}, data_for(option, seed))
        except (ConfigError, ValueError) as exc:  # refused: the user is told, which is not silence
            assert option in str(exc), f"metrics.{name}: {option}={value!r} refused without naming it: {exc}"
            return
        if any(re.search(rf"\b{option}\b", m) for m in seen[2]):
            return
        differs.append(not same(seen, observe(name, base, data_for(option, seed))))
        if differs[-1]:
            break
    why = NO_EFFECT_HERE.get((name, option, value if isinstance(value, str | int | float | None) else repr(value)))
    if why:
        assert not any(differs), f"metrics.{name}.{option}={value!r} now changes something: remove it from NO_EFFECT_HERE"
        return
    assert any(differs), (
        f"metric {name!r}: {option}={value!r} (instead of {current(name, option)!r}) changed none of its values on data built "
        f"for it ({len(SEEDS)} draws): the option is accepted and ignored, so an ablation over it measures nothing. Make it work, refuse or warn "
        "about it (InertSettingWarning), or list it in NO_EFFECT_HERE with the reason")


def test_every_metric_option_is_probed() -> None:
    """Each option of each built-in metric is in ``CASES`` with at least one other value (none silently skipped)."""
    probed = {(n, p) for n, p, _ in CASES}
    missing = [(n, p) for n in built_in() for p in options(n) if (n, p) not in probed]
    assert not missing, f"options with no other value tried: {missing}"


@pytest.mark.parametrize("name", ["expr_mse", "expr_mae", "expr_mse_unbiased", "expr_real_mass_ratio",
                                  "de_wilcoxon_nsig_counts_real"])
def test_control_source_on_a_metric_that_reads_no_control_of_the_prediction_warns(name: str) -> None:
    """Found by the probe above: these accepted ``control_source`` and gave the same values with either (silent before)."""
    with pytest.warns(InertSettingWarning, match="control_source='pred' has no effect"):
        build_component("metrics", {"name": name, "control_source": "pred"})


@pytest.mark.parametrize("name", ["delta_mse", "pds_l1", "de_wilcoxon_overlap", "de_wilcoxon_nsig_counts_pred"])
def test_control_source_on_a_metric_that_reads_it_does_not_warn(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", InertSettingWarning)
        build_component("metrics", {"name": name, "control_source": "pred"})


def test_a_discrimination_control_outside_its_choices_is_refused_when_built() -> None:
    with pytest.raises((ConfigError, ValueError), match="control"):
        build_component("metrics", {"name": "discrimination_score_l1", "control": "reall"})
