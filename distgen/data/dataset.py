"""``PerturbationData``: a validated AnnData turned into a ``CellTable`` with vocabularies."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from distgen.data.conditions import (
    PopulationLabels,
    batch_labels,
    check_dose_labels,
    check_float32_doses,
    check_label_forms,
    check_min_cells,
    condition_string,
    context_labels,
    control_like_atoms,
    dose_label,
    handle_missing_labels,
    label_warnings,
    legacy_labels,
    missing_control_message,
    modality_warnings,
    parse_atoms,
    parse_dose_label,
    parse_doses,
    pooled_context_warnings,
    several_doses,
    spacing_warnings,
)
from distgen.data.doses import DoseRecord, dose_record, resolve_doses
from distgen.data.expression import (
    RAW_SOURCES,
    check_normalisable,
    check_unique_cells,
    check_unique_genes,
    check_values,
    expression_var,
    normalised_total,
    read_expression,
    resolve_scale,
    to_dense_float32,
)
from distgen.data.foreign import (
    DEPTH_FACTOR,
    NEW_CONTEXT_FIX,
    depth_mismatches,
    gene_hint,
    missing_columns_message,
    reads_contexts,
    respelt,
    text_var_columns,
    unknown_labels_message,
    without_version,
)
from distgen.data.h5ad import in_memory
from distgen.data.memory import check_dense_fits
from distgen.data.schema import PerturbationSchema
from distgen.errors import DistgenWarning, InputDataError, InputKeyError, warn
from distgen.types import CellTable, ConditionLabels, DataInfo, labels_in
from distgen.wording import counted, first_of


def _warn_if_no_atom_is_a_gene(atoms: Sequence[str], genes: Sequence[str], var: pd.DataFrame) -> None:
    """Warn when genetic perturbations name no measured gene: often symbols in a ``var`` column, Ensembl ids as names."""
    if not atoms or set(atoms) & set(genes):
        return
    holding = [c for c in text_var_columns(var) if set(atoms) & set(var[c].astype(str))]
    hint = (f" var column(s) {holding} hold them: use them as gene names first (adata.var_names = adata.var[{holding[0]!r}].astype(str); "
            "then adata.var_names_make_unique()).") if holding else ""
    unversioned = {without_version(g) for g in genes}
    if not hint and set(atoms) & unversioned:
        hint = (" They are gene names without the version suffix the gene names carry (ENSG00000141510.16): strip it first "
                "(adata.var_names = adata.var_names.str.replace(r'\\.\\d+$', '', regex=True)).")
    elif not hint and {without_version(a) for a in atoms} & set(genes):
        hint = " They carry a version suffix (ENSG00000141510.16) that the gene names do not: strip it from the labels first."
    marked = _genes_within(atoms, genes)
    if not hint and marked:
        atom, gene = marked[0]
        warn(
            f"none of the {len(atoms)} genetic perturbation(s) ({first_of(list(atoms), 3, render=repr, enclosed=True)}) is a gene name "
            "of the expression, "
            f"but {counted(len(marked), 'of them holds', 'of them hold')} one with a tag ({atom!r} holds the gene {gene!r}): "
            "labels relabelled to tell perturbations of one gene apart (a modality, a guide) are perturbations of their own, "
            "so gene-token models (scdfm) and the linear baseline do not read them as the gene; one-hot and covariate "
            "conditioners are unaffected (docs/your_data.md, 'One gene, two modalities'). They stay genetic "
            "perturbations: do not declare them 'chemical'",
        )
        return
    warn(
        f"none of the {len(atoms)} genetic perturbation(s) ({first_of(list(atoms), 3, render=repr, enclosed=True)}) is a gene "
        f"name of the expression ({first_of(list(genes), 3, render=repr, enclosed=True)}), so no model or baseline can use the perturbed gene's own expression or embedding.{hint} "
        "If they are not genes (drugs, cytokines, stimulations), declare PerturbationSchema.perturbation_type='chemical'",
    )


def _genes_within(atoms: Sequence[str], genes: Sequence[str]) -> list[tuple[str, str]]:
    """``(atom, gene)`` for each atom that is a measured gene name joined to a tag by ``_``, ``-``, ``:``, ``@``, ``|``, ``.``
    or a space (``MAP2K3_CRISPRi``, ``CRISPRi:MAP2K3``, ``KLF1-g2``): a gene relabelled, not a drug."""
    known = set(genes)
    out = []
    for atom in atoms:
        parts = [t for t in re.split(r"[_\-:@|. ]+", str(atom)) if t]
        hit = next((t for t in parts if t in known), None) if len(parts) > 1 else None
        if hit is not None:
            out.append((str(atom), hit))
    return out

def _warn_if_empty_cells(x: Any, names: pd.Index, is_ctrl: np.ndarray, conditions: np.ndarray, contexts: np.ndarray, source: str) -> None:
    """Warn when cells have no expression at all: they are read as all-zero cells, and a control among them is an input.

    A (condition, context) group whose every cell is empty is named (a lost lane or a bad subset: it would be scored
    against, or predicted from, all-zero cells); a matrix without a single non-zero value is refused.
    """
    nonzero = np.asarray((x != 0).sum(1)).ravel() if sp.issparse(x) else np.count_nonzero(np.asarray(x), axis=1)
    empty = nonzero == 0
    if empty.all():
        raise InputDataError(f"expression {source!r} holds no non-zero value ({len(empty)} cells x {x.shape[1]} genes, every one 0): "
                         "point PerturbationSchema.expression at the matrix that holds the values (a layer, raw)")
    if empty.any():
        groups = pd.DataFrame({"c": conditions.astype(str), "k": contexts.astype(str), "e": empty}).groupby(["c", "k"], sort=True)["e"]
        stats = groups.agg(["size", "all"])  # one pass over the groups (get_group per group: ~0.1 ms each, 1.2 s at 720 groups)
        whole = [f"{c} @ {k} ({n} cells)" for (c, k), n in stats.loc[stats["all"], "size"].items()]
        warn(
            f"{int(empty.sum())} of {counted(len(empty), 'cell')} {'has' if int(empty.sum()) == 1 else 'have'} no expression at all (every gene 0: "
            f"{first_of([str(n) for n in names[empty]], 3, render=repr)}; {int((empty & is_ctrl).sum())} of them controls, which predictions start "
            "from): they are read as all-zero cells. "
            + (f"Every cell of {counted(len(whole), '(condition, context) group')} is empty: {first_of(whole, 5, render=repr)}; such a group is scored against "
               "(or, for controls, predicted from) all-zero cells: check how the file was made. " if whole else "")
            + "Drop them first (scanpy.pp.filter_cells(adata, min_counts=1), or a data.filter rule on a total-counts column)",
        )


def _lognormalize(x: Any, target_sum: float) -> Any:
    """log1p(normalize_total(x)) through scanpy, on a throwaway AnnData (a library size past 2**24 summed in float64)."""
    import scanpy as sc

    from distgen.data.counts import deep_rows, exact_deep_rows

    deep = deep_rows(x)
    tmp = ad.AnnData(X=x.astype(np.float32, copy=True) if sp.issparse(x) else np.array(x, dtype=np.float32, copy=True))
    sc.pp.normalize_total(tmp, target_sum=target_sum)
    sc.pp.log1p(tmp)
    return exact_deep_rows(tmp.X, deep, target_sum)  # a cell whose library exceeds 2**24: from float64 sums, not scanpy's float32


@dataclass
class PerturbationData(PopulationLabels):
    """A validated perturbation dataset: tensors for models, AnnData kept for ``distgen.data`` only.

    Attributes
    ----------
    adata
        The processed (log-normalised) AnnData, with canonical ``obs`` columns ``distgen_condition``,
        ``distgen_context`` and ``distgen_batch``. Only ``distgen.data`` should touch it.
    table
        ``CellTable`` of all ``N`` cells (dense float32 ``X``).
    conditions, contexts, batches
        ``[N]`` per-cell strings (canonical condition: sorted atoms joined by the delimiter, or
        ``"control"``).
    fitted
        Statistics fitted to data (HVGs, ...) -> the cell indices they were fitted on; the leakage
        check compares them with a split.
    library_genes
        The genes whose counts ``normalize_total`` summed per cell (every gene of the input), kept
        through gene selection; None when the input was not normalised here. ``encode`` compares them.
    dosed
        Some perturbed (condition, context) holds cells at several doses (``schema.dose_col``): each (condition, doses,
        context) is then a population of its own, and ``conditions`` label every perturbed cell with its atoms and their
        doses (``distgen.data.conditions.dose_label``: ``dex@10``, ``A@1+B@3``). ``atoms_of``, ``base_condition`` and
        ``label_atoms`` read such labels back; the model's input stays the atoms, the dose a number.
    legacy_labels
        Population label -> the label distgen wrote for it before float32 doses were written short (``dexa@0.3`` ->
        ``dexa@0.30000001192092896``), for the labels that differ: ``cells_hash`` hashes the earlier labels, so split
        files, run manifests and fingerprints stored before still match (``conditions.legacy_labels``).
    """

    adata: ad.AnnData
    schema: PerturbationSchema
    table: CellTable
    conditions: np.ndarray
    contexts: np.ndarray
    batches: np.ndarray
    scale: str
    fitted: dict[str, np.ndarray] = field(default_factory=dict)
    library_genes: tuple[str, ...] | None = None
    dosed: bool = False
    legacy_labels: dict[str, str] = field(default_factory=dict)
    _doses: dict[str | None, DoseRecord] = field(default_factory=dict, init=False, repr=False, compare=False)  # dose_record's

    @property
    def info(self) -> DataInfo:
        return self.table.info

    @property
    def n_cells(self) -> int:
        return len(self.table)

    @property
    def is_control(self) -> np.ndarray:
        return self.conditions == "control"

    @classmethod
    def from_anndata(cls, adata: ad.AnnData, schema: PerturbationSchema | None = None, *, copy: bool = True,
                     select: GeneSelector | None = None) -> PerturbationData:
        """Validate ``adata`` against ``schema`` and build the dataset.

        ``select(outline, x)`` chooses genes before the dense table is built (``data.hvg``: a wide sparse file whose every
        gene would not fit in memory dense, but whose chosen genes do, can be loaded). ``outline`` is this dataset without
        its values (its labels, cells and every gene; its table a zero-filled stand-in that takes no memory) and ``x`` the
        normalised matrix as stored (sparse or dense, every gene); it returns ``(genes, fitted_on, name)`` (recorded in
        ``fitted`` as ``subset_genes`` does) or None for every gene. The result equals ``from_anndata`` followed by
        ``subset_genes(genes, fitted_on, name)``, hash included.

        ``adata`` is neither modified nor shared: the dataset holds copies of its values, so editing ``adata`` later
        changes nothing here (``copy=False`` lets the tensors share a dense float32 ``X`` that no one else holds, a
        file just read). A view (``adata[mask]``) is read as its cells; a backed AnnData (``read_h5ad(..., backed="r")``)
        is read into memory.
        """
        schema = schema or PerturbationSchema()
        adata = in_memory(adata)
        obs = adata.obs
        missing = [c for c in schema.required_columns() if c not in obs.columns]
        if missing:
            folded = {str(c).strip().lower(): str(c) for c in obs.columns}
            near = [f"{m!r} is {folded[m.strip().lower()]!r}" for m in missing if m.strip().lower() in folded]
            raise InputKeyError(
                f"obs column(s) {missing} named in PerturbationSchema are missing; available columns: {list(obs.columns)}"
                + (f" (up to case and spaces: {', '.join(near)})" if near else "") + ". "
                "Fix the schema (perturbation_col / context_cols / batch_col / dose_col) or add the column"
            )
        if adata.n_obs == 0:
            raise InputDataError("the AnnData has no cells")
        check_unique_cells(adata.obs_names, "the AnnData")
        keep = handle_missing_labels(obs, schema)
        if keep is not None:
            adata = adata[keep].copy()
            obs = adata.obs
            if adata.n_obs == 0:
                raise InputDataError("no cell has a label; check PerturbationSchema.perturbation_col / context_cols / batch_col")
        x, genes, kind = read_expression(adata, schema.expression)
        check_unique_genes(genes, "the AnnData" if schema.expression not in RAW_SOURCES else "the AnnData's raw")
        if select is None:  # else once the genes are chosen, for those genes
            check_dense_fits(x.shape[0], x.shape[1], x.nnz if sp.issparse(x) else None, f"expression {schema.expression!r}")
        check_values(x, schema.expression, allow_negative=kind == "embedding", has_raw=adata.raw is not None)
        scale = "log" if kind == "embedding" else resolve_scale(x, schema.scale, schema.expression, dict(adata.uns), schema.target_sum)

        atoms = parse_atoms(obs, schema, genes)
        conditions = np.array([condition_string(a, schema.combo_delimiter) for a in atoms], dtype=object)
        is_ctrl = np.array([not a for a in atoms], dtype=bool)
        if any("control" in a for a in atoms):
            raise InputDataError(
                f"'control' appears as a perturbation label but is not in control_labels={list(schema.control_labels)}; "
                "'control' is distgen's name for controls: add it to PerturbationSchema.control_labels or rename it"
            )
        if not is_ctrl.any():
            raise InputDataError(missing_control_message(obs, schema))
        pert_vocab = tuple(sorted({a for t in atoms for a in t}))
        if kind == "genes" and schema.perturbation_type == "genetic":
            _warn_if_no_atom_is_a_gene(pert_vocab, genes, expression_var(adata, schema.expression))
        look_alike = control_like_atoms(pert_vocab, schema)
        if look_alike:
            warn(
                f"perturbation label(s) {first_of(look_alike, 5, render=repr)} look like control labels but are not in control_labels="
                f"{list(schema.control_labels)}, so their cells are read as perturbed; if they are controls, add them to "
                "PerturbationSchema.control_labels",
            )
        check_label_forms(obs, schema, pert_vocab)
        for message in label_warnings(obs, schema, genes if kind == "genes" else (), pert_vocab) + modality_warnings(obs, schema) + pooled_context_warnings(obs, schema):
            warn(message)
        contexts = context_labels(obs, schema.context_cols)
        no_ctrl = sorted(set(contexts) - set(contexts[is_ctrl]))
        if no_ctrl:
            raise InputDataError(
                f"context(s) {first_of(no_ctrl, 5, render=repr)} (columns {list(schema.context_cols)}) have no control cells, so their perturbed cells "
                "cannot be matched to controls; drop them (adata = adata[~adata.obs[...].isin([...])]) or merge contexts"
            )
        batches = batch_labels(obs, schema.batch_col)
        doses = parse_doses(obs, schema, atoms)
        dosed = schema.dose_col is not None and not several_doses(conditions, contexts, doses).empty
        legacy: dict[str, str] = {}
        if dosed:  # a condition at several doses in a context: each dose its own population, labelled atom@dose
            check_dose_labels(schema, {x for a in set(atoms) for x in a})
            check_float32_doses(atoms, doses, schema)
            named: dict[tuple[tuple[str, ...], tuple[float, ...]], str] = {}  # once per distinct (atoms, doses): not per cell
            conditions = np.array([named.get((a, d)) or named.setdefault((a, d), dose_label(a, d, schema.combo_delimiter))
                                   for a, d in zip(atoms, doses)], dtype=object)
            legacy = legacy_labels(named, schema.combo_delimiter)
        check_min_cells(conditions, contexts, schema.min_cells)

        if kind == "genes":
            _warn_if_empty_cells(x, adata.obs_names, is_ctrl, conditions, contexts, schema.expression)
        library = None
        large: Any = None  # counts of LARGE_COUNT or more, as stored (distgen.data.counts.large_counts)
        if scale == "counts" and schema.normalize:
            check_normalisable(len(genes), schema.expression)
            # what normalize_total divides by (--counts inverts it), summed in float64: float16 counts overflowed to inf past a
            # total of 65,504, and the run then refused its own library column
            library = np.asarray(x.sum(1, dtype=np.float64), dtype=np.float64).ravel()
            from distgen.data.counts import large_counts

            large = large_counts(x)  # what the float32 log values cannot give back exactly (--counts writes them as stored)
            with warnings.catch_warnings():  # scanpy's "Some cells have zero counts": _warn_if_empty_cells said which
                warnings.filterwarnings("ignore", message="Some cells have zero counts")
                x = _lognormalize(x, schema.target_sum)
            scale_out = "log"
        else:
            scale_out = scale

        ctx_vocab = tuple(sorted(set(contexts)))
        bat_vocab = tuple(sorted(set(batches)))
        info = DataInfo(
            genes=tuple(genes),
            perturbations=pert_vocab,
            contexts=ctx_vocab,
            batches=bat_vocab,
            perturbation_type=schema.perturbation_type,
            control_label="control",
        )
        labels = _labels(atoms, doses, contexts, batches, info)
        meta: dict[str, Any] = {"scale": scale_out, "source_scale": scale}
        if dosed:  # a population per dose: the closed-form baselines read the doses (distgen.models.baselines.effects.is_dosed)
            meta["dosed"] = True
        if scale == "log" and kind == "genes":
            total = normalised_total(x)  # log1p input's normalize_total target, when it can be told (every gene kept)
            if total is not None:
                meta["log_total"] = total
        fitted: dict[str, np.ndarray] = {}
        cols = None
        if select is not None:
            stand_in = torch.zeros(()).expand(len(atoms), len(genes))  # no memory: the values are x's
            outline = cls(ad.AnnData(obs=pd.DataFrame(index=obs.index)), schema, CellTable(stand_in, labels, info, dict(meta)),
                          conditions, contexts, batches, scale, dosed=dosed, legacy_labels=legacy)
            chosen = select(outline, x)
            if chosen is not None:
                names, fitted_on, name = chosen
                cols = pd.Index(genes).get_indexer(list(names))
                if (cols < 0).any():
                    raise KeyError(f"genes {first_of([g for g, i in zip(names, cols) if i < 0], 5, render=repr)} are not in the dataset")
                info = dataclasses.replace(info, genes=tuple(names))
                if fitted_on is not None:
                    fitted[name] = np.sort(np.asarray(fitted_on, dtype=np.int64))
        if cols is None:
            if select is not None:
                check_dense_fits(x.shape[0], x.shape[1], x.nnz if sp.issparse(x) else None, f"expression {schema.expression!r}")
            dense = to_dense_float32(x, copy=copy)
        else:  # only the chosen genes are made dense (their columns are a fresh matrix: nobody else holds it)
            kept = x[:, cols]
            check_dense_fits(kept.shape[0], kept.shape[1], kept.nnz if sp.issparse(kept) else None, f"expression {schema.expression!r}",
                             of_genes=len(genes))
            dense = to_dense_float32(kept, copy=False)
            del kept
        table = CellTable(torch.from_numpy(dense), labels, info, meta)

        new_obs = obs.copy()
        new_obs["distgen_condition"] = pd.Categorical(conditions.astype(str))
        new_obs["distgen_context"] = pd.Categorical(contexts.astype(str))
        new_obs["distgen_batch"] = pd.Categorical(batches.astype(str))
        if library is not None:
            from distgen.data.counts import LIBRARY_COL

            new_obs[LIBRARY_COL] = library
        var = expression_var(adata, schema.expression).copy() if kind == "genes" else pd.DataFrame(index=pd.Index(genes))
        if cols is not None:
            var = var.iloc[cols].copy()
        processed = ad.AnnData(X=sp.csr_matrix(dense) if sp.issparse(x) else dense, obs=new_obs, var=var)
        if library is not None and large is not None and large.nnz:
            from distgen.data.counts import LARGE_COUNTS_LAYER

            processed.layers[LARGE_COUNTS_LAYER] = large if cols is None else large[:, cols]
        return cls(processed, schema, table, conditions, contexts, batches, scale, fitted,
                   library_genes=tuple(genes) if library is not None else None, dosed=dosed, legacy_labels=legacy)

    @classmethod
    def read_h5ad(cls, path: str, schema: PerturbationSchema | None = None) -> PerturbationData:
        """``from_anndata(anndata.read_h5ad(path), schema)``; an unreadable file is an ``InputFileError`` naming it."""
        from distgen.data.h5ad import read_h5ad

        return cls.from_anndata(read_h5ad(path), schema, copy=False)

    # ------------------------------------------------------------------ vocabularies and lookups
    def labels_for(self, conditions: Sequence[str], contexts: Sequence[str] | None = None, batches: Sequence[str] | None = None,
                   doses: Any = None) -> ConditionLabels:
        """``ConditionLabels`` for condition strings (``"A+B"``, ``"control"``) at predict time: what ``model.predict`` is asked.

        ``contexts`` and ``batches`` default to the first of the data's. Each condition is asked at the dose its cells
        carry in its context (``schema.dose_col``; dose 1 without one), unless ``doses`` says otherwise: a number (every
        condition at it), or one entry per condition: None (its recorded dose), a number (each of its atoms) or one per atom
        in the order written (``distgen.data.doses.resolve_doses``: checked, and a dose outside those the data's cells carry
        for an atom warns). A condition the data never recorded in that context needs its dose given. For a run's data,
        ``Dataset.labels`` reads the training cells' doses as the range.
        """
        atoms, written, ctx, bat = self.label_atoms(conditions, contexts, batches, "labels_for")
        read = [parse_dose_label(c, self.schema.combo_delimiter) if self.dosed and c not in ("control", *self.schema.control_labels)
                else None for c in conditions]
        tagged = [None if r is None else r[1] for r in read]
        dose = resolve_doses(self.dose_record(), atoms, ctx, doses, written, "labels_for", tagged)
        return _labels(atoms, dose, np.array(ctx, dtype=object), np.array(bat, dtype=object), self.info)

    def label_atoms(self, conditions: Sequence[str], contexts: Sequence[str] | None = None, batches: Sequence[str] | None = None,
                    where: str = "labels_for") -> tuple[list[tuple[str, ...]], list[tuple[str, ...]], list[str], list[str]]:
        """Per condition string its sorted atoms and its atoms as written, with the contexts and batches (defaults: the first
        of the data's); ``InputKeyError`` naming labels the data has no id for. ``labels_for`` without the doses."""
        delim = self.schema.combo_delimiter
        controls = {*self.schema.control_labels, "control"}
        read = [parse_dose_label(c, delim) if self.dosed and c not in controls else None for c in conditions]  # dex@10: its atoms
        written = [r[0] if r is not None else tuple(a.strip() for a in c.split(delim) if a.strip() and a.strip() not in controls)
                   for c, r in zip(conditions, read)]
        atoms = [tuple(sorted(set(w))) for w in written]
        n = len(conditions)
        ctx = list(contexts) if contexts is not None else [self.info.contexts[0]] * n
        bat = list(batches) if batches is not None else [self.info.batches[0]] * n
        # a context the data lacks (cells of a new donor encode(adata, model=) admitted): what predicts it, not only "no id"
        lacking = [c for c in dict.fromkeys(ctx) if c not in set(self.info.contexts)]
        fix = (f"; {where} asks only the data's contexts: for cells of another context that encode(adata, model=model) admitted "
               "(a model that reads no context predicts from the control cells given, whatever the context id), ask any "
               f"trained one, e.g. contexts={[self.info.contexts[0]]!r}; the encoded cells' own labels are table.labels"
               ) if where == "labels_for" and set(lacking) - respelt(lacking, self.info.contexts) else ""
        # not for write_predictions(data=), whose cells keep their own labels, nor for a typo alone (the case hint says it)
        unknown = unknown_labels_message(atoms, ctx, bat, self.schema, self.info, f"{where}: the conditions carry", context_fix=fix)
        if unknown:
            raise InputKeyError(unknown)
        return atoms, written, ctx, bat

    def dose_record(self, train: np.ndarray | None = None) -> DoseRecord:
        """What the cells record of doses (``distgen.data.doses.DoseRecord``): per (condition, context) its dose, per atom
        the range over the cells ``train`` (None: every cell). Kept once made."""
        if self.schema.dose_col is None:
            return dose_record(self.table.labels, self.info, None)  # every dose 1: nothing to read
        key = None if train is None else hashlib.sha1(np.ascontiguousarray(train, dtype=np.int64).tobytes()).hexdigest()
        if key not in self._doses:
            where = "the cells of this data" if train is None else "the training cells"
            self._doses[key] = dose_record(self.table.labels, self.info, self.schema.dose_col, train, where)
        return self._doses[key]

    def check_genes(self, genes: Sequence[str], var: pd.DataFrame | None = None) -> None:
        """Raise unless ``genes`` equal this dataset's genes, in order (``var``: the other file's gene table, for a hint)."""
        genes = [str(g) for g in genes]
        if genes == list(self.info.genes):
            return
        ours, theirs = set(self.info.genes), set(genes)
        if ours == theirs:
            raise InputDataError(f"gene names differ from the training data: the same {len(ours)} genes in another order; reindex the input to the training "
                                 f"genes (adata[:, genes], genes: the training gene names in their order)")
        unknown, missing = sorted(theirs - ours), [g for g in self.info.genes if g not in theirs]
        raise InputDataError(
            f"gene names differ from the training data: {len(missing)} of the {len(ours)} training genes "
            f"{'is' if len(missing) == 1 else 'are'} missing"
            + (f" ({first_of(missing, 5, render=repr, enclosed=True)})" if missing else "")
            + (f", {len(unknown)} {'is not a training gene' if len(unknown) == 1 else 'are not training genes'} "
               f"({first_of(unknown, 5, render=repr, enclosed=True)})" if unknown else "")
            + ". A model reads every training gene, by name: the input must hold all of them (filling missing ones with "
            "zeros would feed the model values it never saw)." + gene_hint(genes, self.info.genes, var)
        )

    def encode(self, adata: ad.AnnData, model: object = None) -> CellTable:
        """Cells of another AnnData (e.g. controls to predict from) as a ``CellTable`` in this dataset's terms.

        The same schema and normalisation apply. The input must contain every training gene (extra
        genes are dropped after normalisation, as at load time: counts are normalised over every gene
        given, so a gene set other than the training file's warns that the scale differs); unknown
        perturbations, contexts or batches are errors. A context never trained on is admitted, as ``distgen predict
        --data`` admits it, for a ``model`` that reads no context (``distgen.data.foreign.reads_contexts``: it predicts the
        context from that context's own control cells): the table's ``info.contexts`` gets it after the trained ones (a
        new id, which such a model never reads), with a warning. Without ``model`` it is refused, saying how to pass one.
        """
        schema = self.schema
        missing = [c for c in schema.required_columns() if c not in adata.obs.columns]
        if missing:
            raise InputKeyError(missing_columns_message(adata.obs, schema, self.info, missing))
        adata = in_memory(adata)
        keep = handle_missing_labels(adata.obs, schema, "the cells to encode")
        if keep is not None:
            adata = adata[keep].copy()
        x, genes, kind = read_expression(adata, schema.expression)
        names = pd.Index([str(g) for g in genes])
        # which copy of a duplicated training gene to read would be a guess; other duplicates (a 10x file's repeated
        # symbols outside the panel) are only summed into the library size, as every given gene is
        training = set(self.info.genes)
        check_unique_genes([g for g in names if g in training])
        if not training <= set(genes):
            self.check_genes(genes, expression_var(adata, schema.expression) if kind == "genes" else None)
        # only the training genes are made dense (a control file may hold every gene of the assay)
        check_dense_fits(x.shape[0], self.info.n_genes, x.nnz if sp.issparse(x) else None, "the cells to encode")
        check_values(x, schema.expression, allow_negative=kind == "embedding", has_raw=adata.raw is not None)
        scale = "log" if kind == "embedding" else resolve_scale(x, schema.scale, schema.expression, dict(adata.uns), schema.target_sum)
        if scale == "counts" and schema.normalize:
            if self.library_genes is not None and set(genes) != set(self.library_genes):
                n_extra, n_missing = len(set(genes) - set(self.library_genes)), len(set(self.library_genes) - set(genes))
                warn(
                    f"the cells to encode are counts over {len(genes)} genes ({n_extra} not in the training file, {n_missing} of its "
                    f"{len(self.library_genes)} missing): normalize_total sums a cell's counts over the genes it is given, so "
                    "these cells are scaled unlike the training cells. Give the training file's genes (adata[:, genes]) for "
                    "values on the same scale",
                )
            with warnings.catch_warnings():  # scanpy's "Some cells have zero counts": _warn_if_empty_cells below says which
                warnings.filterwarnings("ignore", message="Some cells have zero counts")
                x = _lognormalize(x, schema.target_sum)
        if list(genes) == list(self.info.genes):
            dense = to_dense_float32(x)
        else:  # the training genes' columns (normalised over every gene above): a fresh matrix, made dense alone
            first = {g: i for i, g in reversed(list(enumerate(names)))}
            dense = to_dense_float32(x[:, np.array([first[g] for g in self.info.genes], dtype=np.int64)], copy=False)
        atoms = parse_atoms(adata.obs, schema, genes)
        for message in spacing_warnings(adata.obs, schema):  # read as one condition, as at load: said as at load
            warn(f"the cells to encode: {message}")
        doses = parse_doses(adata.obs, schema, atoms)
        contexts, batches = context_labels(adata.obs, schema.context_cols), batch_labels(adata.obs, schema.batch_col)
        blind = model is not None and not reads_contexts(model)  # predicts a new context from its own controls (the CLI's rule)
        fix = NEW_CONTEXT_FIX + ("" if model is not None else
                                 "; Dataset.data.encode(adata, model=model) admits one for such a model (it cannot tell without it)")
        unknown = unknown_labels_message(atoms, [] if blind else contexts.tolist(), batches.tolist(), schema, self.info,
                                         "the cells to encode carry", context_fix=fix)
        if unknown:
            raise InputKeyError(unknown)
        info = self.info
        if new := sorted(set(contexts.tolist()) - set(info.contexts)):  # admitted above: the model reads no context
            warn(f"the cells to encode: context(s) {', '.join(repr(str(c)) for c in new[:8])} were not in the training file; the "
                 "model reads no context (use_context: false), so it predicts them from their own control cells given with "
                 f"them (the table's info.contexts names them after the {len(info.contexts)} trained ones)", DistgenWarning)
            info = dataclasses.replace(info, contexts=(*info.contexts, *map(str, new)))
        if kind == "genes" and dense.shape[0]:  # the load's rule (an all-zero matrix was encoded without a word)
            conds = np.array([condition_string(a, schema.combo_delimiter) for a in atoms], dtype=object)
            _warn_if_empty_cells(dense, adata.obs_names, np.array([not a for a in atoms], dtype=bool), conds, contexts, schema.expression)
        labels = _labels(atoms, doses, contexts, batches, info)
        out_scale = "log" if scale == "counts" and schema.normalize else scale
        if kind == "genes" and out_scale == "log" and self.table.meta.get("scale") == "log":
            self._warn_depth(torch.from_numpy(dense), contexts, np.array([not a for a in atoms], dtype=bool))
        meta: dict[str, Any] = {"scale": out_scale, **({"dosed": True} if self.dosed else {})}  # a baseline fitted on them reads doses
        return CellTable(torch.from_numpy(dense), labels, info, meta)

    def _warn_depth(self, cells: torch.Tensor, contexts: np.ndarray, control: np.ndarray) -> None:
        """Warn when encoded log1p ``cells`` [N, G] sit on another depth scale than this dataset's cells of their context."""
        off = depth_mismatches(cells, contexts, control, self.table.X, self.contexts, self.is_control)
        if off:
            shown = "; ".join(f"{ctx}: {a:.4g} vs {b:.4g}" for ctx, a, b in off[:5])
            warn(
                f"the cells to encode are on another scale than the training cells: the median of sum(expm1(x)) per cell "
                f"differs by more than {DEPTH_FACTOR:g}x in {counted(len(off), 'context')} ({shown}; controls compared with "
                "controls where both have some). Log1p of counts normalised to another total (normalize_total's target_sum, "
                "CPM, the data median) or values not log-transformed as the training cells were would be read as the same "
                "expression: normalise them as the training file was (or give raw counts, which are normalised with "
                f"target_sum {self.schema.target_sum:g} when the schema's scale reads counts)",
            )

    def groups(self, include_control: bool = False) -> dict[tuple[str, str, str], np.ndarray]:
        """``(condition, context, batch) -> cell indices``."""
        df = pd.DataFrame({"c": self.conditions.astype(str), "k": self.contexts.astype(str), "b": self.batches.astype(str)})
        out = {tuple(k): np.asarray(v, dtype=np.int64) for k, v in df.groupby(["c", "k", "b"], sort=True).indices.items()}
        return {k: v for k, v in out.items() if include_control or k[0] != "control"}

    @property
    def cell_names(self) -> np.ndarray:
        """``[N]`` the cells' names (``obs_names``, unique): what a split identifies its cells by (``cells_hash``)."""
        return np.asarray(self.adata.obs_names.astype(str), dtype=str)

    @property
    def cells_hash(self) -> str:
        """Hash of the cells (names, conditions, contexts, batches): what a ``Split`` is tied to.

        Gene selection does not change it, so a split stays valid after ``highly_variable_genes``. Population labels are
        hashed as distgen wrote them before float32 doses were written short (``legacy_labels``): the hash of data at
        float32 doses is the one stored in earlier split files and runs.
        """
        h = hashlib.sha256()
        conditions = tuple(self.conditions) if not self.legacy_labels else tuple(self.legacy_labels.get(c, c) for c in self.conditions)
        for part in (tuple(map(str, self.adata.obs_names)), conditions, tuple(self.contexts), tuple(self.batches)):
            h.update("\x1f".join(map(str, part)).encode())
            h.update(b"\x1e")
        return h.hexdigest()[:16]

    @property
    def hash(self) -> str:
        """Content hash of the cells, the genes and the expression values (for run manifests)."""
        h = hashlib.sha256(self.cells_hash.encode())
        h.update("\x1f".join(self.info.genes).encode())
        h.update(np.ascontiguousarray(self.table.X.numpy()).data)  # the bytes of tobytes(), without a second copy
        return h.hexdigest()[:16]

    def subset_genes(self, genes: Sequence[str], fitted_on: np.ndarray | None = None, name: str = "genes") -> PerturbationData:
        """Keep ``genes`` (in that order); ``fitted_on`` records the cells the choice was fitted on."""
        idx = pd.Index(self.info.genes).get_indexer(list(genes))
        if (idx < 0).any():
            bad = [g for g, i in zip(genes, idx) if i < 0][:5]
            raise InputKeyError(f"genes {bad} are not in the dataset")
        info = DataInfo(tuple(genes), self.info.perturbations, self.info.contexts, self.info.batches, self.info.perturbation_type, self.info.control_label)
        t = torch.from_numpy(idx)
        table = CellTable(self.table.X[:, t].contiguous(), self.table.labels, info, dict(self.table.meta))
        fitted = dict(self.fitted)
        if fitted_on is not None:
            fitted[name] = np.sort(np.asarray(fitted_on, dtype=np.int64))
        return PerturbationData(self.adata[:, idx].copy(), self.schema, table, self.conditions, self.contexts, self.batches, self.scale, fitted,
                                self.library_genes, self.dosed, dict(self.legacy_labels))


#: ``select`` of ``PerturbationData.from_anndata``: ``(outline, x) -> (genes, fitted_on, name)`` or None (every gene).
GeneSelector = Callable[["PerturbationData", Any], "tuple[Sequence[str], np.ndarray | None, str] | None"]


def _labels(atoms: list[tuple[str, ...]], doses: list[tuple[float, ...]], contexts: np.ndarray, batches: np.ndarray, info: DataInfo) -> ConditionLabels:
    return labels_in(info, atoms, contexts.tolist(), batches.tolist(), doses)
