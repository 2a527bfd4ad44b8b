"""``--metrics`` of ``distgen run`` and ``distgen sweep``: the sweep and ``distgen evaluate`` take names separated by spaces
or commas, ``distgen run`` one word of names separated by commas (a word after it is an override). The sweep's help said "separated by spaces or commas as in
distgen run", and ``distgen run ... --metrics mse pearson_delta`` stopped with "override 'pearson_delta' must look like
dotted.key=value": the word after ``--metrics`` read as an override, the help's form refused without naming the one taken."""

from distgen.cli import build_parser, main
from distgen.config import save_yaml
from distgen.pipeline.run_folder import RunFolder
from distgen.pipeline.sweep import METRICS_FILE, sweep
from tests.pipeline.test_sweep import FakeRunner, base  # noqa: F401  (the fixture)


def _help(command):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return " ".join(next(a for a in sub._actions if "--metrics" in a.option_strings).help.split())


def test_the_sweeps_help_says_which_form_distgen_run_takes(capsys):
    text = _help("sweep")
    assert "as in distgen run" not in text  # distgen run takes no space-separated names
    assert "mse,pearson_delta" in text


def test_distgen_run_given_metrics_separated_by_spaces_names_the_comma_form(tmp_path, capsys):
    cfg = save_yaml({"model": {"name": "additive"}, "data": {"dataset": "norman_k562", "hvg": 32}}, tmp_path / "c.yaml")
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "--metrics", "mse", "pearson_delta"]) == 2
    err = capsys.readouterr().err
    assert "'pearson_delta'" in err and "--metrics mse,pearson_delta" in err
    assert not out.exists()


def test_an_override_after_metrics_is_still_an_override(tmp_path, capsys):
    """``--metrics`` keeps one value: a ``KEY=VALUE`` after it is the run's override, as before (a wrong key is named)."""
    cfg = save_yaml({"model": {"name": "additive"}, "data": {"dataset": "norman_k562", "hvg": 32}}, tmp_path / "c.yaml")
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--metrics", "mse", "train.no_such_key=3"]) == 2
    assert "no_such_key" in capsys.readouterr().err


def test_the_sweeps_note_of_a_run_evaluated_by_hand_shows_the_metrics_as_distgen_run_took_them(tmp_path, base, capsys):  # noqa: F811
    """The note said "evaluated with --metrics pearson_delta edistance": a ``distgen run`` option it did not take."""
    out = tmp_path / "sw"
    sweep(base, {"description": ["a"]}, out, seeds=[0], progress=False, runner=FakeRunner())
    run = out / "runs" / "description=a__seed0"
    (run / METRICS_FILE).write_text("perturbation,pearson_delta,edistance\nP0,0.1,0.2\n")
    (run / "DONE").write_text('{"metrics": ["pearson_delta", "edistance"]}\n')  # distgen run ... --metrics pearson_delta,edistance
    capsys.readouterr()
    sweep(base, {"description": ["a"]}, out, seeds=[0], progress=False, runner=FakeRunner(), metrics=["mse"])
    assert "evaluated with --metrics pearson_delta,edistance (" in capsys.readouterr().err


def test_distgen_evaluate_takes_metrics_separated_by_spaces_as_by_commas(tmp_path, capsys):
    """``distgen evaluate`` has no positional argument, so a word after ``--metrics`` can only be a metric: it stopped
    with argparse's "unrecognized arguments: pearson_delta"; now both forms score the same metrics."""
    from tests.evaluation.test_command import _write

    paths = _write(tmp_path)
    tables = {}
    for form, words in (("spaces", ["mse", "pearson_delta"]), ("commas", ["mse,pearson_delta"]), ("both", ["mse,", "pearson_delta"])):
        out = tmp_path / form
        assert main(["evaluate", "--pred", paths["pred"], "--real", paths["real"], "--out", str(out), "--metrics", *words,
                     "--no-ceiling", "--no-plots", "--quiet", "--baselines", ""]) == 0, capsys.readouterr().err
        tables[form] = (out / "metrics.csv").read_text()
        assert "pearson_delta" in tables[form].splitlines()[0] and "mse" in tables[form].splitlines()[0]
    assert tables["spaces"] == tables["commas"] == tables["both"]


def test_the_help_of_evaluate_and_the_sweep_name_both_forms():
    assert "mse pearson_delta" in _help("evaluate") and "mse,pearson_delta" in _help("evaluate")
    assert "distgen run takes one word" in _help("sweep")


def test_the_sweeps_note_of_a_run_evaluated_with_an_empty_metrics_list_words_it(tmp_path, base, capsys):  # noqa: F811
    """A ``DONE`` record ``{"metrics": []}`` was said "evaluated with --metrics  (by hand": an option with nothing after it.
    The note of the writable pass and the read-only refusal (``RunFolder.again_why``) say it names no metric."""
    out = tmp_path / "sw"
    sweep(base, {"description": ["a"]}, out, seeds=[0], progress=False, runner=FakeRunner())
    run = out / "runs" / "description=a__seed0"
    (run / "eval" / "summary.json").write_text("{}")
    (run / "DONE").write_text('{"metrics": []}\n')
    said = RunFolder.read(run).again_why(["mse"])
    assert said is not None and 'evaluated with no metric (its DONE records "metrics": []) (by hand' in said
    capsys.readouterr()
    sweep(base, {"description": ["a"]}, out, seeds=[0], progress=False, runner=FakeRunner(), metrics=["mse"])
    err = capsys.readouterr().err
    assert "--metrics  " not in err and 'evaluated with no metric (its DONE records "metrics": []) (by hand' in err
