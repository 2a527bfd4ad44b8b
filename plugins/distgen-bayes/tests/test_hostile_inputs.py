"""bayes_hier on inputs a methods developer meets: no training combinations, tiny populations, no JAX."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

from distgen.models.generator import build_model
from distgen.types import CellTable, ConditionLabels, DataInfo

#: the bundled Norman data's columns, for a copy of it written as a file
SCHEMA = {"perturbation_col": "condition", "control_labels": ["control"], "context_cols": ["cell_type"]}
FAST = {"name": "bayes_hier", "reduction": "genes", "steps": 150, "num_samples": 64, "learning_rate": 0.03}


def _keep(table: CellTable, keep: torch.Tensor) -> CellTable:
    return table.subset(torch.nonzero(keep).squeeze(1))


def test_pairs_predicted_when_training_has_no_combination(synthetic) -> None:
    """Train on singles only (GEARS-style) and predict pairs: the interaction scale comes from its prior."""
    table, truth = synthetic
    n_atoms = (table.labels.perturbation >= 0).sum(1)
    model = build_model(FAST, table.info).fit(_keep(table, n_atoms <= 1))
    assert "tau_gamma" not in model.posterior.draws  # nothing in training informs the interaction scale
    labels = ConditionLabels.make([[0], [1], [0, 1], [2, 3]], batch=[0] * 4)
    iv = model.posterior_intervals(labels)
    assert all(torch.isfinite(v).all() for v in iv.values())
    # the pair is additive in its mean, with the spread of the interaction prior on top of the singles'
    width = iv["upper"] - iv["lower"]
    assert ((iv["mean"][2] - iv["mean"][0] - iv["mean"][1]).abs() < 0.2 * width[2]).all()
    assert width[2].mean() > width[0].mean() + width[1].mean()  # wider than the sum of the singles
    ctrl = torch.rand(4, 5, table.info.n_genes, generator=torch.Generator().manual_seed(0)) + 2
    out = model.predict(ctrl, torch.ones(4, 5, dtype=torch.bool), labels)
    assert torch.isfinite(out).all()
    # the additive prediction of the interaction-free pair (0, 1) is close to the truth
    assert (iv["mean"][2].double() - truth.shift((0, 1))).abs().mean() < 0.3


def test_populations_below_min_cells_are_named_not_dropped_silently(synthetic) -> None:
    """A perturbation with a handful of cells spread over batches: every population of it is below min_cells."""
    table, _ = synthetic
    atoms = table.labels.perturbation
    only_d = (atoms[:, 0] == 3) & (atoms[:, 1] < 0)
    first = torch.zeros(len(only_d), dtype=torch.bool)
    for b in range(4):  # one cell of the single "D" per batch: 4 cells, 4 populations of 1
        first[torch.nonzero(only_d & (table.labels.batch == b))[0]] = True
    keep = ~only_d | first
    small = _keep(table, keep & ((atoms < 0).all(1) | only_d | ((atoms[:, 0] == 0) & (atoms[:, 1] < 0))))
    model = build_model(FAST, table.info)
    with pytest.warns(UserWarning, match=r"4 population\(s\).*min_cells=2.*\(4 cells\).*D @ ctx / rep0: 1.*perturbation\(s\) 'D' have no population left"):
        model.fit(small)
    assert model.diagnostics["dropped_populations"] == 4 and model.diagnostics["dropped_cells"] == 4
    assert model.can_predict(["A", "D"]) == [True, False]
    kept = build_model({**FAST, "min_cells": 1}, table.info)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*min_cells")  # nothing left out: no warning of it (FAST is short:
        kept.fit(small)  # its not-converged warning is expected)
    assert kept.can_predict(["D"]) == [True] and kept.diagnostics["dropped_cells"] == 0


def test_fit_without_jax_says_what_to_install(monkeypatch, synthetic) -> None:
    import distgen_bayes
    from distgen.cli import classify
    from distgen_bayes.model import MissingDependencyError

    monkeypatch.setitem(sys.modules, "jax", None)  # as if jax were not installed: importing it fails
    for mod in ("inference", "hierarchical"):
        monkeypatch.delitem(sys.modules, f"distgen_bayes.{mod}", raising=False)
        monkeypatch.delattr(distgen_bayes, mod, raising=False)
    model = build_model(FAST, synthetic[0].info)
    with pytest.raises(MissingDependencyError, match=r"needs 'jax' to fit.*pip install") as err:
        model.fit(synthetic[0])
    code, message = classify(err.value, "run")
    assert code == 1 and message is not None and message.startswith("error: bayes_hier needs 'jax'")  # not an 'internal error'


def test_fit_too_large_for_memory_is_refused_before_inference(monkeypatch, synthetic) -> None:
    import distgen.train.resources as res
    from distgen.cli import classify
    from distgen_bayes import inference

    table = synthetic[0]
    ran = []
    monkeypatch.setattr(inference, "run_svi", lambda *a, **k: ran.append(1))
    monkeypatch.setattr(res, "machine_memory", lambda device="cpu": (200_000, "RAM"))
    model = build_model({**FAST, "num_samples": 400}, table.info)
    with pytest.raises(res.ResourceError, match=r"400 posterior draws of \d+ latent values.*reduction: pca.*num_samples") as err:
        model.fit(table)
    assert not ran and classify(err.value, "run")[0] == 2
    monkeypatch.setattr(res, "machine_memory", lambda device="cpu": (1 << 40, "RAM"))
    with pytest.raises(TypeError):  # the stub returns nothing: inference was reached
        model.fit(table)
    assert ran


def test_model_size_counts_the_latent_values_of_the_fit(fitted) -> None:
    from distgen_bayes.model import model_size

    latent, kept = model_size(fitted.posterior.design, fitted.basis.dim, fitted.diagnostics["n_factors"], True)
    assert latent == fitted.diagnostics["latent_dim"]  # what the guide covered
    assert kept == sum(v[0].numel() for v in fitted.posterior.draws.values())  # what each posterior draw holds


def test_sweep_seed_reaches_the_fit(synthetic) -> None:
    """``distgen run``/``sweep``: train.seed (a sweep's replicate axis) seeds bayes_hier's inference, not only its draws."""
    from distgen.train.loop import fit_options

    info = synthetic[0].info
    bayes, linear = build_model(FAST, info), build_model({"name": "linear"}, info)
    assert fit_options(bayes, {"train": {"seed": 2}}) == {"seed": 2}
    assert fit_options(bayes, {"train": {"seed": 2}, "fit": {"seed": 5, "steps": 9}}) == {"seed": 5, "steps": 9}  # fit: wins
    assert fit_options(bayes, {"model": {"seed": 7}}) == {}  # no train.seed: the model keeps its own seed
    assert fit_options(linear, {"train": {"seed": 2}}) == {}  # a fit without a seed gets none


def test_doses_pooled_by_the_model_are_named(synthetic) -> None:
    """Doses are not modelled: cells of one condition at two doses become one population, and fit says so."""
    from distgen_bayes.model import pooled_doses

    table, _ = synthetic
    labels = table.labels
    dose = labels.dose.clone()
    single_a = (labels.perturbation[:, 0] == 0) & (labels.perturbation[:, 1] < 0)
    dose[torch.nonzero(single_a).squeeze(1)[::2], 0] = 0.1
    dosed = CellTable(table.X, ConditionLabels(labels.perturbation, dose, labels.context, labels.batch), table.info)
    assert pooled_doses(dosed.labels) == {(0,): [0.1, 1.0]}
    assert pooled_doses(table.labels) == {}
    with pytest.warns(UserWarning, match=r"does not model doses.*1 condition\(s\).*A at doses \[0.1, 1.0\]"):
        build_model({**FAST, "steps": 20, "num_samples": 8}, table.info).fit(dosed)


def test_diverged_svi_is_an_error_not_a_nan_posterior(synthetic) -> None:
    """A learning rate too large sends the ELBO to NaN: fit says so (it returned, and predict failed in a Cholesky)."""
    from distgen.cli import classify

    table = synthetic[0]
    model = build_model({**FAST, "learning_rate": 1.0, "steps": 200, "num_samples": 8}, table.info)
    with pytest.raises(FloatingPointError, match=r"SVI diverged: the loss \(negative ELBO\) became non-finite at step \d+ of 200.*lower learning_rate \(now 1;") as err:
        model.fit(table)
    assert classify(err.value, "run")[0] == 1
    assert model.posterior is None  # nothing half-fitted is kept


def test_fit_leaves_global_numeric_settings_alone(synthetic) -> None:
    """Fitting imports JAX: it must not switch JAX to float64 (other JAX code in the process) nor touch torch's settings."""
    import jax

    threads, interop, dtype = torch.get_num_threads(), torch.get_num_interop_threads(), torch.get_default_dtype()
    build_model({**FAST, "steps": 10, "num_samples": 4}, synthetic[0].info).fit(synthetic[0])
    assert not jax.config.jax_enable_x64
    assert (torch.get_num_threads(), torch.get_num_interop_threads(), torch.get_default_dtype()) == (threads, interop, dtype)


def test_distgen_run_records_the_fits_warnings_in_the_runs_notes(tmp_path) -> None:
    """A user reading the run folder later sees what the fit warned about (here: a population below min_cells left
    out) in eval/summary.json and summary.md, not only on the stderr of the run."""
    import json

    import anndata as ad

    from distgen.datasets import path
    from distgen.pipeline.experiment import run

    cells = ad.read_h5ad(path("norman_k562.h5ad"))
    sgk1 = (cells.obs["condition"] == "SGK1").to_numpy()
    keep = ~sgk1
    keep[sgk1.nonzero()[0][:3]] = True  # 3 cells of SGK1: one population, below min_cells=5
    cells[keep].copy().write_h5ad(tmp_path / "norman_thin.h5ad")
    config = {"model": {**FAST, "steps": 20, "num_samples": 8, "min_cells": 5},
              "data": {"dataset": str(tmp_path / "norman_thin.h5ad"), "schema": SCHEMA, "split": {"kind": "combo_seen2", "seed": 0}, "set_size": 16}}
    with pytest.warns(UserWarning, match="min_cells=5"):
        run(config, tmp_path / "run", progress=False, metrics=["mse"], plots=False)
    notes = json.loads((tmp_path / "run" / "eval" / "summary.json").read_text())["notes"]
    dropped = [n for n in notes if "min_cells=5" in n]
    assert len(dropped) == 1 and "SGK1" in dropped[0]
    assert f"- {dropped[0]}" in (tmp_path / "run" / "eval" / "summary.md").read_text()


def test_mean_prediction_of_unseen_terms_is_their_prior_mean_not_monte_carlo_noise(synthetic) -> None:
    """A pair never seen together: its interaction is drawn from a zero-mean prior, so the posterior mean shift of the
    pair is exactly the sum of its singles' (the draws of one posterior); averaging num_samples prior draws of the
    interaction gave a fixed error of about interaction_scale / sqrt(num_samples) per coordinate instead."""
    table, _ = synthetic
    n_atoms = (table.labels.perturbation >= 0).sum(1)
    model = build_model({**FAST, "num_samples": 16}, table.info).fit(_keep(table, n_atoms <= 1))
    labels = ConditionLabels.make([[0], [1], [0, 1]], batch=[0] * 3)
    ctrl = torch.zeros(3, 1, table.info.n_genes)
    shift = model.predict(ctrl, torch.ones(3, 1, dtype=torch.bool), labels)[:, 0]
    torch.testing.assert_close(shift[2], shift[0] + shift[1], atol=1e-5, rtol=0)
    # the draws still carry the prior's spread (intervals, prediction="sample")
    draws = model.shift_draws(labels)
    assert (draws[:, 2] - draws[:, 0] - draws[:, 1]).std(0).mean() > 1e-3


def test_a_fit_that_did_not_converge_says_so(synthetic) -> None:
    """150 SVI steps on the synthetic table leave the loss falling (an ELBO trace still 3.5% of its range from flat):
    the posterior is not the model's, and predictions from it looked like any other; now fit warns, naming the knob."""
    table, _ = synthetic
    with pytest.warns(UserWarning, match=r"SVI had not converged after 150 steps.*raise steps") as seen:
        model = build_model(FAST, table.info).fit(table)
    assert model.diagnostics["elbo_rel_change"] > 0.01
    assert sum("not converged" in str(w.message) for w in seen) == 1


@pytest.mark.parametrize(("diagnostics", "said"), [
    ({"method": "svi", "steps": 3000, "elbo_rel_change": 0.001}, []),
    ({"method": "svi", "steps": 200, "elbo_rel_change": 0.032}, ["SVI had not converged after 200 steps"]),
    ({"method": "nuts", "divergences": 0, "r_hat_max": 1.004, "ess_min": 300}, []),
    ({"method": "nuts", "divergences": 3, "r_hat_max": 1.004, "ess_min": 300}, ["3 divergent transition(s)"]),
    ({"method": "nuts", "divergences": 0, "r_hat_max": 1.2, "ess_min": 9}, ["split R-hat up to 1.200"]),
    # before: a NaN R-hat (a site constant over its draws) and a 1-step SVI fit (elbo_rel_change 0) said nothing
    ({"method": "nuts", "divergences": 0, "r_hat_max": float("nan"), "ess_min": 4}, ["split R-hat up to nan"]),
    ({"method": "svi", "steps": 1, "elbo_rel_change": 0.0}, ["SVI ran 1 step(s), too few"]),
])
def test_convergence_problems_case_table(diagnostics, said) -> None:
    from distgen_bayes.convergence import convergence_problems

    got = convergence_problems(diagnostics)
    assert len(got) == len(said) and all(s in g for s, g in zip(said, got))


@pytest.mark.parametrize(
    ("key", "value"),
    [("n_components", 0), ("n_components", -3), ("guide_rank", 0), ("steps", 0), ("num_samples", 0), ("num_samples", -5),
     ("num_warmup", -1), ("num_chains", 0), ("n_factors", -1), ("min_cells", 0), ("learning_rate", 0.0),
     ("learning_rate", -0.1), ("target_accept", 1.5), ("target_accept", 0.0)],  # NUTS num_samples below 4: next test
)
def test_option_values_out_of_range_are_config_errors(key, value) -> None:
    """Before: n_components 0, guide_rank 0 and min_cells 0 were silently raised to 1, learning_rate 0 and target_accept
    1.5 were fitted, and num_samples 0, n_factors -1 and num_chains 0 crashed inside JAX after the data was summarised."""
    from distgen.config import ConfigError

    info = DataInfo(genes=("g0", "g1"), perturbations=("A",), contexts=("ctx",))
    with pytest.raises(ConfigError, match=rf"bayes_hier\.{key}="):
        build_model({"name": "bayes_hier", key: value}, info)


def test_fit_steps_override_below_one_is_refused(synthetic) -> None:
    table, _ = synthetic
    with pytest.raises(ValueError, match=r"steps=0"):
        build_model(FAST, table.info).fit(table, steps=0)


def test_direct_predict_of_an_unseen_atom_warns_instead_of_returning_controls_silently(fitted) -> None:
    """Before: "E" (no training population) came back as the controls, and "A+E" as "A", without a word."""
    from distgen.models.preflight import PreflightWarning

    model = fitted
    ctrl, mask = torch.rand(2, 4, model.info.n_genes) + 2, torch.ones(2, 4, dtype=torch.bool)
    model.__dict__.pop("_unseen_checked", None)
    with pytest.warns(PreflightWarning, match=r"bayes_hier.predict: E had no training population"):
        out = model.predict(ctrl, mask, ConditionLabels.make([[4], [0, 4]]))
    assert torch.equal(out[0], ctrl[0])  # what the warning says: the prior's mean, zero
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per atom and model; seen atoms never warn
        model.predict(ctrl, mask, ConditionLabels.make([[4], [0]]))


def test_predict_refuses_shapes_that_broadcast_and_integer_controls(fitted) -> None:
    """Before: one label with three control sets (or three labels with one) was broadcast to [3, m, G], and int64 controls
    got their fractional shift truncated."""
    model, g = fitted, fitted.info.n_genes
    ctrl, mask = torch.rand(3, 4, g) + 2, torch.ones(3, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="one set per label"):
        model.predict(ctrl, mask, ConditionLabels.make([[0]]))
    with pytest.raises(ValueError, match="one set per label"):
        model.predict(ctrl[:1], mask[:1], ConditionLabels.make([[0], [1], [2]]))
    with pytest.raises(ValueError, match=r"control.float\(\)"):
        model.predict(ctrl.long(), mask, ConditionLabels.make([[0], [1], [2]]))
    half = model.predict(ctrl.half(), mask, ConditionLabels.make([[0], [1], [2]]))
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    mask[0, 2:] = False  # padding is left as it is
    out = model.predict(ctrl, mask, ConditionLabels.make([[0], [1], [2]]))
    assert torch.equal(out[0, 2:], ctrl[0, 2:]) and not torch.equal(out[0, :2], ctrl[0, :2])


def test_label_ids_outside_the_vocabulary_and_bad_cell_counts_are_refused(fitted) -> None:
    """Before: perturbation id 99 was predicted as control; n_cells 0 or -3 gave NaN intervals, and n_cells [1] for
    two labels was broadcast."""
    model, g = fitted, fitted.info.n_genes
    with pytest.raises(ValueError, match=r"perturbation id\(s\) 99 are outside"):
        model.predict(torch.rand(1, 2, g), torch.ones(1, 2, dtype=torch.bool), ConditionLabels.make([[99]]))
    with pytest.raises(ValueError, match=r"perturbation id\(s\) 99 are outside"):
        model.posterior_intervals(ConditionLabels.make([[99]]))
    for n in ([0], [-3]):
        with pytest.raises(ValueError, match="positive cell counts"):
            model.population_mean_intervals(ConditionLabels.make([[0]]), n_cells=torch.tensor(n))
    with pytest.raises(ValueError, match="one per label"):
        model.population_mean_intervals(ConditionLabels.make([[0], [1]]), n_cells=torch.tensor([30]))
    iv = model.population_mean_intervals(ConditionLabels.make([[0], [1]]), n_cells=torch.tensor([30, 5]))
    assert bool((iv["lower"] <= iv["upper"]).all()) and torch.isfinite(iv["lower"]).all()


def test_nuts_with_fewer_than_four_draws_is_refused_at_build() -> None:
    """Before: num_samples 2 or 3 ran warmup and sampling, then failed with a bare AssertionError inside numpyro's split R-hat."""
    from distgen.config import ConfigError

    info = DataInfo(genes=("g0", "g1"), perturbations=("A",), contexts=("ctx",))
    with pytest.raises(ConfigError, match=r"num_samples=3: NUTS needs at least 4"):
        build_model({"name": "bayes_hier", "inference": "nuts", "num_samples": 3}, info)
    build_model({"name": "bayes_hier", "num_samples": 3}, info)  # SVI: any number of draws


def test_non_finite_training_cells_are_named_not_blamed_on_the_learning_rate(synthetic) -> None:
    """Before: one NaN (or inf) cell made SVI 'diverge at step 0', with the advice to lower learning_rate."""
    table, _ = synthetic
    for bad in (float("nan"), float("inf")):
        x = table.X.clone()
        x[5, 2] = bad
        with pytest.raises(ValueError, match=r"1 training cell\(s\) hold NaN or inf"):
            build_model(FAST, table.info).fit(CellTable(x, table.labels, table.info))


def test_an_interval_from_one_draw_is_refused() -> None:
    """Before: num_samples 1 gave lower == mean == upper, an interval of width zero."""
    from distgen_bayes.model import summarise_draws

    with pytest.raises(ValueError, match="at least 2 posterior draws"):
        summarise_draws(torch.zeros(1, 3, 4), 0.9)
    iv = summarise_draws(torch.randn(50, 3, 4, generator=torch.Generator().manual_seed(0)), 0.9)
    assert bool((iv["lower"] < iv["upper"]).all())


def _two_context_table(synthetic) -> CellTable:
    """The synthetic cells, with a second context in the vocabulary that no training cell is in."""
    table, _ = synthetic
    i = table.info
    info = DataInfo(genes=i.genes, perturbations=i.perturbations, contexts=("ctx", "unseen_ctx"), batches=i.batches)
    return CellTable(table.X, table.labels, info)


def test_a_context_without_training_cells_warns_naming_it(synthetic) -> None:
    """Before: predict and posterior_intervals gave a context never seen in training the atoms' shared effect without a word
    (population_mean_draws refuses it)."""
    from distgen.models.preflight import PreflightWarning

    table = _two_context_table(synthetic)
    model = build_model(FAST, table.info).fit(table)
    g = table.info.n_genes
    ctrl, mask = torch.rand(2, 4, g) + 2, torch.ones(2, 4, dtype=torch.bool)
    unseen = ConditionLabels.make([[0], [1]], context=[1, 1])
    with pytest.warns(PreflightWarning, match=r"bayes_hier.predict: context\(s\) unseen_ctx had no training cells.*\(ctx\)"):
        model.predict(ctrl, mask, unseen)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per context and model; a seen context never warns
        model.predict(ctrl, mask, unseen)
        model.predict(ctrl, mask, ConditionLabels.make([[0], [1]], context=[0, 0]))
    model.__dict__.pop("_unseen_contexts_checked")
    with pytest.warns(PreflightWarning, match=r"bayes_hier.posterior_intervals: context\(s\) unseen_ctx"):
        model.posterior_intervals(unseen)
    with pytest.raises(ValueError, match="no training cells"):
        model.population_mean_draws(unseen)


def test_intervals_use_the_fit_seed_not_the_constructor_seed(synthetic) -> None:
    """fit(seed=1) drew the posterior with seed 1 but population_mean_intervals and posterior_intervals seeded their draws
    from model.seed (0): the same posterior gave other intervals than model.seed=1 did."""
    table, _ = synthetic
    by_fit = build_model(FAST, table.info).fit(table, seed=1)
    by_model = build_model({**FAST, "seed": 1}, table.info).fit(table)
    labels = ConditionLabels.make([[0], [0, 1]], batch=[0, 0])
    for name in ("population_mean_intervals", "posterior_intervals"):
        a, b = getattr(by_fit, name)(labels), getattr(by_model, name)(labels)
        for k in a:
            torch.testing.assert_close(a[k], b[k], msg=f"{name}[{k}]")


class _StubMCMC:
    """``nuts_diagnostics``'s view of an MCMC run: site ``a`` mixed (R-hat ~1), site ``b`` constant over its draws."""

    num_chains, num_samples = 2, 500

    def get_samples(self, group_by_chain: bool = False) -> dict:
        rng = np.random.default_rng(0)
        return {"a": rng.normal(size=(2, 500, 3)), "b": np.ones((2, 500, 2))}

    def get_extra_fields(self) -> dict:
        return {"diverging": np.zeros(1000, dtype=bool)}


def test_a_constant_site_after_a_mixed_one_is_the_nan_headline_r_hat() -> None:
    """Before (review of 2026-12-07): the headline R-hat was Python's max over sites, which keeps a NaN only when it comes
    first, so a stuck site listed after a mixed one read as converged and convergence_problems said nothing."""
    from distgen_bayes.convergence import convergence_problems
    from distgen_bayes.inference import nuts_diagnostics

    d = nuts_diagnostics(_StubMCMC())
    assert np.isnan(d["per_site"]["b"]["r_hat_max"]) and d["per_site"]["a"]["r_hat_max"] < 1.01
    assert np.isnan(d["r_hat_max"])
    assert any("split R-hat up to nan" in m for m in convergence_problems(d))


def test_distgen_predict_names_an_unseen_atom_once_not_twice() -> None:
    """Round 2 (2026-12-07): distgen.predict's first call printed the unseen-atom PreflightWarning twice, the pipeline's
    pre-flight and then the model's own; once is right. A direct model.predict still says it (the test above)."""
    import warnings

    import distgen
    from distgen.models.preflight import PreflightWarning

    data = distgen.load_data("norman_k562", split={"kind": "combo_seen1", "seed": 0, "val_frac": 0.0}, hvg=32)
    model = distgen.build({**FAST, "steps": 20, "num_samples": 8}, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fit's own (not converged in 20 steps, its pre-flight)
        distgen.fit(model, data)
    unseen = [a for a in sorted({a for c in data.groups("test") for a in c.condition.split("+")}) if not model.can_predict([a])[0]]
    assert unseen, "the split should hold out an atom without training cells"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        distgen.predict(model, data, max_cells=8)
    said = [str(w.message) for w in caught if issubclass(w.category, PreflightWarning) and unseen[0] in str(w.message)]
    assert len(said) == 1, said
