"""``Dataset``: the data of a run, loaded once: cells + split + preprocessing fitted on training cells.

``Dataset.load(section)`` reads the ``data:`` section's dataset, makes (or loads) its split, fits
the preprocessing (highly variable genes) on the training cells and checks the split for leakage.
Everything a run needs afterwards comes from this one object: the training cells (``train_table``
for models, ``train_cells()`` as a labelled population), the batch sources of the trainer, and, per
split part, the held-out (condition, context, batch) groups with the control cells they are
predicted from (``groups``) and their ground truth (``truth``).
"""

from __future__ import annotations

import dataclasses
import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distgen.config import ConfigError
from distgen.data.batches import TableBatches
from distgen.data.conditions import dose_label, parse_dose_label
from distgen.data.dataset import PerturbationData
from distgen.data.doses import DoseRecord, read_tags, resolve_doses
from distgen.data.groups import Group, control_draw, held_out_groups
from distgen.data.sampler import condition_groups
from distgen.data.section import BUNDLED, DataSection, data_section
from distgen.data.split import Split
from distgen.errors import DistgenWarning, InputDataError
from distgen.seeds import content_keys, name_keys
from distgen.types import ALL, COMBO, Cells, CellTable, ConditionLabels, DataInfo, canonical, labels_in
from distgen.warning_errors import recorded, replay
from distgen.wording import counted, first_of, quoted

PARTS = ("train", "val", "test")


def cells_of(data: PerturbationData, idx: np.ndarray | Sequence[int]) -> Cells:
    """Rows ``idx`` of ``data`` as a labelled population (canonical conditions, cell names kept)."""
    idx = np.asarray(idx, dtype=np.int64)
    return Cells(
        data.table.X[torch.from_numpy(idx)],
        _canonical_conditions(data)[idx],
        data.info.genes,
        data.contexts[idx],
        data.batches[idx],
        data.info.control_label,
        np.asarray(data.adata.obs_names[idx].astype(str), dtype=object),
    )


def _canonical_conditions(data: PerturbationData) -> np.ndarray:
    """``[N]`` conditions written with ``+`` (the dataset's own delimiter may differ)."""
    if data.schema.combo_delimiter == COMBO:
        return data.conditions
    clash = sorted(a for a in data.info.perturbations if COMBO in a)
    if clash:
        raise InputDataError(f"perturbation atoms {first_of(clash, 5, render=repr)} contain {COMBO!r}, distgen's combination delimiter in predictions "
                         "and evaluations; rename them")
    if data.dosed:  # dex@10, A@1_B@3 -> A@1+B@3
        dosed = {c: dose_label(*data.dose_of(c), COMBO) for c in set(data.conditions.tolist())}
        return np.array([dosed[c] for c in data.conditions.tolist()], dtype=object)
    table = {c: canonical(data.atoms_of(c), data.info.control_label) for c in set(data.conditions.tolist())}
    return np.array([table[c] for c in data.conditions.tolist()], dtype=object)


#: ``CellTable.meta`` key of a ``Dataset.train_table``: a ``DatasetOrigin``, a weak reference to the Dataset it was taken from.
ORIGIN = "from_dataset"


def refuse_anndata(call: str, data: Any, takes: str) -> None:
    """``TypeError`` naming the ways in when ``data`` is an AnnData (in memory, backed or a view) where ``call`` takes
    ``takes`` (said as it is, e.g. "a Dataset (distgen.load_data), a CellTable or Cells"): an AnnData has no split, so
    ``distgen.predict(..., max_cells=N)`` ended in ``AttributeError: 'AnnData' object has no attribute 'capped'``."""
    if not type(data).__module__.startswith("anndata"):
        return
    raise TypeError(
        f"{call}: data must be {takes}, got an AnnData. Its cells: write "
        "it (adata.write_h5ad('cells.h5ad'); a backed AnnData is its file, adata.filename) and load it with distgen.load_data("
        "'cells.h5ad', split=..., schema=...); to predict every perturbed group of a file from its own control cells with a "
        "trained run, distgen predict RUN --data cells.h5ad (docs/your_data.md, section 7); cells in a loaded dataset's terms: "
        "data.data.encode(adata)")


class DatasetOrigin:
    """A weak reference to a ``Dataset`` (``CellTable.meta[ORIGIN]``) that pickles: called, it gives the Dataset or None.

    A ``weakref.ref`` itself cannot be pickled, which made ``torch.save(data.train_table)`` and a
    ``DataLoader(SetSampler(table), num_workers=k)`` under spawn or forkserver fail. Pickled, it is a reference to nothing
    (the other process has no Dataset): its table is trained as given, as a table built otherwise is. Copies in this
    process keep the reference.

    It also keeps the Dataset's ``section`` and ``split`` (small: the ``data:`` section and the parts' row indices), so
    that a table whose Dataset was garbage-collected (``fit(model, load_data(...).train_table, config=doc)``) is still
    checked against the config's ``data:`` keys (``distgen.data.holds``); a split check that needs the cells is refused.
    """

    __slots__ = ("_ref", "section", "split")

    def __init__(self, dataset: Dataset | None = None) -> None:
        self._ref = None if dataset is None else weakref.ref(dataset)
        self.section: DataSection | None = None if dataset is None else dataset.section
        self.split: Split | None = None if dataset is None else dataset.split

    def __call__(self) -> Dataset | None:
        return None if self._ref is None else self._ref()

    def __reduce__(self) -> tuple[Any, ...]:
        return (DatasetOrigin, ())

    def __deepcopy__(self, memo: dict[int, Any]) -> DatasetOrigin:
        return self


@dataclass
class Dataset:
    """A loaded dataset with its split and train-fitted preprocessing: what a run trains, predicts and scores on.

    Attributes
    ----------
    data
        The validated cells (``PerturbationData``), after gene selection.
    split
        Train / val / test cell indices, checked for leakage against ``data``.
    section
        The ``data:`` section it was loaded from (set sampling options included).
    filtered
        What ``data.filter`` kept (rules, cells before and kept), None without a filter.
    max_cells
        At most this many real cells per held-out group (``capped``): what is predicted and scored.
    load_warnings
        What distgen warned while reading the cells (labels that look alike, a normalisation total other
        than ``target_sum``...): printed when loading, kept for the training manifest and the report's notes.
    read_from
        ``(what, absolute path)`` of the files ``load`` read (``"data"``, ``"split"``), made absolute when it read them:
        ``distgen.predict(out=)`` never writes there, also after a notebook changes its working folder (``section``
        keeps a relative path as written).
    """

    data: PerturbationData
    split: Split
    section: DataSection
    filtered: dict[str, Any] | None = None
    max_cells: int | None = None
    load_warnings: tuple[str, ...] = ()
    read_from: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)
    _named: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)  # part -> by_name rows
    _doses: list[DoseRecord] = field(default_factory=list, init=False, repr=False, compare=False)  # dose_record, once made

    @classmethod
    def load(cls, section: DataSection | Mapping[str, Any] | None = None, split_file: str | Path | None = None) -> Dataset:
        """Read the dataset of a ``data:`` section, make (or load ``split_file``) its split, fit preprocessing on training cells."""
        from distgen.data import bundled
        from distgen.data.preprocess import hvg_before_densifying
        from distgen.data.schema import PerturbationSchema
        from distgen.data.splitters import make_split

        ds = section if isinstance(section, DataSection) else data_section(section)
        if ds.dataset in BUNDLED:
            adata = getattr(bundled, ds.dataset)()
            schema = bundled.NORMAN_SCHEMA if ds.dataset == "norman_k562" else bundled.KANG_SCHEMA
        else:
            from distgen.data.h5ad import read_h5ad

            adata = read_h5ad(ds.dataset, "data.dataset")
            schema = PerturbationSchema()
        if ds.schema is not None:
            schema = PerturbationSchema.from_dict({**schema.to_dict(), **ds.schema})
        filtered = None
        if ds.filter is not None:  # before validation: the kept cells are the dataset
            from distgen.data.filters import apply_filter, control_mask

            keep, filtered = apply_filter(adata.obs, ds.filter, control_mask(adata.obs, schema))
            adata = adata[keep].copy()
        source = split_file if split_file is not None else ds.split
        made: list[Split] = []
        later: list[warnings.WarningMessage] = []  # the split's and the selection's: not the reading's (load_warnings)

        def split_then_hvg(outline: PerturbationData, x: Any) -> tuple[list[str], Any, str] | None:
            # the split needs the cells' labels only; data.hvg is chosen on its training cells before the table is dense
            with recorded() as theirs:
                split = Split.load_for(source, outline) if isinstance(source, str | Path) else make_split(outline, **(source or {}))
                made.append(split)
                genes = None if ds.hvg is None else hvg_before_densifying(outline, x, ds.hvg, fit_on=split.train)
            later.extend(theirs)
            return None if genes is None else (genes, split.train.numpy(), "hvg")

        with recorded() as caught:
            data = PerturbationData.from_anndata(adata, schema, copy=False, select=split_then_hvg)  # read here: nobody else holds it
        replay(caught)  # printed as before (under the caller's filters), and kept for the manifest and the report
        said = tuple(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, DistgenWarning)))
        replay(later)
        split = made[0]
        split.check_leakage(data)
        files = ([] if ds.dataset in BUNDLED else [("data", ds.dataset)]) + ([("split", source)] if isinstance(source, str | Path) else [])
        return cls(data, split, ds, filtered, load_warnings=said, read_from=tuple((k, str(Path(f).absolute())) for k, f in files))

    # ------------------------------------------------------------------ what models see
    def __repr__(self) -> str:
        """One line a notebook shows: the file, its size and vocabularies, the split (the dataclass's printed the whole
        AnnData and every split index, 79 lines for the bundled Norman file)."""
        info, split = self.info, self.split
        parts = ", ".join(f"{part} {int(getattr(split, part).numel())}" for part in ("train", "val", "test"))
        cap = f", at most {counted(self.max_cells, 'cell')} per group" if self.max_cells is not None else ""
        return (f"Dataset({self.section.dataset!r}: {counted(len(self.data.is_control), 'cell')} x {counted(info.n_genes, 'gene')}, "
                f"{counted(len(info.perturbations), 'perturbation')}, {counted(len(info.contexts), 'context')}; split "
                f"{split.kind!r}: {parts} cells, {counted(len(split.test_conditions), 'held-out condition')}{cap})")

    @property
    def info(self) -> DataInfo:
        return self.data.info

    @property
    def train_table(self) -> CellTable:
        """The training cells (perturbed and control) as a ``CellTable``, in the order of their names (``by_name``): what
        models fit on and training batches are drawn from. Its ``meta[ORIGIN]`` is a weak reference to this Dataset (``DatasetOrigin``), so
        that ``distgen.fit(model, table, config=doc)`` can check the config's ``data.dataset``/``schema``/``split``/``hvg``
        against the data the table came from (``distgen.data.holds``)."""
        table = self.data.table.subset(self.by_name("train"))
        table.meta[ORIGIN] = DatasetOrigin(self)
        return table

    def by_name(self, part: str) -> torch.Tensor:
        """The row indices of split ``part`` in the order of their cells' names (``obs_names``, unique).

        The training (and validation) batches are drawn from the cells in this order (``SetSampler``: each group's cells,
        the control pool), so the same file with its rows shuffled trains on the same batches under the same seed, as its
        split holds out the same cells (picked by name, ``distgen.data.splitters``).
        """
        if part not in self._named:
            idx = getattr(self.split, part)
            self._named[part] = idx[torch.from_numpy(np.argsort(self.data.cell_names[idx.numpy()], kind="stable"))]
        return self._named[part]

    def train_cells(self) -> Cells:
        """The training cells as a labelled population (with their contexts and batches)."""
        return cells_of(self.data, self.split.train.numpy())

    def seen_perturbations(self) -> list[str]:
        """Perturbation atoms present in the training cells."""
        pert = self.data.table.labels.perturbation[self.split.train]
        ids = torch.unique(pert[pert >= 0]).tolist()
        return [self.info.perturbations[i] for i in ids]

    def hashes(self) -> dict[str, Any]:
        out = {"dataset": self.section.dataset, "data_hash": self.data.hash, "split_hash": self.split.hash, "split": self.split.summary()}
        if self.filtered is not None:
            out["filter"] = self.filtered
        if self.load_warnings:
            out["warnings"] = list(self.load_warnings)
        out["provenance"] = self.provenance()
        return out

    def provenance(self) -> dict[str, Any]:
        """What each statistic of a run is fitted on, and which held-out cells reach what: the run's record for a reviewer.

        Written into the training run's ``manifest.json`` (``data.provenance``) and every run's ``eval/summary.json``
        (``provenance``). Every fitted statistic recorded in ``data.fitted`` (the highly variable genes) is named with the
        split part its cells are (``check_leakage`` has refused any that used validation or test cells); the model, the
        baselines and the count model's dispersions are fitted on ``train_table`` (the split's training cells) by construction.
        """
        s, data = self.split, self.data
        train, val, test = (getattr(s, p).numpy() for p in PARTS)
        ctrl = data.is_control

        def part_of(cells: np.ndarray) -> str:
            cells = np.asarray(cells)
            if np.array_equal(np.sort(cells), train):
                return f"train ({len(train)} cells)"
            held = np.intersect1d(cells, np.concatenate([val, test]))
            return f"{len(cells)} cells, {len(held)} of them validation/test cells"

        meta = data.table.meta
        if meta.get("source_scale") == "counts" and data.schema.normalize:
            norm = f"per cell, no statistic across cells: log1p(normalize_total(target_sum={float(data.schema.target_sum):g}))"
        else:
            norm = f"none: the file's {meta.get('source_scale', 'log')} values as they are"
        fitted = {name: part_of(cells) for name, cells in sorted(data.fitted.items())}
        fitted.setdefault("hvg", f"none: every gene of the file ({data.info.n_genes})")
        n_val_ctrl, n_test_ctrl = int(ctrl[val].sum()), int(ctrl[test].sum())
        if n_val_ctrl + n_test_ctrl:
            controls = (f"split.holdout_controls held {n_test_ctrl} control cells out for test and {n_val_ctrl} for validation; "
                        "test groups are predicted from the held-out ones")
        else:
            controls = ("every control cell is a training cell, held-out contexts' and batches' included; test groups are "
                        "predicted from training controls of their context and batch (split.holdout_controls > 0 holds some out)")
        return {
            "normalisation": norm,
            "fitted_on": {**fitted, "model": "train", "baselines": "train", "count_dispersions": "train"},
            "validation": (f"val: {len(val) - n_val_ctrl} perturbed cells of training conditions (in-distribution, "
                           f"{len(s.val_conditions)} condition(s)) for the validation loss and early stopping; test cells never"),
            "controls": controls,
            "held_out_by_design": ("the ceiling and the interpolated duplicate (positive references) are made of the held-out "
                                   "real cells; a --genes hvg:N panel is chosen on the held-out cells and their controls"),
        }

    def sources(self, sets_per_batch: int, val_sets: int, seed: int) -> tuple[TableBatches, TableBatches | None]:
        """Training batches and (when the split has perturbed validation cells) fixed validation batches."""
        ds = self.section
        kw = ds.sampler_options()
        train = self.train_table
        source = TableBatches(train, ds.set_size, sets_per_batch, ds.matcher, seed, control_sets=ds.control_sets, **kw)
        val = None
        if len(self.split.val) and not bool(self.data.table.is_control[self.split.val].all()):
            kw.pop("sets_per_epoch")
            val = TableBatches(self.data.table.subset(self.by_name("val")), ds.set_size, val_sets, ds.matcher, seed + 1,
                               controls=train, **kw)
        return source, val

    def labels(self, conditions: Sequence[str], contexts: Sequence[str], batches: Sequence[str] | None = None,
               doses: Any = None, *, warn_range: bool = True) -> ConditionLabels:
        """``ConditionLabels`` of canonical conditions (``A+B``; also as the data writes them, ``A_B`` with ``combo_delimiter='_'``)
        in ``contexts`` and ``batches``: what a model is asked.

        ``batches`` may be left out only when the data has a single batch. Each condition is asked at the dose its cells
        carry in its context (``schema.dose_col``; dose 1 without one): the dose ``distgen predict`` and ``distgen.predict``
        ask each held-out group at. ``doses`` asks others (a dose never measured, a dose-response curve): a number (every
        condition at it), or one entry per condition, None (its recorded dose), a number (each of its atoms) or one number per
        atom in the order the condition writes them; checked (``distgen.data.doses.resolve_doses``), and a dose outside those
        an atom's training cells carry warns (``DoseExtrapolationWarning``, naming the range). A condition the data never
        recorded in that context needs its dose given. ``warn_range=False``: no such warning (a caller that replaces the
        doses by others it warns about, ``distgen.pipeline.predict.generate_group``).
        """
        control = self.info.control_label
        delim = self.data.schema.combo_delimiter
        if delim != COMBO:  # the data's own spelling (A_B, dex@10_sah@5, as its split files write them) is the same condition
            conditions = [c if c == control else COMBO.join(p.strip() for p in str(c).split(delim)) for c in conditions]
        # a population label (dex@10) carries its atoms and doses; a condition without doses is asked at the doses given
        read = [parse_dose_label(c, COMBO) if self.data.dosed and c != control else None for c in conditions]
        written = [() if c == control else r[0] if r is not None else tuple(c.split(COMBO)) for c, r in zip(conditions, read)]
        atoms = [tuple(sorted(set(w))) for w in written]
        if batches is None:
            if len(self.info.batches) > 1:
                shown = first_of(self.info.batches, 5, render=quoted, enclosed=True)
                raise ValueError(f"Dataset.labels: the data has {len(self.info.batches)} batches ({shown}); give the batch of every condition")
            batches = [self.info.batches[0]] * len(atoms)
        labels = labels_in(self.info, atoms, list(contexts), list(batches))  # unknown labels first, then the doses
        dose = resolve_doses(self.dose_record(), atoms, list(contexts), doses, written, "Dataset.labels", read_tags(read), warn_range)
        return dataclasses.replace(labels, dose=labels_in(self.info, atoms, list(contexts), list(batches), dose).dose)

    def dose_record(self) -> DoseRecord:
        """The doses of the cells (``distgen.data.doses.DoseRecord``): per (condition, context) its dose, per atom the range of
        its training cells. Made once."""
        if not self._doses:
            self._doses.append(self.data.dose_record(self.split.train.numpy()))
        return self._doses[0]

    def training_batches(self) -> list[str]:
        """The batches some training set carries: those of perturbed training cells, and of training controls when
        training draws control sets from them (``data.control_sets``). A model's embedding of any other batch is never trained."""
        return self._trained("batch")

    def training_contexts(self) -> list[str]:
        """The contexts some training set carries, like ``training_batches``: with ``data.control_sets: none`` a
        held-out cell type appears in no training set, so a model's learned row for it is never trained."""
        return self._trained("context")

    def _trained(self, kind: str) -> list[str]:
        _, firsts = condition_groups(self.train_table, self.section.control_sets)
        names = self.info.batches if kind == "batch" else self.info.contexts
        return sorted({names[i] for i in getattr(self.train_table.labels, kind)[firsts].tolist()})

    def notes(self, part: str = "test") -> list[str]:
        """What a report should say about how the cells of ``part`` were chosen (``data.filter``, ``max_cells``, control pools)."""
        out = [f"data: {w}" for w in self.load_warnings]
        if self.filtered is not None:
            out.append(f"data.filter kept {self.filtered['cells_kept']} of {self.filtered['cells_before']} cells "
                       f"({'; '.join(str(r) for r in self.filtered['rules'])})")
        larger = self._over_cap(part)
        if larger:
            out.append(f"at most {counted(self.max_cells, 'cell')} per held-out group predicted and scored (predict.max_cells_per_condition): "
                       f"a fixed random subset of the real cells of the {larger} larger group(s)")
        if len(self.info.batches) > 1:
            borrowed = sorted({(g.context, g.batch) for g in self.groups(part) if g.other_batches})
            if borrowed:
                shown = first_of([f"{b} in {c}" if c != ALL else b for c, b in borrowed], 8, render=quoted, enclosed=True)
                out.append(f"batch(es) without control cells of their context ({shown}): their held-out cells were predicted from "
                           "control cells of the same context in other batches")
        return out

    def _over_cap(self, part: str) -> int:
        """How many held-out (condition, context) groups of ``part`` have more real cells than ``max_cells`` (0: the cap changes nothing)."""
        if self.max_cells is None:
            return 0
        idx = self.indices(part)
        pert = idx[~self.data.is_control[idx]]
        _, sizes = np.unique(np.char.add(self.data.conditions[pert].astype(str), np.char.add("\x1f", self.data.contexts[pert].astype(str))),
                             return_counts=True)
        return int((sizes > self.max_cells).sum())

    def capped(self, max_cells: int | None) -> Dataset:
        """This dataset with at most ``max_cells`` real cells per held-out (condition, context) (None: all).

        The kept cells are a fixed random subset of each condition in each context, over its batches
        (seeded by the labels, so the same in every call): ``groups``, ``truth`` and ``predict`` all see it, so the prediction, its
        truth, the baselines (as many cells as the truth) and the ceiling (half-splits of the truth)
        are scored on the same cells. Training cells are not affected.
        """
        import numbers

        if max_cells is not None and (not isinstance(max_cells, numbers.Integral) or isinstance(max_cells, bool) or max_cells < 1):
            # (2.5 was read as 2 cells, silently)
            raise ConfigError(f"max_cells_per_condition must be a whole number of cells >= 1 or null, got {max_cells!r}")
        return dataclasses.replace(self, max_cells=None if max_cells is None else int(max_cells))

    # ------------------------------------------------------------------ held-out groups
    def indices(self, part: str) -> np.ndarray:
        """Cell indices of split part ``part`` (``train``, ``val`` or ``test``)."""
        if part not in PARTS:
            raise ConfigError(f"split part must be train, val or test, got {part!r}")
        return getattr(self.split, part).numpy()  # type: ignore[no-any-return]

    def groups(self, part: str = "test") -> list[Group]:
        """The perturbed (condition, context, batch) groups of ``part``, sorted, with their control pools (``max_cells`` applied).

        A group is predicted from the control cells of its context and batch held out in ``part``
        when the split has some, else from the training controls of that context and batch. A batch
        with no control cell of the context at all is predicted from the controls of the context's
        other held-out batches (or, when there are none, the context's held-out controls, else its
        training ones), and its groups say so (``Group.other_batches``, ``notes``). ``max_cells`` caps
        each condition in each context over its batches, so the kept cells keep the batch mix of the real ones.
        """
        idx = self.indices(part)
        data = self.data
        ctrl_mask = data.is_control
        pert = idx[~ctrl_mask[idx]]
        if pert.size == 0:
            raise InputDataError(f"split part {part!r} has no perturbed cells to predict")
        held_ctrl = idx[ctrl_mask[idx]]
        train = self.split.train.numpy()
        train_ctrl = train[ctrl_mask[train]]

        def own_controls(ctx: str, batch: str | None = None) -> np.ndarray:
            """The held-out controls of ``ctx`` (and ``batch``) when ``part`` has some, else the training ones."""
            for ctrl in (held_ctrl, train_ctrl):
                keep = data.contexts[ctrl] == ctx
                if batch is not None:
                    keep &= data.batches[ctrl] == batch
                if keep.any():
                    return ctrl[keep]  # type: ignore[no-any-return]
            return train_ctrl[:0]  # type: ignore[no-any-return]

        named = None
        if self.max_cells is not None:  # a capped group's cells are drawn by their names: the table's, taken once
            names = data.cell_names

            def named(rows: np.ndarray) -> np.ndarray:
                return name_keys(names[rows])
        return held_out_groups(pert, _canonical_conditions(data), data.contexts, data.batches, own_controls, self.content_keys,
                               self.max_cells, named)

    def content_keys(self, rows: np.ndarray) -> np.ndarray:
        """``distgen.seeds.content_keys`` of the cells ``rows`` (on the dataset's genes): the order of a group's control
        pool and of a capped group's cells (``distgen.data.groups.draw_order``). Each cell's key is computed once."""
        rows = np.asarray(rows, dtype=np.int64)
        if "_content_keys" not in self.__dict__:
            n = len(self.data.is_control)
            self.__dict__["_content_keys"] = (np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=bool))
        keys, known = self.__dict__["_content_keys"]
        todo = np.unique(rows[~known[rows]])
        for i in range(0, todo.size, 4096):
            block = todo[i : i + 4096]
            keys[block] = content_keys(self.data.table.X[torch.from_numpy(block)], self.data.info.genes)
        known[todo] = True
        return keys[rows]  # type: ignore[no-any-return]

    def control_pool(self, groups: Sequence[Group]) -> np.ndarray:
        """Sorted indices of every control cell some group is predicted from."""
        return np.unique(np.concatenate([g.controls for g in groups]))

    def truth(self, part: str = "test") -> Cells:
        """The ground truth of ``part``: each group's real cells (in group order), then the control pool they are predicted from."""
        groups = self.groups(part)
        return cells_of(self.data, np.concatenate([*(g.cells for g in groups), self.control_pool(groups)]))


__all__ = ["PARTS", "Dataset", "Group", "cells_of", "control_draw"]
