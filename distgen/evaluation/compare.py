"""``distgen compare RUN_A RUN_B``: two evaluations paired on the perturbations they share.

An evaluation is a folder written by ``distgen evaluate`` (``metrics.csv`` + ``summary.json``) or
by ``distgen run`` (its ``eval/`` subfolder). Per metric both evaluated, on the perturbations (rows
of ``metrics.csv``: ``condition`` or ``condition @ context``, paired by that label, never by position)
where both values are defined: the means of A and B over those rows, the paired mean difference
``A - B`` with its studentized bootstrap interval, the two-sided Wilcoxon signed-rank p-value (per metric,
``distgen.evaluation.uncertainty.paired_test``; ``holm_p``: adjusted for the number of metrics tested, and a note counting
the winners that keep p < ``1 - level`` after it) and a verdict (``uncertainty.verdict``):
a winner only where the test rejects at ``1 - level`` for the side of the mean difference AND that exceeds the metric's margin
(the split-half replicate's spread of the metric, ``summary.json``'s ``ceiling_band.std``; a margin
given with ``margins``; never below the numerical tolerance), ``negligible`` where the difference is
shown to lie within the margin (its interval inside ``+-margin``), else ``inconclusive`` (with a note where the difference
is significant and its estimate, not its interval, is within the margin).
A metric of one value for the whole evaluation (``MetricCapabilities.per_perturbation=False``),
repeated on every row, is compared once: two numbers and their difference, no interval, no test.

Two evaluations are compared only when their rows mean the same thing: the same metric
definitions (profile: the default evaluation is the ``distgen`` profile), the same genes, and on
every shared row the same number of real cells (the same truth); otherwise ``MismatchedEvaluations``
(exit 2) says what differs. Metrics or perturbations only one side has are left out and counted; then a metric that measures each
perturbation against the others of its panel (discrimination scores, correlations across perturbations,
one value over all of them) gets no verdict: its values differ with the panel alone.
"""

from __future__ import annotations

import bisect
import csv
import json
import math
from pathlib import Path
from typing import Any

from distgen import markdown as md
from distgen.errors import UsageError, warn
from distgen.evaluation.digest import PRED_DIGESTS, TRUTH_DIGESTS
from distgen.evaluation.intervals import LEVEL, N_BOOT, holm
from distgen.evaluation.io import PERFECT_WORDS
from distgen.evaluation.report import (
    FINGERPRINT_TOLERANCE,
    ROW_FINGERPRINTS,
    ROW_KEYS,
    fmt_value,
    row_fingerprint,
    row_key,
    same_fingerprint,
)
from distgen.evaluation.suite import ROW_SEPARATOR
from distgen.evaluation.uncertainty import magnitude, margin, paired_test, small_unshown, verdict
from distgen.types.layout import form_hint, form_pairs
from distgen.wording import counted, first_of, listing

#: Non-metric columns of ``metrics.csv``.
INFO_COLUMNS = ("perturbation", "nan_reasons", "n_cells_real", "n_cells_pred", "context")
#: The profile of an evaluation written without ``--profile``: the same metric definitions as ``--profile distgen``.
DEFAULT_PROFILE = "distgen"


class MismatchedEvaluations(UsageError, ValueError):
    """Two evaluations whose rows cannot be paired: other metric definitions, other genes, another truth (exit 2)."""


def evaluation_folder(path: str | Path) -> Path:
    """The folder holding an evaluation's ``metrics.csv`` and ``summary.json``: ``path`` or its ``eval/``."""
    p = Path(path)
    for folder in (p / "eval", p):
        if (folder / "metrics.csv").is_file() and (folder / "summary.json").is_file():
            return folder
    if (p / "manifest.json").is_file() and (p / "checkpoints").is_dir():  # a run's train/: its metrics.csv is the loss log
        fix = (f"pass the run folder ({p.parent}) or its eval/" if (p.parent / "eval" / "metrics.csv").is_file() else
               f"evaluate it first (distgen predict {p} --out pred.h5ad --real real.h5ad, then distgen evaluate --pred pred.h5ad "
               "--real real.h5ad --out EVAL) and pass EVAL")
        raise FileNotFoundError(f"{path} is a training folder (checkpoints, manifest.json; its metrics.csv logs the training "
                                f"loss), not an evaluation; {fix}")
    for folder in (p / "eval", p):  # an evaluation killed before its summary.json (written last): say so, not "none"
        if (folder / ".distgen-evaluation").is_file() or (folder / "metrics.csv").is_file():
            raise FileNotFoundError(f"{folder} holds an evaluation that did not finish (no summary.json, which is written last: "
                                    "it was stopped or failed); run the evaluation again into it (no --overwrite needed)")
    if (p / "sweep.yaml").is_file() and (p / "runs").is_dir():  # was "pass a folder written by distgen evaluate"
        runs = sorted(q for q in (p / "runs").iterdir() if (q / "eval" / "summary.json").is_file())
        raise FileNotFoundError(
            f"{path} is a sweep folder: its summary.md and report.html already compare its variants (paired over seeds, Holm "
            "over the table); to compare two of its runs, pass their folders"
            + (f" ({first_of(runs, 2, enclosed=True)})" if runs else ""))
    raise FileNotFoundError(f"{path} holds no evaluation (metrics.csv and summary.json, or eval/ with them); "
                            "pass a folder written by distgen evaluate --out or distgen run")


def load_evaluation(path: str | Path) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """``({metric: {perturbation: value}}, summary)`` of an evaluation folder (``summary["row_contexts"]``: each row's context)."""
    folder = evaluation_folder(path)
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:  # a damaged or hand-edited file: name it, not only the parser's words
        summary, why = None, f"not valid JSON ({e})"
    else:
        why = f"a JSON {type(summary).__name__}, not an object"
    if not isinstance(summary, dict):
        raise MismatchedEvaluations(f"{folder / 'summary.json'} is {why}: not an evaluation's summary; write the evaluation "
                                    "again (distgen evaluate --out)")
    try:
        with (folder / "metrics.csv").open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise MismatchedEvaluations(f"{folder / 'metrics.csv'} is not a CSV table ({e}); write the evaluation again") from None
    if rows and "perturbation" not in rows[0]:
        raise MismatchedEvaluations(f"{folder / 'metrics.csv'} has no 'perturbation' column (columns: {first_of(list(rows[0]), 8, render=repr, enclosed=True)}): "
                                    "not a metrics table of distgen evaluate; write the evaluation again")
    names = [c for c in (rows[0].keys() if rows else []) if c not in INFO_COLUMNS]
    listed = summary.get("metrics")
    if isinstance(listed, dict):
        names = [c for c in names if c in listed]
    labels = [row["perturbation"] for row in rows]
    if len(set(labels)) != len(labels):
        twice = sorted({x for x in labels if labels.count(x) > 1})
        raise MismatchedEvaluations(f"{folder / 'metrics.csv'} has {counted(len(twice), 'perturbation label')} on more than one row "
                                    f"({first_of(twice, 5, render=repr, enclosed=True)}); a row must be one perturbation (or condition @ context) to be paired")
    values: dict[str, dict[str, float]] = {name: {} for name in names}
    text: dict[str, list[tuple[str, str]]] = {}  # column -> [(row label, value)] that are not numbers
    for row in rows:
        for name in names:
            raw = row.get(name, "")
            try:
                values[name][row["perturbation"]] = float(raw) if raw not in ("", None) else math.nan
            except ValueError:
                text.setdefault(name, []).append((row["perturbation"], raw))
    for name, cells in text.items():
        if len(cells) < len(rows):  # numbers on other rows: a value edited by hand, not a text column (it crashed: 'error: mse')
            label, raw = cells[0]
            raise MismatchedEvaluations(
                f"{folder / 'metrics.csv'} holds {raw!r} in column {name!r} on the row {label!r} ({counted(len(cells), 'row')} "
                f"of {len(rows)} not a number): a metric value must be a number, or empty for NaN; write the evaluation again "
                "(distgen evaluate --out) or correct the value")
        values.pop(name, None)  # not a numeric column
    summary["rows_edited"] = refuse_moved_rows(folder / "metrics.csv", rows, summary)
    summary["columns_removed"] = removed_columns(rows, summary)
    summary["row_contexts"] = {row["perturbation"]: row.get("context") or "" for row in rows}
    summary["row_cells_real"] = {row["perturbation"]: row.get("n_cells_real") or "" for row in rows}
    return current_rows({k: v for k, v in values.items() if v}, summary)


def current_rows(values: dict[str, dict[str, float]], summary: dict[str, Any]) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """``load_evaluation``'s table and summary with each row label as this distgen writes it (``conditions.current_label``):
    an evaluation of an earlier distgen labels a float32 dose's row ``dexa@0.30000001192092896``, now ``dexa@0.3``, so its
    rows pair with a new evaluation's. Read after the row checks (``row_fingerprints`` hold the labels as written); the
    digests are of the cells, not of the labels, so only their keys change."""
    from distgen.types.doses import current_labels

    keys = ("row_contexts", "row_cells_real", TRUTH_DIGESTS, PRED_DIGESTS)
    labels = {k for v in values.values() for k in v} | {str(k) for key in keys if isinstance(summary.get(key), dict) for k in summary[key]}
    now = current_labels(labels)  # unchanged where two rows would become one (two populations named so by the user)
    if all(k == v for k, v in now.items()):
        return values, summary
    out = {name: {now.get(k, k): x for k, x in v.items()} for name, v in values.items()}
    summary = dict(summary)
    for key in keys:
        if isinstance(summary.get(key), dict):
            summary[key] = {now.get(str(k), str(k)): x for k, x in summary[key].items()}
    return out, summary



def refuse_moved_rows(path: str | Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    """The labels of ``metrics.csv`` rows (``path``, read as ``rows``) edited after the evaluation (``row_changes``);
    ``MismatchedEvaluations`` where a row holds the values recorded for another label. ``distgen compare``, a sweep's
    aggregation and ``python -m distgen.report`` read a table through this one check."""
    moved, edited = row_changes(rows, summary)
    if moved:  # paired by label, every moved value would be compared with another condition's: silent before
        shown = listing(f"{label!r} holds those of {other!r}" for label, other in moved[:3])
        raise MismatchedEvaluations(
            f"{path}: {counted(len(moved), 'row')} of {len(rows)} hold the values the evaluation wrote for another "
            f"label ({shown}; summary.json row_fingerprints): its perturbation column was sorted or edited apart from the values "
            "(a spreadsheet sort of one column), so a row's values are not its label's; write the evaluation again "
            "(distgen evaluate --out), or restore the file")
    return edited


def changed_table_note(where: str, values: dict[str, dict[str, float]], summary: dict[str, Any],
                       reader: str = "this comparison") -> str | None:
    """What a ``metrics.csv`` (named by ``where``, e.g. ``"A's metrics.csv (FOLDER)"``) changed since its evaluation wrote it:
    metrics whose column no longer gives the recorded mean (``edited_table``) and rows whose numbers are not those recorded
    (``summary["rows_edited"]``, from ``refuse_moved_rows``), and the columns its fingerprints cover that it no longer has
    (``summary["columns_removed"]``, ``removed_columns``); None when none. ``reader`` names what reads the table."""
    edited = edited_table(values, summary)
    rows = summary.get("rows_edited") or []
    gone = summary.get("columns_removed") or []
    on_rows = "; ".join(part for part in (
        f"{counted(len(rows), 'row')} ({listing([repr(r) for r in rows[:3]])}) hold other values than the evaluation wrote "
        "(summary.json row_fingerprints)" if rows else "",
        f"{counted(len(gone), 'column')} removed ({listing([repr(c) for c in gone[:3]])})" if gone else "") if part)
    if edited:  # a column swapped, a value or row edited by hand: compared without a word before
        return (f"{where} does not give the means its summary.json records for "
                f"{counted(len(edited), 'metric')} ({listing(edited[:3], '; ')})" + (f", and {on_rows}" if on_rows else "")
                + f": the table was changed after the evaluation (rows removed, values edited, columns swapped) or is "
                f"another evaluation's; {reader} reads the table as it is now; write the evaluation again to use "
                "what it scored")
    if rows or gone:  # values exchanged within a column keep its mean: the row digests see them
        return (f"{where}: {on_rows}: values were edited after the evaluation (or exchanged between rows"
                + (", columns removed" if gone else "") + f"); {reader} reads the table as it is now; write the evaluation "
                "again to use what it scored")
    return None


def check_table(path: str | Path, rows: list[dict[str, Any]], summary: dict[str, Any] | None, where: str,
                reader: str) -> str | None:
    """``refuse_moved_rows`` and ``changed_table_note`` of a ``metrics.csv`` read elsewhere than by ``load_evaluation`` (a
    sweep's runs, a report's page): ``rows`` as text or numbers; the metrics are those ``summary["metrics"]`` lists.
    Nothing is checked without a summary (an evaluation that recorded none)."""
    if not isinstance(summary, dict) or not rows:
        return None
    summary = {**summary, "rows_edited": refuse_moved_rows(path, rows, summary),
               "columns_removed": removed_columns(rows, summary)}
    listed = summary.get("metrics")
    names = [c for c in rows[0] if c not in INFO_COLUMNS and isinstance(listed, dict) and c in listed]
    values = {name: {str(row["perturbation"]): _as_number(row.get(name)) for row in rows} for name in names}
    return changed_table_note(where, values, summary, reader)


def _as_number(v: Any) -> float:
    try:
        return float(v) if v not in ("", None) else math.nan
    except (TypeError, ValueError):
        return math.nan

def removed_columns(rows: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    """The columns ``summary.json``'s ``ROW_FINGERPRINTS`` cover that the table (``rows``) no longer has, as recorded."""
    found = summary.get(ROW_FINGERPRINTS)
    columns = found.get("columns") if isinstance(found, dict) else None
    return [str(c) for c in columns if c not in rows[0]] if isinstance(columns, list) and rows else []


def row_changes(rows: list[dict[str, str]], summary: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """``(moved, edited)``: the rows of ``metrics.csv`` whose numbers are not those ``summary.json`` records for their label
    (``ROW_FINGERPRINTS``): ``moved`` ``[(label, other label)]`` where they are another label's, ``edited`` the other labels.
    A label is the row's ``row_key`` over the key columns the record names (``"keys"``: a sweep's ``results.csv`` is keyed
    by variant, seed and perturbation), else its ``perturbation``.

    Nothing for an evaluation from before row fingerprints. A column they were taken over that the table no longer has
    (``removed_columns``) is read as empty: a text column adds nothing to a fingerprint, a number column removed leaves
    its rows unequal to theirs (before, any removed column turned the check off, and values exchanged between two rows of
    another column compared silently). A row under a label the evaluation did not write is left to the pairing. One pass
    over the table, a sum per row."""
    found = summary.get(ROW_FINGERPRINTS)
    recorded = found.get("rows") if isinstance(found, dict) else None
    columns = found.get("columns") if isinstance(found, dict) else None
    if not isinstance(recorded, dict) or not isinstance(columns, list) or not rows:
        return [], []
    columns = [str(c) for c in columns]
    named = found.get("keys") if isinstance(found, dict) else None
    keys = [str(k) for k in named] if isinstance(named, list) else list(ROW_KEYS)
    if any(k not in rows[0] for k in keys):
        return [], []
    form = str((found or {}).get("form") or "linear")  # records from before FINGERPRINT_FORM: the linear sums
    by_value = sorted((float(v[0]), str(k)) for k, v in recorded.items()
                      if isinstance(v, list) and len(v) == 2 and isinstance(v[0], int | float))
    values = [v for v, _ in by_value]
    moved, edited = [], []
    for row in rows:
        label = row_key(row, keys)
        if label not in recorded:
            continue
        mine = row_fingerprint(row, columns, form)
        if same_fingerprint(mine, recorded[label]):
            continue
        width = FINGERPRINT_TOLERANCE * mine[2] + 1e-300  # the recorded rows within the tolerance of this one (FINGERPRINT_TOLERANCE)
        near = by_value[bisect.bisect_left(values, mine[0] - width):bisect.bisect_right(values, mine[0] + width)]
        others = [k for _, k in near if k != label and same_fingerprint(mine, recorded[k])]
        if others:
            moved.append((label, others[0]))
        else:
            edited.append(label)
    return moved, edited


def profile_of(summary: dict[str, Any]) -> str:
    """The metric profile an evaluation was scored under (``DEFAULT_PROFILE`` without ``--profile``)."""
    return str(summary.get("profile") or DEFAULT_PROFILE)


def registered_metric(column: str, profile: str) -> str:
    """The registered metric behind a ``metrics.csv`` column of ``profile`` (``cell-eval-0.7.6`` reports upstream names)."""
    from distgen.evaluation.profiles import PROFILES

    prof = PROFILES.get(profile)
    return prof.columns.get(column, column) if prof is not None else column


def _capability(name: str, field: str, default: Any, profile: str = DEFAULT_PROFILE) -> Any:
    try:
        from distgen.evaluation.metrics import metrics

        return getattr(metrics.get(registered_metric(name, profile)).capabilities, field, default)
    except (KeyError, LookupError):
        return default


def _higher_is_better(name: str, *summaries: dict[str, Any]) -> bool | None:
    """The metric's direction: None for a diagnostic (a count, a real-data property: no better value) or an unknown one."""
    profile = profile_of(summaries[0]) if summaries else DEFAULT_PROFILE
    rows = [(s.get("metrics") or {}).get(name) for s in summaries]
    if _capability(name, "diagnostic", False, profile) or any(isinstance(r, dict) and r.get("diagnostic") for r in rows):
        return None
    for row in rows:
        if isinstance(row, dict) and "higher_is_better" in row:
            return bool(row["higher_is_better"])
    hib = _capability(name, "higher_is_better", None, profile)
    return None if hib is None else bool(hib)


def _noise(name: str, *summaries: dict[str, Any]) -> float:
    """The larger of the two evaluations' split-half replicate spreads of ``name`` (``ceiling_band.std``; NaN without)."""
    spreads = []
    for s in summaries:
        row = (s.get("metrics") or {}).get(name)
        std = ((row.get("ceiling_band") or {}).get("std") if isinstance(row, dict) else None)
        if isinstance(std, int | float) and math.isfinite(std):
            spreads.append(float(std))
    return max(spreads) if spreads else math.nan


def scored_apart(sa: dict[str, Any], sb: dict[str, Any]) -> tuple[str, Any, Any] | None:
    """The first of ``profile``, ``no_target_genes`` (as bool), ``n_genes`` that two evaluation summaries (or
    ``aggregate.truth_record``s) record differently, with A's and B's values; None when they agree or one does not say.
    ``check_pairable`` refuses such a pair; a sweep's ``truth_mismatch`` gives the variant no side."""
    pa, pb = profile_of(sa), profile_of(sb)
    if pa != pb:
        return "profile", pa, pb
    ta, tb = sa.get("no_target_genes"), sb.get("no_target_genes")
    if ta is not None and tb is not None and bool(ta) != bool(tb):
        return "no_target_genes", bool(ta), bool(tb)
    ga, gb = sa.get("n_genes"), sb.get("n_genes")
    if ga is not None and gb is not None and ga != gb:
        return "n_genes", ga, gb
    return None


def other_truth_cells(da: dict[str, str], db: dict[str, str], shared: list[str]) -> list[str]:
    """The ``shared`` rows whose recorded truth digests (``recorded_truth_digests``) both sides have and differ: other real
    cells under one label."""
    return [p for p in shared if da.get(p) and db.get(p) and da[p] != db[p]]


def check_pairable(run_a: str | Path, run_b: str | Path, sa: dict[str, Any], sb: dict[str, Any], shared: list[str]) -> list[str]:
    """Refuse two evaluations whose shared rows are not the same observations (``MismatchedEvaluations``); notes otherwise."""
    apart = scored_apart(sa, sb)
    if apart is not None and apart[0] == "profile":
        raise MismatchedEvaluations(
            f"{run_a} was scored under profile {apart[1]!r} and {run_b} under {apart[2]!r}: a metric of the same name is defined "
            "differently there (value scale, preset conventions), so their rows are not paired observations; evaluate both "
            "with the same --profile (or both without)")
    if apart is not None and apart[0] == "no_target_genes":
        yes, no = (run_a, run_b) if apart[1] else (run_b, run_a)
        raise MismatchedEvaluations(
            f"{yes} was scored with --no-target-genes and {no} without: one keeps each perturbation's own gene in its scores "
            "and the other leaves it out, so a metric of the same name is defined differently; evaluate both the same way")
    if apart is not None:
        raise MismatchedEvaluations(f"{run_a} was scored on {apart[1]} genes and {run_b} on {apart[2]}: not the same truth; "
                                    "compare evaluations of the same truth file")
    ctrl_a, ctrl_b = sa.get("control"), sb.get("control")
    if ctrl_a and ctrl_b and ctrl_a != ctrl_b:
        conds = {run: {k.removesuffix(f"{ROW_SEPARATOR}{ctx}") if ctx else k for k, ctx in s["row_contexts"].items()}
                 for run, s in ((run_a, sa), (run_b, sb))}  # each row's condition: its label less ' @ <context>'
        scored = [(c, run) for c, run in ((ctrl_a, run_b), (ctrl_b, run_a)) if c in conds[run]]
        if scored:  # the same labels measured against other control cells: their deltas are not paired observations
            label, where = scored[0]
            raise MismatchedEvaluations(
                f"{run_a} took {ctrl_a!r} as its control cells and {run_b} {ctrl_b!r}, which {where} scores as a perturbation "
                f"({label!r}): every delta of a shared perturbation is against other control cells, so its rows are not paired "
                "observations; evaluate both with the same --control")
    ca, cb = sa["row_cells_real"], sb["row_cells_real"]
    differ = [p for p in shared if ca.get(p) and cb.get(p) and ca[p] != cb[p]]
    if differ:
        show = listing(f"{p} ({ca[p]} vs {cb[p]})" for p in differ[:5])
        raise MismatchedEvaluations(
            f"{len(differ)} shared perturbation(s) were scored against different numbers of real cells in {run_a} and {run_b} "
            f"(n_cells_real: {show}): not the same truth, so a row of one is not paired with the row of the other; compare "
            "evaluations of the same truth")
    da, db = (recorded_truth_digests(s) for s in (sa, sb))
    other = other_truth_cells(da, db, shared)
    if other:  # same labels and cell counts, other cells (another draw, a rewritten file): not paired observations
        raise MismatchedEvaluations(
            f"{len(other)} of {len(shared)} shared perturbation(s) were scored on other real cells in {run_a} than in {run_b} "
            f"(e.g. {listing(other[:5])}: the cells or the control cells differ, though the numbers of cells may agree): not "
            "the same truth, so a row of one is not paired with the row of the other; compare evaluations of the same truth")
    notes = []
    if sa.get("real") and sb.get("real") and sa["real"] != sb["real"]:
        notes.append(f"the truths are named differently ({sa['real']} vs {sb['real']}); " + (
            "their shared rows were scored on the same real cells" if da and db else
            "their shared rows have the same numbers of real cells (an evaluation from before truth digests: the cells "
            "themselves are not compared)"))
    for side, run, s in (("A", run_a, sa), ("B", run_b, sb)):  # a 'winner' that is the truth scored against itself
        if any(PERFECT_WORDS in str(n) for n in s.get("notes") or []):
            said = (f"{side} ({run}) scored the truth as its prediction (one file given twice, or a copy of the truth: its "
                    "summary.json notes): its scores are a perfect prediction's, not a model's, and every verdict against it says so")
            notes.insert(0, said)
            warn(said)
    ra, rb = (s.get("replicate") or "half-split" for s in (sa, sb))  # evaluations from before the option: half-split
    if sa.get("ceiling_splits") and sb.get("ceiling_splits") and ra != rb:
        notes.append(f"A's ceiling is the {ra} replicate and B's the {rb} one: the margins (the larger replicate spread) "
                     "and the two summaries' normalised scores are of different replicates (docs/metrics.md)")
    return notes


def run_settings(path: str | Path) -> dict[str, Any] | None:
    """The resolved config a ``distgen run`` folder records (``experiment.yaml`` beside its ``eval/``), or None (an evaluation
    of files: ``distgen evaluate``)."""
    from distgen.config import ConfigError, load_yaml

    f = evaluation_folder(path).parent / "experiment.yaml"
    try:
        doc = load_yaml(f) if f.is_file() else None
    except ConfigError:  # a damaged record: nothing to say about the settings, the comparison stands
        return None
    return doc if isinstance(doc, dict) else None


def settings_differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``[(dotted key, A's value, B's value)]`` of two resolved run configs (``distgen.config.settings_diff``): a component
    whose ``name`` differs is one entry (its other keys are another component's); the ``sweep`` and ``description``
    sections and progress bars are left out (they change no result)."""
    from distgen.config import result_settings, settings_diff

    return settings_diff(result_settings(b), result_settings(a), skip=("sweep", "description"), missing=UNSET)


class _Unset:
    def __repr__(self) -> str:
        return "unset"


#: A key one run config does not set (its component's default applies).
UNSET: Any = _Unset()


def settings_note(run_a: str | Path, run_b: str | Path, most: int = 6) -> str | None:
    """What a reader of a comparison of two ``distgen run`` folders must know about their settings: which differ (every
    difference is of all of them together), and whether the seed or the data is among them; None for evaluations of files."""
    ca, cb = run_settings(run_a), run_settings(run_b)
    if ca is None or cb is None:
        return None
    diffs = settings_differences(ca, cb)
    if not diffs:
        return ("A and B were run with the same settings (experiment.yaml): a difference between them is run-to-run noise "
                "(threads, hardware), not a setting's effect")
    shown = first_of(diffs, most, render=lambda d: f"{d[0]} ({d[1]!r} vs {d[2]!r})")
    text = f"the runs differ in {counted(len(diffs), 'setting')} (experiment.yaml): {shown}"
    if len(diffs) > 1:
        text += "; each difference below is of all of them together, not of one"
    keys = {k for k, _, _ in diffs}
    if "train.seed" in keys:
        text += ("; train.seed differs, so training noise is part of every difference (distgen sweep pairs its variants' runs "
                 "by seed and tests over seeds)")
    if any(k.startswith("data.") for k in keys):
        text += "; data settings differ (what the models were trained on, or how it was drawn)"
    return text


def recorded_truth_digests(summary: dict[str, Any]) -> dict[str, str]:
    """``summary.json``'s digests of each row's real cells (``distgen.evaluation.digest``); empty in older evaluations."""
    from distgen.types.doses import current_labels  # an earlier distgen's dexa@0.30000001192092896 is dexa@0.3's row

    found = summary.get(TRUTH_DIGESTS)
    if not isinstance(found, dict):
        return {}
    now = current_labels(found)
    return {now[str(k)]: str(v) for k, v in found.items()}


def same_prediction(sa: dict[str, Any], sb: dict[str, Any], shared: list[str]) -> bool:
    """Whether both evaluations record the same digest of the predicted cells (``summary.json`` ``pred_digests``, with the
    prediction's control cells) on every shared row: one prediction file (or a copy) evaluated twice. False for evaluations
    from before the digests."""
    da, db = (s.get(PRED_DIGESTS) for s in (sa, sb))
    if not isinstance(da, dict) or not isinstance(db, dict) or not shared:
        return False
    return all(p in da and p in db and da[p] == db[p] for p in shared)


def panel_dependent(name: str, profile: str = DEFAULT_PROFILE) -> bool:
    """Whether metric ``name`` measures a perturbation against the other perturbations of its evaluation
    (``MetricCapabilities.min_perturbations >= 2``: a discrimination rank, a correlation across perturbations) or is one
    number over all of them (``per_perturbation=False``): its value on a row changes when the panel changes."""
    return int(_capability(name, "min_perturbations", 1, profile)) >= 2 or not _capability(name, "per_perturbation", True, profile)


def _one_values(values: dict[str, float], contexts: dict[str, str], keys: list[str]) -> dict[str, float]:
    """``{context: value}`` of a one-value metric over the rows ``keys`` (its finite value; NaN when none)."""
    out: dict[str, float] = {}
    for k in keys:
        ctx, v = contexts.get(k, ""), values.get(k, math.nan)
        if ctx not in out or (math.isnan(out[ctx]) and not math.isnan(v)):
            out[ctx] = v
    return out


def edited_table(values: dict[str, dict[str, float]], summary: dict[str, Any], most: int = 3) -> list[str]:
    """The metrics whose ``metrics.csv`` column no longer gives the mean its ``summary.json`` records (``model``: the mean
    over the rows where it is defined, written from the same table), as ``'mse (0.371 over the table, 0.588 recorded)'``.

    The table was changed after the evaluation (rows removed, values edited, columns swapped or renamed into another's
    place) or belongs to another evaluation: the comparison reads the table, and says so. A metric without a recorded
    ``model`` mean (another tool's summary) is not checked."""
    from distgen.evaluation.uncertainty import numerical_tolerance

    listed = summary.get("metrics")
    recorded: dict[str, Any] = listed if isinstance(listed, dict) else {}
    out = []
    for name, by_row in values.items():
        row = recorded.get(name)
        if not isinstance(row, dict) or "model" not in row:
            continue
        said = math.nan if row["model"] is None else row["model"]  # JSON null: NaN (no row defined)
        if not isinstance(said, int | float):
            continue
        mean = _mean([v for v in by_row.values() if not math.isnan(v)])
        both_nan = math.isnan(mean) and math.isnan(said)
        if not both_nan and not abs(mean - said) <= 1e3 * numerical_tolerance(mean, said):
            out.append(f"{name} ({fmt_value(mean)} over the table, {fmt_value(said)} recorded)")
    return out


def _mean(v: list[float]) -> float:
    return sum(v) / len(v) if v else math.nan


def compare(run_a: str | Path, run_b: str | Path, seed: int = 0, n_boot: int = N_BOOT, level: float = LEVEL,
            margins: dict[str, float] | None = None) -> dict[str, Any]:
    """Paired comparison of two evaluations on their shared perturbations (see the module docstring).

    Per-perturbation metrics: ``mean_a`` and ``mean_b`` over the rows where both values are defined (the
    rows of ``mean_difference``; ``n_dropped`` counts the shared rows left out), the bootstrap ``ci``, the
    Wilcoxon ``wilcoxon_p``, the ``margin`` (and ``margin_source``: ``given`` from ``margins``, ``replicate
    spread``, ``numerical tolerance``), ``verdict`` (``a``, ``b``, ``negligible``, ``inconclusive``, ``no
    direction``, ``no pairs``: ``distgen.evaluation.uncertainty.verdict``) and ``better``, the winner or
    None. Metrics of one value for the whole evaluation (``MetricCapabilities.per_perturbation=False``) are
    taken once per context: ``value_a``, ``value_b``, ``mean_difference``, no interval, no test, no winner
    (``verdict``: ``one value``). ``margins``: ``{metric: margin}`` in the metric's units. When the two evaluations
    score different perturbations, a metric whose value depends on the panel (``panel_dependent``) gets the verdict
    ``panels differ`` and no winner, with a note.
    """
    a, sa = load_evaluation(run_a)
    b, sb = load_evaluation(run_b)
    shared_metrics = [m for m in a if m in b]
    if profile_of(sa) != profile_of(sb):  # the cause, not its symptom "no metric in common" (names differ by profile)
        check_pairable(run_a, run_b, sa, sb, [])
    if not shared_metrics:
        raise MismatchedEvaluations(f"{run_a} and {run_b} have no metric in common (A: [{first_of(sorted(a), 8, render=repr)}], B: [{first_of(sorted(b), 8, render=repr)}])")
    perts_a = set().union(*(set(v) for v in a.values()))
    perts_b = set().union(*(set(v) for v in b.values()))
    shared = sorted(perts_a & perts_b)
    forms = form_pairs(sorted(perts_a - perts_b), sorted(perts_b))  # labels that print alike: the lists below said nothing
    spelt = f"; {form_hint(forms, 'B')}, then evaluate A again" if forms else ""
    if not shared:
        raise MismatchedEvaluations(f"{run_a} and {run_b} share no perturbation (A: [{first_of(sorted(perts_a), 5, render=repr)}], "
                                    f"B: [{first_of(sorted(perts_b), 5, render=repr)}]); compare evaluations of the same held-out groups{spelt}")
    notes = check_pairable(run_a, run_b, sa, sb, shared)
    for side, run, values, summary in (("A", run_a, a, sa), ("B", run_b, b, sb)):
        changed = changed_table_note(f"{side}'s metrics.csv ({evaluation_folder(run)})", values, summary)
        if changed:
            notes.insert(0, changed)
            warn(changed)
    said = settings_note(run_a, run_b)
    if said:
        notes.append(said)
    if evaluation_folder(run_a).resolve() == evaluation_folder(run_b).resolve():  # said nothing: every verdict 'inconclusive'
        notes.insert(0, f"A and B are one evaluation ({evaluation_folder(run_a)}): every difference is 0; give two evaluations")
    elif same_prediction(sa, sb, shared):  # verdicts 'negligible': true, and no comparison of two models
        notes.insert(0, f"A and B scored the same predicted cells on all {counted(len(shared), 'shared row')} (their summary.json "
                        "pred_digests agree): one prediction evaluated twice, so no difference here is between models; "
                        "compare evaluations of two predictions")
    margins = dict(margins or {})
    unknown = sorted(set(margins) - set(shared_metrics))
    if unknown:
        raise MismatchedEvaluations(f"a margin was given for {unknown}, which the two evaluations do not share; "
                                    f"they share: {shared_metrics}")
    alpha = round(1.0 - level, 12)  # 0.05, not 0.050000000000000044 in compare.json
    only_a, only_b = [m for m in a if m not in b], [m for m in b if m not in a]
    if only_a or only_b:
        notes.append(f"metrics in one evaluation only, not compared: A {only_a or '-'}, B {only_b or '-'}")
    if perts_a != perts_b:
        notes.append(f"{len(perts_a - perts_b)} perturbation(s) only in A and {len(perts_b - perts_a)} only in B are left out: "
                     f"every mean is over the {len(shared)} shared ones{spelt}")
    out: dict[str, Any] = {"a": str(run_a), "b": str(run_b), "profile": profile_of(sa), "n_shared": len(shared),
                           "only_a": len(perts_a - perts_b), "only_b": len(perts_b - perts_a), "only_a_metrics": only_a,
                           "only_b_metrics": only_b, "ci_level": level, "alpha": alpha, "seed": seed, "n_boot": n_boot, "notes": notes,
                           "metrics": {}}
    profile = profile_of(sa)
    panel_bound = [m for m in shared_metrics if panel_dependent(m, profile)] if perts_a != perts_b else []
    if panel_bound:
        notes.append(f"the two evaluations score different perturbation panels, and {panel_bound} measure each perturbation "
                     "against the others of its panel (a rank among them, a correlation across them): their values differ "
                     "with the panel alone, so they get no verdict (verdict 'panels differ'); evaluate both on the same "
                     "perturbations to compare them")
    for name in shared_metrics:
        hib = _higher_is_better(name, sa, sb)
        if not _capability(name, "per_perturbation", True, profile):
            va = _one_values(a[name], sa["row_contexts"], shared)
            vb = _one_values(b[name], sb["row_contexts"], shared)
            both = [c for c in va if c in vb and not math.isnan(va[c]) and not math.isnan(vb[c])]
            one = lambda v: v[next(iter(v))] if len(v) == 1 else {c: v[c] for c in sorted(v)}  # noqa: E731
            out["metrics"][name] = {
                "higher_is_better": hib, "per_perturbation": False, "value_a": one(va), "value_b": one(vb),
                "mean_a": _mean([va[c] for c in both]), "mean_b": _mean([vb[c] for c in both]),
                "mean_difference": _mean([va[c] - vb[c] for c in both]), "ci": [math.nan, math.nan], "wilcoxon_p": math.nan,
                "n": len(both), "n_dropped": 0, "margin": math.nan, "margin_source": None, "better": None, "verdict": "one value",
                "note": "one value for the whole evaluation" + (" per context" if len(va) > 1 else "")
                        + ": a difference of single numbers, no interval and no test"}
            if name in panel_bound:
                out["metrics"][name].update(verdict="panels differ", note=out["metrics"][name]["note"]
                                            + "; each over its own panel of perturbations, which differ: not comparable")
            continue
        xa = [a[name].get(p, math.nan) for p in shared]
        xb = [b[name].get(p, math.nan) for p in shared]
        test = paired_test(xa, xb, n_boot, level, seed, _capability(name, "bounds", None, profile))  # ci cut at the difference's range
        pairs = [(x, y) for x, y in zip(xa, xb) if math.isfinite(x) and math.isfinite(y)]
        mean_a, mean_b = _mean([x for x, _ in pairs]), _mean([y for _, y in pairs])
        sizes = [magnitude(x for x, _ in pairs), magnitude(y for _, y in pairs)]  # values of both signs: their means can cancel
        width, source = margin([mean_a, mean_b, *sizes], _noise(name, sa, sb), margins.get(name))
        said, better = verdict(test, hib, width, alpha)
        if name in panel_bound:
            said, better = "panels differ", None
        dropped = len(shared) - len(pairs)
        note = test["note"]
        if said == "inconclusive" and small_unshown(test, width, alpha):
            note = "; ".join(filter(None, [note, f"significant (p < {alpha:.2g}) and within the margin by its estimate, but its "
                                           f"interval reaches past +-{fmt_value(width)}: that it is too small to matter is not shown"]))
        if dropped:
            note = "; ".join(filter(None, [note, f"{dropped} row(s) with a NaN on either side left out of both means"]))
        out["metrics"][name] = {"higher_is_better": hib, "per_perturbation": True, "mean_a": mean_a, "mean_b": mean_b, **test,
                                "note": note, "n_dropped": dropped, "margin": width, "margin_source": source,
                                "better": better, "verdict": said}
    family = [m for m, r in out["metrics"].items() if r.get("per_perturbation", True) and r["verdict"] != "panels differ"
              and math.isfinite(r["wilcoxon_p"])]
    for name, adjusted in zip(family, holm([out["metrics"][m]["wilcoxon_p"] for m in family])):
        out["metrics"][name]["holm_p"] = adjusted
    winners = [m for m in family if out["metrics"][m]["better"]]
    out["holm_winners"] = [m for m in winners if out["metrics"][m]["holm_p"] < alpha]
    if len(family) > 1 and winners:
        kept = len(out["holm_winners"])
        notes.append(f"{len(winners)} of the {len(family)} tested metrics {'names' if len(winners) == 1 else 'name'} a winner, each at p < {alpha:.2g} on its own; "
                     f"{kept} {'keeps its' if kept == 1 else 'keep theirs'} after Holm's adjustment for the {len(family)} tests "
                     f"({listing(out['holm_winners']) if kept else 'none'}). Two equally good models got a winner on at least one "
                     "of nine metrics in 28-38% of comparisons at 6-25 perturbations, one that keeps it after Holm's adjustment in "
                     f"at most 4.5% (benchmarks/null_claims.py); read a winner whose Holm p is not below {alpha:.2g} as a lead "
                     "to confirm, not a finding")
    tolerance_only = sorted(m for m, r in out["metrics"].items() if r.get("margin_source") == "numerical tolerance" and r["better"])
    unrecorded = [m for m in tolerance_only if math.isnan(_noise(m, sa, sb))]
    flat = [m for m in tolerance_only if m not in unrecorded]  # recorded, and no larger than the tolerance (every split the same)
    why = {"no replicate spread was recorded for": (unrecorded, " (an evaluation without the split-half ceiling, e.g. --profile)"),
           "the split-half replicate's spread is zero for": (flat, " (every ceiling split gave the same mean, e.g. a score of 1 "
                                                             "on each)")}
    for said, (names, cause) in why.items():
        if names:
            notes.append(f"{said} {names}{cause}, so their winners are only statistically significant: any difference above "
                         "the numerical tolerance counts; give a practical threshold with --margin METRIC=VALUE")
    if "vcc2026" in sa and "vcc2026" in sb:
        out["vcc2026"] = _vcc2026(sa["vcc2026"], sb["vcc2026"], notes)
        if perts_a != perts_b:
            notes.append("the vcc2026 scores are each over its own panel of perturbations (and scaled by a baseline of that "
                         "panel's perturbed cells), which differ: the two scores are not comparable")
    return out


def _vcc2026(va: dict[str, Any], vb: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The two vcc2026 scores side by side (higher is better on each: 1 = the replicate, 0 = the baseline); one value each."""
    ra, rb = va.get("from_replicate") or {}, vb.get("from_replicate") or {}
    rows: dict[str, Any] = {}
    for name in sorted(set(ra) | set(rb)):
        x, y = ra.get(name), rb.get(name)
        x, y = (math.nan if v is None else float(v) for v in (x, y))
        rows[name] = {"value_a": x, "value_b": y, "difference": x - y}
    x, y = (math.nan if v.get("avg_score") is None else float(v["avg_score"]) for v in (va, vb))
    rows["avg_score"] = {"value_a": x, "value_b": y, "difference": x - y}
    if sorted(ra) != sorted(rb):
        notes.append(f"the vcc2026 avg_score of A averages {sorted(ra)} and B's {sorted(rb)}: not the same metrics, so the two "
                     "averages are not comparable (compare the metrics both scored)")
    return {"higher_is_better": True, "note": "one value per evaluation: a difference of single numbers, no interval and no test",
            "scores": rows}


def markdown(result: dict[str, Any]) -> str:
    """A readable table of ``compare``'s result."""
    alpha = result.get("alpha", 1.0 - result["ci_level"])
    lines = ["# distgen compare", "", f"A {md.code(result['a'])} vs B {md.code(result['b'])}: {counted(result['n_shared'], 'shared perturbation')} "
             f"({result['only_a']} only in A, {result['only_b']} only in B). Difference = A - B, paired per perturbation; "
             f"means over the pairs where both are defined; {result['ci_level']:.0%} studentized bootstrap CI; two-sided "
             f"Wilcoxon signed-rank p, per metric; Holm p: adjusted for the number of metrics tested (Holm's step-down; where it is "
             f"below {alpha:.2g}, the chance that any winner of the table is a false one is at most {alpha:.2g}). A winner only where p < {alpha:.2g}, "
             "|A - B| > margin (the split-half replicate's spread of the metric, a given margin, or at least the numerical "
             "tolerance) and the signed ranks favour the mean's side; negligible where the CI lies within +-margin (shown to be "
             "smaller than it, not estimated so); else inconclusive.", "",
             "| metric | better | mean A | mean B | A - B | CI | Wilcoxon p | Holm p | margin | pairs | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    singles = []
    for name, r in result["metrics"].items():
        hib = {True: "higher", False: "lower", None: "?"}[r["higher_is_better"]]
        if not r.get("per_perturbation", True):
            singles.append(name)
            lines.append(f"| {md.cell(name)} | {hib} | {fmt_value(r['mean_a'])} | {fmt_value(r['mean_b'])} | {fmt_value(r['mean_difference'])} | - | - | "
                         f"- | - | one value* | {'-' if r['verdict'] == 'one value' else md.cell(r['verdict'])} |")
            continue
        ci = f"[{fmt_value(r['ci'][0])}, {fmt_value(r['ci'][1])}]"
        pairs = f"{r['n']}" + (f" ({r['n_dropped']} left out: NaN)" if r.get("n_dropped") else "")
        source = {"replicate spread": "replicate", "numerical tolerance": "tolerance"}.get(r.get("margin_source") or "", r.get("margin_source"))
        width = f"{fmt_value(r['margin'])} ({source})" if source else fmt_value(r.get("margin"))
        said = r.get("verdict", "-")
        if r["better"] is not None:
            holm_p = r.get("holm_p")
            lost = isinstance(holm_p, float) and not math.isnan(holm_p) and holm_p >= alpha  # a winner only per metric
            said = f"{said} (p < {alpha:.2g}, > margin" + ("; not after Holm)" if lost else ")")
        elif said == "negligible":
            said = "negligible (within margin)"
        lines.append(f"| {md.cell(name)} | {hib} | {fmt_value(r['mean_a'])} | {fmt_value(r['mean_b'])} | {fmt_value(r['mean_difference'])} | {ci} | "
                     f"{fmt_value(r['wilcoxon_p'])} | {fmt_value(r.get('holm_p'))} | {width} | {pairs} | {said} |")
    if singles:
        lines += ["", f"\\* one value for the whole evaluation (per context: their mean), repeated on every row of metrics.csv: "
                  f"a difference of single numbers, not paired observations (no CI, no test, no winner): {', '.join(map(md.inline, singles))}."]
    if result.get("vcc2026"):
        lines += ["", "## vcc2026 score (from the replicate; higher is better: 1 = replicate, 0 = baseline; one value each, no test)", "",
                  "| score | A | B | A - B |", "|---|---|---|---|"]
        lines += [f"| {md.cell(k)} | {fmt_value(v['value_a'])} | {fmt_value(v['value_b'])} | {fmt_value(v['difference'])} |"
                  for k, v in result["vcc2026"]["scores"].items()]
    notes = [*result.get("notes", []), *[f"{name}: {r['note']}" for name, r in result["metrics"].items()
                                         if r.get("note") and r.get("per_perturbation", True)]]
    if notes:
        lines += ["", "## Notes", "", *[f"- {md.inline(n, True)}" for n in notes]]
    return "\n".join(lines) + "\n"
