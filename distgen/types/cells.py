"""``Cells``: a labelled population, the string-labelled view of cells that flows between stages.

A ``CellTable`` (``distgen.types.tensors``) holds integer ids into a ``DataInfo``: what models fit
on. ``Cells`` holds the condition, context and batch of every cell as strings: what predictions,
ground truths and baselines' references are, and what evaluation scores. ``to_table``/``from_table``
convert between the two through a vocabulary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from distgen.errors import InputDataError
from distgen.types.tensors import PAD, CellTable, ConditionLabels, DataInfo
from distgen.wording import counted, first_of

COMBO = "+"  #: the delimiter of a canonical combination label (``"A+B"``)
#: The labels ``Cells.relabelled`` replaces (every field but the values and the genes).
LABEL_FIELDS = ("conditions", "contexts", "batches", "control", "names")

ALL = "all"  #: the context (or batch) label of data without contexts (or batches); also "every context"


def atoms_of(condition: str, control: str = "control") -> tuple[str, ...]:
    """Atoms of a canonical condition: ``"A+B" -> ("A", "B")``, the control label -> ``()``."""
    return () if condition == control else tuple(condition.split(COMBO))


def canonical(atoms: Iterable[str], control: str = "control") -> str:
    """The canonical condition of ``atoms``: sorted, unique, joined by ``+``; ``control`` for none."""
    unique = sorted(set(atoms))
    return COMBO.join(unique) if unique else control


def _labels(values: Any, n: int, name: str) -> np.ndarray:
    """``values`` as a new object array of ``str`` (``ALL`` for None), one per cell; a wrong length raises ``ValueError``.

    A list (or any iterable) gives ``str(v)`` of each value; an array what ``astype(str)`` gives (trailing NUL characters
    dropped), an object array through ``_object_labels``. A ``bytes`` label, in a list or an array, is its UTF-8 text
    (``_text``)."""
    if values is None:
        return np.full(n, ALL, dtype=object)
    if not isinstance(values, np.ndarray):
        arr = np.asarray([str(_text(v, name)) for v in values], dtype=object)
    elif values.dtype == object:
        arr = _object_labels(values, name)
    elif values.dtype.kind == "S":  # tolist drops the trailing NULs, as astype(str) does
        arr = np.fromiter((_text(v, name) for v in values.ravel().tolist()), dtype=object, count=values.size).reshape(values.shape)
    else:
        arr = values.astype(str).astype(object)
    if arr.shape != (n,):
        raise ValueError(f"Cells.{name} must give one label per cell ({n}), got shape {arr.shape}")
    return arr


def _text(value: Any, name: str) -> Any:
    """A ``bytes`` label as its UTF-8 text (h5py gives a file's strings as UTF-8 bytes, which anndata decodes so); anything
    else as it is. Bytes that are not UTF-8 are refused (``InputDataError``) naming the label: numpy's own conversion
    decodes ASCII only, and ``str()`` writes ``"b'...'"``."""
    if not isinstance(value, bytes):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise InputDataError(f"Cells.{name} holds the label {value!r}, bytes that are not UTF-8 text: decode the labels to str "
                             "in their encoding first (e.g. [v.decode('latin-1') for v in labels])") from None


def _object_labels(values: np.ndarray, name: str) -> np.ndarray:
    """The object array ``values`` as a new object array of ``str``, what ``astype(str)`` gives but for two cases.

    Copied as it is when every element is a ``str`` (not a subclass) and none holds a NUL character (what the readers give;
    a type set and one search of the joined text: no Python step per label): its labels are what ``astype(str)`` would
    give, whose fixed-width round trip drops trailing NULs only. Else through ``astype(str)``, each ``str`` subclass made
    ``str(v)`` first, whole, as a list gives it: ``astype(str)`` alone sizes the strings by a subclass's text and cuts a
    longer ``str()`` (an Enum with a ``str`` mixin: ``Guide.KO_A`` and ``Guide.CTRL`` would both be ``'Gu'``); and each
    ``bytes`` label decoded first as UTF-8 (``_text``), where ``astype(str)`` decodes ASCII only."""
    items = values.ravel().tolist()
    kinds = set(map(type, items))
    if kinds <= {str} and "\x00" not in "".join(items):
        return values.copy()
    if any((issubclass(k, str) and k is not str) or issubclass(k, bytes) for k in kinds):
        whole = (str(v) if isinstance(v, str) else _text(v, name) for v in items)
        values = np.fromiter(whole, dtype=object, count=len(items)).reshape(values.shape)
    return values.astype(str).astype(object)


@dataclass(frozen=True, eq=False, init=False)
class Cells:
    """A labelled population: ``X [N, G]`` with the condition, context and batch of every cell.

    What a prediction, a ground truth and a baseline's reference are, and what evaluation scores;
    ``distgen.data.layout`` converts it to and from the cell-eval AnnData layout (the only place
    where cells become files). No AnnData in here.

    Attributes
    ----------
    X
        ``[N, G]`` float expression (log-normalised).
    conditions
        ``[N]`` canonical condition strings: atoms sorted and joined by ``+`` (``"A+B"``), or ``control``.
    contexts, batches
        ``[N]`` context (cell type / line) and batch labels; ``"all"`` when the data has none.
    genes
        The ``G`` gene names, in column order.
    control
        The condition label of control cells (``"control"`` in distgen; a file's own label when read).
    names
        Optional ``[N]`` cell names (kept from the source data when known).
    """

    X: Tensor
    conditions: np.ndarray
    contexts: np.ndarray
    batches: np.ndarray
    genes: tuple[str, ...]
    control: str = "control"
    names: np.ndarray | None = None

    def __init__(
        self,
        X: Tensor | np.ndarray,
        conditions: Sequence[str] | np.ndarray,
        genes: Sequence[str],
        contexts: Sequence[str] | np.ndarray | None = None,
        batches: Sequence[str] | np.ndarray | None = None,
        control: str = "control",
        names: Sequence[str] | np.ndarray | None = None,
    ) -> None:
        x = torch.as_tensor(np.ascontiguousarray(X)) if isinstance(X, np.ndarray) else X
        if x.dim() != 2:
            raise ValueError(f"Cells.X must be [N, G], got shape {tuple(x.shape)}")
        object.__setattr__(self, "X", x)
        _set_labels(self, int(x.shape[0]), int(x.shape[1]), conditions, genes, contexts, batches, control, names)

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def __repr__(self) -> str:
        n_cond = len(set(self.conditions[~self.is_control].tolist()))
        return (f"Cells({counted(len(self), 'cell')} x {counted(len(self.genes), 'gene')}, {counted(n_cond, 'condition')}, "
                f"{counted(int(self.is_control.sum()), 'control')})")

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @property
    def is_control(self) -> np.ndarray:
        """``[N]`` bool, True for control cells."""
        return np.asarray(self.conditions == self.control, dtype=bool)

    def atoms(self, condition: str) -> tuple[str, ...]:
        """Atoms of one of this population's conditions (``()`` for the control)."""
        return atoms_of(condition, self.control)

    def groups(self, by_context: bool = True, include_control: bool = False) -> dict[tuple[str, str], np.ndarray]:
        """``{(condition, context): row indices}``, sorted by key; contexts pooled as ``"all"`` unless ``by_context``."""
        ctx = self.contexts if by_context else np.full(len(self), ALL, dtype=object)
        out: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(zip(self.conditions.tolist(), ctx.tolist())):
            out.setdefault(key, []).append(i)
        return {k: np.asarray(out[k], dtype=np.int64) for k in sorted(out) if include_control or k[0] != self.control}

    def context_labels(self) -> list[str]:
        """The distinct contexts, sorted."""
        return sorted(set(self.contexts.tolist()))

    def subset(self, idx: np.ndarray | Sequence[int] | Tensor) -> Cells:
        """The cells at row indices (or a boolean mask) ``idx``, in that order."""
        i = np.asarray(idx.cpu() if isinstance(idx, Tensor) else idx)
        if i.dtype == bool:
            i = np.flatnonzero(i)
        i = i.astype(np.int64)
        return Cells(self.X[torch.from_numpy(i)], self.conditions[i], self.genes, self.contexts[i], self.batches[i], self.control,
                     None if self.names is None else self.names[i])

    def block(self, start: int, stop: int) -> Cells:
        """The cells of rows ``start:stop``; their ``X`` a view of this table (no copy)."""
        return Cells(self.X[start:stop], self.conditions[start:stop], self.genes, self.contexts[start:stop],
                     self.batches[start:stop], self.control, None if self.names is None else self.names[start:stop])

    def controls(self, context: str | None = None) -> Cells:
        """The control cells (of ``context`` only, when given)."""
        mask = self.is_control if context is None else self.is_control & (self.contexts == context)
        return self.subset(mask)

    def of_context(self, context: str) -> Cells:
        """Every cell of ``context``, perturbed and control."""
        return self.subset(self.contexts == context)

    def perturbed(self) -> Cells:
        """The perturbed (non-control) cells."""
        return self.subset(~self.is_control)

    def with_genes(self, genes: Sequence[str]) -> Cells:
        """The same cells with columns reordered (or subset) to ``genes``; unknown names are an error."""
        index = {g: i for i, g in enumerate(self.genes)}
        missing = [g for g in genes if g not in index]
        if missing:
            raise KeyError(f"genes {first_of(missing, 5, render=repr)} are not among these cells' {len(self.genes)} genes")
        cols = torch.tensor([index[g] for g in genes], dtype=torch.long)
        return Cells(self.X[:, cols], self.conditions, genes, self.contexts, self.batches, self.control, self.names)

    @staticmethod
    def concat(items: Sequence[Cells]) -> Cells:
        """Rows of ``items`` one after the other (same genes, in order, and the same control label)."""
        if not items:
            raise ValueError("Cells.concat needs at least one Cells")
        first = items[0]
        for c in items[1:]:
            if c.genes != first.genes:
                raise ValueError("Cells.concat: the populations have different genes (or gene order); align them with with_genes")
            if c.control != first.control:
                raise ValueError(f"Cells.concat: control labels differ ({first.control!r} vs {c.control!r})")
        named = all(c.names is not None for c in items)
        return Cells(
            torch.cat([c.X for c in items]),
            np.concatenate([c.conditions for c in items]),
            first.genes,
            np.concatenate([c.contexts for c in items]),
            np.concatenate([c.batches for c in items]),
            first.control,
            np.concatenate([c.names for c in items if c.names is not None]) if named else None,
        )

    def relabelled(self, **labels: Any) -> Cells:
        """The same values with some labels replaced (``conditions``, ``contexts``, ``batches``, ``control``, ``names``;
        checked as at construction): ``dataclasses.replace`` for labels, which an ``IndexedCells`` keeps as rows of its base."""
        _check_label_fields(labels)
        return dataclasses.replace(self, **labels)

    def relabel_control(self, control: str) -> Cells:
        """The same cells with the control condition renamed to ``control``."""
        conds = np.where(self.is_control, control, self.conditions).astype(object)
        return Cells(self.X, conds, self.genes, self.contexts, self.batches, control, self.names)

    @staticmethod
    def from_table(table: CellTable, names: Sequence[str] | None = None) -> Cells:
        """A ``CellTable``'s cells with their ids turned back into labels (``info.control_label`` for controls)."""
        info = table.info
        atoms = info.perturbations
        conds = [canonical((atoms[a] for a in row if a >= 0), info.control_label) for row in table.labels.perturbation.tolist()]
        ctx = [info.contexts[i] for i in table.labels.context.tolist()]
        bat = [info.batches[i] for i in table.labels.batch.tolist()]
        return Cells(table.X, conds, info.genes, ctx, bat, info.control_label, names)

    def to_table(self, info: DataInfo) -> CellTable:
        """These cells as a ``CellTable`` in the vocabulary ``info`` (dose 1 per atom); unknown labels are errors.

        Dose 1 because a ``Cells`` carries no dose (nor does the cell-eval layout it is read from). What reads such a table
        reads no dose: the closed-form baselines never look at ``labels.dose`` on such a table (no ``meta['dosed']``;
        ``tests/pipeline/test_predict_doses.py`` holds each of them to it); ``distgen evaluate --train`` reads the doses of
        ``atom@dose`` labels itself (``distgen.pipeline.references.population_doses``). A model fitted on ``Cells``
        (``distgen.fit(model, cells)``) learns every atom at dose 1: fit a dose-reading model on a ``Dataset``
        (``schema.dose_col``) instead (``docs/data.md``, "Doses")."""
        if tuple(self.genes) != tuple(info.genes):
            raise ValueError("Cells.to_table: the cells' genes differ from info.genes; align them first (with_genes)")
        return CellTable(self.X.to(torch.float32), self.labels(info), info)

    def labels(self, info: DataInfo, rows: Sequence[int] | np.ndarray | None = None) -> ConditionLabels:
        """``ConditionLabels`` of (some) cells in the vocabulary ``info``."""
        idx = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64)
        return labels_in(info, [self.atoms(c) for c in self.conditions[idx].tolist()], self.contexts[idx].tolist(),
                         self.batches[idx].tolist())


class IndexedCells(Cells):
    """Cells whose values are rows of another table: ``X`` is ``base[rows]``, gathered each time it is read, held by no one.

    What a reference that repeats cells of its truth is (the ``control`` baseline predicts each group as control cells
    of the truth: ``distgen.pipeline.references``) without a table of the truth's size beside the truth: the rows are
    gathered while the reference is scored, and dropped with its scores. Everything else is a ``Cells``'s, with the same
    values; ``subset`` (and so ``of_context``, ``controls``, ``perturbed``) and ``block`` pick rows without gathering them.
    """

    base: Tensor
    rows: np.ndarray

    def __init__(
        self,
        base: Tensor,
        rows: np.ndarray | Sequence[int],
        conditions: Sequence[str] | np.ndarray,
        genes: Sequence[str],
        contexts: Sequence[str] | np.ndarray | None = None,
        batches: Sequence[str] | np.ndarray | None = None,
        control: str = "control",
        names: Sequence[str] | np.ndarray | None = None,
    ) -> None:
        idx = np.asarray(rows, dtype=np.int64)
        if base.dim() != 2 or idx.ndim != 1:
            raise ValueError(f"IndexedCells needs a [M, G] base and [N] rows, got {tuple(base.shape)} and {idx.shape}")
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= base.shape[0]):
            raise ValueError(f"IndexedCells rows must index the base's {base.shape[0]} rows, got {int(idx.min())}..{int(idx.max())}")
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "rows", idx)
        _set_labels(self, len(idx), int(base.shape[1]), conditions, genes, contexts, batches, control, names)

    @property  # type: ignore[override]
    def X(self) -> Tensor:
        """``[N, G]`` the rows, gathered now (a new table each time: keep it while it is used, no longer)."""
        base = self.base
        if base.device.type == "cpu" and base.dtype in (torch.float32, torch.float64) and not base.requires_grad:
            return torch.from_numpy(base.numpy().take(self.rows, axis=0))  # numpy's row gather: ~10x torch's on one CPU thread
        return base[torch.from_numpy(self.rows).to(base.device)]

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, idx: np.ndarray | Sequence[int] | Tensor) -> Cells:
        """The cells at row indices (or a boolean mask) ``idx``, in that order: rows of the same base (nothing gathered)."""
        i = np.asarray(idx.cpu() if isinstance(idx, Tensor) else idx)
        if i.dtype == bool:
            i = np.flatnonzero(i)
        i = i.astype(np.int64)
        return IndexedCells(self.base, self.rows[i], self.conditions[i], self.genes, self.contexts[i], self.batches[i], self.control,
                            None if self.names is None else self.names[i])

    def block(self, start: int, stop: int) -> Cells:
        """The cells of rows ``start:stop``: rows of the same base (nothing gathered)."""
        return self.subset(np.arange(len(self))[start:stop])

    def relabelled(self, **labels: Any) -> Cells:
        """The same rows of the same base with some labels replaced (``Cells.relabelled``; nothing gathered)."""
        _check_label_fields(labels)
        now = {f: getattr(self, f) for f in LABEL_FIELDS} | labels
        return IndexedCells(self.base, self.rows, now["conditions"], self.genes, now["contexts"], now["batches"], now["control"],
                            now["names"])


def _check_label_fields(labels: Mapping[str, Any]) -> None:
    """``TypeError`` unless every key of ``labels`` is one ``Cells.relabelled`` replaces (``LABEL_FIELDS``)."""
    unknown = sorted(set(labels) - set(LABEL_FIELDS))
    if unknown:
        raise TypeError(f"relabelled() replaces labels only ({', '.join(LABEL_FIELDS)}), got {unknown}")


def _set_labels(cells: Cells, n: int, width: int, conditions: Sequence[str] | np.ndarray, genes: Sequence[str],
                contexts: Sequence[str] | np.ndarray | None, batches: Sequence[str] | np.ndarray | None, control: str,
                names: Sequence[str] | np.ndarray | None) -> None:
    """Check and set every field of ``cells`` but its values (``n`` rows, ``width`` gene columns): ``Cells``'s and
    ``IndexedCells``'s alike."""
    genes = tuple(str(g) for g in genes)
    if len(genes) != width:
        raise ValueError(f"Cells.X has {width} gene columns but {len(genes)} gene names were given")
    if len(set(genes)) != len(genes):
        dup = sorted({g for g in genes if genes.count(g) > 1})[:5]
        raise ValueError(f"Cells.genes has duplicated names {dup}; make them unique")
    object.__setattr__(cells, "conditions", _labels(conditions, n, "conditions"))
    object.__setattr__(cells, "contexts", _labels(contexts, n, "contexts"))
    object.__setattr__(cells, "batches", _labels(batches, n, "batches"))
    object.__setattr__(cells, "genes", genes)
    object.__setattr__(cells, "control", str(control))
    object.__setattr__(cells, "names", None if names is None else _labels(names, n, "names"))


def labels_in(
    info: DataInfo, atoms: Sequence[Sequence[str]], contexts: Sequence[str], batches: Sequence[str],
    doses: Sequence[Sequence[float]] | None = None,
) -> ConditionLabels:
    """``ConditionLabels`` from atom names, context and batch labels, in the vocabulary ``info``.

    Unknown atoms, contexts or batches raise ``KeyError`` naming them and what is known.
    """
    pidx = info.perturbation_index()
    cidx = {c: i for i, c in enumerate(info.contexts)}
    bidx = {b: i for i, b in enumerate(info.batches)}
    n = len(atoms)
    width = max([len(a) for a in atoms] + [1])
    pert = np.full((n, width), PAD, dtype=np.int64)
    dose = np.zeros((n, width), dtype=np.float32)
    for i, a in enumerate(atoms):
        d = doses[i] if doses is not None else [1.0] * len(a)
        for j, (atom, dv) in enumerate(zip(a, d)):
            if atom not in pidx:
                known = (f"known atoms include {first_of(list(info.perturbations), 10, render=repr)}" if info.perturbations
                         else "the data holds no perturbation atoms")
                raise KeyError(f"unknown perturbation {atom!r}: not seen in the data; {known}")
            pert[i, j] = pidx[atom]
            dose[i, j] = dv
    for name, vals, vocab in (("context", contexts, cidx), ("batch", batches, bidx)):
        unknown = sorted(set(vals) - set(vocab))
        if unknown:
            raise KeyError(f"unknown {name} {first_of(unknown, 5, render=repr)}; known: {first_of(list(vocab), 10, render=repr) or 'none'}")
    ctx = np.array([cidx[c] for c in contexts], dtype=np.int64)
    bat = np.array([bidx[b] for b in batches], dtype=np.int64)
    return ConditionLabels(torch.from_numpy(pert), torch.from_numpy(dose), torch.from_numpy(ctx), torch.from_numpy(bat))


def vocabulary(populations: Iterable[Cells], perturbation_type: str | None = None) -> DataInfo:
    """A ``DataInfo`` covering every atom, context and batch of ``populations`` (same genes, in order).

    ``perturbation_type`` defaults to ``"genetic"`` when some atom is a measured gene, else ``"chemical"``.
    """
    pops = list(populations)
    if not pops:
        raise ValueError("vocabulary needs at least one Cells")
    genes = pops[0].genes
    atoms = sorted({a for p in pops for c in set(p.conditions.tolist()) for a in p.atoms(c)})
    contexts = sorted({c for p in pops for c in p.contexts.tolist()})
    batches = sorted({b for p in pops for b in p.batches.tolist()})
    if perturbation_type is None:
        gene_set = set(genes)
        perturbation_type = "genetic" if any(a in gene_set for a in atoms) else "chemical"
    return DataInfo(genes=genes, perturbations=tuple(atoms), contexts=tuple(contexts), batches=tuple(batches),
                    perturbation_type=perturbation_type, control_label=pops[0].control)
