"""Every evaluation writes its page: ``distgen run`` (with the training story), ``distgen evaluate``, ``distgen sweep``.

Small configs and a few training steps on the bundled Norman data; the pages are checked with the
same structural checks as the report's own tests (``tiny.check_page``).
"""

import json
import re
import shutil

import pytest

import distgen
from distgen.cli import main
from distgen.config import ConfigError, preset_of, save_yaml
from distgen.report import ReportInputs
from distgen.report.explain import MIN_CELLS, flagged

from .tiny import check_page, tiny_inputs

SECTIONS = ["headline", "per-perturbation", "distributions", "training"]
METRICS = "mse,pearson_delta"
DATA = {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, "set_size": 8}
#: perturbdiff-small on bundled Norman, cut to a few steps (and 5 sampling steps) so it runs in seconds
PRESET_RUN = ["perturbdiff-small", "data.dataset=norman_k562", "data.split={kind: combo_seen2, seed: 0, test_frac: 0.9}",
              "data.set_size=8", "train.steps=3", "train.sets_per_batch=2", "train.val_metrics=[]",
              "model.dynamics.sampler.start_step=4"]


def _section(html: str, key: str) -> str:
    """The HTML of one ``<section id=key>``."""
    start = html.index(f'id="{key}"')
    end = html.find("<section", start)
    return html[start:end if end > 0 else len(html)]


def _images(html: str) -> int:
    return len(re.findall(r'src="data:image/', html))


@pytest.fixture(scope="module")
def preset_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("wiring") / "pd"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["run", *PRESET_RUN, "--metrics", METRICS, "--out", str(out), "--no-progress"])
    assert rc == 0
    return out, buf.getvalue()


def test_run_writes_a_page_with_the_training_story_and_the_preset_diff(preset_run):
    out, stdout = preset_run
    page = out / "eval" / "report.html"
    assert f"report: {page}" in stdout
    html = page.read_text()
    check_page(html, SECTIONS)
    summary = json.loads((out / "eval" / "summary.json").read_text())
    assert summary["preset"] == "perturbdiff-small"
    train = _section(html, "training")
    assert _images(train) == 1  # the loss curves
    assert "Config: differences from preset <code>perturbdiff-small</code>" in train
    # the preset trains 1500 steps with 8 sets per batch; this run 3 steps with 2: both rows of the diff say so
    assert re.search(r"train\.steps</code></td><td>1500</td><td>3</td>", train)
    assert re.search(r"train\.sets_per_batch</code></td><td>8</td><td>2</td>", train)
    manifest = json.loads((out / "train" / "manifest.json").read_text())
    assert "Run manifest" in train and manifest["data"]["split_hash"] in train
    assert "Time per stage" in train and all(stage in train for stage in json.loads((out / "timings.json").read_text()))
    assert _images(_section(html, "distributions")) == 2  # the run's cells were in memory: embedding and marginals


def test_evaluate_of_a_run_prediction_finds_the_run_directory(preset_run, capsys):
    out, _ = preset_run
    rc = main(["evaluate", "--pred", str(out / "pred.h5ad"), "--real", str(out / "real.h5ad"), "--out", str(out / "eval2"),
               "--metrics", METRICS, "--baselines", "control", "--quiet"])
    assert rc == 0 and "report.html" in capsys.readouterr().out
    train = _section((out / "eval2" / "report.html").read_text(), "training")
    assert f"<code>{(out / 'train').resolve()}</code>" in train and _images(train) == 1
    assert "differences from preset <code>perturbdiff-small</code>" in train  # the preset the run recorded
    # distgen predict RUN --out RUN/pred.h5ad: the prediction inside the run directory itself
    shutil.copy(out / "pred.h5ad", out / "train" / "pred.h5ad")
    assert main(["evaluate", "--pred", str(out / "train" / "pred.h5ad"), "--real", str(out / "real.h5ad"), "--out", str(out / "eval3"),
                 "--metrics", "mse", "--baselines", "", "--no-ceiling", "--quiet"]) == 0
    train = _section((out / "eval3" / "report.html").read_text(), "training")
    assert f"<code>{(out / 'train').resolve()}</code>" in train and _images(train) == 1 and "Run manifest" in train


def test_a_train_run_records_its_preset_and_the_page_of_its_prediction_compares_with_it(preset_run, tmp_path, capsys):
    """distgen train keeps the preset its config derives from in the manifest; a prediction evaluated inside a run folder
    with no experiment's eval/summary.json beside it (a distgen train run) gets the preset diff from there. Before, the
    page of such a run said "no preset given to compare with"."""
    assert main(["train", *PRESET_RUN, "--out", str(tmp_path / "t")]) == 0
    assert json.loads((tmp_path / "t" / "manifest.json").read_text())["preset"] == "perturbdiff-small"
    out, _ = preset_run
    alone = tmp_path / "alone"
    shutil.copytree(out / "train", alone)  # the run folder without the experiment around it
    shutil.copy(out / "pred.h5ad", alone / "pred.h5ad")
    assert json.loads((alone / "manifest.json").read_text())["preset"] == "perturbdiff-small"
    assert main(["evaluate", "--pred", str(alone / "pred.h5ad"), "--real", str(out / "real.h5ad"), "--out", str(tmp_path / "ev"),
                 "--metrics", "mse", "--baselines", "", "--no-ceiling", "--quiet"]) == 0
    train = _section((tmp_path / "ev" / "report.html").read_text(), "training")
    assert "differences from preset <code>perturbdiff-small</code>" in train and "no preset given" not in train


def test_evaluate_of_two_files_says_there_is_no_training_story(tmp_path, capsys):
    from ..evaluation.synth import make_pair

    real, pred = make_pair(seed=3, n_genes=30, n_ctrl=40, n_cells=12, combos=False)
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    rc = main(["evaluate", "--pred", str(tmp_path / "pred.h5ad"), "--real", str(tmp_path / "real.h5ad"), "--out", str(tmp_path / "ev"),
               "--metrics", METRICS, "--quiet"])
    assert rc == 0 and "report.html" in capsys.readouterr().out
    html = (tmp_path / "ev" / "report.html").read_text()
    check_page(html, SECTIONS)
    train = _section(html, "training")
    assert "No training story" in train and str(tmp_path / "pred.h5ad") in train
    assert _images(train) == 0 and "Run manifest" not in train and "<table" not in train
    # --no-plots: neither the PNGs nor the page
    assert main(["evaluate", "--pred", str(tmp_path / "pred.h5ad"), "--real", str(tmp_path / "real.h5ad"),
                 "--out", str(tmp_path / "np"), "--metrics", "mse", "--no-plots", "--quiet"]) == 0
    assert (tmp_path / "np" / "summary.json").is_file() and not (tmp_path / "np" / "report.html").exists()


def test_a_fitted_model_derived_from_a_preset_and_no_plots(tmp_path, capsys):
    cfg = save_yaml({"base": "perturbdiff-small", "model": {"name": "additive"}, "data": DATA,
                     "evaluate": {"baselines": ["control", "additive"]}}, tmp_path / "add.yaml")
    assert main(["run", str(cfg), "--metrics", METRICS, "--out", str(tmp_path / "add"), "--no-progress"]) == 0
    html = (tmp_path / "add" / "eval" / "report.html").read_text()
    check_page(html, SECTIONS)
    train = _section(html, "training")
    assert "fitted, not trained" in train and _images(train) == 0
    assert re.search(r"model\.name</code></td><td>generator</td><td>additive</td>", train)  # a replaced model is one row
    assert json.loads((tmp_path / "add" / "eval" / "summary.json").read_text())["preset"] == "perturbdiff-small"
    assert main(["run", str(cfg), "--metrics", "mse", "--out", str(tmp_path / "np"), "--no-progress", "--no-plots"]) == 0
    assert (tmp_path / "np" / "eval" / "summary.json").is_file() and not (tmp_path / "np" / "eval" / "report.html").exists()
    assert "report: " + str(tmp_path / "np" / "eval" / "summary.md") in capsys.readouterr().out


def test_preset_of_follows_the_base_chain(tmp_path):
    assert preset_of("scdfm-small") == "scdfm-small"
    inner = save_yaml({"base": "scdfm-small", "train": {"steps": 3}}, tmp_path / "sub" / "inner.yaml")
    outer = save_yaml({"base": "sub/inner.yaml"}, tmp_path / "outer.yaml")  # relative to the file
    assert preset_of(str(inner)) == "scdfm-small" and preset_of(outer) == "scdfm-small"
    assert preset_of(outer, ["base=perturbdiff-small", "train.seed=1"]) == "perturbdiff-small"
    assert preset_of({"base": "perturbdiff"}) == "perturbdiff"
    assert preset_of({"model": {"name": "additive"}}) is None
    broken = save_yaml({"base": str(tmp_path / "missing.yaml")}, tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match=r"missing\.yaml' is neither a config file nor a preset"):  # as load_config says
        preset_of(broken)


#: A one-hot conditioner on held-out single genes: their rows are never trained (run anyway with allow_unembedded).
UNSEEN = {
    "model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8}, "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
              "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}}},
    "data": {"dataset": "norman_k562", "split": {"kind": "unseen_single", "seed": 0, "test_frac": 0.3}, "set_size": 8},
    "train": {"steps": 2, "sets_per_batch": 2, "progress": False},
    "evaluate": {"metrics": ["mse"], "baselines": ["control"], "ceiling": False},
    "preflight": {"allow_unembedded": True},
}


def test_unembeddable_atoms_are_recorded_and_flagged_on_the_page(tmp_path):
    cfg = save_yaml(UNSEEN, tmp_path / "unseen.yaml")
    assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-progress", "--json"]) == 0
    summary = json.loads((tmp_path / "run" / "eval" / "summary.json").read_text())
    record = summary["unembeddable"]
    split = distgen.load_data(**UNSEEN["data"]).split
    seen = {a for c in split.train_conditions for a in c.split("+")}  # the atoms of the training conditions
    expected = {c: [a for a in c.split("+") if a not in seen] for c in split.test_conditions}
    expected = {c: atoms for c, atoms in expected.items() if atoms}
    assert expected and record["component"] == "onehot" and record["conditions"] == expected
    html = (tmp_path / "run" / "eval" / "report.html").read_text()
    check_page(html, SECTIONS)
    flags = _section(html, "per-perturbation")
    assert "Flagged conditions" in flags
    for c, atoms in expected.items():
        assert f"unembeddable atom(s) {', '.join(atoms)}: onehot cannot embed them" in flags
        assert f"<td class=\"bad\">{c}</td>" in flags


def test_flags_name_unembeddable_atoms_too_few_cells_and_nan_metrics():
    from .tiny import tiny_data

    inp = tiny_inputs(cells=False)
    summary = {**inp.summary, "unembeddable": {"component": "onehot", "conditions": {"P1": ["P1"]}},
               "notes": [*inp.summary["notes"], "WARNING pre-flight: ... predictions of P1 come from untrained embeddings"]}
    few = tiny_data(cells=MIN_CELLS - 1)
    assert set(few.real.counts.tolist()[:-1]) == {MIN_CELLS - 1}
    from distgen.evaluation import run_metrics

    model = run_metrics(few, ["mse"])
    flags = flagged(ReportInputs(model, [], summary))
    assert flags["P1"][0].startswith("unembeddable atom(s) P1: onehot") and len(flags["P1"]) == 2  # atoms, then too few cells
    assert f"too few cells: {MIN_CELLS - 1} real cell(s)" in flags["P0"][0]
    assert "only 1 real cell" in " ".join(flags["P5"]) and not any("too few cells" in w for w in flags["P5"])  # NaN says it already
    many = flagged(ReportInputs(run_metrics(tiny_data(cells=MIN_CELLS), ["mse"]), [], {"notes": []}))
    assert list(many) == ["P5"]  # MIN_CELLS cells are enough; P5 has 1 real cell


def test_a_condition_holding_an_at_sign_is_flagged_by_its_own_atoms_not_by_a_prefix():
    """Per-context rows are "condition @ context"; a drug "X @ 10uM" in context K562 is the row "X @ 10uM @ K562". Its
    condition was taken as the text before the first " @ " (X), so it took X's unembeddable flag."""
    from distgen.evaluation.suite import MetricTable

    model = MetricTable(perts=("X @ 10uM @ K562", "X @ K562"), values={"mse": [0.1, 0.2]}, reasons={"mse": {}},
                        info={"n_cells_real": [50, 50], "context": ["K562", "K562"]})  # as context_rows records them
    summary = {"notes": [], "unembeddable": {"component": "onehot", "conditions": {"X": ["X"]}}}
    flags = flagged(ReportInputs(model, [], summary))
    assert list(flags) == ["X @ K562"] and flags["X @ K562"][0].startswith("unembeddable atom(s) X: onehot")


def test_a_single_context_row_holding_an_at_sign_is_its_whole_condition():
    """Without contexts a row is its condition: "X @ 10uM" was cut at its last " @ " (searched for), so it took X's flag."""
    from distgen.evaluation.suite import MetricTable

    model = MetricTable(perts=("X @ 10uM", "X"), values={"mse": [0.1, 0.2]}, reasons={"mse": {}}, info={"n_cells_real": [50, 50]})
    summary = {"notes": [], "unembeddable": {"component": "onehot", "conditions": {"X": ["X"]}}}
    assert list(flagged(ReportInputs(model, [], summary))) == ["X"]
    assert model.conditions() == ["X @ 10uM", "X"]
    per_context = MetricTable(perts=("a @ b @ c", "a @ c"), info={"context": ["c", "c"]})
    assert per_context.conditions() == ["a @ b", "a"]  # cut at the recorded context, not at the first or last " @ "


def test_sweep_writes_its_page(tmp_path, capsys):
    from distgen.pipeline.sweep import sweep

    from ..pipeline.test_sweep import FakeRunner

    base = str(save_yaml({"model": {"name": "control"}}, tmp_path / "base.yaml"))
    sweep(base, {"description": ["good", "bad"], "train.seed": [0, 1]}, tmp_path / "sw", runner=FakeRunner(),
          metrics=["mse", "pearson_delta"], progress=False)
    html = (tmp_path / "sw" / "report.html").read_text()
    assert len(check_page(html, ["variants", "paired"])) == 2  # seeds as points; paired differences as intervals
    assert "description=good (reference)" in html and "description=bad" in html


def test_quickstart_prints_the_report_first(tmp_path, monkeypatch, capsys):
    from distgen.pipeline import experiment

    def fake_run(config, out, overrides, progress=True):
        (out / "eval").mkdir(parents=True)
        (out / "eval" / "report.html").write_text("<!DOCTYPE html>")
        return {"n_perturbations": 4, "n_genes": 10, "metrics": {}, "timings_s": {"train": 1.0}}

    monkeypatch.setattr(experiment, "run", fake_run)
    assert main(["quickstart", "--out", str(tmp_path / "qs")]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    after_training = lines[1:]  # line 0 announces the training
    assert after_training[0].startswith(f"report: {tmp_path / 'qs' / 'eval' / 'report.html'}")
