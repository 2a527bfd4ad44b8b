"""The evaluation's lean paths give the very values of the whole-table paths they replace (bit for bit).

The ceiling's halves are gathered from ``[control; X]`` without stacking it, a baseline's ``EvalData`` shares the
truth's grouped cells instead of grouping them again, and the figures pick their cells before stacking or widening
them: each is compared here with the copy-everything construction it replaced, at a size where any slip shows.
"""

import math

import numpy as np
import pytest
import torch

from distgen.evaluation import ranksums
from distgen.evaluation.calibration import ceiling_data, reference_data, shared_control_data
from distgen.evaluation.ceiling import half_split, split_parts
from distgen.evaluation.evaldata import Population
from distgen.evaluation.io import eval_data
from distgen.evaluation.report import pick_rows
from distgen.evaluation.suite import run_metrics
from distgen.pipeline.evaluate import load_pair
from distgen.seeds import content_keys, content_order, content_subset
from distgen.types import Cells

from .synth import CONTROL, make_pair

METRICS = ["mse", "pearson_delta", "overlap_at_N", "discrimination_score_l1", "mmd"]


@pytest.fixture(scope="module")
def data():
    real, pred = make_pair(seed=5, n_genes=40, n_ctrl=50, n_cells=14, combos=True)
    d, _ = load_pair(pred, real, "target", CONTROL)
    return d


def _same_pop(a: Population, b: Population) -> None:
    for name in ("X", "offsets", "control"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape and x.dtype == y.dtype and torch.equal(x, y), name


def _same_values(t1, t2) -> None:
    assert t1.perts == t2.perts
    for m in t1.values:
        for u, v in zip(t1.values[m], t2.values[m], strict=True):
            assert (math.isnan(u) and math.isnan(v)) or u == v, m


@pytest.mark.parametrize("seed", [0, 7])
def test_the_ceiling_halves_are_those_of_the_stacked_table(data, seed):
    pop = data.real
    X = torch.cat([pop.control, pop.X])  # what ceiling_data stacked before
    codes = torch.cat([torch.full((pop.control.shape[0],), -1, dtype=torch.long), pop.codes()])
    labels = {-1: "\x00control", **dict(enumerate(data.perts))}
    a, b = half_split(codes, seed, labels, content_order(X, data.genes))
    data.cache.pop("content_order/real", None)
    new = ceiling_data(data, seed)
    assert torch.equal(data.cache["content_order/real"], content_order(X, data.genes))
    _same_pop(new.real, Population.from_codes(X[a], codes[a], data.n_perts))
    _same_pop(new.pred, Population.from_codes(X[b], codes[b], data.n_perts))


@pytest.mark.parametrize("parts", [2, 4])
def test_the_extrapolated_replicate_sides_are_those_of_the_stacked_tables(data, parts):
    pop, n_ctrl = data.real, data.real.control.shape[0]
    codes = pop.codes()
    p0, p1 = split_parts(codes, 3, parts, dict(enumerate(data.perts)), content_order(pop.X, data.genes))[:2]
    new = shared_control_data(data, 3, parts)
    for got, rows in ((new.real, p0), (new.pred, p1)):
        old = Population.from_codes(torch.cat([pop.control, pop.X[rows]]),
                                    torch.cat([torch.full((n_ctrl,), -1, dtype=torch.long), codes[rows]]), data.n_perts)
        _same_pop(got, old)


def test_a_shuffled_split_takes_the_general_path_with_the_same_rows(data):
    from distgen.evaluation.calibration import _gather

    pop = data.real
    X = torch.cat([pop.control, pop.X])
    codes = torch.cat([torch.full((pop.control.shape[0],), -1, dtype=torch.long), pop.codes()])
    rows = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(0))[: X.shape[0] // 2]
    _same_pop(_gather(pop, rows, codes[rows], data.n_perts), Population.from_codes(X[rows], codes[rows], data.n_perts))


def test_a_baseline_shares_the_truths_grouped_cells_and_scores_the_same(data):
    rng = np.random.default_rng(0)
    real = Cells(torch.cat([data.real.control, data.real.X]),
                 np.array([CONTROL] * data.real.control.shape[0] + [data.perts[int(p)] for p in data.real.codes()], dtype=object),
                 data.genes, control=CONTROL)
    perm = rng.permutation(len(real))  # a baseline's cells in another order than the truth's
    ref = Cells(real.X[torch.from_numpy(perm)] * 0.9, real.conditions[perm], real.genes, control=CONTROL)
    truth = eval_data(real, real)
    shared = reference_data(truth, ref, real)
    whole = eval_data(ref, real, "pred")  # the truth grouped again, as before
    assert shared.real is truth.real
    _same_pop(shared.pred, whole.pred)
    _same_pop(truth.real, whole.real)
    _same_values(run_metrics(shared, METRICS), run_metrics(whole, METRICS))


def test_eval_data_refuses_the_grouped_cells_of_another_truth(data):
    real = Cells(torch.cat([data.real.control, data.real.X[:-1]]),
                 np.array([CONTROL] * data.real.control.shape[0] + [data.perts[int(p)] for p in data.real.codes()[:-1]], dtype=object),
                 data.genes, control=CONTROL)
    with pytest.raises(ValueError, match="real= holds"):
        eval_data(real, real, real=data.real)


@pytest.mark.parametrize("sizes", [(30,), (7, 11, 5), (40, 0, 9)])
@pytest.mark.parametrize("cap", [5, 12, 100])
def test_pick_rows_are_the_rows_of_the_stacked_blocks(sizes, cap):
    gen = torch.Generator().manual_seed(sum(sizes))
    blocks = [torch.randn(n, 3, generator=gen) for n in sizes]
    stacked = torch.cat(blocks)
    genes = ("a", "b", "c")
    want = stacked[content_subset(content_keys(stacked, genes), cap)]  # the rows chosen by value, in that order
    assert torch.equal(pick_rows(blocks, cap, genes), want)


def test_the_report_pca_takes_the_rows_it_took_from_the_stacked_float64_table(data):
    from distgen.report.cells import RealPCA, _rows

    x = torch.cat([data.real.X, data.real.control]).to(torch.float64)
    x = x[_rows(torch.cat([data.real.X, data.real.control]), data.genes, 100, 2)]
    assert torch.equal(RealPCA([data], max_cells=100, seed=2).mean, x.mean(0))


RANK_BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not ranksums.available(), reason="numba is not installed"))]


@pytest.mark.parametrize("backend", RANK_BACKENDS)
@pytest.mark.parametrize("block", [1, 40, 150])
@pytest.mark.parametrize("seed", range(3))
def test_rank_sums_by_blocks_of_perturbations_are_those_of_the_whole_table(monkeypatch, seed, block, backend):
    """Blocks of a few perturbations (one at least; empty groups among them) give the whole table's rank and tie sums,
    and both the torch path's, bit for bit."""
    from distgen.evaluation.de import pooled_rank_sums

    rng = np.random.default_rng(seed)
    p, g = 9, 7
    sizes = [int(rng.integers(0, 12)) if i not in (0, 4) else 0 for i in range(p)]
    codes = np.concatenate([np.full(int(rng.integers(5, 40)), -1), *[np.full(n, i) for i, n in enumerate(sizes)]])
    x = rng.poisson(rng.uniform(0.1, 3, g), (len(codes), g)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] *= -1
    pop = Population.from_codes(torch.from_numpy(x), torch.from_numpy(codes), p)
    whole = ranksums.rank_sums(pop, backend=backend)
    calls = []
    real_by_groups = ranksums.by_groups
    monkeypatch.setattr(ranksums, "by_groups", lambda *a: calls.append(1) or real_by_groups(*a, block=block))
    got = ranksums.rank_sums(pop, backend=backend)
    assert calls and whole is not None and got is not None
    assert torch.equal(whole[0], got[0]) and torch.equal(whole[1], got[1])
    want = pooled_rank_sums(pop)
    assert torch.equal(want[0], got[0]) and torch.equal(want[1], got[1])


@pytest.mark.skipif(not ranksums.available(), reason="numba is not installed")
@pytest.mark.parametrize("block", [1, 60])
def test_normalised_rank_sums_by_blocks_are_those_of_the_whole_table(monkeypatch, block):
    from distgen.evaluation.de import log1p_, normalize_total

    rng = np.random.default_rng(1)
    p, g = 8, 6
    codes = np.concatenate([np.full(30, -1), *[np.full(int(rng.integers(0, 10)), i) for i in range(p)]])
    pop = Population.from_codes(torch.from_numpy(rng.poisson(1.5, (len(codes), g)).astype(np.float32)), torch.from_numpy(codes), p)
    table = ranksums.control_table(log1p_(normalize_total(pop.control, 1e6)))
    whole = ranksums.normalised_rank_sums(pop, table, 1e6, backend="numba")
    monkeypatch.setattr(ranksums, "GROUP_BLOCK_VALUES", block)
    monkeypatch.setattr(ranksums, "GROUP_BLOCK_ROWS", 1)
    got = ranksums.normalised_rank_sums(pop, table, 1e6, backend="numba")
    assert whole is not None and got is not None
    for a, b in zip(whole, got, strict=True):
        assert torch.equal(a, b)


def test_a_large_profile_evaluation_says_each_metric_on_stderr(monkeypatch, capsys, data):
    """As the default evaluation says its stages: a line per metric (none below the size, none with --quiet)."""
    from distgen.evaluation import suite
    from distgen.evaluation.profiles import resolve_profile, run_profile

    run_profile(data, "cell-eval-0.8.2", progress=True)
    assert "scoring profile" not in capsys.readouterr().err  # small: over before a line would help
    monkeypatch.setattr(suite, "STAGE_LINES_MIN", 0)
    run_profile(data, "cell-eval-0.8.2", progress=False)
    assert "scoring profile" not in capsys.readouterr().err  # --quiet
    run_profile(data, "cell-eval-0.8.2", progress=True)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("scoring profile cell-eval-0.8.2: metric ")]
    names = list(dict.fromkeys(resolve_profile("cell-eval-0.8.2").columns.values()))
    assert [ln.split(": ", 2)[2].split(" (")[0] for ln in lines] == names
    assert lines[0].startswith(f"scoring profile cell-eval-0.8.2: metric 1 of {len(names)}: ") and all(ln.endswith("s so far)") for ln in lines)


def _cells_of(adata, order=None, contexts=None):
    x = np.asarray(adata.X, dtype=np.float32)
    labels = adata.obs["target"].astype(str).to_numpy()
    order = np.arange(len(labels)) if order is None else order
    return Cells(torch.from_numpy(x[order].copy()), labels[order], list(adata.var_names), None if contexts is None else contexts[order],
                 control=CONTROL)


def _shares(view: torch.Tensor, table: torch.Tensor) -> bool:
    return view.untyped_storage().data_ptr() == table.untyped_storage().data_ptr()


@pytest.mark.parametrize("shuffle", [False, True])
def test_grouped_cells_are_scored_from_slices_with_the_same_values(shuffle):
    """``io.grouped`` orders the rows as ``eval_data`` groups them; the populations are then slices of its table (no second
    copy) and hold the very rows, in the very order, of the cells as read: every metric the same, bit for bit."""
    from distgen.evaluation.io import grouped

    real_a, pred_a = make_pair(seed=3, n_genes=30, n_ctrl=40, n_cells=9, combos=True)
    order = np.random.default_rng(1).permutation(real_a.n_obs) if shuffle else None
    real, pred = _cells_of(real_a, order), _cells_of(pred_a)
    g_real, g_pred = grouped(real), grouped(pred)
    assert grouped(g_real) is g_real  # already grouped: itself
    before, after = eval_data(pred, real), eval_data(g_pred, g_real)
    _same_pop(before.real, after.real)
    _same_pop(before.pred, after.pred)
    assert _shares(after.real.X, g_real.X) and _shares(after.real.control, g_real.X)
    assert not _shares(before.real.X, real.X)  # rows as written (controls first, labels unsorted): grouped by a copy
    _same_values(run_metrics(before, METRICS), run_metrics(after, METRICS))


def test_a_context_of_grouped_cells_is_a_slice_of_their_rows():
    from distgen.evaluation.io import grouped, rows_of_context

    real_a, _ = make_pair(seed=4, n_genes=20, n_ctrl=30, n_cells=6, combos=False)
    rng = np.random.default_rng(2)
    contexts = rng.choice(["b", "a", "c"], real_a.n_obs)
    cells = _cells_of(real_a, rng.permutation(real_a.n_obs), contexts)
    g = grouped(cells)
    assert list(g.contexts) == sorted(g.contexts.tolist())
    for c in ("a", "b", "c"):
        want, got = cells.of_context(c), rows_of_context(g, c)
        assert _shares(got.X, g.X)
        codes = [(v == CONTROL, v) for v in got.conditions.tolist()]
        assert codes == sorted(codes)  # perturbed by label, then the controls
        pops = [eval_data(x, x).real for x in (want, got)]
        _same_pop(*pops)
    ungrouped = rows_of_context(cells, "a")  # rows spread over the table: a copy, as of_context
    assert torch.equal(ungrouped.X, cells.of_context("a").X) and not _shares(ungrouped.X, cells.X)


@pytest.mark.parametrize("controls", ["first", "last", "middle"])
def test_from_codes_takes_grouped_rows_as_slices_and_others_as_copies(controls):
    gen = torch.Generator().manual_seed(0)
    pert = torch.sort(torch.randint(0, 6, (25,), generator=gen)).values
    pert = pert[pert != 3]  # an empty group among them
    ctrl = torch.full((7,), -1)
    codes = {"first": torch.cat([ctrl, pert]), "last": torch.cat([pert, ctrl]),
             "middle": torch.cat([pert[:10], ctrl, pert[10:]])}[controls]
    x = torch.randn(codes.numel(), 4, generator=gen)
    pop = Population.from_codes(x, codes, 6)
    order = torch.argsort(codes, stable=True)
    assert torch.equal(pop.X, x[order[codes[order] >= 0]]) and torch.equal(pop.control, x[codes == -1])
    assert torch.equal(pop.counts, torch.bincount(pert, minlength=6))
    assert _shares(pop.X, x) == (controls != "middle")
    assert not _shares(Population.from_codes(x.t().contiguous().t(), codes, 6).X, x)  # a non-contiguous table: copied



def _table_census(tmp_path, monkeypatch):
    """Write a pair (``pred.h5ad``, ``real.h5ad``) into ``tmp_path`` and count, at each ``run_metrics`` call, the distinct
    tensor storages of at least half a table's bytes alive in the process: ``(seen, stop)``, ``stop()`` restoring it."""
    import gc
    import importlib

    score_module = importlib.import_module("distgen.evaluation.score")  # the module (the package exports the function)
    real_a, pred_a = make_pair(seed=6, n_genes=60, n_ctrl=60, n_cells=30, combos=True)
    real_a.write_h5ad(tmp_path / "real.h5ad")
    pred_a.write_h5ad(tmp_path / "pred.h5ad")
    table = real_a.n_obs * real_a.n_vars * 4
    seen: list[int] = []
    run = score_module.run_metrics

    def census(data, *args, **kwargs):
        gc.collect()
        seen.append(len({o.untyped_storage().data_ptr() for o in gc.get_objects()
                         if isinstance(o, torch.Tensor) and o.untyped_storage().nbytes() >= table // 2}))
        return run(data, *args, **kwargs)

    monkeypatch.setattr(score_module, "run_metrics", census)
    return seen, lambda: monkeypatch.setattr(score_module, "run_metrics", run)

def test_evaluate_files_holds_one_copy_of_each_table_while_scoring(tmp_path, monkeypatch):
    """While the model's metrics run, the evaluation holds the prediction and the truth once each: the tables as read are
    grouped in their place (``io.grouped``), no grouped copy beside them, and the ``control`` baseline is rows of the truth
    (``IndexedCells``), gathered only while it is scored. Before, 5 tables (the two as read, their grouped copies, the
    baseline's) were alive there, then 3 (the baseline's table held throughout)."""

    from distgen.pipeline.evaluate import evaluate_files

    seen, _ = _table_census(tmp_path, monkeypatch)
    evaluate_files(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), ceiling=False, progress=False, make_plots=False,
                   metric_names=["mse"])
    assert seen == [2, 3]  # the model's metrics; the control baseline's, its rows gathered


def test_the_api_with_a_prediction_in_memory_holds_the_truth_once_as_the_cli(tmp_path, monkeypatch):
    """``distgen.evaluate(pred=Cells, truth=path)`` built the references before grouping the truth it read: the control
    baseline (rows of the truth's table, ``IndexedCells``) kept the table as read alive beside its grouped copy, one
    truth table more than ``distgen evaluate`` on the same files while scoring ([3, 4] storages, the CLI's [2, 3]).
    Grouped first now, as ``evaluate_files``; the scores are those of the files' path, bit for bit."""

    from distgen.data import layout
    from distgen.evaluation.io import grouped
    from distgen.pipeline.evaluate import evaluate, evaluate_files

    options = {"ceiling": False, "progress": False, "make_plots": False, "metric_names": ["mse", "pearson_delta"]}
    seen, stop = _table_census(tmp_path, monkeypatch)
    pred = grouped(layout.read(layout.as_anndata(str(tmp_path / "pred.h5ad"), "pred file"), name="pred"))  # as scored
    api = evaluate(pred, str(tmp_path / "real.h5ad"), **options)
    assert seen == [2, 3]  # the caller's prediction and the truth; the control baseline's rows gathered
    stop()
    files = evaluate_files(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), **options)
    _same_values(api.table, files.table)
    assert api.references.keys() == files.references.keys()
    for name, ref in files.references.items():
        _same_values(api.references[name], ref)
