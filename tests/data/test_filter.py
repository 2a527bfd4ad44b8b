"""``data.filter``: keep or drop cells by obs columns, before validation; clear errors; part of the data fingerprint."""

import numpy as np
import pytest

import distgen
from distgen.config import ConfigError
from distgen.data.section import data_section

from .conftest import make_adata

SCHEMA = {"perturbation_col": "condition", "control_labels": ["control"], "context_cols": ["cell_type"], "batch_col": "donor"}
SPLIT = {"kind": "random_conditions", "seed": 0}


@pytest.fixture(scope="module")
def h5ad(tmp_path_factory):
    a = make_adata(n_per_group=6, conditions=("control", "A", "B", "C"), contexts=("ct1", "ct2"), batches=("b1", "b2"), n_genes=8)
    a.obs["confidence"] = np.random.default_rng(0).permutation(np.linspace(0.0, 1.0, a.n_obs))
    path = tmp_path_factory.mktemp("flt") / "tiny.h5ad"
    a.write_h5ad(path)
    return str(path), a


def _load(path, flt):
    return distgen.load_data(path, split=SPLIT, schema=SCHEMA, filter=flt)


def test_drop_keep_min_and_query_select_the_cells(h5ad):
    path, a = h5ad
    full = _load(path, None)
    assert full.filtered is None and "filter" not in full.hashes()

    d = _load(path, {"column": "donor", "drop": ["b2"]})
    assert set(d.data.batches) == {"b1"} and d.data.n_cells == int((a.obs["donor"] == "b1").sum())
    rec = d.hashes()["filter"]
    assert rec["cells_before"] == a.n_obs and rec["cells_kept"] == d.data.n_cells
    assert d.notes() == [f"data.filter kept {d.data.n_cells} of {a.n_obs} cells ({{'column': 'donor', 'drop': ['b2']}})"]

    d = _load(path, [{"column": "donor", "keep": "b1"}, {"column": "confidence", "min": 0.25}])
    obs = a.obs
    expected = int(((obs["donor"] == "b1") & (obs["confidence"] >= 0.25)).sum())
    assert d.data.n_cells == expected
    assert [s["cells_left"] for s in d.filtered["steps"]] == [int((obs["donor"] == "b1").sum()), expected]

    q = _load(path, {"query": "donor == 'b1' and confidence >= 0.25"})
    assert q.data.n_cells == expected
    # the data fingerprint (and so the split and checkpoint compatibility) changes with the filter
    assert len({full.data.hash, d.data.hash, _load(path, {"column": "donor", "drop": ["b2"]}).data.hash}) == 3
    assert q.data.hash == d.data.hash


@pytest.mark.parametrize(("flt", "message"), [
    ({"column": "plate", "drop": ["p1"]}, "obs column 'plate' not found; available columns: \\['condition'"),
    ({"column": "donor", "drop": ["b3"]}, "value\\(s\\) \\['b3'\\] occur nowhere in obs column 'donor'"),
    ({"column": "donor", "min": 1}, "min/max need a numeric column"),
    ({"column": "confidence", "min": 2.0}, "leaves no cells"),
    ({"column": "condition", "drop": ["control"]}, "removes every control cell"),
    ({"query": "nonexistent > 1"}, "query 'nonexistent > 1' failed"),
])
def test_bad_filters_fail_naming_the_problem(h5ad, flt, message):
    with pytest.raises(ConfigError, match=message):
        _load(h5ad[0], flt)


@pytest.mark.parametrize(("flt", "message"), [
    ({"column": "donor"}, "say what to keep"),
    ({"column": "donor", "remove": ["b2"]}, "unknown key\\(s\\) \\['remove'\\]"),
    ({"drop": ["b2"]}, "needs column"),
    ({"column": "confidence", "min": "high"}, "min must be a number"),
    ("donor == b1", "data.filter: expected list"),
])
def test_malformed_rules_fail_when_the_section_is_read(flt, message):
    with pytest.raises(ConfigError, match=message):
        data_section({"filter": flt})
