"""The Python API: the calls the CLI makes, one or two lines each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from distgen.config import load_config
from distgen.models.base import PerturbationModel
from distgen.models.generator import build_model
from distgen.registry import KINDS, ComponentInfo, all_registries, registry
from distgen.runtime import apply_threads
from distgen.types import DataInfo


def components(kind: str | None = None) -> list[ComponentInfo]:
    """Self-descriptions of every registered component (of one ``kind`` if given), plugins included."""
    regs = [registry(kind)] if kind else [r for k, r in sorted(all_registries().items(), key=lambda kv: _order(kv[0]))]
    return [info for reg in regs for info in reg.infos()]


def build(
    config: str | Path | Mapping[str, Any],
    info: DataInfo,
    overrides: Sequence[str] = (),
    seen_perturbations: Sequence[str] | None = None,
) -> PerturbationModel:
    """Build the model of a preset name, YAML path or config mapping for a dataset's ``info``.

    ``config`` may be a whole document (with a ``model`` section) or a bare model node.
    """
    doc = load_config(config, overrides)
    node = doc.get("model", doc)
    return build_model(node, info, seen_perturbations)


def load_data(
    dataset: str = "norman_k562", split: Mapping[str, Any] | str | None = None, **data: Any
) -> Any:
    """A dataset with its split, ready for ``build``/``fit``: ``.info``, ``.train_table``, ``.data``, ``.split``.

    ``dataset`` is a bundled name (``norman_k562``, ``kang_pbmc``) or an ``.h5ad`` path; ``split``
    holds ``make_split`` arguments (e.g. ``{"kind": "combo_seen2"}``) or a saved split file; other
    keyword arguments are the ``data:`` config section (``schema``, ``hvg``, ``set_size``...).
    """
    from distgen.train.data_section import data_section, load_run_data

    return load_run_data(data_section({"dataset": dataset, "split": split, **data}))


def predict(
    model: Any, data: Any, part: str = "test", seed: int = 0, out: str | Path | None = None, real: str | Path | None = None
) -> tuple[Any, Any]:
    """Generate every held-out condition of ``data``'s split ``part``: ``(pred, real)`` AnnData for ``evaluate``.

    ``model`` is fitted (``build`` + ``fit``, or any model with ``predict``); ``data`` comes from
    ``load_data``. Each condition gets as many cells as were measured, generated from control cells
    of its context; ``out``/``real`` also write the ``.h5ad`` files (cell-eval layout).
    """
    from distgen.train.predict import predict_split
    apply_threads()
    return predict_split(model, data, part, seed=seed, out=out, real=real)  # type: ignore[no-any-return]


def evaluate(pred: Any, real: Any, out: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Evaluate predicted vs real cells (AnnData or ``.h5ad`` paths) into ``out``; returns the summary.

    Keyword arguments: ``pert_col``, ``control``, ``train`` (cells to fit baselines on),
    ``baselines``, ``metric_names``, ``ceiling``, ``seed``, ``make_plots``, ``progress``.
    """
    from distgen.evaluation.pipeline import evaluate_files
    apply_threads()
    return evaluate_files(pred, real, str(out), **kwargs)


def run(config: str | Path | Mapping[str, Any], out: str | Path, overrides: Sequence[str] = (), **kwargs: Any) -> dict[str, Any]:
    """Train (or fit) -> predict the test split -> evaluate, into ``out`` (``distgen run``)."""
    from distgen.pipeline.experiment import run_experiment
    apply_threads()
    return run_experiment(config, out, overrides, **kwargs)


def sweep(config: str | Path, grid: Mapping[str, Sequence[Any]] | None = None, out: str | Path = "sweep", **kwargs: Any) -> Any:
    """Run an ablation grid and aggregate it (``distgen sweep``); returns a ``SweepResult``."""
    from distgen.pipeline.sweep import sweep as _sweep
    apply_threads()
    return _sweep(config, grid, out, **kwargs)


def _order(kind: str) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)
