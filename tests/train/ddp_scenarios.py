"""Multi-process scenarios of the trainer, run by ``tests/train/test_distributed.py`` under torchrun (2 ranks, gloo).

``python -m torch.distributed.run --standalone --nproc-per-node 2 tests/train/ddp_scenarios.py SCENARIO OUT``: every rank
writes ``OUT/rank<r>.json`` with what its ``Trainer.fit`` did (``step``, ``stopped_early``, ``best_step``) or the error it
raised (``error``, ``message``), then exits 0 (a finished fit) or 3 (an error). The model is a linear map whose loss the
scenario makes misbehave on one rank only, which no real model does on purpose but non-determinism or a bad shard can.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

from distgen.data.batches import TableBatches
from distgen.testing.fixtures import tiny_table
from distgen.train import distributed as D
from distgen.train.options import train_options
from distgen.train.trainer import Trainer
from distgen.types import LossOutput

RANK = int(os.environ.get("RANK", 0))


class Linear(nn.Module):
    """``loss = mean((target @ w)^2)``; ``scenario`` changes it on rank 1 (see ``loss``)."""

    def __init__(self, genes: int, scenario: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.w = nn.Parameter(torch.randn(genes, 1) * 0.1)
        self.scenario = scenario
        self.calls = 0
        self.validations = 0

    def loss(self, batch) -> LossOutput:  # type: ignore[no-untyped-def]
        loss = (batch.target @ self.w).pow(2).mean()
        if self.training:
            self.calls += 1
            if self.scenario == "nan_on_rank1" and RANK == 1 and self.calls == 2:
                loss = loss * float("nan")  # the second step's loss is NaN on rank 1 only
        elif self.scenario == "val_differs":
            # rank 0's validation never improves after its first; rank 1's always does. With patience 1 rank 0 stops at
            # its second validation while rank 1, judging its own numbers, would train on (and wait for rank 0 forever)
            self.validations += 1
            loss = loss.detach() * 0 + (1.0 if RANK == 0 else 1.0 / self.validations)
        return LossOutput(loss, {"loss": float(loss.detach())})


def main(scenario: str, out: Path) -> int:
    table = tiny_table()
    model = Linear(table.X.shape[1], scenario)
    opts = train_options({"steps": 6, "sets_per_batch": 4, "lr": 1e-2, "progress": False, "val_every": 1, "patience": 1,
                          "val_metrics": [], "monitor": "val_loss"})
    val = TableBatches(table, 4, 4, seed=9) if scenario == "val_differs" else None
    trainer = Trainer(model, TableBatches(table, 4, 4), opts, val=val, info=table.info)
    try:
        res = trainer.fit()
    except Exception as exc:
        record = {"error": type(exc).__name__, "message": str(exc), "step": trainer.step}
        code = 3
    else:
        record = {"step": res.step, "stopped_early": res.stopped_early, "best_step": res.best_step}
        code = 0
    (out / f"rank{RANK}.json").write_text(json.dumps(record))
    D.shutdown(wait=code == 0)  # as distgen train: a process that leaves the group undestroyed aborts at exit
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
