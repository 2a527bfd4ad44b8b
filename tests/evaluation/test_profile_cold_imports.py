"""A cold ``distgen evaluate --profile`` imports neither anndata/pandas nor scipy.sparse for a plain pair of files.

The profiles read their pair with h5py (``h5pair``), and the speed figures of docs/benchmarks.md (issue 21, cold) count
the imports: anndata and pandas (through ``distgen.data``, for a note that reads the prediction file's provenance) and
scipy.sparse (through ``distgen.seeds``, for a sparse matrix that a profile never holds) were ~0.7 s of a 2.1-2.4 s CPU
cold run on Kang's pair (2026-12-07), where the 2026-12-05 code took 1.45 s.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np


def _pair(tmp_path):
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(0)
    labels = ["non-targeting"] * 40 + ["A"] * 20 + ["B"] * 20

    def lognorm():
        counts = rng.poisson(3.0, size=(len(labels), 30)).astype(np.float32)
        return np.log1p(counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32)

    obs = pd.DataFrame({"target": labels}, index=[f"c{i}" for i in range(len(labels))])
    var = pd.DataFrame(index=[f"g{j}" for j in range(30)])
    paths = []
    for name in ("pred", "real"):
        p = tmp_path / f"{name}.h5ad"
        ad.AnnData(X=lognorm(), obs=obs, var=var).write_h5ad(p)
        paths.append(str(p))
    return paths


def test_a_cold_profile_evaluation_imports_no_anndata_pandas_or_scipy_sparse(tmp_path):
    # -X importtime: the CLI leaves by os._exit after writing its files (no interpreter teardown), so the imports are
    # read from the lines Python writes as each module is first imported
    pred, real = _pair(tmp_path)
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "distgen", "evaluate", "--profile", "cell-eval-0.8.2",
                          "--pred", pred, "--real", real, "--pert-col", "target", "--control", "non-targeting",
                          "--out", str(tmp_path / "out"), "--no-plots", "--quiet"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "out" / "metrics.csv").exists()
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "distgen.evaluation.profiles" in imported  # the lines are read
    assert sorted({"anndata", "pandas", "scipy.sparse"} & imported) == []
