"""cell-eval2 metric machinery against its definitions, without cell-eval2 (parity: test_celleval2_parity)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.metrics.celleval2_expr import across_perturbation_budget, bulk_lognorm, jackknife_noise, match_rank
from distgen.evaluation.profiles import PROFILES, resolve_profile, run_profile
from distgen.evaluation.vcc2026 import SCORED, Policy, baseline_data, degenerate, require_counts, score, score_one, split_halves


def _counts_pair(seed: int = 0, n_perts: int = 6, g: int = 40, n: int = 30) -> EvalData:
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(g, generator=gen) * 5 + 0.2
    genes = tuple(f"G{i}" for i in range(g - n_perts)) + tuple(f"P{p}" for p in range(n_perts))

    def pop(noise: float) -> Population:
        ctrl = torch.poisson(base.expand(60, g), generator=gen)
        cells, codes = [], []
        for p in range(n_perts):
            rate = base.clone()
            rate[p * 3 : p * 3 + 6] *= 4.0
            rate[g - n_perts + p] *= 0.1  # the perturbation's own gene is knocked down
            cells.append(torch.poisson((rate * (1 + noise * torch.rand(g, generator=gen))).expand(n, g), generator=gen))
            codes += [p] * n
        return Population.from_codes(torch.cat([*cells, ctrl]), torch.tensor(codes + [-1] * 60), n_perts)

    data = EvalData(real=pop(0.0), pred=pop(0.5), perts=tuple(f"P{p}" for p in range(n_perts)),
                    targets=tuple((f"P{p}",) for p in range(n_perts)), genes=genes)
    data.cache["scale"] = "counts"
    return data


def test_jackknife_matches_the_leave_one_out_definition():
    x = torch.poisson(torch.rand(9, 7, generator=torch.Generator().manual_seed(1)) * 6 + 0.5).double()
    loo = torch.stack([bulk_lognorm(torch.cat([x[:i], x[i + 1 :]]).sum(0, keepdim=True), 5e4)[0] for i in range(9)])
    n = x.shape[0]
    want = (n - 1) / n * float(((loo - loo.mean(0)) ** 2).sum())
    assert math.isclose(jackknife_noise(x, 5e4), want, rel_tol=1e-10)
    assert jackknife_noise(x[:1], 5e4) == 0.0


def test_budget_is_the_weighted_centred_sum_of_squares_without_own_genes():
    gen = torch.Generator().manual_seed(2)
    mu, w = torch.rand(5, 4, generator=gen, dtype=torch.float64), torch.rand(5, generator=gen, dtype=torch.float64)
    cols = torch.tensor([1, -1, -1, -1, -1])
    total = 0.0
    for g in range(4):
        keep = [p for p in range(5) if not (g == 1 and p == 0)]
        wk, v = w[keep], mu[keep, g]
        total += float((wk * (v - (wk * v).sum() / wk.sum()) ** 2).sum())
    assert math.isclose(across_perturbation_budget(mu, cols, w), total, rel_tol=1e-10)


def test_midrank_and_position_tie_rules():
    row = torch.tensor([0.5, 0.2, 0.5, 0.5, 0.9], dtype=torch.float64)
    assert match_rank(row, 0, "midrank") == 1 + (3 - 1) / 2
    assert match_rank(row, 1, "midrank") == 0
    assert match_rank(row, 4, "position") == 4


def test_vcc2026_profile_runs_and_gates_with_reasons():
    data = _counts_pair()
    table = run_profile(data, "vcc2026")
    assert set(table.values) == set(resolve_profile("vcc2026").columns)
    assert all(0.0 <= v <= 1.0 for v in table.values["pds_cosine"])
    for name, reasons in table.reasons.items():
        for p, v in zip(table.perts, table.values[name]):
            assert not math.isnan(v) or p in reasons, (name, p)


def test_counts_profiles_refuse_log_data_with_the_fix():
    data = _counts_pair()
    logged = EvalData(real=Population(torch.log1p(data.real.X), data.real.offsets, torch.log1p(data.real.control)),
                      pred=Population(torch.log1p(data.pred.X), data.pred.offsets, torch.log1p(data.pred.control)),
                      perts=data.perts, targets=data.targets, genes=data.genes)
    with pytest.raises(ValueError, match="--counts"):
        run_profile(logged, "vcc2026")
    with pytest.raises(ValueError, match="--counts"):
        require_counts(logged)
    with pytest.raises(ValueError, match="raw counts"):
        run_profile(data, "cell-eval-0.8.2")


def test_every_profile_names_registered_metrics():
    from distgen.evaluation.metrics import metrics

    for prof in PROFILES.values():
        for col, name in prof.columns.items():
            assert metrics.get(name) is not None, (prof.name, col)
    assert len(resolve_profile("default").columns) == 54
    with pytest.raises(ValueError, match="unknown metric profile"):
        resolve_profile("nope")


def test_split_halves_are_disjoint_floor_halves_and_seeded():
    data = _counts_pair()
    a, b = split_halves(data, 11), split_halves(data, 11)
    assert torch.equal(a.real.X, b.real.X) and torch.equal(a.pred.X, b.pred.X)
    assert a.real.control.shape[0] == a.pred.control.shape[0] == 30
    assert (a.real.counts == data.real.counts // 2).all()
    # disjoint: the two halves' totals add up to at most the whole group
    whole = data.real.cells(0).sum(0)
    assert bool((a.real.cells(0).sum(0) + a.pred.cells(0).sum(0) <= whole).all())
    assert not torch.equal(split_halves(data, 12).real.X, a.real.X)


def test_baseline_is_the_mean_response_on_control_cells():
    data = _counts_pair()
    base = baseline_data(data, seed=0)
    assert torch.equal(base.pred.counts, data.real.counts) and torch.equal(base.pred.control, data.real.control)
    # every perturbation is emitted from the same mean profile: over all emitted cells the mean is that
    # profile (the mean over perturbations of the real means) up to resampling noise
    profile = data.real.means().mean(0)
    emitted = base.pred.X.double().mean(0)
    assert float((emitted - profile).abs().sum() / profile.abs().sum()) < 0.1


def test_score_policies_and_degenerate_scales_are_reported_not_raised():
    hib = SCORED["pds_cosine"]
    assert score_one(0.8, 0.5, Policy("higher", 0.8, metric_min=0.0)) == pytest.approx(1.0)
    assert score_one(0.5, 0.5, Policy("higher", 0.8, metric_min=0.0)) == 0.0
    assert score_one(0.2, 0.5, Policy("higher", 0.8, metric_min=0.0)) == pytest.approx(-1.0)  # unfloored
    assert score_one(math.nan, 0.5, Policy("higher", 0.8, metric_min=0.0)) == pytest.approx(-0.5 / 0.3)
    norm = SCORED["expr_mse_unbiased_capped_norm"]
    capped = Policy("lower", 0.2, norm.penalty, norm.clamp_low, norm.clamp_high)
    assert score_one(2.0, 1.0, capped) == 0.0 and score_one(0.1, 1.0, capped) == 1.0
    assert degenerate(0.9, Policy("higher", 0.8)) is not None and degenerate(0.5, hib) is None
    user = dict.fromkeys(SCORED, 0.6)
    base = dict.fromkeys(SCORED, 0.5)
    rep = dict.fromkeys(SCORED, 0.9)
    for lower in ("expr_mse_unbiased_capped_norm", "de_wilcoxon_lfc_nmae"):
        user[lower], base[lower], rep[lower] = 0.6, 1.0, 0.2
    rep["de_wilcoxon_sig_jaccard"] = 0.4  # the baseline beats the replicate: no scale
    out = score(user, base, rep)
    assert "de_wilcoxon_sig_jaccard" in out.reasons and "de_wilcoxon_sig_jaccard" not in out.from_replicate
    assert out.avg_score == pytest.approx(np.mean(list(out.from_replicate.values())))
    assert len(out.rows()) == len(SCORED) + 1


def test_a_scale_within_rounding_of_zero_is_degenerate_not_amplified():
    # 7 perturbations' pds_cosine: multiples of 1/12 averaged; 11/14 summed in two orders differs in the last bit
    vals = [1.0, 1.0, 1.0, 1.0, 1.0, 1 / 2, 0.0]
    b, r = sum(vals) / 7, sum(vals[::-1]) / 7
    r = r if r != b else math.nextafter(b, 2.0)  # whatever this platform's summation does, a one-ulp gap
    assert 0.0 < r - b < 1e-15
    hib = SCORED["pds_cosine"]
    assert degenerate(b, Policy(hib.direction, r, metric_min=0.0)) is not None
    user = dict.fromkeys(SCORED, 0.7)
    base = dict.fromkeys(SCORED, 0.5)
    rep = dict.fromkeys(SCORED, 0.9)
    for lower in ("expr_mse_unbiased_capped_norm", "de_wilcoxon_lfc_nmae"):
        user[lower], base[lower], rep[lower] = 0.6, 1.0, 0.2
    user["pds_cosine"], base["pds_cosine"], rep["pds_cosine"] = 13 / 14, b, r
    out = score(user, base, rep)
    assert "pds_cosine" not in out.from_replicate and "rounding" in out.reasons["pds_cosine"]
    # the other five: 0.7 from 0.5 toward 0.9 is half way; 0.6 from 1.0 toward 0.2 is half way
    assert out.avg_score == pytest.approx(0.5)
    # a small but real gap is still a scale: (u - b) / (r - b) exactly
    small = Policy("higher", 0.5 + 1e-9, metric_min=0.0)
    assert degenerate(0.5, small) is None
    assert score_one(0.5 + 5e-10, 0.5, small) == pytest.approx(0.5, rel=1e-6)
    # and a lower-is-better baseline tiny in absolute terms is no rounding artefact (anchor 0: the gap is b itself)
    assert degenerate(1e-300, Policy("lower", 0.0)) is None


def test_directional_lfc_spearman_gates_on_its_own_direction():
    # cell-eval2's RealGate(rank_corr, lfc_direction): the pos/neg Spearman needs 10 reference-significant genes
    # of ITS direction; here 14 lowly expressed genes go up (enough overall and up) and 3 go down (too few down);
    # the other genes are high and barely move with the library size
    gen = torch.Generator().manual_seed(5)
    g, n_perts, n = 40, 2, 80
    base = torch.rand(g, generator=gen) * 4 + 50.0
    base[:17] = 0.5

    def pop(jitter: float) -> Population:
        xs, codes = [torch.poisson(base.expand(120, g), generator=gen)], [-1] * 120
        for p in range(n_perts):
            rate = base.clone()
            rate[:14] *= 4.0
            rate[14:17] *= 0.05
            xs.append(torch.poisson((rate * (1 + jitter * torch.rand(g, generator=gen))).expand(n, g), generator=gen))
            codes += [p] * n
        return Population.from_codes(torch.cat(xs), torch.tensor(codes), n_perts)

    data = EvalData(real=pop(0.0), pred=pop(0.8), perts=("A", "B"), targets=(("A",), ("B",)),
                    genes=tuple(f"G{i}" for i in range(g)))
    data.cache["scale"] = "counts"
    table = run_profile(data, "celleval2")
    from distgen.evaluation.metrics.celleval2_de import prepared_de
    from distgen.evaluation.metrics.celleval2_settings import V2

    prep = prepared_de(data, V2)  # the premise: >= 10 significant up, 1..9 significant down, per perturbation
    up, down = (prep.sig_real & (prep.real.lfc > 0)).sum(-1), (prep.sig_real & (prep.real.lfc < 0)).sum(-1)
    assert bool((up >= 10).all()) and bool(((down >= 1) & (down < 10)).all())
    assert all(math.isfinite(v) for v in table.values["de_wilcoxon_lfc_spearman_pos"])
    assert all(math.isfinite(v) for v in table.values["de_wilcoxon_lfc_spearman"])
    assert all(math.isnan(v) for v in table.values["de_wilcoxon_lfc_spearman_neg"])
    assert "fewer than 10 neg-direction reference-significant genes" in table.reasons["de_wilcoxon_lfc_spearman_neg"]["A"]
