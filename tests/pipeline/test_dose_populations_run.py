"""Several doses per condition end to end: train, predict and evaluate a population per dose.

A drug at four doses in two cell lines, and a combination at a dose per slot (``tests/data/test_dose_populations.py``
checks the loading and the splits): each held-out (condition, doses, context) is predicted at its own dose and scored
against its own cells, labelled ``atom@dose`` in the prediction files and the metrics.
"""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import distgen
from distgen.cli import main
from distgen.config import ConfigError, save_yaml
from distgen.data import Dataset
from distgen.pipeline.predict import predict

from ..data.test_dose_populations import SCHEMA, sciplex

EVAL = ["--metrics", "mse", "--no-plots", "--no-ceiling", "--baselines", "", "--quiet"]
SPLIT = {"kind": "held_out_dose", "test_conditions": ["dexa", "saha"], "val_frac": 0.0, "seed": 0}


def _config(path: str, conditioner: dict) -> dict:
    return {"model": {"name": "generator", "conditioner": conditioner, "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                      "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}}},
            "data": {"dataset": path, "schema": SCHEMA.to_dict(), "split": SPLIT, "set_size": 4},
            "train": {"steps": 2, "sets_per_batch": 2, "progress": False}}


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    out = tmp_path_factory.mktemp("doses") / "sciplex.h5ad"
    sciplex().write_h5ad(out)
    return str(out)


class DoseSpy:
    """Hands back its control cells and records each (atoms, context) dose it is asked at."""

    def __init__(self, info):
        self.info, self.asked = info, {}

    def predict(self, control, control_mask, labels):
        for p, d, c in zip(labels.perturbation.tolist(), labels.dose.tolist(), labels.context.tolist()):
            key = ("+".join(f"{self.info.perturbations[a]}@{x:g}" for a, x in zip(p, d) if a >= 0), self.info.contexts[c])
            self.asked[key] = self.asked.get(key, 0) + 1
        return control.clone()

    def can_predict(self, atoms):
        return [True] * len(atoms)


def test_each_population_is_asked_at_its_dose_and_a_dose_request_reaches_every_dose(path):
    ds = Dataset.load({"dataset": path, "schema": SCHEMA.to_dict(), "set_size": 4,
                       "split": {**SPLIT, "kind": "random_conditions", "test_conditions": ["nutlin", "saha+dexa"]}})
    spy = DoseSpy(ds.info)
    cells = predict(spy, ds, seed=0)
    held = {(g.condition, g.context) for g in ds.groups("test")}
    assert held == {(c, k) for c in ("nutlin@1", "nutlin@10", "nutlin@100", "nutlin@1000", "dexa@10+saha@100") for k in ("A549", "K562")}
    assert set(spy.asked) == held  # each population at its own dose, per atom for the combination
    truth = ds.truth("test")
    for c, k in held:  # as many cells per population as it has real ones: paired by dose
        assert ((cells.conditions == c) & (cells.contexts == k)).sum() == ((truth.conditions == c) & (truth.contexts == k)).sum() > 0
    spy = DoseSpy(ds.info)
    other = predict(spy, ds, seed=0, doses={"nutlin": 3.0, "saha@100+dexa@10": [2.0, 1.0]})  # a bare condition: every dose of it
    assert set(spy.asked) == {(c, k) for c in ("nutlin@3", "dexa@1+saha@2") for k in ("A549", "K562")}
    # labelled at the dose asked, never as the measured population it is not
    assert set(other.conditions[~other.is_control]) == {"nutlin@3", "dexa@1+saha@2"}
    assert ((other.conditions == "nutlin@3") & (other.contexts == "A549")).sum() == sum(
        ((truth.conditions == f"nutlin@{x:g}") & (truth.contexts == "A549")).sum() for x in (1, 10, 100, 1000))
    with pytest.raises(distgen.data.doses.DoseError, match="doses names 'dexa', neither a population predicted nor a condition of one"):
        predict(DoseSpy(ds.info), ds, seed=0, doses={"dexa": 3.0})


def test_train_predict_evaluate_score_each_dose_on_its_own(path, tmp_path):
    cfg = save_yaml(_config(path, {"name": "onehot", "dim": 8}), tmp_path / "t.yaml")
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 0
    pred, real = tmp_path / "pred.h5ad", tmp_path / "real.h5ad"
    with pytest.warns(distgen.data.doses.DoseExtrapolationWarning, match="dexa measured at 1000, the training cells carry it at 1 to 100"):
        assert main(["predict", str(tmp_path / "run"), "--out", str(pred), "--real", str(real)]) == 0
    p, r = ad.read_h5ad(pred), ad.read_h5ad(real)
    col = p.uns["distgen"]["pert_col"]
    held = {"dexa@1000", "saha@1000"}
    assert set(p.obs[col].astype(str)) - {p.uns["distgen"]["control"]} == held == set(r.obs[col].astype(str)) - {r.uns["distgen"]["control"]}
    assert main(["evaluate", "--pred", str(pred), "--real", str(real), "--out", str(tmp_path / "eval"), *EVAL]) == 0
    rows = pd.read_csv(tmp_path / "eval" / "metrics.csv")
    assert set(rows["perturbation"]) == {f"{c} @ {k}" for c in held for k in ("A549", "K562")}
    assert np.isfinite(rows["mse"]).all()
    other = tmp_path / "other.h5ad"  # another file (here the training file itself): each population at its own dose
    assert main(["predict", str(tmp_path / "run"), "--data", path, "--out", str(other)]) == 0
    got = set(ad.read_h5ad(other).obs[col].astype(str))
    assert {f"{d}@{x:g}" for d in ("dexa", "saha", "nutlin") for x in (1, 10, 100, 1000)} | {"dexa@10+saha@100"} <= got
    some = tmp_path / "some.h5ad"  # --perturbations: a bare condition names each of its populations, a label one
    assert main(["predict", str(tmp_path / "run"), "--data", path, "--out", str(some), "--perturbations", "nutlin", "dexa@1"]) == 0
    assert set(ad.read_h5ad(some).obs[col].astype(str)) - {p.uns["distgen"]["control"]} == {f"nutlin@{x:g}" for x in (1, 10, 100, 1000)} | {"dexa@1"}
    # a label written with its dose in another form (as a float32 column's 0.30000001192092896 is written 0.3) names it too
    assert main(["predict", str(tmp_path / "run"), "--data", path, "--out", str(some), "--perturbations", "saha@10.0"]) == 0
    assert set(ad.read_h5ad(some).obs[col].astype(str)) - {p.uns["distgen"]["control"]} == {"saha@10"}


def test_a_dose_blind_model_is_refused_on_data_at_several_doses(path, tmp_path, capsys):
    """A model that reads no dose would predict one population for all four doses of a drug: refused before training."""
    blind = {"name": "embedding_table", "dim": 8, "hidden": 8, "table": {"dexa": [1.0, 0.0], "saha": [0.0, 1.0], "nutlin": [1.0, 1.0]}}
    cfg = save_yaml(_config(path, blind), tmp_path / "t.yaml")
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "conditions at several doses" in err and "would predict one population for every dose" in err
    assert "'model.conditioner={name: onehot, dose: log}'" in err and "preflight.allow_unembedded=true runs it anyway" in err
    assert not (tmp_path / "run" / "checkpoints").exists()
    ds = Dataset.load(_config(path, {})["data"])
    model = distgen.build(_config(path, blind), ds)
    from distgen.models.preflight import check_split

    with pytest.raises(ConfigError, match="would predict one population for every dose"):
        check_split(model, ds)
    assert any("would predict one population" in n for n in check_split(model, ds, allow_unembedded=True))


def test_the_streaming_predictor_predicts_each_population_as_memory_does(path, tmp_path):
    """``predict_to_disk`` on the file: the same held-out populations, each at its own dose, and the same cells."""
    from distgen.data.disk import DiskCells
    from distgen.data.disk_split import disk_split
    from distgen.data.streaming import predict_to_disk

    ds = Dataset.load({"dataset": path, "schema": SCHEMA.to_dict(), "set_size": 4, "split": SPLIT})
    mem_spy, disk_spy = DoseSpy(ds.info), DoseSpy(ds.info)
    cells = predict(mem_spy, ds, seed=0)
    disk = DiskCells(path, ds.data.schema)
    out = predict_to_disk(disk_spy, disk, tmp_path / "pred.h5ad", set_size=4, seed=0, split=disk_split(disk, **SPLIT))
    assert mem_spy.asked.keys() == disk_spy.asked.keys() == {(f"{d}@1000", k) for d in ("dexa", "saha") for k in ("A549", "K562")}
    written = ad.read_h5ad(out)
    col = written.uns["distgen"]["pert_col"]
    for c in ("dexa@1000", "saha@1000"):
        for k in ("A549", "K562"):
            a = written.X[((written.obs[col] == c) & (written.obs["celltype"] == k)).to_numpy()]
            b = cells.X.numpy()[(cells.conditions == c) & (cells.contexts == k)]
            assert a.shape == b.shape and np.array_equal(np.asarray(a.todense() if hasattr(a, "todense") else a), b)
    asked = predict_to_disk(DoseSpy(ds.info), disk, tmp_path / "at.h5ad", set_size=4, seed=0, split=disk_split(disk, **SPLIT),
                            doses={"dexa": 50.0})  # written at the dose asked, as in memory
    assert set(ad.read_h5ad(asked).obs[col].astype(str)) >= {"dexa@50", "saha@1000"}


def test_evaluating_files_with_a_dose_column_scores_each_dose(tmp_path):
    """Files in cell-eval's layout with the dose in a column of its own: each (label, dose) scored on its own, labelled as
    distgen labels it (dexa@10), and the evaluation says so (was: scored by label, the doses pooled, with a note).
    ``tests/evaluation/test_evaluate_doses.py`` has the pairings and refusals."""
    rng = np.random.default_rng(1)
    rows = [("ctrl", "0")] * 20 + [("dexa", d) for d in ("10", "100") for _ in range(10)] + [("saha", "5")] * 10
    obs = pd.DataFrame(rows, columns=["target", "dose"], index=[f"c{i}" for i in range(len(rows))])
    files = []
    for name in ("pred", "real"):
        a = ad.AnnData(X=rng.poisson(2.0, (len(rows), 6)).astype(np.float32), obs=obs.copy(), var=pd.DataFrame(index=[f"g{i}" for i in range(6)]))
        a.X = np.log1p(a.X)
        a.write_h5ad(tmp_path / f"{name}.h5ad")
        files.append(str(tmp_path / f"{name}.h5ad"))
    with pytest.warns(UserWarning, match=r"each \(label, dose\) is scored as a population of its own"):
        assert main(["evaluate", "--pred", files[0], "--real", files[1], "--out", str(tmp_path / "eval"), "--control", "ctrl", *EVAL]) == 0
    assert set(pd.read_csv(tmp_path / "eval" / "metrics.csv")["perturbation"]) == {"dexa@10", "dexa@100", "saha@5"}


def test_a_dose_blind_run_is_refused_a_file_at_several_doses(path, tmp_path, capsys):
    """Trained at one dose per drug (a note), then asked a file with four: one prediction for every dose, refused."""
    one = sciplex()
    one = one[one.obs["dose"].isin(["0", "100", "100+10"]).to_numpy()].copy()
    one.write_h5ad(tmp_path / "one.h5ad")
    blind = {"name": "embedding_table", "dim": 8, "hidden": 8, "table": {"dexa": [1.0, 0.0], "saha": [0.0, 1.0], "nutlin": [1.0, 1.0]}}
    cfg = _config(str(tmp_path / "one.h5ad"), blind)
    cfg["data"]["split"] = {"kind": "random_conditions", "test_conditions": ["nutlin"], "val_frac": 0.0}
    assert main(["train", str(save_yaml(cfg, tmp_path / "t.yaml")), "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), "--data", path, "--out", str(tmp_path / "p.h5ad")]) == 2
    err = capsys.readouterr().err
    assert f"{path} holds conditions at several doses" in err and "would predict one population for every dose" in err
    assert not (tmp_path / "p.h5ad").exists()


def test_the_streaming_truth_keeps_each_population_at_its_measured_dose(path, tmp_path):
    """``predict_to_disk(real=...)`` asked at another dose: the prediction is written at the dose asked, the truth stays the
    measured cells under their own labels (as ``distgen predict RUN --real`` writes it in memory): labelled at the dose asked,
    measured saha@1000 was scored as saha@50, and every group took the dose of the last one asked."""
    from distgen.data.disk import DiskCells
    from distgen.data.disk_split import disk_split
    from distgen.data.streaming import predict_to_disk

    ds = Dataset.load({"dataset": path, "schema": SCHEMA.to_dict(), "set_size": 4, "split": SPLIT})
    disk = DiskCells(path, ds.data.schema)
    pred = predict_to_disk(DoseSpy(ds.info), disk, tmp_path / "at.h5ad", set_size=4, seed=0, split=disk_split(disk, **SPLIT),
                           doses={"saha": 50.0}, real=tmp_path / "real.h5ad")
    written, truth = ad.read_h5ad(pred), ad.read_h5ad(tmp_path / "real.h5ad")
    col = written.uns["distgen"]["pert_col"]
    assert set(written.obs[col].astype(str)) - {"non-targeting"} == {"dexa@1000", "saha@50"}
    assert set(truth.obs[col].astype(str)) - {"non-targeting"} == {"dexa@1000", "saha@1000"}
    measured = ds.truth("test")
    for c in ("dexa@1000", "saha@1000"):
        assert (truth.obs[col] == c).sum() == (measured.conditions == c).sum()


def test_a_population_asked_at_a_dose_float32_cannot_hold_keeps_its_label(tmp_path):
    """Doses 0.1 and 0.3 have no float32: asked at saha 0.1, saha's population is written ``saha@0.1`` and dexa's, at its own
    0.3, stays ``dexa@0.3`` (the labels were made from the model's float32 doses: ``saha@0.10000000149011612`` and
    ``dexa@0.30000001192092896``, labels no truth holds, so dexa's prediction was never scored)."""
    rows = []
    for ct in ("A549", "K562"):
        rows += [("vehicle", ct, "0")] * 10
        rows += [(d, ct, x) for d in ("dexa", "saha") for x in ("0.1", "0.2", "0.3") for _ in range(5)]
    obs = pd.DataFrame(rows, columns=["drug", "cell_line", "dose"], index=[f"c{i}" for i in range(len(rows))])
    x = np.random.default_rng(0).poisson(3.0, (len(rows), 6)).astype(np.float32)
    ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(6)])).write_h5ad(tmp_path / "d.h5ad")
    ds = Dataset.load({"dataset": str(tmp_path / "d.h5ad"), "schema": SCHEMA.to_dict(), "set_size": 4, "split": SPLIT})
    assert {g.condition for g in ds.groups("test")} == {"dexa@0.3", "saha@0.3"}
    cells = predict(DoseSpy(ds.info), ds, seed=0, doses={"saha": 0.1}, preflight=False)
    assert set(cells.conditions.tolist()) - {"control"} == {"dexa@0.3", "saha@0.1"}


def test_a_held_out_top_dose_asked_at_another_dose_warns_only_about_the_dose_asked(path):
    """``distgen predict RUN --dose 3000`` on a ``held_out_dose`` split warned about 3000 (asked) and also about 1000 (the
    held-out groups' own dose, which the request replaces): the extrapolation it names must be the one it makes."""
    import warnings

    from distgen.data.doses import DoseExtrapolationWarning

    ds = Dataset.load({"dataset": path, "schema": SCHEMA.to_dict(), "set_size": 4, "split": SPLIT})
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        predict(DoseSpy(ds.info), ds, seed=0, doses=3000.0)
    said = [str(w.message) for w in seen if issubclass(w.category, DoseExtrapolationWarning)]
    assert said and all("asked at 3000" in m for m in said) and not any("asked at 1000" in m for m in said), said
    with warnings.catch_warnings(record=True) as seen:  # at its own dose, the held-out top dose is an extrapolation
        warnings.simplefilter("always")
        predict(DoseSpy(ds.info), ds, seed=0)
    said = [str(w.message) for w in seen if issubclass(w.category, DoseExtrapolationWarning)]
    assert len(said) == 1, said  # once for the prediction, not once per group
    assert said[0].startswith("predict: populations predicted at their own measured dose") and "asked" not in said[0]
    assert "dexa measured at 1000, the training cells carry it at 1 to 100; saha measured at 1000" in said[0]


def test_a_warning_of_the_model_is_said_once_whatever_the_number_of_groups(path):
    """Python prints a warning once per place (the default filter); a ``warnings.catch_warnings`` entered per group (to
    quiet the held-out dose's own warning under --dose) reset that record on leaving, so a warning the model gave while
    generating was printed once per group, with or without --dose."""
    import warnings

    from distgen.data.doses import DoseExtrapolationWarning

    class Noisy(DoseSpy):
        def predict(self, control, control_mask, labels):
            warnings.warn("a warning of the model's generation", UserWarning, stacklevel=1)  # one place
            return super().predict(control, control_mask, labels)

    ds = Dataset.load({"dataset": path, "schema": SCHEMA.to_dict(), "set_size": 4, "split": SPLIT})
    assert len(ds.groups("test")) > 1
    for doses in (None, 3000.0):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("default")
            predict(Noisy(ds.info), ds, seed=0, doses=doses)
        ours = [w for w in seen if "model's generation" in str(w.message)]
        assert len(ours) == 1, (doses, len(ours))
        said = [str(w.message) for w in seen if issubclass(w.category, DoseExtrapolationWarning)]
        assert said and all("asked at 3000" in m for m in said) if doses else any("measured at 1000" in m for m in said)


def test_an_interior_dose_split_trains_predicts_and_evaluates_without_extrapolating(path, tmp_path):
    """``test_doses: interior`` end to end: the doses between the lowest and highest are held out, predicted at their own
    dose (inside the training range: no extrapolation warning) and scored each on its own; split.json records the choice."""
    import json
    import warnings

    from distgen.data.doses import DoseExtrapolationWarning

    cfg = _config(path, {"name": "onehot", "dim": 8, "dose": "log"})
    cfg["data"]["split"] = {**SPLIT, "test_conditions": ["dexa"], "test_doses": "interior"}
    assert main(["train", str(save_yaml(cfg, tmp_path / "t.yaml")), "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "split.json").read_text())["params"]["test_doses"] == "interior"
    pred, real = tmp_path / "pred.h5ad", tmp_path / "real.h5ad"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["predict", str(tmp_path / "run"), "--out", str(pred), "--real", str(real)]) == 0
    assert not [w for w in seen if issubclass(w.category, DoseExtrapolationWarning)]
    assert main(["evaluate", "--pred", str(pred), "--real", str(real), "--out", str(tmp_path / "eval"), *EVAL]) == 0
    rows = pd.read_csv(tmp_path / "eval" / "metrics.csv")
    assert set(rows["perturbation"]) == {f"dexa@{x} @ {k}" for x in (10, 100) for k in ("A549", "K562")}
    assert np.isfinite(rows["mse"]).all()


@pytest.mark.parametrize("held", ["nutlin", "dexa"])  # four doses within the label; one (the held-out top dose) per label
def test_the_api_scores_a_file_with_a_dose_column_against_a_dataset_as_the_cli_does(path, tmp_path, held):
    """``distgen.evaluate(pred_file, dataset)`` read a prediction file whose labels are bare (``nutlin``) with the dose in a
    column of its own as it was: its labels paired none of the dataset's populations (``nutlin@10``), where ``distgen
    evaluate`` on that file and the dataset's truth file scores each (label, dose). Both now give the same metrics."""
    from distgen.pipeline.predict import write_cells

    split = {**SPLIT, "test_conditions": [held]} if held == "dexa" else {**SPLIT, "kind": "random_conditions", "test_conditions": [held]}
    ds = Dataset.load({"dataset": path, "schema": SCHEMA.to_dict(), "set_size": 4, "split": split})
    real = tmp_path / "real.h5ad"
    write_cells(ds, ds.truth("test"), real, "real")
    truth = ad.read_h5ad(real)
    col, control = truth.uns["distgen"]["pert_col"], truth.uns["distgen"]["control"]
    pred = truth[np.random.default_rng(0).permutation(truth.n_obs)].copy()  # another tool's file: bare labels, a dose column
    labels = pred.obs[col].astype(str)
    pred.obs["dose"] = ["0" if v == control else v.partition("@")[2] for v in labels]
    pred.obs[col] = [v.partition("@")[0] for v in labels]
    pred.X = pred.X + 0.25 * np.random.default_rng(1).random(pred.X.shape).astype(np.float32)  # not a copy of the truth
    del pred.uns["distgen"]
    pred.write_h5ad(tmp_path / "pred.h5ad")
    assert main(["evaluate", "--pred", str(tmp_path / "pred.h5ad"), "--real", str(real), "--out", str(tmp_path / "cli"),
                 *EVAL, "--control", control]) == 0
    with pytest.warns(UserWarning, match="doses:"):
        distgen.evaluate(str(tmp_path / "pred.h5ad"), ds, tmp_path / "api", metric_names=["mse"], make_plots=False, ceiling=False,
                         baselines=[], progress=False, control=control)
    cli, api = (pd.read_csv(tmp_path / d / "metrics.csv").set_index("perturbation")["mse"].sort_index() for d in ("cli", "api"))
    assert set(cli.index) == {f"{g} @ {k}" for g, k in ds.split.test_groups}
    assert np.isfinite(cli).all()
    pd.testing.assert_series_equal(cli, api)


def test_a_held_out_top_dose_is_warned_of_as_measured_and_a_dose_asked_as_asked(path):
    """Predicting a ``held_out_dose`` run's own held-out top dose warned "Dataset.labels: ... dexa asked at 1000", once per
    group, worded for a request nobody made. It is now one warning for the prediction, saying the populations are at
    their own measured dose; a label asked at a dose of no population (``dexa@3000``) keeps the request's wording."""
    import warnings

    from distgen.data.doses import DoseExtrapolationWarning

    ds = Dataset.load({"dataset": path, "schema": SCHEMA.to_dict(), "set_size": 4, "split": SPLIT})
    with pytest.warns(DoseExtrapolationWarning, match=r"^Dataset\.labels: populations predicted at their own measured dose.*dexa measured at 1000"):
        ds.labels(["dexa@1000"], ["A549"])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ds.labels(["dexa@3000"], ["A549"])
    said = [str(w.message) for w in seen if issubclass(w.category, DoseExtrapolationWarning)]
    assert len(said) == 1 and "dexa asked at 3000, the training cells carry it at 1 to 100" in said[0], said
    with warnings.catch_warnings(record=True) as seen:  # inside the range: nothing to say
        warnings.simplefilter("always")
        ds.labels(["dexa@10"], ["A549"])
    assert not [w for w in seen if issubclass(w.category, DoseExtrapolationWarning)]


def test_the_streaming_predictor_warns_of_a_held_out_top_dose_as_memory_does(path, tmp_path):
    """``distgen.predict`` on a held_out_dose split warns, once, that the held-out populations are at their own measured
    dose outside the training range; ``predict_to_disk`` without ``doses=`` said nothing (its dose record was read only
    when doses were asked). Both now warn the same, from the training part of the split or a run's ``trained_doses``;
    without either nothing is known of training and nothing is said."""
    import warnings

    from distgen.data.disk import DiskCells
    from distgen.data.disk_split import disk_split
    from distgen.data.doses import DoseExtrapolationWarning
    from distgen.data.streaming import predict_to_disk

    ds = Dataset.load({"dataset": path, "schema": SCHEMA.to_dict(), "set_size": 4, "split": SPLIT})
    disk = DiskCells(path, ds.data.schema)

    def said(run) -> list[str]:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            run()
        return [str(w.message) for w in seen if issubclass(w.category, DoseExtrapolationWarning)]

    memory = said(lambda: predict(DoseSpy(ds.info), ds, seed=0))
    split = disk_split(disk, **SPLIT)
    on_disk = said(lambda: predict_to_disk(DoseSpy(ds.info), disk, tmp_path / "p.h5ad", set_size=4, seed=0, split=split))
    assert len(memory) == 1 and len(on_disk) == 1, (memory, on_disk)
    assert on_disk[0].split(":", 1)[1] == memory[0].split(":", 1)[1]  # the same words, after the caller's name
    ranges = {"dexa": (1.0, 100.0), "saha": (1.0, 100.0), "nutlin": (1.0, 1000.0)}  # a run's DataRecord.dose_ranges
    by_run = said(lambda: predict_to_disk(DoseSpy(ds.info), disk, tmp_path / "q.h5ad", set_size=4, seed=0, trained_doses=ranges))
    assert len(by_run) == 1 and "dexa measured at 1000" in by_run[0]
    assert said(lambda: predict_to_disk(DoseSpy(ds.info), disk, tmp_path / "r.h5ad", set_size=4, seed=0)) == []


def test_a_population_of_a_float32_dose_column_is_named_by_its_short_dose(tmp_path):
    """A float32 dose column labelled 0.3 as ``dexa@0.30000001192092896`` (``dexa@0.3`` since the dose labels round). Named
    as a user writes it, ``dexa@0.3``, in ``doses=`` it was refused as 'neither a population predicted nor a condition';
    it names that population (matched as float32, as models read doses), and so does the earlier long label, copied from
    an earlier report: ``population_of`` is the one rule."""
    from distgen.data.conditions import population_of

    a = sciplex()
    a = a[~a.obs["dose"].astype(str).str.contains("+", regex=False).to_numpy()].copy()
    a.obs["dose"] = a.obs["dose"].astype(str).map({"0": 0.0, "1": 0.1, "10": 0.3, "100": 3.3, "1000": 30.0}).astype(np.float32)
    a.write_h5ad(tmp_path / "f32.h5ad")
    ds = Dataset.load({"dataset": str(tmp_path / "f32.h5ad"), "schema": SCHEMA.to_dict(), "set_size": 4,
                       "split": {**SPLIT, "test_conditions": ["dexa"], "test_doses": [0.3]}})
    long = "dexa@0.30000001192092896"
    assert {g.condition for g in ds.groups("test")} == {"dexa@0.3"}
    for name in ("dexa@0.3", long):
        spy = DoseSpy(ds.info)
        predict(spy, ds, seed=0, doses={name: 5.0})
        assert {k for k, _ in spy.asked} == {"dexa@5"}
    assert population_of(long, ["dexa@0.3", "dexa@30"]) == "dexa@0.3" and population_of("dexa@0.4", ["dexa@0.3"]) is None
    assert population_of("dexa", ["dexa@0.3"]) is None


def _float32_doses(tmp_path) -> str:
    """``sciplex()`` less its combination, the doses a float32 column: 0.1, 0.3, 3.3, 30 (0.3 is 0.30000001192092896)."""
    a = sciplex()
    a = a[~a.obs["dose"].astype(str).str.contains("+", regex=False).to_numpy()].copy()
    a.obs["dose"] = a.obs["dose"].astype(str).map({"0": 0.0, "1": 0.1, "10": 0.3, "100": 3.3, "1000": 30.0}).astype(np.float32)
    out = tmp_path / "f32.h5ad"
    a.write_h5ad(out)
    return str(out)


#: The label of a float32 dose column's 0.3 as distgen wrote it before the short form (split files, runs, metrics of then).
LONG = "dexa@0.30000001192092896"


def _long(text: str) -> str:
    """``text`` with each float32 dose of ``_float32_doses`` that is not a short float64 written long, as Python writes the
    float64 of the float32 (``0.3``: ``0.30000001192092896``): the labels of earlier versions."""
    import re

    return re.sub(r"@(0\.1|0\.3|3\.3)(?![0-9])", lambda m: f"@{float(np.float32(m.group(1)))!r}", text)


def test_float32_doses_are_labelled_short_and_a_run_with_the_long_labels_still_works(tmp_path, capsys):
    """A float32 dose column labelled its 0.3 ``dexa@0.30000001192092896`` everywhere (split, predictions, metrics.csv).
    It is ``dexa@0.3`` now; a run folder, split file, prediction and metrics.csv written with the long label (built here by
    writing it into them) still loads, resumes, predicts, evaluates and compares, and its data hash is the one stored
    (the cells' names and the long labels: no 'data changed' refusal)."""
    import hashlib
    import json

    from distgen.data.split import Split
    from distgen.evaluation.compare import compare

    path = _float32_doses(tmp_path)
    doc = _config(path, {"name": "onehot", "dim": 8})
    doc["data"]["split"] = {**SPLIT, "test_conditions": ["dexa"], "test_doses": [0.3]}
    cfg = save_yaml(doc, tmp_path / "t.yaml")
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    split = json.loads((run / "split.json").read_text())
    assert {c for c, _ in split["test_groups"]} == {"dexa@0.3"} and "dexa@0.3" in split["test_conditions"]
    ds = Dataset.load({**doc["data"], "split": str(run / "split.json")})
    assert "dexa@0.3" in set(ds.data.conditions) and not any("0000000" in c for c in set(ds.data.conditions))
    # the data hash is of the long labels, as stored by runs and split files of earlier versions
    h = hashlib.sha256()
    for part in (list(map(str, ds.data.adata.obs_names)), [_long(c) for c in ds.data.conditions], list(ds.data.contexts), list(ds.data.batches)):
        h.update("\x1f".join(map(str, part)).encode())
        h.update(b"\x1e")
    assert ds.data.cells_hash == h.hexdigest()[:16] == split["data_hash"]

    pred, real = tmp_path / "pred.h5ad", tmp_path / "real.h5ad"
    assert main(["predict", str(run), "--out", str(pred), "--real", str(real)]) == 0
    col, control = (ad.read_h5ad(pred).uns["distgen"][k] for k in ("pert_col", "control"))
    assert set(ad.read_h5ad(pred).obs[col].astype(str)) - {control} == {"dexa@0.3"}
    assert main(["evaluate", "--pred", str(pred), "--real", str(real), "--out", str(tmp_path / "new"), *EVAL]) == 0
    new = pd.read_csv(tmp_path / "new" / "metrics.csv").set_index("perturbation")["mse"]
    assert set(new.index) == {"dexa@0.3 @ A549", "dexa@0.3 @ K562"}

    # an earlier version's run folder: its split file holds the long labels (hash consistent, as it wrote them)
    old = Split.from_dict({**split, "train_conditions": [_long(c) for c in split["train_conditions"]],
                           "test_conditions": [_long(c) for c in split["test_conditions"]],
                           "test_groups": [[_long(c), k] for c, k in split["test_groups"]]})
    old.save(run / "split.json")
    assert LONG in (run / "split.json").read_text()
    loaded = Split.load(run / "split.json")  # as stored; labelled as the data's where it meets data at several doses
    assert {c for c, _ in loaded.test_groups} == {LONG} and {c for c, _ in loaded.labelled_as(ds.data).test_groups} == {"dexa@0.3"}
    loaded.check_leakage(ds.data)
    old.check_leakage(ds.data)  # a split built by hand from the long labels too
    assert Dataset.load({**doc["data"], "split": str(run / "split.json")}).split.test_groups == ds.split.test_groups
    assert main(["train", str(cfg), "train.steps=3", "--out", str(run), "--resume"]) == 0  # resumed, not 'data changed'
    again = tmp_path / "again.h5ad"
    assert main(["predict", str(run), "--out", str(again)]) == 0
    assert set(ad.read_h5ad(again).obs[col].astype(str)) - {control} == {"dexa@0.3"}

    # an earlier version's prediction (long labels) scored against a truth written now: paired, the same scores
    p = ad.read_h5ad(pred)
    p.obs[col] = p.obs[col].astype(str).map(_long)
    p.write_h5ad(tmp_path / "old_pred.h5ad")
    assert main(["evaluate", "--pred", str(tmp_path / "old_pred.h5ad"), "--real", str(real), "--out", str(tmp_path / "mixed"), *EVAL]) == 0
    mixed = pd.read_csv(tmp_path / "mixed" / "metrics.csv").set_index("perturbation")["mse"]
    assert mixed.sort_index().equals(new.sort_index())

    # an earlier version's evaluation (metrics.csv and summary.json written with the long label) compared with a new one
    (tmp_path / "old").mkdir()
    for name in ("metrics.csv", "summary.json"):
        (tmp_path / "old" / name).write_text(_long((tmp_path / "new" / name).read_text()))
    assert LONG in (tmp_path / "old" / "metrics.csv").read_text() and LONG in (tmp_path / "old" / "summary.json").read_text()
    result = compare(tmp_path / "old", tmp_path / "new", n_boot=50)
    assert result["n_shared"] == 2

    # the page of an earlier evaluation folder whose files hold the long labels: its cells (read back as dexa@0.3) are
    # shown under the evaluation's own rows; before, "the loaded cells name none of the evaluated conditions"
    from distgen.report.__main__ import main as report

    r = ad.read_h5ad(real)
    r.obs[col] = r.obs[col].astype(str).map(_long)
    r.write_h5ad(tmp_path / "old_real.h5ad")
    (tmp_path / "page").mkdir()
    for name in ("metrics.csv", "summary.json", "calibration.csv"):
        (tmp_path / "page" / name).write_text(_long((tmp_path / "mixed" / name).read_text()))
    summary = json.loads((tmp_path / "page" / "summary.json").read_text())
    summary["real"] = str(tmp_path / "old_real.h5ad")
    (tmp_path / "page" / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    assert report([str(tmp_path / "page"), "--out", str(tmp_path / "page" / "r.html")]) == 0
    page = (tmp_path / "page" / "r.html").read_text()
    assert "not the files this evaluation scored" not in capsys.readouterr().err
    assert LONG in page and "name none of the evaluated conditions" not in page and "section is left empty" not in page
