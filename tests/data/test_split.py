"""make_split / Split: every kind, determinism, file round trip, tamper and leakage detection."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distgen.data import SPLIT_KINDS, LeakageError, PerturbationData, Split, highly_variable_genes, make_split

TINY_KINDS = [k for k in SPLIT_KINDS if k not in ("combo_seen1", "held_out_dose")]  # the tiny data has seen0 and seen2 pairs only, one dose


@pytest.fixture
def data(tiny_adata, tiny_schema):
    return PerturbationData.from_anndata(tiny_adata, tiny_schema)


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_every_kind_round_trips_and_is_clean(data, kind, tmp_path):
    split = make_split(data, kind=kind, seed=3)
    parts = [split.train.numpy(), split.val.numpy(), split.test.numpy()]
    assert sum(map(len, parts)) == data.n_cells
    assert len(np.unique(np.concatenate(parts))) == data.n_cells
    for suffix in ("json", "json.gz"):
        again = Split.load(split.save(tmp_path / f"s.{suffix}"))
        assert again.hash == split.hash and again.kind == kind
        torch.testing.assert_close(again.test, split.test)
        again.check_leakage(data)
    assert (tmp_path / "s.json").stat().st_size < 20_000


def test_kind_semantics(data):
    s = make_split(data, "combo_seen2", seed=0)
    assert s.test_conditions == ("A+B",) or s.test_conditions == ("B+C",)
    assert set(s.test_conditions).isdisjoint(s.train_conditions)
    s0 = make_split(data, "combo_seen0", seed=0)
    assert s0.test_conditions == ("D+E",)
    u = make_split(data, "unseen_single", seed=1, test_conditions=["B"])
    assert set(u.test_conditions) == {"B", "A+B", "B+C"}
    h = make_split(data, "held_out_context", test_contexts=["ct2"])
    test = h.test.numpy()
    assert set(data.contexts[test]) == {"ct2"} and not data.is_control[test].any()
    # controls of the held-out context stay available for training (the prediction input)
    assert (data.is_control & (data.contexts == "ct2"))[h.train.numpy()].any()
    p = make_split(data, "held_out_context_perturbation", test_groups=[("A", "ct1")])
    assert p.test_groups == (("A", "ct1"),)
    assert "A" in p.train_conditions
    b = make_split(data, "held_out_batch", test_batches=["b2"])
    assert set(data.batches[b.test.numpy()]) == {"b2"}


def test_deterministic_under_seed(data):
    a, b, c = (make_split(data, "random_conditions", seed=s) for s in (5, 5, 6))
    assert a.hash == b.hash
    torch.testing.assert_close(a.test, b.test)
    assert len({make_split(data, "random_conditions", seed=s).test_conditions for s in range(8)}) > 1
    assert make_split(data, "random_conditions", seed=6).hash == c.hash  # every seed is deterministic ...
    assert a.hash != c.hash  # ... and another seed draws another split (at least other validation cells)


@pytest.mark.parametrize("frac", [0.25, 0.5, 0.9])
def test_holdout_controls_is_the_fraction_held_out_of_training_in_all(data, frac):
    # the fraction of each (context, batch) group's controls kept out of training: half to test, half to val
    s = make_split(data, "held_out_context", test_contexts=["ct1"], holdout_controls=frac)
    ctrl = data.is_control
    for key, idx in data.groups(include_control=True).items():
        if key[0] != "control":
            continue
        n_test, n_val = np.isin(idx, s.test.numpy()).sum(), np.isin(idx, s.val.numpy()).sum()
        n_out = int(frac * len(idx))
        assert n_test + n_val == n_out and n_test - n_val in (0, 1)
        assert np.isin(idx, s.train.numpy()).sum() == len(idx) - n_out > 0
    assert ctrl[s.test.numpy()].sum() > 0 and ctrl[s.val.numpy()].sum() > 0
    s.check_leakage(data)


@pytest.mark.parametrize("spelled", ["B+A", " B + A", "A+B"])
def test_held_out_combinations_may_be_written_in_any_atom_order(data, spelled):
    # the file's own label may be B+A while distgen's canonical condition is A+B
    s = make_split(data, "random_conditions", test_conditions=[spelled])
    assert s.test_conditions == ("A+B",) and s.params["test_conditions"] == ["A+B"]
    g = make_split(data, "held_out_context_perturbation", test_groups=[(spelled, "ct1")])
    assert g.test_groups == (("A+B", "ct1"),)
    with pytest.raises(ValueError, match="cannot be held out"):
        make_split(data, "random_conditions", test_conditions=["A+Z"])


def test_tampered_file_is_rejected(data, tmp_path):
    path = make_split(data, "combo_seen2").save(tmp_path / "s.json")
    d = json.loads(Path(path).read_text())
    d["train"].append(d["test"][0])
    (tmp_path / "bad.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="corrupt or was edited"):
        Split.load(tmp_path / "bad.json")
    d["format"] = "other"
    (tmp_path / "other.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="not a distgen split"):
        Split.load(tmp_path / "other.json")


def test_leakage_is_caught(data, tiny_adata, tiny_schema):
    s = make_split(data, "random_conditions", seed=0)
    test_cell = s.test[:1]
    overlap = dataclasses.replace(s, train=torch.cat([s.train, test_cell]))
    with pytest.raises(LeakageError, match="both train and test"):
        overlap.check_leakage(data)
    # a train cell of a held-out condition (not the same cell) also leaks
    cond = s.test_conditions[0]
    moved = int(s.test[data.conditions[s.test.numpy()] == cond][0])
    leaky = dataclasses.replace(s, train=torch.sort(torch.cat([s.train, torch.tensor([moved])])).values, test=s.test[s.test != moved])
    with pytest.raises(LeakageError, match="held-out condition"):
        leaky.check_leakage(data)
    # a split made for other cells
    other = PerturbationData.from_anndata(tiny_adata[10:].copy(), tiny_schema)
    with pytest.raises(LeakageError, match="was made for dataset"):
        s.check_leakage(other)
    empty = dataclasses.replace(s, test=s.test[:0], test_groups=())
    with pytest.raises(LeakageError, match="no perturbed cells"):
        empty.check_leakage(data)


def test_statistics_fitted_on_test_cells_are_caught(data):
    s = make_split(data, "combo_seen2", seed=0)
    clean = highly_variable_genes(data, 8, fit_on=s.train)
    assert clean.fitted["hvg"].tolist() == s.train.tolist()
    s.check_leakage(clean)  # gene selection keeps the split valid
    dirty = highly_variable_genes(data, 8)  # fitted on all cells
    with pytest.raises(LeakageError, match="'hvg' was fitted on"):
        s.check_leakage(dirty)


def test_hvg_forces_perturbed_genes_and_uses_only_fit_cells(data):
    s = make_split(data, "random_conditions", seed=0)
    hv = highly_variable_genes(data, 3, fit_on=s.train)
    assert set(data.info.perturbations) <= set(hv.info.genes)  # A..E are genes and are forced in
    assert hv.info.n_genes >= 5 and hv.table.X.shape == (data.n_cells, hv.info.n_genes)
    # changing held-out cells' values must not change the selection
    data.table.X[s.test] = torch.rand(len(s.test), data.info.n_genes) * 9
    assert highly_variable_genes(data, 3, fit_on=s.train).info.genes == hv.info.genes


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(TINY_KINDS),
    seed=st.integers(0, 10_000),
    test_frac=st.integers(5, 60).map(lambda v: v / 100),  # integers: conftest flushes denormals, which hypothesis floats refuse
    val_frac=st.integers(0, 50).map(lambda v: v / 100),
    holdout_controls=st.integers(0, 40).map(lambda v: v / 100),
)
def test_any_split_partitions_cells_and_is_clean(data, kind, seed, test_frac, val_frac, holdout_controls):
    split = make_split(data, kind=kind, seed=seed, test_frac=test_frac, val_frac=val_frac, holdout_controls=holdout_controls)
    allc = torch.cat([split.train, split.val, split.test])
    assert torch.equal(torch.sort(allc).values, torch.arange(data.n_cells))
    split.check_leakage(data)
    assert Split.from_dict(split.to_dict()).hash == split.hash


def test_a_held_out_cell_repeated_under_another_name_in_training_is_told(tiny_adata, tiny_schema):
    """The same cell twice under two names (files concatenated, a cell relabelled), once held out and once in training:
    names differ, so the name check passes; the split warns, naming both cells. Without the repeat: no warning."""
    import warnings

    from distgen.data.split import DuplicateCellWarning

    clean = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    s = make_split(clean, "random_conditions", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DuplicateCellWarning)
        s.check_leakage(clean)
    a = int(s.test[~clean.is_control[s.test.numpy()]][0])
    b = int(s.train[~clean.is_control[s.train.numpy()]][0])
    twice = tiny_adata.copy()
    twice.X[b] = twice.X[a]
    data = PerturbationData.from_anndata(twice, tiny_schema)
    assert (data.table.X[a] != 0).sum() >= 10  # compared (not a near-empty cell)
    split = make_split(data, "random_conditions", seed=0)
    assert torch.equal(split.test, s.test)
    with pytest.warns(DuplicateCellWarning, match=rf"1 of \d+ held-out.*{twice.obs_names[a]}.*{twice.obs_names[b]}"):
        split.check_leakage(data)


def test_identical_cells_pairs_equal_rows_only():
    from distgen.data.leakage import identical_cells, row_hashes

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 30)).astype(np.float32)
    x[40] = x[3]
    x[41] = x[7]
    x[42] = x[5]
    x[42, 0] = np.nextafter(x[42, 0], np.float32(np.inf))  # one bit away: not the same cell
    held, seen = np.arange(40, 50), np.arange(0, 40)
    assert identical_cells(x, held, seen) == [(40, 3), (41, 7)]
    z = np.zeros((2, 30), np.float32)
    z[1] = -z[1]
    assert row_hashes(z)[0] == row_hashes(z)[1]  # -0.0 is 0.0
    sparse = x.copy()
    sparse[45, 5:] = 0
    sparse[10] = sparse[45]
    assert (45, 10) not in identical_cells(sparse, held, seen)  # fewer nonzeros than the minimum: coincidences happen
    assert (45, 10) in identical_cells(sparse, held, seen, min_nonzero=1)


@pytest.mark.parametrize("n", [1, 7])
def test_cells_in_two_parts_are_counted_and_the_first_three_named(data, n):
    s = make_split(data, "random_conditions", seed=0)
    moved = s.test[:n]
    overlap = dataclasses.replace(s, train=torch.cat([s.train, moved]))
    with pytest.raises(LeakageError) as info:
        overlap.check_leakage(data)
    names = [str(x) for x in data.adata.obs_names[np.sort(moved.numpy())]]
    text = str(info.value)
    verb = "is" if n == 1 else "are"
    shown = ", ".join(map(repr, names[:3])) + (f" (and {n - 3} more)" if n > 3 else "")
    assert text == f"{n} cell{'s' if n > 1 else ''} {verb} in both train and test: {shown}", text


@pytest.mark.parametrize("n", [1, 2])
def test_held_out_conditions_with_training_cells_are_named_by_label_with_the_verb_agreeing(data, n):
    """The refusal wrote each leaked key as a one-element tuple (``held-out condition ('G1',) has cells``) and kept "has"
    for several."""
    s = make_split(data, "random_conditions", seed=0, test_frac=0.5)
    conds = sorted(s.test_conditions)[:n]
    assert len(conds) == n
    moved = [int(s.test[data.conditions[s.test.numpy()] == c][0]) for c in conds]
    keep = ~torch.isin(s.test, torch.tensor(moved))
    leaky = dataclasses.replace(s, train=torch.sort(torch.cat([s.train, torch.tensor(moved)])).values, test=s.test[keep])
    with pytest.raises(LeakageError) as info:
        leaky.check_leakage(data)
    shown = ", ".join(repr(c) for c in conds)
    noun, verb = ("condition", "has") if n == 1 else ("conditions", "have")
    assert str(info.value) == f"held-out {noun} {shown} {verb} cells in train/val as well as test", str(info.value)
