"""The ``cell-eval-0.8.2`` and ``cell-eval-0.7.6`` profiles score a float64 file in float64, as cell-eval 0.8.2 and
cell-eval2 0.20.0 do (``Profile.file_dtype``).

distgen read every evaluation file as float32, so for a float64 file the profile's L2/cosine discrimination rows were
float32 where cell-eval 0.8.2's are float64: two distances within float32's resolution (~6e-8 relative) tied in distgen
only, and the argsort position (the score) differed. Here P0's predicted effect (1, 1) is 0.5 from its own real effect
(1, 0.5) and 0.5 - 5e-9 from P1's (0.5 + 5e-9, 1) by L1 and L2, and nearer P1's by cosine too (by ~2.5e-8 relative): in
float64 P1's is closer (P0 ranks second: 1 - 1/3); read as float32 the two are one (2.5 and 2.5 + 5e-9 are one float32)
and the own effect came first (1.0). Float32 files are read and scored as before. The counts profiles (``celleval2``,
``vcc2026``) read a float64 file in float64 too since 2026-12-07 (counts with float dust: ``test_count_dust.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

GENES = [f"g{i}" for i in range(8)]
NEAR = 0.5 * (1 + 1e-8)


def _side(means: dict[str, np.ndarray], dtype, n: int = 6):
    """Cells around each group's mean (pairs at mean +- 0.25 in every gene: the mean exact), control at 2.0."""
    import anndata as ad
    import pandas as pd

    rows, labels = [], []
    for label, mean in means.items():
        for i in range(n):
            rows.append(mean + (0.25 if i % 2 else -0.25))
            labels.append(label)
    obs = pd.DataFrame({"target": labels}, index=[f"c{i}" for i in range(len(labels))])
    a = ad.AnnData(X=np.asarray(rows, dtype=np.float64).astype(dtype), obs=obs)
    a.var_names = GENES
    return a


def _pair(tmp_path, dtype):
    base = np.full(8, 2.0)
    e = np.eye(8)
    real = {"non-targeting": base, "P0": base + e[0] + 0.5 * e[1], "P1": base + NEAR * e[0] + e[1], "P2": base + 3.0 * e[2] + e[3]}
    pred = {"non-targeting": base, "P0": base + e[0] + e[1], "P1": real["P1"], "P2": real["P2"]}
    paths = []
    for name, means in (("pred", pred), ("real", real)):
        _side(means, dtype).write_h5ad(tmp_path / f"{name}.h5ad")
        paths.append(str(tmp_path / f"{name}.h5ad"))
    return paths


@pytest.mark.parametrize("profile", ["cell-eval-0.8.2", "cell-eval-0.7.6"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_float64_file_is_ranked_in_float64_and_a_float32_file_as_before(tmp_path, dtype, profile):
    # cell-eval-0.7.6 (cell-eval2's preset) too: cell-eval2 0.20.0 keeps a float64 file's values (its pseudobulks and its
    # Wilcoxon tests read them as stored), so the near tie is no tie there either (a probe: 12 of 84 values of
    # this pair moved between the float64 file and its float32 copy, and distgen's float64 file scored as the copy)
    import pandas as pd

    from distgen.pipeline.profile_eval import evaluate_profile_files

    pred, real = _pair(tmp_path, dtype)
    evaluate_profile_files(pred, real, tmp_path / "dg", profile, page=False, no_target_genes=profile != "cell-eval-0.8.2")
    table = pd.read_csv(tmp_path / "dg" / "metrics.csv").set_index("perturbation")
    # expected from the geometry (module docstring): in float32 the two distances are one (cell-eval 0.8.2's sort leaves the
    # own effect first; cell-eval2 counts only the strictly nearer effects)
    second, first = 1 - 1 / 3, 1.0
    want = second if dtype == np.float64 else first
    assert table.loc["P0", "discrimination_score_l2"] == pytest.approx(want, abs=1e-12)
    assert table.loc["P0", "discrimination_score_cosine"] == pytest.approx(want, abs=1e-12)
    assert table.loc["P0", "discrimination_score_l1"] == pytest.approx(want, abs=1e-12)  # L1 (scipy, float64) alike
    assert table.loc["P1", "discrimination_score_l2"] == 1.0 and table.loc["P2", "discrimination_score_l2"] == 1.0
    if profile == "cell-eval-0.7.6":
        # P1's g0 cells (2.5 + 5e-9 +- 0.25) lie above every control cell (2 +- 0.25) in float64, as its g1 cells do; in
        # float32 2.25 + 5e-9 is 2.25, a control's value, and the Wilcoxon test of g0 ties. The counts are cell-eval2's
        # on this pair (2 on the float64 file, 1 on its float32 copy)
        assert table.loc["P1", "de_nsig_counts_real"] == (2 if dtype == np.float64 else 1)


def test_which_profiles_score_a_float64_file_in_float64():
    # cell-eval 0.8.2 and cell-eval2's presets compute on a float64 file's values: its counts presets too, which accept
    # counts within 1e-6 of an integer and score that dust as stored (float32 rounds it away from 2 up:
    # tests/evaluation/test_count_dust.py); distgen's own profile reads float32
    from distgen.evaluation.profiles import PROFILES

    assert {n for n, p in PROFILES.items() if p.file_dtype} == {"cell-eval-0.8.2", "cell-eval-0.7.6", "celleval2", "vcc2026"}


def test_the_default_evaluation_still_reads_a_float64_file_as_float32(tmp_path):
    from distgen.evaluation.profiles import resolve_profile
    from distgen.pipeline.profile_eval import load_pair

    pred, real = _pair(tmp_path, np.float64)
    assert not resolve_profile("distgen").file_dtype and resolve_profile("cell-eval-0.8.2").file_dtype
    data, _ = load_pair(pred, real)
    assert data.real.X.dtype.itemsize == 4
    data, _ = load_pair(pred, real, keep_float64=True)
    assert data.real.X.dtype.itemsize == 8 and data.pred.X.dtype.itemsize == 8


@pytest.mark.slow
@pytest.mark.celleval
def test_a_float64_near_tie_agrees_with_cell_eval_0_8_2(tmp_path):
    from .adversarial import _exe, differences

    pytest.importorskip("cell_eval")
    if _exe("cell-eval") is None:
        pytest.skip("the cell-eval command is not installed")
    pred, real = _pair(tmp_path, np.float64)
    bad, compared, note = differences("cell-eval-0.8.2", pred, real, tmp_path)
    disc = [b for b in bad if b[0].startswith("discrimination_score")]
    assert not disc, disc
    assert compared > 20 or note, (compared, note)
    assert not bad or all(math.isnan(b[2]) == math.isnan(b[3]) for b in bad), bad


@pytest.mark.slow
@pytest.mark.celleval
def test_a_float64_near_tie_agrees_with_cell_eval2s_log_preset(tmp_path):
    # every metric of every perturbation and every mean, at 1e-12 (the tie level: a near tie moves a score by 1/3 or a
    # count by 1; the rest differ by sums taken in another order, <= 4.4e-16 observed)
    from .adversarial import _exe, differences

    if _exe("cell-eval2") is None:
        pytest.skip("the cell-eval2 command is not installed")
    pred, real = _pair(tmp_path, np.float64)
    bad, compared, note = differences("cell-eval-0.7.6", pred, real, tmp_path, tol=1e-12, no_target_genes=True)
    assert not bad, bad
    assert compared > 80 and not note, (compared, note)


@pytest.mark.slow
@pytest.mark.celleval
@pytest.mark.parametrize("profile", ["celleval2", "vcc2026"])
def test_a_float64_count_file_scores_as_its_float32_copy_in_cell_eval2_and_here(tmp_path, profile):
    # cell-eval2 sums and normalises counts in float64 whatever the file's dtype, so a
    # float64 count file and its float32 copy give it the same bits; distgen agrees with it at the tie level (1e-12)
    import anndata as ad
    import pandas as pd

    from .adversarial import _csv, _exe, differences, reference, write_case

    if _exe("cell-eval2") is None:
        pytest.skip("the cell-eval2 command is not installed")
    pred, real = write_case("float64_x", 2, tmp_path / "f64", counts=True)
    copies = []
    for path in (pred, real):
        a = ad.read_h5ad(path)
        assert a.X.dtype == np.float64
        a.X = a.X.astype(np.float32)
        a.write_h5ad(tmp_path / f"{len(copies)}.h5ad")
        copies.append(str(tmp_path / f"{len(copies)}.h5ad"))
    bad, compared, note = differences(profile, pred, real, tmp_path / "f64", tol=1e-12, no_target_genes=True)
    assert not bad and compared > 60 and not note, (bad[:5], compared, note)
    assert reference(profile, *copies, tmp_path / "ref32", ("--no-target-genes",))[0] is not None
    # the float64 file's tables (as differences() ran it) and the copy's: every value the same bits; the means over
    # perturbations to 1e-14 (cell-eval2 visits the rows in an order that varies from run to run: one run of the same file
    # gave de_wilcoxon_lfc_nmae's mean 1 ulp apart)
    for name, keys in (("results.csv", ["metric", "perturbation"]), ("agg_results.csv", ["statistic"])):
        wide, narrow = (_csv(f / name).sort_values(keys, ignore_index=True) for f in (tmp_path / "f64" / "ref", tmp_path / "ref32"))
        pd.testing.assert_frame_equal(wide, narrow, check_exact=name == "results.csv", rtol=1e-14, atol=0)
