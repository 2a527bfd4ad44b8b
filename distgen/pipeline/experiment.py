"""One experiment: train (or fit) a model, generate the held-out conditions, evaluate them.

``distgen run`` and every cell of ``distgen sweep`` call ``run_experiment``. Neural models (anything
with ``loss``) go through the trainer and leave a run directory; closed-form and plugin models (the
baselines, Bayesian models) are fitted in process. Both are then evaluated the same way, against
the baselines fitted on the same training cells and the half-split ceiling.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from distgen.config import ConfigError, load_config, save_yaml

#: Keys of a config's optional ``evaluate:`` section (``evaluate_files`` options every run uses).
EVALUATE_KEYS = ("metrics", "baselines", "ceiling", "plots", "seed")


def evaluate_section(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The ``evaluate:`` section of a run config (e.g. ``{metrics: [mse, pearson_delta], plots: false}``)."""
    ev = dict(doc.get("evaluate") or {})
    unknown = sorted(set(ev) - set(EVALUATE_KEYS))
    if unknown:
        raise ConfigError(f"evaluate: unknown key(s) {unknown}; allowed: {', '.join(EVALUATE_KEYS)}")
    return ev


def is_trainable(model_node: Mapping[str, Any]) -> bool:
    """True when the model is trained by distgen's trainer (a torch module with a ``loss``)."""
    from distgen.models import models

    cls = models.get(model_node["name"])
    return issubclass(cls, torch.nn.Module) and hasattr(cls, "loss")


def run_experiment(
    config: str | Path | Mapping[str, Any],
    out: str | Path,
    overrides: Sequence[str] = (),
    progress: bool = True,
    metrics: Sequence[str] | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Train -> predict the test split -> evaluate, into ``out``; returns the evaluation summary.

    ``out`` receives ``train/`` (the run directory, for trainable models), ``pred.h5ad`` and
    ``real.h5ad`` (cell-eval layout), ``train.h5ad`` (the training cells the baselines are fitted on)
    and ``eval/`` (``metrics.csv``, ``summary.md``, ``summary.json``, plots). The config's optional
    ``evaluate:`` section (``EVALUATE_KEYS``) sets the evaluation; ``metrics``/``plots`` given here win.
    """
    from distgen.data.predictions import CELL_EVAL_CONTROL, CELL_EVAL_PERT_COL
    from distgen.evaluation.pipeline import evaluate_files
    from distgen.train.data_section import data_section, load_run_data

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clock = _StageClock()
    doc = load_config(config, overrides)
    doc.pop("sweep", None)
    ev = evaluate_section(doc)
    if not progress:
        doc.setdefault("train", {})["progress"] = False
    save_yaml(doc, out / "experiment.yaml")
    pred, real = out / "pred.h5ad", out / "real.h5ad"
    if is_trainable(doc["model"]):
        from distgen.train.predict import predict_run
        from distgen.train.run import train_run

        train_run(doc, out / "train")
        clock.lap("train")
        predict_run(out / "train", pred, real=real)
        clock.lap("predict")
        rd = load_run_data(data_section(doc.get("data")), out / "train" / "split.json")
    else:
        rd = load_run_data(data_section(doc.get("data")))
        rd.split.save(out / "split.json")
        _fit_and_predict(doc, rd, pred, real)
        clock.lap("fit_predict")
    _write_training_cells(rd, out / "train.h5ad")
    summary = evaluate_files(str(pred), str(real), str(out / "eval"), pert_col=CELL_EVAL_PERT_COL, control=CELL_EVAL_CONTROL,
                          train=str(out / "train.h5ad"),
                          metric_names=metrics if metrics is not None else ev.get("metrics"), progress=progress,
                          make_plots=plots and bool(ev.get("plots", True)),
                          **{k: ev[k] for k in ("baselines", "ceiling", "seed") if k in ev})
    clock.lap("evaluate")
    summary["timings_s"] = clock.laps
    (out / "timings.json").write_text(json.dumps(clock.laps, indent=1) + "\n")
    return summary


class _StageClock:
    """Wall seconds per stage of an experiment (written to ``timings.json``)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round(now - self._last, 2)
        self._last = now


def _fit_and_predict(doc: Mapping[str, Any], rd: Any, pred: Path, real: Path) -> None:
    """Fit a non-neural model on the training cells and write predictions for the test split."""
    from distgen.models.generator import build_model
    from distgen.train.predict import predict_split

    model = build_model(doc["model"], rd.info, rd.seen_perturbations())
    model.fit(rd.train_table, **dict(doc.get("fit") or {}))
    predict_split(model, rd, "test", seed=int((doc.get("train") or {}).get("seed", 0)), out=pred, real=real)


def _write_training_cells(rd: Any, path: Path) -> None:
    """The training split's cells in the same layout, for fitting the evaluation's baselines."""
    from distgen.data import write_ground_truth

    train = rd.split.train.numpy()
    ctrl = train[rd.data.is_control[train]]
    write_ground_truth(rd.data, train, ctrl, path=path)


def headline(summary: Mapping[str, Any], names: Sequence[str] = ("mse", "pearson_delta", "discrimination_score_l1", "overlap_at_N")) -> str:
    """A short plain-text table of the model next to its baselines and ceiling."""
    rows = []
    metrics = summary.get("metrics", {})
    for name in names:
        m = metrics.get(name)
        if not m:
            continue
        cells = [f"{name:<26}", f"model {m.get('model', float('nan')):.4g}"]
        for b, v in (m.get("baselines") or {}).items():
            cells.append(f"{b} {v:.4g}")
        if m.get("ceiling") is not None:
            cells.append(f"ceiling {m['ceiling']:.4g}")
        norm = m.get("normalised")
        if norm is not None and norm == norm:  # NaN: the strongest baseline already reaches the ceiling
            cells.append(f"normalised {norm:.3g}")
        rows.append("  ".join(cells))
    return "\n".join(rows) if rows else json.dumps(metrics)[:500]
