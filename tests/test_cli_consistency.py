"""One consistent CLI: every subcommand explains every option with an example, fails clearly with
the documented exit codes (2 usage/config error, 1 runtime failure), and offers --json where a
machine reads its output; the Python API does the same in one or two calls."""

import argparse
import json
import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import distgen
from distgen.cli import EXIT_FAILURE, EXIT_USAGE, build_parser, main
from distgen.config import ConfigError

PARSER = build_parser()
SUB = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction))
COMMANDS = sorted(SUB.choices)
#: Commands whose stdout a program parses: each must offer --json.
MACHINE_READ = {"components", "evaluate", "run", "sweep"}


def exit_code(argv, capsys):
    """``main(argv)``'s exit code (argparse exits by SystemExit) and captured (out, err)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_expected_commands_exist():
    assert {"components", "train", "predict", "evaluate", "run", "sweep", "quickstart", "bench"} <= set(COMMANDS)


def test_top_level_help_gives_every_command_a_summary(capsys):
    code, out, _ = exit_code(["--help"], capsys)
    assert code == 0
    for action in SUB._choices_actions:
        assert action.help, f"distgen {action.dest}: add help= to add_parser (shown by `distgen --help`)"
        assert action.dest in out


@pytest.mark.parametrize("command", COMMANDS)
def test_help_exits_0_with_an_example(command, capsys):
    code, out, _ = exit_code([command, "--help"], capsys)
    assert code == 0
    assert "examples:" in out, f"distgen {command}: add an 'examples:' epilog"
    epilog = SUB.choices[command].epilog or ""
    assert f"distgen {command}" in epilog.split("examples:", 1)[1], f"distgen {command}: the examples must invoke the command"


def test_predict_help_says_how_its_files_are_scored(capsys):
    """The cell-eval2 line names the scale flag distgen's log-normalised files need, and distgen evaluate stays named
    (38d0e44 replaced the line's 'or: distgen evaluate --pred ... --real ...' with the flag: the only pointer to it)."""
    code, out, _ = exit_code(["predict", "--help"], capsys)
    assert code == 0
    line = next(x for x in out.splitlines() if x.strip().startswith("cell-eval2 run"))
    assert "--input-type lognorm" in line
    assert "distgen evaluate --pred" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_is_explained(command):
    parser = SUB.choices[command]
    assert parser.description, f"distgen {command}: add a description"
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS and action.help.strip(), f"distgen {command} {name}: no help text"


@pytest.mark.parametrize("command", sorted(MACHINE_READ))
def test_machine_read_commands_offer_json(command):
    assert "--json" in SUB.choices[command]._option_string_actions, f"distgen {command}: add --json"


@pytest.mark.parametrize("command", COMMANDS)
def test_unknown_option_is_a_usage_error(command, capsys):
    code, _, err = exit_code([command, "--no-such-option"], capsys)
    assert code == EXIT_USAGE and "error:" in err
    assert "--no-such-option" in err or "required" in err  # argparse names missing required options first


# ---------------------------------------------------------------------------------------------- errors
CONFIG_ERRORS = [  # (argv, words the message must contain): config and usage errors exit 2
    (["train", "missing.yaml", "--out", "t"], ["missing.yaml", "neither a config file nor a preset"]),
    (["train", "scdfm-small", "model.backbone.nope=1", "--out", "t"], ["unknown key 'nope'", "Valid keys"]),
    (["run", "missing.yaml", "--out", "r"], ["missing.yaml"]),
    (["run", "scdfm-small", "data.dataset=missing.h5ad", "--out", "r"], ["data.dataset", "missing.h5ad"]),
    (["run", "scdfm-small", "evaluate.nope=1", "--out", "r"], ["evaluate", "nope", "Allowed"]),
    (["sweep", "missing.yaml", "--out", "s"], ["missing.yaml"]),
    (["sweep", "scdfm-small", "--grid", "nokey", "--out", "s"], ["--grid", "dotted.key=[v1,v2,...]"]),
    (["sweep", "scdfm-small", "--jobs", "0", "--out", "s"], ["jobs must be >= 1"]),
    (["train", "scdfm-small"], ["--out"]),  # a required option is missing
    (["bench", "--mode", "huge"], ["--mode", "huge"]),
    (["quickstart", "--steps", "0"], ["--steps", "must be >= 1"]),
    (["components", "--kind", "nope"], ["--kind", "invalid choice: 'nope'", "encoders"]),
]


@pytest.mark.parametrize("argv,words", CONFIG_ERRORS, ids=[" ".join(a[:3]) for a, _ in CONFIG_ERRORS])
def test_config_and_usage_errors_exit_2_with_a_clear_message(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = exit_code(argv, capsys)
    assert code == EXIT_USAGE, err
    for w in words:
        assert w in err, f"{w!r} not in {err!r}"
    assert "Traceback" not in err


RUNTIME_ERRORS = [  # (argv, words): a missing input at run time exits 1, naming it
    (["predict", "no_run_dir", "--out", "p.h5ad"], ["no_run_dir", "does not exist", "--out folder of distgen train or distgen run"]),
    (["evaluate", "--pred", "no_pred.h5ad", "--real", "no_real.h5ad", "--out", "e"], ["no_"]),
]


@pytest.mark.parametrize("argv,words", RUNTIME_ERRORS, ids=[a[0] for a, _ in RUNTIME_ERRORS])
def test_runtime_failures_exit_1_with_a_clear_message(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = exit_code(argv, capsys)
    assert code == EXIT_FAILURE, err
    assert err.startswith(f"distgen {argv[0]}: ")
    for w in words:
        assert w in err


# ---------------------------------------------------------------------------------------------- --json and API parity
def _cells(rng, effects, n, genes):
    x = np.concatenate([np.clip(rng.normal(1.0 + e, 0.3, (n, genes)), 0, None) for e in effects])
    return x.astype(np.float32)


@pytest.fixture
def pred_real(tmp_path):
    """Tiny cell-eval-layout prediction and truth: 3 perturbations + controls, 12 genes."""
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(12)]
    labels = ["non-targeting", "P1", "P2", "P3"]
    effects = [np.zeros(12), np.r_[np.ones(3), np.zeros(9)], np.r_[np.zeros(3), -0.5 * np.ones(3), np.zeros(6)], np.zeros(12) + 0.2]
    paths = []
    for kind, noise in (("real", 0.0), ("pred", 0.1)):
        x = _cells(rng, [e + noise for e in effects], 30, 12)
        obs = pd.DataFrame({"target_gene": pd.Categorical(np.repeat(labels, 30))}, index=[f"{kind}{i}" for i in range(len(x))])
        path = tmp_path / f"{kind}.h5ad"
        ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(path)
        paths.append(path)
    return paths[1], paths[0]


def test_evaluate_json_equals_the_python_api(pred_real, tmp_path, capsys):
    pred, real = pred_real
    argv = ["evaluate", "--pred", str(pred), "--real", str(real), "--out", str(tmp_path / "cli"), "--metrics", "mse,pearson_delta",
            "--baselines", "control", "--no-ceiling", "--no-plots", "--quiet", "--json"]
    code, out, _ = exit_code(argv, capsys)
    assert code == 0
    cli = json.loads(out)  # stdout is JSON and nothing else
    api = distgen.evaluate(pred, real, tmp_path / "api", metric_names=["mse", "pearson_delta"], baselines=["control"],
                           ceiling=False, make_plots=False, progress=False).summary
    assert set(cli["metrics"]) == {"mse", "pearson_delta"}
    for m in ("mse", "pearson_delta"):
        assert cli["metrics"][m]["model"] == pytest.approx(api["metrics"][m]["model"])
        # (pearson_delta of the control baseline is NaN: its predicted change is zero; JSON has no NaN: null, as summary.json)
        want = api["metrics"][m]["baselines"]["control"]
        got = cli["metrics"][m]["baselines"]["control"]
        assert got is None if math.isnan(want) else got == pytest.approx(want)
    # the prediction is the truth shifted by 0.1: better than predicting the control cells
    assert cli["metrics"]["mse"]["model"] < cli["metrics"]["mse"]["baselines"]["control"]


def test_api_functions_stay_callable_after_their_subpackages_are_imported():
    import distgen.evaluation.score
    import distgen.pipeline.experiment

    for name in ("components", "build", "load_data", "fit", "predict", "evaluate", "run", "sweep", "load_config", "build_component"):
        assert callable(getattr(distgen, name)), f"distgen.{name} is not callable"


def test_predict_api_generates_every_held_out_condition_like_distgen_run(tmp_path):
    data = distgen.load_data("norman_k562", split={"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, set_size=16)
    model = distgen.build({"model": {"name": "additive"}}, data)
    distgen.fit(model, data)
    pred = distgen.predict(model, data, out=tmp_path / "pred.h5ad", real=tmp_path / "real.h5ad")
    held_out = set(data.split.test_conditions)
    assert set(pred.conditions[~pred.is_control]) == held_out
    truth = data.truth()
    for cond in held_out:  # as many generated cells as were measured
        assert (pred.conditions == cond).sum() == (truth.conditions == cond).sum() > 0
    assert pred.genes == data.info.genes
    import anndata

    files = {k: anndata.read_h5ad(tmp_path / f"{k}.h5ad") for k in ("pred", "real")}
    col = "target"
    for f in files.values():
        assert set(f.obs[col]) - {"non-targeting"} == held_out
    np.testing.assert_array_equal(np.asarray(files["pred"].X), pred.X.numpy())
    # the additive model adds the training singles' effects: the held-out pairs move away from control
    ctrl = pred.X[pred.is_control].mean(0)
    assert all((pred.X[pred.conditions == c].mean(0) - ctrl).abs().max() > 0.05 for c in held_out)
    # ... and `distgen run` writes the same predictions for the same model and split
    run = tmp_path / "run"
    distgen.run({"model": {"name": "additive"}, "data": {"dataset": "norman_k562", "set_size": 16,
                 "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}}}, run, metrics=["mse"], plots=False, progress=False)
    ran = anndata.read_h5ad(run / "pred.h5ad")
    np.testing.assert_array_equal(np.asarray(ran.X), np.asarray(files["pred"].X))
    # ... and the Python evaluation of those cells equals the run's (same references, same scores)
    report = distgen.evaluate(pred, data, metric_names=["mse"], make_plots=False, progress=False)
    ran_summary = json.loads((run / "eval" / "summary.json").read_text())
    assert report.metrics["mse"]["model"] == ran_summary["metrics"]["mse"]["model"]
    assert report.metrics["mse"]["baselines"] == ran_summary["metrics"]["mse"]["baselines"]
    with pytest.raises(ConfigError, match="must be train, val or test"):
        distgen.predict(model, data, part="holdout")
    with pytest.raises(TypeError, match="no predict"):
        distgen.predict(object(), data)
