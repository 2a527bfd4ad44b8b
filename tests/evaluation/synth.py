"""Tiny seeded AnnData pairs in cell-eval's layout (``target`` column, ``non-targeting`` control)."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd

CONTROL = "non-targeting"


def _lognorm(counts: np.ndarray) -> np.ndarray:
    lib = counts.sum(1, keepdims=True)
    return np.log1p(counts / np.maximum(lib, 1) * 1e4).astype(np.float32)


def make_pair(seed: int = 0, n_genes: int = 80, n_ctrl: int = 120, n_cells: int = 40, noise: float = 0.5,
              combos: bool = True, counts: bool = False) -> tuple[ad.AnnData, ad.AnnData]:
    """(real, pred): 10 single-gene perturbations (+3 combinations), sparse-ish counts, log-normalised
    (``counts=True``: the raw counts, float32, without the prediction's extra noise).

    The prediction keeps each perturbation's true effect scaled by a per-perturbation factor and adds
    noise, so metrics take a spread of values (some DE overlap, imperfect correlations).
    """
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(n_genes)]
    singles = genes[:10]
    perts = singles + (["G0+G1", "G2+G3", "G4+G5"] if combos else [])
    base = rng.gamma(1.2, 2.0, n_genes)
    effects = {}
    for p in singles:
        e = np.ones(n_genes)
        hit = rng.choice(n_genes, 10, replace=False)
        e[hit] = rng.choice([0.2, 3.0, 5.0], 10)
        e[genes.index(p)] = 0.05  # knock-down of the target gene
        effects[p] = e
    for p in perts[10:]:
        a, b = p.split("+")
        effects[p] = effects[a] * effects[b]

    def cells(rate: np.ndarray, n: int) -> np.ndarray:
        return rng.negative_binomial(3, 3 / (3 + rate[None] * np.ones((n, 1))))

    def file(scale: dict[str, float], extra_noise: float, swap: dict[str, str]) -> ad.AnnData:
        xs, labels = [cells(base, n_ctrl)], [CONTROL] * n_ctrl
        for p in perts:
            rate = base * effects[swap.get(p, p)] ** scale.get(p, 1.0)
            xs.append(cells(rate, n_cells))
            labels += [p] * n_cells
        x = np.concatenate(xs).astype(np.float64) if counts else _lognorm(np.concatenate(xs).astype(np.float64))
        if extra_noise and not counts:
            x = np.clip(x + rng.normal(0, extra_noise, x.shape).astype(np.float32) * (x > 0), 0, None)
        a = ad.AnnData(X=x.astype(np.float32), obs=pd.DataFrame({"target": labels}, index=[f"c{i}" for i in range(len(labels))]))
        a.var_names = genes
        return a

    real = file({}, 0.0, {})
    # the prediction gets the effect of the wrong perturbation for two of them (discrimination < 1)
    pred = file({p: s for p, s in zip(perts, rng.uniform(0.0, 1.2, len(perts)))}, noise, {"G1": "G7", "G8": "G2"})
    return real, pred


def evaluation_folder(path, rows, metrics_meta):
    """An evaluation folder with ``rows`` ({perturbation: {metric: value}}) as distgen evaluate writes it: ``metrics.csv``
    and a ``summary.json`` holding each metric's orientation (``metrics_meta``: {metric: higher_is_better})."""
    path.mkdir(parents=True)
    names = list(metrics_meta)
    lines = ["perturbation,context,n_cells_real,n_cells_pred," + ",".join(names)]
    for p, vals in rows.items():
        lines.append(f"{p},,10,10," + ",".join(repr(float(vals[n])) for n in names))
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    (path / "summary.json").write_text(json.dumps({"metrics": {n: {"higher_is_better": h} for n, h in metrics_meta.items()}}))
    return path
