"""distgen compare pairs rows only when both evaluations scored them on the same real cells.

Two truths with the same labels and the same numbers of cells per perturbation (another draw of the cells, a truth
file rewritten with other cells) passed every earlier check (profile, genes, ``n_cells_real``) and were paired as if
they were one truth. ``summary.json["truth_digests"]`` records each row's real cells (and its control cells); the
same truth resorted, with its genes in another order or stored as float64 still pairs.
"""

import json

import numpy as np
import pytest

from distgen.cli import main
from distgen.evaluation.compare import MismatchedEvaluations, compare
from distgen.evaluation.digest import TRUTH_DIGESTS, cells_digest
from tests.evaluation.synth import make_pair


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("truths")
    real, pred = make_pair(seed=0, combos=False)
    other, _ = make_pair(seed=1, combos=False)  # the same labels and cell counts, other cells
    paths = {}
    for name, a in {"real": real, "pred": pred, "other": other}.items():
        paths[name] = str(root / f"{name}.h5ad")
        a.write_h5ad(paths[name])
    # the same truth: rows shuffled, genes reversed, float64
    same = real[np.random.default_rng(2).permutation(real.n_obs)].copy()
    same = same[:, same.var_names[::-1]].copy()
    same.X = same.X.astype(np.float64)
    paths["same"] = str(root / "same.h5ad")
    same.write_h5ad(paths["same"])
    # the same truth less one perturbation: the shared rows are the same cells
    paths["subset"] = str(root / "subset.h5ad")
    real[real.obs["target"] != "G9"].copy().write_h5ad(paths["subset"])
    paths["pred_subset"] = str(root / "pred_subset.h5ad")
    pred[pred.obs["target"] != "G9"].copy().write_h5ad(paths["pred_subset"])
    # the same perturbed cells, other control cells (every delta is against other cells)
    ctrl = real.obs["target"].to_numpy() == "non-targeting"
    moved = real.copy()
    moved.X[ctrl] = other.X[other.obs["target"].to_numpy() == "non-targeting"]
    paths["other_controls"] = str(root / "other_controls.h5ad")
    moved.write_h5ad(paths["other_controls"])
    return paths


DEFAULT = ["--no-ceiling", "--metrics", "mse,pearson_delta"]
PROFILES = pytest.mark.parametrize("profile", [DEFAULT, ["--profile", "cell-eval-0.8.2"]], ids=["default", "cell-eval-0.8.2"])


def _evaluate(files, tmp_path, name, pred, real, *how):
    out = tmp_path / name
    argv = ["evaluate", "--pred", files[pred], "--real", files[real], "--out", str(out), "--no-plots", "--quiet"]
    assert main(argv + list(how or DEFAULT)) == 0
    return out


@PROFILES
def test_evaluations_of_other_cells_with_the_same_counts_are_refused(files, tmp_path, capsys, profile):
    a = _evaluate(files, tmp_path, "a", "pred", "real", *profile)
    b = _evaluate(files, tmp_path, "b", "pred", "other", *profile)
    with pytest.raises(MismatchedEvaluations, match="other real cells"):
        compare(a, b)
    capsys.readouterr()
    assert main(["compare", str(a), str(b)]) == 2
    assert "not the same truth" in capsys.readouterr().err


@PROFILES
def test_the_same_truth_resorted_or_as_float64_still_pairs(files, tmp_path, profile):
    a = _evaluate(files, tmp_path, "a", "pred", "real", *profile)
    b = _evaluate(files, tmp_path, "b", "pred", "same", *profile)
    result = compare(a, b)
    assert result["metrics"]["mse"]["n"] == 10
    assert result["metrics"]["mse"]["mean_difference"] == pytest.approx(0.0, abs=1e-9)


def test_a_truth_less_one_perturbation_pairs_on_the_rest(files, tmp_path):
    a = _evaluate(files, tmp_path, "a", "pred", "real")
    b = _evaluate(files, tmp_path, "b", "pred_subset", "subset")
    assert compare(a, b)["metrics"]["mse"]["n"] == 9


def test_other_control_cells_are_another_truth(files, tmp_path):
    a = _evaluate(files, tmp_path, "a", "pred", "real")
    b = _evaluate(files, tmp_path, "b", "pred", "other_controls")
    with pytest.raises(MismatchedEvaluations, match="other real cells"):
        compare(a, b)


def test_the_digest_is_of_the_cells_as_a_set_and_of_their_values():
    x = np.random.default_rng(0).random((30, 7)).astype(np.float32)
    assert cells_digest(x) == cells_digest(x[::-1]) == cells_digest(x.astype(np.float64))
    assert cells_digest(x[:, ::-1], np.arange(7)[::-1]) == cells_digest(x)
    y = x.copy()
    y[3, 4] = np.nextafter(y[3, 4], np.float32(2))
    assert cells_digest(y) != cells_digest(x)
    assert cells_digest(np.concatenate([x, x[:1]])) != cells_digest(x)  # a duplicated cell is another multiset
    z = np.zeros((2, 3), np.float32)
    assert cells_digest(-z) == cells_digest(z)


def test_every_row_of_a_summary_has_its_digest(files, tmp_path):
    a = _evaluate(files, tmp_path, "a", "pred", "real")
    assert set(json.loads((a / "summary.json").read_text())[TRUTH_DIGESTS]) == {f"G{i}" for i in range(10)}


def test_an_interrupted_evaluation_is_named_as_one(files, tmp_path, capsys):
    """An evaluation killed before its summary.json was 'no evaluation' to compare; it says what happened now."""
    a = _evaluate(files, tmp_path, "a", "pred", "real")
    b = _evaluate(files, tmp_path, "b", "pred", "same")
    (b / "summary.json").unlink()
    assert main(["compare", str(a), str(b)]) == 1
    err = capsys.readouterr().err
    assert "did not finish (no summary.json" in err and "run the evaluation again" in err
