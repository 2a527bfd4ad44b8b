"""Real-data prediction/truth pairs for the cell-eval2 parity tests, written as h5ad files.

* ``papalexi``: ECCITE-seq THP-1 (25 knock-outs + control, 299 genes, raw counts); truth = biological
  replicates 1 and 3, "prediction" = replicate 2 (an honest stand-in: real cells of another replicate).
* ``kang``: IFN-beta PBMCs (5 stimulated cell types vs pooled controls, 1,267 genes, raw counts);
  truth = donor 101, prediction = donor 107. Labels are cell types (no target gene).
* ``norman``: Norman K562 (33 perturbations incl. combinations, 500 genes, log-normalised); truth and
  prediction are seeded halves of each group.

Pairs with a cell-type column (``CELLTYPE_COL``), for per-context scoring (``make_context_pair``):

* ``norman_lines``: the Norman devel file's four cell lines (K562: 33 perturbations incl. combinations;
  A172, T98G, U87MG: 9 each), log-normalised; truth and prediction are seeded halves of each
  (cell line, condition) group.
* ``kang_types``: IFN-beta PBMCs of three cell types (``B cells``, ``CD14+ Monocytes``, ``CD8 T cells``),
  stimulated (label ``IFNB``) vs control cells of the same type; truth = donor 101, prediction = donor
  107. ``counts=True``: raw counts (X); else the file's ``logcounts`` layer.
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
CELLTYPE_COL = "celltype"
KANG_TYPES = ("B cells", "CD14+ Monocytes", "CD8 T cells")


def _write(a, rows, labels, path: str, contexts=None, layer: str | None = None) -> None:
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    from distgen.data.layout import write_h5ad

    m = a.X if layer is None else a.layers[layer]
    x = m[rows]
    x = sp.csr_matrix(x).astype(np.float32) if sp.issparse(m) else np.asarray(x, dtype=np.float32)
    obs = {PERT_COL: labels[rows], **({CELLTYPE_COL: contexts[rows]} if contexts is not None else {})}
    out = ad.AnnData(X=x, obs=pd.DataFrame(obs, index=[f"c{i}" for i in rows]))
    out.var_names = [str(g) for g in a.var_names]
    write_h5ad(out, path, compression=None)


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


def _halves(contexts: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of seeded disjoint halves of each (context, label) group: ``(real, pred)``."""
    rng = np.random.default_rng(seed)
    side = np.zeros(len(labels), dtype=bool)
    for key in sorted(set(zip(contexts.tolist(), labels.tolist()))):
        idx = np.flatnonzero((contexts == key[0]) & (labels == key[1]))
        rng.shuffle(idx)
        side[idx[: len(idx) // 2]] = True
    return np.flatnonzero(side), np.flatnonzero(~side)


def make_context_pair(name: str, shared_data: str, folder: str, counts: bool = False) -> tuple[str, str]:
    """Write ``(pred, real)`` h5ad paths of the per-context pair ``name`` (with a ``CELLTYPE_COL`` column) into ``folder``."""
    import anndata as ad

    if name == "norman_lines":
        a = ad.read_h5ad(os.path.join(shared_data, FILES["norman"]))
        labels = a.obs["condition"].astype(str).replace({"control": CONTROL}).to_numpy()
        contexts = a.obs["cell_type"].astype(str).to_numpy()
        real, pred = _halves(contexts, labels, seed=11)
        layer = None
    elif name == "kang_types":
        a = ad.read_h5ad(os.path.join(shared_data, FILES["kang"]))
        a = a[a.obs["cell_type"].astype(str).isin(KANG_TYPES).to_numpy()]
        labels = np.where(a.obs["condition"].astype(str).to_numpy() == "control", CONTROL, "IFNB")
        contexts = a.obs["cell_type"].astype(str).to_numpy()
        donor = a.obs["sample_id"].astype(str).str.replace("ctrl", "").str.replace("stim", "").to_numpy()
        real, pred = np.flatnonzero(donor == "101"), np.flatnonzero(donor == "107")
        layer = None if counts else "logcounts"
    else:
        raise ValueError(f"unknown per-context pair {name!r}; choose norman_lines or kang_types")
    tag = f"{name}{'_counts' if counts else ''}"
    paths = (os.path.join(folder, f"{tag}_pred.h5ad"), os.path.join(folder, f"{tag}_real.h5ad"))
    _write(a, pred, labels, paths[0], contexts, layer)
    _write(a, real, labels, paths[1], contexts, layer)
    return paths
