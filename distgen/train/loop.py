"""A minimal single-process training loop (Adam, fixed steps) over condition-grouped cell sets."""

from __future__ import annotations

from typing import Any

import torch

from distgen.types import CellTable, SetBatch


def _condition_groups(table: CellTable) -> tuple[list[torch.Tensor], list[int], torch.Tensor]:
    """Indices of the cells of each perturbed condition (perturbation x context x batch)."""
    lab = table.labels
    key = torch.cat([lab.perturbation, lab.context[:, None], lab.batch[:, None]], 1)
    uniq, inv = torch.unique(key, dim=0, return_inverse=True)
    groups, firsts = [], []
    for gi in range(uniq.shape[0]):
        idx = torch.nonzero(inv == gi).flatten()
        if not bool(table.is_control[idx[0]]):
            groups.append(idx)
            firsts.append(int(idx[0]))
    return groups, firsts, torch.nonzero(table.is_control).flatten()


def sample_sets(table: CellTable, sets: int, m: int, generator: torch.Generator) -> SetBatch:
    """``sets`` random condition sets of ``m`` cells (with replacement) and same-context controls."""
    groups, firsts, controls = _condition_groups(table)
    if not groups:
        raise ValueError("the training table has no perturbed cells")
    if controls.numel() == 0:
        raise ValueError("the training table has no control cells")
    pick = torch.randint(len(groups), (sets,), generator=generator)
    tgt, ctl, rows = [], [], []
    for p in pick.tolist():
        idx = groups[p]
        tgt.append(idx[torch.randint(idx.numel(), (m,), generator=generator)])
        ctx = table.labels.context[firsts[p]]
        pool = controls[table.labels.context[controls] == ctx]
        pool = pool if pool.numel() else controls
        ctl.append(pool[torch.randint(pool.numel(), (m,), generator=generator)])
        rows.append(firsts[p])
    t_idx, c_idx = torch.stack(tgt), torch.stack(ctl)
    ones = torch.ones(sets, m, dtype=torch.bool)
    return SetBatch(table.X[t_idx], ones, table.X[c_idx], ones.clone(), table.labels.index(torch.tensor(rows)), torch.arange(table.X.shape[1]))


def fit(model: Any, train: CellTable, steps: int = 100, lr: float = 1e-3, sets: int = 4, set_size: int = 32, seed: int = 0) -> list[float]:
    """Train ``model`` (anything with ``loss(SetBatch)`` and parameters) for ``steps`` steps.

    Returns the loss of each step.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for step in range(steps):
        out = model.loss(sample_sets(train, sets, set_size, gen))
        if not torch.isfinite(out.loss):
            raise FloatingPointError(f"non-finite loss at step {step}: {out.parts}")
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    model.eval()
    return losses
