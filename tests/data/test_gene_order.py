"""What a file's gene (column) order changes, as docs/training.md (Reproducibility) says.

The same file with its genes permuted selects the same genes and splits the same cells; the model's columns, and so its
initial weights per gene and its predictions' gene order, follow the file's order, which the data record keeps.
"""

import anndata as ad
import numpy as np
import pandas as pd

from distgen.data import Dataset

SCHEMA = {"perturbation_col": "condition", "control_labels": ["control"], "context_cols": ["cell_type"], "perturbation_type": "chemical"}
SPLIT = {"kind": "combo_seen2", "val_frac": 0.2, "holdout_controls": 0.2, "seed": 3}


def test_a_gene_permuted_file_selects_and_splits_alike_in_its_own_gene_order(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(c, ct) for ct in ("ct1", "ct2") for c in ("control", "A", "B", "A+B", "C") for _ in range(12)]
    obs = pd.DataFrame(rows, columns=["condition", "cell_type"], index=[f"cell{i}" for i in range(len(rows))])
    a = ad.AnnData(rng.poisson(rng.gamma(2.0, 2.0, (len(rows), 30))).astype(np.float32), obs=obs,
                   var=pd.DataFrame(index=[f"g{i}" for i in range(30)]))
    a.write_h5ad(tmp_path / "a.h5ad")
    perm = np.random.default_rng(1).permutation(a.n_vars)
    a[:, perm].copy().write_h5ad(tmp_path / "genes.h5ad")
    one, other = (Dataset.load({"dataset": str(tmp_path / f"{n}.h5ad"), "schema": SCHEMA, "hvg": 12, "split": SPLIT, "set_size": 4})
                  for n in ("a", "genes"))
    assert sorted(one.info.genes) == sorted(other.info.genes)  # the same genes selected
    assert list(one.info.genes) != list(other.info.genes)  # in each file's own order: the model's columns
    order = {g: i for i, g in enumerate(a.var_names[perm])}
    assert list(other.info.genes) == sorted(other.info.genes, key=order.__getitem__)
    for part in ("train", "val", "test"):
        names = [sorted(d.data.cell_names[getattr(d.split, part).numpy()]) for d in (one, other)]
        assert names[0] == names[1]
