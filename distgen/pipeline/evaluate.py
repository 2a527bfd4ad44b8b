"""``distgen evaluate`` and ``distgen.evaluate``: files (or populations) -> references -> score -> report.

From files (cell-eval's layout): prediction and truth are read (``distgen.data.layout``), baselines
are fitted on the training cells of ``--train`` (contexts kept), they predict the truth's groups
(``distgen.pipeline.references``) and ``distgen.evaluation.score`` scores all of it. From a
``Dataset``: the truth and the baselines' training cells are the dataset's own, as in ``distgen run``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from distgen.data import layout
from distgen.data.prepared import Dataset
from distgen.errors import InputDataError, warn
from distgen.evaluation.io import PERFECT_WORDS, float32_reads, grouped, same_source
from distgen.evaluation.normalization import check_files, generated_files
from distgen.evaluation.report import Report
from distgen.evaluation.score import score_checked
from distgen.evaluation.stored_scales import scale_hints
from distgen.evaluation.uncertainty import CEILING_SPLITS
from distgen.pipeline.outputs import check_output_folder, clear_evaluation, output_folder
from distgen.pipeline.pages import write_evaluation_page
from distgen.pipeline.profile_eval import evaluate_profile_files, load_pair  # noqa: F401  (re-exported: the light --profile path)
from distgen.pipeline.references import DEFAULT_BASELINES, cells_references, dataset_references
from distgen.types import Cells


def evaluate_files(
    pred: Any,
    real: Any,
    out: str | Path | None = None,
    pert_col: str | None = None,
    control: str | None = None,
    train: Any = None,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    metric_names: Sequence[str] | None = None,
    ceiling: bool = True,
    seed: int = 0,
    make_plots: bool = True,
    progress: bool = True,
    celltype_col: str | None = None,
    by_context: bool = True,
    ceiling_splits: int = CEILING_SPLITS,
    overwrite: bool = False,
    interpolated: bool = False,
    replicate: str = "half-split",
    batch_col: str | None = None,
    spread: str | bool = "auto",
) -> Report:
    """Evaluate ``pred`` against ``real`` (``.h5ad`` paths or AnnData) and, with ``out``, write the report there.

    ``out`` may not be a run folder, and files of an earlier non-evaluation there are kept unless
    ``overwrite`` (``distgen.pipeline.outputs.check_output_folder``).

    Baselines other than ``control`` are fitted on ``train`` (skipped, with a note, without it); the
    ceiling is a disjoint half-split of the real cells. Contexts come from ``celltype_col`` (default:
    ``celltype`` when every file has it) and are scored one by one unless ``by_context=False``.
    """
    baselines, metric_names = names_arg(baselines, "baselines"), names_arg(metric_names, "metric_names")
    spread = spread_arg(spread)
    if out is not None:
        check_output_folder(out, "evaluate", overwrite)
    # a file on another scale than scored is refused naming the layer or raw that holds the right one, when one does
    with output_folder(out), scale_hints({"pred": pred, "real": real, "training": train}):
        with float32_reads():  # a float64 value past float32's range: inf, that group NaN with distgen's warning naming it
            pred_c, real_c, train_c, info = layout.read_pair(pred, real, pert_col, control, celltype_col, train, batch_col=batch_col)
        if (same := one_truth_note(pred, real, pred_c, real_c)) is not None:  # the CLI scored it perfect without a word
            info.notes.append(same)
        from distgen.data.counts import unmeasured_note

        if (depths := unmeasured_note(info.provenance)) is not None:  # --counts without library sizes: said once, below
            info.notes.append(depths)
        check_not_means(pred_c)
        for note in info.notes:  # what reading the files found (a cell-type column it did not use): summary.json and stderr
            warn(note)
        checks = check_files({"pred": pred_c, "real": real_c, "training": train_c}, generated=generated_files(info.kinds),
                             log_bases=info.log_bases)
        value_notes = checks.notes
        # rows as the scoring groups them: its grouped cells are slices of these, the only copy of each table (io.grouped)
        pred_c = grouped(pred_c)  # one after the other: one table's copy at a time
        real_c = grouped(real_c)
        refs, notes = cells_references(train_c, real_c, baselines)
        del train_c  # fitted on: not held while scoring
        notes = value_notes + notes
        report = score_checked(
            checks, pred_c, real_c, refs, by_context=by_context, ceiling=ceiling, seed=seed, metrics=metric_names, progress=progress,
            notes=[*info.notes, *notes], ceiling_splits=ceiling_splits, interpolated=interpolated, replicate=replicate, spread=spread,
            sources={"pred": _name(pred), "real": _name(real), "pert_col": info.pert_col, "control": info.control, "celltype_col": info.celltype_col},
            generated="pred" in generated_files(info.kinds),
        )
        if info.provenance:  # how the prediction was made (seed, checkpoint...), as its file records it
            report.summary["pred_provenance"] = info.provenance
        if out is not None:
            clear_evaluation(out)  # an earlier evaluation's page, plots and tables never stay beside the new ones
            report.write(out, make_plots)
            if make_plots:  # the HTML page (eval/report.html), with a run's training story when pred sits in one
                write_evaluation_page(out, report, pred)
    return report


def one_truth_note(pred: Any, real: Any, pred_c: Cells, real_c: Cells) -> str | None:
    """A note (warned, and kept in summary.json) when the prediction is the truth: one file given twice, or a copy of it
    (the same cells, labels and values: another tool's truth file taken for its predictions). Every score is then a
    perfect prediction's; ``distgen evaluate --pred real.h5ad --real real.h5ad`` said so only through the Python API."""
    if same_source(pred, real):
        what = f"the same file ({_name(pred)})"
    elif (pred_c.X.shape == real_c.X.shape and pred_c.genes == real_c.genes and np.array_equal(pred_c.conditions, real_c.conditions)
          and bool((pred_c.X == real_c.X).all())):
        what = "files with the same cells (labels and values): the prediction file is a copy of the truth"
    else:
        return None
    return (f"evaluate: the prediction and the truth are {what}: {PERFECT_WORDS}; pass the "
            "generated cells as the prediction (--pred) and the measured ones as the truth (--real)")


def check_not_means(pred: Cells, name: str = "prediction") -> None:
    """Refuse a prediction file holding one cell per perturbation: a mean expression per perturbation (GEARS and other
    mean predictors write these), not cells. Every metric needs a population of ``MIN_CELLS`` cells, so every row was
    NaN and the run exited 0, saying to 'predict every perturbation of the truth'. Files with some groups of 2+ cells are
    scored as they are (their one-cell groups NaN, with the reason)."""
    from distgen.evaluation.io import MIN_CELLS
    from distgen.wording import counted, first_of

    perturbed = ~np.asarray(pred.is_control)
    if not perturbed.any():
        return
    keys = np.char.add(np.asarray(pred.conditions[perturbed], dtype=str), np.char.add("\x00", np.asarray(pred.contexts[perturbed], dtype=str)))
    _, sizes = np.unique(keys, return_counts=True)
    if int(sizes.max()) >= MIN_CELLS:
        return
    conditions = sorted(set(pred.conditions[perturbed].tolist()))
    groups = f" in {counted(len(sizes), '(perturbation, context) group')}" if len(sizes) != len(conditions) else ""
    raise InputDataError(
        f"the {name} holds one cell per perturbation ({counted(len(conditions), 'perturbation')}{groups}: "
        f"{first_of(conditions, 3, render=repr, enclosed=True)}): a mean expression per "
        f"perturbation (as GEARS writes), not cells; every metric scores populations of at least {MIN_CELLS} cells, so none "
        "could be scored. Write cells sampled from the model, or, to score the means with the mean-based metrics only, write "
        "each mean as 2 identical cells (numpy.repeat(means, 2, axis=0), each label twice) and pass --metrics "
        "pearson_delta,mse (metric_names=[...] in the API): the distributional and DE metrics need sampled cells")


def spread_arg(value: Any) -> str:
    """``spread`` as one of ``auto``, ``on``, ``off`` (``True``/``False`` as on/off), refused before any file is read."""
    from distgen.config import ConfigError
    from distgen.evaluation.spread import spread_mode

    try:
        return spread_mode(value, "evaluate: spread")
    except ValueError as e:
        raise ConfigError(str(e)) from None


def names_arg(value: Any, what: str) -> Any:
    """``baselines`` or ``metric_names`` as a list of names, the same name twice computed once. One text is refused, as
    ``distgen.evaluate`` refuses it (``metric_names="mse"`` was read letter by letter as a metric ``'m'``); an empty list
    of metrics is refused: it scored nothing and exited 0 (``--metrics ''``); ``None`` is the full suite."""
    if value is None:
        return None
    from distgen.config import ConfigError

    if isinstance(value, str):
        raise ConfigError(f"evaluate: {what} is a list, got the text {value!r}; write [{value!r}]")
    names = list(dict.fromkeys(s for s in (str(x).strip() for x in value) if s))
    if what == "metric_names" and not names:
        raise ConfigError("--metrics (metric_names) names no metric: leave it out (None) for the full suite, or name the "
                          "metrics to compute, e.g. --metrics mse,pearson_delta ('distgen components --kind metrics' lists them)")
    return names


#: Keyword arguments of ``evaluate`` that say how files are read (``distgen.data.layout.read``).
LAYOUT_KEYS = ("pert_col", "control", "celltype_col", "batch_col")
#: Its other keyword arguments (named in the message for an unknown one).
EVALUATE_ARGS = ("train", "baselines", "metric_names", "ceiling", "seed", "make_plots", "progress", "by_context", "part",
                 "ceiling_splits", "overwrite", "interpolated", "replicate", "spread")


def evaluate(
    pred: Any,
    truth: Any,
    out: str | Path | None = None,
    *,
    train: Any = None,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    metric_names: Sequence[str] | None = None,
    ceiling: bool = True,
    seed: int = 0,
    make_plots: bool = True,
    progress: bool = True,
    by_context: bool = True,
    part: str = "test",
    ceiling_splits: int = CEILING_SPLITS,
    overwrite: bool = False,
    interpolated: bool = False,
    replicate: str = "half-split",
    spread: str | bool = "auto",
    **layout_options: Any,
) -> Report:
    """Evaluate a prediction against its truth, next to the baselines and the ceiling (the ``distgen.evaluate`` API).

    ``pred``: ``Cells`` (``distgen.predict``), an ``.h5ad`` path or an AnnData. ``truth``: a
    ``Dataset`` (its held-out ``part``; baselines fitted on its training cells), ``Cells``, or a
    path/AnnData. ``train`` (``Cells``, path or AnnData) fits the baselines when ``truth`` is not a
    ``Dataset``. Files take ``pert_col``, ``control`` and ``celltype_col``. With ``out`` the report
    files are written there (not into a run folder; over other files only with ``overwrite``). ``spread``: the spread
    scores of groups with several batches, ``"auto"`` (within a work budget, else a note), ``"on"`` or ``"off"``
    (``distgen.evaluation.score``).
    """
    baselines, metric_names = names_arg(baselines, "baselines"), names_arg(metric_names, "metric_names")
    spread = spread_arg(spread)
    unknown = sorted(set(layout_options) - set(LAYOUT_KEYS))
    if unknown:  # swallowed by **layout_options, a typo (metrics= for metric_names=) was ignored: every metric was computed
        from distgen.wording import near

        known = [*LAYOUT_KEYS, *EVALUATE_ARGS]
        close = {k: near(k, known, cutoff=0.5) for k in unknown}
        hints = "; ".join(f"{k!r}: did you mean {c[0]!r}?" for k, c in close.items() if c)
        raise TypeError(f"evaluate: unknown keyword argument(s) {unknown}{' (' + hints + ')' if hints else ''}; it takes "
                        f"{', '.join(EVALUATE_ARGS)} and, for files, {', '.join(LAYOUT_KEYS)}")
    _check_kinds(pred, truth)
    if not isinstance(pred, Cells) and not isinstance(truth, Cells | Dataset):  # evaluate_files warns of one file given twice
        if isinstance(train, Cells):  # read with the files, in their layout (the column and control label they use)
            train = layout.to_anndata(train, "train", pert_col=layout_options.get("pert_col") or layout.PERT_COL,
                                      control=layout_options.get("control") or layout.CONTROL)
        return evaluate_files(pred, truth, out, train=train, baselines=baselines, metric_names=metric_names, ceiling=ceiling,
                              seed=seed, make_plots=make_plots, progress=progress, by_context=by_context, overwrite=overwrite,
                              ceiling_splits=ceiling_splits, interpolated=interpolated, replicate=replicate, spread=spread,
                              **layout_options)
    if same_source(pred, truth):
        warn(f"evaluate: the prediction and the truth are the same {_name(pred)}: every score is that of a perfect "
             "prediction; pass the generated cells as pred (distgen.predict) and the measured ones as truth")
    if out is not None:
        check_output_folder(out, "evaluate", overwrite)
    files: dict[str, Cells] = {}  # what was read from files: their values are checked (Cells and a Dataset are the caller's)
    adatas: dict[str, Any] = {}  # the files read, for their var columns (check_gene_names)
    kinds: dict[str, str] = {}
    bases: dict[str, float] = {}

    doses: list[str] = []  # split_doses's notes: a file at several doses read a population per (label, dose), as the CLI reads it

    def read(source: Any, name: str, beside: Cells | None = None) -> Cells:
        adata = layout.as_anndata(source, f"{name} file")
        adatas[name] = adata
        with float32_reads():  # as evaluate_files reads them
            if beside is not None:
                files[name], said = layout.read_beside(adata, beside, name, **layout_options, delimiters=delimiters)
                doses.extend(said)
            else:
                files[name] = layout.read(adata, **layout_options, name=name)
        if (kind := layout.recorded_scale(adata, "kind")) is not None:
            kinds[name] = kind
        if (base := layout.recorded_log_base(adata)) is not None:
            bases[name] = base
        return files[name]

    delimiters = (truth.data.schema.combo_delimiter,) if isinstance(truth, Dataset) else ()  # a file beside it: its combinations
    truth_c: Cells | None = truth.truth(part) if isinstance(truth, Dataset) else truth if isinstance(truth, Cells) else None
    pred_c = pred if isinstance(pred, Cells) else read(pred, "pred", truth_c)
    if not isinstance(pred, Cells):
        check_not_means(pred_c)
    train_c = None
    if isinstance(truth, Dataset):
        assert truth_c is not None
        if "pred" in files:  # a file of a one-context (one-batch) dataset has no such column: its cells are that context's
            pred_c = _in_labels_of(pred_c, truth_c)
        else:
            _check_caps(pred_c, truth_c)
        _check_gene_names(adatas, pred_c, truth_c)
    else:
        truth_c = truth if isinstance(truth, Cells) else read(truth, "real", pred_c if isinstance(pred, Cells) else None)
        train_c = train if isinstance(train, Cells) or train is None else read(train, "training")
        _check_gene_names(adatas, pred_c, truth_c, train_c)
    adatas.clear()  # the files as read (their X is the tables' storage)
    for note in doses:
        warn(note)
    checks = check_files(files, generated=generated_files(kinds), log_bases=bases, truth=truth_c)
    value_notes = doses + checks.notes
    # the tables read here are this call's: grouped as scored (before the references, which index the truth's table: the
    # control baseline's cells are its rows), they are the only copies (io.grouped), as in evaluate_files; the caller's are kept
    from_files = set(files)
    files.clear()
    pred_c = grouped(pred_c) if "pred" in from_files else pred_c
    truth_c = grouped(truth_c) if "real" in from_files else truth_c
    if isinstance(truth, Dataset):
        refs, notes = dataset_references(truth, truth_c, baselines)
    else:
        refs, notes = cells_references(train_c, truth_c, baselines)
        del train_c  # fitted on: not held while scoring
    notes = value_notes + notes
    report = score_checked(checks, pred_c, truth_c, refs, by_context=by_context, ceiling=ceiling, seed=seed, metrics=metric_names,
                           progress=progress, notes=notes, sources={"pred": _name(pred), "real": _name(truth)},
                           ceiling_splits=ceiling_splits, interpolated=interpolated, replicate=replicate, spread=spread,
                           generated=(isinstance(pred, Cells) and isinstance(truth, Dataset)) or "pred" in generated_files(kinds))
    if out is not None:
        clear_evaluation(out)
        report.write(out, make_plots)
        if make_plots:
            write_evaluation_page(out, report, pred)
    return report


def _check_caps(pred: Cells, truth: Cells) -> None:
    """Warn when ``distgen.predict(..., max_cells=k)``'s cells meet a truth not capped alike (or the other way round).

    Every group of the one then holds ``min(n, k)`` of the other's ``n`` cells: ten generated cells a group scored against
    all hundred real ones (whose ceiling and baselines use all hundred) gave other scores than the pair ``distgen predict
    --max-cells 10`` writes, without a word. Only that pattern warns; other counts (a model of one's own) are scored as given.
    """
    counts = [{k: len(v) for k, v in c.groups().items()} for c in (pred, truth)]
    shared = sorted(set(counts[0]) & set(counts[1]))
    if not shared:
        return
    for (small, large), side in ((counts, "pred"), (counts[::-1], "truth")):
        k = max(small[g] for g in shared)
        if k < max(large[g] for g in shared) and all(small[g] == min(large[g], k) for g in shared):
            most = max(large[g] for g in shared)
            if side == "pred":
                warn(f"evaluate: the prediction has at most {k} generated cells a group where the truth has up to {most}: made with "
                     f"max_cells={k}? Its scores, and the ceiling and baselines beside them, then use other real cells than "
                     f"distgen predict --max-cells {k} pairs with it; evaluate against data.capped({k}) (the same cells)")
            else:
                warn(f"evaluate: the truth has at most {k} cells a group where the prediction has up to {most}: predict with "
                     f"max_cells={k} for the prediction of the same cells")
            return


def _check_kinds(pred: Any, truth: Any) -> None:
    """A ``TypeError`` naming what ``evaluate`` takes for ``pred`` and ``truth``: a numpy array, a tensor or a ``Dataset`` as
    ``pred`` was told only "expected an .h5ad path or an AnnData" (after a warning that pred and truth were the same)."""
    import anndata as ad

    files = (str, os.PathLike, ad.AnnData)
    for name, value, takes, kinds in (
        ("pred", pred, "Cells (distgen.predict), an AnnData or an .h5ad path", (Cells, *files)),
        ("truth", truth, "a Dataset (distgen.load_data), Cells, an AnnData or an .h5ad path", (Dataset, Cells, *files)),
    ):
        if not isinstance(value, kinds):
            hint = (" (a prediction's values need its cells' labels: distgen.predict returns them as Cells; an AnnData with "
                    "the labels in obs works too)") if name == "pred" else ""
            raise TypeError(f"evaluate: {name} is {takes}, got {type(value).__name__}{hint}")


def _check_gene_names(adatas: dict[str, Any], pred: Cells, truth: Cells, train: Cells | None = None) -> None:
    """``layout.check_gene_names`` (the hint for Ensembl IDs with the names in a ``var`` column) of files read one by one:
    each side read from a file as its AnnData (its ``var`` columns), the others as their gene names."""
    if not adatas:
        return
    sides = {"real": truth, "pred": pred, **({"training": train} if train is not None else {})}
    layout.check_gene_names({k: adatas.get(k, list(c.genes)) for k, c in sides.items()})


def _in_labels_of(cells: Cells, truth: Cells) -> Cells:
    """``cells`` read from a file without a context (batch) column, labelled with the truth's only context (batch).

    ``distgen.predict(..., out=...)`` writes no cell-type column for data with one context, so its file read back
    has the context ``"all"``; against the ``Dataset`` it came from (context ``k562``) every group looked missing.
    """
    from distgen.types.cells import ALL

    changes: dict[str, Any] = {}
    for field in ("contexts", "batches"):
        mine, theirs = set(getattr(cells, field).tolist()), set(getattr(truth, field).tolist())
        if mine == {ALL} and len(theirs) == 1 and theirs != {ALL}:
            changes[field] = np.full(len(cells), next(iter(theirs)), dtype=object)
    return cells.relabelled(**changes) if changes else cells


def _name(source: Any) -> str:
    if isinstance(source, str | os.PathLike):
        return str(source)
    return f"<{type(source).__name__}>"
