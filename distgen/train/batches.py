"""Training batches as a pure function of ``(seed, step, shard)``: exact resume and rank-invariance.

The global batch of a step is ``sets_per_batch`` cell sets; it is cut into ``n_shards`` equal shards
(ranks x accumulation micro-batches). Every draw behind a set (its condition, its cells, its
matched controls) comes from a generator seeded by ``(seed, step, set index)``. So a resumed run
sees exactly the batches it would have seen, and a 2-rank run sees the same global batch as a
1-process run with 2 accumulation micro-batches. Nothing is stored but the step.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from distgen.data.matching import ControlMatcher, matchers
from distgen.types import CellTable, SetBatch


def mix_seed(*keys: int) -> int:
    """A well-spread 63-bit seed from integer keys (numpy ``SeedSequence``)."""
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(2, dtype=np.uint64)[0] >> 1)


class BatchSource(Protocol):
    """What the trainer draws from: shard ``shard`` of ``n_shards`` of the global batch of ``step``."""

    sets_per_batch: int

    def batch(self, step: int, shard: int, n_shards: int) -> SetBatch: ...


def condition_groups(table: CellTable) -> tuple[list[Tensor], Tensor]:
    """Cell indices of each perturbed group (perturbation x context x batch) and of the controls."""
    lab = table.labels
    key = torch.cat([lab.perturbation, lab.context[:, None], lab.batch[:, None]], 1)
    _, inv = torch.unique(key, dim=0, return_inverse=True)
    order = torch.argsort(inv, stable=True)
    counts = torch.bincount(inv)
    groups = [g for g in torch.split(order, counts.tolist()) if not bool(table.is_control[g[0]])]
    return groups, torch.nonzero(table.is_control).flatten()


class TableBatches:
    """Condition-uniform cell sets from a ``CellTable`` with control sets from a registered matcher.

    Parameters
    ----------
    table
        Training cells (perturbed and control).
    set_size
        Cells per set ``m``; a group with fewer cells is used whole and padded (mask False).
    sets_per_batch
        Global sets per optimizer step.
    matcher
        Name of a registered control matcher (``distgen components --kind matchers``).
    seed
        Base seed.
    """

    def __init__(self, table: CellTable, set_size: int, sets_per_batch: int, matcher: str | ControlMatcher = "same_context", seed: int = 0) -> None:
        if set_size < 1 or sets_per_batch < 1:
            raise ValueError(f"set_size and sets_per_batch must be >= 1, got {set_size}, {sets_per_batch}")
        self.table = table
        self.set_size = set_size
        self.sets_per_batch = sets_per_batch
        self.matcher = matchers.get(matcher)() if isinstance(matcher, str) else matcher
        self.seed = seed
        self.groups, self.controls = condition_groups(table)
        if not self.groups:
            raise ValueError("the training cells have no perturbed condition; check the split and the control label")
        if self.controls.numel() == 0:
            raise ValueError("the training cells have no control cells; sets cannot be matched to controls")
        self.pool_context = table.labels.context[self.controls]
        self.pool_batch = table.labels.batch[self.controls]

    def set_indices(self, step: int, j: int) -> tuple[Tensor, Tensor, int]:
        """Target cell indices, control cell indices and group id of global set ``j`` of ``step``."""
        g = torch.Generator().manual_seed(mix_seed(self.seed, step, j))
        gid = int(torch.randint(len(self.groups), (1,), generator=g))
        idx = self.groups[gid]
        m = self.set_size
        tgt = idx[torch.randperm(idx.numel(), generator=g)[:m]]
        first = int(idx[0])
        ctx, bat = int(self.table.labels.context[first]), int(self.table.labels.batch[first])
        ctl = self.controls[self.matcher.match(ctx, bat, self.pool_context, self.pool_batch, m, g)]
        return tgt, ctl, first

    def batch(self, step: int, shard: int = 0, n_shards: int = 1) -> SetBatch:
        if self.sets_per_batch % n_shards:
            raise ValueError(
                f"train.sets_per_batch={self.sets_per_batch} does not split into {n_shards} equal shards "
                "(world size x grad_accum); make it a multiple"
            )
        per = self.sets_per_batch // n_shards
        return self.gather([self.set_indices(step, shard * per + i) for i in range(per)])

    def gather(self, sets: list[tuple[Tensor, Tensor, int]]) -> SetBatch:
        """Stack ``(target idx, control idx, first cell)`` triples into a padded ``SetBatch``."""
        m, n_genes = self.set_size, self.table.X.shape[1]
        b = len(sets)
        target = torch.zeros(b, m, n_genes)
        mask = torch.zeros(b, m, dtype=torch.bool)
        control = torch.zeros(b, m, n_genes)
        for i, (tgt, ctl, _) in enumerate(sets):
            target[i, : tgt.numel()] = self.table.X[tgt]
            mask[i, : tgt.numel()] = True
            control[i] = self.table.X[ctl]
        labels = self.table.labels.index(torch.tensor([s[2] for s in sets]))
        return SetBatch(target, mask, control, torch.ones(b, m, dtype=torch.bool), labels, torch.arange(n_genes))
