"""Cells of another file read in a trained dataset's terms (``PerturbationData.encode``): what differs, and how to fix it.

A trained run knows its genes (by name), its schema's ``obs`` columns and the atoms, contexts and batches
of its training file. Cells from another file (a new experiment, a new donor) must name the same
columns, genes and labels; these helpers turn a mismatch into a message that names the likely fix
(a renamed column, gene names in a ``var`` column, a label that differs only in case, another control
label), and check that the values sit on the training cells' scale.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from distgen.data.conditions import control_like_atoms
from distgen.data.schema import PerturbationSchema
from distgen.types import ConditionLabels, DataInfo
from distgen.types.layout import form_hint, form_pairs
from distgen.wording import first_of, listing, quoted

if TYPE_CHECKING:
    from distgen.data.disk import DiskCells

#: A context whose cells' median ``sum(expm1(x))`` differs from the training cells' of that context by more than
#: this factor (either way) warns. Within one file, (condition, context) groups of the bundled Norman panel reach
#: 0.6-3.1x their context's median (a CRISPRa target is a panel gene); another ``normalize_total`` target (1e4 vs
#: CPM, or the data median) moves every cell by 10-100x.
DEPTH_FACTOR = 4.0
#: Cells per context whose totals are compared (evenly spaced): a median, not every cell.
DEPTH_SAMPLE = 2000


def missing_columns_message(obs: pd.DataFrame, schema: PerturbationSchema, info: DataInfo, missing: Sequence[str]) -> str:
    """Error text for ``obs`` columns the training schema reads that ``obs`` lacks, naming a column that holds their labels."""
    known: dict[str, set[str]] = {}
    for col in schema.perturbation_cols:
        known[col] = set(info.perturbations) | set(schema.control_labels)
    if len(schema.context_cols) == 1:
        known[schema.context_cols[0]] = set(info.contexts)
    if schema.batch_col is not None:
        known[schema.batch_col] = set(info.batches)
    renames = {}
    for col in missing:
        vocab = known.get(col)
        if not vocab:
            continue
        for other in obs.columns:
            if other in schema.required_columns() or other in renames:
                continue
            values = {str(v).strip() for v in pd.unique(obs[other].astype(str))}
            parts = {a.strip() for v in values for a in v.split(schema.combo_delimiter)} if col in schema.perturbation_cols else values
            if parts & vocab and len(parts & vocab) >= 0.5 * len(parts):
                renames[str(other)] = col
                break
    hint = (f" Column(s) {list(renames)} hold the training labels of {list(renames.values())}: rename them, "
            f"adata.obs = adata.obs.rename(columns={renames!r})") if renames else (
        " Rename the columns of your file that hold these labels: adata.obs = adata.obs.rename(columns={'yours': 'training name'})")
    single_context = schema.context_cols if len(schema.context_cols) == 1 else ()
    constant = [c for c in missing if c not in renames.values() and (c in single_context or c == schema.batch_col)]
    if constant:
        col = constant[0]
        labels = info.contexts if col in single_context else info.batches
        hint += (f". Cells of one {'context' if col in single_context else 'batch'} can carry it as a constant column, "
                 f"e.g. adata.obs[{col!r}] = {labels[0]!r} (one of {first_of(list(labels), 10, render=quoted, enclosed=True)})")
    return (f"obs column(s) {list(missing)} required by the training schema are missing; available: {list(obs.columns)}. "
            f"The trained run reads perturbations from {list(schema.perturbation_cols)}"
            + (f", contexts from {list(schema.context_cols)}" if schema.context_cols else "")
            + (f", batches from {schema.batch_col!r}" if schema.batch_col else "") + "." + hint)


def unknown_labels_message(atoms: Sequence[Sequence[str]], contexts: Sequence[str], batches: Sequence[str],
                           schema: PerturbationSchema, info: DataInfo, where: str = "the cells carry",
                           context_fix: str = "") -> str | None:
    """Error text for perturbations, contexts or batches the trained run has no id for (None when every label is known).

    ``where`` starts the message (``"the cells to encode carry"``, ``"new.h5ad holds"``); ``context_fix`` ends the part on
    unknown contexts (``LabelTranslation``: how a model that reads no context predicts them).
    """
    parts = []
    unknown_atoms = sorted({a for cell in atoms for a in cell} - set(info.perturbations))
    if unknown_atoms:
        controls = control_like_atoms(unknown_atoms, schema)
        hints = []
        if controls:
            hints.append(f"{listing(controls)} look(s) like control labels, but the training schema marks controls with "
                         f"{list(schema.control_labels)}: relabel them, e.g. adata.obs[{schema.perturbation_cols[0]!r}] = "
                         f"adata.obs[{schema.perturbation_cols[0]!r}].replace({{{controls[0]!r}: {schema.control_labels[0]!r}}})")
        hints += _case_hints([a for a in unknown_atoms if a not in controls], info.perturbations)
        combos = _combination_hints(unknown_atoms, info.perturbations, schema)
        hints += combos[1:]
        folded = {p.lower() for p in info.perturbations}
        spelt = dict(form_pairs(unknown_atoms, info.perturbations))
        others = [a for a in unknown_atoms if a not in controls and a.lower() not in folded and a not in combos[0]
                  and a not in spelt]
        parts.append(f"{_unknown('perturbation', unknown_atoms)} (not in the training file)"
                     + (": the run has no label id for them, so it cannot predict them (its vocabulary is the training "
                        "file's; a perturbation never in that file needs a model trained with it, or with a conditioner "
                        "that embeds it from its name, in its data)" if others else "")
                     + "".join(f"; {h}" for h in hints)
                     + f"; the trained run knows {_known('perturbation', info.perturbations)}")
    for name, values, vocab in (("context", contexts, info.contexts), ("batch", batches, info.batches)):
        unknown = sorted(set(values) - set(vocab))
        if unknown:
            hints = _case_hints(unknown, vocab)
            parts.append(f"{_unknown(name, unknown)} (not in the training file; known: {first_of(list(vocab), 10, render=quoted, enclosed=True)}): "
                         f"the run has no {name} id for them (a {name} never trained on has no embedding)"
                         + "".join(f"; {h}" for h in hints) + (context_fix if name == "context" else ""))
    if not parts:
        return None
    return f"{where} labels the trained run does not know: " + "; ".join(parts)


def _unknown(kind: str, names: Sequence[str]) -> str:
    plural = {"batch": "batches"}.get(kind, kind + "s") if len(names) > 1 else kind
    # str: numpy's np.str_('C') was printed as such
    return f"unknown {plural} " + first_of(names, 8, render=lambda n: repr(str(n)))


#: Separators other files join a combination's atoms with (``KLF1_MAP2K6``, ``KLF1|MAP2K6``).
COMBINATION_SEPARATORS = ("+", "_", "|", ";", ",", "-")


def _combination_hints(unknown: Sequence[str], vocab: Sequence[str], schema: PerturbationSchema) -> list[Any]:
    """``[labels explained, hint...]``: unknown labels that are known atoms joined by another separator than the schema's."""
    known = set(vocab)
    explained, shown = [], []
    for label in unknown:
        for sep in COMBINATION_SEPARATORS:
            parts = [p.strip() for p in label.split(sep)]
            if sep != schema.combo_delimiter and len(parts) > 1 and all(p in known for p in parts):
                explained.append(label)
                shown.append((label, sep))
                break
    if not shown:
        return [[]]
    label, sep = shown[0]
    return [explained, f"{listing([a for a, _ in shown[:5]])} join(s) training perturbations with {sep!r}, but the training file "
                       f"joins combinations with {schema.combo_delimiter!r}: relabel them, e.g. {label!r} as "
                       f"{schema.combo_delimiter.join(p.strip() for p in label.split(sep))!r}"]


def _known(kind: str, names: Sequence[str]) -> str:
    shown = first_of(list(names), 20, render=quoted)
    return f"{len(names)} {kind}{'s' if len(names) != 1 else ''}: {shown}"


def respelt(unknown: Sequence[str], vocab: Sequence[str]) -> set[str]:
    """The labels of ``unknown`` that are one of ``vocab`` in another form or case (``_case_hints`` says which)."""
    folded = {v.lower() for v in vocab}
    return {*dict(form_pairs(unknown, vocab)), *(u for u in unknown if u.lower() in folded)}


def _case_hints(unknown: Sequence[str], vocab: Sequence[str]) -> list[str]:
    forms = form_pairs(unknown, vocab)
    hints = [form_hint(forms, "the training file")] if forms else []
    folded = {v.lower(): v for v in vocab}
    pairs = [(u, folded[u.lower()]) for u in unknown if u.lower() in folded and u not in dict(forms)]
    if not pairs:
        return hints
    shown = ", ".join(f"{str(u)!r} is {str(k)!r}" for u, k in pairs[:5])
    return [*hints, f"labels are compared with their case: {shown} in the training file (spell them as the training file does)"]


def text_var_columns(var: pd.DataFrame) -> list[str]:
    """The ``var`` columns that hold text (object, pandas' string dtype or categorical): where another spelling of the
    gene names may be. pandas 3 reads and builds text columns in its string dtype, not object."""
    return [str(c) for c in var.columns if var[c].dtype == object or isinstance(var[c].dtype, (pd.StringDtype, pd.CategoricalDtype))]


def without_version(name: str) -> str:
    """An Ensembl-style id without its version suffix (``ENSG00000141510.16`` -> ``ENSG00000141510``)."""
    head, dot, tail = name.rpartition(".")
    return head if dot and head and tail.isdigit() else name


def gene_hint(genes: Sequence[str], train: Sequence[str], var: pd.DataFrame | None) -> str:
    """How to name the genes of another file as the training file does ("" when nothing obvious)."""
    wanted = set(train)
    if var is not None:
        for col in text_var_columns(var):
            if wanted <= set(var[col].astype(str)):
                return (f" The training genes are in var column {col!r}: use it as the gene names, "
                        f"adata.var_names = adata.var[{col!r}].astype(str) (then adata.var_names_make_unique())")
    folded = {g.upper() for g in genes}
    if wanted and all(g.upper() in folded for g in wanted):
        return " The names differ only in case (gene names are compared with their case): name them as the training file does"
    unversioned = {without_version(g) for g in genes}
    if wanted and all(g in unversioned for g in wanted):
        return (" The names carry a version suffix (ENSG00000141510.16) that the training genes do not: strip it, "
                "adata.var_names = adata.var_names.str.replace(r'\\.\\d+$', '', regex=True)")
    return ""


def depth_mismatches(new: torch.Tensor, new_contexts: np.ndarray, new_control: np.ndarray, train: torch.Tensor,
                     train_contexts: np.ndarray, train_control: np.ndarray) -> list[tuple[str, float, float]]:
    """Contexts whose cells are on another depth scale than the training cells: ``(context, new median, training median)``.

    Both ``[N, G]`` are log1p values on the same genes. Per context, the median over cells of ``sum(expm1(x))``
    (their normalised totals over these genes) is compared, control cells with control cells where both have some
    (a perturbation can move a group's totals), else every cell; a ratio beyond ``DEPTH_FACTOR`` is a mismatch:
    log1p of counts normalised to another total, or counts read as log values.
    """
    out = []
    for ctx in pd.unique(new_contexts):
        mine, theirs = new_contexts == ctx, train_contexts == ctx
        if not theirs.any():
            continue
        if (mine & new_control).any() and (theirs & train_control).any():
            mine, theirs = mine & new_control, theirs & train_control
        a, b = _median_total(new, np.flatnonzero(mine)), _median_total(train, np.flatnonzero(theirs))
        if a > 0 and b > 0 and max(a / b, b / a) > DEPTH_FACTOR:
            out.append((str(ctx), a, b))
    return out


def _median_total(x: torch.Tensor, rows: np.ndarray) -> float:
    if len(rows) > DEPTH_SAMPLE:
        rows = rows[np.linspace(0, len(rows) - 1, DEPTH_SAMPLE).astype(np.int64)]
    return float(torch.expm1(x[torch.from_numpy(rows)].double()).sum(dim=1).median())


class LabelTranslation:
    """Label ids of another file's vocabulary (``theirs``) as ids of a trained model's (``ours``), matched by name.

    A model reads a perturbation, context or batch id as a row of its own ``DataInfo``; a file read on its own
    (``DiskCells``) numbers its labels by its own sorted vocabulary, so the same id names another atom as soon as
    the file holds other labels than the training file (a subset of the perturbations, another donor). Names
    unknown to the model map to ``-1`` and are refused by ``check`` before anything is generated.
    """

    def __init__(self, ours: DataInfo, theirs: DataInfo, new_contexts: bool = False) -> None:
        self.ours, self.theirs = ours, theirs
        #: whether a context the model never trained on is predicted (a model that reads no context: ``reads_contexts``)
        self.new_contexts = new_contexts
        self.maps = {name: _lookup(getattr(ours, name), getattr(theirs, name)) for name in ("perturbations", "contexts", "batches")}

    @classmethod
    def between(cls, model: object, theirs: DataInfo) -> LabelTranslation | None:
        """The translation into ``model.info`` (None when the model records no ``info`` or the vocabularies agree)."""
        ours = getattr(model, "info", None)
        if not isinstance(ours, DataInfo) or all(getattr(ours, n) == getattr(theirs, n) for n in ("perturbations", "contexts", "batches")):
            return None
        return cls(ours, theirs, new_contexts=not reads_contexts(model))

    def check(self, conditions: Sequence[str], contexts: Sequence[str], batches: Sequence[str], schema: PerturbationSchema,
              where: str) -> None:
        """Raise ``InputKeyError`` when a condition (atoms joined by ``+``), context or batch to predict is unknown to the model
        (a context only when the model reads contexts: ``new_contexts``)."""
        atoms = [tuple(a for a in c.split("+") if a) for c in conditions]
        message = unknown_labels_message(atoms, [] if self.new_contexts else list(contexts), list(batches), schema, self.ours,
                                         f"{where} holds", context_fix=NEW_CONTEXT_FIX)
        if message:
            from distgen.errors import InputKeyError

            raise InputKeyError(message)

    def __call__(self, labels: ConditionLabels) -> ConditionLabels:
        p = labels.perturbation
        pert = torch.where(p >= 0, self.maps["perturbations"][p.clamp(min=0)], p)
        return dataclasses.replace(labels, perturbation=pert, context=self.maps["contexts"][labels.context],
                                   batch=self.maps["batches"][labels.batch])


#: How a context the run never trained on can be predicted (the end of the refusal of one, for a model that reads contexts).
NEW_CONTEXT_FIX = ("; a model that reads no context (model.conditioner.use_context: false, and no anchor_reference: training, as "
                   "recipes/cell_type_transfer.yaml) predicts a new context from that context's own control cells in the file")


def reads_contexts(model: object) -> bool:
    """Whether ``model`` may read a cell's context label when it predicts; False only for a model that shows it does not: a
    generator (an ``anchor``) whose conditioner holds no context module (``context`` None: ``use_context: false``, so no
    embedding row and no ``context_table``) and whose anchor does not start from each context's training control mean
    (``anchor_reference: training``). Such a model sees a context only through the control cells it is given, and predicts a
    context it never trained on (a new donor or cell type of another file) from that context's own control cells. Any other
    model (baselines with per-context means, the Bayesian plugin's, a conditioner that says nothing) is taken to read them."""
    conditioner, anchor = getattr(model, "conditioner", None), getattr(model, "anchor", None)
    if conditioner is None or anchor is None or getattr(anchor, "uses_training_controls", True):
        return True
    holder = getattr(conditioner, "combine", conditioner)  # gene_vocab keeps its context embedding in its AtomCombiner
    return not hasattr(holder, "context") or holder.context is not None


def _lookup(ours: Sequence[str], theirs: Sequence[str]) -> torch.Tensor:
    index = {name: i for i, name in enumerate(ours)}
    return torch.tensor([index.get(name, -1) for name in theirs], dtype=torch.long)


def in_model_genes(model: object, cells: DiskCells) -> DiskCells:
    """``cells`` with their gene columns in ``model.info``'s order (read again by name when the file holds the same genes in
    another order); ``InputDataError`` when the gene sets differ, since a model reads gene columns by position."""
    ours = getattr(model, "info", None)
    if not isinstance(ours, DataInfo) or list(cells.info.genes) == list(ours.genes):
        return cells
    from distgen.data.disk import DiskCells
    from distgen.errors import InputDataError

    theirs = list(cells.info.genes)
    if set(theirs) == set(ours.genes):
        return DiskCells(cells.path, cells.schema, genes=ours.genes)
    theirs_set = set(theirs)
    missing, extra = [g for g in ours.genes if g not in theirs_set], sorted(theirs_set - set(ours.genes))
    raise InputDataError(
        f"{cells.path}: its genes are not the model's: " + (f"{len(missing)} of the model's {len(ours.genes)} genes {'is' if len(missing) == 1 else 'are'} missing "
        f"({first_of(missing, 5, render=repr, enclosed=True)})" if missing else "") + (", " if missing and extra else "")
        + (f"{len(extra)} {'is' if len(extra) == 1 else 'are'} not the model's ({first_of(extra, 5, render=repr, enclosed=True)})"
           if extra else "")
        + ". A model reads every gene it was trained on, by column. When the file holds all of them, read those columns: "
        "DiskCells(path, schema, genes=model.info.genes) (raw counts are then normalised over these genes only: give the "
        "genes the training cells were normalised over for the same scale)"
    )
