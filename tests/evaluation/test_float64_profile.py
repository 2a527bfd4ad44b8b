"""The ``cell-eval-0.8.2`` profile scores a float64 file in float64, as cell-eval 0.8.2 does (``Profile.file_dtype``).

distgen read every evaluation file as float32, so for a float64 file the profile's L2/cosine discrimination rows were
float32 where cell-eval 0.8.2's are float64: two distances within float32's resolution (~6e-8 relative) tied in distgen
only, and the argsort position (the score) differed. Here P0's predicted effect (1, 1) is 0.5 from its own real effect
(1, 0.5) and 0.5 - 5e-9 from P1's (0.5 + 5e-9, 1) by L1 and L2, and nearer P1's by cosine too (by ~2.5e-8 relative): in
float64 P1's is closer (P0 ranks second: 1 - 1/3); read as float32 the two are one (2.5 and 2.5 + 5e-9 are one float32)
and the own effect came first (1.0). Float32 files are read and scored as before."""

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


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_float64_file_is_ranked_in_float64_and_a_float32_file_as_before(tmp_path, dtype):
    import pandas as pd

    from distgen.pipeline.profile_eval import evaluate_profile_files

    pred, real = _pair(tmp_path, dtype)
    evaluate_profile_files(pred, real, tmp_path / "dg", "cell-eval-0.8.2", page=False)
    table = pd.read_csv(tmp_path / "dg" / "metrics.csv").set_index("perturbation")
    # expected from the geometry (module docstring): in float32 the tie is sorted stably, own first
    second, first = 1 - 1 / 3, 1.0
    want = second if dtype == np.float64 else first
    assert table.loc["P0", "discrimination_score_l2"] == pytest.approx(want, abs=1e-12)
    assert table.loc["P0", "discrimination_score_cosine"] == pytest.approx(want, abs=1e-12)
    assert table.loc["P0", "discrimination_score_l1"] == pytest.approx(want, abs=1e-12)  # L1 (scipy, float64) alike
    assert table.loc["P1", "discrimination_score_l2"] == 1.0 and table.loc["P2", "discrimination_score_l2"] == 1.0


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
