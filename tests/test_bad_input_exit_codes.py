"""A user's data that cannot be used as asked exits 2 with its one-line message; an unreadable file or a bug still exits 1.

Each case: the command, the exit code a script can rely on (docs/reliability.md, ``distgen.errors``) and words of the
message. The files are read fine; what is wrong is a column, layer or label a setting names, or the values themselves.
Unreadable files (truncated, garbage, zipped...) are ``tests/test_error_boundary.py``'s (exit 1).
"""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.cli import main
from distgen.config import save_yaml
from distgen.errors import EXIT_FAILURE, EXIT_USAGE, InputDataError, InputKeyError

LABELS = ["control", "P1", "P2", "P1+P2"]
GENES = [f"g{i}" for i in range(12)]


def _write(path, x=None, **obs_columns):
    rng = np.random.default_rng(0)
    n = 30 * len(LABELS)
    x = np.log1p(rng.poisson(3, (n, len(GENES)))).astype(np.float32) if x is None else x
    obs = pd.DataFrame({"condition": np.repeat(LABELS, 30), "cell_type": "K562", **obs_columns}, index=[f"c{i}" for i in range(n)])
    ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=GENES)).write_h5ad(path)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    n = 30 * len(LABELS)
    nan = np.log1p(np.random.default_rng(1).poisson(3, (n, len(GENES)))).astype(np.float32)
    nan[0, 0] = np.nan
    counts = np.random.default_rng(2).poisson(40, (n, len(GENES))).astype(np.float32)
    paths = {"good": _write(root / "good.h5ad"), "nan": _write(root / "nan.h5ad", nan),
             "negative": _write(root / "neg.h5ad", -np.ones((n, len(GENES)), np.float32)),
             "counts": _write(root / "counts.h5ad", counts),
             "zeros": _write(root / "zeros.h5ad", np.zeros((n, len(GENES)), np.float32)),
             "blank": _write(root / "blank.h5ad", condition=["NA", *np.repeat(LABELS, 30)[1:]]),
             "Control": _write(root / "Control.h5ad", condition=[{"control": "Control "}.get(c, c) for c in np.repeat(LABELS, 30)])}
    doc = {"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8}, "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                     "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}}},
           "data": {"dataset": paths["good"], "schema": {"perturbation_col": "condition", "control_labels": ["control"]}, "set_size": 4},
           "train": {"steps": 1, "sets_per_batch": 2, "progress": False}}
    paths["config"] = str(save_yaml(doc, root / "t.yaml"))
    return paths


def train(*overrides):
    return ["train", "{config}", *overrides, "--out", "{tmp}/out"]


def evaluate(pred="good", real="good", *more):
    return ["evaluate", "--pred", "{" + pred + "}", "--real", "{" + real + "}", "--pert-col", "condition", *more, "--out", "{tmp}/ev"]


CASES = [  # (id, argv, exit code, words of the message)
    ("train: missing perturbation column", train("data.schema.perturbation_col=nope"), EXIT_USAGE, ["obs column(s) ['nope']", "available columns"]),
    ("train: missing context column", train("data.schema.context_cols=[nope]"), EXIT_USAGE, ["['nope']", "Fix the schema"]),
    ("train: control label absent", train("data.schema.control_labels=[ctrlX]"), EXIT_USAGE, ["control_labels=['ctrlX']"]),
    ("train: missing layer", train("data.schema.expression=layers/none"), EXIT_USAGE, ["layers/none", "a layer"]),
    ("train: missing obsm key", train("data.schema.expression=obsm/none"), EXIT_USAGE, ["obsm has no key 'none'"]),
    ("train: NaN expression", train("data.dataset={nan}"), EXIT_USAGE, ["NaN/inf values", "impute"]),
    ("train: negative expression", train("data.dataset={negative}"), EXIT_USAGE, ["negative values"]),
    ("train: all-zero expression", train("data.dataset={zeros}"), EXIT_USAGE, ["holds no non-zero value"]),
    ("train: counts declared log", train("data.dataset={counts}", "data.schema.scale=log"), EXIT_USAGE, ["scale='log'", "raw counts"]),
    ("train: schema value", train("data.schema.scale=bogus"), EXIT_USAGE, ["config error: data.schema", "'bogus'"]),
    ("train: split kind", train("data.split.kind=nope"), EXIT_USAGE, ["config error: data.split.kind", "'nope'"]),
    ("train: split fraction", train("data.split.test_frac=1.5"), EXIT_USAGE, ["data.split.test_frac must be in [0, 1)"]),
    ("train: a cell without a label", train("data.dataset={blank}"), EXIT_USAGE, ["missing", "'NA'"]),
    # the last of two values of one key applied without a word (h79's hostile round)
    ("train: one override key twice", train("train.steps=1", "train.steps=2"), EXIT_USAGE, ["train.steps is given twice", "give it once"]),
    ("run: one override key twice", ["run", "{config}", "train.seed=1", "train.seed=2", "--out", "{tmp}/run"], EXIT_USAGE,
     ["train.seed is given twice"]),
    ("evaluate: missing --pert-col", ["evaluate", "--pred", "{good}", "--real", "{good}", "--pert-col", "nope", "--out", "{tmp}/ev"],
     EXIT_USAGE, ["perturbation column 'nope'", "--pert-col"]),
    ("evaluate: control label absent", evaluate("good", "good", "--control", "zz"), EXIT_USAGE, ["no control cells", "'zz'"]),
    ("evaluate: missing --celltype-col", evaluate("good", "good", "--celltype-col", "nope"), EXIT_USAGE, ["cell-type column 'nope'"]),
    ("evaluate: NaN prediction", evaluate("nan", "good"), EXIT_USAGE, ["NaN or inf", "pred"]),
    ("evaluate: a cell without a label", evaluate("blank", "good"), EXIT_USAGE, ["missing"]),
    ("evaluate: raw counts as lognorm", evaluate("counts", "good"), EXIT_USAGE, ["raw counts", "log1p"]),
    ("evaluate: missing prediction file", evaluate("tmp", "good"), EXIT_FAILURE, []),  # a folder where a file is needed: exit 1
    # an unknown profile exited 1 from the profile table (the option values of argparse: test_bad_option_values_exit_2)
    ("evaluate: unknown profile", evaluate("good", "good", "--profile", "nope"), EXIT_USAGE, ["--profile", "'nope'", "celleval2"]),
    ("evaluate: cell-type column is the perturbation column", evaluate("good", "good", "--celltype-col", "condition"),
     EXIT_USAGE, ["both obs['condition']"]),
    ("evaluate --profile: cell-type column is the perturbation column",
     evaluate("good", "good", "--celltype-col", "condition", "--profile", "cell-eval-0.8.2"), EXIT_USAGE, ["both obs['condition']"]),
    # an empty list scored no metric and exited 0 (h85's hostile round: --metrics "$METRICS" with the variable unset)
    ("evaluate: --metrics names no metric", evaluate("good", "good", "--metrics", ""), EXIT_USAGE, ["names no metric", "full suite"]),
    ("evaluate: --metrics of commas only", evaluate("good", "good", "--metrics", " , "), EXIT_USAGE, ["names no metric"]),
    # the control label in another letter case or with spaces: named, with the relabelling (it listed the values only)
    ("evaluate: control label in another case", evaluate("Control", "good"), EXIT_USAGE,
     ["'Control ' is 'control' written with other letter case or spaces", ".replace({'Control ': 'control'})"]),
]


@pytest.mark.parametrize(("argv", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exit_code_and_message(argv, code, words, files, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, **files) for a in argv]
    try:
        got = main(argv)
    except SystemExit as exc:
        got = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if ": warning: " not in line]
    assert got == code, err
    assert len(lines) == 1 and lines[0].startswith((f"distgen {argv[0]}: error: ", f"distgen {argv[0]}: config error: ")), err
    assert "Traceback" not in err and "internal error" not in err
    for w in words:
        assert w in err, f"{w!r} not in {err!r}"


@pytest.mark.parametrize(("argv", "words"), [
    (evaluate("good", "good", "--seed", "-1"), ["argument --seed: expected an integer >= 0, got -1"]),
    (evaluate("good", "good", "--ceiling-splits", "0"), ["argument --ceiling-splits: expected an integer >= 1, got 0"]),
    (["compare", "{tmp}", "{tmp}", "--seed", "-2"], ["argument --seed: expected an integer >= 0, got -2"]),
])
def test_bad_option_values_exit_2(argv, words, files, tmp_path, capsys):
    """A negative --seed (numpy refused it deep inside) and --ceiling-splits 0 exited 1 as internal errors."""
    with pytest.raises(SystemExit) as exc:
        main([a.format(tmp=tmp_path, **files) for a in argv])
    err = capsys.readouterr().err
    assert exc.value.code == EXIT_USAGE and "Traceback" not in err
    for w in words:
        assert w in err


def test_an_internal_error_while_loading_data_still_exits_1_with_the_debug_hint(files, tmp_path, capsys, monkeypatch):
    """Only errors raised on purpose about the input exit 2: a bug in a reader stays an internal error."""
    import distgen.data.dataset as dataset

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(dataset, "read_expression", broken)
    assert main(["train", files["config"], "--out", str(tmp_path / "out")]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert "internal error: TypeError: unsupported operand" in err and "--debug" in err


def test_input_errors_stay_the_builtin_types_python_callers_catch():
    assert issubclass(InputDataError, ValueError) and issubclass(InputKeyError, KeyError) and issubclass(InputKeyError, ValueError)
    assert str(InputKeyError("obs column 'x' is missing")) == "obs column 'x' is missing"  # not KeyError's quoted repr


def test_an_out_that_does_not_fit_its_checkpoints_is_a_usage_error_exit_2(files, tmp_path, capsys):
    """A folder that already holds checkpoints given without --resume, and --resume on a folder with none, are usage errors
    (the checkpoints are fine; the command line asks for what the folder cannot give): exit 2, as a bad option. Was exit 1."""
    from distgen.train.checkpoint import CheckpointError, RunFolderError

    out = str(tmp_path / "out")
    assert main(["train", files["config"], "--out", out]) == 0  # (distgen run resumes its own folder instead)
    capsys.readouterr()
    assert main(["train", files["config"], "--out", out]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "already holds checkpoints; pass --resume" in err and "Traceback" not in err
    assert main(["train", files["config"], "--out", str(tmp_path / "empty"), "--resume"]) == EXIT_USAGE
    assert "holds no checkpoint to resume from" in capsys.readouterr().err
    assert issubclass(RunFolderError, CheckpointError)  # Python callers catching CheckpointError still catch it


@pytest.mark.parametrize("info", ["[]", "{bad", '{"perturbations": []}'])
def test_a_damaged_info_json_of_a_run_exits_1_naming_it(files, tmp_path, capsys, info):
    """A run's info.json (the genes and labels its weights are indexed by) holding a list failed as an internal error
    ('list indices must be integers or slices'); not JSON, or without genes, alike."""
    run = tmp_path / "run"
    assert main(["train", files["config"], "--out", str(run)]) == 0
    (run / "info.json").write_text(info)
    capsys.readouterr()
    assert main(["predict", str(run), "--out", str(tmp_path / "p.h5ad")]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert f"{run / 'info.json'} is damaged" in err and "internal error" not in err and "restore it" in err


@pytest.mark.parametrize("name, text", [("manifest.json", "{bad"), ("manifest.json", "[]"), ("split.json", '{"kind": "x", '),
                                        ("split.json", "[1]")])
def test_a_damaged_manifest_or_split_of_a_run_exits_1_naming_it(files, tmp_path, capsys, name, text):
    """A run's manifest.json or split.json that is not a JSON object ended distgen predict in 'error: Expecting property
    name enclosed in double quotes: line 1 column 2' (no file named) or an internal error ('list' object has no attribute
    'get'); hostile-input round, 2026-12-06."""
    run = tmp_path / "run"
    assert main(["train", files["config"], "--out", str(run)]) == 0
    (run / name).write_text(text)
    capsys.readouterr()
    assert main(["predict", str(run), "--out", str(tmp_path / "p.h5ad")]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert str(run / name) in err and "is damaged" in err and "internal error" not in err and "restore it from a copy" in err
