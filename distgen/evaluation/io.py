"""The AnnData edge of evaluation: read a prediction/truth pair into ``EvalData``, validating it.

Expected layout (cell-eval's): both files have the same genes in ``var_names``, a perturbation
column in ``obs`` (``--pert-col``) whose control cells carry the control label (``--control``), and
log-normalised expression in ``X``. Combinations are labelled ``A+B``. Bad input gives an error
naming what is wrong and how to fix it, or, per perturbation, NaN with a reason (``EvalData.invalid``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from distgen.evaluation.evaldata import EvalData, Population

log = logging.getLogger(__name__)

PERT_COLS = ("target_gene", "target", "condition", "perturbation", "gene", "guide_target")  # cell-eval's default first
CONTROL_LABELS = ("non-targeting", "control", "ctrl", "NT", "non_targeting", "DMSO")
COMBO_DELIMITER = "+"


@dataclass
class PairInfo:
    """What was read and any adjustments made (recorded in ``summary.json``)."""

    pert_col: str
    control: str
    notes: list[str] = field(default_factory=list)


def read(adata: Any) -> Any:
    """An ``AnnData`` from a path or an object."""
    if isinstance(adata, str | bytes) or hasattr(adata, "__fspath__"):
        import anndata as ad

        return ad.read_h5ad(adata)
    return adata


def dense(x: Any) -> np.ndarray:
    """``X`` as a dense float32 array."""
    if hasattr(x, "toarray"):
        x = x.toarray()
    return np.asarray(x, dtype=np.float32)


def guess_columns(real: Any, pred: Any, pert_col: str | None, control: str | None) -> tuple[str, str]:
    """Resolve the perturbation column and control label (given, or the first common convention present)."""
    if pert_col is None:
        found = [c for c in PERT_COLS if c in real.obs.columns and c in pred.obs.columns]
        if not found:
            raise ValueError(f"no perturbation column given and none of {PERT_COLS} is in both files' obs "
                             f"(real has {list(real.obs.columns)}); pass --pert-col")
        pert_col = found[0]
    for name, a in (("real", real), ("pred", pred)):
        if pert_col not in a.obs.columns:
            raise ValueError(f"perturbation column {pert_col!r} is not in the {name} file's obs columns {list(a.obs.columns)}; "
                             "pass the right --pert-col")
    labels_r = set(real.obs[pert_col].astype(str))
    if control is None:
        found = [c for c in CONTROL_LABELS if c in labels_r]
        if not found:
            raise ValueError(f"no control label given and none of {CONTROL_LABELS} is a value of real.obs[{pert_col!r}]; pass --control")
        control = found[0]
    for name, a in (("real", real), ("pred", pred)):
        labels = set(a.obs[pert_col].astype(str))
        if control not in labels:
            some = sorted(labels)[:8]
            raise ValueError(f"the {name} file has no control cells: label {control!r} is not in obs[{pert_col!r}] "
                             f"(values include {some}); every evaluation needs control cells in both files (pass --control)")
    return pert_col, control


def atoms_of(label: str, control: str) -> tuple[str, ...]:
    """Target atoms of a label: ``"A+B" -> ("A", "B")``; control tokens (``ctrl``) dropped."""
    skip = {control, *CONTROL_LABELS}
    return tuple(a.strip() for a in label.split(COMBO_DELIMITER) if a.strip() and a.strip() not in skip)


def _check_scale(x: np.ndarray, name: str) -> None:
    sample = x[: min(len(x), 2000)]
    finite = sample[np.isfinite(sample)]
    if finite.size and finite.max() > 30 and np.all(np.mod(finite, 1) == 0):
        raise ValueError(f"the {name} file looks like raw counts (integers up to {finite.max():.0f}); distgen evaluates "
                         "log-normalised expression: run scanpy.pp.normalize_total and scanpy.pp.log1p first")


def _check_counts(x: np.ndarray, name: str) -> None:
    sample = x[: min(len(x), 2000)]
    finite = sample[np.isfinite(sample)]
    if finite.size and (finite.min() < 0 or bool((finite != np.floor(finite)).any())):
        raise ValueError(f"the {name} file holds fractional or negative values, but this evaluation scores RAW COUNTS "
                         "(the vcc2026 / cell-eval2 counts profiles): write predictions in counts (`distgen predict --counts`) "
                         "and pass the raw-count truth, or evaluate log-normalised files with a log-scale profile")


def _group_order(real: Any, pert_col: str, labels: np.ndarray) -> tuple[str, ...]:
    """The perturbation column's category order (what cell-eval2 iterates), natsorted labels without one."""
    col = real.obs[pert_col]
    if hasattr(col, "cat"):
        present = set(labels.tolist())
        return tuple(str(c) for c in col.cat.categories if str(c) in present)
    from natsort import natsorted

    return tuple(natsorted(set(labels.tolist())))


def load_pair(pred: Any, real: Any, pert_col: str | None = None, control: str | None = None,
              scale: str = "lognorm") -> tuple[EvalData, PairInfo]:
    """Read and validate a prediction/truth pair into ``EvalData`` (genes in the real file's order).

    ``scale``: ``"lognorm"`` (log-normalised ``X``; raw counts are refused) or ``"counts"`` (raw
    counts on both sides, as cell-eval2's v2 and vcc2026 profiles score; fractional values refused).
    """
    if scale not in ("lognorm", "counts"):
        raise ValueError(f"scale must be 'lognorm' or 'counts', got {scale!r}")
    real, pred = read(real), read(pred)
    pert_col, control = guess_columns(real, pred, pert_col, control)
    info = PairInfo(pert_col, control)
    genes_r, genes_p = [str(g) for g in real.var_names], [str(g) for g in pred.var_names]
    if len(set(genes_r)) != len(genes_r):
        raise ValueError("the real file has duplicated gene names in var_names; make them unique (adata.var_names_make_unique())")
    if genes_r != genes_p:
        missing, extra = sorted(set(genes_r) - set(genes_p)), sorted(set(genes_p) - set(genes_r))
        if missing or extra or len(genes_p) != len(genes_r):
            raise ValueError(f"prediction and truth have different genes: {len(missing)} real genes missing from pred "
                             f"(e.g. {missing[:5]}), {len(extra)} pred genes not in real (e.g. {extra[:5]}); "
                             "subset both to the same genes")
        info.notes.append("prediction genes were in a different order; reordered to the real file's order")
        pred = pred[:, genes_r]
    x_r, x_p = dense(real.X), dense(pred.X)
    for x, name in ((x_r, "real"), (x_p, "pred")):
        (_check_counts if scale == "counts" else _check_scale)(x, name)
    lab_r = real.obs[pert_col].astype(str).to_numpy()
    lab_p = pred.obs[pert_col].astype(str).to_numpy()
    perts = sorted(set(lab_r) - {control})
    extra_p = sorted(set(lab_p) - set(lab_r))
    if extra_p:
        raise ValueError(f"the prediction has {len(extra_p)} perturbations that the truth lacks (e.g. {extra_p[:5]}); "
                         "evaluate against a truth file that contains them, or drop them from the prediction")
    index = {p: i for i, p in enumerate(perts)}
    code_r = np.array([index.get(v, -1) for v in lab_r])
    code_p = np.array([index.get(v, -1) for v in lab_p])
    for name, x, code in (("real", x_r, code_r), ("pred", x_p, code_p)):
        if not np.isfinite(x[code == -1]).all():
            raise ValueError(f"the {name} file's control cells contain NaN or inf values; fix the input")
    data = EvalData(
        real=Population.from_codes(torch.from_numpy(x_r), torch.from_numpy(code_r), len(perts)),
        pred=Population.from_codes(torch.from_numpy(x_p), torch.from_numpy(code_p), len(perts)),
        perts=tuple(perts),
        targets=tuple(atoms_of(p, control) for p in perts),
        genes=tuple(genes_r),
    )
    if scale == "counts":
        data.cache["scale"] = "counts"
        data.cache["group_order"] = _group_order(real, pert_col, lab_r)
    flag_invalid(data)
    return data, info


def flag_invalid(data: EvalData, min_cells: int = 2) -> None:
    """Record perturbations whose metrics must be NaN, with the reason, in ``data.invalid``."""
    for name in ("real", "pred"):
        pop = data.population(name)
        counts = pop.counts.tolist()
        bad_rows = ~torch.isfinite(pop.X).all(-1)
        bad = torch.zeros(pop.n_perts, dtype=torch.long).index_add_(0, pop.codes(), bad_rows.long()).tolist()
        for p in range(pop.n_perts):
            if counts[p] == 0:
                data.invalid.setdefault(p, f"no {name} cells for this perturbation")
            elif counts[p] < min_cells:
                data.invalid.setdefault(p, f"only {counts[p]} {name} cell(s); at least {min_cells} are needed")
            elif bad[p]:
                data.invalid.setdefault(p, f"{bad[p]} {name} cell(s) contain NaN or inf values")


def training_table(train: Any, genes: tuple[str, ...], perts: tuple[str, ...], pert_col: str, control: str) -> tuple[Any, Any]:
    """Training cells for the baselines as a ``CellTable`` over ``genes``, and ``labels(perts)`` for predict.

    The atom vocabulary covers the training AND the evaluated perturbations (so a baseline can be
    asked about an atom it never saw: it answers with its fallback), but only training cells are in
    the table. Contexts are not modelled (one context): deltas are taken against all training controls.
    """
    from distgen.types import CellTable, ConditionLabels, DataInfo

    train = read(train)
    if pert_col not in train.obs.columns:
        raise ValueError(f"perturbation column {pert_col!r} is not in the training file's obs columns {list(train.obs.columns)}")
    have = {str(g) for g in train.var_names}
    missing = [g for g in genes if g not in have]
    if missing:
        raise ValueError(f"the training file lacks {len(missing)} evaluated genes (e.g. {missing[:5]}); baselines need every gene")
    x = dense(train[:, list(genes)].X)
    _check_scale(x, "training")
    labels = train.obs[pert_col].astype(str).to_numpy()
    if control not in set(labels):
        raise ValueError(f"the training file has no control cells labelled {control!r} in obs[{pert_col!r}]; baselines need them")
    cell_atoms = [atoms_of(v, control) for v in labels]
    vocab = sorted({a for t in cell_atoms for a in t} | {a for p in perts for a in atoms_of(p, control)})
    index = {a: i for i, a in enumerate(vocab)}
    gene_set = set(genes)
    kind = "genetic" if any(a in gene_set for a in vocab) else "chemical"
    info = DataInfo(genes=tuple(genes), perturbations=tuple(vocab), perturbation_type=kind, control_label=control)
    table = CellTable(torch.from_numpy(x), ConditionLabels.make([[index[a] for a in t] for t in cell_atoms]), info)

    def to_labels(names: list[str]) -> ConditionLabels:
        return ConditionLabels.make([[index[a] for a in atoms_of(p, control)] for p in names])

    return table, to_labels
