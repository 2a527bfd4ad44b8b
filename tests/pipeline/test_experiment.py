"""`distgen run` end to end on bundled Norman data: a fitted baseline and a tiny trained generator.

One run loads its data once, hands objects between stages and writes files only as outputs."""

import json
import math

import pytest

from distgen.cli import main
from distgen.config import load_yaml, save_yaml
from distgen.data import layout
from distgen.data.prepared import Dataset
from distgen.evaluation.calibration import summarise
from distgen.evaluation.report import clean_nan
from distgen.evaluation.suite import MetricTable
from distgen.pipeline.experiment import headline, is_trainable, run

DATA = {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, "set_size": 8}
FAST_METRICS = ["mse", "pearson_delta", "discrimination_score_l1"]


def test_is_trainable():
    assert is_trainable({"name": "generator"}) and not is_trainable({"name": "additive"})


def _count_loads_and_forbid_reading_back(monkeypatch):
    """Count ``Dataset.load`` calls; fail on any read of a prediction/truth file (the layout's readers)."""
    loads = []
    real_load = Dataset.load.__func__

    def counting(cls, *args, **kwargs):
        loads.append(args)
        return real_load(cls, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("a run read a prediction or truth file back")

    monkeypatch.setattr(Dataset, "load", classmethod(counting))
    monkeypatch.setattr(layout, "read", forbidden)
    monkeypatch.setattr(layout, "read_pair", forbidden)
    return loads


def test_fitted_model_experiment(tmp_path, monkeypatch):
    loads = _count_loads_and_forbid_reading_back(monkeypatch)
    summary = run({"model": {"name": "additive"}, "data": DATA}, tmp_path / "add", progress=False,
                             metrics=FAST_METRICS, plots=False)
    assert summary["n_perturbations"] == 4  # 4 of the 5 pairs of bundled Norman whose singles are both measured
    # the model *is* the additive baseline, fitted on the same training cells; the two differ only in
    # which control cells are drawn, so their scores agree up to that sampling noise
    mse, pd = summary["metrics"]["mse"], summary["metrics"]["pearson_delta"]
    assert mse["model"] == pytest.approx(mse["baselines"]["additive"], rel=0.5)
    assert pd["model"] == pytest.approx(pd["baselines"]["additive"], abs=0.15)
    for f in ("pred.h5ad", "real.h5ad", "split.json", "eval/metrics.csv", "eval/calibration.csv", "eval/summary.md"):
        assert (tmp_path / "add" / f).exists(), f
    assert not (tmp_path / "add" / "train.h5ad").exists()  # baselines are fitted on the loaded training cells, not a file
    assert len(loads) == 1
    timings = json.loads((tmp_path / "add" / "timings.json").read_text())
    assert list(timings) == ["fit_predict", "evaluate"] and all(v >= 0 for v in timings.values())
    assert summary["timings_s"] == timings


def test_trained_generator_experiment_via_cli(tmp_path, capsys, monkeypatch):
    loads = _count_loads_and_forbid_reading_back(monkeypatch)
    cfg = save_yaml({
        "model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8},
                  "backbone": {"name": "mlp", "hidden": 32, "depth": 1},
                  "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 2}}},
        "data": DATA,
        "train": {"steps": 3, "sets_per_batch": 2, "progress": False},
    }, tmp_path / "tiny.yaml")
    rc = main(["run", str(cfg), "train.seed=1", "--out", str(tmp_path / "gen"), "--metrics", ",".join(FAST_METRICS),
               "--no-plots", "--no-progress", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["metrics"]) == set(FAST_METRICS)
    assert (tmp_path / "gen" / "train" / "checkpoints").is_dir()
    assert "control" in summary["metrics"]["mse"]["baselines"]
    assert list(json.loads((tmp_path / "gen" / "timings.json").read_text())) == ["train", "predict", "evaluate"]
    assert len(loads) == 1  # one dataset load for train, predict and the baselines
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == [
        "DONE", "eval", "experiment.yaml", "pred.h5ad", "real.h5ad", "timings.json", "train"]
    for f in ("config.yaml", "manifest.json", "split.json", "info.json", "metrics.csv", "checkpoints"):
        assert (tmp_path / "gen" / "train" / f).exists(), f


def test_headline_lists_model_baselines_and_ceiling_and_shows_each_undefined_value_with_its_reason():
    summary = {"metrics": {
        "mse": {"model": 0.5, "baselines": {"control": 0.25, "additive": 0.125}, "ceiling": 0.0625, "normalised": float("nan"),
                "normalised_note": "the strongest baseline (additive: 0.125) is at or beyond the ceiling (0.0625)"},
        "pearson_delta": {"model": 0.75, "baselines": {"control": float("nan"), "additive": 0.5}, "ceiling": 1.0, "normalised": 0.5,
                          "baseline_notes": {"control": "a delta is constant over genes (or no cells)"}},
        "not_shown": {"model": 1.0},
    }}
    lines = headline(summary, names=("mse", "pearson_delta", "missing")).splitlines()
    assert lines[0].split() == ["mse", "model", "0.5", "control", "0.25", "additive", "0.125", "ceiling", "0.0625",
                                "normalised", "undefined"]
    assert lines[1] == "    normalised undefined: the strongest baseline (additive: 0.125) is at or beyond the ceiling (0.0625)"
    assert lines[2].split() == ["pearson_delta", "model", "0.75", "control", "nan", "additive", "0.5", "ceiling", "1",
                                "normalised", "0.5"]
    assert lines[3] == "    control nan: a delta is constant over genes (or no cells)"
    assert len(lines) == 4


def test_headline_names_the_baselines_a_shown_one_stands_for():
    """The quickstart printed no `linear` when it equalled mean_perturbation; summary.md says `mean_perturbation (= linear)`."""
    summary = {"metrics": {"mse": {"model": 0.5, "baselines": {"control": 0.25, "mean_perturbation": 0.125}}},
               "baseline_aliases": {"linear": {"same_as": "mean_perturbation", "reason": "no target gene"}}}
    line = headline(summary, names=("mse",))
    assert line.split() == ["mse", "model", "0.5", "control", "0.25", "mean_perturbation", "(=", "linear)", "0.125"]


def test_headline_of_a_real_summary_gives_the_causes_computed_by_summarise_also_when_read_back_from_json():
    def table(v: float, reason: str = "") -> MetricTable:
        return MetricTable(perts=("A",), values={"mse": [v]}, reasons={"mse": {"A": reason}} if reason else {"mse": {}})

    # the ceiling is undefined (not "the baseline reaches the ceiling"), and a baseline is undefined too
    metrics = summarise(table(0.5), {"mean": table(0.9), "control": table(math.nan, "no control cells")},
                        table(math.nan, "3 real cell(s): a half-split leaves 1 per half"))
    for summary in ({"metrics": metrics}, json.loads(json.dumps(clean_nan({"metrics": metrics})))):  # as run returns it, as summary.json
        text = headline(summary, names=("mse",))
        assert "control nan" in text and "    control nan: no control cells" in text
        assert "ceiling nan" in text and "    ceiling nan: 3 real cell(s): a half-split leaves 1 per half" in text
        assert "    normalised undefined: ceiling undefined (3 real cell(s)" in text
        assert "beyond the ceiling" not in text


def test_quickstart_command_runs_end_to_end_with_overrides(tmp_path, capsys):
    tiny = ["model.backbone.dim=16", "model.backbone.heads=2", "model.backbone.depth=1", "model.conditioner.part_dim=8",
            "model.conditioner.dim=16", "model.dynamics.sampler.start_step=4", "train.sets_per_batch=2", "data.set_size=8",
            "evaluate.metrics=[mse, pearson_delta]", "evaluate.plots=false", "evaluate.baselines=[control, additive]"]
    assert main(["quickstart", "--out", str(tmp_path / "qs"), "--steps", "3", *tiny]) == 0
    out = capsys.readouterr().out
    assert "training perturbdiff-small on bundled Norman K562 (3 steps)" in out
    assert "held-out combinations: 4  genes: 500" in out and "train " in out and "evaluate " in out
    assert any(line.startswith("mse ") and "additive" in line for line in out.splitlines())
    assert (tmp_path / "qs" / "eval" / "summary.md").exists()
    run_config = load_yaml(tmp_path / "qs" / "train" / "config.yaml")
    assert run_config["train"]["steps"] == 3 and run_config["model"]["backbone"]["dim"] == 16  # --steps and overrides applied
    # a second quickstart in the same folder replaces the first (set-up run twice must not fail) ...
    assert main(["quickstart", "--out", str(tmp_path / "qs"), "--steps", "2", *tiny]) == 0
    assert "replacing the previous quickstart" in capsys.readouterr().out
    assert load_yaml(tmp_path / "qs" / "train" / "config.yaml")["train"]["steps"] == 2
    # ... but a folder holding anything else is refused, untouched
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["quickstart", "--out", str(tmp_path / "mine"), "--steps", "2", *tiny]) == 1
    assert "holds no previous quickstart" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_evaluate_section_interpolated_scores_the_second_positive_reference(tmp_path):
    cfg = {"model": {"name": "additive"}, "data": DATA, "evaluate": {"interpolated": True, "ceiling_splits": 2}}
    summary = run(cfg, tmp_path / "interp", progress=False, metrics=["mse"], plots=False)
    assert summary["reference_roles"]["interpolated_duplicate"] == "positive"
    value = summary["metrics"]["mse"]["positive_references"]["interpolated_duplicate"]
    assert value == value and value >= 0  # a number, not NaN
    plain = run({**cfg, "evaluate": {"ceiling_splits": 2}}, tmp_path / "plain", progress=False, metrics=["mse"], plots=False)
    assert "interpolated_duplicate" not in plain["reference_roles"]


def test_evaluate_section_interpolated_must_be_a_boolean(tmp_path):
    from distgen.config import ConfigError

    with pytest.raises(ConfigError, match=r"evaluate\.interpolated must be true or false"):
        run({"model": {"name": "additive"}, "data": DATA, "evaluate": {"interpolated": "yes"}}, tmp_path / "bad", progress=False)


def test_evaluate_section_replicate_must_be_a_known_replicate(tmp_path):
    from distgen.config import ConfigError

    with pytest.raises(ConfigError, match=r"evaluate\.replicate must be one of half-split, extrapolated, got 'full'"):
        run({"model": {"name": "additive"}, "data": DATA, "evaluate": {"replicate": "full"}}, tmp_path / "bad", progress=False)


def test_evaluate_section_replicate_reaches_the_summary(tmp_path):
    cfg = {"model": {"name": "additive"}, "data": DATA, "evaluate": {"replicate": "extrapolated", "ceiling_splits": 2}}
    summary = run(cfg, tmp_path / "extra", progress=False, metrics=["mse"], plots=False)
    assert summary["replicate"] == "extrapolated" and "extrapolated to full depth" in summary["ceiling"]
