"""The evaluation report: ``write_report(inputs, path)`` -> one self-contained ``report.html``.

Sections: Headline (model vs every distinct baseline and the ceiling, per metric family),
Per perturbation (ordered by response strength, flagged conditions marked), Distributions (cells
in a shared embedding, marginals of the most changed genes), Training (curves, config diff,
manifest).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from distgen.atomic import atomic_write_text
from distgen.config import ConfigError
from distgen.evaluation.calibration import why_undefined
from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.strata import tie_note
from distgen.evaluation.uncertainty import runner_up_notes
from distgen.glyphs import stand_ins
from distgen.report import cells as cellfigs
from distgen.report import figures, training
from distgen.report.explain import BACKGROUND, condition_strength, flagged, headline_metrics, normalised_reason
from distgen.report.html import Cell, Section, figure, labels_section, num, page, table
from distgen.report.inputs import ReportInputs
from distgen.report.spread import spread_section
from distgen.report.stats import STRATUM_NAMES, advantage, mean_ci, strata
from distgen.report.style import metric_info, theme
from distgen.train.manifest import run_notes
from distgen.wording import counted, did_you_mean, first_of, listing, row_noun


def per_condition_metrics(inputs: ReportInputs, limit: int = 4) -> list[str]:
    """Metrics for the per-condition views: the headline metrics that vary by condition and have a better direction, first of each family first."""
    head = headline_metrics(inputs.metric_names())
    firsts = [ms[0] for ms in head.values()]
    rest = [m for ms in head.values() for m in ms[1:]]
    return [m for m in firsts + rest if metric_info(m).level != "global" and metric_info(m).higher_is_better is not None][:limit]


#: Most rows of the per-condition figure (and of the flagged table). A genome-wide screen has thousands of conditions:
#: one row each made a figure of 0.2 inch a row (320 inches for 1,600), unreadable and most of a 20 MB page.
ROW_LIMIT = 60


def shown_conditions(order: Sequence[str], limit: int = ROW_LIMIT) -> list[str]:
    """The conditions the per-condition figure draws: all of ``order`` up to ``limit``, else its first and last
    ``limit // 2`` (the strongest and the weakest responses when ``order`` is sorted by strength)."""
    if len(order) <= limit:
        return list(order)
    half = limit // 2
    return [*order[:half], *order[len(order) - half:]]


def _headline(inputs: ReportInputs) -> str:
    rows = inputs.summary.get("metrics", {})
    parts = ['<p class="lead">Each panel: the model and every distinct baseline as the mean over held-out conditions '
             "with a 95% interval (studentized bootstrap over conditions, Student t at 3 or fewer; cut at the values the metric can take; "
             "overlapping intervals are not a test: the table's colours are the paired verdicts); the green band is the positive reference "
             "(the ceiling: how well one half of the real cells predicts the other). "
             "normalised = (model − best baseline) / (ceiling − best baseline): 0 = as good as the best baseline, "
             "1 = as good as the data agree with themselves." + _band_note(inputs, rows)
             + _few_conditions_note(len(inputs.model.perts), [r.get("ci_n") for r in rows.values()],
                                    row_noun(inputs.summary.get("contexts"), "condition"))
             + "</p>"]
    parts.append(_references_text(inputs))
    head = headline_metrics(inputs.metric_names())
    parts.append(figure(figures.headline_figure(inputs, head), "Headline metrics, one row per metric family; every metric "
                        "of the evaluation is in the table below.", alt="headline"))
    parts.append(_summary_table(inputs, [n for n in inputs.metric_names() if n in rows]))
    return "".join(parts)


def _band_note(inputs: ReportInputs, rows: dict[str, Any]) -> str:
    """What the ceiling's range over its splits is not, said where the page draws one (``ceiling_band`` of several splits)."""
    pos = inputs.positives[0] if inputs.positives else None
    if pos is None or not (pos.replicates or (pos.name == "ceiling" and any(figures.split_band(r) for r in rows.values()))):
        return ""
    return (" The band is the ceiling's range over its splits: the same real cells split again, not a new experiment. A fresh "
            "replicate moves the ceiling's mean about as much on error metrics but 1.1-1.8 times as much (up to 2.4) on "
            "agreement metrics such as discrimination, overlaps and DE scores (docs/metrics.md, \"Calibrated scores\"), so a "
            "model inside the band is not shown to be as good as the data allow.")


def _few_conditions_note(n: int, counts: Sequence[Any] = (), noun: str = "condition") -> str:
    """A sentence for the headline when its intervals rest on few conditions (``evaluation.report.FEW_VALUES``), else ``""``.

    ``counts``: each metric's ``ci_n`` (the values its interval is over). A metric undefined on most of many conditions
    rests on few values too: summary.md said so ("Some intervals rest on 6 perturbation(s)") while the page, counting the
    rows, did not. ``noun``: what a row is (``wording.row_noun``: a "(condition, context) row" where the run scored
    several contexts)."""
    from distgen.evaluation.report import FEW_VALUES

    if n >= FEW_VALUES:
        few = sorted({int(c) for c in counts if isinstance(c, int | float) and 2 <= c < FEW_VALUES})
        out = ""
        if few:
            out += (f" Some intervals rest on {listing(str(c) for c in few)} {noun}s (a metric undefined on the others): at "
                    "so few, a nominal 95% interval covers the mean less often when the scores are skewed (docs/metrics.md), "
                    "and the paired test against a baseline cannot reject below 6.")
        if any(isinstance(c, int | float) and c == 1 for c in counts):
            out += f" A metric defined on one {noun} only has no interval (a single value has no spread to measure)."
        return out
    if n < 2:
        return f" One {noun}: no interval (a single value has no spread to measure)."
    return (f" These intervals rest on {n} {noun}s: at so few, a nominal 95% interval covers the mean less often when "
            "the scores are skewed (84% at 3 lognormal scores, about 90% at 5-8; docs/metrics.md), and the paired test "
            "against a baseline cannot reject below 6.")


def _references_text(inputs: ReportInputs) -> str:
    neg = ", ".join(f"<b>{escape(r.label)}</b>" for r in inputs.negatives) or "none scored"
    pos = "; ".join(f"<b>{escape(r.name)}</b>: {escape(r.description)}" + (f" ({counted(len(r.replicates), 'split')})" if r.replicates else "")
                    for r in inputs.positives) or "none"
    alias = ""
    if any(r.aliases for r in inputs.negatives):
        alias = (" Baselines whose predictions are identical on every evaluated condition are shown once "
                 "(<i>a (= b)</i>).")
    return f'<p class="note">Negative references (baselines a model must beat): {neg}. Positive reference (what the data allow): {pos}.{alias}</p>'


def _summary_table(inputs: ReportInputs, names: Sequence[str]) -> str:
    rows = inputs.summary["metrics"]
    negs = inputs.negatives
    pos = inputs.positives[0] if inputs.positives else None
    band = bool(pos and (pos.replicates or (pos.name == "ceiling" and any(figures.split_band(rows.get(n)) for n in names))))
    others = inputs.positives[1:]
    head = ["metric", "direction", inputs.model_name, *[r.label for r in negs], "ceiling", *(["replicate band"] if band else []),
            *[f"{r.label} (positive)" for r in others], "normalised [95% CI]", "why undefined"]
    out = []
    shorts: set[str] = set()
    fewer: list[str] = []  # normalised scores taken over fewer conditions than the means shown (summary's normalised_rows)
    undefined: list[str] = []  # reference means that are NaN, with the reason
    for name in names:
        info, row = metric_info(name), rows[name]
        best = row.get("strongest_baseline")
        best_v = (row.get("baselines") or {}).get(best, math.nan) if best else math.nan
        m = row.get("model", math.nan)
        cls = _verdict_class(row, info.better(m, best_v), info.better(best_v, m))
        cells: list[Cell | str] = [name, info.direction, Cell(num(m), cls)]
        cells += [Cell(num((row.get("baselines") or {}).get(r.name, math.nan)), "num") for r in negs]
        cells.append(Cell(num(row.get("ceiling")), "num"))
        if band and pos is not None:
            _, lo, hi, what = figures.positive_band(pos, name, row)
            # only a range over splits belongs in this column (a bootstrap interval is another quantity)
            cells.append(Cell(f"{num(lo, 3)} – {num(hi, 3)}" if what.startswith("range over") else "–", "num"))
        cells += [Cell(num(r.table.mean(name) if name in r.table.values else math.nan), "num") for r in others]
        nan_why = next(iter(inputs.model.reasons.get(name, {}).values()), "")
        short, why = normalised_reason(row, info, nan_why)
        shorts.add(short)
        common = row.get("normalised_rows")
        score = num(row.get("normalised"), 3)
        ci = row.get("normalised_ci") or []
        if row.get("normalised_caution") and not math.isnan(row.get("normalised", math.nan)):
            score += " (no scale)"
            why = f"{why} {row['normalised_caution']}".strip()
        elif len(ci) == 2 and all(isinstance(v, float) and math.isfinite(v) for v in ci):
            score += f" [{num(ci[0], 3)}, {num(ci[1], 3)}]"
        if common and not math.isnan(row.get("normalised", math.nan)):
            score += " †"
            fewer.append(f"{escape(name)}: over {common.get('n')} of {counted(len(inputs.model.perts), 'condition')} (model {num(common.get('model'))}, "
                         f"{escape(str(best))} {num(common.get('baseline'))}, ceiling {num(common.get('ceiling'))}); left out: "
                         + escape(first_of(list((common.get("left_out") or {}).items()), 5, "; ", lambda pw: f"{pw[0]} ({pw[1]})")))
        cells += [Cell(score, "num"), Cell(why, "why")]
        out.append(cells)
        for r in negs:
            if math.isnan((row.get("baselines") or {}).get(r.name, math.nan)) and name in r.table.values:
                reason = (row.get("baseline_notes") or {}).get(r.name) or (why_undefined(r.table, name) if r.table.reasons.get(name) else "")
                undefined.append(f"{escape(name)}, {escape(r.label)}: undefined on every condition"
                                 + (f" ({escape(reason)})" if reason and reason != "undefined" else ""))
    background = "".join(f'<p class="note">{escape(BACKGROUND[k])}</p>' for k in BACKGROUND if k in shorts)
    if fewer:
        background += ('<p class="note">† The normalised score compares means over the same conditions: those where the model, '
                       "the best baseline and the ceiling are all defined, so it is not computed from the means in the row. "
                       "The means it used:</p><ul>" + "".join(f"<li>{f}</li>" for f in fewer) + "</ul>")
    level = float(next((rows[n].get("ci_level") for n in names if rows[n].get("ci_level")), 0.95))
    sentences, grouped = runner_up_notes({n: rows[n] for n in names}, level, row_noun(inputs.summary.get("contexts"), "condition"))
    unranked = [f"{escape(name)}: {escape(said)}" for name, said in sentences.items()]
    if unranked:
        background += ('<p class="note">The best baseline is the one with the best mean; on these metrics it is not told apart '
                       "from the next one (their paired interval over the conditions holds 0), so which of the two the colour "
                       "is against is a pick of the data's noise:</p><ul>" + "".join(f"<li>{u}</li>" for u in unranked) + "</ul>")
    background += "".join(f'<p class="note">{escape(said)}</p>' for said in grouped)
    if undefined:
        background += ('<p class="note">A reference\'s nan in the table:</p><ul>' + "".join(f"<li>{u}</li>" for u in undefined) + "</ul>")
    return ("<h3>All metrics</h3><p class=\"note\">Means over held-out conditions. Blue: the model beats every baseline "
            "(a paired Wilcoxon p < 0.05 over the conditions against each, on the model's side) and the best by more than the "
            "margin; vermillion: the best baseline beats the model (its Wilcoxon p < 0.05 after Holm's adjustment over the "
            "baselines, and more than the margin): summary.md's uncertainty table, claim p; uncoloured: no verdict either way (a larger mean "
            "alone is not evidence: two equally good predictions have the model's mean ahead on about half the metrics)."
            + _claims_note(rows, names) + "</p>" + table(head, out) + background)


def _verdict_class(row: dict[str, Any], model_ahead: bool, baseline_ahead: bool) -> str:
    """The class of the model's cell: ``num good`` where the paired verdict names the model, ``num bad`` the baseline, else
    ``num`` (a summary without verdicts: uncoloured, whichever mean is ahead)."""
    said = (row.get("vs_strongest_baseline") or {}).get("verdict")
    if said == "model" and model_ahead:
        return "num good"
    if said == "baseline" and baseline_ahead:
        return "num bad"
    return "num"


def _claims_note(rows: dict[str, Any], names: Sequence[str]) -> str:
    """`` k of n metrics name a winner; j after Holm's adjustment`` over the metrics of the table tested against their baseline."""
    tested = [(rows[n].get("vs_strongest_baseline") or {}) for n in names]
    tested = [t for t in tested if isinstance(t.get("holm_p"), float) and not math.isnan(t["holm_p"])]
    named = [t for t in tested if t.get("verdict") in ("model", "baseline")]
    if len(tested) < 2 or not named:
        return ""
    kept = sum(t["holm_p"] < 0.05 for t in named)
    return (f" Verdicts are per metric: {len(named)} of the {len(tested)} tested metrics {'names' if len(named) == 1 else 'name'} a winner, {kept} after Holm's "
            f"adjustment for the {len(tested)} tests (summary.md: Holm p).")


def _per_condition(inputs: ReportInputs) -> str:
    strength, how = condition_strength(inputs)
    order = sorted(inputs.model.perts, key=lambda p: (-(strength.get(p, math.nan) if not math.isnan(strength.get(p, math.nan)) else -math.inf), p))
    flags = flagged(inputs)
    names = per_condition_metrics(inputs)
    parts = [f'<p class="lead">Held-out conditions ordered by response strength, strongest on top ({escape(how)}). '
             "Each row: the model (blue dot), the best baseline on the mean (its marker) and the ceiling (green tick); "
             "the line between model and baseline is blue where the model is better, vermillion where it is worse.</p>"]
    if not names:
        return parts[0] + '<p class="empty">No per-condition metric with a better direction was computed.</p>'
    shown = shown_conditions(order)
    caption = "Per condition, sorted by response strength."
    if len(shown) < len(order):
        caption = (f"The {len(shown) // 2} strongest and the {len(shown) // 2} weakest of {len(order)} conditions, sorted by response "
                   "strength; the advantage plot and the table below take every condition, and metrics.csv holds every value.")
    parts.append(figure(figures.per_condition_figure(inputs, names, shown, strength, flags), caption, alt="per condition"))
    parts.append(figure(figures.advantage_figure(inputs, names, strength),
                        "The model's advantage over the best baseline against response strength, one dot per condition; "
                        "green: the ceiling's advantage over the same baseline (what could be gained there).", alt="advantage"))
    parts.append(_strata_table(inputs, names, strength))
    if flags:
        listed = sorted(flags.items())
        more = ""
        if len(listed) > 2 * ROW_LIMIT:
            more = (f'<p class="note">The first {2 * ROW_LIMIT} of {len(listed)} flagged conditions by name; the reasons of every '
                    "condition are in metrics.csv (<code>nan_reasons</code>) and under Notes.</p>")
            listed = listed[: 2 * ROW_LIMIT]
        parts.append("<h3>Flagged conditions</h3>" + table(["condition", "why"], [[Cell(p, "bad"), "; ".join(w)] for p, w in listed]) + more)
    return "".join(parts)


def _strata_table(inputs: ReportInputs, names: Sequence[str], strength: dict[str, float]) -> str:
    finite = {p: v for p, v in strength.items() if not math.isnan(v)}
    if len(finite) < 3:
        return ""
    st = strata(finite, 3)
    tied = tie_note(list(finite.values()), 3, "strength")
    idx = {p: i for i, p in enumerate(inputs.model.perts)}
    rows = []
    for s, label in enumerate(STRATUM_NAMES[3]):
        members = [p for p, k in st.items() if k == s]
        if not members:  # left empty by equal strengths at an edge (quantile_bins): said under the table
            continue
        cells: list[Cell | str] = [label, Cell(str(len(members)), "num")]
        for name in names:
            ref = figures._best_reference(inputs, name)
            if ref is None:
                cells.append("–")
                continue
            adv = [advantage(inputs.model.values[name][idx[p]], ref.table.values[name][idx[p]], metric_info(name).higher_is_better) for p in members]
            ok = [a for a in adv if not math.isnan(a)]
            wins, losses = sum(a > 0 for a in ok), sum(a < 0 for a in ok)
            ties = len(ok) - wins - losses  # a tie is no evidence either way: out of the sign test, as the sign test drops it
            m, _, _ = mean_ci(ok)
            cells.append(Cell(f"{wins}/{len(ok)}" + (f", {ties} tied" if ties else "") + f" (mean {num(m, 3)})",
                              _sign_class(wins, wins + losses)))
        rows.append(cells)
    head = ["difficulty stratum", "conditions", *[f"{n}: model better than {getattr(figures._best_reference(inputs, n), 'name', '–')}" for n in names]]
    return ("<h3>By difficulty</h3><p class=\"note\">Conditions split into thirds by response strength (at its 1/3 and "
            "2/3 quantiles, as summary.md's difficulty strata); per stratum, on how many "
            "conditions the model beats the best baseline (of those where both are defined), and its mean advantage (> 0: "
            "model better). Blue (vermillion): more (fewer) wins than losses by a two-sided sign test at p < 0.05 "
            "(scipy.stats.binomtest over the conditions that are not tied), per cell and not adjusted for the cells; "
            "uncoloured: not shown to differ from a coin toss (more than half of a few conditions often is one).</p>"
            + table(head, rows) + (f'<p class="note">{escape(tied[0].upper() + tied[1:])}.</p>' if tied else ""))


def _sign_class(wins: int, n: int) -> str:
    """``num good`` (``num bad``) where ``wins`` of ``n`` untied conditions (wins and losses; ties are left out, as the sign
    test leaves them out) are more (fewer) than half by a two-sided sign test at p < 0.05 (``scipy.stats.binomtest``), else
    ``num``: 2 of 3 or 6 of 10 is what a coin gives. Counting ties as losses painted two equally good predictions'
    discrete scores (tied on a third of the conditions) 'fewer than half' in 30% of strata of 20 conditions and 56% of
    50 (``tests/evaluation/test_verdict_honesty.py``; 2.2% and 2.8% with the ties left out)."""
    from scipy.stats import binomtest

    if n == 0 or wins * 2 == n or binomtest(wins, n, 0.5).pvalue >= 0.05:
        return "num"
    return "num good" if wins * 2 > n else "num bad"


def _distributions(inputs: ReportInputs) -> str:
    index = inputs.cell_index()
    if not index:
        return ('<p class="empty">The cells were not available when this report was written (pass the prediction and truth '
                "files, or keep them next to the evaluation folder) so this section is empty.</p>")
    strength, how = condition_strength(inputs)
    if not any(p in index for p in inputs.model.perts):
        return ('<p class="empty">The loaded cells name none of the evaluated conditions (e.g. cells pooled over contexts '
                "for an evaluation scored per context), so this section is empty.</p>")
    picks = cellfigs.pick_conditions({p: v for p, v in strength.items() if p in index})
    if not picks:
        return '<p class="empty">No condition has a finite response strength to choose from.</p>'
    first = next(iter(index.values()))[0]
    scale = "log-normalised expression" if first.cache.get("log1p", True) else "expression"
    return ('<p class="lead">The strongest, median and weakest responses. The embedding is a PCA fitted on the real cells '
            "(perturbed and control) only; generated cells are projected into it. Crosses: population means.</p>"
            + figure(cellfigs.embedding_figure(index, picks, inputs.model_name), f"Real vs generated vs control cells ({escape(how)}).",
                     alt="embedding")
            + figure(cellfigs.marginals_figure(index, picks, model_name=inputs.model_name, value_label=scale),
                     "Densities of the genes with the largest real response of each condition (Δ: real mean − control mean).",
                     alt="marginals"))


def _training(inputs: ReportInputs) -> str:
    run = inputs.run
    if run is None:
        return _no_training_story(inputs)
    parts = [f'<p class="lead">Run directory <code>{escape(str(run.path))}</code>.</p>' if run.path else ""]
    fig = training.training_figure(run.log)
    if fig is not None:
        parts.append(figure(fig, "Training loss (faint: every logged step; solid: smoothed), validation metrics and the schedule.",
                            alt="training curves"))
    elif run.path is None:
        parts.append('<p class="empty">The model was fitted, not trained (no training loop and no run directory), '
                     "so there are no training curves; its config and the time per stage follow.</p>")
    else:
        from distgen.train.run_files import imported_origin

        origin = imported_origin(run.manifest, run.path)  # distgen import: no training, the official file named instead
        parts.append(f'<p class="empty">{escape(origin[0][0].upper() + origin[0][1:])}, so there are no training curves.</p>' if origin
                     else '<p class="empty">No training log (metrics.csv) in the run directory.</p>')
    if run.config is not None and run.preset is not None:
        diff = training.config_diff(run.config, run.preset)
        what = f"preset <code>{escape(run.preset_name)}</code>" if run.preset_name else "the preset"
        parts.append(f"<h3>Config: differences from {what}</h3>")
        parts.append(table(["key", "preset", "this run"], [[Cell(k, html=f"<code>{escape(k)}</code>"), _v(a), _v(b)] for k, a, b in diff])
                     if diff else '<p class="note">None: the run used the preset as it is.</p>')
    elif run.config is not None:
        flat = training.flatten(run.config)
        parts.append("<details><summary>Config (no preset given to compare with)</summary>"
                     + table(["key", "value"], [[Cell(k, html=f"<code>{escape(k)}</code>"), _v(v)] for k, v in flat.items()]) + "</details>")
    if run.manifest:
        flat = training.flatten(run.manifest)
        parts.append("<h3>Run manifest</h3>" + table(["field", "value"], [[Cell(k, html=f"<code>{escape(k)}</code>"), _v(v)] for k, v in flat.items()]))
    if run.timings:
        # a ``<stage>_partial: true`` flag: the stage's seconds before a resume are not recorded (``timings.json``)
        parts.append("<h3>Time per stage</h3>" + table(["stage", "seconds"], [
            [k, "only the part since a resume (the checkpoint resumed from recorded no seconds)" if isinstance(v, bool) else Cell(num(v, 3), "num")]
            for k, v in run.timings.items()]))
    return "".join(parts)


def _no_training_story(inputs: ReportInputs) -> str:
    """The training section of an evaluation made from files alone: it says why there is nothing to show."""
    s = inputs.summary
    files = (f" (<code>{escape(str(s.get('pred')))}</code> against <code>{escape(str(s.get('real')))}</code>)"
             if s.get("pred") and s.get("real") else "")
    return ('<p class="empty">No training story: the predictions evaluated here' + files
            + " come without a distgen run directory, so there are no loss curves, validation metrics, config or manifest "
            "to show. Predictions made by <code>distgen run</code> (or a <code>pred.h5ad</code> next to its "
            "<code>train/</code> run directory) carry them here.</p>")


def figure_texts(inputs: ReportInputs, genes: bool = True) -> list[str]:
    """The labels the page's figures may draw: conditions, contexts, the model, references, metrics, the training
    curves' names (a run's) and (``genes``) the genes of the cells."""
    datas = [] if inputs.cells is None or not genes else [inputs.cells] if isinstance(inputs.cells, EvalData) else list(inputs.cells)
    refs = [t for r in inputs.references for t in (r.name, r.label)]
    curves = [t for title, keys in training.panels(inputs.run.log) for t in (title, *keys)] if inputs.run is not None else []
    return list(dict.fromkeys([*map(str, inputs.model.perts), *map(str, inputs.summary.get("contexts") or []), inputs.model_name,
                               *refs, *inputs.metric_names(), *curves, *(str(g) for d in datas for g in d.genes)]))


def _v(v: object) -> str:
    if v is None:
        return "–"
    if isinstance(v, list):
        return listing(v) if v else "[] (empty)"
    return str(v)


#: Section ids in page order (``render(sections=...)`` keeps a subset, e.g. only the headline for a figure).
SECTIONS = ("headline", "per-perturbation", "distributions", "training")


def render(inputs: ReportInputs, sections: tuple[str, ...] = SECTIONS) -> str:
    """The report as an HTML string (``sections``: which of ``SECTIONS`` to include)."""
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown report section(s) {unknown}.{did_you_mean(unknown, SECTIONS)} Choose from {', '.join(SECTIONS)}")  # a ValueError too
    s = inputs.summary
    lines = []
    if s.get("pred") or s.get("real"):
        lines.append(f"prediction <code>{escape(str(s.get('pred')))}</code> vs truth <code>{escape(str(s.get('real')))}</code>")
    contexts = [str(c) for c in s.get("contexts") or []]
    if len(contexts) > 1:  # rows are (condition, context) groups, each context scored on its own
        conditions = set(inputs.model.conditions())  # each row cut at its recorded context
        groups = (f"{counted(len(inputs.model.perts), 'held-out (condition, context) group')}: {counted(len(conditions), 'condition')} in "
                  f"{counted(len(contexts), 'context')} ({escape(listing(contexts))}), each context scored on its own")
    else:
        groups = counted(len(inputs.model.perts), "held-out condition")
    lines.append(f"{groups} · {counted(s.get('n_genes', '?'), 'gene')} · "
                 f"{counted(len(inputs.negatives), 'distinct baseline')} · written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    makers = {"headline": ("Headline", _headline), "per-perturbation": ("Per perturbation", _per_condition),
              "distributions": ("Distributions", _distributions), "training": ("Training", _training)}
    texts = figure_texts(inputs)
    with theme(texts):
        parts = [Section(key, makers[key][0], makers[key][1](inputs)) for key in SECTIONS if key in sections]
        shown = stand_ins(figure_texts(inputs, genes=False))  # gene names are written so too, in the few panels naming them
    if shown:
        lines.append(f"{counted(len(shown), 'label')} {'holds' if len(shown) == 1 else 'hold'} characters no installed font draws: the figures write those "
                     'characters as escapes (see <a href="#figure-labels">labels in figures</a>); tables give every label as written')
        parts.append(Section("figure-labels", "Labels in figures", labels_section(shown, "Gene names in the figures are written the same way.")))
    if sections == SECTIONS and (spread := spread_section(s)) is not None:  # several batches per group: docs/metrics.md
        parts.append(spread)
    notes = list(dict.fromkeys([*(str(n) for n in s.get("notes") or []), *(run_notes(inputs.run.manifest) if inputs.run else [])]))
    if notes and sections == SECTIONS:
        parts.append(Section("notes", "Notes", "<ul>" + "".join(f"<li>{escape(str(n))}</li>" for n in notes) + "</ul>"))
    return page(inputs.title, lines, parts)


def write_report(inputs: ReportInputs, path: str | Path, sections: tuple[str, ...] = SECTIONS) -> Path:
    """Write the self-contained report to ``path`` (e.g. ``eval/report.html``); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render(inputs, sections))
    return path
