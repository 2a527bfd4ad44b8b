"""One experiment: load the data once, build, pre-flight, train (or fit), predict, score.

``distgen run`` and every cell of ``distgen sweep`` call ``run``. The stages hand each other
objects, never files::

    config --> Dataset.load (once) --> build_model --> check_split (pre-flight)
           --> train_model / fit --> predict --> Cells (pred) --+
               Dataset.truth -----------------> Cells (truth) -+--> score --> Report
               dataset_references (baselines) -> {name: Cells} -+

``pred.h5ad``, ``real.h5ad`` (cell-eval layout) and the report are written as outputs; nothing is
read back within the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from distgen.config import ConfigError, load_config, save_yaml
from distgen.data import layout
from distgen.data.prepared import Dataset
from distgen.evaluation.score import score
from distgen.models import models
from distgen.models.base import is_trainable as _is_trainable
from distgen.models.generator import build_model
from distgen.models.preflight import check_split
from distgen.pipeline.predict import predict, predict_section, write_cells
from distgen.pipeline.references import DEFAULT_BASELINES, dataset_references
from distgen.train import distributed as D
from distgen.train.loop import fit
from distgen.train.run import preflight_section, train_model

#: Keys of a config's optional ``evaluate:`` section (the evaluation every run makes).
EVALUATE_KEYS = ("metrics", "baselines", "ceiling", "plots", "seed", "by_context")


def evaluate_section(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The ``evaluate:`` section of a run config (e.g. ``{metrics: [mse, pearson_delta], plots: false}``)."""
    ev = dict(doc.get("evaluate") or {})
    unknown = sorted(set(ev) - set(EVALUATE_KEYS))
    if unknown:
        raise ConfigError(f"evaluate: unknown key(s) {unknown}; allowed: {', '.join(EVALUATE_KEYS)}")
    return ev


def is_trainable(model_node: Mapping[str, Any]) -> bool:
    """True when the model of a config node is trained by distgen's trainer (a ``TrainableModel``)."""
    return _is_trainable(models.get(model_node["name"]))


def run(
    config: str | Path | Mapping[str, Any],
    out: str | Path,
    overrides: Sequence[str] = (),
    progress: bool = True,
    metrics: Sequence[str] | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Train -> predict the test split -> evaluate, into ``out``; returns the evaluation summary.

    ``out`` receives ``experiment.yaml``, ``train/`` (the run directory, for trainable models) or
    ``split.json``, ``pred.h5ad`` and ``real.h5ad`` (cell-eval layout), ``eval/`` (``metrics.csv``,
    ``calibration.csv``, ``summary.md``, ``summary.json``, plots) and ``timings.json``. The config's
    optional ``evaluate:`` section (``EVALUATE_KEYS``) sets the evaluation (``metrics``/``plots`` given
    here win); its ``preflight:`` section may set ``allow_unembedded: true``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clock = _StageClock()
    doc = load_config(config, overrides)
    doc.pop("sweep", None)
    ev = evaluate_section(doc)
    allow = bool(preflight_section(doc).get("allow_unembedded", False))
    if not progress:
        doc.setdefault("train", {})["progress"] = False
    save_yaml(doc, out / "experiment.yaml")
    if "model" not in doc:
        raise ConfigError("the config has no 'model' section; start from a preset (base: scdfm-small) or add model: {name: generator, ...}")
    dataset = Dataset.load(doc.get("data")).capped(predict_section(doc)["max_cells_per_condition"])  # the cap: prediction and scoring only
    seed = int((doc.get("train") or {}).get("seed", 0))
    if is_trainable(doc["model"]):
        trained = train_model(doc, out / "train", dataset)
        model, notes = trained.model, trained.notes
        clock.lap("train")
        pred = predict(model, dataset, "test", seed, preflight=False)
        stage = "predict"
    else:
        model = build_model(doc["model"], dataset.info, dataset.seen_perturbations())
        dataset.split.save(out / "split.json")
        fit(model, dataset, doc.get("fit") or {}, preflight=False)
        notes = check_split(model, dataset, "test", allow)  # a fitted model answers can_predict once fitted
        pred = predict(model, dataset, "test", seed, preflight=False)
        stage = "fit_predict"
    if not D.env_from_torchrun().is_main:
        return {}
    truth = dataset.truth("test")
    write_cells(dataset, pred, out / "pred.h5ad", "pred")
    write_cells(dataset, truth, out / "real.h5ad", "real")
    clock.lap(stage)
    ev_seed = int(ev.get("seed", 0))
    refs, ref_notes = dataset_references(dataset, truth, ev.get("baselines", DEFAULT_BASELINES), ev_seed)
    report = score(
        pred, truth, refs, by_context=bool(ev.get("by_context", True)), ceiling=bool(ev.get("ceiling", True)), seed=ev_seed,
        metrics=metrics if metrics is not None else ev.get("metrics"), progress=progress, notes=[*notes, *ref_notes, *dataset.notes()],
        sources={"pred": str(out / "pred.h5ad"), "real": str(out / "real.h5ad"), "pert_col": layout.PERT_COL, "control": layout.CONTROL},
    )
    summary = report.write(out / "eval", plots and bool(ev.get("plots", True)))
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
