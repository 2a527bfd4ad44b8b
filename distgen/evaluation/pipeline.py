"""``evaluate_files``: the whole evaluation of a prediction file against truth, with calibration and reports."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from typing import Any

import torch

from distgen.evaluation.calibration import baseline_data, ceiling_data, summarise
from distgen.evaluation.io import load_pair, training_table
from distgen.evaluation.report import markdown, plots, write_csv, write_json, write_long_csv
from distgen.evaluation.suite import MetricTable, run_metrics
from distgen.models import models

#: Baselines scored by default (``control`` needs no training data; the others need ``train``).
DEFAULT_BASELINES = ("control", "mean_perturbation", "additive", "linear")


def evaluate_files(
    pred: Any,
    real: Any,
    out: str,
    pert_col: str | None = None,
    control: str | None = None,
    train: Any = None,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    metric_names: Sequence[str] | None = None,
    ceiling: bool = True,
    seed: int = 0,
    make_plots: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``pred`` against ``real`` (paths or AnnData); write metrics.csv, summary.json/.md, plots to ``out``.

    Baselines other than ``control`` are fitted on ``train`` (skipped, with a note, without it); the
    ceiling is a disjoint half-split of the real cells. Returns the summary dict.
    """
    t0 = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    data, info = load_pair(pred, real, pert_col, control)
    notes = list(info.notes)
    for p, why in sorted(data.invalid.items()):
        notes.append(f"{data.perts[p]}: all metrics NaN ({why})")
    table = run_metrics(data, metric_names, progress=progress)
    write_csv(table, os.path.join(out, "metrics.csv"))

    base_tables: dict[str, MetricTable] = {}
    fitted: dict[str, Any] = {}
    train_table = labels = None
    if train is not None:
        train_table, labels = training_table(train, data.genes, data.perts, info.pert_col, info.control)
    for name in baselines:
        model = models.get(name)()
        if name != "control":
            if train_table is None:
                notes.append(f"baseline {name!r} not scored: it is fitted on training cells; pass --train TRAIN.h5ad")
                continue
            model.fit(train_table)
            fitted[name] = model
        to_labels = labels or (lambda names: _control_only_labels(len(names)))
        bdata = baseline_data(data, model, to_labels, seed=seed)
        base_tables[name] = run_metrics(bdata, metric_names, progress=False)
    ceil_table = run_metrics(ceiling_data(data, seed=seed), metric_names, progress=False) if ceiling else None
    if train_table is not None:
        for name, model in fitted.items():
            unseen = sorted({a for p in data.perts for a, ok in zip(_atoms(p, info.control), model.can_predict(list(_atoms(p, info.control)))) if not ok})
            if unseen:
                notes.append(f"baseline {name!r} cannot predict atoms {unseen[:8]}{'...' if len(unseen) > 8 else ''} (uses its fallback)")

    extra = dict(base_tables)
    if ceil_table is not None:
        extra["ceiling"] = ceil_table
    write_long_csv(extra, os.path.join(out, "calibration.csv"))
    summary: dict[str, Any] = {
        "pred": str(pred) if isinstance(pred, str | os.PathLike) else "<AnnData>",
        "real": str(real) if isinstance(real, str | os.PathLike) else "<AnnData>",
        "pert_col": info.pert_col,
        "control": info.control,
        "n_perturbations": data.n_perts,
        "n_genes": len(data.genes),
        "baselines": list(base_tables),
        "ceiling": f"disjoint half-split of the real cells (seed {seed})" if ceiling else None,
        "metrics": summarise(table, base_tables, ceil_table),
        "notes": notes,
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine()},
    }
    from distgen.evaluation.metrics import metrics as registry

    if "mmd" in table.values:
        mmd: Any = registry.get("mmd")()  # the MMD metric carries its kernel
        summary["kernel"] = mmd.kernel.describe()
    if make_plots:
        summary["plots"] = [os.path.basename(f) for f in plots(data, table, out)]
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(summary, os.path.join(out, "summary.json"))
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(markdown(summary))
    return summary


def _atoms(label: str, control: str) -> tuple[str, ...]:
    from distgen.evaluation.io import atoms_of

    return atoms_of(label, control)


def _control_only_labels(n: int) -> Any:
    from distgen.types import ConditionLabels

    return ConditionLabels.make([[0]] * n)
