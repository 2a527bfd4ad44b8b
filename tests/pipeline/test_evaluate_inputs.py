"""``distgen.evaluate`` with what a notebook holds: a prediction file read back against its Dataset, training cells as
``Cells`` next to files, and the same object given twice."""

import anndata as ad
import pytest

import distgen
from distgen.config import ConfigError

KW = {"metric_names": ["mse", "pearson_delta"], "make_plots": False, "progress": False, "ceiling": False, "baselines": ["mean_perturbation"]}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate_inputs")
    data = distgen.load_data("norman_k562", split={"kind": "combo_seen2", "seed": 0}, hvg=32)
    model = distgen.build({"name": "additive"}, data)
    distgen.fit(model, data)
    pred = distgen.predict(model, data, out=root / "pred.h5ad", real=root / "real.h5ad")
    return data, pred, root


def _scores(report):
    m = report.summary["metrics"]
    return [v for k in ("mse", "pearson_delta") for v in (m[k]["model"], m[k]["baselines"]["mean_perturbation"])]


def test_a_prediction_file_scores_against_its_dataset_as_the_cells_do(fitted):
    """The file of one-context data has no cell-type column: it was read as context 'all' and every group was 'missing'."""
    data, pred, root = fitted
    want = _scores(distgen.evaluate(pred, data, **KW))
    for source in (root / "pred.h5ad", ad.read_h5ad(root / "pred.h5ad")):
        assert _scores(distgen.evaluate(source, data, **KW)) == pytest.approx(want)


def test_training_cells_next_to_files_fit_the_baselines(fitted):
    """``train=`` as Cells (the docstring's promise) ended in TypeError 'expected an .h5ad path or an AnnData, got Cells'."""
    data, pred, root = fitted
    want = _scores(distgen.evaluate(pred, data, **KW))
    got = _scores(distgen.evaluate(root / "pred.h5ad", root / "real.h5ad", train=data.train_cells(), **KW))
    assert got == pytest.approx(want)


def test_the_same_cells_as_prediction_and_truth_warn(fitted):
    _, _, root = fitted
    real = ad.read_h5ad(root / "real.h5ad")
    for pred, truth in ((real, real), (root / "real.h5ad", str(root / "real.h5ad"))):
        with pytest.warns(UserWarning, match="the prediction and the truth are the same"):
            distgen.evaluate(pred, truth, **{**KW, "baselines": []})


def test_an_unknown_keyword_is_refused_not_ignored(fitted):
    """``metrics=`` (distgen.run's name) for ``metric_names=`` was swallowed by the file-layout options: every metric was computed."""
    import inspect

    from distgen.pipeline.evaluate import EVALUATE_ARGS, LAYOUT_KEYS, evaluate

    data, pred, _ = fitted
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) \['metrics'\] \('metrics': did you mean 'metric_names'\?\)"):
        distgen.evaluate(pred, data, metrics=["mse"])
    named = [p.name for p in inspect.signature(evaluate).parameters.values() if p.kind is p.KEYWORD_ONLY]
    assert sorted(named) == sorted(EVALUATE_ARGS) and not set(LAYOUT_KEYS) & set(named)  # the message lists what it takes


def test_max_cells_all_means_every_cell(fitted):
    data, pred, _ = fitted
    assert distgen.predict(distgen.build({"name": "control"}, data), data, max_cells="all").X.shape == pred.X.shape
    with pytest.raises(ConfigError, match="max_cells must be a number of cells >= 1, None or 'all', got 'every'"):
        distgen.predict(distgen.build({"name": "control"}, data), data, max_cells="every")


def test_the_api_writes_pred_and_real_as_one_pair(fitted, tmp_path):
    """distgen.predict(out=, real=) records the truth in both files, so a prediction beside another truth is refused."""
    from distgen.types.layout import MismatchedPair

    root = fitted[2]
    p, r = ad.read_h5ad(root / "pred.h5ad"), ad.read_h5ad(root / "real.h5ad")
    assert p.uns["distgen"]["truth"] == r.uns["distgen"]["truth"]
    other = tmp_path / "real_val.h5ad"
    r.uns["distgen"]["truth"] = "0" * 16  # the record of another truth
    r.write_h5ad(other)
    with pytest.raises(MismatchedPair, match="not one pair"):
        distgen.evaluate(root / "pred.h5ad", other, **KW)
