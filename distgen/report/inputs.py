"""What a report is made of: the model's metric table, its references, the summary, optional cells and run.

``ReportInputs`` is built in memory by the evaluation (``from_evaluation``) or read back from an
evaluation folder (``load_eval_dir``: ``metrics.csv``, ``calibration.csv``, ``summary.json``, and,
when they are still there, the prediction and truth files and the run directory next to it).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.report import TEXT_COLUMNS
from distgen.evaluation.suite import MetricTable, row_label
from distgen.report.files import FIX, check_summary, read_json, read_rows
from distgen.report.stats import group_aliases

Role = Literal["negative", "positive"]


@dataclass
class Reference:
    """A reference the model is measured against.

    Attributes
    ----------
    name
        Baseline name (``additive``) or ``ceiling``.
    table
        Its per-condition metrics, same conditions as the model's.
    role
        ``negative`` (a baseline a model must beat) or ``positive`` (what the data allow: the ceiling).
    aliases
        Other baselines whose predictions are the same (reported once, under this name).
    replicates
        Positive references only: the tables of repeated disjoint splits; the report draws their
        spread as the replicate band.
    description
        One line on how it was made (shown in the headline table).
    """

    name: str
    table: MetricTable
    role: Role = "negative"
    aliases: tuple[str, ...] = ()
    replicates: tuple[MetricTable, ...] = ()
    description: str = ""

    @property
    def label(self) -> str:
        return self.name + (f" (= {', '.join(self.aliases)})" if self.aliases else "")


@dataclass
class RunRecord:
    """A training run as the report reads it: its log, config, the preset it derives from, manifest."""

    path: Path | None = None
    log: list[dict[str, float]] = field(default_factory=list)
    config: Mapping[str, Any] | None = None
    preset: Mapping[str, Any] | None = None
    preset_name: str | None = None
    manifest: Mapping[str, Any] | None = None
    timings: Mapping[str, float | bool] | None = None


@dataclass
class ReportInputs:
    """Everything one evaluation report shows.

    Attributes
    ----------
    model
        The model's per-condition metric table.
    references
        Negative baselines (distinct ones; aliases folded in) and positive references (the ceiling).
    summary
        The evaluation summary (``distgen.evaluation.calibration.summarise`` inside the dict that
        ``evaluate_files`` returns): per metric the means, strongest baseline, normalised score and
        its note, plus ``notes``, file names and counts.
    cells
        The evaluated cells (for response strength and the distributions section); optional. Several
        ``EvalData`` when each context was scored on its own: their conditions are then the table's
        ``"condition @ context"`` rows, contexts named by ``contexts`` (else ``summary["contexts"]``).
    run
        The training run, when the predictions came from one; optional.
    """

    model: MetricTable
    references: list[Reference]
    summary: Mapping[str, Any]
    cells: EvalData | Sequence[EvalData] | None = None
    run: RunRecord | None = None
    model_name: str = "model"
    title: str = "distgen evaluation report"
    contexts: Sequence[str] = ()

    def cell_index(self) -> dict[str, tuple[EvalData, int]]:
        """``{table row label: (EvalData, perturbation index)}`` over the loaded cells (empty without cells)."""
        if self.cells is None:
            return {}
        datas = [self.cells] if isinstance(self.cells, EvalData) else list(self.cells)
        if len(datas) == 1:
            return {p: (datas[0], i) for i, p in enumerate(datas[0].perts)}
        names = list(self.contexts or self.summary.get("contexts") or [])
        if len(names) != len(datas):
            raise ValueError(f"{len(datas)} EvalData parts but {len(names)} context names; pass ReportInputs(contexts=[...])")
        return {row_label(p, ctx): (d, i) for d, ctx in zip(datas, names) for i, p in enumerate(d.perts)}

    @property
    def negatives(self) -> list[Reference]:
        return [r for r in self.references if r.role == "negative"]

    @property
    def positives(self) -> list[Reference]:
        return [r for r in self.references if r.role == "positive"]

    def reference(self, name: str | None) -> Reference | None:
        """The reference called ``name`` or listing it as an alias."""
        for r in self.references:
            if name is not None and (r.name == name or name in r.aliases):
                return r
        return None

    def metric_names(self) -> list[str]:
        return list(self.model.values)

    @staticmethod
    def from_evaluation(
        model: MetricTable,
        baselines: Mapping[str, MetricTable],
        ceiling: MetricTable | None,
        summary: Mapping[str, Any],
        cells: EvalData | Sequence[EvalData] | None = None,
        run: RunRecord | None = None,
        replicates: Sequence[MetricTable] = (),
        aliases: Mapping[str, Sequence[str]] | None = None,
        roles: Mapping[str, Role] | None = None,
    ) -> ReportInputs:
        """Inputs from today's evaluation objects; baselines with identical tables become aliases.

        ``aliases`` (``{kept: [others]}``) overrides the detection when the evaluation decided it.
        ``roles`` (default ``summary["reference_roles"]``) marks references that are ``positive``
        (e.g. an interpolated duplicate) rather than negative baselines; the ceiling, when given,
        is the first positive reference (the band of every figure), the others are drawn as rows.
        """
        groups = {k: list(v) for k, v in aliases.items()} if aliases is not None else group_aliases(baselines)
        if aliases is None:  # baselines the evaluation already folded (summary["baseline_aliases"]: {alias: {same_as}})
            for alias, v in (summary.get("baseline_aliases") or {}).items():
                if v.get("same_as") in groups and alias not in groups[v["same_as"]]:
                    groups[v["same_as"]].append(alias)
        roles = dict(roles if roles is not None else summary.get("reference_roles") or {})
        kept = [name for name in baselines if name in groups]
        refs = [Reference(n, baselines[n], "negative", tuple(groups[n])) for n in kept if roles.get(n, "negative") == "negative"]
        if ceiling is not None:
            desc = str(summary.get("ceiling") or "disjoint half-split of the real cells")
            refs.append(Reference("ceiling", ceiling, "positive", replicates=tuple(replicates), description=desc))
        refs += [Reference(n, baselines[n], "positive", tuple(groups[n])) for n in kept if roles.get(n, "negative") == "positive"]
        return ReportInputs(model=model, references=refs, summary=summary, cells=cells, run=run)

    @staticmethod
    def from_report(report: Any, run: RunRecord | None = None, aliases: Mapping[str, Sequence[str]] | None = None) -> ReportInputs:
        """Inputs from an evaluation ``Report`` (``table``, ``references``, ``ceiling``, ``summary``, ``data``).

        Read by attribute, so any object with those fields works; ``data`` holds one ``EvalData`` per
        scored context (``summary["contexts"]`` names them when there are several).
        """
        datas = list(getattr(report, "data", None) or [])
        replicates = tuple(getattr(report, "replicates", None) or ())
        tables = {**report.references, **(getattr(report, "positives", None) or {})}  # roles: summary["reference_roles"]
        return ReportInputs.from_evaluation(report.table, tables, report.ceiling, report.summary,
                                            cells=datas or None, run=run, replicates=replicates, aliases=aliases)


def _number(text: str) -> float | str:
    try:
        return float(text) if text != "" else math.nan
    except ValueError:
        return text


def read_metric_table(path: str | Path, metric_names: Sequence[str]) -> MetricTable:
    """A ``metrics.csv`` written by ``distgen evaluate`` back into a ``MetricTable`` (reasons included)."""
    rows = read_rows(path, ("perturbation",))
    perts = tuple(r["perturbation"] for r in rows)
    table = MetricTable(perts=perts)
    cols = list(rows[0]) if rows else []
    for name in cols:
        if name in ("perturbation", "nan_reasons"):
            continue
        vals = [r[name] if name in TEXT_COLUMNS else _number(r[name]) for r in rows]  # a context "1e3" stays text
        if name in metric_names:
            text = next((i for i, v in enumerate(vals) if not isinstance(v, float)), None)
            if text is not None:  # read as NaN, a damaged value scored as 'undefined' without a word
                raise ValueError(f"{path}: the {name} value of {perts[text]!r} is {vals[text]!r}, not a number: the file is "
                                 f"damaged or was edited; {FIX}")
            table.values[name] = [float(v) for v in vals]
        else:
            table.info[name] = vals
    for name in table.values:
        table.reasons[name] = {}
    # "m1: why; m2: why": split only before a metric's name, since a reason may hold "; " itself
    starts = re.compile("; (?=(?:" + "|".join(map(re.escape, sorted(table.values, key=len, reverse=True))) + "): )")
    for r in rows:
        for part in filter(None, starts.split(r.get("nan_reasons") or "") if table.values else []):
            metric, _, why = part.partition(": ")
            if metric in table.reasons:
                table.reasons[metric][r["perturbation"]] = why
    return table


def read_long_tables(path: str | Path, perts: Sequence[str]) -> dict[str, MetricTable]:
    """``calibration.csv`` (``source, perturbation, metric, value``) as one ``MetricTable`` per source."""
    acc: dict[str, dict[str, dict[str, float]]] = {}
    for r in read_rows(path, ("source", "perturbation", "metric", "value"), nonempty=False):
        v = _number(r["value"])
        if not isinstance(v, float):  # read as NaN, a damaged value shown as 'undefined' without a word
            raise ValueError(f"{path}: the {r['metric']} value of {r['source']} on {r['perturbation']!r} is {v!r}, not a number: "
                             f"the file is damaged or was edited; {FIX}")
        acc.setdefault(r["source"], {}).setdefault(r["metric"], {})[r["perturbation"]] = v
    out = {}
    for src, by_metric in acc.items():
        t = MetricTable(perts=tuple(perts))
        for name, vals in by_metric.items():
            t.values[name] = [vals.get(p, math.nan) for p in perts]
            t.reasons[name] = {p: "not computed" for p in perts if p not in vals}
        out[src] = t
    return out


def _read_yaml(path: Path) -> dict[str, Any] | None:
    import yaml

    return dict(yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else None


#: How to get a run folder's damaged ``train/manifest.json`` or ``timings.json`` back (the report reads, never writes them).
RUN_FIX = ("restore the file from a copy of the run, or run the experiment again (distgen run: a damaged timings.json makes "
           "it evaluate again, no step trained)")


def read_run_dir(run_dir: str | Path, preset: Mapping[str, Any] | None = None, preset_name: str | None = None) -> RunRecord:
    """A run directory (``config.yaml``, ``manifest.json``, ``metrics.csv``) and its experiment folder's files.

    The config shown is the experiment's own document (``../experiment.yaml``, before defaults are
    filled in) when there is one, else the run's resolved ``config.yaml``.
    """
    run_dir = Path(run_dir)
    log: dict[int, dict[str, float]] = {}
    if (run_dir / "metrics.csv").is_file():
        with (run_dir / "metrics.csv").open(encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                row = {k: v for k, v in ((k, _number(v)) for k, v in r.items() if k) if isinstance(v, float)}
                if "step" in row and not math.isnan(row["step"]):
                    log.setdefault(int(row["step"]), {}).update({k: v for k, v in row.items() if not math.isnan(v)})
    config = _read_yaml(run_dir.parent / "experiment.yaml") or _read_yaml(run_dir / "config.yaml")
    # a damaged one is refused naming the file and the fix, not with the parser's "Expecting property name ..." alone
    manifest = read_json(run_dir / "manifest.json", RUN_FIX) if (run_dir / "manifest.json").is_file() else None
    timings = read_json(run_dir.parent / "timings.json", RUN_FIX) if (run_dir.parent / "timings.json").is_file() else None
    return RunRecord(path=run_dir, log=[log[s] for s in sorted(log)], config=config, preset=preset, preset_name=preset_name,
                     manifest=manifest, timings=timings)


def table_checked(eval_dir: Path, raw: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` with a first note (and a warning) where ``eval_dir/metrics.csv`` is not what the evaluation wrote, read
    with ``distgen compare``'s check (``compare.check_table``: ``raw``'s row fingerprints and means); a row holding another
    label's values is refused (``MismatchedEvaluations``). The page shows the table as it is now."""
    from distgen.errors import warn
    from distgen.evaluation.compare import check_table

    path = eval_dir / "metrics.csv"
    note = check_table(path, read_rows(path, ("perturbation",)), raw, f"{path}", "this page")
    if not note:
        return summary
    warn(note)
    return {**summary, "notes": [note, *(summary.get("notes") or [])]}


def load_eval_dir(
    eval_dir: str | Path,
    run_dir: str | Path | None = None,
    cells: EvalData | Sequence[EvalData] | None = None,
    preset: Mapping[str, Any] | None = None,
    preset_name: str | None = None,
) -> ReportInputs:
    """Read an evaluation folder back (``metrics.csv``, ``calibration.csv``, ``summary.json``).

    ``cells``: the evaluated cells, when the caller has them (``python -m distgen.report`` reads
    the prediction and truth files named in the summary). ``run_dir`` defaults to ``../train``
    when that is a run directory.
    """
    eval_dir = Path(eval_dir)
    missing = [f for f in ("metrics.csv", "summary.json") if not (eval_dir / f).is_file()]
    if missing and (eval_dir / "eval" / "summary.json").is_file():  # a distgen run folder: point to its eval/, not "write one"
        raise FileNotFoundError(f"{eval_dir} is a run folder, not an evaluation folder: its evaluation is in {eval_dir / 'eval'}: "
                                f"python -m distgen.report {eval_dir / 'eval'}")
    if missing:
        raise FileNotFoundError(f"{eval_dir} is not an evaluation folder: {', '.join(missing)} missing; "
                                "write one with distgen evaluate --out FOLDER")
    raw = check_summary(read_json(eval_dir / "summary.json"), eval_dir / "summary.json")
    if not isinstance(raw, dict) or not isinstance(raw.get("metrics"), dict):
        raise ValueError(f"{eval_dir / 'summary.json'} has no per-metric table (\"metrics\"); it is not a distgen evaluation summary")
    if raw.get("profile") or any(not isinstance(row, dict) for row in raw["metrics"].values()):
        raise ValueError(f"{eval_dir} is a --profile {raw.get('profile') or ''} evaluation: a reference profile's means with no "
                         "baselines and no ceiling, which is what this page compares the model with; its page is the profile's "
                         "tables (distgen.report.profile.write_profile_report, or python -m distgen.report FOLDER), its results "
                         "metrics.csv and summary.json (distgen compare pairs two of them)")
    summary = _nan_from_null(raw)
    model = read_metric_table(eval_dir / "metrics.csv", list(summary.get("metrics", {})))
    summary = table_checked(eval_dir, raw, summary)
    tables = read_long_tables(eval_dir / "calibration.csv", model.perts) if (eval_dir / "calibration.csv").is_file() else {}
    ceiling = tables.pop("ceiling", None)
    named = {b for row in summary.get("metrics", {}).values() for b in (row.get("baselines") or {})}
    for src in [s for s in tables if re.fullmatch(r"ceiling_split_\d+", s) and s not in named]:
        del tables[src]  # the ceiling's splits (the band's values; summary.json holds the band), not a baseline
    if run_dir is None and (eval_dir.parent / "train" / "config.yaml").is_file():
        run_dir = eval_dir.parent / "train"
    run = read_run_dir(run_dir, preset, preset_name) if run_dir is not None else None
    return ReportInputs.from_evaluation(model, tables, ceiling, summary, cells=cells, run=run)


def _nan_from_null(summary: dict[str, Any]) -> dict[str, Any]:
    """``summary.json`` writes NaN as null: the per-metric numbers come back as NaN."""
    nan = math.nan
    for row in summary.get("metrics", {}).values():
        for k in ("model", "ceiling", "normalised"):
            if row.get(k) is None:
                row[k] = nan
        row["baselines"] = {b: nan if v is None else v for b, v in (row.get("baselines") or {}).items()}
    return summary
