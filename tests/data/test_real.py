"""Real data: the bundled datasets and the files in ../shared/data; every applicable split kind."""

import os
import warnings

import anndata as ad
import numpy as np
import pytest

import distgen.datasets as D
from distgen.data import SPLIT_KINDS, PerturbationData, PerturbationSchema, SetSampler, Split, highly_variable_genes, make_split

NORMAN_KINDS = ["random_conditions", "unseen_single", "combo_seen0", "combo_seen1", "combo_seen2"]
KANG_KINDS = ["held_out_context", "held_out_context_perturbation"]
MUSCAT_KINDS = ["held_out_context", "held_out_context_perturbation", "held_out_batch"]
MUSCAT_SCHEMA = PerturbationSchema(perturbation_col="condition", control_labels=("control",), context_cols=("cell_type",), batch_col="donor")


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return ad.read_h5ad(path)


@pytest.fixture(scope="module")
def norman():
    return PerturbationData.from_anndata(D.norman_k562(), D.NORMAN_SCHEMA)


@pytest.fixture(scope="module")
def kang():
    return PerturbationData.from_anndata(D.kang_pbmc(), D.KANG_SCHEMA)


def _muscat(shared_data):
    a = _read(os.path.join(shared_data, "kang2018_muscat_example", "kang2018_muscat_example_sce.h5ad"))
    a.obs["donor"] = a.obs["sample_id"].astype(str).str[-3:]
    return a


def _round_trip(data, kind, tmp_path, seed=0):
    split = make_split(data, kind=kind, seed=seed)
    again = Split.load(split.save(tmp_path / f"{kind}.json.gz"))
    assert again.hash == split.hash
    summary = again.check_leakage(data)
    assert summary["cells"]["test"] > 0 and summary["cells"]["train"] > 0
    return again


def test_bundled_norman_counts(norman):
    assert norman.table.X.shape == (3375, 500)
    conds = set(norman.conditions) - {"control"}
    assert sum("+" not in c for c in conds) == 18 and sum("+" in c for c in conds) == 15
    assert norman.is_control.sum() == 100 and norman.scale == "log"


def test_bundled_norman_equals_shared_source(norman, shared_data):
    src = _read(os.path.join(shared_data, "norman2019_mcfaline2023_perturbench_devel", "perturbench_devel.h5ad"))
    k = src[src.obs["cell_type"] == "k562"]
    assert list(k.obs_names) == list(norman.adata.obs_names)
    np.testing.assert_allclose(norman.table.X.numpy(), k.X.toarray(), rtol=1e-6, atol=1e-6)


def test_bundled_kang(kang):
    assert kang.table.X.shape == (1975, 6998)
    assert len(kang.info.contexts) == 7 and kang.info.perturbations == ("stimulated",)
    assert kang.is_control.sum() == 936


@pytest.mark.parametrize("kind", NORMAN_KINDS)
def test_norman_splits(norman, kind, tmp_path):
    split = _round_trip(norman, kind, tmp_path)
    if kind.startswith("combo_seen"):
        k = int(kind[-1])
        singles = {c for c in split.train_conditions if "+" not in c}
        for c in split.test_conditions:
            assert sum(a in singles for a in c.split("+")) == k


def test_norman_seen2_pairs_are_the_documented_ones(norman):
    # SOURCE.md: 5 pairs have both singles present
    got = {make_split(norman, "combo_seen2", seed=s).test_conditions[0] for s in range(30)}
    assert got == {"KLF1+MAP2K6", "KLF1+TGFBR2", "MAP2K3+MAP2K6", "MAP2K3+SLC38A2", "MAPK1+TGFBR2"}


@pytest.mark.parametrize("kind", KANG_KINDS)
def test_kang_splits(kang, kind, tmp_path):
    split = _round_trip(kang, kind, tmp_path)
    assert split.test_conditions == ("stimulated",)


@pytest.mark.parametrize("kind", MUSCAT_KINDS)
def test_kang_counts_splits(shared_data, kind, tmp_path):
    data = PerturbationData.from_anndata(_muscat(shared_data), MUSCAT_SCHEMA)
    assert data.scale == "counts" and data.info.batches == ("101", "107")
    _round_trip(data, kind, tmp_path)


def test_kang_counts_logcounts_layer_is_not_logged_twice(shared_data):
    a = _muscat(shared_data)
    from dataclasses import replace

    # muscat's logcounts are scater's log2(counts / size factor + 1): read as log1p they were 1.44x too large
    with pytest.raises(ValueError, match=r"log2\(1 \+ x\).*np.log\(2\)"):
        PerturbationData.from_anndata(a, replace(MUSCAT_SCHEMA, expression="logcounts"))
    a.layers["logcounts"] = a.layers["logcounts"] * np.log(2)  # the fix the message gives: natural log1p of the same values
    logged = PerturbationData.from_anndata(a, replace(MUSCAT_SCHEMA, expression="logcounts"))
    assert logged.scale == "log"
    np.testing.assert_allclose(logged.table.X.numpy(), a.layers["logcounts"].toarray(), rtol=1e-6)
    # the natural log1p of each cell's counts over its size factor: e**x - 1 are whole multiples of the smallest value
    counts = a.X[:20].toarray()
    u = np.expm1(logged.table.X.numpy()[:20].astype(np.float64))
    size = np.array([(c[c > 0] / v[c > 0]).mean() for c, v in zip(counts, u)])
    np.testing.assert_allclose(u * size[:, None], counts, atol=2e-3 * counts.max())
    with pytest.raises(ValueError, match="refusing to log"):
        PerturbationData.from_anndata(a, replace(MUSCAT_SCHEMA, expression="logcounts", scale="counts"))


def test_shared_norman_devel_all_contexts(shared_data, tmp_path):
    a = _read(os.path.join(shared_data, "norman2019_mcfaline2023_perturbench_devel", "perturbench_devel.h5ad"))
    data = PerturbationData.from_anndata(a, D.NORMAN_SCHEMA)
    assert len(data.info.contexts) == 4
    for kind in [*NORMAN_KINDS, *KANG_KINDS]:
        _round_trip(data, kind, tmp_path)


def test_inapplicable_kinds_fail_clearly(norman, kang):
    for kind in ("held_out_context", "held_out_context_perturbation", "held_out_batch"):
        with pytest.raises(ValueError, match="needs"):
            make_split(norman, kind)
    for kind in ("random_conditions", "unseen_single"):
        with pytest.raises(ValueError, match="no perturbed cells for training"):
            make_split(kang, kind)
    with pytest.raises(ValueError, match="needs combinations"):
        make_split(kang, "combo_seen2")
    with pytest.raises(ValueError, match="'held_out_dose' needs conditions measured at several doses"):
        make_split(norman, "held_out_dose")  # no dose column: tests/data/test_dose_populations.py splits doses
    assert set(NORMAN_KINDS) | set(MUSCAT_KINDS) | {"held_out_dose"} == set(SPLIT_KINDS)


def test_kang_train_only_hvgs_and_sampling(kang):
    split = make_split(kang, "held_out_context", test_contexts=["CD4T"])
    small = highly_variable_genes(kang, 500, fit_on=split.train)
    split.check_leakage(small)
    assert 500 <= small.info.n_genes <= 501
    s = SetSampler(small.table.subset(split.train), set_size=16, sets_per_batch=4, matcher="ot", seed=0)
    batch = next(iter(s))
    assert batch.shape == (4, 16, small.info.n_genes)
    cd4 = small.info.contexts.index("CD4T")
    assert all(cd4 != int(s.table.labels.context[f]) for f in s.firsts)
