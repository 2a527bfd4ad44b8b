"""Tiny seeded inputs for contract tests: a dataset vocabulary, set batches, cell tables, metric data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from distgen.types import PAD, CellTable, ConditionLabels, DataInfo, SetBatch

if TYPE_CHECKING:
    from distgen.evaluation.evaldata import EvalData

N_GENES = 12


def tiny_info(n_genes: int = N_GENES) -> DataInfo:
    """12 genes (the perturbation targets among them), 4 atoms, 2 contexts, 2 batches."""
    genes = tuple(f"G{i}" for i in range(n_genes))
    return DataInfo(
        genes=genes,
        perturbations=("G0", "G1", "G2", "G3"),
        contexts=("ctxA", "ctxB"),
        batches=("b0", "b1"),
        perturbation_type="genetic",
    )


def tiny_labels(b: int = 3, seed: int = 0) -> ConditionLabels:
    """``b`` conditions: singles, a pair and a control, cycling."""
    patterns = [[0, PAD], [1, 2], [PAD, PAD], [3, PAD]]
    pert = torch.tensor([patterns[i % len(patterns)] for i in range(b)])
    return ConditionLabels(
        perturbation=pert,
        dose=(pert >= 0).float(),
        context=torch.arange(b) % 2,
        batch=(torch.arange(b) + 1) % 2,
    )


def tiny_batch(b: int = 3, m: int = 6, n_genes: int = N_GENES, seed: int = 0, pad_last: int = 2) -> SetBatch:
    """A seeded ``SetBatch`` of non-negative log-expression-like values; the last set is padded."""
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(b, m, n_genes, generator=g) * 3
    control = torch.rand(b, m, n_genes, generator=g) * 3
    mask = torch.ones(b, m, dtype=torch.bool)
    if pad_last:
        mask[-1, -pad_last:] = False
        target[-1, -pad_last:] = 0.0
    return SetBatch(
        target=target,
        target_mask=mask,
        control=control,
        control_mask=torch.ones(b, m, dtype=torch.bool),
        labels=tiny_labels(b),
        gene_ids=torch.arange(n_genes),
    )


def tiny_table(n_per_condition: int = 8, n_genes: int = N_GENES, seed: int = 0) -> CellTable:
    """Cells of control, 3 singles and one pair, with an additive ground-truth effect."""
    g = torch.Generator().manual_seed(seed)
    info = tiny_info(n_genes)
    conds = [[PAD, PAD], [0, PAD], [1, PAD], [2, PAD], [0, 1]]
    effects = torch.randn(4, n_genes, generator=g)
    xs, perts = [], []
    for c in conds:
        base = torch.rand(n_per_condition, n_genes, generator=g) + 1.0
        shift = sum((effects[a] for a in c if a >= 0), torch.zeros(n_genes))
        xs.append((base + shift).clamp_min(0.0))
        perts += [c] * n_per_condition
    pert = torch.tensor(perts)
    n = pert.shape[0]
    labels = ConditionLabels(pert, (pert >= 0).float(), torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long))
    return CellTable(torch.cat(xs), labels, info)


def tiny_eval(perfect: bool = False, n_cells: int = 30, seed: int = 0) -> EvalData:
    """Real and predicted cells of 3 perturbations with clear, distinct effects (for metric tests).

    Perturbation ``p`` raises genes ``3p .. 3p+2`` by ``p + 1`` (and lowers gene ``9 + p`` by 1.5)
    over a noisy baseline, so every metric is defined: there are significant DE genes, E-distances
    differ between perturbations, each perturbation is distinguishable. ``perfect``: the prediction
    is a copy of the real cells; otherwise each perturbation is predicted with the *next* one's
    effect (cyclically) on fresh baseline cells, which every metric must score as worse.
    """
    from distgen.evaluation.evaldata import EvalData, Population

    g = torch.Generator().manual_seed(seed)
    n_genes = N_GENES
    effects = torch.zeros(3, n_genes)
    for p in range(3):
        effects[p, 3 * p : 3 * p + 3] = p + 1.0
        effects[p, 9 + p] = -1.5

    def population(shift: int) -> Population:
        base = lambda n: torch.rand(n, n_genes, generator=g) + 2.0  # noqa: E731
        cells = torch.cat([base(n_cells) + effects[(p + shift) % 3] for p in range(3)]).clamp_min(0.0)
        return Population(X=cells, offsets=torch.arange(4) * n_cells, control=base(n_cells))

    real = population(0)
    pred = Population(X=real.X.clone(), offsets=real.offsets.clone(), control=real.control.clone()) if perfect else population(1)
    return EvalData(real=real, pred=pred, perts=("G0", "G1", "G2"), targets=(("G0",), ("G1",), ("G2",)), genes=tiny_info().genes)


def tiny_eval_de(perfect: bool = False, n_cells: int = 40, n_genes: int = 120, seed: int = 0) -> EvalData:
    """Raw counts of 3 perturbations with many clear DE genes (for cell-eval2's DE metrics).

    cell-eval2 scores a perturbation's DE agreement only when its real cells have enough significant
    genes (its reference gate: at least 10) and some that are not, which ``tiny_eval``'s 12 genes
    cannot give. Perturbation ``p`` doubles genes ``12p .. 12p+11`` (mean 10) and halves genes
    ``36 + 12p .. 36 + 12p + 11`` (mean 20), so each cell's total count, and with it every other
    gene's counts per million, stays put; the other genes have Poisson means between 5 and 40.
    ``perfect``: the prediction is a copy of the real cells; otherwise each perturbation gets the
    next one's effect (cyclically) on fresh cells.
    """
    from distgen.evaluation.evaldata import EvalData, Population

    g = torch.Generator().manual_seed(seed)
    base = 5.0 + 35.0 * torch.rand(n_genes, generator=g)
    base[:36], base[36:72] = 10.0, 20.0
    fold = torch.ones(3, n_genes)
    for p in range(3):
        fold[p, 12 * p : 12 * p + 12] = 2.0
        fold[p, 36 + 12 * p : 48 + 12 * p] = 0.5

    def draw(mean: torch.Tensor, n: int) -> torch.Tensor:
        return torch.poisson(mean.expand(n, -1).contiguous(), generator=g)

    def population(shift: int) -> Population:
        cells = torch.cat([draw(base * fold[(p + shift) % 3], n_cells) for p in range(3)])
        return Population(X=cells, offsets=torch.arange(4) * n_cells, control=draw(base, n_cells))

    real = population(0)
    pred = Population(X=real.X.clone(), offsets=real.offsets.clone(), control=real.control.clone()) if perfect else population(1)
    genes = tuple(f"G{i}" for i in range(n_genes))
    return EvalData(real=real, pred=pred, perts=("G0", "G1", "G2"), targets=(("G0",), ("G1",), ("G2",)), genes=genes)
