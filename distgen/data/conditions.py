"""Parsing perturbation labels (single, ``A+B``, GEARS ``A+ctrl``, parallel columns) into atoms."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from distgen.data.schema import COMMON_CONTROL_LABELS, CONTEXT_SEPARATOR, PerturbationSchema
from distgen.errors import InputDataError, InputKeyError, LabelError, warn
from distgen.types.doses import DOSE_TAG as DOSE_TAG  # the text of doses in labels (types.doses): re-exported
from distgen.types.doses import current_label as current_label
from distgen.types.doses import current_labels as current_labels
from distgen.types.doses import current_labels_of_files as current_labels_of_files
from distgen.types.doses import dose_text as dose_text
from distgen.types.doses import exact_dose_text as exact_dose_text
from distgen.types.layout import (  # with the layout's vocabulary: importable without anndata
    MISSING_STRINGS,
    OTHER_DELIMITERS,
    form_message,
    form_twins,
    spacing_twins,
)
from distgen.wording import counted, first_of

CONTROL = "control"  #: canonical condition string of control cells


class MissingLabelError(InputDataError):
    """Cells without a perturbation, context or batch label (a missing label is never a control); exit code 2."""


def _is_blank(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float) and np.isnan(v):
        return True
    return str(v).strip().lower() in MISSING_STRINGS


def missing_mask(values: Any) -> np.ndarray:
    """``[N]`` bool: which values are missing (None, NaN, pandas NA, or an empty/"nan"/"None"/"NA" string)."""
    series = pd.Series(values, copy=False)
    mask = series.isna().to_numpy(copy=True)  # writable: pandas 3 (copy-on-write) hands out read-only views
    text = series[~mask].astype(str).str.strip().str.lower()
    mask[~mask] = text.isin(MISSING_STRINGS).to_numpy()
    return mask


def missing_labels(obs: pd.DataFrame, schema: PerturbationSchema) -> dict[str, np.ndarray]:
    """``{column: [N] bool}`` of cells with no label, for every column that has any.

    A cell lacks a perturbation label when its perturbation column is missing (or, for parallel
    columns, when every one of them is); context and batch columns are checked one by one.
    """
    out: dict[str, np.ndarray] = {}
    cols = schema.perturbation_cols
    pert = np.logical_and.reduce([missing_mask(obs[c].to_numpy(dtype=object)) for c in cols])
    if pert.any():
        out[cols[0] if len(cols) == 1 else "+".join(cols)] = pert
    for c in [*schema.context_cols, *([schema.batch_col] if schema.batch_col else [])]:
        m = missing_mask(obs[c].to_numpy(dtype=object))
        if m.any():
            out[c] = m
    return out


def handle_missing_labels(obs: pd.DataFrame, schema: PerturbationSchema, source: str = "the AnnData", can_drop: bool = True) -> np.ndarray | None:
    """Apply ``schema.missing_labels`` to ``obs``: None when every cell is labelled, else the keep-mask.

    ``"error"`` (the default) raises ``MissingLabelError`` naming each column, how many cells lack a
    label there and a few of their names; ``"drop"`` warns the same and returns the mask of cells to keep.
    """
    found = missing_labels(obs, schema)
    if not found:
        return None
    names = obs.index.astype(str)
    parts, words = [], []
    for col, mask in found.items():
        ex = ", ".join(repr(n) for n in names[mask][:3])
        cols = col.split("+") if col not in obs.columns else [col]
        said = sorted({str(v) for c in cols for v in obs[c].to_numpy(dtype=object)[mask] if isinstance(v, str) and v.strip()})
        text = f"; the text {', '.join(map(repr, said))}" if said else ""  # a "no value" word, not an empty cell
        words += [(col, w) for w in said]
        parts.append(f"{int(mask.sum())} of {counted(len(mask), 'cell')} in obs column {col!r} (e.g. {ex}{text})")
    what = "; ".join(parts)
    drop = np.logical_or.reduce(list(found.values()))
    if schema.missing_labels == "drop" and can_drop:
        warn(f"{source}: dropping {counted(int(drop.sum()), 'cell')} without a label: {what}")
        return ~drop
    fix = (
        "label them (control cells carry one of control_labels="
        f"[{first_of(list(schema.control_labels), 4, render=repr)}]) or drop them with "
        "PerturbationSchema(missing_labels='drop') (config: data.schema.missing_labels: drop)"
        if can_drop else "remove them from the file (adata = adata[labelled].copy(); adata.write_h5ad(...))"
    )
    if words:  # a real condition or context may be called "NA" or "None": say how to keep it
        col, w = words[0]
        fix += (f". A label spelled {', '.join(sorted({repr(w) for _, w in words}))} is read as no value (as exported tables write "
                f"one); if it is a real label, rename it, e.g. adata.obs[{col!r}] = adata.obs[{col!r}].astype(str).replace("
                f"{{{w!r}: {w + '_'!r}}})")
    raise MissingLabelError(f"{source}: missing label (NaN, None, empty or a 'no value' word: {sorted(MISSING_STRINGS - {''})}) "
                            f"for {what}; a missing label is not a control: {fix}")


def _check_delimiter(label: str, delim: str, genes: set[str]) -> None:
    """Raise when splitting ``label`` on ``delim`` would cut a gene name in pieces."""
    if label in genes:
        raise InputDataError(
            f"combo_delimiter {delim!r} clashes with gene name {label!r} (condition {label!r} would be split into "
            f"{label.split(delim)}); choose another PerturbationSchema.combo_delimiter or rename the labels"
        )
    parts = label.split(delim)
    for i in range(len(parts) - 1):
        joined = delim.join(parts[i : i + 2])
        if joined in genes:
            raise InputDataError(
                f"combo_delimiter {delim!r} clashes with gene name {joined!r} inside condition {label!r}; "
                "choose another PerturbationSchema.combo_delimiter or rename the labels"
            )


def parse_atoms(obs: pd.DataFrame, schema: PerturbationSchema, genes: Sequence[str]) -> list[tuple[str, ...]]:
    """Per cell, the sorted tuple of perturbation atoms (empty tuple = control)."""
    controls = set(schema.control_labels)
    delim = schema.combo_delimiter
    cols = schema.perturbation_cols
    clash_genes = {g for g in genes if delim in g} if schema.perturbation_type == "genetic" else set()
    raw = [obs[c].astype(object).to_numpy() for c in cols]
    cache: dict[tuple[Any, ...], tuple[str, ...]] = {}
    out: list[tuple[str, ...]] = []
    for values in zip(*raw):
        hit = cache.get(values)
        if hit is None:
            atoms: list[str] = []
            for v in values:
                if _is_blank(v) or str(v) in controls:
                    continue
                label = str(v)
                if len(cols) == 1:
                    if clash_genes and delim in label:
                        _check_delimiter(label, delim, clash_genes)
                    atoms += [a.strip() for a in label.split(delim) if a.strip() and a.strip() not in controls]
                elif label.strip() not in controls:  # one atom per column, trimmed: 'control ' is a control, as in one column
                    atoms.append(label.strip())
            hit = tuple(sorted(set(atoms)))
            cache[values] = hit
        out.append(hit)
    return out


def label_slots(values: tuple[Any, ...], schema: PerturbationSchema) -> list[str | None]:
    """The slots of one cell's label in the order written: the parts of ``A+B`` (GEARS ``A+ctrl`` included), or one per
    parallel column; a control or blank slot is None. What a per-slot dose ``d1+d2`` is read against."""
    controls = set(schema.control_labels)
    if len(values) == 1:
        v = values[0]
        if _is_blank(v) or str(v) in controls:
            return []
        parts = [p.strip() for p in str(v).split(schema.combo_delimiter)]
        return [p if p not in controls else None for p in parts if p]
    return [None if _is_blank(v) or str(v).strip() in controls else str(v).strip() for v in values]


def parse_doses(obs: pd.DataFrame, schema: PerturbationSchema, atoms: list[tuple[str, ...]]) -> list[tuple[float, ...]]:
    """Per cell, one dose per atom, in the order of ``atoms`` (sorted), 1.0 without a dose column.

    A dose is one number for every atom, or ``"d1+d2"``: one number per slot of the label as written, so ``B+A`` with
    ``"1+3"`` gives ``B`` 1 and ``A`` 3 (the atoms are sorted, the doses follow their atoms), and a GEARS ``A+ctrl`` with
    ``"1+1"`` gives ``A`` the first (the control slot's dose is dropped); as many numbers as atoms are read in the order
    the atoms are written. Parallel columns: one number per column.
    """
    if schema.dose_col is None:
        return [tuple(1.0 for _ in a) for a in atoms]
    out: list[tuple[float, ...]] = []
    cols = schema.perturbation_cols
    raw = [obs[c].astype(object).to_numpy() for c in cols]
    cache: dict[tuple[Any, ...], tuple[float, ...]] = {}
    for a, v, *values in zip(atoms, obs[schema.dose_col].astype(object).to_numpy(), *raw):
        if not a:
            out.append(())
            continue
        key = (v, *values)
        hit = cache.get(key)
        if hit is None:
            hit = _read_dose(v, a, label_slots(tuple(values), schema), schema)
            cache[key] = hit
        out.append(hit)
    return out


#: The largest dose a model can read (its dose tensors are float32): one beyond reads as inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def dose_label(atoms: Sequence[str], doses: Sequence[float], delimiter: str = "+") -> str:
    """The label of a population of ``atoms`` at ``doses`` (one per atom): each atom with its dose, ``atom@dose``, the
    parts sorted as text and joined by ``delimiter`` (``dex@10``, ``A@1+B@3``; ``"control"`` for no atom).

    Sorted as text, a label is its own canonical form: readers that split a label on the delimiter and sort its parts
    (the evaluation's, cell-eval's) give it back unchanged. ``parse_dose_label`` reads it back: the same atoms, and doses
    that are the same float32 (``dose_text``; exactly the same float64 unless a dose is a float32 value)."""
    parts = sorted(f"{a}{DOSE_TAG}{dose_text(d)}" for a, d in zip(atoms, doses, strict=True))
    return delimiter.join(parts) if parts else CONTROL


def legacy_dose_label(atoms: Sequence[str], doses: Sequence[float], delimiter: str = "+") -> str:
    """``dose_label`` as distgen wrote it before the short float32 form: each dose's ``exact_dose_text``
    (``dexa@0.30000001192092896`` for a float32 column's 0.3). What ``cells_hash`` hashes, so that the data hash of a
    run, split file or streamed fingerprint stored before the change still matches the same data."""
    parts = sorted(f"{a}{DOSE_TAG}{exact_dose_text(d)}" for a, d in zip(atoms, doses, strict=True))
    return delimiter.join(parts) if parts else CONTROL


def legacy_labels(named: Mapping[tuple[tuple[str, ...], tuple[float, ...]], str], delimiter: str = "+") -> dict[str, str]:
    """``{label: legacy label}`` of the populations ``named`` (``(atoms, doses) -> dose_label``) whose label distgen wrote
    otherwise before float32 doses were written short (``legacy_dose_label``); empty when none does (no float32 dose).
    One-to-one: ``check_float32_doses`` refuses two doses of an atom that are one float32."""
    out = {}
    for (atoms, doses), label in named.items():
        old = legacy_dose_label(atoms, doses, delimiter)
        if old != label:
            out[label] = old
    return out


def parse_dose_label(label: str, delimiter: str = "+") -> tuple[tuple[str, ...], tuple[float, ...]] | None:
    """``(atoms sorted, doses)`` of a ``dose_label`` (``"A@1+B@3"`` -> ``(("A", "B"), (1.0, 3.0))``); ``((), ())`` for
    ``"control"``; None when some part carries no ``@number`` (not a dose label)."""
    if label == CONTROL:
        return (), ()
    pairs = []
    for part in str(label).split(delimiter):
        atom, tag, dose = part.strip().rpartition(DOSE_TAG)
        if not tag or not atom:
            return None
        try:
            value = float(dose)
        except ValueError:
            return None
        if not math.isfinite(value):
            return None
        pairs.append((atom, value))
    pairs.sort()
    return tuple(a for a, _ in pairs), tuple(d for _, d in pairs)


def population_of(label: str, labels: Iterable[str], delimiter: str = "+") -> str | None:
    """The one of ``labels`` (population labels, ``dose_label``'s) that ``label`` names, matched as models read doses,
    float32: ``dexa@0.30000001192092896`` (a float32 dose column's 0.3 as earlier versions labelled it) and ``dexa@0.3000000``
    name ``dexa@0.3``; None
    when ``label`` is not a dose label or names none of them. Unambiguous: two doses of an atom one float32 apart are
    refused at loading (``check_float32_doses``)."""
    read = parse_dose_label(label, delimiter)
    if read is None:
        return None
    want = (read[0], tuple(np.float32(d) for d in read[1]))
    for other in labels:
        got = parse_dose_label(other, delimiter)
        if got is not None and (got[0], tuple(np.float32(d) for d in got[1])) == want:
            return other
    return None


class PopulationLabels:
    """Reads back the per-cell ``conditions`` of data at several doses per condition (``dosed``: each population labelled
    ``dose_label``'s ``dex@10``) for ``PerturbationData`` and the streaming split's ``DiskLabels`` alike: their atoms, doses
    and condition without doses. A subclass has ``dosed``, ``schema`` and ``conditions``."""

    dosed: bool
    schema: PerturbationSchema
    conditions: np.ndarray

    def atoms_of(self, condition: str) -> tuple[str, ...]:
        """The atoms of one of ``conditions`` (a population label, its doses dropped when ``dosed``)."""
        if self.dosed:
            return self.dose_of(condition)[0]
        return () if condition == CONTROL else tuple(condition.split(self.schema.combo_delimiter))

    def dose_of(self, condition: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
        """``(atoms, doses)`` of a population label of ``dosed`` data (``dex@10``); ``InputKeyError`` for a label without doses."""
        read = parse_dose_label(condition, self.schema.combo_delimiter)
        if read is None:
            raise InputKeyError(f"{condition!r} is not a population of this data: its conditions are at several doses, each "
                                f"population written atom@dose (e.g. {next((c for c in self.conditions if c != CONTROL), 'dex@10')!r})")
        return read

    def base_condition(self, condition: str) -> str:
        """The condition of a population label without its doses (``A@1+B@3`` -> ``A+B``); the label itself unless ``dosed``."""
        return condition_string(self.atoms_of(condition), self.schema.combo_delimiter) if self.dosed else condition

    @property
    def base_conditions(self) -> np.ndarray:
        """``[N]`` each cell's condition without doses (``conditions`` unless ``dosed``): what a condition split holds out."""
        if not self.dosed:
            return self.conditions
        table = {c: self.base_condition(c) for c in pd.unique(self.conditions)}
        return np.array([table[c] for c in self.conditions.tolist()], dtype=object)


def several_doses(conditions: np.ndarray, contexts: np.ndarray, doses: Sequence[tuple[float, ...]]) -> pd.Series:
    """Per perturbed (condition, context) whose cells carry several doses, their distinct doses (sorted); empty when each
    has one (the data is then labelled as without doses: ``A+B``; with several, each population is ``dose_label``'s)."""
    frame = pd.DataFrame({"c": np.asarray(conditions, dtype=object).astype(str), "k": np.asarray(contexts, dtype=object).astype(str),
                          "d": [tuple(d) for d in doses]})
    frame = frame[frame["c"] != CONTROL].drop_duplicates()
    per = frame.groupby(["c", "k"], sort=True)["d"].agg(lambda d: sorted(d))
    return per[per.map(len) > 1]


def check_float32_doses(atoms: Sequence[tuple[str, ...]], doses: Sequence[tuple[float, ...]], schema: PerturbationSchema) -> None:
    """Refuse (``InputDataError``) two doses of one atom that are distinct numbers but one float32 (``1`` and
    ``1.0000000000000002``): labelled as two populations (``dex@1``, ``dex@1.0000000000000002``), they would reach a model,
    whose dose tensors are float32, as one dose. Per atom, in any context: which of them a model asked ``dex@1`` answers
    could not be told. Called on data at several doses per condition (``dosed``), whose labels carry the doses."""
    seen: dict[tuple[str, np.float32], float] = {}
    for a, d in set(zip(atoms, doses)):
        for atom, x in zip(a, d):
            other = seen.setdefault((atom, np.float32(x)), x)
            if other != x:
                lo, hi = sorted((other, x))
                col = schema.dose_col
                raise InputDataError(
                    f"dose_col {col!r}: {atom!r} is at doses {exact_dose_text(lo)} and {exact_dose_text(hi)}, distinct numbers but "
                    f"one float32 ({dose_text(float(np.float32(x)))}), as which models read doses: they would be two populations the model reads "
                    f"as one dose. Write them as one number, rounded to the precision meant, e.g. adata.obs[{col!r}] = "
                    f"adata.obs[{col!r}].astype(float).round(6) (a 'd1{schema.combo_delimiter}d2' column: round each part)")


def check_dose_labels(schema: PerturbationSchema, atoms: Iterable[str] = ()) -> None:
    """Refuse (``LabelError``) data at several doses per condition whose labels could not carry the dose unambiguously:
    a ``combo_delimiter`` that a dose or the ``@`` is written with (``.``, ``@``, a digit), or an atom of ``atoms`` that is
    itself written ``name@number`` (``x@5`` at dose 2 is ``x@5@2``, but a user's ``x@5`` would read as ``x`` at dose 5)."""
    delim = schema.combo_delimiter
    if delim == DOSE_TAG or delim == "." or any(ch.isdigit() or ch == "-" for ch in delim):
        raise LabelError(f"dose_col {schema.dose_col!r}: the data holds conditions at several doses, labelled atom{DOSE_TAG}dose "
                         f"(dex{DOSE_TAG}10, A{DOSE_TAG}1{delim}B{DOSE_TAG}3), but combo_delimiter {delim!r} is written inside such "
                         "labels; choose another PerturbationSchema.combo_delimiter (the default '+')")
    tagged = sorted(a for a in set(atoms) if parse_dose_label(a) is not None)
    if tagged:
        col = schema.perturbation_cols[0]
        raise LabelError(f"dose_col {schema.dose_col!r}: the data holds conditions at several doses, labelled atom{DOSE_TAG}dose, but "
                         f"{counted(len(tagged), 'perturbation')} already read as a dose label ({first_of(tagged, 5, render=repr, enclosed=True)}"
                         f"): asking for {tagged[0]!r} would mean another population. Rename them "
                         f"without '{DOSE_TAG}' before a number, e.g. adata.obs[{col!r}] = adata.obs[{col!r}].astype(str)"
                         f".str.replace('{DOSE_TAG}', '_at_')")


def _read_dose(v: Any, atoms: tuple[str, ...], slots: list[str | None], schema: PerturbationSchema) -> tuple[float, ...]:
    """One cell's dose per atom (``atoms`` sorted) from its dose value ``v`` and its label's ``slots`` (``label_slots``)."""
    if _is_blank(v):
        raise InputDataError(f"dose_col {schema.dose_col!r}: perturbed cells of {schema.combo_delimiter.join(atoms)} have no dose ({v!r}); "
                             "give every perturbed cell its dose (a control's is not read), or drop those cells (a data.filter "
                             f"rule on {schema.dose_col!r})")
    parts = [p for p in str(v).split(schema.combo_delimiter) if p.strip()]
    if any("_" in p for p in parts):  # float('100_10') is 10010: '_' is a digit separator to Python, a delimiter to a file
        raise InputDataError(f"dose_col {schema.dose_col!r}: dose {v!r} holds '_', which would read as a digit separator "
                             f"({parts[0].strip()!r} as a number); a dose per slot of a combination is written with the "
                             f"combo_delimiter ({schema.combo_delimiter!r}): set PerturbationSchema.combo_delimiter='_' if "
                             "the labels are written with it, else write each dose as a plain number")
    try:
        vals = [float(p) for p in parts]
    except ValueError as e:
        unit = re.fullmatch(r"\s*([-+0-9.eE]+)\s*([A-Za-z\u00b5\u03bc/%]+)\s*", parts[0]) if len(parts) == 1 else None
        hint = (f"; doses are plain numbers in one unit, and {v!r} carries one ({unit.group(2)!r}): write them as numbers in "
                f"one unit, e.g. adata.obs[{schema.dose_col!r}] = adata.obs[{schema.dose_col!r}].astype(str).str.replace("
                f"{unit.group(2)!r}, '').astype(float) when every dose is in {unit.group(2)}") if unit else ""
        raise InputDataError(f"dose_col {schema.dose_col!r}: cannot read dose {v!r} as a number or 'd1{schema.combo_delimiter}d2'{hint}") from e
    if not all(math.isfinite(x) for x in vals):  # 'inf' and '1e400' reached the dose tensors as inf
        raise InputDataError(f"dose_col {schema.dose_col!r}: dose {v!r} is not a finite number; fix or drop those cells")
    if any(abs(x) > FLOAT32_MAX for x in vals):  # '1e39' too: the dose tensors are float32
        raise InputDataError(f"dose_col {schema.dose_col!r}: dose {v!r} is beyond the largest float32 ({FLOAT32_MAX:.4g}), as which "
                             f"models read doses (inf); write the doses in a larger unit (adata.obs[{schema.dose_col!r}] / 1e6, say)")
    written = [s for s in slots if s is not None]
    if len(vals) == 1:
        pairs = [(s, vals[0]) for s in written]
    elif len(vals) == len(slots):  # one per slot, controls' slots included (GEARS 'A+ctrl' at '1+1')
        pairs = [(s, d) for s, d in zip(slots, vals) if s is not None]
    elif len(vals) == len(written):
        pairs = list(zip(written, vals))
    else:
        raise InputDataError(f"dose_col {schema.dose_col!r}: dose {v!r} has {counted(len(vals), 'value')} for the {counted(len(atoms), 'atom')} "
                             f"{atoms} (label slots {[s or 'control' for s in slots]}): give one dose, or one per slot of the label")
    dose: dict[str, float] = {}
    for s, d in pairs:
        if dose.setdefault(s, d) != d:
            raise InputDataError(f"dose_col {schema.dose_col!r}: dose {v!r} gives atom {s!r} two doses ({dose[s]:g} and {d:g}); "
                                 "write the atom once with its dose")
    return tuple(dose[x] for x in atoms)


def check_min_cells(conditions: np.ndarray, contexts: np.ndarray, min_cells: int) -> None:
    """Refuse (``InputDataError``) a (condition, context) group of fewer than ``min_cells`` cells (``PerturbationSchema.min_cells``).

    ``conditions`` and ``contexts`` are per-cell labels (controls included: a context with a single control cell is a
    group too small to draw control sets from). The one rule of the in-memory load (``PerturbationData``) and of the
    on-disk cells (``distgen.data.disk.DiskCells``: streaming training and ``predict_to_disk``).
    """
    cond_codes, cond_names = pd.factorize(np.asarray(conditions, dtype=object), sort=True)
    ctx_codes, ctx_names = pd.factorize(np.asarray(contexts, dtype=object), sort=True)
    sizes = np.bincount(cond_codes.astype(np.int64) * len(ctx_names) + ctx_codes, minlength=len(cond_names) * len(ctx_names))
    small = np.flatnonzero((sizes > 0) & (sizes < min_cells))
    if small.size:
        ex = first_of(small.tolist(), 5, "; ", lambda i: f"{cond_names[i // len(ctx_names)]} @ {ctx_names[i % len(ctx_names)]}: {sizes[i]}")
        raise InputDataError(
            f"{counted(int(small.size), '(condition, context) group')} {'has' if small.size == 1 else 'have'} fewer than "
            f"min_cells={min_cells} cells: {ex}; "
            "a population needs several cells. Filter them out or lower PerturbationSchema.min_cells"
        )


def condition_string(atoms: tuple[str, ...], delimiter: str = "+") -> str:
    """Canonical condition label: sorted atoms joined by ``delimiter``; ``"control"`` for none."""
    return delimiter.join(atoms) if atoms else CONTROL


def _label_key(label: str) -> str:
    """A label compared up to case, surrounding whitespace and separators (``Non_Targeting`` ~ ``non-targeting``)."""
    return "".join(ch for ch in str(label).strip().lower() if ch not in " -_.")


def control_like_atoms(atoms: Sequence[str], schema: PerturbationSchema) -> list[str]:
    """Perturbation atoms that equal a control label (the schema's or a common one) up to case and separators."""
    keys = {_label_key(c) for c in (*schema.control_labels, *COMMON_CONTROL_LABELS)}
    return [a for a in atoms if _label_key(a) in keys]


def missing_control_message(obs: pd.DataFrame, schema: PerturbationSchema) -> str:
    """Error text for data without any cell carrying one of the control labels."""
    values = pd.unique(pd.concat([obs[c].astype(str) for c in schema.perturbation_cols]))
    keys = [_label_key(c) for c in COMMON_CONTROL_LABELS]
    # up to case and separators (Non_Targeting), or starting with a common label of 4 letters or more (Tahoe's DMSO_TF,
    # 'non-targeting_2'); 'NT' only whole, as many genes start with it
    guesses = [str(v) for v in values if any(_label_key(v) == k or (len(k) >= 4 and _label_key(v).startswith(k)) for k in keys)][:5]
    hint = f" Values that look like controls: {guesses}." if guesses else ""
    return (
        f"no control cells: none of control_labels={list(schema.control_labels)} occurs in column(s) "
        f"{list(schema.perturbation_cols)} (first values: {[str(v) for v in values[:8]]}).{hint} "
        "Set PerturbationSchema.control_labels to the label of your control cells"
    )


def clean_label(value: Any) -> str:
    """A context or batch label as distgen reads it: its text with surrounding whitespace trimmed (as atoms are)."""
    return str(value).strip()


def context_labels(obs: pd.DataFrame, cols: Sequence[str]) -> np.ndarray:
    """``[N]`` context label per cell: the trimmed values of ``cols`` joined with ``|`` (``"all"`` without columns).

    With several columns a value holding ``|`` is refused (``LabelError``, naming the column, the value and the fix):
    ``("a|b", "c")`` and ``("a", "b|c")`` would both read as context ``a|b|c``. One column's values are kept as they are.
    """
    if not cols:
        return np.full(len(obs), "all", dtype=object)
    parts = [obs[c].astype(str).str.strip().to_numpy(dtype=object) for c in cols]
    if len(cols) > 1:
        for col, values in zip(cols, parts, strict=True):
            bad = sorted({v for v in pd.unique(values) if CONTEXT_SEPARATOR in v})
            if bad:
                raise LabelError(
                    f"context column {col!r} holds the value {first_of(bad, 1, render=repr)}, which contains {CONTEXT_SEPARATOR!r}, the separator "
                    f"the values of the context columns {list(cols)} are joined with: ('a|b', 'c') and ('a', 'b|c') would be one "
                    f"context. Replace it in that column, e.g. adata.obs[{col!r}] = adata.obs[{col!r}].astype(str)"
                    f".str.replace({CONTEXT_SEPARATOR!r}, '/'), or give a single context column"
                )
    out = parts[0]
    for p in parts[1:]:
        out = out + CONTEXT_SEPARATOR + p
    return out


def batch_labels(obs: pd.DataFrame, col: str | None) -> np.ndarray:
    """``[N]`` batch label per cell: the trimmed values of ``col`` (``"all"`` without a batch column)."""
    if col is None:
        return np.full(len(obs), "all", dtype=object)
    return obs[col].astype(str).str.strip().to_numpy(dtype=object)


#: Separators that combination labels are written with in the field (checked against ``combo_delimiter``).
COMMON_DELIMITERS = ("+", *OTHER_DELIMITERS)


def _variants(values: Sequence[str], key: Any) -> list[list[str]]:
    groups: dict[str, set[str]] = {}
    for v in values:
        groups.setdefault(key(v), set()).add(v)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def _groups(groups: list[list[str]]) -> str:
    """The first three groups of label variants, ``'A' and 'A '; 'b' and 'B'``, the rest counted."""
    return first_of(groups, 3, "; ", lambda g: " and ".join(map(repr, g)), noun="group")


def spacing_warnings(obs: pd.DataFrame, schema: PerturbationSchema) -> list[str]:
    """Perturbation labels that differ only by surrounding spaces (``A`` and ``A ``, ``B+C`` and ``B + C``): read as one
    condition, where cell-eval (and ``distgen evaluate``, which refuses such a file) reads two; one message, or none.

    One perturbation column: its labels, grouped by ``spacing_twins``. Parallel columns (one atom per column, each value
    trimmed): the values of all of them, grouped by their trimmed text. Loading (``label_warnings``) and
    ``PerturbationData.encode`` warn with it.
    """
    delim, cols = schema.combo_delimiter, schema.perturbation_cols
    values = [str(v) for c in cols for v in pd.unique(obs[c].astype(str)) if not _is_blank(v)]
    if len(cols) == 1:
        spaced = spacing_twins(values, (delim,))
        read = [delim.join(a.strip() for a in g[0].split(delim) if a.strip()) for g in spaced[:3]]
        where, fix = f"obs column {cols[0]!r}", f"clean the column (adata.obs[{cols[0]!r}] = adata.obs[{cols[0]!r}].astype(str).str.strip())"
    else:
        spaced = _variants(sorted(set(values)), str.strip)
        read = [g[0].strip() for g in spaced[:3]]
        where, fix = f"obs columns {list(cols)}", f"clean the columns (for c in {list(cols)}: adata.obs[c] = adata.obs[c].astype(str).str.strip())"
    if not spaced:
        return []
    # the evaluation's readers refuse them (cell-eval scores two conditions); training reads one, and says so
    return [f"{where}: perturbation labels {_groups(spaced)} differ only in surrounding spaces and are read as one condition "
            f"each ({', '.join(map(repr, read))}); cell-eval reads them as different conditions and distgen evaluate refuses such files: {fix} or rename "
            "one spelling"]


def check_label_forms(obs: pd.DataFrame, schema: PerturbationSchema, vocab: Sequence[str]) -> None:
    """Refuse (``LabelError``) perturbations (``vocab``, the atoms), contexts or batches whose labels differ only in their
    Unicode form (``form_twins``: ``é`` composed or decomposed): each would be read as two that print alike, so one
    condition would be split in two, trained and scored as two, without a word. The one rule of the in-memory load
    (``PerturbationData``) and of the on-disk cells (``DiskCells``); the evaluation's reader refuses them too."""
    twins = form_twins(vocab)
    if twins:
        col = schema.perturbation_cols[0]
        raise LabelError(form_message(twins, f"obs column {col!r}" if len(schema.perturbation_cols) == 1 else
                                      f"obs columns {list(schema.perturbation_cols)}", "perturbations", col))
    for col, what in [*((c, "contexts") for c in schema.context_cols), *([(schema.batch_col, "batches")] if schema.batch_col else [])]:
        twins = form_twins({str(v).strip() for v in obs[col].unique()})  # unique first: astype(str) of 1M categorical cells took 0.18 s
        if twins:
            raise LabelError(form_message(twins, f"obs column {col!r}", what, col))


#: ``obs`` columns that name how a cell was perturbed (CRISPRa / CRISPRi, drug / genetic), as PerturBench and scPerturb
#: write them: ``modality_warnings`` checks that no perturbation is named alike under two of their values.
MODALITY_COLUMNS = ("perturbation_type", "modality")


#: ``obs`` columns that usually name a cell type or line (scanpy, cell-eval, sci-Plex, Tahoe, Parse): ``pooled_context_warnings``
#: says when one with several values is neither a context nor the batch column, so its cells are pooled.
CONTEXT_COLUMNS = ("cell_type", "celltype", "cell_line", "cell_line_name", "cell_label", "cell_type_name")


def pooled_context_warnings(obs: pd.DataFrame, schema: PerturbationSchema) -> list[str]:
    """One message when an ``obs`` column of ``CONTEXT_COLUMNS`` with several values is in no context or batch column.

    Its cell types (lines) are then one context: each prediction starts from control cells of every type, the baselines
    and the scores pool the types, and a type-specific response is averaged away. A context column set, or the column
    named as the batch, is the user's choice and stays quiet.
    """
    named = {*schema.context_cols, *([schema.batch_col] if schema.batch_col else []), *schema.perturbation_cols}
    if schema.context_cols:
        return []
    found = [(c, sorted({str(v).strip() for v in obs[c].dropna().unique()})) for c in CONTEXT_COLUMNS if c in obs.columns and c not in named]
    found = [(c, v) for c, v in found if len(v) > 1]
    if not found:
        return []
    col, values = found[0]
    return [f"obs column {col!r} holds {len(values)} values ({first_of(values, 4, enclosed=True)}) but no context "
            "column is set, so they are one context: predictions start from control cells of all of them and the scores pool them. "
            f"If they are cell types or lines, set data.schema.context_cols: [{col}] (PerturbationSchema.context_cols)"]


def modality_warnings(obs: pd.DataFrame, schema: PerturbationSchema) -> list[str]:
    """Perturbations named alike under several values of a ``MODALITY_COLUMNS`` column, one message per such column.

    distgen identifies a perturbation by its name alone: ``MAP2K3`` activated (CRISPRa, K562) and interfered with
    (CRISPRi, glioblastoma lines) in one file is one atom, with one embedding and one effect in the baselines. The
    message names the atoms and the values, and the fix (``docs/your_data.md``, "One gene, two modalities").
    """
    out = []
    for col in [c for c in MODALITY_COLUMNS if c in obs.columns and c not in schema.perturbation_cols]:
        frame = obs[[*schema.perturbation_cols, col]].astype(str).drop_duplicates()
        under: dict[str, set[str]] = {}
        for atoms, mode in zip(parse_atoms(frame, schema, ()), frame[col].str.strip()):
            if _is_blank(mode):
                continue
            for a in atoms:
                under.setdefault(a, set()).add(mode)
        shared = sorted(a for a, modes in under.items() if len(modes) > 1)
        if not shared:
            continue
        modes = sorted({m for a in shared for m in under[a]})
        out.append(
            f"{counted(len(shared), 'perturbation')} ({first_of(shared, 5, enclosed=True)}) {'occurs' if len(shared) == 1 else 'occur'} under several "
            f"values of obs column {col!r} ({', '.join(modes[:5])}); distgen identifies a perturbation by its name alone, so each is one "
            "perturbation with one embedding and one effect in the baselines. If they act differently (activation and interference), "
            f"write the {col} into the labels ({shared[0]} as {shared[0]}_{sorted(under[shared[0]])[-1]}) or keep one per run (data.filter: [{{column: {col}, keep: [...]}}]); "
            "docs/your_data.md, 'One gene, two modalities'"
        )
    return out


def label_warnings(obs: pd.DataFrame, schema: PerturbationSchema, genes: Sequence[str], vocab: Sequence[str]) -> list[str]:
    """What a user's labels may mean other than what distgen reads, one message each (empty when nothing looks off).

    * context or batch values that differ only in surrounding whitespace (read as one label, trimmed) or
      only in case (read as different labels);
    * perturbation atoms (``vocab``) that differ only in case (different perturbations), or that name
      a measured gene only up to case (``Stat1`` for gene ``STAT1``);
    * perturbation labels that differ only by surrounding spaces (``spacing_warnings``);
    * labels that repeat an atom (``A+A``: read as ``A``);
    * labels that look like combinations joined by another separator than ``combo_delimiter``
      (``A_B`` with ``+``: read as one perturbation ``A_B``).
    """
    out: list[str] = []
    for col in [*schema.context_cols, *([schema.batch_col] if schema.batch_col else [])]:
        raw = [str(v) for v in pd.unique(obs[col].astype(str))]
        merged = _variants(raw, str.strip)
        if merged:
            out.append(f"obs column {col!r}: values {_groups(merged)} differ only in surrounding spaces and are read as one label "
                       f"each ({', '.join(repr(g[0].strip()) for g in merged[:3])}); clean the column if they are not the same")
        cased = _variants(sorted({v.strip() for v in raw}), str.lower)
        if cased:
            out.append(f"obs column {col!r}: values {_groups(cased)} differ only in case and are read as different labels; if they "
                       f"are the same, unify them first (adata.obs[{col!r}] = adata.obs[{col!r}].str.strip() and one spelling)")
    cased_atoms = _variants(list(vocab), str.upper)
    if cased_atoms:
        out.append(f"perturbations {_groups(cased_atoms)} differ only in case and are read as different perturbations; if they are the "
                   "same, write them one way in the perturbation column")
    if schema.perturbation_type == "genetic" and genes:
        exact = set(genes)
        folded = {g.upper(): g for g in genes}
        near = [f"{a} (gene {folded[a.upper()]})" for a in vocab if a not in exact and a.upper() in folded]
        if near:
            out.append(f"perturbation(s) {first_of(near, 5, render=repr)} name a measured gene only up to case; gene-aware baselines (linear) and "
                       "gene-token backbones match gene names exactly, so write the labels as the genes are written (var_names)")
    out += spacing_warnings(obs, schema)
    delim = schema.combo_delimiter
    if len(schema.perturbation_cols) == 1:
        labels = [str(v) for v in pd.unique(obs[schema.perturbation_cols[0]].astype(str)) if not _is_blank(v)]
        controls = set(schema.control_labels)

        def named(label: str) -> list[str]:
            return [a for a in (x.strip() for x in label.split(delim)) if a and a not in controls]

        repeated = [lb for lb in labels if len(named(lb)) > len(set(named(lb)))]
        if repeated:
            read = [condition_string(tuple(sorted(set(named(r)))), delim) for r in repeated]
            out.append(f"label(s) {first_of(repeated, 5, render=repr)} name the same perturbation more than once and are read as "
                       f"{first_of(read, 5, render=repr)}, together "
                       "with the cells labelled with it once; relabel them if they are a different condition")
        gene_set = set(genes)
        known = gene_set | set(vocab)
        foreign: dict[str, list[str]] = {}
        for a in vocab:
            if a in gene_set:
                continue
            for d in COMMON_DELIMITERS:
                parts = [p.strip() for p in a.split(d)]
                if d != delim and len(parts) > 1 and all(p in known or p in controls for p in parts):
                    foreign.setdefault(d, []).append(a)
                    break
        for d, found in foreign.items():
            out.append(f"perturbation(s) {first_of(found, 5, render=repr)} are read as one perturbation each but look like combinations joined by {d!r} "
                       f"(each part is a gene or another perturbation); combo_delimiter is {delim!r}: set "
                       f"data.schema.combo_delimiter: {d!r} (PerturbationSchema.combo_delimiter) if they are combinations")
    return out
