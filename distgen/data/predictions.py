"""Writing generated and real cells in the AnnData layout of Arc Institute's ``cell-eval run``.

``cell-eval run -ap pred.h5ad -ar real.h5ad --pert-col target_gene --control-pert non-targeting``
expects, in both files: the same genes in the same order (``var_names``), a perturbation column in
``obs`` with the *same set* of labels, control cells labelled ``control_pert`` in each file, and
log-normalised values. These writers produce exactly that, defaulting to cell-eval's own names.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anndata as ad
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from distgen.data.dataset import PerturbationData

CELL_EVAL_PERT_COL = "target_gene"  #: cell-eval's default ``--pert-col``
CELL_EVAL_CONTROL = "non-targeting"  #: cell-eval's default ``--control-pert``
CELL_EVAL_CELLTYPE_COL = "celltype"  #: cell-eval's default ``--celltype-col``


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


def _write(adata: ad.AnnData, path: str | os.PathLike[str]) -> None:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".h5ad")
    os.close(fd)
    try:
        adata.write_h5ad(tmp, compression="gzip")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _layout(
    cells: np.ndarray,
    conditions: Sequence[str],
    contexts: Sequence[str] | None,
    control_cells: np.ndarray,
    control_contexts: Sequence[str] | None,
    genes: Sequence[str],
    pert_col: str,
    control_label: str,
    celltype_col: str,
    kind: str,
) -> ad.AnnData:
    genes = [str(g) for g in genes]
    if len(set(genes)) != len(genes):
        raise ValueError("gene names are duplicated; cell-eval matches genes by name")
    for name, m in (("cells", cells), ("control_cells", control_cells)):
        if m.ndim != 2 or m.shape[1] != len(genes):
            raise ValueError(f"{name} must be [N, G={len(genes)}], got {m.shape}")
        if not np.isfinite(m).all():
            raise ValueError(f"{name} has NaN/inf values; the model diverged or the input was not cleaned")
    if len(conditions) != len(cells):
        raise ValueError(f"{len(conditions)} condition labels for {len(cells)} cells")
    if len(control_cells) == 0:
        raise ValueError("no control cells given: cell-eval needs real control cells in both files")
    if control_label in set(conditions):
        raise ValueError(f"condition label {control_label!r} is the control label; pass perturbed cells in cells= and controls in control_cells=")
    if (contexts is None) != (control_contexts is None):
        raise ValueError("give contexts for both the perturbed and the control cells, or for neither")
    labels = [str(c) for c in conditions] + [control_label] * len(control_cells)
    obs = pd.DataFrame({pert_col: pd.Categorical(labels)})
    if contexts is not None and control_contexts is not None:
        obs[celltype_col] = pd.Categorical([str(c) for c in contexts] + [str(c) for c in control_contexts])
    obs["distgen_kind"] = pd.Categorical([kind] * len(cells) + ["control"] * len(control_cells))
    obs.index = pd.Index([f"{kind}_{i}" for i in range(len(cells))] + [f"control_{i}" for i in range(len(control_cells))])
    return ad.AnnData(X=np.concatenate([cells, control_cells]), obs=obs, var=pd.DataFrame(index=pd.Index(genes)))


def write_predictions(
    cells: Any,
    conditions: Sequence[str],
    control_cells: Any,
    genes: Sequence[str],
    contexts: Sequence[str] | None = None,
    control_contexts: Sequence[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    data: PerturbationData | None = None,
    pert_col: str = CELL_EVAL_PERT_COL,
    control_label: str = CELL_EVAL_CONTROL,
    celltype_col: str = CELL_EVAL_CELLTYPE_COL,
) -> ad.AnnData:
    """AnnData of generated ``cells`` ``[N, G]`` plus real ``control_cells`` ``[M, G]`` appended.

    ``data`` (optional) checks that the genes and the perturbations are the training ones. The file
    is written (gzip h5ad, atomically) only after every check passed.
    """
    if data is not None:
        data.check_genes(genes)
        data.labels_for(list(conditions), list(contexts) if contexts is not None else None)
    out = _layout(_np(cells), conditions, contexts, _np(control_cells), control_contexts, genes, pert_col, control_label, celltype_col, "pred")
    if path is not None:
        _write(out, path)
    return out


def write_ground_truth(
    data: PerturbationData,
    cells: Any,
    control_cells: Any,
    path: str | os.PathLike[str] | None = None,
    pert_col: str = CELL_EVAL_PERT_COL,
    control_label: str = CELL_EVAL_CONTROL,
    celltype_col: str = CELL_EVAL_CELLTYPE_COL,
) -> ad.AnnData:
    """The real cells at indices ``cells`` (perturbed) and ``control_cells``, in the same layout.

    Use ``cells = split.test`` (its control cells are dropped from ``cells`` automatically) and the
    control cells given to the model as ``control_cells``.
    """
    idx = np.asarray(cells, dtype=np.int64)
    idx = idx[~data.is_control[idx]]
    cidx = np.asarray(control_cells, dtype=np.int64)
    if not data.is_control[cidx].all():
        raise ValueError("control_cells must index control cells of the dataset")
    x = data.table.X.numpy()
    has_ctx = len(data.info.contexts) > 1
    out = _layout(
        x[idx],
        data.conditions[idx].tolist(),
        data.contexts[idx].tolist() if has_ctx else None,
        x[cidx],
        data.contexts[cidx].tolist() if has_ctx else None,
        data.info.genes,
        pert_col,
        control_label,
        celltype_col,
        "real",
    )
    out.obs_names = pd.Index(data.adata.obs_names[np.concatenate([idx, cidx])].astype(str))
    out.obs_names_make_unique()
    if path is not None:
        _write(out, path)
    return out
