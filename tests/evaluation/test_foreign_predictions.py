"""Prediction files other tools write (cell-eval, STATE, GEARS, scGPT/CPA exports), scored against a truth: each case
scored silently wrong or was refused with a misleading fix before (docs/reliability.md, "Other tools' prediction files")."""

from __future__ import annotations

import json
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import distgen
from distgen.cli import main
from distgen.errors import EXIT_USAGE
from distgen.evaluation.io import ScaleMismatchError

from .synth import make_pair


def _pair(n_genes: int = 60):
    """(real, pred) log-normalised over 80 genes, kept to ``n_genes`` of them: a gene panel, as most files are (a file
    with every gene has a normalisation signature, checked elsewhere, which a panel has not)."""
    real, pred = make_pair(seed=3)
    return real[:, :n_genes].copy(), pred[:, :n_genes].copy()


def _write(tmp_path, pred, real):
    pp, rp = tmp_path / "pred.h5ad", tmp_path / "real.h5ad"
    pred.write_h5ad(pp)
    real.write_h5ad(rp)
    return str(pp), str(rp)


def _evaluate(tmp_path, pp, rp, *more, out="ev"):
    default = [] if "--profile" in more else ["--baselines", "", "--no-ceiling"]  # a profile has neither
    return main(["evaluate", "--pred", pp, "--real", rp, "--out", str(tmp_path / out), "--no-plots", "--quiet", "--overwrite",
                 *default, *more])


FEW = ("--metrics", "pearson_delta,mse")  # what a test of reading needs, at a fraction of the full suite's time


def _relog(adata, log):
    """The same cells, ``log(1 + expm1(X))`` in another base (a tool that writes ``log2(1 + x)``)."""
    out = adata.copy()
    out.X = log(np.expm1(np.asarray(adata.X, dtype=np.float64)) + 1.0).astype(np.float32)
    return out


@pytest.mark.parametrize("log", [np.log2, np.log10], ids=["log2", "log10"])
@pytest.mark.parametrize("profile", [None, "cell-eval-0.8.2"])
def test_a_prediction_in_another_log_base_is_refused(tmp_path, capsys, log, profile):
    """log2(1 + x) of the truth's own cells passes every range check on a gene panel (fractional, >= 0, < 20): its mse was
    scored 2.1 times (log10: 0.19 times) the truth's scale without a word. Its control cells give it away."""
    real, pred = _pair()
    pp, rp = _write(tmp_path, _relog(pred, log), real)
    more = ["--profile", profile] if profile else []
    assert _evaluate(tmp_path, pp, rp, *more) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "control cells are not on the real control cells' scale" in err and "Traceback" not in err
    import re

    ratios = [float(r) for r in re.findall(r"\(([0-9.]+) times\)", err)]  # the mean's and the quantile's, near the base's factor
    assert len(ratios) == 2 and all(abs(r / float(log(np.e)) - 1) < 0.15 for r in ratios)


def test_a_prediction_in_another_log_base_is_refused_by_the_api(tmp_path):
    real, pred = _pair()
    with pytest.raises(ScaleMismatchError, match="not on the real control cells' scale"):
        distgen.evaluate(_relog(pred, np.log2), real, baselines=[], ceiling=False, make_plots=False, progress=False)


def test_the_truths_own_scale_with_other_control_cells_of_it_is_scored(tmp_path):
    """The check compares control populations by scale: the prediction's controls drawn again from the same population
    (another seed, the model's noise) are scored, not refused."""
    real, pred = _pair()
    other, _ = make_pair(seed=11)
    ctrl = np.flatnonzero((pred.obs["target"] == "non-targeting").to_numpy())
    pred.X[ctrl] = np.asarray(other[:, : pred.n_vars].X)[: len(ctrl)]
    pp, rp = _write(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp) == 0


def test_an_all_zero_prediction_is_refused(tmp_path, capsys):
    """A tool that keeps its predictions in a layer or obsm and leaves X zeros: every metric was computed on zeros
    (pearson_delta NaN, an mse) and the run exited 0."""
    real, pred = _pair()
    pred.layers["pred"] = pred.X.copy()
    pred.X = np.zeros_like(pred.X)
    pp, rp = _write(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp) == EXIT_USAGE
    assert "X holds only zeros" in capsys.readouterr().err


def test_counts_in_x_with_the_log_values_in_a_layer_names_the_layer(tmp_path, capsys):
    """Bioconductor-style files keep counts in X and layers['logcounts']: the refusal said to run normalize_total and log1p
    on the counts, not that the file already holds the log values."""
    real, pred = make_pair(seed=3)
    counts, _ = make_pair(seed=3, counts=True)
    pred.layers["logcounts"] = pred.X.copy()
    pred.X = np.asarray(counts.X, dtype=np.float32)[: pred.n_obs]
    pp, rp = _write(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "adata.X = adata.layers['logcounts']" in err
    with pytest.raises(ScaleMismatchError, match="raw counts"):  # the API's class is unchanged
        distgen.evaluate(pp, rp, baselines=[], ceiling=False, make_plots=False, progress=False)


@pytest.mark.parametrize("copy", [False, True], ids=["one_file", "a_copy"])
def test_the_truth_given_as_the_prediction_is_warned_in_the_cli(tmp_path, copy):
    """distgen evaluate --pred real.h5ad --real real.h5ad (or a copy of the truth) scored a perfect prediction with no word;
    only the Python API warned."""
    real, _ = _pair()
    rp = str(tmp_path / "real.h5ad")
    real.write_h5ad(rp)
    pp = rp
    if copy:
        pp = str(tmp_path / "pred.h5ad")
        real.write_h5ad(pp)
    with pytest.warns(UserWarning, match="every score is that of a perfect prediction"):
        assert _evaluate(tmp_path, pp, rp) == 0
    notes = json.loads((tmp_path / "ev" / "summary.json").read_text())["notes"]
    assert any("perfect prediction" in n for n in notes)


def test_a_prediction_is_not_called_a_copy_of_the_truth(tmp_path):
    real, pred = _pair()
    pp, rp = _write(tmp_path, pred, real)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no warning at all on a clean pair
        assert _evaluate(tmp_path, pp, rp) == 0


@pytest.mark.parametrize("side", ["pred", "real"])
def test_a_file_without_cells_is_refused_as_such(tmp_path, capsys, side):
    """An empty prediction was refused as 'no control cells (values include [])'; an empty truth as 'none of the usual
    control labels... pass --control'."""
    real, pred = _pair()
    files = {"pred": pred, "real": real}
    files[side] = files[side][:0].copy()
    pp, rp = _write(tmp_path, files["pred"], files["real"])
    assert _evaluate(tmp_path, pp, rp) == EXIT_USAGE
    assert f"the {side} file holds no cells" in capsys.readouterr().err


def test_a_transposed_prediction_is_refused_as_such(tmp_path, capsys):
    """Cells as var, genes as obs: refused with 'pass --pert-col' beside the truth's own columns."""
    real, pred = _pair()
    flipped = ad.AnnData(np.asarray(pred.X).T, obs=pred.var.copy(), var=pred.obs.copy())
    pp, rp = _write(tmp_path, flipped, real)
    assert _evaluate(tmp_path, pp, rp) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "written transposed" in err and "adata = adata.T" in err
    with pytest.raises(ValueError, match="written transposed"):
        distgen.evaluate(flipped, real, baselines=[], ceiling=False, make_plots=False, progress=False)


def _means_file(pred, repeat: int):
    """``pred`` with each perturbation's cells replaced by its mean, written ``repeat`` times (controls kept)."""
    labels = pred.obs["target"].astype(str).to_numpy()
    x = np.asarray(pred.X)
    rows, names = [], []
    for p in sorted(set(labels)):
        cells = x[labels == p]
        block = cells if p == "non-targeting" else np.repeat(cells.mean(0, keepdims=True), repeat, axis=0)
        rows.append(block)
        names += [p] * len(block)
    out = ad.AnnData(np.vstack(rows).astype(np.float32), obs=pd.DataFrame({"target": pd.Categorical(names)},
                                                                         index=[f"m{i}" for i in range(len(names))]))
    out.var_names = pred.var_names
    return out


def test_one_mean_per_perturbation_is_refused_with_the_way_to_score_means(tmp_path, capsys):
    """A GEARS-style file (one mean expression per perturbation beside the real controls): every row NaN, exit 0, and
    the advice to 'predict every perturbation of the truth'. The advice given now scores the means: each twice, with
    the mean-based metrics, gives the pearson_delta and mse of the cells the means came from."""
    real, pred = _pair()
    pp, rp = _write(tmp_path, _means_file(pred, 1), real)
    assert _evaluate(tmp_path, pp, rp) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "one cell per perturbation" in err and "--metrics pearson_delta,mse" in err
    with pytest.raises(ValueError, match="one cell per perturbation"):
        distgen.evaluate(pp, rp, baselines=[], ceiling=False, make_plots=False, progress=False)
    twice = str(tmp_path / "twice.h5ad")
    _means_file(pred, 2).write_h5ad(twice)
    cells = str(tmp_path / "cells.h5ad")
    pred.write_h5ad(cells)
    got = {}
    for name, path in (("means", twice), ("cells", cells)):
        assert _evaluate(tmp_path, path, rp, "--metrics", "pearson_delta,mse", out=name) == 0
        got[name] = pd.read_csv(tmp_path / name / "metrics.csv").set_index("perturbation")[["pearson_delta", "mse"]]
    pd.testing.assert_frame_equal(got["means"], got["cells"], rtol=1e-5)


def test_a_usual_control_word_among_the_predictions_is_named(tmp_path, capsys):
    """GEARS' 'ctrl' beside cell-eval's 'non-targeting' in one prediction file: refused as a perturbation the truth lacks,
    without saying that it reads as control cells."""
    real, pred = _pair()
    labels = pred.obs["target"].astype(str).to_numpy().copy()
    labels[np.flatnonzero(labels == "non-targeting")[:10]] = "ctrl"
    pred.obs["target"] = pd.Categorical(labels)
    pp, rp = _write(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp) == EXIT_USAGE
    assert "'ctrl' is a usual control label" in capsys.readouterr().err


def test_compare_says_when_one_evaluation_scored_the_truth_against_itself(tmp_path, capsys):
    """A model 'beaten' by a copy of the truth: compare named the copy the winner of every metric, its summary's note
    unread."""
    real, pred = _pair()
    pp, rp = _write(tmp_path, pred, real)
    copy = str(tmp_path / "copy.h5ad")
    real.write_h5ad(copy)
    assert _evaluate(tmp_path, pp, rp, *FEW, out="model") == 0
    with pytest.warns(UserWarning, match="perfect prediction"):
        assert _evaluate(tmp_path, copy, rp, *FEW, out="copy") == 0
    capsys.readouterr()
    with pytest.warns(UserWarning, match=r"B \(.*copy\) scored the truth as its prediction"):
        assert main(["compare", str(tmp_path / "model"), str(tmp_path / "copy"), "--json"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert "scored the truth as its prediction" in notes[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # two models: no such note
        assert _evaluate(tmp_path, pp, rp, *FEW, out="model2") == 0
        capsys.readouterr()
        assert main(["compare", str(tmp_path / "model"), str(tmp_path / "model2"), "--json"]) == 0
    assert not any("truth as its prediction" in n for n in json.loads(capsys.readouterr().out)["notes"])


@pytest.mark.parametrize("profile", ["cell-eval-0.8.2", "celleval2"])
def test_a_copy_of_the_truth_is_warned_under_a_profile(tmp_path, profile):
    """--profile warned of one path given twice, not of a copy of the truth at another path."""
    real, _ = make_pair(seed=3, counts=profile == "celleval2")
    rp, copy = str(tmp_path / "real.h5ad"), str(tmp_path / "copy.h5ad")
    real.write_h5ad(rp)
    real.write_h5ad(copy)
    with pytest.warns(UserWarning, match="the prediction file is a copy of the truth"):
        assert _evaluate(tmp_path, copy, rp, "--profile", profile) == 0
    notes = json.loads((tmp_path / "ev" / "summary.json").read_text())["notes"]
    assert any("perfect prediction" in n for n in notes)


def test_a_duplicated_gene_is_named_with_a_fix_that_works(tmp_path, capsys):
    """A gene twice in the prediction was refused with 'adata.var_names_make_unique()', which renames the repeat to a
    gene the truth lacks (a second refusal followed). The message names the gene; its fix, applied to both files, scores."""
    real, pred = _pair()
    names = list(pred.var_names)
    names[7] = names[3]
    pred.var_names = names
    pp, rp = _write(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp, *FEW) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"duplicated gene names in var_names ({names[3]!r})" in err and "~adata.var_names.duplicated()" in err
    fixed_pred, fixed_real = pred[:, ~pred.var_names.duplicated()].copy(), real[:, ~pred.var_names.duplicated()].copy()
    pp, rp = _write(tmp_path, fixed_pred, fixed_real)
    assert _evaluate(tmp_path, pp, rp, *FEW) == 0


def test_integer_perturbation_codes_are_told_to_name_their_control(tmp_path, capsys):
    """A perturbation column of integer codes was refused as 'none of the usual control labels ...; pass --control'
    without its values; the message lists them, says they are codes, and --control with the control's code scores."""
    real, pred = _pair()
    codes = {label: str(i) for i, label in enumerate(sorted(set(real.obs["target"]), key=lambda v: v != "non-targeting"))}
    for a in (real, pred):
        a.obs["target"] = a.obs["target"].map(codes).astype(str)
    pp, rp = _write(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp, *FEW) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "(its values: '0', '1'" in err and "integer codes" in err and "--control 0" in err
    assert _evaluate(tmp_path, pp, rp, *FEW, "--control", "0") == 0


@pytest.mark.parametrize("name", ["", "  ", "\u200b"])
def test_a_blank_gene_name_is_refused_with_a_fix_that_works(tmp_path, capsys, name):
    """A gene named '' in both files was scored (a nameless row in every per-gene table) and written back as it was."""
    real, pred = _pair()
    names = list(pred.var_names)
    names[5] = name
    pred.var_names, real.var_names = names, names
    pp, rp = _write(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp, *FEW) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "empty or blank" in err and f"column 5 ({name!a})" in err
    with pytest.raises(Exception, match="empty or blank"):
        distgen.evaluate(pred, real, baselines=[], ceiling=False, metric_names=["mse"], make_plots=False)
    keep = ~np.isin(np.arange(pred.n_vars), [5])  # the message's fix, on both files
    pp, rp = _write(tmp_path, pred[:, keep].copy(), real[:, keep].copy())
    assert _evaluate(tmp_path, pp, rp, *FEW) == 0


@pytest.mark.parametrize("profile", ["celleval2", "vcc2026", "cell-eval-0.7.6", "cell-eval-0.8.2", "distgen"])
def test_every_profile_refuses_duplicated_gene_names_naming_them(tmp_path, profile):
    """Duplicated gene names (docs/metrics.md, "Duplicated gene names"): cell-eval2 (``full``, ``vcc2026``, ``cell-eval-0.7.6``)
    refuses such a pair; cell-eval 0.8.2 scores it, its DE tables joined per (perturbation, gene name), so a repeated name
    fans out on the joins. Every profile refuses it here, naming the genes and the fix that keeps the first column."""
    import numpy as np

    from distgen.errors import InputDataError
    from distgen.pipeline.profile_eval import evaluate_profile_files

    from .adversarial import COUNTS, _base, write_side

    pred, real = _base(np.random.default_rng(3), n_genes=30)
    for s in (pred, real):
        s["X"] = np.concatenate([s["X"], s["X"][:, 5:8]], axis=1)
        s["genes"] = list(s["genes"]) + list(s["genes"][:3])
    counts = COUNTS.get(profile, False)
    p, r = write_side(pred, tmp_path / "pred.h5ad", counts), write_side(real, tmp_path / "real.h5ad", counts)
    with pytest.raises(InputDataError, match=r"duplicated gene names in var_names \('G0', 'G1', 'G2'\).*~adata\.var_names\.duplicated\(\)"):
        evaluate_profile_files(p, r, tmp_path / "dg", profile, page=False)
