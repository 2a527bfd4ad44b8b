"""benchmarks/eval_scale.py: the pairs it writes are what the evaluation reads, and a tiny run fills its table."""

from __future__ import annotations

import anndata as ad
import numpy as np


def test_write_pair_gives_counts_and_their_log_normalisation(tmp_path):
    from benchmarks.eval_scale import CONTROL, PERT_COL, write_pair

    paths = write_pair(str(tmp_path), n_perts=4, n_genes=30, n_cells=5, n_ctrl=12)
    files = {k: ad.read_h5ad(v) for k, v in paths.items()}
    real, log = files["real_counts"], files["real_log"]
    assert real.shape == (12 + 4 * 5, 30) and (real.obs[PERT_COL] == CONTROL).sum() == 12
    counts = real.X.toarray()
    assert np.array_equal(counts, np.round(counts)) and counts.min() >= 0  # raw counts, for celleval2 and vcc2026
    lib = counts.sum(1, keepdims=True)
    np.testing.assert_allclose(log.X.toarray(), np.log1p(counts / np.maximum(lib, 1) * 1e4), rtol=1e-5)
    assert not np.array_equal(files["pred_counts"].X.toarray(), counts)  # the prediction draws its own cells


def test_a_tiny_run_prints_a_row_per_command(tmp_path, capsys):
    from benchmarks.eval_scale import main

    main(["--perts", "3", "--genes", "30", "--cells", "6", "--controls", "20", "--commands", "cell-eval-0.8.2,compare",
          "--work", str(tmp_path)])
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| 3 |")]
    assert len(rows) == 2 and "fail" not in rows[0] and "skipped: no default evaluation" in rows[1]
