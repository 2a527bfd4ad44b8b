"""Periodic validation: loss on fixed held-out sets and evaluation metrics of generated cells."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from distgen.train.batches import BatchSource, mix_seed
from distgen.train.options import check_monitor, check_val_metrics
from distgen.types import SetBatch

VAL_STEP = 0  #: validation uses the first batch of its own (differently seeded) source: the same sets every time


def resolve_metrics(names: Sequence[str]) -> dict[str, Any]:
    """Instances of the registered evaluation metrics named in ``train.val_metrics``."""
    from distgen.evaluation.metrics.base import build_metric

    check_val_metrics(names)  # TrainOptions checked them; its fields may have been set since
    return {name: build_metric(name) for name in names}


def higher_is_better(monitor: str, metrics: dict[str, Any]) -> bool:
    if monitor == "val_loss":
        return False
    check_monitor(monitor, list(metrics))
    return bool(metrics[monitor.removeprefix("val_")].higher_is_better)


@torch.no_grad()
def validate(model: nn.Module, source: BatchSource, metrics: dict[str, Any], seed: int, device: torch.device, genes: Sequence[str] = ()) -> dict[str, float]:
    """``{"val_loss": ..., "val_<metric>": ...}`` on the fixed validation sets.

    Runs under a forked RNG seeded from ``seed`` so validation never shifts the training draws.
    """
    from distgen.evaluation.metrics.base import PerturbationEval

    batch: SetBatch = source.batch(VAL_STEP, 0, 1).to(device)
    was_training = model.training
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(mix_seed(seed, VAL_STEP))
        model.eval()
        try:
            out: dict[str, float] = {"val_loss": float(model.loss(batch).loss)}  # type: ignore[operator]
            if metrics:
                pred = model.predict(batch.control, batch.control_mask, batch.labels)  # type: ignore[operator]
                values: dict[str, list[float]] = {k: [] for k in metrics}
                for i in range(batch.shape[0]):
                    tm, cm = batch.target_mask[i], batch.control_mask[i]
                    ev = PerturbationEval(
                        pred=pred[i][tm].float().cpu(), real=batch.target[i][tm].cpu(),
                        control_real=batch.control[i][cm].cpu(), control_pred=batch.control[i][cm].cpu(), genes=tuple(genes),
                    )
                    for k, metric in metrics.items():
                        values[k].append(float(metric(ev)))
                for k, vals in values.items():
                    finite = [v for v in vals if math.isfinite(v)]
                    out[f"val_{k}"] = sum(finite) / len(finite) if finite else float("nan")
        finally:
            model.train(was_training)
    return out
