"""Population-level spread metrics: detect collapsed between-replicate variation, and say when they cannot."""

import math

import numpy as np
import pytest
import torch

from distgen.evaluation.spread import (
    collapsed,
    pairwise_mmd2,
    population_mmd2,
    populations,
    replicate_coverage,
    split_halves,
    spread_ratio,
    spread_scores,
)
from distgen.kernels import kernels
from distgen.kernels.distances import mmd2
from distgen.kernels.rbf import RBFKernel
from distgen.types import Cells


def _replicates(n_rep, shift_scale, seed, n=40, d=3, shifts=None):
    g = torch.Generator().manual_seed(seed)
    if shifts is None:
        shifts = torch.randn(n_rep, 1, d, generator=g, dtype=torch.float64) * shift_scale
    return torch.randn(n_rep, n, d, generator=g, dtype=torch.float64) + shifts


def test_pairwise_matches_single_calls():
    a, b = _replicates(3, 1.0, 0), _replicates(2, 1.0, 1)
    k = RBFKernel(bandwidths=(1.0, 4.0))
    for unbiased in (False, True):
        d = pairwise_mmd2(a, b, k, unbiased=unbiased)
        for i in range(3):
            for j in range(2):
                one = mmd2(a[i : i + 1], b[j : j + 1], k, unbiased=unbiased, ref=b.reshape(1, -1, 3))[0].clamp_min(0)
                torch.testing.assert_close(d[i, j], one)


def test_collapsed_generator_is_caught_by_spread_and_coverage():
    real = _replicates(6, 2.0, 0)
    good = _replicates(6, 2.0, 1)  # same law of replicate shifts
    collapsed_pops = _replicates(6, 0.0, 2) + real.mean((0, 1))  # every population at the average
    k = RBFKernel()
    assert 0.6 < spread_ratio(good, real, k) < 1.6
    assert spread_ratio(collapsed_pops, real, k) < 0.2
    assert population_mmd2(collapsed_pops, real, k) > population_mmd2(good, real, k)
    assert replicate_coverage(real + 0.0, real, k) == 1.0
    assert replicate_coverage(collapsed_pops, real, k) < replicate_coverage(good, real, k) or replicate_coverage(good, real, k) == 1.0


@pytest.mark.parametrize("kernel", ["energy", "rbf"])
def test_spread_ratio_does_not_depend_on_population_sizes(kernel):
    """A generator drawing the real populations' own laws scores about 1 whether it writes more or fewer cells than the
    donors have; one law for every population (independent draws) scores about 0. The biased V-statistic read the
    first as 0.80 (small real donors looked further apart than large generated ones) and the second as 0.17."""
    k = kernels.build(kernel)
    ratios, flat = [], []
    for seed in range(4):
        shifts = 0.6 * torch.randn(5, 1, 4, generator=torch.Generator().manual_seed(100 + seed), dtype=torch.float64)
        real = _replicates(5, 1.0, seed, n=12, d=4, shifts=shifts)
        gen = _replicates(5, 1.0, 50 + seed, n=150, d=4, shifts=shifts)  # the same laws, 12x the cells
        ratios.append(float(spread_ratio(gen, real, k)))
        flat.append(float(spread_ratio(_replicates(5, 0.0, 70 + seed, n=150, d=4), real, k)))
    assert 0.88 < np.mean(ratios) < 1.12, ratios  # biased: 0.80 (energy), 0.83 (rbf)
    assert np.mean(flat) < 0.12, flat  # biased: 0.17, 0.15


def test_too_few_populations_are_refused_not_scored():
    real, gen = _replicates(3, 1.0, 0), _replicates(3, 1.0, 1)
    k = kernels.build("energy")
    for fn in (spread_ratio, population_mmd2):
        with pytest.raises(ValueError, match="at least 2 generated and 2 real"):
            fn(gen, real[:1], k)  # one donor: there is no between-donor spread (was: g / 1e-12)
        with pytest.raises(ValueError, match="at least 2 generated and 2 real"):
            fn(gen[:1], real, k)  # one generated population (was: a spread ratio of 0, "collapsed")
    with pytest.raises(ValueError, match="at least 1 generated and 2 real"):
        replicate_coverage(gen, real[:1], k)
    assert 0.0 <= float(replicate_coverage(gen[:1], real, k)) <= 1.0  # one generated population is a valid coverage


def test_identical_real_populations_give_nan_not_a_number():
    """Real populations that do not differ have no spread: 0/0 (and x/0) is NaN, and population_mmd2 has no bandwidth."""
    one = _replicates(1, 0.0, 0, n=30)
    real = one.expand(3, -1, -1).clone()
    k = kernels.build("energy")
    assert math.isnan(float(spread_ratio(real.clone(), real, k)))  # was 0 / 1e-12 = 0: "collapsed"
    assert math.isnan(float(spread_ratio(_replicates(3, 1.0, 1, n=30), real, k)))  # was ~1e12
    assert math.isnan(float(population_mmd2(_replicates(3, 1.0, 1, n=30), real, k)))


def test_a_population_of_one_cell_is_refused():
    real, gen = _replicates(3, 1.0, 0), _replicates(3, 1.0, 1)
    mask = torch.ones(real.shape[:2], dtype=torch.bool)
    mask[1, 1:] = False
    with pytest.raises(ValueError, match="fewer than 2 cells"):
        spread_ratio(gen, real, kernels.build("energy"), real_mask=mask)


def _cells(seed=0, n=40, donors=("d1", "d2", "d3"), scale=1.0, genes=5):
    g = torch.Generator().manual_seed(seed)
    xs, conds, bats = [], [], []
    for i, d in enumerate(donors):
        shift = scale * (i - 1.0)
        xs += [torch.randn(n, genes, generator=g) + 3.0 + shift, torch.randn(n, genes, generator=g) + shift]
        conds += ["stim"] * n + ["control"] * n
        bats += [d] * (2 * n)
    return Cells(torch.cat(xs), np.asarray(conds, dtype=object), tuple(f"g{i}" for i in range(genes)),
                 np.asarray(["T"] * len(conds), dtype=object), np.asarray(bats, dtype=object), "control")


def test_spread_scores_of_labelled_cells():
    truth, fresh = _cells(0), _cells(1)
    out = spread_scores(fresh, truth, {"control": truth.controls().relabelled(conditions=np.asarray(["stim"] * 120, dtype=object))})
    row = out["rows"]["stim @ T"]
    assert row["n_real"] == 3
    assert 0.6 < row["model"]["spread_ratio"] < 1.5  # fresh draws of the same donors
    assert row["model_collapsed"]["spread_ratio"] == 0.0  # one population copied per donor: no spread at all
    assert row["model_collapsed"]["replicate_coverage"] <= row["model"]["replicate_coverage"]
    assert 0.6 < row["split_half"]["spread_ratio"] < 1.5
    assert row["control"]["population_mmd2"] > row["model"]["population_mmd2"]  # unshifted controls sit elsewhere
    assert out["roles"] == {"model": "model", "control": "negative", "model_collapsed": "collapsed",
                            "control_collapsed": "collapsed", "split_half": "positive"}
    assert set(out["means"]["model"]) == {"spread_ratio", "population_mmd2", "replicate_coverage"}


def test_spread_scores_need_two_batches_and_ignore_row_order():
    one = _cells(0, donors=("d1",))
    assert spread_scores(one, one) is None
    truth, pred = _cells(0), _cells(1)
    perm = np.random.default_rng(0).permutation(len(truth.conditions))
    a = spread_scores(pred, truth)
    b = spread_scores(pred, truth.subset(perm))

    def flat(out):
        return {(w, m): v for w, r in out["rows"]["stim @ T"].items() if isinstance(r, dict) for m, v in r.items() if m != "note"}

    assert flat(a) == pytest.approx(flat(b), rel=1e-9)  # the same cells: only the order of summation differs


def test_split_halves_and_collapsed_keep_groups():
    truth = _cells(0, n=41)
    ha, hb = split_halves(truth)
    assert len(ha.conditions) == len(hb.conditions) == 3 * 20
    assert not set(ha.X[:, 0].tolist()) & set(hb.X[:, 0].tolist())  # disjoint halves
    flat = collapsed(truth)
    assert sorted(set(flat.batches.tolist())) == ["d1", "d2", "d3"]
    assert len(flat.conditions) == 3 * 3 * 41 and not flat.is_control.any()


def test_a_group_whose_batches_do_not_differ_measurably_says_so():
    """Donors drawn from one law: the permutation test does not reject "the batches do not differ", and the row says its
    spread ratios measure nothing (Kang's stimulated CD4 T and B cells at 3 donors), instead of a ratio of two noise levels."""
    truth = _cells(0, n=30, scale=0.0)
    out = spread_scores(_cells(1, n=30), truth)
    row = out["rows"]["stim @ T"]
    assert row["batch_test"]["p"] > 0.05 and "not distinguishable from noise" in row.get("note", ""), row
    assert out["batch_test"]["groups"] == 1 and out["batch_test"]["distinguishable"] == 0
    far = spread_scores(_cells(1), _cells(0, scale=3.0))
    assert "note" not in far["rows"]["stim @ T"] and far["batch_test"]["distinguishable"] == 1


def _null_groups(count, shift, seed, sizes=(15, 12, 18), genes=4):
    """``count`` groups of real batches of ``sizes`` cells; batch i's law shifted by ``shift * i`` (0: no between-batch spread)."""
    g = torch.Generator().manual_seed(seed)
    n = max(sizes)
    for _ in range(count):
        x = torch.randn(len(sizes), n, genes, generator=g, dtype=torch.float64)
        x += shift * torch.arange(len(sizes), dtype=torch.float64)[:, None, None]
        mask = torch.arange(n)[None, :] < torch.tensor(sizes)[:, None]
        yield x, mask


@pytest.mark.parametrize("kernel", ["energy", "rbf"])
def test_permutation_test_holds_its_level_when_batches_do_not_differ(kernel):
    """200 groups whose batches are drawn from one law: the p-values are about uniform (Kolmogorov-Smirnov), and the count
    rejected at 0.05 is inside the binomial(200, 0.05) central 99.9% range; uneven batch sizes, +1-corrected p."""
    from scipy import stats

    from distgen.evaluation.spread import SPREAD_PERMUTATIONS, batch_permutation_test

    k = kernels.build(kernel)
    ps = np.array([batch_permutation_test(x, m, k, seed=i)["p"] for i, (x, m) in enumerate(_null_groups(200, 0.0, 7))])
    assert ps.min() >= 1 / (SPREAD_PERMUTATIONS + 1) and ps.max() <= 1.0
    rejected = int((ps <= 0.05).sum())
    lo, hi = stats.binom.ppf([0.0005, 0.9995], 200, 0.05)
    assert lo <= rejected <= hi, (rejected, lo, hi)
    assert stats.kstest(ps, "uniform").pvalue > 1e-3, np.sort(ps)[::20]


def test_permutation_test_rejects_a_large_spread_and_measures_the_scored_statistic():
    """Batches 1.5 sd apart: every group rejects, at the smallest p the permutations allow (1/200). The statistic is the
    mean unbiased MMD^2 between the batches that spread_ratio divides by (the row's real_spread), to rounding; the same
    seed gives the same p, and the test refuses a single batch."""
    from distgen.evaluation.spread import SPREAD_PERMUTATIONS, _off_diag_mean, _ref, batch_permutation_test

    k = kernels.build("energy")
    for i, (x, m) in enumerate(_null_groups(20, 1.5, 3)):
        out = batch_permutation_test(x, m, k, seed=i)
        assert out["p"] == 1 / (SPREAD_PERMUTATIONS + 1)
        drr = pairwise_mmd2(x, x, k, m, m, *_ref(x, m), unbiased=True, clamp=False)
        assert out["statistic"] == pytest.approx(float(_off_diag_mean(drr)), rel=1e-9)
    x, m = next(_null_groups(1, 0.0, 5))
    assert batch_permutation_test(x, m, k, seed=4) == batch_permutation_test(x, m, k, seed=4)
    with pytest.raises(ValueError, match="at least 2 batches"):
        batch_permutation_test(x[:1], m[:1], k)


def test_permutation_test_caps_its_cells_by_equal_shares():
    """Over PERMUTATION_CELLS, each batch keeps an equal share (a small batch all of its cells, its spare share passed on)."""
    from distgen.evaluation.spread import _test_sizes, batch_permutation_test

    assert _test_sizes([5, 6], 100) == [5, 6]
    assert _test_sizes([10, 3000, 2000], 4000) == [10, 1995, 1995]
    assert sum(_test_sizes([7, 9, 400, 401], 100)) == 100
    x, m = next(_null_groups(1, 1.0, 2, sizes=(40, 30, 50)))
    out = batch_permutation_test(x, m, kernels.build("energy"), max_cells=60)
    assert out["cells"] == 60 and out["p"] <= 0.05


def test_a_spread_row_names_batches_the_split_half_leaves_out():
    """A batch of 2 or 3 cells is in the full-depth scores but not in the split-half (a half of 1 cell has no unbiased
    MMD^2): the row says so, naming it, where nothing was said before."""
    truth = _cells(0, n=30, donors=("d1", "d2", "d3", "d4"), scale=3.0)
    stim = np.flatnonzero((truth.conditions == "stim") & (truth.batches == "d4"))
    truth = truth.subset(np.setdiff1d(np.arange(len(truth.conditions)), stim[3:]))  # d4: 3 stimulated cells
    row = spread_scores(_cells(1, n=30), truth)["rows"]["stim @ T"]
    assert row["n_real"] == 4 and row["split_half"]["n_populations"] == 3
    assert "split-half leaves out 1 batch of fewer than 4 cells (d4)" in row.get("note", ""), row
    assert "split-half" not in spread_scores(_cells(1, n=30), _cells(0, n=30, scale=3.0))["rows"]["stim @ T"].get("note", "")


def _ragged(seed):
    """Two contexts, four batches (one with an int label) of uneven sizes, some of 0 or 1 cell, rows shuffled."""
    rng = np.random.default_rng(seed)
    xs, conds, ctxs, bats = [], [], [], []
    for ctx in ("T", "B"):
        for cond in ("control", "s1", "s2", "s3"):
            for j, bat in enumerate(("d1", "d2", "d3", "d4")):
                n = 1 if (cond, bat) == ("s3", "d1") else 0 if (cond, ctx, bat) == ("s2", "B", "d2") else int(rng.integers(2, 9))
                xs.append(rng.normal(size=(n, 6)) + 0.7 * j)
                conds += [cond] * n
                ctxs += [ctx] * n
                bats += [bat] * n
    perm = rng.permutation(len(conds))
    x = torch.tensor(np.concatenate(xs)[perm], dtype=torch.float32)
    return Cells(x, np.asarray(conds, dtype=object)[perm], tuple(f"g{i}" for i in range(6)), np.asarray(ctxs, dtype=object)[perm],
                 np.asarray(bats, dtype=object)[perm], "control")


def _scanning_spread_scores(pred, truth, references, cap):
    """The spread scores as first written: every population found by scanning the whole table (``populations``)."""
    from distgen.evaluation.spread import (
        PERMUTATION_STREAM,
        SPREAD_ALPHA,
        _off_diag_mean,
        _ref,
        batch_permutation_test,
        spread_row,
    )
    from distgen.seeds import content_keys, content_subset, label_seed

    pert = np.flatnonzero(~truth.is_control)
    groups = sorted(set(zip(truth.conditions[pert].tolist(), truth.contexts[pert].tolist(), strict=True)))
    groups = [(c, x) for c, x in groups if len(populations(truth, c, x, cap=2)[0]) >= 2]
    a, b = [], []
    for cond, ctx, batch in sorted(set(zip(truth.conditions[pert].tolist(), truth.contexts[pert].tolist(),
                                           truth.batches[pert].tolist(), strict=True))):
        rows = pert[(truth.conditions[pert] == cond) & (truth.contexts[pert] == ctx) & (truth.batches[pert] == batch)]
        order = rows[content_subset(content_keys(truth.X[torch.from_numpy(rows)], truth.genes), len(rows), 0).numpy()]
        h = len(rows) // 2
        a.append(order[:h])
        b.append(order[h : 2 * h])
    half_a, half_b = truth.subset(np.concatenate(a)), truth.subset(np.concatenate(b))
    sides, kernel, rows_out = {"model": pred, **references}, kernels.build("energy"), {}
    for cond, ctx in groups:
        _, rx, rm = populations(truth, cond, ctx, cap)
        row = {"n_real": int(rx.shape[0])}
        drr = pairwise_mmd2(rx, rx, kernel, rm, rm, *_ref(rx, rm), unbiased=True, clamp=False)
        for who, cells in sides.items():
            row[who] = spread_row(populations(cells, cond, ctx, cap)[1:], (rx, rm), kernel, drr)
        for who, cells in sides.items():
            copies = len(set(cells.batches[(cells.conditions == cond) & (cells.contexts == ctx)].tolist()))
            row[f"{who}_collapsed"] = spread_row(populations(cells, cond, ctx, cap, pool=True)[1:], (rx, rm), kernel, drr, copies=copies)
        row["split_half"] = spread_row(populations(half_a, cond, ctx, cap)[1:], populations(half_b, cond, ctx, cap)[1:], kernel)
        row["real_spread"] = float(_off_diag_mean(drr))
        row["batch_test"] = batch_permutation_test(rx, rm, kernel, seed=label_seed(0, (PERMUTATION_STREAM, f"{cond} @ {ctx}")),
                                                   genes=truth.genes)
        short = [b for b in set(truth.batches[pert][(truth.conditions[pert] == cond) & (truth.contexts[pert] == ctx)].tolist())
                 if 2 <= int(((truth.conditions[pert] == cond) & (truth.contexts[pert] == ctx) & (truth.batches[pert] == b)).sum()) < 4]
        if row["batch_test"]["p"] > SPREAD_ALPHA or short:
            row["note"] = "not distinguishable or short batches"
        rows_out[f"{cond} @ {ctx}"] = row
    return rows_out


@pytest.mark.parametrize("cap", [500, 3])
def test_rows_grouped_once_give_the_values_of_scanning_the_table(cap):
    """spread_scores groups each table's rows once (_Groups) instead of scanning it per group and side, and gathers only a
    group's rows of an IndexedCells reference (not its whole table): every value is the one the scanning implementation
    gave, bit for bit (uneven batches, 1-cell and missing batches, two contexts)."""
    from distgen.types.cells import IndexedCells

    truth, pred, ref, other = _ragged(0), _ragged(1), _ragged(2), _ragged(3)
    back = np.arange(len(other))[::-1].copy()  # a reference of rows of another table (the control baseline's IndexedCells)
    indexed = IndexedCells(other.X, back, other.conditions[back], other.genes, other.contexts[back], other.batches[back], "control")
    new = spread_scores(pred, truth, {"r": ref, "i": indexed}, cap=cap)["rows"]
    old = _scanning_spread_scores(pred, truth, {"r": ref, "i": indexed}, cap)
    assert list(new) == list(old) and len(new) >= 4
    for label, row in old.items():
        for who, val in row.items():
            if who == "note":
                assert ("note" in new[label]) == ("note" in row)
            elif isinstance(val, dict):
                assert [repr(v) for v in new[label][who].items()] == [repr(v) for v in val.items()], (label, who)
            else:
                assert repr(new[label][who]) == repr(val)


def test_spread_work_counts_every_kernel_block_computed(monkeypatch):
    """spread_work, the estimate spread='auto' decides by, is the work spread_scores then does: each pairwise_mmd2 call's
    populations x padded sizes x genes, recorded as it runs (uneven batches, a cap below some batches)."""
    import distgen.evaluation.spread as sp

    truth, pred, ref = _ragged(0), _ragged(1), _ragged(2)
    done = []
    real = sp.pairwise_mmd2

    def counting(a, b, *args, **kw):
        done.append(sp._pair_work(a.shape[0], a.shape[1], b.shape[0], b.shape[1], a.shape[2]))
        return real(a, b, *args, **kw)

    monkeypatch.setattr(sp, "pairwise_mmd2", counting)
    tested = sp.batch_permutation_test

    def counting_test(real, mask, *args, **kw):  # the permutation test on the populations it is given, as scored
        done.append(sp._permutation_work([int(v) for v in mask.sum(1)], real.shape[2]))
        return tested(real, mask, *args, **kw)

    monkeypatch.setattr(sp, "batch_permutation_test", counting_test)
    for cap in (500, 5):
        done.clear()
        sp.spread_scores(pred, truth, {"r": ref}, cap=cap)
        est = sp.spread_work(truth, {"model": pred, "r": ref}, cap=cap)
        assert est["work"] == sum(done) and est["groups"] == 6


def test_auto_scores_at_its_budget_and_skips_one_unit_over():
    """``auto`` scores a pair whose ``spread_work`` equals the budget ("within") and skips it, with the note, one unit over."""
    from distgen.evaluation.spread import scored_spread, spread_work

    truth, pred = _ragged(0), _ragged(1)
    w = spread_work(truth, {"model": pred})["work"]
    out, note = scored_spread(pred, truth, mode="auto", budget=w)
    assert out is not None and note is None
    out, note = scored_spread(pred, truth, mode="auto", budget=w - 1)
    assert out is None and note.startswith("spread scores not computed") and f"{w:.3g}" in note
    assert scored_spread(pred, truth, mode="on", budget=0)[0] is not None


def _loop_mmd2(x, y, k):
    """Unbiased MMD^2 by a plain double loop over cells (numpy), independent of distgen's kernels and Gram sums."""
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    return xx + yy - 2 * sum(k(a, b) for a in x for b in y) / (n * m)


def _padded(pops):
    n = max(len(p) for p in pops)
    x = torch.zeros(len(pops), n, pops[0].shape[1], dtype=torch.float64)
    mask = torch.zeros(len(pops), n, dtype=torch.bool)
    for i, p in enumerate(pops):
        x[i, : len(p)], mask[i, : len(p)] = torch.from_numpy(p), True
    return x, mask


@pytest.mark.parametrize("kernel", ["energy", "rbf"])
def test_the_three_metrics_match_a_double_loop_on_ragged_populations(kernel):
    """Second-engineer check: every MMD^2 (padded, ragged populations) and the three metrics built from them agree with a
    numpy double loop. The energy kernel is -|x - y|; the RBF is scDFM's mean over sigma^2 = {0.5, 1, 2, 4} x the median
    squared distance among the real cells pooled (off-diagonal pairs; torch's lower median); the population kernel's s^2 is
    the lower median of the off-diagonal real-real MMD^2s clamped at 0."""
    rng = np.random.default_rng(3)
    real = [rng.normal(size=(n, 3)) + 0.8 * i for i, n in enumerate((5, 8, 3, 6))]
    gen = [rng.normal(size=(n, 3)) + 0.5 * i for i, n in enumerate((4, 7, 2))]
    if kernel == "energy":
        def k(a, b):
            return -np.sqrt(((a - b) ** 2).sum())
    else:
        pooled = np.concatenate(real)
        d2 = np.sort([((a - b) ** 2).sum() for i, a in enumerate(pooled) for j, b in enumerate(pooled) if i != j])
        med = d2[(len(d2) - 1) // 2]

        def k(a, b):
            return np.mean([np.exp(-((a - b) ** 2).sum() / (2 * s * med)) for s in (0.5, 1, 2, 4)])
    (gx, gm), (rx, rm), kern = _padded(gen), _padded(real), kernels.build(kernel)
    d = {name: np.array([[_loop_mmd2(a, b, k) for b in bs] for a in as_]) for name, as_, bs in
         (("gg", gen, gen), ("rr", real, real), ("gr", gen, real))}
    got = pairwise_mmd2(gx, rx, kern, gm, rm, rx.reshape(-1, 3), rm.reshape(-1), unbiased=True, clamp=False)
    assert np.allclose(got.numpy(), d["gr"], rtol=1e-10, atol=1e-12)

    def off(m):
        return m[~np.eye(len(m), dtype=bool)]

    c = {name: np.maximum(v, 0) for name, v in d.items()}
    ratio = np.sqrt(max(off(d["gg"]).mean(), 0) / off(d["rr"]).mean())
    s2 = np.sort(off(c["rr"]))[(len(off(c["rr"])) - 1) // 2]
    kk = {name: np.exp(-v / (2 * s2)) for name, v in c.items()}
    pop = off(kk["gg"]).mean() + off(kk["rr"]).mean() - 2 * kk["gr"].mean()
    radius = [min(c["rr"][i, j] for j in range(len(real)) if j != i) for i in range(len(real))]
    cover = np.mean([c["gr"][:, j].min() <= radius[j] for j in range(len(real))])
    assert float(spread_ratio(gx, rx, kern, gm, rm)) == pytest.approx(ratio, rel=1e-9, abs=1e-12)
    assert float(population_mmd2(gx, rx, kern, gm, rm)) == pytest.approx(pop, rel=1e-9)
    assert float(replicate_coverage(gx, rx, kern, gm, rm)) == cover


def test_the_permutation_test_takes_any_integer_seed_and_a_group_its_own_stream():
    """A negative evaluation seed is a seed (numpy's generators refuse negative entropy); a group's p is the same whether
    or not another group is scored beside it."""
    truth = _cells(0, n=20, scale=0.3)
    assert 0 < spread_scores(_cells(1, n=20), truth, seed=-3)["rows"]["stim @ T"]["batch_test"]["p"] <= 1
    other = truth.relabelled(conditions=np.where(truth.conditions == "stim", "stim2", truth.conditions).astype(object))
    both = Cells.concat([truth, other.subset(np.flatnonzero(other.conditions == "stim2"))])
    assert (spread_scores(_cells(1, n=20), both)["rows"]["stim @ T"]["batch_test"]
            == spread_scores(_cells(1, n=20), truth)["rows"]["stim @ T"]["batch_test"])


def test_the_permutation_test_gives_one_p_whatever_the_row_order_of_the_truth():
    """The same cells in another row order are the same group: its p is the same (before, the seeded permutations were
    applied to the cells in row order, so a shuffled file gave p 0.005, 0.01 or 0.02 for one group, and the note at 0.05
    could come and go with the row order). The spread scores themselves were already order-free."""
    truth, pred = _cells(0, n=30, scale=0.3), _cells(1, n=30)
    first = spread_scores(pred, truth)["rows"]["stim @ T"]["batch_test"]
    for s in range(1, 4):
        perm = np.random.default_rng(s).permutation(len(truth.conditions))
        again = spread_scores(pred, truth.subset(perm))["rows"]["stim @ T"]["batch_test"]
        assert again["p"] == first["p"] and again["cells"] == first["cells"], (s, again, first)
        assert again["statistic"] == pytest.approx(first["statistic"], rel=1e-12)


def test_the_permutation_tests_subset_over_its_cap_does_not_follow_the_row_order():
    """Over max_cells the test keeps a share of each batch: a seeded pseudo-random share, not the first cells in row order.
    Batches from one law whose rows are sorted by a gene (a file sorted by expression or cell type) and of uneven sizes:
    the first 10 cells of a sorted batch of 200 are more extreme than those of a sorted batch of 20, so the first-in-row-order
    share rejected "the batches do not differ" in all 20 groups (0 of the same cells unsorted); now about 5% of them, and
    the p of sorted and unsorted rows is the same."""
    from distgen.evaluation.spread import batch_permutation_test

    k = kernels.build("energy")
    rejected = 0
    for i, (x, m) in enumerate(_null_groups(20, 0.0, 11, sizes=(200, 20, 100), genes=2)):
        ordered = x.clone()
        for b, n in enumerate(m.sum(1).tolist()):
            ordered[b, :n] = x[b, :n][x[b, :n, 0].argsort()]
        p = batch_permutation_test(ordered, m, k, seed=i, max_cells=30)["p"]
        assert p == batch_permutation_test(x, m, k, seed=i, max_cells=30)["p"]
        rejected += p <= 0.05
    assert rejected <= 5, rejected  # binomial(20, 0.05): P(> 5) ~ 3e-4


def test_the_permutation_tests_cap_keeps_two_cells_of_every_batch():
    """Over max_cells with more than max_cells / 2 batches, the equal share fell below 2 cells: batches of 1 cell have no
    unbiased within-batch term, the statistic was NaN, no permuted value reached it and p was 1/200, "the real batches
    differ" said of batches drawn from one law. Now every batch keeps at least 2 cells (the cap yields to that)."""
    from distgen.evaluation.spread import _test_sizes, batch_permutation_test

    assert _test_sizes([2] * 2500, 4000) == [2] * 2500 and _test_sizes([3] * 5000, 4000) == [2] * 5000
    assert _test_sizes([2, 50, 50], 5) == [2, 2, 2]
    x, m = next(_null_groups(1, 0.0, 3, sizes=(3, 3, 3, 3)))
    out = batch_permutation_test(x, m, kernels.build("energy"), max_cells=6)
    assert out["cells"] == 8 and math.isfinite(out["statistic"]) and out["p"] > 1 / 200, out
