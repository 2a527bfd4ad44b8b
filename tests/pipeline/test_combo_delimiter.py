"""Data whose combinations are joined by ``_`` (``PerturbationSchema.combo_delimiter``): every file distgen writes labels a
combination as the data does (``G1_G2``), prediction and truth alike, records the delimiter, and reading the pair back
(``distgen evaluate``, both readers) scores it as the canonical ``G1+G2``."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.cli import main
from distgen.config import save_yaml
from distgen.data import Dataset, PerturbationSchema, layout, write_ground_truth, write_predictions
from distgen.data.streaming import predict_to_disk
from distgen.evaluation.h5pair import read_pair_fast
from distgen.models.baselines.control import ControlBaseline

SCHEMA = {"perturbation_col": "condition", "control_labels": ["ctrl"], "combo_delimiter": "_"}
MODEL = {"name": "generator", "conditioner": {"name": "onehot", "dim": 8}, "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
         "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}}}


@pytest.fixture(scope="module")
def underscored(tmp_path_factory):
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(12)]
    rows = [c for c in ("ctrl", "G1", "G2", "G3", "G4", "G2_G1", "G3_G4", "G1_G3") for _ in range(12)]  # G2_G1: atoms unsorted
    x = rng.poisson(4.0, (len(rows), len(genes))).astype(np.float32)
    path = tmp_path_factory.mktemp("underscore") / "u.h5ad"
    ad.AnnData(X=x, obs=pd.DataFrame({"condition": rows}, index=[f"c{i}" for i in range(len(rows))]),
               var=pd.DataFrame(index=genes)).write_h5ad(path)
    return str(path)


def _labels(path):
    a = ad.read_h5ad(path)
    return set(a.obs[layout.PERT_COL].astype(str)), a.uns["distgen"].get("combo_delimiter")


def test_predict_and_evaluate_pair_the_user_labels(underscored, tmp_path, capsys):
    data = {"dataset": underscored, "schema": SCHEMA, "set_size": 4, "split": {"kind": "combo_seen2", "test_conditions": ["G1_G2"], "seed": 0}}
    cfg = save_yaml({"model": MODEL, "data": data, "train": {"steps": 1, "sets_per_batch": 2, "progress": False}}, tmp_path / "t.yaml")
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 0
    pred, real = tmp_path / "pred.h5ad", tmp_path / "real.h5ad"
    assert main(["predict", str(tmp_path / "run"), "--out", str(pred), "--real", str(real)]) == 0
    assert _labels(pred) == _labels(real) == ({"G1_G2", layout.CONTROL}, "_")  # the data's label, in both files
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(pred), "--real", str(real), "--out", str(tmp_path / "eval"), "--no-plots",
                 "--metrics", "mse,pearson_delta"]) == 0
    table = pd.read_csv(tmp_path / "eval" / "metrics.csv")
    assert table["perturbation"].tolist() == ["G1+G2"]  # scored as one condition of two atoms
    assert table["n_cells_pred"].tolist() == table["n_cells_real"].tolist() == [12]
    fast = read_pair_fast(str(pred), str(real))
    slow = layout.read_pair(str(pred), str(real))
    assert fast is not None and set(fast[0].conditions) == set(slow[0].conditions) == {"G1+G2", layout.CONTROL}
    assert fast[1].atoms("G1+G2") == slow[1].atoms("G1+G2") == ("G1", "G2")  # the target genes a metric leaves out


def test_array_writers_label_prediction_and_truth_alike(underscored, tmp_path):
    ds = Dataset.load({"dataset": underscored, "schema": SCHEMA, "split": {"kind": "combo_seen2", "test_conditions": ["G1_G2"], "seed": 0}})
    data = ds.data
    test = [g for g in ds.groups()]
    assert [g.condition for g in test] == ["G1+G2"] and list(ds.split.test_conditions) == ["G1_G2"]
    cells, controls = test[0].cells, test[0].controls
    x = data.table.X.numpy()
    write_predictions(x[cells], ["G1_G2"] * len(cells), x[controls], data.info.genes, data=data, path=tmp_path / "pred.h5ad")
    write_ground_truth(data, cells, controls, tmp_path / "real.h5ad")
    assert _labels(tmp_path / "pred.h5ad") == _labels(tmp_path / "real.h5ad") == ({"G1_G2", layout.CONTROL}, "_")
    pred, real, _, _ = layout.read_pair(tmp_path / "pred.h5ad", tmp_path / "real.h5ad")
    assert set(pred.conditions[~pred.is_control]) == set(real.conditions[~real.is_control]) == {"G1+G2"}


def test_streaming_prediction_labels_as_the_data_does(underscored, tmp_path):
    out = predict_to_disk(ControlBaseline(), underscored, tmp_path / "pred.h5ad", set_size=4, schema=PerturbationSchema(**SCHEMA))
    labels, delimiter = _labels(out)
    assert labels == {"G1", "G2", "G3", "G4", "G2_G1", "G3_G4", "G1_G3", layout.CONTROL} and delimiter == "_"  # G2_G1 as the file writes it
    back = layout.read(out)
    assert {"G1+G2", "G3+G4", "G1+G3"} <= set(back.conditions)


def test_the_report_flags_unembeddable_combinations_under_the_name_the_metric_table_gives_them(underscored):
    from distgen.pipeline.pages import unembeddable

    class NoG2:
        def predict(self, control, mask, labels):
            return control

        def can_predict(self, atoms):
            return [a != "G2" for a in atoms]

    ds = Dataset.load({"dataset": underscored, "schema": SCHEMA, "split": {"kind": "combo_seen2", "test_conditions": ["G1_G2"], "seed": 0}})
    assert unembeddable(NoG2(), ds)["conditions"] == {"G1+G2": ["G2"]}  # the metrics table's row: G1+G2 (it read G1_G2)


def _dosed(tmp_path, delim):
    """Three drugs at two doses and saha+dexa at two dose pairs in two cell lines, combinations joined by ``delim``;
    dexa+saha and nutlin held out at every dose."""
    rows = []
    for ct in ("A549", "K562"):
        rows += [("vehicle", ct, "0")] * 10
        rows += [(d, ct, str(x)) for d in ("dexa", "saha", "nutlin") for x in (1, 10) for _ in range(5)]
        rows += [(f"saha{delim}dexa", ct, f"{x}{delim}{y}") for x, y in ((100, 10), (10, 1)) for _ in range(5)]
    obs = pd.DataFrame(rows, columns=["drug", "cell_line", "dose"], index=[f"c{i}" for i in range(len(rows))])
    x = np.random.default_rng(0).poisson(3.0, (len(rows), 6)).astype(np.float32)
    path = tmp_path / "d.h5ad"
    ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(6)])).write_h5ad(path)
    schema = {"perturbation_col": "drug", "control_labels": ["vehicle"], "context_cols": ["cell_line"], "dose_col": "dose",
              "combo_delimiter": delim, "perturbation_type": "chemical"}
    return Dataset.load({"dataset": str(path), "schema": schema,
                         "split": {"kind": "random_conditions", "test_conditions": [f"dexa{delim}saha", "nutlin"], "seed": 0}})


@pytest.mark.parametrize("delim", ["+", "_"])
def test_unembeddable_rows_of_data_at_several_doses_name_their_atoms_not_their_populations(tmp_path, delim):
    """At several doses a held-out condition is a population per dose (dexa@10+saha@100): ``unembeddable`` asked pre-flight
    about 'dexa@10' and 'saha@100' as atoms, which no model knows, so every held-out population of a run on such data was
    flagged on its report as unembeddable (the additive baseline, which predicts dexa+saha from dexa and saha alone,
    included). Now its condition is asked (dexa+saha) and its row is named as the metric table names it."""
    from distgen.pipeline.pages import unembeddable

    class NoNutlin:
        def predict(self, control, mask, labels):
            return control

        def can_predict(self, atoms):
            return [a in ("dexa", "saha") for a in atoms]  # the atoms it knows, as a model's vocabulary

    ds = _dosed(tmp_path, delim)
    assert unembeddable(NoNutlin(), ds) == {"component": "NoNutlin", "conditions": {"nutlin@1": ["nutlin"], "nutlin@10": ["nutlin"]}}
    assert {g.condition for g in ds.groups()} >= {"nutlin@1", "dexa@1+saha@10"}  # the rows those keys name


def test_dataset_labels_read_the_data_s_own_spelling_of_a_combination(tmp_path):
    """``Dataset.labels`` read only ``A+B``: with ``combo_delimiter='_'`` the data's own ``dexa@10_saha@100`` (its split files'
    spelling, what ``PerturbationData.labels_for`` reads) was refused as an unknown atom 'dexa@10_saha'."""
    ds = _dosed(tmp_path, "_")
    for plus, own, doses in (("dexa@10+saha@100", "dexa@10_saha@100", None), ("saha+dexa", "saha_dexa", [[100, 10]]),
                             ("dexa+saha", "dexa_saha", [[3, 30]])):
        a, b = ds.labels([plus], ["A549"], doses=doses), ds.labels([own], ["A549"], doses=doses)
        assert a.perturbation.tolist() == b.perturbation.tolist() and a.dose.tolist() == b.dose.tolist()
    assert ds.labels(["saha_dexa"], ["A549"], doses=[[100, 10]]).dose.tolist() == [[10.0, 100.0]]  # each dose to its atom


def test_the_same_dosed_data_labelled_either_way_scores_the_same(tmp_path):
    """The data's spelling (split, conditions) and the canonical one (groups, predictions, evaluation) meet in predict and
    evaluate: no population is missed or paired with another, in memory or through the written files."""
    import distgen

    scores = {}
    for delim, name in (("+", "plus"), ("_", "under")):
        (tmp_path / name).mkdir()
        ds = _dosed(tmp_path / name, delim)
        model = distgen.build({"name": "additive"}, ds)
        distgen.fit(model, ds)
        pred = distgen.predict(model, ds, out=tmp_path / name / "pred.h5ad", real=tmp_path / name / "real.h5ad")
        kw = {"metric_names": ["mse", "pearson_delta"], "ceiling": False, "make_plots": False, "progress": False, "baselines": ["control"]}
        for how, rep in (("cells", distgen.evaluate(pred, ds, **kw)),
                         ("files", distgen.evaluate(str(tmp_path / name / "pred.h5ad"), str(tmp_path / name / "real.h5ad"), **kw))):
            scores[(name, how)] = {r["perturbation"]: (r["mse"], r["pearson_delta"], r["n_cells_real"]) for r in rep.table.rows()}
    rows = scores[("plus", "cells")]
    assert {p.split(" @ ")[0] for p in rows} == {"dexa@1+saha@10", "dexa@10+saha@100", "nutlin@1", "nutlin@10"}
    assert scores[("under", "cells")] == scores[("under", "files")] == scores[("plus", "files")] == rows
