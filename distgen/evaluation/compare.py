"""``distgen compare RUN_A RUN_B``: two evaluations paired on the perturbations they share.

An evaluation is a folder written by ``distgen evaluate`` (``metrics.csv`` + ``summary.json``) or
by ``distgen run`` (its ``eval/`` subfolder). Per metric both evaluated, on the perturbations (rows
of ``metrics.csv``: ``condition`` or ``condition @ context``) where both values are defined: the
means of A and B over those rows, the paired mean difference ``A - B`` with its bootstrap interval, the
two-sided Wilcoxon signed-rank p-value (``distgen.evaluation.uncertainty.paired_test``) and a winner
only where that test rejects at ``1 - level``. A metric of one value for the whole evaluation
(``MetricCapabilities.per_perturbation=False``), repeated on every row, is compared once: two
numbers and their difference, no interval, no test.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from distgen.evaluation.report import fmt_value
from distgen.evaluation.uncertainty import LEVEL, N_BOOT, paired_test

#: Non-metric columns of ``metrics.csv``.
INFO_COLUMNS = ("perturbation", "nan_reasons", "n_cells_real", "n_cells_pred", "context")


def evaluation_folder(path: str | Path) -> Path:
    """The folder holding an evaluation's ``metrics.csv`` and ``summary.json``: ``path`` or its ``eval/``."""
    p = Path(path)
    for folder in (p / "eval", p):
        if (folder / "metrics.csv").is_file() and (folder / "summary.json").is_file():
            return folder
    raise FileNotFoundError(f"{path} holds no evaluation (metrics.csv and summary.json, or eval/ with them); "
                            "pass a folder written by distgen evaluate --out or distgen run")


def load_evaluation(path: str | Path) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """``({metric: {perturbation: value}}, summary)`` of an evaluation folder (``summary["row_contexts"]``: each row's context)."""
    folder = evaluation_folder(path)
    summary = json.loads((folder / "summary.json").read_text())
    with (folder / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    names = [c for c in (rows[0].keys() if rows else []) if c not in INFO_COLUMNS]
    listed = summary.get("metrics")
    if isinstance(listed, dict):
        names = [c for c in names if c in listed]
    values: dict[str, dict[str, float]] = {name: {} for name in names}
    for row in rows:
        for name in names:
            raw = row.get(name, "")
            try:
                values[name][row["perturbation"]] = float(raw) if raw not in ("", None) else math.nan
            except ValueError:
                values.pop(name, None)  # not a numeric column
    summary["row_contexts"] = {row["perturbation"]: row.get("context") or "" for row in rows}
    return {k: v for k, v in values.items() if v}, summary


def _capability(name: str, field: str, default: Any) -> Any:
    try:
        from distgen.evaluation.metrics import metrics

        return getattr(metrics.get(name).capabilities, field, default)
    except (KeyError, LookupError):
        return default


def _higher_is_better(name: str, *summaries: dict[str, Any]) -> bool | None:
    for s in summaries:
        row = (s.get("metrics") or {}).get(name)
        if isinstance(row, dict) and "higher_is_better" in row:
            return bool(row["higher_is_better"])
    hib = _capability(name, "higher_is_better", None)
    return None if hib is None else bool(hib)


def _one_values(values: dict[str, float], contexts: dict[str, str], keys: list[str]) -> dict[str, float]:
    """``{context: value}`` of a one-value metric over the rows ``keys`` (its finite value; NaN when none)."""
    out: dict[str, float] = {}
    for k in keys:
        ctx, v = contexts.get(k, ""), values.get(k, math.nan)
        if ctx not in out or (math.isnan(out[ctx]) and not math.isnan(v)):
            out[ctx] = v
    return out


def _mean(v: list[float]) -> float:
    return sum(v) / len(v) if v else math.nan


def compare(run_a: str | Path, run_b: str | Path, seed: int = 0, n_boot: int = N_BOOT, level: float = LEVEL) -> dict[str, Any]:
    """Paired comparison of two evaluations on their shared perturbations (see the module docstring).

    Per-perturbation metrics: ``mean_a`` and ``mean_b`` over the rows where both values are defined (the
    rows of ``mean_difference``; ``n_dropped`` counts the shared rows left out), the bootstrap ``ci``, the
    Wilcoxon ``wilcoxon_p`` and ``better``: the run the metric's direction favours when ``wilcoxon_p < 1 -
    level`` (``verdict`` says so, or ``no difference``). Metrics of one value for the whole evaluation
    (``MetricCapabilities.per_perturbation=False``) are taken once per context: ``value_a``, ``value_b``,
    ``mean_difference``, no interval, no test, no winner (``verdict``: ``one value``).
    """
    a, sa = load_evaluation(run_a)
    b, sb = load_evaluation(run_b)
    shared_metrics = [m for m in a if m in b]
    if not shared_metrics:
        raise ValueError(f"{run_a} and {run_b} have no metric in common (A: {sorted(a)[:8]}, B: {sorted(b)[:8]})")
    perts_a = set().union(*(set(v) for v in a.values()))
    perts_b = set().union(*(set(v) for v in b.values()))
    shared = sorted(perts_a & perts_b)
    if not shared:
        raise ValueError(f"{run_a} and {run_b} share no perturbation (e.g. A: {sorted(perts_a)[:5]}, B: {sorted(perts_b)[:5]}); "
                         "compare evaluations of the same held-out groups")
    alpha = 1.0 - level
    out: dict[str, Any] = {"a": str(run_a), "b": str(run_b), "n_shared": len(shared), "only_a": len(perts_a - perts_b),
                           "only_b": len(perts_b - perts_a), "ci_level": level, "alpha": alpha, "metrics": {}}
    for name in shared_metrics:
        hib = _higher_is_better(name, sa, sb)
        if not _capability(name, "per_perturbation", True):
            va = _one_values(a[name], sa["row_contexts"], shared)
            vb = _one_values(b[name], sb["row_contexts"], shared)
            both = [c for c in va if c in vb and not math.isnan(va[c]) and not math.isnan(vb[c])]
            one = lambda v: v[next(iter(v))] if len(v) == 1 else {c: v[c] for c in sorted(v)}  # noqa: E731
            out["metrics"][name] = {
                "higher_is_better": hib, "per_perturbation": False, "value_a": one(va), "value_b": one(vb),
                "mean_a": _mean([va[c] for c in both]), "mean_b": _mean([vb[c] for c in both]),
                "mean_difference": _mean([va[c] - vb[c] for c in both]), "ci": [math.nan, math.nan], "wilcoxon_p": math.nan,
                "n": len(both), "n_dropped": 0, "better": None, "verdict": "one value",
                "note": "one value for the whole evaluation" + (" per context" if len(va) > 1 else "")
                        + ": a difference of single numbers, no interval and no test"}
            continue
        xa = [a[name].get(p, math.nan) for p in shared]
        xb = [b[name].get(p, math.nan) for p in shared]
        test = paired_test(xa, xb, n_boot, level, seed)
        pairs = [(x, y) for x, y in zip(xa, xb) if math.isfinite(x) and math.isfinite(y)]
        diff, p = test["mean_difference"], test["wilcoxon_p"]
        better = None
        if hib is not None and not math.isnan(diff) and diff != 0 and not math.isnan(p) and p < alpha:
            better = "a" if (diff > 0) == hib else "b"
        verdict = better if better is not None else ("no direction" if hib is None else "no difference")
        dropped = len(shared) - len(pairs)
        note = test["note"]
        if dropped:
            note = "; ".join(filter(None, [note, f"{dropped} row(s) with a NaN on either side left out of both means"]))
        out["metrics"][name] = {"higher_is_better": hib, "per_perturbation": True, "mean_a": _mean([x for x, _ in pairs]),
                                "mean_b": _mean([y for _, y in pairs]), **test, "note": note, "n_dropped": dropped,
                                "better": better, "verdict": verdict}
    return out


def markdown(result: dict[str, Any]) -> str:
    """A readable table of ``compare``'s result."""
    alpha = result.get("alpha", 1.0 - result["ci_level"])
    lines = ["# distgen compare", "", f"A `{result['a']}` vs B `{result['b']}`: {result['n_shared']} shared perturbations "
             f"({result['only_a']} only in A, {result['only_b']} only in B). Difference = A - B, paired per perturbation; "
             f"means over the pairs where both are defined; {result['ci_level']:.0%} bootstrap CI; two-sided Wilcoxon "
             f"signed-rank p. A winner only where p < {alpha:.2g}, else no difference.", "",
             "| metric | better | mean A | mean B | A - B | CI | Wilcoxon p | pairs | winner |", "|---|---|---|---|---|---|---|---|---|"]
    singles = []
    for name, r in result["metrics"].items():
        hib = {True: "higher", False: "lower", None: "?"}[r["higher_is_better"]]
        if not r.get("per_perturbation", True):
            singles.append(name)
            lines.append(f"| {name} | {hib} | {fmt_value(r['mean_a'])} | {fmt_value(r['mean_b'])} | {fmt_value(r['mean_difference'])} | - | - | "
                         f"one value* | - |")
            continue
        ci = f"[{fmt_value(r['ci'][0])}, {fmt_value(r['ci'][1])}]"
        pairs = f"{r['n']}" + (f" ({r['n_dropped']} left out: NaN)" if r.get("n_dropped") else "")
        winner = r["better"] if r["better"] is not None else r.get("verdict", "-")
        if r["better"] is not None:
            winner = f"{winner} (p < {alpha:.2g})"
        lines.append(f"| {name} | {hib} | {fmt_value(r['mean_a'])} | {fmt_value(r['mean_b'])} | {fmt_value(r['mean_difference'])} | {ci} | "
                     f"{fmt_value(r['wilcoxon_p'])} | {pairs} | {winner} |")
    if singles:
        lines += ["", f"\\* one value for the whole evaluation (per context: their mean), repeated on every row of metrics.csv: "
                  f"a difference of single numbers, not paired observations (no CI, no test, no winner): {', '.join(singles)}."]
    return "\n".join(lines) + "\n"
