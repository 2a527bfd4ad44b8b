"""The HTML page of every evaluation: ``distgen evaluate``, ``distgen run`` (with its training story) and ``distgen sweep``.

The wiring between the commands and ``distgen.report``: each function takes what its command
already holds in memory (the ``Report`` of the scoring, the output folder) and writes
``report.html`` next to the other outputs. ``run_facts`` adds to a run's summary what only the
run knows: the preset its config derives from and the held-out conditions whose atoms the
model cannot embed (pre-flight's answer), so the page can flag them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from distgen.errors import DistgenRuntimeWarning, warn
from distgen.evaluation.report import Report
from distgen.types import COMBO, canonical

#: File name of the page inside an evaluation or sweep folder.
PAGE = "report.html"


def unembeddable(model: Any, dataset: Any, part: str = "test") -> dict[str, Any]:
    """``{"component", "conditions": {condition: [atoms]}}``: held-out conditions (canonical, ``A+B``) with atoms ``model`` cannot embed.

    Asks the same question as the pre-flight check (``distgen.models.preflight.preflight``) of the
    trained or fitted model; empty when every atom can be embedded (or the model cannot be asked).
    """
    from distgen.data.conditions import dose_label
    from distgen.models.preflight import preflight

    conditions = {"train": dataset.split.train_conditions, "val": dataset.split.val_conditions,
                  "test": dataset.split.test_conditions}[part]
    data = dataset.data
    delimiter = data.schema.combo_delimiter
    # the rows as the metric tables name them (A+B, whatever the data's delimiter; a population at its doses dex@10+sah@5)
    # and what pre-flight asks of each: its condition (at several doses, without them: the model embeds atoms, not dex@10)
    if getattr(data, "dosed", False):
        read = {c: data.dose_of(c) for c in conditions if c != dataset.info.control_label}
        rows = {dose_label(atoms, doses, COMBO): data.base_condition(c) for c, (atoms, doses) in read.items()}
    else:
        rows = {canonical(c.split(delimiter)): c for c in conditions}
    try:
        rep = preflight(model, list(dict.fromkeys(rows.values())), delimiter=delimiter, control_label=dataset.info.control_label,
                        info=dataset.info, strict=False)
    except TypeError:  # a model with neither can_embed nor can_predict: nothing to say
        return {}
    if not rep.n_missing:
        return {}
    missing, lacking = set(rep.missing_atoms), set(rep.not_embeddable)
    return {"component": rep.component,
            "conditions": {row: [a for a in c.split(delimiter) if a in missing] for row, c in rows.items() if c in lacking}}


def run_facts(preset: str | None, model: Any, dataset: Any) -> dict[str, Any]:
    """What a run adds to its evaluation summary: ``preset`` (``preset_of`` its config, or None), ``provenance`` (what each
    statistic was fitted on, ``Dataset.provenance``) and, when any, ``unembeddable``."""
    facts: dict[str, Any] = {"preset": preset, "provenance": dataset.provenance()}
    missing = unembeddable(model, dataset)
    if missing:
        facts["unembeddable"] = missing
    return facts


def _write(make: Any, path: Path, what: str) -> Path | None:
    """Write one page; a failure warns (every other output is already written) and says how to retry."""
    try:
        return make()  # type: ignore[no-any-return]
    except Exception as exc:
        warn(f"{what}: {path} was not written ({type(exc).__name__}: {exc}); "
             f"write it again with: python -m distgen.report {path.parent}", DistgenRuntimeWarning)
        return None


def _preset_doc(name: str | None) -> Mapping[str, Any] | None:
    from distgen.config import ConfigError, load_config

    try:
        return load_config(name) if name else None
    except ConfigError:
        return None


def write_evaluation_page(out: str | os.PathLike[str], report: Report, pred: Any = None) -> Path | None:
    """``OUT/report.html`` of ``distgen evaluate``.

    When ``pred`` is a file of a run (next to the ``train/`` run directory of an experiment folder,
    as ``distgen run`` leaves it, or inside a run directory, as ``distgen predict RUN --out
    RUN/pred.h5ad`` writes it), the page has that run's training story; otherwise its training
    section says there is none.
    """
    from distgen.report import ReportInputs, read_run_dir, write_report

    path = Path(out) / PAGE

    def make() -> Path:
        run_dir = _run_dir_of(pred)
        run = None
        if run_dir is not None:
            recorded = run_dir.parent / "eval" / "summary.json"  # an experiment folder's own evaluation names its preset
            preset = json.loads(recorded.read_text(encoding="utf-8")).get("preset") if recorded.is_file() else _manifest_preset(run_dir)
            run = read_run_dir(run_dir, _preset_doc(preset), preset)
        return write_report(ReportInputs.from_report(report, run=run), path)

    return _write(make, path, "distgen evaluate")


def _manifest_preset(run_dir: Path) -> str | None:
    """The preset ``distgen train`` recorded in ``run_dir``'s manifest (None: not recorded, or unreadable)."""
    try:
        preset = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8")).get("preset")
    except (OSError, ValueError, AttributeError):
        return None
    return preset if isinstance(preset, str) else None


def _run_dir_of(pred: Any) -> Path | None:
    """The run directory a prediction file belongs to (``config.yaml`` and ``manifest.json``), if any."""
    if not isinstance(pred, str | os.PathLike):
        return None
    here = Path(pred).resolve().parent
    for cand in (here / "train", here):
        if (cand / "config.yaml").is_file() and (cand / "manifest.json").is_file():
            return cand
    return None


def write_profile_page(out: str | os.PathLike[str]) -> Path | None:
    """``OUT/report.html`` of ``distgen evaluate --profile``: the profile's tables (``distgen.report.profile``), read from ``OUT``."""
    from distgen.report.profile import write_profile_report

    path = Path(out) / PAGE
    return _write(lambda: write_profile_report(out, path), path, "distgen evaluate --profile")


def write_run_page(out: str | os.PathLike[str], report: Report) -> Path | None:
    """``OUT/eval/report.html`` of ``distgen run``: the evaluation and the training story of ``OUT``.

    Reads ``OUT/train/`` (loss curves, validation metrics, manifest), ``OUT/experiment.yaml`` (the
    config, diffed against ``summary["preset"]``) and ``OUT/timings.json``; a fitted model has no
    run directory, only its config and timings.
    """
    from distgen.report import ReportInputs, read_run_dir, write_report

    out = Path(out)
    path = out / "eval" / PAGE

    def make() -> Path:
        name = report.summary.get("preset")
        run = read_run_dir(out / "train", _preset_doc(name), name)
        if not (out / "train").is_dir():
            run.path = None
        return write_report(ReportInputs.from_report(report, run=run), path)

    return _write(make, path, "distgen run")


def write_sweep_page(out: str | os.PathLike[str], metrics: Sequence[str] | None = None) -> Path | None:
    """``SWEEP/report.html``: one row per variant (seeds as points), paired differences from the reference as intervals."""
    from distgen.report.sweep import load_sweep_dir, write_sweep_report

    path = Path(out) / PAGE
    return _write(lambda: write_sweep_report(load_sweep_dir(Path(out), metrics or None), path), path, "distgen sweep")
