"""The evaluation profiles' notes and refusals that count perturbations or labels read right for 1, 2 and many: the
verb agrees with the count, the first few are named without a Python list, and the rest are counted."""

from __future__ import annotations

import numpy as np
import pytest

from distgen.pipeline.profile_eval import evaluate_profile_files

from .synth import CONTROL, make_pair
from .test_profile_eval import _counts_pair, _relabel, _with_nan

#: 13 perturbations P0..P12 on 60 genes, 10 cells each: more than a note names (10).
BIG = {"n_perts": 13, "g": 60, "n": 10}


def _nan_in(a, labels):
    for lab in labels:
        a = _with_nan(a, lab)
    return a


@pytest.mark.parametrize("k", [1, 2, 12])
def test_a_reference_profile_refusing_nan_perturbations_counts_them(tmp_path, k):
    real, pred = _counts_pair(**BIG)
    bad = [f"P{i}" for i in range(k)]
    with pytest.raises(ValueError) as info:
        evaluate_profile_files(_nan_in(pred, bad), real, tmp_path / "out", "celleval2")
    text = str(info.value)
    verb = "holds" if k == 1 else "hold"
    noun = "perturbation" if k == 1 else "perturbations"
    assert text.startswith(f"{k} {noun} {verb} NaN or inf values: 'P0 (10 pred cell(s) contain NaN or inf values)'"), text
    assert "[" not in text.split(". Profile")[0] and "(s) hold" not in text
    shown = sorted(bad)[:10]  # named in label order: P0, P1, P10, P11, P2, ...
    assert all(f"'{p} (" in text for p in shown)
    assert ("(and 2 more); a value past float32's range" in text) == (k == 12)
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize("k", [1, 2, 12])
def test_the_distgen_profile_names_nan_perturbations_and_counts_the_rest(tmp_path, k):
    real, pred = make_pair(seed=1, n_cells=10)  # 13 perturbations, log-normalised
    bad = sorted(set(pred.obs["target"]) - {CONTROL})[:k]
    with pytest.warns(UserWarning, match="NaN for every metric"):
        summary = evaluate_profile_files(_nan_in(pred, bad), real, tmp_path / "out", "distgen")
    [note] = [n for n in summary["notes"] if "NaN for every metric" in n]
    assert note.startswith(f"{k} of 13 perturbations {'is' if k == 1 else 'are'} NaN for every metric"), note
    assert note.count(": 10 pred cell(s) contain NaN or inf values") == min(k, 10)
    assert note.endswith("values (and 2 more)") == (k == 12) and "[" not in note


@pytest.mark.parametrize("k", [1, 2, 12])
def test_labels_naming_no_measured_gene_are_counted_with_the_verb_agreeing(tmp_path, k):
    real, pred = _counts_pair(**BIG)
    ko = {f"P{i}": f"P{i}_KO" for i in range(13 - k)}  # k labels still name their gene
    summary = evaluate_profile_files(_relabel(pred, ko), _relabel(real, ko), tmp_path / "out", "celleval2")
    [note] = [n for n in summary["notes"] if n.startswith("target-gene exclusion")]
    other = 13 - k
    if k == 1:
        assert note.startswith("target-gene exclusion: 1 of 13 labels names a measured gene; the other 12 are scored WITHOUT "
                               "excluding their own gene (as cell-eval2 scores them; harmless only if those genes are"), note
        assert note.endswith("(and 2 more)")
    elif k == 2:
        assert note.startswith(f"target-gene exclusion: 2 of 13 labels name a measured gene; the other {other} are"), note
    else:
        assert note.startswith("target-gene exclusion: 12 of 13 labels name a measured gene; the other 1 is scored WITHOUT "
                               "excluding its own gene (as cell-eval2 scores it; harmless only if that gene is absent"), note
        assert note.endswith("panel): 'P0_KO'")
    assert "/13" not in note


def test_two_labels_one_naming_a_gene(tmp_path):
    real, pred = _counts_pair(n_perts=2)
    summary = evaluate_profile_files(_relabel(pred, {"P0": "P0_KO"}), _relabel(real, {"P0": "P0_KO"}), tmp_path / "o", "celleval2")
    [note] = [n for n in summary["notes"] if n.startswith("target-gene exclusion")]
    assert note.startswith("target-gene exclusion: 1 of 2 labels names a measured gene; the other 1 is scored WITHOUT "
                           "excluding its own gene"), note
    assert note.endswith(": 'P0_KO'")


@pytest.mark.parametrize("k", [1, 7])
def test_no_target_genes_names_the_labels_that_name_a_gene(tmp_path, k):
    real, pred = _counts_pair(**BIG)
    ko = {f"P{i}": f"P{i}_KO" for i in range(13 - k)}
    summary = evaluate_profile_files(_relabel(pred, ko), _relabel(real, ko), tmp_path / "out", "celleval2", no_target_genes=True)
    [note] = [n for n in summary["notes"] if n.startswith("--no-target-genes")]
    if k == 1:
        assert note.endswith("(1 of them names a measured gene, scored WITH it: 'P12')"), note
    else:
        assert note.endswith("(7 of them name a measured gene, scored WITH it: 'P10', 'P11', 'P12', 'P6', 'P7', and 2 more)"), note


def test_a_panel_where_no_label_names_a_gene_names_five_and_counts_the_rest(tmp_path):
    real, pred = _counts_pair(**BIG)
    ko = {f"P{i}": f"P{i}_KO" for i in range(13)}
    with pytest.raises(ValueError) as info:
        evaluate_profile_files(_relabel(pred, ko), _relabel(real, ko), tmp_path / "out", "celleval2")
    assert "('P0_KO', 'P10_KO', 'P11_KO', 'P12_KO', 'P1_KO', and 8 more), so no target gene" in str(info.value)  # label order
    assert np.all([f"'P{i}_KO'" not in str(info.value) for i in range(2, 10)])
