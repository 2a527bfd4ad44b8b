"""Run a set of metrics over an ``EvalData``: one row per perturbation, NaN always with a reason."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from distgen.errors import LabelError
from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.metrics import MetricResult, metrics
from distgen.evaluation.metrics.base import build_metric, result_problem
from distgen.registry import PluginCheckError
from distgen.wording import first_of

#: Values (cells x genes, truth and prediction together) from which ``score(progress=True)`` says each stage on stderr
#: (the model, each baseline, each ceiling split) and a profile evaluation each metric (``profiles.run_profile``): a
#: genome-wide screen scores for minutes, and only the metrics had a bar (none when stderr is not a terminal, e.g. a
#: batch job's log).
STAGE_LINES_MIN = 10_000_000

#: Metrics computed by default: cell-eval's ``full`` profile (minus clustering) plus distgen's own.
DEFAULT_METRICS: tuple[str, ...] = (
    "mse", "mae", "mse_delta", "mae_delta", "pearson_delta", "pearson_delta_realctrl", "r2", "r2_delta",
    "discrimination_score_l1", "discrimination_score_l2", "discrimination_score_cosine",
    "overlap_at_N", "overlap_at_50", "overlap_at_100", "overlap_at_200", "overlap_at_500",
    "precision_at_N", "precision_at_50", "precision_at_100", "precision_at_200", "precision_at_500",
    "de_direction_match", "de_spearman_lfc_sig", "de_sig_genes_recall", "de_spearman_sig", "roc_auc", "pr_auc",
    "mmd", "edistance", "edistance_sq", "w2", "sinkhorn", "pearson_edistance",
)  # fmt: skip


@dataclass
class MetricTable:
    """``values[metric] -> [P]`` floats for ``perts``; ``reasons[metric][pert]`` explains each NaN."""

    perts: tuple[str, ...]
    values: dict[str, list[float]] = field(default_factory=dict)
    reasons: dict[str, dict[str, str]] = field(default_factory=dict)
    info: dict[str, list[Any]] = field(default_factory=dict)

    def mean(self, name: str) -> float:
        """Mean over perturbations where defined (NaN if nowhere)."""
        vals = [v for v in self.values[name] if not math.isnan(v)]
        return sum(vals) / len(vals) if vals else float("nan")

    def conditions(self) -> list[str]:
        """The condition of each row: a ``condition @ context`` row (``context_rows``) cut at its recorded ``context``,
        never by searching for ``" @ "`` (a condition may hold one); a row without a context is its condition."""
        contexts = self.info.get("context")
        if contexts is None:
            return list(self.perts)
        out = []
        for p, ctx in zip(self.perts, contexts, strict=True):
            suffix = f"{ROW_SEPARATOR}{ctx}"
            out.append(p[: -len(suffix)] if ctx not in (None, "") and p.endswith(suffix) else p)
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One dict per perturbation (info columns, metrics, and a ``nan_reasons`` column)."""
        out = []
        for i, p in enumerate(self.perts):
            row: dict[str, Any] = {"perturbation": p}
            row.update({k: v[i] for k, v in self.info.items()})
            row.update({k: v[i] for k, v in self.values.items()})
            why = [f"{m}: {r[p]}" for m, r in self.reasons.items() if p in r]
            row["nan_reasons"] = "; ".join(why)
            out.append(row)
        return out


#: What a per-context row label joins its condition and context with: ``condition @ context``.
ROW_SEPARATOR = " @ "


def check_row_contexts(contexts: Sequence[str], column: str | None = None) -> None:
    """Refuse (``LabelError``) contexts that hold ``" @ "`` before they label per-context rows ``condition @ context``:
    rows ``("a @ b", "c")`` and ``("a", "b @ c")`` would both read ``a @ b @ c``. ``column`` names where they come from."""
    bad = sorted({str(c) for c in contexts if ROW_SEPARATOR in str(c)})
    if bad:
        where = f"column {column!r}" if column else "the context labels"
        raise LabelError(
            f"context {first_of(bad, 1, render=repr)} of {where} holds {ROW_SEPARATOR!r}, the "
            f"separator of the per-context row labels 'condition{ROW_SEPARATOR}context': ('a{ROW_SEPARATOR}b', 'c') and "
            f"('a', 'b{ROW_SEPARATOR}c') would be one row. Rename it in its column (e.g. obs[col].astype(str).str.replace("
            f"{ROW_SEPARATOR!r}, '/')), or score the contexts pooled (distgen evaluate --pool-contexts, by_context=False)"
        )


def row_label(condition: str, context: str) -> str:
    """The label of condition ``condition``'s row in context ``context``: ``condition @ context`` (``check_row_contexts``)."""
    check_row_contexts([context])
    return f"{condition}{ROW_SEPARATOR}{context}"


def context_rows(table: MetricTable, label: Any, context: str | None) -> MetricTable:
    """``table`` with rows labelled ``label(condition)`` (``condition @ context``) and a ``context`` column, for an
    evaluation that scores several contexts one by one; ``context=None`` (one context) returns ``table`` unchanged."""
    if context is None:
        return table
    perts = tuple(label(p) for p in table.perts)
    reasons = {m: {label(p): r for p, r in rs.items()} for m, rs in table.reasons.items()}
    info = {"context": [context] * len(perts), **table.info}
    return MetricTable(perts=perts, values=table.values, reasons=reasons, info=info)


def merge_tables(tables: Sequence[MetricTable]) -> MetricTable:
    """Rows of several tables (one per context) one after the other."""
    if len(tables) == 1:
        return tables[0]
    out = MetricTable(perts=tuple(p for t in tables for p in t.perts))
    for t in tables:
        for k, v in t.values.items():
            out.values.setdefault(k, []).extend(v)
        for k, r in t.reasons.items():
            out.reasons.setdefault(k, {}).update(r)
        for k, v in t.info.items():
            out.info.setdefault(k, []).extend(v)
    return out


def checked_result(name: str, res: Any, n_perts: int) -> MetricResult:
    """``res`` when it is what ``Metric.compute`` promises (``[P]`` values), else an error naming the metric, its plugin and the fix.

    A plugin's metric that returned one value for all perturbations, a ``[P, G]`` matrix or a bare tensor failed deep
    inside the evaluation ("boolean index did not match", "must be real number, not list"), or was taken as the wrong rows.
    """
    problem = result_problem(res, n_perts)
    if problem is None:
        return res  # type: ignore[no-any-return]
    plugin = metrics.plugin(name)
    if plugin is None:
        raise TypeError(f"metric {name!r}: {problem}")  # a built-in: a bug in distgen
    raise PluginCheckError(f"metrics component {name!r} from plugin {plugin}: {problem}. Fix the plugin (its tests should "
                           "subclass distgen.testing.MetricContract), or leave the metric out of evaluate.metrics / --metrics.")


def run_metrics(data: EvalData, names: Sequence[str] | None = None, progress: bool = False,
                params: dict[str, dict[str, Any]] | None = None, say: Any = None) -> MetricTable:
    """Compute ``names`` (default ``DEFAULT_METRICS``) for every perturbation of ``data``.

    ``say(what)``: called before each metric with ``"metric i of n: name"`` (a line on stderr where no bar shows)."""
    names = list(DEFAULT_METRICS if names is None else names)
    params = params or {}
    data.cache.setdefault("progress", progress)
    table = MetricTable(perts=data.perts)
    table.info["n_cells_real"] = data.real.counts.tolist()
    table.info["n_cells_pred"] = data.pred.counts.tolist()
    it: Any = names
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(names, desc="metrics", unit="metric", disable=None)  # None: no bar when stderr is not a terminal
    for i, name in enumerate(it):
        if say is not None:
            say(f"metric {i + 1} of {len(names)}: {name}")
        metric = build_metric(name, params.get(name), metrics)
        metrics.verify(name)  # a plugin's first use runs the cheap contract checks (tiny data, once per process)
        res = checked_result(name, metric.compute(data), data.n_perts)
        vals = res.values.to(torch.float64).clone()
        reasons = {data.perts[p]: r for p, r in res.reasons.items()}
        for p, why in data.invalid.items():
            vals[p] = float("nan")
            reasons[data.perts[p]] = why
        for p in torch.isnan(vals).nonzero().flatten().tolist():
            reasons.setdefault(data.perts[p], "undefined")
        table.values[name] = vals.tolist()
        table.reasons[name] = reasons
    if "de/real" in data.cache:
        for which in ("real", "pred"):
            n = data.cache[f"de/{which}"].significant().sum(-1).tolist()
            table.info[f"de_nsig_counts_{which}"] = n
    return table
