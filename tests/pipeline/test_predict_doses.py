"""A held-out group is asked at its own dose (``schema.dose_col``), in memory as on disk (unseen-data round, 2026-12-06).

``distgen.predict`` asked every group at dose 1 while training sets carried the file's doses (a sci-Plex drug at 100 nM),
so a dose-aware conditioner (``dose: log``) predicted another dose than the one scored; ``predict_to_disk`` already
asked each group's own dose, so the two predictors disagreed on such a file.
"""

import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.data import Dataset
from distgen.data.streaming import predict_to_disk
from distgen.pipeline.predict import predict

SCHEMA = {"perturbation_col": "drug", "control_labels": ["vehicle"], "context_cols": ["cell_line"], "dose_col": "dose",
          "perturbation_type": "chemical"}
DOSES = {("dexa", "A549"): 100.0, ("dexa", "K562"): 1000.0, ("saha", "A549"): 10.0, ("saha", "K562"): 10.0}  # held out
TRAINED = {("nutlin", "A549"): 5.0, ("nutlin", "K562"): 5.0}


@pytest.fixture(scope="module")
def sciplex(tmp_path_factory):
    """Counts of vehicle (dose 0), dexa, saha and nutlin in two cell lines, one dose per drug and line (none 1)."""
    rng = np.random.default_rng(3)
    rows = [(d, ct, 0.0 if d == "vehicle" else {**DOSES, **TRAINED}[(d, ct)]) for d in ("vehicle", "dexa", "saha", "nutlin") for ct in ("A549", "K562") for _ in range(6)]
    obs = pd.DataFrame(rows, columns=["drug", "cell_line", "dose"], index=[f"c{i}" for i in range(len(rows))])
    x = rng.poisson(3.0, (len(rows), 5)).astype(np.float32)
    path = tmp_path_factory.mktemp("doses") / "sciplex.h5ad"
    ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(5)])).write_h5ad(path)
    return str(path)


class DoseSpy:
    """Hands back its control cells and records the dose each (condition, context) is asked at."""

    def __init__(self, info):
        self.info, self.asked = info, {}

    def predict(self, control, control_mask, labels):
        for p, d, c in zip(labels.perturbation.tolist(), labels.dose.tolist(), labels.context.tolist()):
            key = ("+".join(self.info.perturbations[a] for a in p if a >= 0), self.info.contexts[c])
            self.asked.setdefault(key, set()).update(x for a, x in zip(p, d) if a >= 0)
        return control.clone()

    def can_predict(self, atoms):
        return [True] * len(atoms)


def test_each_group_is_asked_at_its_own_dose_in_memory_and_on_disk(sciplex, tmp_path):
    ds = Dataset.load({"dataset": sciplex, "schema": SCHEMA, "set_size": 4,
                       "split": {"kind": "random_conditions", "test_conditions": ["dexa", "saha"], "val_frac": 0.0, "seed": 0}})
    spy = DoseSpy(ds.info)
    predict(spy, ds, seed=0)
    assert spy.asked == {k: {v} for k, v in DOSES.items()}
    disk = DoseSpy(ds.info)
    predict_to_disk(disk, sciplex, tmp_path / "pred.h5ad", schema=ds.data.schema, set_size=4)
    assert {k: v for k, v in disk.asked.items() if k in DOSES} == spy.asked  # the file's every group: the held-out ones as in memory


# ------------------------------------------------------------------ Python paths, asked doses, a trained onehot model
import warnings  # noqa: E402

import torch  # noqa: E402

import distgen  # noqa: E402
from distgen.cli import main  # noqa: E402
from distgen.data.doses import DoseError, DoseExtrapolationWarning  # noqa: E402
from distgen.models.preflight import PreflightWarning, check_split  # noqa: E402

HELD = {"kind": "held_out_context_perturbation", "test_groups": [["dexa", "A549"], ["saha", "K562"]], "val_frac": 0.0}
TINY = {"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8}, "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                  "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 2}}},
        "train": {"steps": 3, "sets_per_batch": 2, "progress": False, "seed": 0}}


@pytest.fixture(scope="module")
def held(sciplex):
    """dexa held out in A549 (100; trained in K562 at 1000), saha in K562 (10; trained in A549 at 10)."""
    return Dataset.load({"dataset": sciplex, "schema": SCHEMA, "set_size": 4, "split": HELD})


def test_labels_ask_what_predict_asks(held):
    """``model.predict(control, mask, data.labels(...))`` asks a group at the dose ``distgen.predict`` asks it at (was 1)."""
    spy = DoseSpy(held.info)
    predict(spy, held, seed=0)
    direct = DoseSpy(held.info)
    for g in held.groups():
        direct.predict(torch.zeros(1, 4, 5), None, held.labels([g.condition], [g.context], [g.batch]))
    assert direct.asked == spy.asked == {("dexa", "A549"): {100.0}, ("saha", "K562"): {10.0}}
    via_file = DoseSpy(held.info)
    via_file.predict(torch.zeros(1, 4, 5), None, held.data.labels_for(["dexa"], ["A549"]))
    assert via_file.asked == {("dexa", "A549"): {100.0}}


def test_predict_asks_the_doses_it_is_given(held):
    spy = DoseSpy(held.info)
    with pytest.warns(DoseExtrapolationWarning, match="^predict: doses outside .*dexa asked at 5000, the training cells carry it at 1000"):
        predict(spy, held, seed=0, doses={"dexa": 5000.0})  # a dose-response point above the trained one: said once
    assert spy.asked == {("dexa", "A549"): {5000.0}, ("saha", "K562"): {10.0}}  # the others at their own
    every = DoseSpy(held.info)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DoseExtrapolationWarning)
        predict(every, held, seed=0, doses=1.0)
    assert every.asked == {("dexa", "A549"): {1.0}, ("saha", "K562"): {1.0}}
    with pytest.raises(DoseError, match=r"doses names 'nutlin', not a condition of the groups predicted \(2 conditions: dexa, saha\)"):
        predict(DoseSpy(held.info), held, seed=0, doses={"nutlin": 5.0})
    with pytest.raises(DoseError, match=r"dose -3\.0 of saha is not a finite number >= 0"):
        predict(DoseSpy(held.info), held, seed=0, doses={"saha": -3.0})


@pytest.fixture(scope="module")
def trained(held, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "run"
    model = distgen.build(TINY, held)
    distgen.fit(model, held, config=TINY, run_dir=run)
    return model, run


def test_onehot_predicts_the_recorded_dose_not_dose_1(held, trained):
    """``onehot`` multiplies an atom's vector by its dose: a drug at its recorded 100 is another prediction than at 1."""
    model, _ = trained
    own = distgen.predict(model, held, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DoseExtrapolationWarning)
        at_1 = distgen.predict(model, held, seed=0, doses=1.0)
        at_100 = distgen.predict(model, held, seed=0, doses={"saha": 10.0, "dexa": 100.0})  # the recorded ones, said
    dexa = np.asarray(own.conditions) == "dexa"
    assert not torch.allclose(own.X[dexa], at_1.X[dexa])
    assert torch.equal(own.X, at_100.X)


def test_cli_and_python_predict_the_same_cells(held, trained, tmp_path):
    import anndata as ad

    model, run = trained
    assert main(["predict", str(run), "--out", str(tmp_path / "pred.h5ad")]) == 0
    cli = ad.read_h5ad(tmp_path / "pred.h5ad")
    loaded = distgen.load_run(run)
    again = distgen.predict(loaded.model, loaded.data, seed=loaded.seed, max_cells=loaded.max_cells)
    fitted = distgen.predict(model, held, seed=0)  # the model fit left, in memory
    assert np.array_equal(np.asarray(cli.X), again.X.numpy()) and torch.equal(again.X, fitted.X)


def test_a_model_whose_conditioner_ignores_doses_is_named_before_training(held):
    table = {"dexa": [1.0, 0.0], "saha": [0.0, 1.0], "nutlin": [1.0, 1.0]}

    def notes(conditioner):
        doc = {**TINY, "model": {**TINY["model"], "conditioner": conditioner}}
        return [n for n in check_split(distgen.build(doc, held), held, "test") if "dose_col" in n]

    blind = notes({"name": "embedding_table", "table": table, "dim": 8, "hidden": 8})
    assert len(blind) == 1 and "no part of this model that embeds perturbations reads them (EmbeddingTableConditioner (dose: none))" in blind[0]
    assert "nutlin 5" in blind[0] and "dose: linear, log or learned" in blind[0] and "{name: onehot, dose: log}" in blind[0]
    assert notes({"name": "embedding_table", "table": table, "dim": 8, "hidden": 8, "dose": "log"}) == []
    assert notes({"name": "onehot", "dim": 8}) == []
    for preset, part in (("perturbdiff", "CovariateConditioner"), ("scdfm", "PADTransformer (perturbation tokens)")):
        said = [n for n in check_split(distgen.build(preset, held), held, "test") if "dose_col" in n]
        assert len(said) == 1 and f"reads them ({part})" in said[0], (preset, said)


def _by_group(out):
    gen = out.obs["distgen_kind"].astype(str).to_numpy() == "predicted"
    keys = out.obs.loc[gen, "target"].astype(str) + "@" + out.obs.loc[gen, "celltype"].astype(str)
    return {k: np.asarray(out.X[gen])[(keys == k).to_numpy()] for k in sorted(set(keys))}


def test_the_streaming_predictor_asks_the_doses_memory_asks(held, trained, sciplex, tmp_path):
    """``predict_to_disk(doses=)``: the same doses, seed and split give the in-memory cells (it had no ``doses``)."""
    from distgen.data.disk import DiskCells
    from distgen.data.disk_split import disk_split

    model, _ = trained
    disk = DiskCells(sciplex, held.data.schema)
    split = disk_split(disk, **HELD)

    def streamed(name, **kw):
        return _by_group(ad.read_h5ad(predict_to_disk(model, disk, tmp_path / name, set_size=4, seed=0, split=split, **kw)))

    def in_memory(**kw):
        cells = distgen.predict(model, held, seed=0, **kw)
        return {f"{c}@{k}": cells.X.numpy()[(cells.conditions == c) & (cells.contexts == k)] for c, k in (("dexa", "A549"), ("saha", "K562"))}

    own = streamed("own.h5ad")
    for k, x in in_memory().items():
        assert np.array_equal(own[k], x), k
    warned = "dexa asked at 5000, the training cells carry it at 1000"
    with pytest.warns(DoseExtrapolationWarning, match=warned):
        mem = in_memory(doses={"dexa": 5000.0})
    with pytest.warns(DoseExtrapolationWarning, match=warned):  # the same range: the file's training part
        at = streamed("at.h5ad", doses={"dexa": 5000.0})
    assert set(at) == set(mem) and all(np.array_equal(at[k], mem[k]) for k in mem)
    assert not np.array_equal(at["dexa@A549"], own["dexa@A549"]) and np.array_equal(at["saha@K562"], own["saha@K562"])
    with pytest.warns(DoseExtrapolationWarning, match="dexa asked at 5000, the training cells carry it at 100 to 1000"):
        streamed("ranges.h5ad", doses={"dexa": 5000.0}, trained_doses={"dexa": (100.0, 1000.0)})
    with pytest.raises(DoseError, match=r"doses names 'nutlin', not a condition of the groups predicted"):
        streamed("bad.h5ad", doses={"nutlin": 5.0})
    assert not (tmp_path / "bad.h5ad").exists()  # refused before anything is written


# ------------------------------------------------------------------ distgen predict --dose


def test_cli_dose_predicts_what_python_doses_predicts(held, trained, tmp_path):
    """``distgen predict --dose`` (there was no way to ask a dose from the command line) = ``distgen.predict(doses=)``."""
    _, run = trained
    loaded = distgen.load_run(run)

    def python(doses):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DoseExtrapolationWarning)
            return distgen.predict(loaded.model, loaded.data, seed=loaded.seed, max_cells=loaded.max_cells, doses=doses).X.numpy()

    def cli(*dose):
        out = tmp_path / f"pred{len(list(tmp_path.iterdir()))}.h5ad"
        assert main(["predict", str(run), "--out", str(out), "--dose", *dose]) == 0
        return ad.read_h5ad(out)

    with pytest.warns(DoseExtrapolationWarning, match=r"^predict: doses outside .*dexa asked at 5000, the training cells carry it at 1000"):
        at = cli("dexa=5000")
    assert np.array_equal(np.asarray(at.X), python({"dexa": 5000.0}))
    assert not np.array_equal(np.asarray(at.X), python(None))  # the dose reached the model
    assert at.uns["distgen"]["provenance"]["doses"] == "{'dexa': 5000.0}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DoseExtrapolationWarning)
        assert np.array_equal(np.asarray(cli("1000").X), python(1000.0))
        assert np.array_equal(np.asarray(cli("saha=10", "dexa=300").X), python({"dexa": 300.0, "saha": 10.0}))
        (tmp_path / "doses.yaml").write_text("dexa: 300\nsaha: null\n")
        assert np.array_equal(np.asarray(cli(str(tmp_path / "doses.yaml")).X), python({"dexa": 300.0}))


@pytest.mark.parametrize("dose, said", [
    (["dexa=-3"], r"predict: dose -3\.0 of dexa is not a finite number >= 0"),  # Python's DoseError, word for word
    (["dexa=nan"], r"predict: dose nan of dexa is not a finite number >= 0"),
    (["nutlin=5"], r"predict: doses names 'nutlin', not a condition of the groups predicted \(2 conditions: dexa, saha\)"),
    (["dexa=1+2"], r"dexa has 1 atom \(dexa\) but its doses \[1\.0, 2\.0\] hold 2 values"),
    (["lots"], r"--dose 'lots' is not a number, a COND=DOSE pair nor a file; give one number"),
    (["5", "dexa=3"], r"--dose '5': a single number \(or file\) is for all conditions"),
    (["dexa=x"], r"--dose 'dexa=x': 'x' is not a dose"),
    (["dexa=3", "dexa=4"], "--dose names dexa twice"),
])
def test_cli_dose_refusals_exit_2_naming_the_fix(trained, tmp_path, capsys, dose, said):
    _, run = trained
    out = tmp_path / "pred.h5ad"
    assert main(["predict", str(run), "--out", str(out), "--dose", *dose]) == 2
    err = capsys.readouterr().err
    assert re.search(said, err), err
    assert not out.exists()


def test_cli_dose_file_refusal(trained, tmp_path, capsys):
    _, run = trained
    (tmp_path / "doses.yaml").write_text("- 1\n- 2\n")
    assert main(["predict", str(run), "--out", str(tmp_path / "p.h5ad"), "--dose", str(tmp_path / "doses.yaml")]) == 2
    assert "holds list [1, 2], not a number nor a mapping of condition to dose" in capsys.readouterr().err


def test_predict_data_file_takes_dose_and_warns_against_the_runs_training_range(trained, sciplex, tmp_path):
    """``distgen predict RUN --data FILE --dose``: FILE's groups at the doses asked (they were always at FILE's own)."""
    _, run = trained

    def groups(out):
        return _by_group(ad.read_h5ad(out))

    assert main(["predict", str(run), "--data", sciplex, "--out", str(tmp_path / "own.h5ad")]) == 0
    with pytest.warns(DoseExtrapolationWarning, match=r"dexa asked at 5000, the training cells carry it at 1000"):
        assert main(["predict", str(run), "--data", sciplex, "--out", str(tmp_path / "at.h5ad"), "--dose", "dexa=5000"]) == 0
    own, at = groups(tmp_path / "own.h5ad"), groups(tmp_path / "at.h5ad")
    assert set(own) == set(at) and {k.split("@")[0] for k in own} == {"dexa", "saha", "nutlin"}
    for k in own:
        assert np.array_equal(own[k], at[k]) != k.startswith("dexa@"), k  # dexa moved, the others at their own dose
    written = ad.read_h5ad(tmp_path / "at.h5ad").uns["distgen"]["provenance"]
    assert written["doses"] == "{'dexa': 5000.0}" and written["part"] == "file"


def test_a_dose_blind_model_is_named_when_predicting_a_file_with_doses(held, sciplex, tmp_path, capsys):
    """``--data FILE`` gave no ignored-doses note: a model that reads no dose predicted FILE's dosed cells without a word."""
    doc = {**TINY, "model": {**TINY["model"], "conditioner": {"name": "embedding_table", "dim": 8, "hidden": 8,
                                                               "table": {"dexa": [1.0, 0.0], "saha": [0.0, 1.0], "nutlin": [1.0, 1.0]}}}}
    model = distgen.build(doc, held)
    with pytest.warns(PreflightWarning, match="the training cells carry doses"):
        distgen.fit(model, held, config=doc, run_dir=tmp_path / "blind")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "blind"), "--data", sciplex, "--out", str(tmp_path / "p.h5ad")]) == 0
    err = capsys.readouterr().err
    assert f"the cells of {sciplex} to predict carry doses (dexa 100 to 1000, nutlin 5, saha 10)" in err
    assert "no part of this model that embeds perturbations reads them (EmbeddingTableConditioner (dose: none))" in err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DoseExtrapolationWarning)
        assert main(["predict", str(tmp_path / "blind"), "--out", str(tmp_path / "q.h5ad"), "--dose", "1"]) == 0
    assert "other doses are asked (doses=, --dose), but no part of this model" in capsys.readouterr().err


# ------------------------------------------------------------------ Cells.to_table: dose 1, read by no baseline


@pytest.mark.parametrize("name", ["additive", "control", "linear", "matching_mean", "mean_perturbation", "noncontrol_mean"])
def test_the_closed_form_baselines_read_no_dose(held, name):
    """``Cells.to_table`` puts dose 1 on every atom (a ``Cells`` and the cell-eval layout carry no dose); the baselines it
    feeds (``distgen evaluate --train``) never read one: fitted on the real doses or on dose 1, asked at any dose, the same
    cells. A baseline that starts reading doses fails here, and ``to_table`` must then carry them."""
    import dataclasses

    from distgen.pipeline.references import BASELINE_ROLES, _baseline
    from distgen.types import Cells

    assert name in BASELINE_ROLES
    train = held.train_table
    at_one = Cells.from_table(train).to_table(held.info)
    assert torch.equal(at_one.labels.dose, (train.labels.perturbation >= 0).float())
    assert not torch.equal(train.labels.dose, at_one.labels.dose)  # the real doses: 5, 10, 1000
    labels = held.labels(["dexa", "saha"], ["A549", "K562"])
    other = dataclasses.replace(labels, dose=labels.dose * 7.0)
    control = train.X[torch.from_numpy(np.flatnonzero(held.data.is_control[held.split.train.numpy()]))][:8].reshape(2, 4, -1)
    mask = torch.ones(2, 4, dtype=torch.bool)
    real, one = _baseline(name).fit(train), _baseline(name).fit(at_one)
    want = real.predict(control, mask, labels)
    assert torch.equal(one.predict(control, mask, labels), want) and torch.equal(real.predict(control, mask, other), want)


def test_data_file_doses_warn_against_the_ranges_the_run_folder_records(held, sciplex, tmp_path, capsys):
    """Without the training file, ``--data FILE --dose`` reads the training doses from ``data_record.json`` (``dose_ranges``);
    a record written before them warns of nothing and says so."""
    import json
    import shutil

    moved = tmp_path / "train.h5ad"
    shutil.copy(sciplex, moved)
    data = Dataset.load({"dataset": str(moved), "schema": SCHEMA, "set_size": 4, "split": HELD})
    model = distgen.build(TINY, data)
    distgen.fit(model, data, config=TINY, run_dir=tmp_path / "run")
    moved.unlink()  # the run keeps what --data needs
    record = json.loads((tmp_path / "run" / "data_record.json").read_text())
    assert record["dose_ranges"] == {"dexa": [1000.0, 1000.0], "nutlin": [5.0, 5.0], "saha": [10.0, 10.0]}
    argv = ["predict", str(tmp_path / "run"), "--data", sciplex, "--dose", "saha=40"]
    with pytest.warns(DoseExtrapolationWarning, match=r"saha asked at 40, the training cells carry it at 10"):
        assert main([*argv, "--out", str(tmp_path / "a.h5ad")]) == 0
    del record["dose_ranges"]
    (tmp_path / "run" / "data_record.json").write_text(json.dumps(record))
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DoseExtrapolationWarning)
        assert main([*argv, "--out", str(tmp_path / "b.h5ad")]) == 0
    assert "written before distgen recorded the doses of the training cells" in capsys.readouterr().err
    assert np.array_equal(ad.read_h5ad(tmp_path / "a.h5ad").X, ad.read_h5ad(tmp_path / "b.h5ad").X)


def test_cli_dose_naming_a_home_folder_of_no_user_is_a_usage_error(tmp_path, capsys):
    """``--dose ~nouser/doses.yaml`` (no such user) ended in 'internal error: RuntimeError: Could not determine home
    directory'; it is refused as any other value that is not a number, a pair nor a file, before the run is read."""
    assert main(["predict", str(tmp_path / "run"), "--out", str(tmp_path / "p.h5ad"), "--dose", "~distgen-no-such-user/d.yaml"]) == 2
    assert "is not a number, a COND=DOSE pair nor a file" in capsys.readouterr().err
