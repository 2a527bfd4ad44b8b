"""``distgen compare RUN_A RUN_B``: two evaluations paired on the perturbations they share.

An evaluation is a folder written by ``distgen evaluate`` (``metrics.csv`` + ``summary.json``) or
by ``distgen run`` (its ``eval/`` subfolder). Per metric both evaluated, on the perturbations (rows
of ``metrics.csv``: ``condition`` or ``condition @ context``) where both values are defined: the
means of A and B, the paired mean difference ``A - B`` with its bootstrap interval, and the
two-sided Wilcoxon signed-rank p-value (``distgen.evaluation.uncertainty.paired_test``).
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
    """``({metric: {perturbation: value}}, summary)`` of an evaluation folder."""
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
    return {k: v for k, v in values.items() if v}, summary


def _higher_is_better(name: str, *summaries: dict[str, Any]) -> bool | None:
    for s in summaries:
        row = (s.get("metrics") or {}).get(name)
        if isinstance(row, dict) and "higher_is_better" in row:
            return bool(row["higher_is_better"])
    try:
        from distgen.evaluation.metrics import metrics

        return bool(metrics.get(name).capabilities.higher_is_better)
    except (KeyError, LookupError):
        return None


def compare(run_a: str | Path, run_b: str | Path, seed: int = 0, n_boot: int = N_BOOT, level: float = LEVEL) -> dict[str, Any]:
    """Paired comparison of two evaluations on their shared perturbations (see the module docstring)."""
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
    out: dict[str, Any] = {"a": str(run_a), "b": str(run_b), "n_shared": len(shared), "only_a": len(perts_a - perts_b),
                           "only_b": len(perts_b - perts_a), "ci_level": level, "metrics": {}}
    for name in shared_metrics:
        xa = [a[name].get(p, math.nan) for p in shared]
        xb = [b[name].get(p, math.nan) for p in shared]
        test = paired_test(xa, xb, n_boot, level, seed)
        hib = _higher_is_better(name, sa, sb)
        diff = test["mean_difference"]
        better = None
        if hib is not None and not math.isnan(diff) and diff != 0:
            better = "a" if (diff > 0) == hib else "b"
        fa, fb = [v for v in xa if not math.isnan(v)], [v for v in xb if not math.isnan(v)]
        out["metrics"][name] = {"higher_is_better": hib, "mean_a": sum(fa) / len(fa) if fa else math.nan,
                                "mean_b": sum(fb) / len(fb) if fb else math.nan, **test, "better": better}
    return out


def markdown(result: dict[str, Any]) -> str:
    """A readable table of ``compare``'s result."""
    lines = ["# distgen compare", "", f"A `{result['a']}` vs B `{result['b']}`: {result['n_shared']} shared perturbations "
             f"({result['only_a']} only in A, {result['only_b']} only in B). Difference = A - B, paired per perturbation; "
             f"{result['ci_level']:.0%} bootstrap CI; two-sided Wilcoxon signed-rank p.", "",
             "| metric | better | mean A | mean B | A - B | CI | Wilcoxon p | pairs | winner |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in result["metrics"].items():
        hib = {True: "higher", False: "lower", None: "?"}[r["higher_is_better"]]
        ci = f"[{fmt_value(r['ci'][0])}, {fmt_value(r['ci'][1])}]"
        lines.append(f"| {name} | {hib} | {fmt_value(r['mean_a'])} | {fmt_value(r['mean_b'])} | {fmt_value(r['mean_difference'])} | {ci} | "
                     f"{fmt_value(r['wilcoxon_p'])} | {r['n']} | {fmt_value(r['better'])} |")
    return "\n".join(lines) + "\n"
