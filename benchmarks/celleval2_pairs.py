"""Real-data prediction/truth pairs for the cell-eval2 parity tests, written as h5ad files.

* ``papalexi``: ECCITE-seq THP-1 (25 knock-outs + control, 299 genes, raw counts); truth = biological
  replicates 1 and 3, "prediction" = replicate 2 (an honest stand-in: real cells of another replicate).
* ``kang``: IFN-beta PBMCs (5 stimulated cell types vs pooled controls, 1,267 genes, raw counts);
  truth = donor 101, prediction = donor 107. Labels are cell types (no target gene).
* ``norman``: Norman K562 (33 perturbations incl. combinations, 500 genes, log-normalised); truth and
  prediction are seeded halves of each group.
"""

from __future__ import annotations

import os

import numpy as np

CONTROL, PERT_COL = "non-targeting", "target"
FILES = {
    "papalexi": "papalexi2021_eccite_thp1/papalexi2021_eccite_sceptre_lowmoi.h5ad",
    "kang": "kang2018_muscat_example/kang2018_muscat_example_sce.h5ad",
    "norman": "norman2019_mcfaline2023_perturbench_devel/perturbench_devel.h5ad",
}
COUNTS = {"papalexi": True, "kang": True, "norman": False}


def _write(a, rows, labels, path: str) -> None:
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    x = a.X[rows]
    x = sp.csr_matrix(x).astype(np.float32) if sp.issparse(a.X) else np.asarray(x, dtype=np.float32)
    out = ad.AnnData(X=x, obs=pd.DataFrame({PERT_COL: labels[rows]}, index=[f"c{i}" for i in rows]))
    out.var_names = [str(g) for g in a.var_names]
    out.write_h5ad(path)


def make_pair(name: str, shared_data: str, folder: str) -> tuple[str, str]:
    """Write ``(pred, real)`` h5ad paths of pair ``name`` into ``folder``."""
    import anndata as ad

    a = ad.read_h5ad(os.path.join(shared_data, FILES[name]))
    if name == "papalexi":
        labels = a.obs["perturbation"].astype(str).replace({"control": CONTROL}).to_numpy()
        rep = a.obs["bio_rep"].astype(str).to_numpy()
        real, pred = np.flatnonzero(rep != "rep_2"), np.flatnonzero(rep == "rep_2")
    elif name == "kang":
        cell_type = a.obs["cell_type"].astype(str).str.replace(" ", "_").to_numpy()
        labels = np.where(a.obs["condition"].astype(str).to_numpy() == "control", CONTROL, cell_type)
        donor = a.obs["sample_id"].astype(str).str.replace("ctrl", "").str.replace("stim", "").to_numpy()
        real, pred = np.flatnonzero(donor == "101"), np.flatnonzero(donor == "107")
    else:
        a = a[a.obs["cell_type"] == "k562"]
        labels = a.obs["condition"].astype(str).replace({"control": CONTROL}).to_numpy()
        rng = np.random.default_rng(7)
        side = np.zeros(a.n_obs, dtype=bool)
        for lab in sorted(set(labels)):
            idx = np.flatnonzero(labels == lab)
            rng.shuffle(idx)
            side[idx[: len(idx) // 2]] = True
        real, pred = np.flatnonzero(side), np.flatnonzero(~side)
    paths = (os.path.join(folder, f"{name}_pred.h5ad"), os.path.join(folder, f"{name}_real.h5ad"))
    _write(a, pred, labels, paths[0])
    _write(a, real, labels, paths[1])
    return paths
