"""A training run's warnings reach its folder: every UserWarning ``distgen train`` (or ``distgen.fit(..., run_dir=)``)
showed is in its ``manifest.json`` ``warnings``, once, and ``distgen predict`` and the report show it again
(``distgen.warned``; ``distgen run`` puts them in its evaluation's notes)."""

import json
import warnings

import pytest
import yaml

from distgen.cli import main
from distgen.config import InertSettingWarning
from distgen.report import ReportInputs, RunRecord, render
from distgen.train import fit
from distgen.train.manifest import add_warnings, run_notes

from ..report.tiny import tiny_inputs
from .conftest import TINY_GENERATOR

#: a constant schedule has no decay to floor: train.min_lr_ratio does nothing, and training says so (InertSettingWarning)
INERT = ["train.schedule=constant", "train.min_lr_ratio=0.1"]
CONFIG = {
    "model": TINY_GENERATOR,
    "data": {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0}, "set_size": 8},
    "train": {"steps": 2, "sets_per_batch": 2, "checkpoint_every": 2, "log_every": 1, "progress": False},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("warned")
    cfg = root / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    with pytest.warns(InertSettingWarning, match="min_lr_ratio"):  # still shown as before
        assert main(["train", str(cfg), *INERT, "--out", str(root / "run")]) == 0
    return root, cfg


def _inert(notes):
    return [n for n in notes if "min_lr_ratio" in n]


def test_distgen_train_records_the_warnings_it_showed_in_its_manifest(trained):
    manifest = json.loads((trained[0] / "run" / "manifest.json").read_text())
    assert len(_inert(manifest.get("warnings", []))) == 1  # shown at least twice (the config, then fit): recorded once
    assert manifest["training"]["steps_done"] == 2


def test_distgen_predict_shows_what_the_training_warned(trained, tmp_path, capsys):
    root, _ = trained
    capsys.readouterr()
    assert main(["predict", str(root / "run"), "--out", str(tmp_path / "pred.h5ad")]) == 0
    err = capsys.readouterr().err
    said = [ln for ln in err.splitlines() if ln.startswith("note: the training of this run warned:")]
    assert len(said) == 1 and "min_lr_ratio" in said[0]


def test_a_resumed_run_keeps_one_record_of_a_warning_it_shows_again(trained, tmp_path):
    import shutil

    root, cfg = trained
    shutil.copytree(root / "run", tmp_path / "run")
    with pytest.warns(InertSettingWarning):
        assert main(["train", str(cfg), *INERT, "train.steps=4", "--out", str(tmp_path / "run"),
                     "--resume"]) == 0
    recorded = json.loads((tmp_path / "run" / "manifest.json").read_text())["warnings"]
    assert len(_inert(recorded)) == 1 and len(recorded) == len(set(recorded))


def test_fit_with_a_run_dir_records_its_warnings_in_a_manifest(tmp_path, make_model, table):
    model = make_model()
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        fit(model, table, set_size=4, run_dir=tmp_path / "r", steps=2, sets_per_batch=2, progress=False, schedule="constant",
            min_lr_ratio=0.1, checkpoint_every=2)
    assert _inert(str(w.message) for w in shown)
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert len(_inert(manifest["warnings"])) == 1 and manifest["seed"] == 0 and "versions" in manifest
    plain = make_model()
    fit(plain, table, set_size=4, run_dir=tmp_path / "plain", steps=2, sets_per_batch=2, progress=False, checkpoint_every=2)
    assert "warnings" not in json.loads((tmp_path / "plain" / "manifest.json").read_text())  # nothing warned: no list


def test_add_warnings_keeps_order_and_each_once(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"seed": 1}))
    add_warnings(path, ["b", "a", "b"])
    add_warnings(path, ["a", "c"])
    assert json.loads(path.read_text()) == {"seed": 1, "warnings": ["b", "a", "c"]}


def test_the_report_shows_a_runs_warnings_in_its_notes_once():
    inputs = tiny_inputs()
    manifest = {"preflight": ["held-out atom X"], "data": {"warnings": ["labels look alike"]}, "warnings": ["lr does nothing"]}
    assert run_notes(manifest) == ["held-out atom X", "data: labels look alike", "lr does nothing"]
    summary = {**inputs.summary, "notes": ["lr does nothing"]}  # distgen run's notes already hold it: shown once
    html = render(ReportInputs(inputs.model, inputs.references, summary, run=RunRecord(manifest=manifest)))
    notes = html.split('<section id="notes">', 1)[1]
    assert notes.count("lr does nothing") == 1 and "data: labels look alike" in notes and "held-out atom X" in notes


def test_a_fit_stopped_by_an_error_keeps_what_it_warned(tmp_path, make_model, table):
    def stop(trainer, step):
        raise RuntimeError("stopped by the user's callback")

    with pytest.warns(InertSettingWarning), pytest.raises(RuntimeError, match="callback"):  # the error itself, as it was
        fit(make_model(), table, set_size=4, run_dir=tmp_path / "r", steps=4, sets_per_batch=2, progress=False,
            schedule="constant", min_lr_ratio=0.1, checkpoint_every=2, callbacks=[stop])
    assert len(_inert(json.loads((tmp_path / "r" / "manifest.json").read_text())["warnings"])) == 1


def test_load_run_gives_what_the_training_warned(trained):
    import distgen

    assert _inert(distgen.load_run(trained[0] / "run").warnings)
