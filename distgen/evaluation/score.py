"""``score``: a prediction against its truth, calibrated by references (baselines) and the ceiling.

Everything arrives as labelled populations (``Cells``): no model is built and no file is read here.
References are the baselines' predictions of the same groups from the same data (the pipeline
makes them: ``distgen.pipeline.references``); the ceiling is computed from the truth (disjoint
half-splits). With ``by_context`` a group is a (condition, context) pair and each context is scored
on its own, against that context's control cells, as cell-eval does per cell type.
"""

from __future__ import annotations

import platform
import re
import sys
import time
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from distgen.errors import InputDataError, UsageError, warn
from distgen.evaluation.aliases import alias_notes, distinct_references
from distgen.evaluation.calibration import INTERPOLATION_ALPHA, REPLICATES, interpolated_duplicate_data, reference_data, summarise
from distgen.evaluation.digest import summary_digests
from distgen.evaluation.io import (
    PAST_FLOAT32,
    align,
    check_controls,
    eval_data,
    generated_range_note,
    rows_of_context,
    spelled_pairs,
)
from distgen.evaluation.normalization import FileChecks
from distgen.evaluation.report import Report
from distgen.evaluation.spread import scored_spread, spread_mode
from distgen.evaluation.strata import response_strength, stratify
from distgen.evaluation.suite import (
    STAGE_LINES_MIN,
    MetricTable,
    check_row_contexts,
    context_rows,
    merge_tables,
    row_label,
    run_metrics,
)
from distgen.evaluation.uncertainty import CEILING_SPLITS, calibrate, ceiling_tables, mean_table, split_seed
from distgen.types import ALL, Cells
from distgen.wording import counted, first_of

#: ``summary.json["ceiling"]``: what each replicate is.
REPLICATE_TEXT = {
    "half-split": "disjoint half-splits of the real cells",
    "extrapolated": "disjoint halves and quarters of each perturbation's real cells, all controls on both sides, extrapolated to full depth",
}


#: Provenance shown at the top of a report (``distgen run`` and ``distgen evaluate`` give file paths).
SOURCE_KEYS = ("pred", "real", "pert_col", "control", "celltype_col")


def score(
    pred: Cells,
    truth: Cells,
    references: Mapping[str, Cells] | None = None,
    *,
    by_context: bool = True,
    ceiling: bool = True,
    seed: int = 0,
    metrics: Sequence[str] | None = None,
    progress: bool = False,
    notes: Sequence[str] = (),
    sources: Mapping[str, Any] | None = None,
    ceiling_splits: int = CEILING_SPLITS,
    interpolated: bool = False,
    generated: bool = False,
    replicate: str = "half-split",
    spread: str | bool = "auto",
) -> Report:
    """Score ``pred`` against ``truth`` next to each reference and the ceiling.

    Parameters
    ----------
    pred, truth
        Generated and real cells of the same groups, each with its own control cells (the controls
        the prediction was made from belong in both). ``pred``'s value scale is compared with ``truth``'s, once (each
        context of several on its own): a prediction on another scale is refused (``ScaleMismatchError``) unless
        ``generated``.
    references
        ``{name: Cells}``: baselines' predictions of the same groups, made the same way as ``pred``.
    by_context
        Score each context's groups against that context's controls (default); False pools contexts.
    ceiling
        Also score a disjoint half of the real cells against the other half, over ``ceiling_splits``
        seeded half-splits (``distgen.evaluation.uncertainty``): the ceiling table is their mean per
        perturbation, and ``summary.json`` reports each metric's band over splits, a bootstrap interval
        of the model's mean and a paired Wilcoxon test of the model against the strongest baseline.
    replicate
        Which replicate the ceiling is (``calibration.REPLICATES``): ``"half-split"`` (default; one half of the
        real cells against the other, each with its own controls, half depth) or ``"extrapolated"`` (halves and
        quarters of each perturbation's cells, both sides with all the controls, extrapolated to the truth's
        depth: a model that draws fresh cells of the true population scores about 1). ``summary.json["replicate"]``
        records it; the interpolated duplicate stays half-split.
    metrics
        Metric names (default ``distgen.evaluation.DEFAULT_METRICS``).
    interpolated
        Also score the interpolated duplicate (``calibration.interpolated_duplicate_data``, alpha
        ``INTERPOLATION_ALPHA``) over the same half-splits as the ceiling: a second positive reference,
        reported per metric as ``positive_references`` in ``summary.json`` (opt-in).
    generated
        ``pred`` was generated in log space by a model (``distgen run``, ``distgen.evaluate`` of ``distgen.predict``
        output on a ``Dataset``, or a file distgen wrote as a prediction, ``uns["distgen"]["kind"] == "pred"``):
        values beyond the log range are reported in a note as the model's divergence, not refused as a file on
        another scale.
    spread
        The spread scores across batches (``distgen.evaluation.spread``) of groups with several batches: ``"auto"`` (default)
        when their estimated work (``spread_work``) is within ``SPREAD_BUDGET``, else skipped with a note saying how to ask
        for them; ``"on"`` always; ``"off"`` never (``True``/``False`` read as on/off).
    notes
        Notes to carry into the report (pre-flight warnings, baselines not scored...).
    sources
        Provenance for the report header (``pred``, ``real``: what was scored; ``pert_col``, ``control``, ``celltype_col``:
        the column contexts were read from, which a page written again from the files reads them by).

    Returns
    -------
    Report
        Per-group tables of the model, each reference and the ceiling, and the summary; ``Report.write``
        puts ``metrics.csv``, ``calibration.csv``, ``summary.json``, ``summary.md`` and plots in a folder.
    """
    return score_checked(None, pred, truth, references, by_context=by_context, ceiling=ceiling, seed=seed, metrics=metrics,
                         progress=progress, notes=notes, sources=sources, ceiling_splits=ceiling_splits,
                         interpolated=interpolated, generated=generated, replicate=replicate, spread=spread)


def score_checked(
    checks: FileChecks | None,
    pred: Cells,
    truth: Cells,
    references: Mapping[str, Cells] | None = None,
    *,
    by_context: bool = True,
    ceiling: bool = True,
    seed: int = 0,
    metrics: Sequence[str] | None = None,
    progress: bool = False,
    notes: Sequence[str] = (),
    sources: Mapping[str, Any] | None = None,
    ceiling_splits: int = CEILING_SPLITS,
    interpolated: bool = False,
    generated: bool = False,
    replicate: str = "half-split",
    spread: str | bool = "auto",
) -> Report:
    """``score`` for the pipeline (``evaluate_files``, ``distgen.evaluate``), which compared the files already.

    Not exported: the public ``score`` passes None for ``checks``, so no argument of it skips a comparison. Every other
    parameter, and the result, are ``score``'s.

    Parameters
    ----------
    checks
        What ``normalization.check_files`` compared of the files these cells were read from (``FileChecks``). The
        comparison of ``pred``'s scale with ``truth``'s it made over the whole files (``FileChecks.pair``) is not made
        again for a pooled pair (one context); each context of several is still compared on its own (a context on
        another scale is refused naming it). None: nothing checked, the pair is compared here.
    """
    t0 = time.perf_counter()
    if replicate not in REPLICATES:
        raise ValueError(f"replicate must be one of {', '.join(REPLICATES)}, got {replicate!r}")
    spread = spread_mode(spread)
    if not ceiling:  # read by the ceiling only (ceiling_splits also by the interpolated duplicate): a comparison over them measures nothing
        from distgen.config import InertSettingWarning

        inert = [f"replicate={replicate}"] if replicate != "half-split" else []
        inert += [f"ceiling_splits={ceiling_splits}"] if ceiling_splits != CEILING_SPLITS and not interpolated else []
        if inert:
            warn(f"{' and '.join(inert)} {'has' if len(inert) == 1 else 'have'} no effect without the ceiling (evaluate.ceiling: "
                 "false, --no-ceiling): they choose how the ceiling is drawn; remove them or score the ceiling", InertSettingWarning)
    references = dict(references or {})
    reserved = [n for n in references if n in ("ceiling", "interpolated_duplicate") or re.fullmatch(r"ceiling_split_\d+", str(n))]
    if reserved:  # calibration.csv keys its tables by these names: the reference's table was overwritten there
        raise UsageError(f"reference {reserved[0]!r} has a name calibration.csv gives the ceiling's tables ('ceiling', "
                         "'ceiling_split_<i>', 'interpolated_duplicate'): rename the reference")
    pred, report_notes = align(pred, truth)
    refs = {}
    for name, ref in references.items():
        refs[name], ref_notes = align(ref, truth, f"reference {name!r}")
        report_notes += ref_notes
    refs, aliases = distinct_references(refs)  # coinciding baselines are scored and shown once
    report_notes += alias_notes(aliases)
    contexts = _contexts(pred, truth, by_context)
    many = len(contexts) > 1
    if many:  # controls of a context that are the truth's controls of another: the context labels are not the truth's
        _check_context_controls(pred, truth)
    if not by_context and (mixed := _pooled_mixtures(pred, truth)):
        warn(mixed)
        report_notes.append(mixed)
    say = _stage_lines(progress, pred, truth, t0)
    if many:  # rows "condition @ context": refused before any scoring when two could read alike
        check_row_contexts(contexts)
    model_tables: list[MetricTable] = []
    ceil_tables: list[list[MetricTable]] = []
    ref_tables: dict[str, list[MetricTable]] = {name: [] for name in refs}
    interp_tables: list[list[MetricTable]] = []
    datas = []
    non_finite: dict[str, list[str]] = {"pred": [], "real": []}  # groups with NaN/inf cells, said once on stderr too
    unpredicted: list[str] = []  # truth groups without (enough) predicted cells, said once on stderr too
    for ctx in contexts:
        def part(cells: Cells, c: str = ctx) -> Cells:  # the cells themselves when all are of c, a slice of them when grouped
            return rows_of_context(cells, c) if by_context and not bool((cells.contexts == c).all()) else cells

        truth_c, pred_c = part(truth), part(pred)
        for side, cells, fix in (("truth", truth_c, "add the control cells of that context to the truth"),
                                 ("prediction", pred_c, "write the controls it was generated from with it")):
            if not bool(cells.is_control.any()):  # the files' problem (exit 2): EvalData's own check said it as an internal error
                raise InputDataError(f"the {side} has no control cells of context {ctx!r}; each context is scored against its own "
                                     f"control cells: {fix}" + (", or score the contexts pooled (--pool-contexts; by_context=False)"
                                                                if many else ""))
        if many:
            check_controls(truth_c, "real", f" of context {ctx!r}")
            check_controls(pred_c, "pred", f" of context {ctx!r}")
        # a pooled pair that check_files compared (checks.pair) is not compared again: once per pair
        pair_checked = checks is not None and checks.pair
        data = eval_data(pred_c, truth_c, check_pred_scale=not generated and (many or not pair_checked), context=ctx if many else None)
        if generated and (note := generated_range_note(pred_c.X, truth_c.X)) is not None:
            report_notes.append(f"{ctx}: {note}" if many else note)
        label = (lambda p, c=ctx: row_label(p, c)) if many else (lambda p: p)
        for p, why in sorted(data.invalid.items()):
            report_notes.append(f"{label(data.perts[p])}: all metrics NaN ({why})")
            for side in non_finite:
                if why.endswith(f"{side} cell(s) contain NaN or inf values"):
                    non_finite[side].append(str(label(data.perts[p])))
            if why == "no pred cells for this perturbation" or (why.startswith("only ") and " pred cell(s)" in why):
                unpredicted.append(str(label(data.perts[p])))
        where = f" of context {ctx}" if many else ""
        say(f"the prediction{where}: {data.n_perts} groups x {len(data.genes)} genes")
        model_tables.append(context_rows(run_metrics(data, metrics, progress=progress), label, ctx if many else None))
        for i, (name, ref) in enumerate(refs.items()):
            say(f"baseline {name}{where} ({i + 1} of {len(refs)})")
            ref_tables[name].append(context_rows(run_metrics(reference_data(data, part(ref), truth_c), metrics), label, ctx if many else None))
        if ceiling:
            say(f"the ceiling{where} ({ceiling_splits} splits)")
            ceil_tables.append([context_rows(t, label, ctx if many else None) for t in ceiling_tables(data, metrics, seed, ceiling_splits, replicate)])
        if interpolated:
            say(f"the interpolated duplicate{where}")
            interp_tables.append([context_rows(run_metrics(interpolated_duplicate_data(data, split_seed(seed, i)), metrics), label, ctx if many else None)
                                  for i in range(ceiling_splits)])
        datas.append(data)
    for side, groups in non_finite.items():
        if groups:  # otherwise only a NaN count in summary.md: the means leave these groups out, which can flatter a model
            shown = first_of(groups, 5, enclosed=True)
            warn(f"the {'prediction' if side == 'pred' else 'truth'} holds NaN or inf values in {len(groups)} perturbation(s) "
                 f"({shown}): their metrics are NaN and left out of every mean (see the notes of the summary); {PAST_FLOAT32}")
    if unpredicted:  # warned, not only noted: the model's means leave these out while the baselines' keep them (hard ones flatter it)
        shown = first_of(unpredicted, 5, enclosed=True)
        warn(f"the prediction has no (or too few) cells of {len(unpredicted)} truth perturbation(s) ({shown}): their metrics are NaN "
             "and left out of the model's means, which the baselines' means include (the normalised scores and the paired tests "
             "use the rows both have); predict every perturbation of the truth, or subset the truth to those predicted")
    table = merge_tables(model_tables)
    base_tables = {name: merge_tables(ts) for name, ts in ref_tables.items()}
    splits = [merge_tables([per_ctx[i] for per_ctx in ceil_tables]) for i in range(ceiling_splits)] if ceiling else []
    ceil_table = mean_table(splits) if ceiling else None
    rows = summarise(table, base_tables, ceil_table)
    calibrate(rows, table, base_tables, splits, seed)
    _add_strata(rows, table, base_tables, ceil_table, [v for d in datas for v in response_strength(d)])
    positive = {"ceiling": "positive"} if ceiling else {}
    if interpolated:
        interp = mean_table([merge_tables([per_ctx[i] for per_ctx in interp_tables]) for i in range(ceiling_splits)])
        for name, row in rows.items():
            row["positive_references"] = {"interpolated_duplicate": interp.mean(name) if name in interp.values else float("nan")}
        positive["interpolated_duplicate"] = "positive"
    # several populations (batches: donors, plates) per held-out group: the spread of the model's, the baselines' and the
    # real split-half's populations (distgen.evaluation.spread); None (no key) when every group has one batch, when off, or
    # when auto found the work over its budget (then a note says so and how to ask for them)
    # by_context=False (--pool-contexts): each condition's populations are its batches with their contexts pooled, as the
    # metrics pool them (per context, a prediction without context labels had no population in any row)
    spread_sides = (pred, truth, refs) if by_context else (_pooled(pred), _pooled(truth), {k: _pooled(v) for k, v in refs.items()})
    spread_out, spread_note = scored_spread(*spread_sides, spread, seed=seed, progress=say)
    if spread_note is not None:
        report_notes.append(spread_note)
    src = {"pred": "<Cells>", "real": "<Cells>", "pert_col": None, "control": truth.control, "celltype_col": None, **dict(sources or {})}
    summary: dict[str, Any] = {
        **{k: src[k] for k in SOURCE_KEYS},
        "n_perturbations": len(table.perts),
        "n_genes": len(truth.genes),
        "baselines": list(base_tables),
        "baseline_aliases": aliases,
        "ceiling": (f"{REPLICATE_TEXT[replicate]} ({ceiling_splits} splits from seed {seed}, averaged)" if ceiling else None),
        "replicate": replicate if ceiling else None,  # which replicate the ceiling, the normalised score and the band are of
        "ceiling_splits": ceiling_splits if ceiling else 0,
        "seed": seed,  # the ceiling's half-splits and the bootstrap intervals
        "reference_roles": {**{b: "negative" for b in base_tables}, **positive},
        "interpolated_duplicate": (f"half-split duplicate moved {1 - INTERPOLATION_ALPHA:g} of the way to the non-control mean "
                                   f"({ceiling_splits} splits, averaged)") if interpolated else None,
        "metrics": rows,
        "notes": report_notes + list(notes),
        # each row's cells, for distgen compare and python -m distgen.report (distgen.evaluation.digest)
        **summary_digests(dict(zip(contexts, datas, strict=True)), row_label if many else (lambda p, c: p)),
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine()},
    }
    if many:
        summary["contexts"] = contexts
        # the rows are (condition, context) pairs: how many conditions they are of (summary.md's header)
        summary["n_conditions"] = len({str(p) for d in datas for p in d.perts})
    if spread_out is not None:
        summary["spread"] = spread_out
    from distgen.evaluation.metrics import metrics as registry

    if "mmd" in table.values:
        mmd: Any = registry.get("mmd")()  # the MMD metric carries its kernel
        summary["kernel"] = mmd.kernel.describe()
    return Report(table, base_tables, ceil_table, summary, datas, started=t0, positives={"interpolated_duplicate": interp} if interpolated else {},
                  ceiling_splits=splits)



def _pooled(cells: Cells) -> Cells:
    """``cells`` with every context label ``ALL`` (the spread scores of ``by_context=False``)."""
    return cells.relabelled(contexts=np.full(len(cells.conditions), ALL, dtype=object))


def _contexts(pred: Cells, truth: Cells, by_context: bool) -> list[str]:
    """The contexts to score one by one: the truth's perturbed contexts (one pooled ``"all"`` without ``by_context``)."""
    if not by_context:
        return [ALL]
    real = truth.conditions[~truth.is_control].tolist(), truth.contexts[~truth.is_control].tolist()
    ctx = sorted(set(real[1]))
    groups, known = set(zip(*real)), set(real[0])
    # a context the truth lacks, or a condition the truth holds in another context only: a group it lacks, named with its
    # context (a condition the truth lacks everywhere is left to eval_data, which says so of the condition)
    extra = sorted({(c, k) for c, k, ctrl in zip(pred.conditions.tolist(), pred.contexts.tolist(), pred.is_control.tolist())
                    if not ctrl and (c, k) not in groups and (k not in ctx or c in known)})
    if extra:  # the files' problem (exit 2), with the fix when the contexts are the truth's spelled another way
        raise InputDataError(f"the prediction has cells of {counted(len(extra), '(condition, context) group')} the truth lacks: "
                             f"{first_of(extra, 3, render=repr)}; "
                             "each context is scored on its own: " + (_context_spelling({k for _, k in extra}, ctx) or
                             "evaluate against a truth that contains them, or drop them from the prediction"))
    lost = sorted(set(ctx) - set(pred.contexts.tolist()))
    if lost:
        raise InputDataError(f"the prediction has no cells of {counted(len(lost), 'context')} of the truth: "
                             f"{first_of(lost, 10, render=repr)}; each context is "
                         "scored on its own, against its own control cells: predict every context of the truth (with its "
                         "control cells), or subset the truth to the contexts you predicted")
    return ctx




def _context_key(context: str) -> str:
    """A context as ``_context_spelling`` compares it: NFKC, trimmed, case-folded, a number as its value (``1.0`` is ``1``:
    a float column written where the truth has integers or text)."""
    key = unicodedata.normalize("NFKC", context).strip().casefold()
    try:
        number = float(key)
    except ValueError:
        return key
    return repr(number) if np.isfinite(number) else key


def _context_spelling(extra: set[str], truth: Sequence[str]) -> str | None:
    """The fix when some of the prediction's contexts are truth contexts in another letter case, Unicode form, number
    spelling (``1.0`` for ``1``) or with surrounding whitespace (``K562`` for ``k562``), or None; distgen never matches them
    itself."""
    pairs = spelled_pairs(sorted(extra), truth, _context_key)
    if not pairs:
        return None
    return (f"{len(pairs)} of its contexts are truth contexts spelled another way (e.g. {pairs[0][0]!r} for {pairs[0][1]!r}: "
            "letter case, whitespace, the Unicode form or a number written another way, as a float column writes 1 as 1.0); "
            "write the prediction's contexts as the truth writes them")


#: The most control cells of a prediction's context whose rows ``_check_context_controls`` looks up among the truth's.
CONTROL_ROWS_CHECKED = 64
#: The truth's control rows read at a time by ``_check_context_controls`` (its memory beyond the files: one such block).
_CONTROL_CHUNK = 4096


def _row_keys(x: Any) -> list[bytes]:
    """One key per row of ``x``: its float32 bytes (equal rows, equal keys)."""
    a = np.ascontiguousarray(torch.as_tensor(x).detach().cpu().to(torch.float32).numpy())
    return [r.tobytes() for r in a]


def _looked_up(pred: Cells, p_ctrl: np.ndarray) -> dict[str, list[bytes]]:
    """Per context of the prediction, the keys of up to ``CONTROL_ROWS_CHECKED`` of its control cells, constant rows left
    out (an all-zero cell, common in sparse data after HVG selection, is no one cell: it matches any other)."""
    p_ctx = np.asarray(pred.contexts)[p_ctrl].astype(str)
    out = {}
    for k in sorted(set(p_ctx.tolist())):
        rows = torch.as_tensor(p_ctrl[p_ctx == k][:CONTROL_ROWS_CHECKED])
        x = pred.X[rows]
        varied = (x.amax(dim=1) > x.amin(dim=1)).cpu().numpy() if x.shape[1] else np.zeros(len(rows), dtype=bool)
        out[k] = [key for key, v in zip(_row_keys(x), varied.tolist(), strict=True) if v]
    return out


def _check_context_controls(pred: Cells, truth: Cells) -> None:
    """Refuse a prediction whose control cells of a context are the truth's control cells of another context and none of
    its own (``InputDataError``): its context labels are not the truth's (a categorical written against another order of
    its categories), and every delta of those contexts would be taken from another cell type's controls. Predictions carry
    the truth's controls (cell-eval's layout, ``distgen predict``), so the rows are compared exactly; a prediction whose
    controls are other cells is not judged here.

    Only rows that name one cell count: a row constant over the genes (all zero) or held by more than one of the truth's
    control cells is left out, and at least half of a context's rows looked up must be the truth's: one all-zero control
    of a prediction with controls of its own does not refuse the file, and all-zero cells in the truth's contexts do not
    hide swapped labels."""
    t_ctrl = np.flatnonzero(np.asarray(truth.is_control))
    p_ctrl = np.flatnonzero(np.asarray(pred.is_control))
    if not t_ctrl.size or not p_ctrl.size:
        return
    looked = _looked_up(pred, p_ctrl)
    wanted = {key for keys in looked.values() for key in keys}
    where: dict[bytes, list[str]] = {}  # only the rows looked up: the truth's controls are read a block at a time
    for start in range(0, t_ctrl.size, _CONTROL_CHUNK):
        idx = t_ctrl[start:start + _CONTROL_CHUNK]
        for key, k in zip(_row_keys(truth.X[torch.as_tensor(idx)]), truth.contexts[idx].tolist(), strict=True):
            if key in wanted:
                where.setdefault(key, []).append(str(k))
    for k, keys in looked.items():
        found = [where[key][0] for key in keys if len(where.get(key, ())) == 1]
        homes = set(found)
        if keys and 2 * len(found) >= len(keys) and k not in homes and len(homes) == 1:
            other = next(iter(homes))
            raise InputDataError(
                f"the prediction's control cells of context {k!r} are the truth's control cells of context {other!r} "
                f"({len(found)} of the {len(keys)} looked up, none of those of context {k!r}): the prediction's context labels are not "
                "the truth's (a categorical column written against another order of its categories?), and each context is "
                "scored against its own controls; write each cell's context as the truth writes it and evaluate again")


def _pooled_mixtures(pred: Cells, truth: Cells) -> str | None:
    """With contexts pooled, a note naming the conditions whose cells the prediction spreads over the contexts in other
    proportions than the truth (more than 10 percentage points in all), or None (also when the prediction names contexts
    the truth lacks: pooled, its labels need not be the truth's, and a share of ``b_cells`` says nothing of ``B``): a pooled score then compares two mixtures,
    and a prediction right in every context scores as wrong (pearson_delta 0.99 per context, 0.01 pooled, with the truth's
    cells 94% of one cell type and the prediction's 50%)."""
    if len(set(truth.contexts.tolist())) < 2 or len(set(pred.contexts.tolist())) < 2:
        return None
    if not set(pred.contexts.tolist()) <= set(truth.contexts.tolist()):  # labels of its own (b_cells for B): not comparable
        return None
    def shares(cells: Cells, cond: str) -> dict[str, float]:
        ks = np.asarray(cells.contexts)[np.asarray(cells.conditions) == cond].astype(str)
        if not ks.size:
            return {}
        names, counts = np.unique(ks, return_counts=True)
        return dict(zip(names.tolist(), (counts / counts.sum()).tolist(), strict=True))

    off = []
    for cond in sorted(set(truth.conditions.tolist())):
        t, p = shares(truth, cond), shares(pred, cond)
        if not p:
            continue
        gap = 0.5 * sum(abs(t.get(k, 0.0) - p.get(k, 0.0)) for k in set(t) | set(p))
        if gap > 0.1:
            off.append((gap, cond, t, p))
    if not off:
        return None
    off.sort(key=lambda o: (-o[0], o[1]))
    _, cond, t, p = off[0]

    def said(d: dict[str, float]) -> str:
        return ", ".join(f"{v:.0%} {k}" for k, v in sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:4])

    return (f"contexts pooled (--pool-contexts, by_context=False) in other proportions than the truth's for {len(off)} "
            f"condition(s): {cond!r} is {said(t)} of the truth's cells and {said(p)} of the prediction's, so its pooled scores "
            "compare two mixtures (a prediction right in every context scores as wrong); score each context on its own "
            "(leave out --pool-contexts), or predict each context's cells in the truth's proportions")


def _add_strata(rows: dict[str, dict[str, Any]], table: MetricTable, bases: Mapping[str, MetricTable],
                ceil: MetricTable | None, strength: list[float]) -> None:
    """Each metric's difficulty strata (``distgen.evaluation.strata``) against its strongest non-control baseline."""
    if len(strength) != len(table.perts):
        return
    for name, row in rows.items():
        if row.get("diagnostic"):  # no better direction: no strongest baseline, no saturation
            continue
        hib = row["higher_is_better"]
        finite = {b: v for b, v in row["baselines"].items() if b != "control" and v == v}
        if not finite:
            continue
        best = (max if hib else min)(finite, key=finite.__getitem__)
        control = bases["control"].values.get(name) if "control" in bases else None
        ceiling = ceil.values.get(name) if ceil is not None else None
        row["strata"] = {"baseline": best, **stratify(table.values[name], bases[best].values[name], control, ceiling, strength,
                                                          higher_is_better=hib)}


__all__ = ["score"]


def _stage_lines(progress: bool, pred: Cells, truth: Cells, t0: float) -> Any:
    """``say(what)``: one line on stderr per scoring stage, with the seconds so far; silent without ``progress`` or below
    ``STAGE_LINES_MIN`` values (a small evaluation is over before a line would help)."""
    size = sum(int(c.X.shape[0]) * int(c.X.shape[1]) for c in (pred, truth))
    if not progress or size < STAGE_LINES_MIN:
        return lambda what: None

    def say(what: str) -> None:
        print(f"scoring {what} ({time.perf_counter() - t0:.0f} s so far)", file=sys.stderr, flush=True)

    return say
