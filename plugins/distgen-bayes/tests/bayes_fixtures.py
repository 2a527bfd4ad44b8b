"""A tiny seeded population dataset with known effects (shared by the tests; no pytest needed)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from distgen.types import PAD, CellTable, ConditionLabels, DataInfo

N_GENES = 10
CONDITIONS = [(), (0,), (1,), (2,), (3,), (0, 1), (2, 3)]  # control, 4 singles, 2 pairs


@dataclass
class Truth:
    """Ground truth of ``population_table``: expression means per atom, pair and batch."""

    base: torch.Tensor  # [G]
    effects: torch.Tensor  # [A, G]
    interaction: dict[tuple[int, ...], torch.Tensor]
    batch_shift: torch.Tensor  # [Bt, G]

    def shift(self, atoms: tuple[int, ...]) -> torch.Tensor:
        out = sum((self.effects[a] for a in atoms), torch.zeros_like(self.base))
        return out + self.interaction.get(atoms, torch.zeros_like(self.base))


def population_table(n_batches: int = 4, cells: int = 30, noise: float = 0.3, seed: int = 0) -> tuple[CellTable, Truth]:
    """Cells of every condition in every batch (replicate); batch shifts are a hidden random effect."""
    g = torch.Generator().manual_seed(seed)
    info = DataInfo(
        genes=tuple(f"g{i}" for i in range(N_GENES)),
        perturbations=("A", "B", "C", "D", "E"),  # "E" never appears in training
        contexts=("ctx",),
        batches=tuple(f"rep{i}" for i in range(n_batches)),
    )
    truth = Truth(
        base=torch.rand(N_GENES, generator=g) * 2 + 2,
        effects=torch.randn(5, N_GENES, generator=g),
        interaction={(2, 3): torch.randn(N_GENES, generator=g) * 1.5},
        batch_shift=torch.randn(n_batches, N_GENES, generator=g) * 0.2,
    )
    xs, perts, bats = [], [], []
    for b in range(n_batches):
        for cond in CONDITIONS:
            mean = truth.base + truth.shift(cond) + truth.batch_shift[b]
            xs.append(mean + noise * torch.randn(cells, N_GENES, generator=g))
            perts += [list(cond) + [PAD] * (2 - len(cond))] * cells
            bats += [b] * cells
    pert = torch.tensor(perts)
    n = pert.shape[0]
    labels = ConditionLabels(pert, (pert >= 0).float(), torch.zeros(n, dtype=torch.long), torch.tensor(bats))
    return CellTable(torch.cat(xs), labels, info), truth
