"""Predict from an on-disk AnnData with bounded memory: ``predict_to_disk`` and its groups (``disk_groups``).

The groups, control draws and random draws of the in-memory prediction (``distgen.pipeline.predict``), read from
the file in pieces and written chunk by chunk (``docs/scale.md``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
import torch

from distgen.data.conditions import dose_label, parse_dose_label
from distgen.data.disk import DiskCells, control_rows
from distgen.data.disk_split import split_rows
from distgen.data.doses import dose_record, group_doses, read_tags, resolve_doses, with_doses
from distgen.data.foreign import LabelTranslation, in_model_genes
from distgen.data.groups import Group, control_draw, group_seed, held_out_groups
from distgen.data.schema import PerturbationSchema
from distgen.data.split import Split
from distgen.errors import InputDataError, check_finite_samples
from distgen.seeds import content_keys, label_seed, name_keys
from distgen.types import COMBO
from distgen.types.layout import file_label

__all__ = ["RowValues", "disk_groups", "predict_to_disk"]


class RowValues(Protocol):
    """What ``predict_to_disk`` writes in place of log-normalised rows (``distgen.pipeline.predict_file.FileCounts``: raw
    counts). ``scale`` is the written file's ``uns["distgen"]["scale"]``."""

    scale: str

    def generated(self, x: np.ndarray, group: Group, start: int) -> np.ndarray:
        """``x`` ``[n, G]``: cells ``start:start + n`` of ``group``'s generated cells (a group comes in one or more calls, in order)."""

    def real(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``x`` ``[n, G]``: the file's cells at ``rows`` (control cells, or a group's real cells for ``real``)."""


def disk_groups(cells: DiskCells, pool: np.ndarray, max_cells: int | None = None, rows: np.ndarray | None = None,
                fallback: np.ndarray | None = None, keys: Callable[[np.ndarray], np.ndarray] | None = None) -> list[Group]:
    """The perturbed (condition, context, batch) groups of ``cells`` (of ``rows`` when given) with their control pools.

    The rule of the in-memory path (``distgen.data.groups.held_out_groups``, as ``Dataset.groups``), with the
    control cells of ``pool`` as each context and batch's own, or, where ``pool`` has none of a context (and batch),
    those of ``fallback`` (a split part's held-out controls first, its training controls else, as in memory): the
    same file held in memory gives the same groups. Each pool (and a group's cells that ``max_cells`` caps) is taken
    in ``draw_order`` of its cells' values: ``keys`` (sorted rows -> ``distgen.seeds.content_keys``) gives them, by
    default read from the file.
    """
    info = cells.info
    ctx = np.asarray(info.contexts, dtype=object)[cells.labels.context.numpy()]
    bat = np.asarray(info.batches, dtype=object)[cells.labels.batch.numpy()]

    def own_controls(context: str, batch: str | None) -> np.ndarray:
        for ctrl in (pool, pool[:0] if fallback is None else fallback):
            keep = ctx[ctrl] == context
            if batch is not None:
                keep &= bat[ctrl] == batch
            if keep.any():
                return ctrl[keep]  # type: ignore[no-any-return]
        return pool[:0]

    conditions = cells.canonical_names[cells.condition_codes]
    pert = np.flatnonzero(~cells.is_control)
    if rows is not None:
        pert = pert[np.isin(pert, rows)]
    if keys is None:
        def keys(rows: np.ndarray) -> np.ndarray:
            return content_keys(cells.read(rows), info.genes)
    named = None
    if max_cells is not None:  # a capped group's cells are drawn by their names (obs_names), read from the file once
        all_names = cells.cell_names()

        def named(rows: np.ndarray) -> np.ndarray:
            return name_keys(all_names[rows])
    return held_out_groups(pert, conditions, ctx, bat, own_controls, keys, max_cells, named)


def predict_to_disk(
    model: Any,
    source: DiskCells | str | Path,
    out: str | Path,
    set_size: int = 256,
    sets_per_call: int | None = None,
    *,
    seed: int = 0,
    schema: PerturbationSchema | None = None,
    control_pool: int = 20000,
    max_cells: int | None = None,
    split: Split | None = None,
    part: str = "test",
    weights: str | Path | None = None,
    real: str | Path | None = None,
    conditions: Sequence[str] | None = None,
    values: RowValues | None = None,
    provenance: dict[str, Any] | None = None,
    doses: Any = None,
    trained_doses: Mapping[str, tuple[float, float]] | None = None,
    fingerprint: str | None = None,
) -> Path:
    """Generate every perturbed group of an on-disk AnnData (of a split's ``part``), written chunk by chunk.

    Groups, control cells and random draws follow the in-memory prediction (``distgen.pipeline.predict``): each
    (condition, context, batch) group of ``source`` (``disk_groups``) gets as many generated cells as it
    has real ones (``max_cells``: at most that many per condition in a context, a fixed random subset over
    its batches, drawn in the order of the cells' values: the cells of a capped condition are read once for it), in sets of ``set_size``, from the control cells ``control_draw`` picks in the control
    cells of its own context and batch (a batch without any borrows those of the context's other batches),
    labelled with its batch. Each group is one ``model.predict`` call of its sets under the seed
    ``group_seed(seed, condition, context, batch, 1)``, as in memory: its cells depend on the seed and its labels
    only, never on the other groups of the file. ``sets_per_call`` (``None``: no limit) caps the sets of one call: a
    group with more is generated in several calls, call ``j > 0`` seeded by ``label_seed(seed, (condition, context,
    batch, str(j)), 1)``, so such a group's cells then depend on ``sets_per_call`` (still not on other groups) and
    differ from the in-memory ones. Control cells come
    from an in-memory pool of at most ``control_pool`` cells (``control_rows``: every control when the
    file has fewer, and then the groups, draws and generated cells are those of the same file predicted in memory).
    Generated rows are appended to ``out`` (dense ``X``, h5ad) as they come, followed by the real control
    cells the groups were predicted from, in the layout of Arc Institute's ``cell-eval run``
    (``obs['target']``, control label ``non-targeting``, ``obs['celltype']``, and ``obs['batch']`` when
    the file has several batches). Peak memory is one call's cells (the largest group's, or ``sets_per_call`` sets)
    plus the control pool, whatever the number of groups.

    ``split`` (``distgen.data.disk_split.disk_split`` of this file) predicts only the perturbed cells of its ``part``,
    as ``Dataset.groups(part)`` does in memory: from the part's held-out controls of each context and batch when the
    split holds some out, else from its training controls.

    ``real`` also writes the ground truth in the same layout, chunk by chunk: each group's real cells (those it mirrors,
    ``max_cells`` applied), then the same control cells, the truth ``distgen evaluate --pred OUT --real REAL`` scores
    the prediction against (as ``distgen predict --real`` writes it in memory). The two are renamed into place together,
    each recording the truth's fingerprint (``distgen.data.layout.publish_pair``): an error leaves both paths as they were.
    ``out`` and ``real`` may not be the file read, nor a folder (``OutputPathError``, before any work).

    NaN or inf in a group's generated cells is a ``NonFiniteSamplesError`` naming the group and ``weights`` (the
    checkpoint they came from, when given), as in memory: nothing is written to ``out`` (the partial file is removed).

    ``conditions`` (canonical: atoms sorted, joined by ``+``) predicts only those perturbed conditions of the file (each
    group's cells are the same as when every condition is predicted); one the file does not hold is an ``InputDataError``.
    ``values`` writes every row of ``out`` and ``real`` through it instead (``RowValues``: raw counts). ``provenance`` is
    recorded in ``out``'s ``uns["distgen"]["provenance"]`` (``distgen.pipeline.predict.prediction_provenance``).

    Each group is asked at the dose its cells carry (``schema.dose_col``), unless ``doses`` says otherwise, as in memory
    (``distgen.predict``'s ``doses``, resolved by the same ``distgen.data.doses.group_doses``): a number (every group's
    atoms at it) or ``{condition: dose}`` (a number, or one per atom in the order the condition writes them; the others at
    their own); the same doses give the in-memory cells. A dose outside the range an atom's training cells carry warns
    (``DoseExtrapolationWarning``): ``trained_doses`` (``{atom: (lowest, highest)}``, e.g. a run's
    ``DataRecord.dose_ranges``) gives those ranges, by default the file's cells of ``split``'s training part; without
    either nothing is known of training and nothing is warned. ``real`` stays the measured cells, at their own dose.

    ``fingerprint`` (``distgen.data.disk_fingerprint.content_fingerprint`` of the file when the run trained on it, e.g. the
    ``content_fingerprint`` that ``benchmarks.harness.train_from_disk --out`` records in ``data_fingerprint.json``) is
    checked before any work: a file rewritten since with the same names and labels but other values is an
    ``InputDataError`` (``split`` checks the names and labels only).
    """
    from distgen.data.layout import CONTROL, ChunkedWriter, publish_pair

    if set_size < 1 or (sets_per_call is not None and sets_per_call < 1) or control_pool < 1:
        raise ValueError(f"need set_size, sets_per_call (or None) and control_pool >= 1; got {set_size}, {sets_per_call}, {control_pool}")
    cells = in_model_genes(model, source if isinstance(source, DiskCells) else DiskCells(source, schema))
    _check_outputs(cells.path, out, real)
    if fingerprint is not None:
        from distgen.data.disk_fingerprint import check_fingerprint

        check_fingerprint(cells, fingerprint)
    info, lab = cells.info, cells.labels
    translate = LabelTranslation.between(model, info)  # the file's label ids as the model's (another file: other vocabularies)
    if split is None:
        pool_rows = control_rows(cells, control_pool, seed, set_size)
    else:
        inside, train = split_rows(cells, split, part), split_rows(cells, split, "train")
        held, trained = inside[cells.is_control[inside]], train[cells.is_control[train]]
        pool_rows = control_rows(cells, control_pool, seed, set_size, within=np.concatenate([held, trained]))
    pool = sp.vstack([cells.read(pool_rows[i : i + 16384]) for i in range(0, pool_rows.size, 16384)], format="csr")
    pool_keys = content_keys(pool, info.genes)

    def keys(rows: np.ndarray) -> np.ndarray:
        """The pool's keys for its rows; a capped group's cells are read (in blocks) for theirs."""
        at = np.searchsorted(pool_rows, rows)
        pooled = at < pool_rows.size
        pooled[pooled] = pool_rows[at[pooled]] == rows[pooled]
        out = np.zeros(rows.size, dtype=np.uint64)
        out[pooled] = pool_keys[at[pooled]]
        rest = np.flatnonzero(~pooled)
        for i in range(0, rest.size, 16384):
            out[rest[i : i + 16384]] = content_keys(cells.read(rows[rest[i : i + 16384]]), info.genes)
        return out

    wanted = None if conditions is None else _condition_rows(cells, conditions)
    if split is None:
        groups = disk_groups(cells, pool_rows, max_cells, wanted, keys=keys)
    else:
        within = inside if wanted is None else inside[np.isin(inside, wanted)]
        groups = disk_groups(cells, pool_rows[np.isin(pool_rows, held)], max_cells, within, pool_rows[np.isin(pool_rows, trained)], keys)
    if not groups:
        where = "" if split is None else f" in split part {part!r}"
        raise InputDataError(f"{cells.path} has no perturbed cells{where} to predict")
    atoms_of = {g.condition: _atoms(g.condition, cells) for g in groups}  # a population label (dexa@10) is its atoms to a model
    if translate is not None:
        translate.check([COMBO.join(atoms_of[g.condition]) for g in groups], [g.context for g in groups], [g.batch for g in groups],
                        cells.schema, str(cells.path))
    asked = None
    if doses is not None or cells.dosed:  # the file's recorded doses, the training ranges; resolved before any work, as in memory
        firsts = np.array([g.cells[0] for g in groups], dtype=np.int64)  # one dose per (condition, context): a cell says it
        trained = np.zeros(0, dtype=np.int64) if split is None or trained_doses is not None else train
        rows = np.concatenate([firsts, trained])
        record = dose_record(lab.index(torch.from_numpy(rows)), info, cells.schema.dose_col, np.arange(firsts.size, rows.size))
        if trained_doses is not None:
            record = dataclasses.replace(record, ranges={str(a): (float(r[0]), float(r[1])) for a, r in trained_doses.items()})
        if doses is None:
            # each population at its own measured dose: resolved only to warn, once, of a held-out dose outside the training
            # range, as distgen.predict's asked_doses does (before, only a prediction with doses= read the record)
            read = [parse_dose_label(g.condition, COMBO) for g in groups]
            resolve_doses(record, [r[0] if r is not None else () for r in read], [g.context for g in groups], None, None,
                          "predict", read_tags(read))
        else:
            asked = group_doses(record, [g.condition for g in groups], [g.context for g in groups], doses,
                                control=info.control_label, delimiters=[cells.schema.combo_delimiter], dosed=cells.dosed)
    with_batch = len(info.batches) > 1
    first_param = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    device = first_param.device if first_param is not None else torch.device("cpu")  # the model's, as in memory
    used = np.unique(np.concatenate([g.controls for g in groups]))
    ctx = np.asarray(info.contexts, dtype=object)[lab.context.numpy()]
    bat = np.asarray(info.batches, dtype=object)[lab.batch.numpy()]

    def write_controls(writer: ChunkedWriter) -> None:
        """The real control cells the groups were predicted from, after a file's groups."""
        for i in range(0, used.size, 16384):
            rows = used[i : i + 16384]
            x = pool[np.searchsorted(pool_rows, rows)].toarray()
            writer.append(x if values is None else values.real(x, rows), [CONTROL] * rows.size, ctx[rows].tolist(), "control",
                          bat[rows].tolist())

    delimiter = cells.schema.combo_delimiter  # written as the file labels its combinations (A_B), read back as A+B
    # a whole file (distgen predict --data): per condition its atoms in the file's order (MAP2K6+KLF1), for cell-eval against
    # that file; a split's part (a streaming run) is written sorted, as the in-memory run writes it
    written = _written(groups, cells) if split is None else {g.condition: g.condition for g in groups}
    scale = "lognorm" if values is None else values.scale
    pred_writer = ChunkedWriter(out, info.genes, chunk_rows=max(1, min(set_size, 1024)), with_batch=with_batch, combo_delimiter=delimiter,
                                perturbation_type=cells.schema.perturbation_type, scale=scale, provenance=provenance,
                                publish=real is None)  # with a truth: the two renamed together (publish_pair)
    with pred_writer as writer:
        with torch.no_grad():
            for gi, g in enumerate(groups):
                n = len(g.cells)
                sets = -(-n // set_size)
                drawn = g.controls[control_draw(len(g.controls), sets * set_size, g.condition, g.context, g.batch)]
                step = sets if sets_per_call is None else sets_per_call
                # a population of several doses asked at another is written at the dose asked (as distgen.predict writes it)
                name = dose_label(atoms_of[g.condition], asked[gi], COMBO) if asked is not None and cells.dosed else g.condition
                label = file_label(written[g.condition] if name == g.condition else name, info.control_label, delimiter)
                for j, first in enumerate(range(0, sets, step)):
                    k = min(step, sets - first)
                    picked = np.searchsorted(pool_rows, drawn[first * set_size : (first + k) * set_size])
                    control = torch.from_numpy(pool[picked].toarray()).reshape(k, set_size, -1)
                    labels = lab.index(torch.full((k,), int(g.cells[0]), dtype=torch.long))
                    if asked is not None:  # by atom name, in the file's vocabulary, before translating to the model's
                        labels = with_doses(labels, info.perturbations, dict(zip(atoms_of[g.condition], asked[gi])))
                    labels = labels if translate is None else translate(labels)
                    torch.manual_seed(group_seed(seed, g.condition, g.context, g.batch, 1) if j == 0 else
                                      label_seed(seed, (g.condition, g.context, g.batch, str(j)), 1))
                    mask = torch.ones(k, set_size, dtype=torch.bool, device=device)
                    pred = model.predict(control.to(device), mask, labels.to(device)).float().cpu().numpy()
                    kept = min(k * set_size, n - first * set_size)
                    x = pred.reshape(k * set_size, -1)[:kept]
                    check_finite_samples(x, f"condition {g.condition} @ {g.context}{f' (batch {g.batch})' if with_batch else ''}", weights)
                    x = x if values is None else values.generated(x, g, first * set_size)
                    writer.append(x, [label] * kept, [g.context] * kept, "predicted", [g.batch] * kept)
        write_controls(writer)
    if real is not None:
        real_writer = ChunkedWriter(real, info.genes, chunk_rows=1024, with_batch=with_batch, combo_delimiter=delimiter,
                                    perturbation_type=cells.schema.perturbation_type, kind="real", scale=scale, publish=False)
        try:
            with real_writer as truth:
                for g in groups:  # the measured cells under their own labels, whatever dose they were asked at (as in memory)
                    label = file_label(written[g.condition], info.control_label, delimiter)
                    for i in range(0, len(g.cells), 16384):
                        rows = g.cells[i : i + 16384]
                        x = cells.read(rows).toarray()
                        truth.append(x if values is None else values.real(x, rows), [label] * rows.size, [g.context] * rows.size, "real", [g.batch] * rows.size)
                write_controls(truth)
        except BaseException:
            pred_writer.discard()  # no prediction without its truth: both paths stay as they were
            raise
        publish_pair(pred_writer, real_writer)
    return Path(out)


def _check_outputs(source: str | Path, out: str | Path, real: str | Path | None) -> None:
    """``OutputPathError`` before any work for an output that is a folder, the file read (``out=source`` replaced the data
    with its prediction) or the other output."""
    from distgen.atomic import same_file
    from distgen.errors import OutputPathError

    seen: list[str | Path] = []
    for name, p in (("out", out), ("real", real)):
        if p is None:
            continue
        if same_file(p, source):  # a symlink, hard link or another case of the name too
            raise OutputPathError(f"{name}={str(p)!r} is the file predicted from: writing there would replace its cells with the "
                                  "prediction; give another path")
        if Path(p).is_dir():
            raise OutputPathError(f"{name}={str(p)!r} is a folder; give a file path such as {str(Path(p) / 'pred.h5ad')!r}")
        if any(same_file(p, q) for q in seen):
            raise OutputPathError(f"out and real are the same file {str(p)!r}; give them different paths")
        seen.append(p)


def _atoms(condition: str, cells: DiskCells) -> tuple[str, ...]:
    """The atoms (sorted) of a group's canonical condition: ``A+B``, or a population label ``A@1+B@3`` of data at several
    doses per condition."""
    read = parse_dose_label(condition, COMBO) if cells.dosed else None
    return read[0] if read is not None else tuple(condition.split(COMBO))


def _written(groups: Sequence[Any], cells: DiskCells) -> dict[str, str]:
    """Per condition of ``groups``, the label it is written with: its atoms in the order the file writes them, where all
    its cells (of every context and batch) write them in one order (cell-eval matches labels as written, so a truth
    labelled ``MAP2K6+KLF1`` pairs with the prediction); the condition (sorted) where they write two orders (``A+B`` and
    ``B+A``: one condition in distgen, two in cell-eval, said by ``distgen evaluate``) and for data at several doses per
    condition (population labels ``A@1+B@3``)."""
    codes: dict[str, set[int]] = {}
    for g in groups:
        codes.setdefault(g.condition, set()).update(np.unique(cells.condition_codes[g.cells]).tolist())
    if cells.dosed:
        return {c: c for c in codes}
    orders = {c: {str(cells.written_names[k]) for k in ks} for c, ks in codes.items()}
    return {c: next(iter(o)) if len(o) == 1 else c for c, o in orders.items()}


def _condition_rows(cells: DiskCells, conditions: Sequence[str]) -> np.ndarray:
    """The perturbed rows of ``cells`` whose canonical condition is one of ``conditions``; ``InputDataError`` for one it lacks."""
    from distgen.wording import first_of, listing, quoted

    per_cell = cells.canonical_names[cells.condition_codes]
    held = sorted(set(per_cell[~cells.is_control].tolist()))
    held_set = set(held)
    absent = [c for c in dict.fromkeys(conditions) if c not in held_set]
    if absent:
        raise InputDataError(f"{cells.path} holds no perturbed cells of {listing(absent)}; its perturbed conditions are "
                             f"{first_of(held, 20, render=quoted)}")
    return np.flatnonzero(np.isin(per_cell, list(conditions)) & ~cells.is_control)
