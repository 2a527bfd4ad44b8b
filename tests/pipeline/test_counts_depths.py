"""``--counts`` on a run trained without library sizes (log values only) puts every cell at one depth and said so on
stderr only (prediction round, 2026-12-06, left over): the prediction file now records where its depths came from
(``uns["distgen"]["provenance"]["library_sizes"]``) and ``distgen evaluate`` says, once, that they are not measured."""

import anndata as ad
import numpy as np
import pytest

from distgen.cli import main
from distgen.data.counts import SIZES_KEY, UNMEASURED
from tests.pipeline.test_counts_exact import _counts
from tests.pipeline.test_predict_round import train_tiny

NOT_MEASURED = "every cell, real and generated, is at one depth, not a measured one"


def _train(root, data):
    return train_tiny(root, data, out=data.stem) / data.stem


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("depths")
    # controls of some thousand counts: cells past 1,000,000 counts are refused by --profile vcc2026, as cell-eval2 refuses them
    counts = _counts(root / "counts.h5ad", big=500, deep=0)
    a = ad.read_h5ad(counts)
    a.X = np.log1p(a.X / a.X.sum(1, keepdims=True) * 1e4).astype(np.float32)  # log values, no library-size column
    a.write_h5ad(root / "lognorm.h5ad")
    return {"counts": _train(root, counts), "lognorm": _train(root, root / "lognorm.h5ad"), "root": root}


@pytest.mark.parametrize("with_data", [False, True])
def test_the_file_records_its_depths_and_evaluate_says_once_they_are_not_measured(runs, tmp_path, capsys, with_data):
    pred, real = tmp_path / "p.h5ad", tmp_path / "r.h5ad"
    args = ["--data", str(runs["root"] / "lognorm.h5ad")] if with_data else []
    assert main(["predict", str(runs["lognorm"]), *args, "--counts", "round", "--out", str(pred), "--real", str(real)]) == 0
    assert ad.read_h5ad(pred).uns["distgen"]["provenance"][SIZES_KEY] == UNMEASURED
    said = _said(["evaluate", "--pred", str(pred), "--real", str(real), "--profile", "vcc2026", "--no-target-genes",
                  "--out", str(tmp_path / "e"), "--quiet"])
    assert sum(NOT_MEASURED in " ".join(w.split()) for w in said) == 1, said
    import json

    notes = json.loads((tmp_path / "e" / "summary.json").read_text())["notes"]
    assert sum(NOT_MEASURED in n for n in notes) == 1
    assert NOT_MEASURED in " ".join((tmp_path / "e" / "report.html").read_text().split())  # the page's notes


def test_measured_depths_are_recorded_as_such_and_not_noted(runs, tmp_path, capsys):
    pred, real = tmp_path / "p.h5ad", tmp_path / "r.h5ad"
    assert main(["predict", str(runs["counts"]), "--counts", "round", "--out", str(pred), "--real", str(real)]) == 0
    assert ad.read_h5ad(pred).uns["distgen"]["provenance"][SIZES_KEY].startswith("measured: ")
    said = _said(["evaluate", "--pred", str(pred), "--real", str(real), "--profile", "vcc2026", "--no-target-genes",
                  "--out", str(tmp_path / "e"), "--quiet"])
    assert not any(NOT_MEASURED in " ".join(w.split()) for w in said)


def _said(argv):
    """The warnings and stderr lines of ``distgen argv`` (which must succeed)."""
    import contextlib
    import io
    import warnings

    err = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        assert main(argv) == 0
    return [str(w.message) for w in caught] + err.getvalue().splitlines()
