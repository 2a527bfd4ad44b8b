"""bayes_hier on a seeded population dataset with known effects (one SVI fit shared by the module)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distgen.config import ConfigError
from distgen.models.generator import build_model
from distgen.types import ConditionLabels

E = 4  # the atom ("E") that training never saw


def _labels(conds: list[list[int]], batch: int = 0) -> ConditionLabels:
    return ConditionLabels.make(conds, batch=[batch] * len(conds))


def _controls(b: int, m: int = 5, g: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(b, m, g, generator=torch.Generator().manual_seed(3)) + 2.0, torch.ones(b, m, dtype=torch.bool)


def test_recovers_known_effects_and_interaction(fitted, synthetic) -> None:
    _, truth = synthetic
    conds = [[0], [1], [2], [3], [0, 1], [2, 3]]
    est = fitted.posterior_intervals(_labels(conds))["mean"]
    true = torch.stack([truth.shift(tuple(c)) for c in conds]).float()
    assert (est - true).abs().max() < 0.35, (est - true).abs().max()
    assert torch.corrcoef(torch.stack([est.flatten(), true.flatten()]))[0, 1] > 0.99
    # the (2, 3) pair has a real interaction: its shift is not the sum of the singles
    additive = est[2] + est[3]
    assert (est[5] - additive).abs().mean() > 3 * (est[4] - est[0] - est[1]).abs().mean()


def test_unseen_pair_is_additive_with_wider_interval(fitted) -> None:
    iv = fitted.posterior_intervals(_labels([[0], [2], [0, 2], [0, 1]]))
    torch.testing.assert_close(iv["mean"][2], iv["mean"][0] + iv["mean"][1], atol=0.15, rtol=0)
    width = iv["upper"] - iv["lower"]
    assert width[2].mean() > width[3].mean()  # the seen pair (0, 1) is pinned down by data


def test_unseen_atom_falls_back_to_prior(fitted) -> None:
    assert fitted.can_predict(["A", "D", "E", "nope"]) == [True, True, False, False]
    iv = fitted.posterior_intervals(_labels([[0], [E]]))
    width = iv["upper"] - iv["lower"]
    assert width[1].mean() > 5 * width[0].mean()
    assert iv["mean"][1].abs().mean() < 0.5 * width[1].mean()  # centred on no effect, relative to its spread


def test_predict_shifts_controls_and_leaves_control_alone(fitted) -> None:
    labels = _labels([[], [0], [2, 3]])
    ctrl, mask = _controls(3)
    out = fitted.predict(ctrl, mask, labels)
    assert out.shape == ctrl.shape and out.dtype == ctrl.dtype
    torch.testing.assert_close(out[0], ctrl[0])
    shift = out - ctrl
    torch.testing.assert_close(shift[1], shift[1, :1].expand_as(shift[1]))  # one mean shift per set
    torch.testing.assert_close(shift[2, 0], fitted.posterior_intervals(labels)["mean"][2])
    torch.testing.assert_close(fitted.predict(ctrl, mask, labels), out)  # deterministic


def test_sample_mode_draws_one_shift_per_set_reproducibly(fitted) -> None:
    labels = _labels([[0]] * 400 + [[]])
    ctrl, mask = _controls(401, m=2)
    fitted.prediction = "sample"
    try:
        torch.manual_seed(11)
        a = fitted.predict(ctrl, mask, labels)
        torch.manual_seed(11)
        b = fitted.predict(ctrl, mask, labels)
        torch.manual_seed(12)
        c = fitted.predict(ctrl, mask, labels)
    finally:
        fitted.prediction = "mean"
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    shifts = (a - ctrl)[:400, 0]
    torch.testing.assert_close(a[400], ctrl[400])
    iv = fitted.posterior_intervals(_labels([[0]]), level=0.9, replicate=True)
    inside = ((shifts >= iv["lower"]) & (shifts <= iv["upper"])).float().mean()
    assert 0.8 < inside < 0.98  # the draws follow the posterior predictive spread
    assert shifts.std(0).mean() > 0


def test_intervals_nest_by_level_and_replicate(fitted) -> None:
    labels = _labels([[1], [0, 1]])
    i50, i90 = fitted.posterior_intervals(labels, 0.5), fitted.posterior_intervals(labels, 0.9)
    assert (i90["lower"] <= i50["lower"] + 1e-6).all() and (i50["upper"] <= i90["upper"] + 1e-6).all()
    assert (i50["lower"] <= i50["mean"]).all() and (i50["mean"] <= i50["upper"]).all()
    wide = fitted.posterior_intervals(labels, 0.9, replicate=True)
    assert ((wide["upper"] - wide["lower"]) > (i90["upper"] - i90["lower"])).float().mean() > 0.9
    with pytest.raises(ValueError, match="level"):
        fitted.posterior_intervals(labels, 1.5)


def test_population_means_of_a_new_replicate_are_wider_than_a_seen_one(fitted, synthetic) -> None:
    _, truth = synthetic
    labels = _labels([[0], [2, 3]], batch=1)
    seen = fitted.population_mean_intervals(labels, 0.9, new_replicate=False)
    new = fitted.population_mean_intervals(labels, 0.9, new_replicate=True)
    assert (new["upper"] - new["lower"]).mean() > (seen["upper"] - seen["lower"]).mean()
    expected = torch.stack([truth.base + truth.shift(c) + truth.batch_shift[1] for c in [(0,), (2, 3)]]).float()
    inside = ((expected >= seen["lower"] - 0.05) & (expected <= seen["upper"] + 0.05)).float().mean()
    assert inside > 0.8
    with pytest.raises(ValueError, match=r"no training cells|outside the model.s 1 contexts"):
        fitted.population_mean_draws(ConditionLabels.make([[0]], context=[3]))


def test_diagnostics_report_elbo_trace(fitted) -> None:
    d = fitted.diagnostics
    assert d["method"] == "svi" and d["guide"] == "lowrank" and d["finite"]
    trace = torch.tensor(d["elbo_trace"])
    n = max(1, len(trace) // 10)
    assert trace[-n:].mean() < trace[:n].mean()
    assert d["n_populations"] == 28 and d["dim"] == 10 and d["n_factors"] == 1 and d["seed"] == 0


@pytest.mark.parametrize("n", [1, 499, 500, 501, 999, 1499, 3000])
def test_elbo_trace_is_thinned_to_at_most_500_points(n) -> None:
    """docs/bayes.md: the trace is "thinned to at most 500 points" (1,499 steps kept 750 before)."""
    from distgen_bayes.inference import svi_diagnostics

    losses = np.linspace(10.0, 1.0, n)
    d = svi_diagnostics(losses, "lowrank", 4)
    assert len(d["elbo_trace"]) <= 500 and d["elbo_trace"][0] == losses[0]
    assert d["elbo_trace"] == [float(v) for v in losses[:: d["elbo_trace_stride"]]]
    assert len(d["elbo_trace"]) >= min(n, 250)  # thinned, not emptied


def test_config_errors_name_the_key() -> None:
    info = _info()
    with pytest.raises(ValueError, match="priors: unknown key"):
        build_model({"name": "bayes_hier", "priors": {"effect_sclae": 1.0}}, info)
    with pytest.raises(ValueError, match=r"priors.effect_scale"):
        build_model({"name": "bayes_hier", "priors": {"effect_scale": -1.0}}, info)
    with pytest.raises(ConfigError, match="inference"):
        build_model({"name": "bayes_hier", "inference": "hmc"}, info)


def test_fit_warns_about_trainer_options(monkeypatch, synthetic) -> None:
    import distgen_bayes.model as mod

    def stop(*a, **k):
        raise RuntimeError("stop before inference")

    monkeypatch.setattr(mod, "summarise", stop)
    model = build_model({"name": "bayes_hier"}, synthetic[0].info)
    with pytest.warns(UserWarning, match="set_size"), pytest.raises(RuntimeError, match="stop"):
        model.fit(synthetic[0], set_size=8)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict(*_controls(1), _labels([[0]]))


def _info():
    from distgen.testing import tiny_info

    return tiny_info()
