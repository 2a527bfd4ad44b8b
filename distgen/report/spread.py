"""The report's "Spread across batches" section: ``summary.json["spread"]`` (``distgen.evaluation.spread``) as a table."""

from __future__ import annotations

import math
from collections.abc import Mapping
from html import escape
from typing import Any

from distgen.report.html import Section, num, table

#: What each column means, under the table.
LEGEND = ("spread_ratio: 1 = the generated populations (one per batch) differ as much as the real batches do, 0 = one "
          "population for all; population_mmd2 (lower is better) and replicate_coverage (higher is better) compare the set "
          "of generated populations with the set of real ones. _collapsed: the same cells pooled and copied to every batch. "
          "split_half: one half of each real batch against the other (the positive reference, at half depth). [lo, hi]: 95% "
          "interval of the mean over the groups (studentized bootstrap; Student t at 3 groups or fewer), where there are 2 or more.")


def spread_section(summary: Mapping[str, Any]) -> Section | None:
    """The section, or None when the evaluation scored no spread (no group with several real batches)."""
    spread = summary.get("spread")
    if not spread:
        return None
    from distgen.evaluation.spread import SPREAD_METRICS, batch_test_line

    ivs = spread.get("intervals") or {}

    def cell(who: str, m: str, mean: float) -> str:  # the mean, and its interval over groups where there is one
        # NaN (below 2 groups) is null in summary.json: a page written again from the folder reads None
        lo, hi = (math.nan if v is None else float(v) for v in ((ivs.get(who) or {}).get(m) or (None, None)))
        return num(mean) + (f" [{num(lo)}, {num(hi)}]" if math.isfinite(lo) and math.isfinite(hi) else "")

    rows = [[who, spread["roles"].get(who, ""), *[cell(who, m, means[m]) for m in SPREAD_METRICS]] for who, means in spread["means"].items()]
    notes = [f"{label}: {r['note']}" for label, r in spread["rows"].items() if r.get("note")]
    notes += sorted({f"{who}: {r[who]['note']}" for r in spread["rows"].values() for who in spread["means"] if r[who].get("note")})
    lead = (f'<p class="lead">Means over {len(spread["rows"])} group(s) with several real batches (donors, plates); '
            f"{escape(str(spread['kernel']))} kernel, unbiased MMD² between populations, at most "
            f"{spread['cells_per_population']} cells a population.</p>")
    tested = batch_test_line(spread)
    tail = f"<p>{escape(LEGEND)}</p>" + (f"<p>{escape(tested)}</p>" if tested else "") + ("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>" if notes else "")
    return Section("spread", "Spread across batches", lead + table(["who", "role", *SPREAD_METRICS], rows) + tail)
