"""``distgen predict RUN --data FILE``: a trained run's predictions for the perturbed cells of another file.

The run is loaded as ``distgen predict`` loads it (``open_run``: its weights, and its data checked unchanged when the training
file is there); everything read of the training data comes from the run's ``DataRecord`` (``data_record.json``, written at
training, or the same made from the training file when ``--train-data`` names it), so a run whose training file moved or stayed on
another machine predicts FILE identically. FILE is read with the run's schema as a ``DiskCells`` and predicted by ``predict_to_disk``, which matches genes and labels to the run by
name (``distgen.data.foreign``). Each (condition, context, batch) group of FILE is generated from FILE's own control cells
of its context (and batch) as in ``predict_to_disk``. Before anything is generated, FILE is checked against the run, each
refusal an ``InputDataError`` / ``InputKeyError`` / ``ConfigError`` (exit 2) that names the fix: obs columns the run reads
(``missing_columns_message``), every model gene present (``gene_hint``), control cells, labels the run knows
(``LabelTranslation.check``), atoms the model can embed (``preflight``), and values on the training cells' scale (raw
counts against log1p values, and the median ``sum(expm1(x))`` of control cells, ``depth_mismatches``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from distgen.config import ConfigError, load_yaml
from distgen.data import counts as C
from distgen.data.conditions import control_like_atoms
from distgen.data.disk import DiskCells
from distgen.data.disk_predict import predict_to_disk
from distgen.data.foreign import (
    DEPTH_FACTOR,
    DEPTH_SAMPLE,
    LabelTranslation,
    gene_hint,
    missing_columns_message,
    reads_contexts,
)
from distgen.data.groups import Group, group_seed
from distgen.data.h5ad import readable_by_rows
from distgen.data.record import DataRecord
from distgen.errors import InputDataError, InputKeyError, warn
from distgen.pipeline.predict import (
    checked_outputs,
    doses_provenance,
    open_run,
    predict_section,
    prediction_provenance,
    read_files,
    run_folder,
    said_origin,
    sampling_overrides,
)
from distgen.train import distributed as D
from distgen.train.checkpoint import chosen_checkpoint
from distgen.train.device import float32_default, select_device, setup_backends
from distgen.train.lock import RunLock
from distgen.types.layout import canonical_condition
from distgen.wording import counted, first_of, listing

__all__ = ["FileCounts", "predict_file"]


def predict_file(
    run_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    perturbations: Sequence[str] | None = None,
    checkpoint: str | Path | None = None,
    weights: str = "ema",
    real: str | Path | None = None,
    seed: int | None = None,
    counts: str | None = None,
    overwrite: bool = False,
    max_cells: int | str | None = None,
    sampling: Any = (),
    train_data: str | Path | None = None,
    doses: Any = None,
) -> Path:
    """Predict every perturbed group of ``data`` (an .h5ad or .zarr) with a trained run into ``out`` (cell-eval layout).

    ``perturbations`` (labels as ``data`` spells them, ``A_B`` or ``A+B``) predicts only those. ``real`` also writes the
    real cells of the same groups (the truth ``distgen evaluate`` scores ``out`` against); ``counts`` (``round``,
    ``poisson``, ``nb``) writes both in raw counts (``FileCounts``). ``seed`` defaults to the run's ``train.seed``,
    ``max_cells`` to its ``predict.max_cells_per_condition``; ``checkpoint``, ``weights``, ``sampling`` and ``overwrite``
    are ``predict_run``'s. ``out`` records them (``uns["distgen"]["provenance"]``, ``part: file``, ``data``: FILE). Returns ``out``.

    Each group is asked at the dose its cells carry in ``data`` (the run's ``schema.dose_col``), unless ``doses`` (``--dose``:
    ``distgen.predict``'s, conditions as ``data`` writes them) says otherwise; a dose outside the doses an atom's training
    cells carry warns (``DoseExtrapolationWarning``; the ranges from the run's data record). A model that reads no dose
    gets the pre-flight's note when ``data``'s cells to predict carry doses other than 1, or other doses are asked.

    The run's training file is not needed when the run holds a data record (``data_record.json``, written at training:
    ``distgen.data.record.DataRecord``), and such a run does not read it even where it is (reading and hashing it whole was
    most of the time and peak memory of a small prediction). ``train_data`` names a file to read instead: it is checked as
    ``distgen predict`` checks it, and the same record is made from it: the prediction is the same either way. A run without
    a record (trained before runs kept one) reads its training file, once: the record made from it is kept in the run folder
    when that is safe (``distgen.pipeline.kept_record``).
    """
    sampling = sampling_overrides(sampling)
    if counts is not None:
        C.check_model(counts)
    run_dir = run_folder(run_dir)
    checkpoint = chosen_checkpoint(run_dir, checkpoint)  # best / last -> a folder / the newest
    data = Path(os.path.expanduser(data))  # os.path leaves '~nouser/...' as written; Path.expanduser raised RuntimeError
    if not data.exists():
        raise ConfigError(f"--data {str(data)!r}: no such file; give the .h5ad (or .zarr) file whose perturbations to predict")
    if D.env_from_torchrun().distributed:
        raise ConfigError("distgen predict --data runs in one process: start it without torchrun")
    into_run = checked_outputs(run_dir, out, real, overwrite, [("--data", data), *read_files(run_dir, train_data)])
    with RunLock(run_dir, "predict") if into_run else contextlib.nullcontext(), float32_default(), contextlib.ExitStack() as files:
        return _predict_file(run_dir, data, Path(out), perturbations, checkpoint, weights, real, seed, counts, max_cells, sampling,
                             train_data, doses, files=files)


def _predict_file(run_dir: Path, data: Path, out: Path, perturbations: Sequence[str] | None, checkpoint: str | Path | None,
                  weights: str, real: str | Path | None, seed: int | None, counts: str | None, max_cells: int | str | None,
                  sampling: list[str], train_data: str | Path | None = None, doses: Any = None, *,
                  files: contextlib.ExitStack) -> Path:
    """``predict_file``'s work; ``files`` holds ``data`` as read by rows (``readable_by_rows``: a temporary copy for a file in
    anndata's older encoding or whose matrix the run reads is CSC) until the caller's ``with`` ends."""
    config = load_yaml(run_dir / "config.yaml")
    cap = predict_section(config if max_cells is None else {"predict": {"max_cells_per_condition": max_cells}})["max_cells_per_condition"]
    device = select_device((config.get("train") or {}).get("device", "auto"), 0)
    setup_backends(device, bool((config.get("train") or {}).get("tf32", True)))
    run = open_run(run_dir, checkpoint, weights, device, sampling, train_data=train_data, need_data=False, read_data=False)
    record = run.record  # what the run keeps of its training data: the same made from the file or read from the run folder
    seed = run.seed if seed is None else int(seed)
    # the run's own matrix of the file decides whether it is copied (a CSC layer it never reads was streamed as it is)
    rows = files.enter_context(readable_by_rows(data, "--data", reads=record.schema.expression))
    cells, obs = open_file(record, run.model, rows, data)
    # predict_to_disk's own, built here to check before any work; a model that reads no context predicts new ones
    translate = LabelTranslation(run.model.info, cells.info, new_contexts=not reads_contexts(run.model))
    held = sorted(set(cells.canonical_names[cells.condition_codes][~cells.is_control].tolist()))
    wanted = None
    if perturbations:
        delimiters = [cells.schema.combo_delimiter]
        wanted = list(dict.fromkeys(canonical_condition(p, cells.info.control_label, delimiters, cells.schema.control_labels)
                                     for p in perturbations))
        if cells.info.control_label in wanted:
            raise ConfigError(f"--perturbations names control cells ({listing(perturbations)}): they are the starting population, "
                              "not a perturbation to predict; name perturbed conditions of the file")
    held_set = set(held)
    if wanted is not None and cells.dosed:  # a condition without doses (dexa) names each of its populations (dexa@10, ...)
        from distgen.data.conditions import population_of

        base = {h: without_doses(h) for h in held}

        def named(w: str) -> list[str]:  # a label; the same population written otherwise (dexa@0.3 for a float32 column's
            if w in held_set:  # dexa@0.30000001192092896); a condition without doses: each of its populations
                return [w]
            same = population_of(w, held)
            return [same] if same is not None else [h for h in held if base[h] == w] or [w]

        wanted = list(dict.fromkeys(x for w in wanted for x in named(w)))
    predicted = [c for c in (held if wanted is None else wanted) if c in held_set]  # one FILE lacks: predict_to_disk refuses it
    pert = np.isin(cells.canonical_names[cells.condition_codes], predicted) & ~cells.is_control
    ctx = np.asarray(cells.info.contexts, dtype=object)[cells.labels.context.numpy()]
    bat = np.asarray(cells.info.batches, dtype=object)[cells.labels.batch.numpy()]
    contexts, batches = sorted(set(ctx[pert].tolist())), sorted(set(bat[pert].tolist()))
    # population labels (dexa@10): the model is asked their atoms
    as_atoms = list(dict.fromkeys(without_doses(c) for c in predicted)) if cells.dosed else predicted
    translate.check(as_atoms, contexts, batches, cells.schema, str(data))
    if new := sorted(set(contexts) - set(run.model.info.contexts)):  # admitted by check: the model reads no context
        print(f"note: context(s) {first_of(new, 8, render=lambda c: repr(str(c)))} of {data} were not in the run's training file; the model reads no context "
              "(use_context: false), so it predicts them from their own control cells in the file", file=sys.stderr)
    lacking = sorted(set(contexts) - set(ctx[cells.is_control].tolist()))
    if lacking:
        raise InputDataError(f"{data} has no control cells of context(s) {listing(lacking)}, where it holds perturbed cells to predict: "
                             "each group is generated from the file's own control cells of its context. Add that context's control "
                             "cells to the file, or leave its perturbed cells out")
    check_empty_controls(cells, ctx, contexts, str(data))
    check_embeddable(run.model, record, run.config, as_atoms, contexts, batches, str(data))
    check_doses(run.model, record, cells, pert, doses, str(data), bool((run.config.get("preflight") or {}).get("allow_unembedded", False)))
    check_depth(record, cells, str(data))
    values: FileCounts | _AsRead | None = None
    if record.scale == "counts":  # data.schema.normalize: false: the model reads and writes counts
        if counts is not None:
            raise ConfigError("--counts: the run's cells are raw counts already (its data.schema.normalize: false), and so are its "
                              "predictions; leave out --counts")
        values = _AsRead()
    elif counts is not None:
        values = FileCounts(cells, obs, record, counts, seed)
    ckpt = run.checkpoint
    assert ckpt is not None
    provenance = prediction_provenance(seed, "file", cap, run=str(run_dir), data=str(data), checkpoint=ckpt.name, weights=weights,
                                       sampling=sampling, counts=counts, perturbations=wanted, doses=doses_provenance(doses),
                                       library_sizes=values.sizes_record if isinstance(values, FileCounts) else None,
                                       **said_origin(run_dir))
    predict_to_disk(run.model, cells, out, record.set_size, seed=seed, max_cells=cap, weights=ckpt, real=real,
                    conditions=wanted, values=values, provenance=provenance, doses=doses, trained_doses=record.dose_ranges)
    for note in run.warnings:
        print(f"note: the training of this run warned: {note}", file=sys.stderr)
    if record.filter:
        print(f"note: the run's data.filter ({record.filter}) selected its training cells; it is not applied to {data}: "
              "filter the file first where it should be", file=sys.stderr)
    if isinstance(values, FileCounts):
        for note in values.notes:
            print(note, file=sys.stderr)
    return out


def without_doses(label: str) -> str:
    """The condition a population label names, its doses dropped (``dexa@10+B@1`` -> ``B+dexa``); a label that is not a
    dose label as it is. One rule for ``_predict_file``'s two readings of a dosed file's labels (the conditions a
    ``--perturbations`` without doses names, the atoms the model is asked)."""
    from distgen.data.conditions import condition_string, parse_dose_label

    read = parse_dose_label(label)
    return label if read is None else condition_string(read[0])


def file_tables(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(obs, var)`` of an .h5ad or .zarr, without its matrix (``InputFileError`` when it is not one)."""
    from anndata.io import read_elem

    if path.suffix == ".zarr" or path.is_dir():
        import zarr

        group = zarr.open_group(str(path), mode="r")
        return read_elem(group["obs"]), read_elem(group["var"])
    import h5py

    try:
        root = h5py.File(path, "r")
    except OSError as exc:
        from distgen.data.h5ad import sniff
        from distgen.errors import InputFileError

        kind, fix = sniff(path)
        raise InputFileError(f"{str(path)!r} is not a readable .h5ad file: it is {kind} ({exc}); {fix}") from None
    with root:
        if "obs" not in root or "var" not in root or not hasattr(root["obs"], "keys"):
            raise InputDataError(f"{path} is not an AnnData file in anndata's current encoding (obs and var groups); write it again "
                                 "with anndata.read_h5ad(path).write_h5ad(new_path)")
        return read_elem(root["obs"]), read_elem(root["var"])


def open_file(record: DataRecord, model: Any, path: Path, name: Path | None = None) -> tuple[DiskCells, pd.DataFrame]:
    """``path`` as ``DiskCells`` read with the run's schema on the model's genes, and its ``obs``; refusals name the fix and
    the file as ``name`` (default ``path``): the user's file where ``path`` is its temporary copy (``readable_by_rows``),
    which is gone by the time the message is read."""
    shown = path if name is None else name
    schema = record.schema
    info = model.info
    obs, var = file_tables(path)
    missing = [c for c in schema.required_columns() if c not in obs.columns]
    if missing:
        raise InputKeyError(f"{shown}: " + missing_columns_message(obs, schema, info, missing))
    genes = [str(g) for g in var.index]
    present = set(genes)
    absent = [g for g in info.genes if g not in present]
    if absent:
        shared = len(info.genes) - len(absent)
        raise InputDataError(
            f"{shown} lacks {len(absent)} of the run's {len(info.genes)} genes ({shared} shared; lacking "
            f"{first_of(absent, 5, render=repr, enclosed=True)}): the model "
            "reads every gene it was trained on, by name (a missing gene set to zero would be a value it never saw). Give a "
            "file that holds all of them (other genes and any gene order are fine; the run's genes: RUN/info.json)."
            + gene_hint(genes, info.genes, var))
    check_controls(obs, schema, shown)
    found = DiskCells(path, dataclasses.replace(schema, scale="auto"), genes=info.genes, library_genes=record.library_genes)
    declared = schema.scale
    if declared != "auto" and found.scale != declared:
        raise InputDataError(scale_message(shown, found.scale, declared, schema.target_sum))
    trained = record.scale
    reads = "log" if found.scale == "log" or found.normalize else found.scale
    if reads != trained:
        raise InputDataError(scale_message(shown, found.scale, trained, schema.target_sum, normalize=schema.normalize))
    library = record.library_genes
    if found.normalize and library is not None and not set(library) <= set(genes):
        n = len(set(library) - set(genes))
        warn(f"{shown} holds counts without {n} of the {len(library)} genes the run's training cells were normalised over: "
             "normalize_total sums a cell's counts over the genes it is given, so these cells are scaled unlike the training "
             "cells. Give every gene of the training file for values on the same scale")
    return found, obs


def scale_message(path: Path, found: str, wanted: str, target_sum: float, normalize: bool = True) -> str:
    """Why the values of ``path`` (``found``: ``counts`` or ``log``) are not on the run's scale (``wanted``), and the fix."""
    if found == "counts":
        return (f"{path} holds raw counts but the run was trained on log1p values (its data.schema.scale: {wanted}): give the "
                f"file's values as the training file's were, e.g. with scanpy: sc.pp.normalize_total(adata, target_sum={target_sum:g}); "
                "sc.pp.log1p(adata) (the same target_sum as the training file's)")
    return (f"{path} holds log-normalised values but the run was trained on raw counts (its data.schema: scale {wanted}"
            + ("" if normalize else ", normalize: false") + "): give the file's raw counts (e.g. its counts layer, or adata.raw)")


def check_empty_controls(cells: DiskCells, ctx: np.ndarray, contexts: Sequence[str], source: str) -> None:
    """Refuse a context of ``contexts`` whose every control cell has no expression (every gene of the run 0), warn of some.

    Each prediction starts from a control cell of its context and, with ``--counts``, draws its library size from them: an
    empty control gives a prediction from an all-zero cell, of library size 0 (an all-zero cell in counts). A file whose
    controls of a context were all empty was predicted without a word, every generated cell of it 0 under ``--counts``.
    ``ctx``: ``[N]`` context label per cell of ``cells``. The training load says the same of its own cells (``dataset``).
    """
    rows = np.flatnonzero(cells.is_control & np.isin(ctx, list(contexts)))
    empty = np.zeros(rows.size, dtype=bool)
    for i in range(0, rows.size, 16384):  # the stored values, unnormalised: a row is empty as stored
        part = cells.read(rows[i : i + 16384], log=False)
        empty[i : i + 16384] = np.diff(part.indptr) == 0 if not part.nnz else np.asarray((part != 0).sum(1)).ravel() == 0
    if not empty.any():
        return
    per = pd.DataFrame({"k": ctx[rows].astype(str), "e": empty}).groupby("k", sort=True)["e"]
    whole = [k for k, e in per if bool(e.all())]
    if whole:
        where = "" if whole == ["all"] and set(ctx.tolist()) == {"all"} else f" of context(s) {listing(whole)}"  # no contexts: all
        raise InputDataError(f"{source}: every control cell{where} has no expression (all of the run's genes 0), "
                             "and each prediction starts from the file's control cells of its context (with --counts, also "
                             "drawing its library size from them: every generated cell would be all zeros). Give that context's "
                             "real control cells (the file's values may sit in a layer or adata.raw), or leave its perturbed cells out")
    warn(f"{source}: {int(empty.sum())} of the {counted(rows.size, 'control cell')} predictions start from have no expression (every "
         "gene of the run 0): predictions drawn from them start from an all-zero cell (with --counts, of library size 0: all "
         "zeros). Drop them first (scanpy.pp.filter_cells(adata, min_counts=1))")


def check_controls(obs: pd.DataFrame, schema: Any, path: Path) -> None:
    """``InputDataError`` when no cell of ``obs`` carries the schema's control label: its control cells start each prediction."""
    col = schema.perturbation_cols[0]
    labels = obs[col].astype(str).str.strip()
    if labels.isin(schema.control_labels).any():
        return
    atoms = sorted({a.strip() for v in pd.unique(labels) for a in str(v).split(schema.combo_delimiter) if a.strip()})
    like = control_like_atoms(atoms, schema)
    hint = (f" {listing(like)} look(s) like control labels: relabel them, adata.obs[{col!r}] = adata.obs[{col!r}]"
            f".replace({{{like[0]!r}: {schema.control_labels[0]!r}}}), and write the file again") if like else (
        f" Add control cells labelled {schema.control_labels[0]!r} in obs[{col!r}] (e.g. the controls of the same experiment)")
    raise InputDataError(f"{path} has no control cells: no cell of obs[{col!r}] is labelled {listing(schema.control_labels)} "
                         f"(the run's control label{'s' if len(schema.control_labels) > 1 else ''}), and each prediction starts "
                         f"from the file's own control cells of its context.{hint}")


def check_embeddable(model: Any, record: DataRecord, config: dict[str, Any], conditions: Sequence[str], contexts: Sequence[str],
                     batches: Sequence[str], path: str) -> None:
    """The rule of ``distgen predict`` on the run's split (``check_prediction``, as ``check_split`` calls it) for the file's
    ``conditions`` and the ``contexts`` and ``batches`` of its cells to predict: atoms a trained model never learnt to embed
    (a one-hot row no training set carried) and contexts or batches whose learned row no training set carried (a
    ``held_out_context`` cell type trained without its control sets) stop here (``PreflightError``, exit 2) unless the run's
    ``preflight.allow_unembedded`` (then a printed warning); a fitted model's fallback is a printed note."""
    from distgen.models.preflight import check_prediction

    if not conditions:
        return
    allow = bool((config.get("preflight") or {}).get("allow_unembedded", False))
    leave_out = (f"; or predict without them: --perturbations for perturbations, {path} without those cells for contexts "
                 "and batches")
    for note in check_prediction(model, record, conditions, contexts=contexts, batches=batches, allow_unembedded=allow,
                                 leave_out=leave_out):
        print(note, file=sys.stderr)


def check_doses(model: Any, record: DataRecord, cells: DiskCells, rows: np.ndarray, doses: Any, path: str, allow: bool = False) -> None:
    """The doses' notes, printed before any work: the pre-flight's note (``distgen.models.preflight.dose_blind_note``) when
    the model reads no dose and the cells to predict (``rows``: ``[N]`` bool) carry doses other than 1 or ``doses`` asks
    others (``distgen predict`` on the run's split says the same of its training cells), and that nothing is warned of
    doses outside the training range when the run's data record predates ``dose_ranges``. Cells at several doses per
    condition (a population per dose) are refused for such a model (``ConfigError``) unless ``allow`` (the run's
    ``preflight.allow_unembedded``), as ``distgen train`` refuses them."""
    from distgen.conditioners.dose import dose_blind
    from distgen.data.doses import dose_record
    from distgen.models.preflight import dose_blind_note

    column = record.schema.dose_col
    if column is None:
        return
    if dose_blind(model):  # the rows' doses matter to the note only: not read for a model that reads doses (~0.5 s per 1M cells)
        record_ = dose_record(cells.labels.index(torch.from_numpy(np.flatnonzero(rows))), cells.info, column)  # those rows only
        notes = dose_blind_note(model, column, record_.ranges, f"the cells of {path} to predict", doses is not None)
        if notes and cells.dosed and record_.several:  # a population per dose: one prediction for all of them
            from distgen.models.preflight import several_doses_refusal

            notes = several_doses_refusal(column, record_.several, path, allow)
        for note in notes:
            print(note, file=sys.stderr)
    if doses is not None and record.dose_ranges is None:
        print("note: the run's data record (data_record.json) was written before distgen recorded the doses of the training "
              "cells, so a dose asked outside them is not warned about (give the training file, --train-data PATH, to check)",
              file=sys.stderr)


def check_depth(record: DataRecord, cells: DiskCells, path: str) -> None:
    """``InputDataError`` when the file's control cells sit on another depth scale than the run's training controls of the same
    context (``depth_mismatches``: median ``sum(expm1(x))`` beyond ``DEPTH_FACTOR`` either way); log1p values only."""
    if record.scale != "log":
        return
    ctx = np.asarray(cells.info.contexts, dtype=object)[cells.labels.context.numpy()]
    rows = []
    for c in pd.unique(ctx[cells.is_control]):
        mine = np.flatnonzero(cells.is_control & (ctx == c))
        rows.append(mine[np.linspace(0, mine.size - 1, min(mine.size, DEPTH_SAMPLE)).astype(np.int64)])
    picked = np.sort(np.concatenate(rows))
    x = torch.from_numpy(cells.read(picked).toarray())
    off = record.depth_mismatches(x, ctx[picked])
    if off:
        shown = "; ".join(f"{c}: {a:.4g} vs {b:.4g}" for c, a, b in off[:5])
        raise InputDataError(
            f"{path} is on another scale than the run's training cells: the median of sum(expm1(x)) over the run's genes of its "
            f"control cells differs from the training controls' by more than {DEPTH_FACTOR:g}x in {counted(len(off), 'context')} "
            f"({shown}). Its values would be read as other expression levels: normalise the file as the training file was "
            f"(log1p of counts normalised to target_sum {record.schema.target_sum:g} per cell, not CPM or log2), or give its raw "
            "counts when the run's data.schema.scale is auto")


class FileCounts:
    """``RowValues`` of ``predict_to_disk`` for ``--counts``: the file's rows in raw counts, as ``distgen.pipeline.countspace``
    makes them in memory.

    A generated cell of a group gets a library size drawn (with replacement, seeded by ``group_seed(seed, ..., 2)``) from its
    group's control cells' sizes, then counts from ``model`` (``round``, ``poisson``, ``nb`` with dispersions fitted on the
    run's training cells); a real cell (a control, a truth row) its own size, rounded. Sizes are the file's stored totals over
    the genes the training normalised over when it holds counts, else a library-size ``obs`` column, else ``target_sum``.
    """

    scale = "counts"

    def __init__(self, cells: DiskCells, obs: pd.DataFrame, record: DataRecord, model: str, seed: int) -> None:
        self.model, self.seed = C.check_model(model), seed
        self.notes: list[str] = []
        self._sizes = np.full(cells.n_cells, np.nan)  # filled as rows are asked for
        self._cells: DiskCells | None = None
        self._obs_sizes: np.ndarray | None = None
        if cells.scale == "counts":  # normalised here with the schema's target_sum, over the training file's genes
            self.target_sum, self._cells, source = float(cells.schema.target_sum), cells, f"{cells.path}'s counts"
        else:
            self.target_sum, self.notes = record.target_sum, list(record.target_notes)
            self._obs_sizes, source = C.library_sizes(obs, len(obs), self.target_sum)
        self.sizes_record = C.sizes_provenance(source)  # the prediction file's provenance library_sizes
        self.theta = None
        if model == "nb":  # fitted on the run's training cells with its train.seed (DataRecord.dispersions: recorded at training)
            self.theta = record.dispersions()
        self._group: tuple[int, np.random.Generator, np.ndarray] | None = None
        self.notes.append(f"counts ({model}): library sizes from {source}; generated cells draw theirs from their group's control cells")

    def sizes(self, rows: np.ndarray) -> np.ndarray:
        """``[len(rows)]`` library sizes of the file's ``rows``."""
        if self._obs_sizes is not None:
            return np.asarray(self._obs_sizes[rows], dtype=np.float64)
        assert self._cells is not None
        rows = np.asarray(rows, dtype=np.int64)
        todo = np.unique(rows[np.isnan(self._sizes[rows])])
        if todo.size:
            self._sizes[todo] = self._cells.library_sizes(todo)
        return self._sizes[rows]

    def generated(self, x: np.ndarray, group: Group, start: int) -> np.ndarray:
        if start == 0 or self._group is None or self._group[0] != id(group):
            rng = np.random.default_rng(group_seed(self.seed, group.condition, group.context, group.batch, 2))
            self._group = (id(group), rng, C.draw_sizes(self.sizes(group.controls), len(group.cells), rng))
        _, rng, size = self._group
        return C.to_counts(x, size[start : start + len(x)], self.target_sum, self.model, self.theta, rng)

    def real(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """A real cell's counts: as the file stores them when it holds counts (rounded), else rebuilt from its log values at
        its library size (rebuilt from float32 log values, a count above about 2.6e5 was off: 5e7 came back as 49,999,976)."""
        if self._cells is not None:
            stored = self._cells.read(np.asarray(rows, dtype=np.int64), log=False).toarray()
            if stored.shape == x.shape:
                return C.as_float32_counts(np.rint(stored), f"{self._cells.path}'s stored counts")
        return C.to_counts(x, self.sizes(rows), self.target_sum, "round")


class _AsRead:
    """``RowValues`` that keeps every row as read, for a run whose cells are counts (``data.schema.normalize: false``)."""

    scale = "counts"

    def generated(self, x: np.ndarray, group: Group, start: int) -> np.ndarray:
        return x

    def real(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return x
