"""``Cells`` <-> the cell-eval AnnData layout: the one edge where populations become files.

``cell-eval2 run -ap pred.h5ad -ar real.h5ad`` (defaults ``--pert-col target --control non-targeting``; add
``--input-type lognorm`` for log-normalised files, since cell-eval2 reads counts by default) expects, in both files: the same genes in the same order (``var_names``), a perturbation column in
``obs`` with the *same set* of labels, control cells labelled ``non-targeting`` in each file, and
values at one scale (log-normalised, or raw counts for its ``vcc2026`` preset); with
``--celltype-col``, a cell-type column. ``write`` produces exactly that, with the default names
below (and a ``batch`` column when the cells come from several batches, for the user to check the batch
mix), and records the value scale in ``uns["distgen"]["scale"]`` (``lognorm`` or ``counts``).
cell-eval 0.8.2 reads the same files with ``--pert-col target``. ``read`` reads them back (and
files of other tools and older distgen files, whose column was ``target_gene``: the column and the
control label are guessed from common conventions when not given).

Every prediction, ground truth and reference that ``distgen predict``, ``distgen run`` and the Python
API write goes through ``write``; every file that ``distgen evaluate`` reads goes through ``read``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anndata as ad
import numpy as np
import pandas as pd
import torch

from distgen.atomic import atomic_path, atomic_write_text, share_mode, temp_beside
from distgen.errors import InputDataError
from distgen.types import ALL, Cells
from distgen.types.cells import COMBO
from distgen.types.layout import (
    BATCH_COL,
    CELLTYPE_COL,
    CONTROL,
    CONTROL_LABELS,
    DELIMITER_KEY,
    DOSE_COLUMNS,
    KIND_COL,
    PERT_COL,
    PERT_COLS,
    PERTURBATION_TYPE_KEY,
    PERTURBATION_TYPES,
    PROVENANCE_KEY,
    SCALES,
    TRUTH_KEY,
    LayoutInfo,
    NoControlCells,
    blank_message,
    blank_names,
    canonical_condition,
    check_pair,
    control_words,
    file_label,
    form_message,
    form_twins,
    pair_marker,
    pooled_contexts_note,
    spacing_message,
    spacing_twins,
)
from distgen.wording import counted, first_of

if TYPE_CHECKING:
    from distgen.data.dataset import PerturbationData

# Former names (``distgen.data.predictions``), kept readable.
CELL_EVAL_PERT_COL, CELL_EVAL_CONTROL, CELL_EVAL_CELLTYPE_COL = PERT_COL, CONTROL, CELLTYPE_COL


# ---------------------------------------------------------------------------------------------- writing
def to_anndata(
    cells: Cells,
    kind: str = "pred",
    with_context: bool | None = None,
    pert_col: str = PERT_COL,
    control: str = CONTROL,
    celltype_col: str = CELLTYPE_COL,
    scale: str = "lognorm",
    with_batch: bool | None = None,
    combo_delimiter: str = COMBO,
    provenance: Mapping[str, Any] | None = None,
    perturbation_type: str | None = None,
) -> ad.AnnData:
    """``cells`` in the cell-eval layout (rows in the same order; controls relabelled ``control``).

    Combinations are written as the data labels them: atoms joined by ``combo_delimiter`` (the data's
    ``PerturbationSchema.combo_delimiter``; ``KLF1_MAP2K6`` with ``_``), recorded in ``uns["distgen"]`` when not
    ``+`` so that ``read`` reads them back as the canonical ``KLF1+MAP2K6``.

    ``with_context`` writes the ``celltype_col`` column (default: when some context is not ``"all"``),
    ``with_batch`` the ``BATCH_COL`` column (default: when some batch is not ``"all"``).
    Cell names are ``cells.names`` when given, else ``{kind}_{i}`` and ``control_{j}``. ``scale``
    (``lognorm`` or ``counts``) is recorded in ``uns["distgen"]`` with the column names. ``provenance`` (what made
    the cells: seed, checkpoint, options; strings, numbers and booleans) is recorded as ``uns["distgen"]["provenance"]``,
    ``perturbation_type`` (the data's ``genetic`` or ``chemical``) as ``uns["distgen"]["perturbation_type"]``.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    check_perturbation_type(perturbation_type)
    x = np.ascontiguousarray(cells.X.detach().cpu().numpy().astype(np.float32, copy=False))
    if not np.isfinite(x).all():
        where = "generated" if kind == "pred" else kind
        raise ValueError(f"the {where} cells have NaN/inf values; the model diverged or the input was not cleaned")
    ctrl = cells.is_control
    if not ctrl.any():
        raise ValueError("no control cells given: cell-eval needs real control cells in both files")
    clash = sorted({c for c in set(cells.conditions[~ctrl].tolist()) if canonical_condition(c, control) == control})
    if clash:  # written, these cells would read back as control cells ('non-targeting ' is read as 'non-targeting')
        raise ValueError(f"condition label {clash[0]!r} reads as the file's control label {control!r}; rename that perturbation")
    written = {c: file_label(c, cells.control, combo_delimiter) for c in set(cells.conditions.tolist())}
    labels = np.where(ctrl, control, np.array([written[c] for c in cells.conditions.tolist()], dtype=object)).astype(str)
    obs = pd.DataFrame({pert_col: pd.Categorical(labels)})
    if with_context is None:
        with_context = any(c != ALL for c in cells.contexts.tolist())
    if with_context:
        obs[celltype_col] = pd.Categorical(cells.contexts.astype(str))
    if with_batch is None:
        with_batch = any(b != ALL for b in cells.batches.tolist())
    if with_batch:
        obs[BATCH_COL] = pd.Categorical(cells.batches.astype(str))
    obs[KIND_COL] = pd.Categorical(np.where(ctrl, "control", kind).astype(str))
    if cells.names is not None:
        obs.index = pd.Index(cells.names.astype(str))
    else:
        counters = {True: 0, False: 0}
        names = []
        for is_c in ctrl.tolist():
            names.append(f"{'control' if is_c else kind}_{counters[is_c]}")
            counters[is_c] += 1
        obs.index = pd.Index(names)
    out = ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=pd.Index(list(cells.genes))))
    out.uns["distgen"] = {"scale": scale, "kind": kind, "pert_col": pert_col, "control": control}
    if combo_delimiter != COMBO:
        out.uns["distgen"][DELIMITER_KEY] = combo_delimiter
    if perturbation_type is not None:
        out.uns["distgen"][PERTURBATION_TYPE_KEY] = perturbation_type
    if provenance:
        bad = {k: v for k, v in provenance.items() if not isinstance(v, str | int | float)}
        if bad:
            raise TypeError(f"provenance values must be strings, numbers or booleans (h5ad attributes), got {bad}")
        out.uns["distgen"][PROVENANCE_KEY] = dict(provenance)
    out.obs_names_make_unique()
    return out


def check_perturbation_type(perturbation_type: str | None) -> None:
    """Refuse a perturbation type to record that is not one of ``PERTURBATION_TYPES`` (None: record none)."""
    if perturbation_type is not None and perturbation_type not in PERTURBATION_TYPES:
        raise ValueError(f"perturbation_type must be one of {PERTURBATION_TYPES} or None, got {perturbation_type!r}")


def write(cells: Cells, path: str | os.PathLike[str], kind: str = "pred", **layout: Any) -> ad.AnnData:
    """Write ``cells`` to ``path`` (gzip h5ad, atomically, only after every check passed); returns the AnnData.

    ``layout``: ``to_anndata`` options (``with_context``, ``pert_col``, ``control``, ``celltype_col``, ``scale``, ``with_batch``,
    ``combo_delimiter``).
    """
    adata = to_anndata(cells, kind, **layout)
    _write(adata, path)
    return adata


def object_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with pandas' string dtype (the default for text in pandas 3) turned into object, in its
    index, columns and categories: what every anndata version writes (0.12 refuses the string dtype
    unless ``allow_write_nullable_strings`` is set, and files written with it do not open in anndata < 0.11)."""

    def plain(values: Any) -> Any:
        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            return values.astype(pd.CategoricalDtype(dtype.categories.astype(object), dtype.ordered))
        return values.astype(object) if isinstance(dtype, pd.StringDtype) else values

    out = frame.copy()
    out.index = plain(out.index)
    for col in out.columns:
        out[col] = plain(out[col])
    return out


def _write(adata: ad.AnnData, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:  # readable as a plain file would be (not mkstemp's 0600), hidden while written
        write_h5ad(adata, tmp)


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike[str], compression: str | None = "gzip") -> None:
    """``adata.write_h5ad`` that works under pandas 3 and writes what every anndata version reads: text in pandas'
    string dtype (``obs``/``var`` index, columns, categories) is turned into object first, in ``adata`` itself
    (it then holds what the file holds)."""
    adata.obs, adata.var = object_strings(adata.obs), object_strings(adata.var)
    adata.write_h5ad(path, compression=compression)


def truth_digest(adata: ad.AnnData) -> str:
    """A fingerprint of a truth AnnData: its values, cell and gene names and ``obs`` columns (sha256, 16 hex digits).

    Two truths written from the same cells have the same digest, whichever prediction they were written with."""
    import hashlib

    import scipy.sparse as sp

    h = hashlib.sha256()
    x = adata.X
    if sp.issparse(x):
        x = sp.csr_matrix(x)
        parts = [x.data.astype(np.float32), x.indices.astype(np.int64), x.indptr.astype(np.int64)]
    else:
        parts = [np.asarray(x, dtype=np.float32)]
    h.update(repr(tuple(adata.shape)).encode())
    for a in parts:
        h.update(np.ascontiguousarray(a).tobytes())
    for labels in (adata.obs_names, adata.var_names, *(adata.obs[c] for c in adata.obs.columns)):
        h.update("\x00".join(map(str, labels)).encode())
        h.update(b"\x01")
    return h.hexdigest()[:16]


def write_pair(pred: Cells, real: Cells, pred_path: str | os.PathLike[str], real_path: str | os.PathLike[str],
               provenance: Mapping[str, Any] | None = None, **layout: Any) -> tuple[ad.AnnData, ad.AnnData]:
    """A prediction and its truth written as one pair: both files record ``truth_digest`` of the truth
    (``uns["distgen"]["truth"]``), both are written whole to hidden temp files, then renamed into place.

    A kill between the two renames can leave a new file beside an older one; their records then differ (unless the older
    one was written with the same truth, when the pair is still right) and ``check_pair`` refuses to score them. An older
    file without a record (written before truth fingerprints) is told by the marker written before the renames and removed
    after (``pair_marker``, as ``publish_pair``).
    ``provenance`` is recorded in the prediction only; ``layout``: ``to_anndata`` options."""
    pred_ad, real_ad = to_anndata(pred, "pred", provenance=provenance, **layout), to_anndata(real, "real", **layout)
    digest = truth_digest(real_ad)
    pred_ad.uns["distgen"][TRUTH_KEY] = real_ad.uns["distgen"][TRUTH_KEY] = digest
    marker = pair_marker(pred_path)  # a kill between the renames leaves it: check_pair then refuses a half-new pair
    with atomic_path(real_path) as tmp_real, atomic_path(pred_path) as tmp_pred:
        write_h5ad(pred_ad, tmp_pred)
        write_h5ad(real_ad, tmp_real)
        atomic_write_text(marker, json.dumps({"real": os.path.abspath(real_path), "truth": digest}))
    os.unlink(marker)
    return pred_ad, real_ad


class ChunkedWriter:
    """The same layout written chunk by chunk, for predictions too large to hold (``predict_to_disk``).

    ``append(rows, conditions, contexts, kind, batches)`` adds rows (``conditions`` already in the file's
    labels: ``CONTROL`` for controls); on a clean exit the file (dense ``X``, ``obs`` with
    ``PERT_COL``, ``CELLTYPE_COL``, ``BATCH_COL`` when ``with_batch``, and ``KIND_COL``) replaces ``path`` atomically;
    on an error the partial file is removed and ``path`` stays as it was. The rows go to a hidden temp file beside
    ``path`` (``distgen.atomic.temp_beside``: its folder made, the mode of a plain write, a name no ``*.h5ad`` pattern
    picks up when a kill leaves it); it was ``path.partial``, and a ``--out`` in a folder not yet made was an h5py error.

    ``publish=False`` keeps the finished temp file for ``publish_pair`` (a prediction and its truth renamed together,
    each recording the truth's fingerprint, as ``write_pair`` writes them); ``discard`` removes it. A ``kind="real"``
    writer records its own ``truth_digest`` (``digest``).
    """

    def __init__(self, path: str | os.PathLike[str], genes: Sequence[str], chunk_rows: int = 1024, with_batch: bool = False,
                 combo_delimiter: str = COMBO, kind: str = "pred", scale: str = "lognorm",
                 provenance: Mapping[str, Any] | None = None, perturbation_type: str | None = None, publish: bool = True) -> None:
        check_perturbation_type(perturbation_type)
        self.publish = publish
        self.digest: str | None = None  # a truth's fingerprint (kind "real"), once written
        self.perturbation_type = perturbation_type  # uns["distgen"]["perturbation_type"], as to_anndata records it
        self.path = Path(path)
        self.provenance = dict(provenance) if provenance else None  # uns["distgen"]["provenance"], as write() records it
        self.scale = scale  # uns["distgen"]["scale"]: "lognorm" or "counts"
        self.kind = kind  # uns["distgen"]["kind"]: "pred" (a model's cells) or "real"
        self.combo_delimiter = combo_delimiter
        self.genes = [str(g) for g in genes]
        self.chunk_rows = chunk_rows
        self.with_batch = with_batch
        self.conditions: list[str] = []
        self.contexts: list[str] = []
        self.batches: list[str] = []
        self.kinds: list[str] = []

    def __enter__(self) -> ChunkedWriter:
        import h5py

        fd, tmp = temp_beside(self.path)  # the folder made, the mode of a plain write, a hidden name
        os.close(fd)
        self._tmp = Path(tmp)
        self._file = h5py.File(self._tmp, "w")
        self._file.attrs["encoding-type"], self._file.attrs["encoding-version"] = "anndata", "0.1.0"
        g = len(self.genes)
        self._x = self._file.create_dataset("X", shape=(0, g), maxshape=(None, g), dtype="float32", chunks=(self.chunk_rows, g))
        self._x.attrs["encoding-type"], self._x.attrs["encoding-version"] = "array", "0.2.0"
        return self

    def append(self, rows: np.ndarray, conditions: Sequence[str], contexts: Sequence[str], kind: str, batches: Sequence[str] | None = None) -> None:
        batches = [ALL] * rows.shape[0] if batches is None else list(batches)
        if len(conditions) != rows.shape[0] or len(contexts) != rows.shape[0] or len(batches) != rows.shape[0]:
            raise ValueError(f"{counted(rows.shape[0], 'row')} but {counted(len(conditions), 'condition')}, "
                             f"{counted(len(contexts), 'context')} and {counted(len(batches), 'batch', 'batches')}")
        n0 = self._x.shape[0]
        self._x.resize(n0 + rows.shape[0], axis=0)
        self._x[n0:] = rows
        self.conditions += list(conditions)
        self.contexts += list(contexts)
        self.batches += batches
        self.kinds += [kind] * rows.shape[0]

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        from anndata.io import write_elem

        try:
            if exc_type is None:
                columns = {PERT_COL: pd.Categorical(self.conditions), CELLTYPE_COL: pd.Categorical(self.contexts)}
                if self.with_batch:
                    columns[BATCH_COL] = pd.Categorical(self.batches)
                obs = pd.DataFrame({**columns, KIND_COL: pd.Categorical(self.kinds)},
                                   index=pd.Index([f"cell{i}" for i in range(len(self.conditions))], dtype=object))
                write_elem(self._file, "obs", object_strings(obs))  # pandas 3 makes the categories its string dtype
                write_elem(self._file, "var", pd.DataFrame(index=pd.Index(self.genes, dtype=object)))
                meta: dict[str, Any] = {"scale": self.scale, "kind": self.kind, "pert_col": PERT_COL, "control": CONTROL}
                if self.kind == "real":
                    self.digest = meta[TRUTH_KEY] = self._truth_digest(obs)
                if self.provenance:
                    meta[PROVENANCE_KEY] = self.provenance
                if self.perturbation_type is not None:
                    meta[PERTURBATION_TYPE_KEY] = self.perturbation_type
                write_elem(self._file, "uns", {"distgen": {**meta, **({DELIMITER_KEY: self.combo_delimiter} if self.combo_delimiter != COMBO else {})}})
        except BaseException:
            self._file.close()
            self._tmp.unlink(missing_ok=True)
            raise
        self._file.close()
        if exc_type is not None:  # a half-written file is no prediction: nothing is left behind (the target, if any, is untouched)
            self._tmp.unlink(missing_ok=True)
        elif self.publish:
            self._publish()

    def _truth_digest(self, obs: pd.DataFrame) -> str:
        """``truth_digest`` of the file as anndata reads it back: its shape, dense float32 ``X`` (read back in blocks of
        rows: the shape comes first), cell and gene names, and ``obs`` columns."""
        import hashlib

        full = hashlib.sha256(repr((len(self.conditions), len(self.genes))).encode())
        for i in range(0, self._x.shape[0], 16384):
            full.update(np.ascontiguousarray(self._x[i : i + 16384], dtype=np.float32).tobytes())
        for labels in (obs.index, self.genes, *(obs[c] for c in obs.columns)):
            full.update("\x00".join(map(str, labels)).encode())
            full.update(b"\x01")
        return full.hexdigest()[:16]

    def _publish(self) -> None:
        share_mode(self._tmp)
        with open(self._tmp, "rb") as fh:
            os.fsync(fh.fileno())
        self._tmp.replace(self.path)

    def discard(self) -> None:
        """Remove a finished, unpublished temp file (``publish=False``)."""
        self._tmp.unlink(missing_ok=True)


def publish_pair(pred: ChunkedWriter, real: ChunkedWriter) -> None:
    """Record ``real``'s fingerprint in ``pred`` (``uns["distgen"]["truth"]``, as ``write_pair`` records it) and rename both
    into place, the truth first: ``distgen evaluate`` refuses a prediction beside another truth (a kill between the renames).
    A marker beside ``pred`` (``pair_marker``), written before the renames and removed after, says a kill between them
    also where the earlier prediction records no truth (written before truth fingerprints): ``check_pair`` refuses it.
    Both writers finished with ``publish=False``; on an error both temp files are removed."""
    import h5py
    from anndata.io import write_elem

    try:
        if real.digest is None:
            raise ValueError("publish_pair needs a finished truth writer (kind='real')")
        with h5py.File(pred._tmp, "a") as f:
            write_elem(f["uns"]["distgen"], TRUTH_KEY, real.digest)
        marker = pair_marker(pred.path)  # a kill between the renames leaves it: check_pair then refuses a half-new pair
        atomic_write_text(marker, json.dumps({"real": os.path.abspath(real.path), "truth": real.digest}))
        real._publish()
        pred._publish()
        os.unlink(marker)
    finally:
        pred.discard()
        real.discard()


# ---------------------------------------------------------------------------------------------- reading
def as_anndata(source: Any, what: str = "file") -> ad.AnnData:
    """An ``AnnData`` from a path (an unreadable file is an ``InputFileError`` naming it) or an object.

    A backed AnnData (``anndata.read_h5ad(path, backed="r")``) is read into memory: its sparse ``X`` serves
    values only slice by slice.
    """
    from distgen.data.h5ad import in_memory, read_h5ad

    if isinstance(source, str | bytes) or hasattr(source, "__fspath__"):
        return read_h5ad(source, what)
    if not isinstance(source, ad.AnnData):
        raise TypeError(f"expected an .h5ad path or an AnnData, got {type(source).__name__}")
    return in_memory(source)


def guess_pert_col(files: dict[str, ad.AnnData], pert_col: str | None) -> str:
    """The perturbation column: ``pert_col``, or the first of ``PERT_COLS`` present in every file.

    Guessed, several such columns that hold different labels are refused (``InputDataError``): a file with its
    perturbations in ``perturbation`` and an experimental ``condition`` (``control``/``stimulated``) beside them was
    scored on ``condition``, the first in ``PERT_COLS``, with no word (copies of one column, Norman's ``condition``
    and ``perturbation``, are one column).
    """
    if pert_col is None:
        _refuse_disagreeing_pert_cols(files)
        found = [c for c in PERT_COLS if all(c in a.obs.columns for a in files.values())]
        if not found:
            first = next(iter(files.values()))
            each = {name: [c for c in PERT_COLS if c in a.obs.columns] for name, a in files.items()}
            if all(each.values()):  # each file has a usual column, not the same one: --pert-col names one for both
                (ref, (col, *_)), *others = each.items()
                name, (other, *_) = next((n, c) for n, c in others if col not in c)
                raise InputDataError(f"the {ref} file holds its perturbation labels in obs[{col!r}] but the {name} file in "
                                 f"obs[{other!r}]: both files need them in one column (--pert-col names one for both); rename "
                                 f"one, e.g. adata.obs = adata.obs.rename(columns={{{other!r}: {col!r}}}) on the {name} file")
            raise InputDataError(f"no perturbation column given and none of {PERT_COLS} is in the obs of every file "
                             f"(columns: {list(first.obs.columns)}); pass --pert-col")
        pert_col = found[0]
    for name, a in files.items():
        if pert_col not in a.obs.columns:
            raise InputDataError(f"perturbation column {pert_col!r} is not in the {name} file's obs columns {list(a.obs.columns)}; "
                             "pass the right --pert-col")
    return pert_col


def _refuse_disagreeing_pert_cols(files: dict[str, ad.AnnData]) -> None:
    """Refuse (``InputDataError``) usual perturbation columns, present in every file, whose labels differ in some file."""
    found = [c for c in PERT_COLS if all(c in a.obs.columns for a in files.values())]
    for name, a in files.items():
        first = a.obs[found[0]].astype(str).to_numpy() if found else None
        for other in found[1:]:
            values = a.obs[other].astype(str).to_numpy()
            if first is not None and not np.array_equal(first, values):
                some = {c: first_of(sorted(set(a.obs[c].astype(str).tolist())), 5, render=repr, enclosed=True) for c in (found[0], other)}
                raise InputDataError(
                    f"no perturbation column given and the {name} file holds two usual ones with different labels: "
                    f"obs[{found[0]!r}] ({some[found[0]]}) and obs[{other!r}] ({some[other]}); the first would be "
                    f"scored. Name the column that holds the perturbations: --pert-col {other} or --pert-col {found[0]} "
                    "(pert_col= in the API)")


def guess_control(files: dict[str, ad.AnnData], pert_col: str, control: str | None, reference: str) -> str:
    """The control label: ``control``, or the first of ``CONTROL_LABELS`` found in the ``reference`` file; every file must hold it."""
    if control is None:
        labels = set(files[reference].obs[pert_col].astype(str))
        found = [c for c in CONTROL_LABELS if c in labels]
        if not found:
            seen = sorted(labels, key=lambda v: (len(v), v))
            shown = first_of(seen, 8, render=repr, noun="value", enclosed=True)
            codes = bool(seen) and all(v.lstrip("-").isdigit() for v in seen)
            raise InputDataError(
                f"no control label given and none of {CONTROL_LABELS} is a value of {reference}.obs[{pert_col!r}] (its values: "
                f"{shown}); pass the control cells' label: --control LABEL (control= in the API)"
                + ("; the labels are integer codes: pass the control's code (e.g. --control 0 when 0 is the control), or "
                   "write the names the codes stand for" if codes else ""))
        recorded = {recorded_scale(a, "control") for a in files.values()}
        if len(found) > 1 and len(recorded) == 1 and (mine := recorded.pop()) in found:
            found = [mine]  # files distgen wrote name their control (uns["distgen"]["control"]); the others are perturbations
        if len(found) > 1:  # only one is the control: the others would be scored as perturbations, or pooled into it unasked
            raise InputDataError(f"no control label given and the {reference} file holds {len(found)} usual control labels in "
                                 f"obs[{pert_col!r}]: {found}; only one is the control, the other(s) are scored as perturbations. "
                                 f"Name the control (--control {found[0]}; control= in the API), or relabel the control cells "
                                 "to one label if they are all controls")
        control = found[0]
    for name, a in files.items():
        labels = set(a.obs[pert_col].astype(str))
        if control not in labels:
            other = [c for c in CONTROL_LABELS if c in labels]
            if other and name != reference:  # another tool's control label: --control names one label for both files
                raise InputDataError(
                    f"the {name} file labels its control cells {other[0]!r} but the {reference} file {control!r} (obs[{pert_col!r}]): "
                    f"both files need the same control label (--control names one for both); relabel one file, e.g. "
                    f"adata.obs[{pert_col!r}] = adata.obs[{pert_col!r}].astype(str).replace({{{other[0]!r}: {control!r}}}) on the {name} file")
            some = (f"its values: {first_of(sorted(labels), 8, render=repr, noun='value', enclosed=True)}" if labels
                    else "it holds no label")
            key = " ".join(control.split()).casefold()
            twin = next((v for v in sorted(labels) if " ".join(v.split()).casefold() == key), None)  # 'Non-targeting ', 'NON-TARGETING'
            hint = (f": {twin!r} is {control!r} written with other letter case or spaces; relabel it, e.g. adata.obs[{pert_col!r}] = "
                    f"adata.obs[{pert_col!r}].astype(str).replace({{{twin!r}: {control!r}}}) on the {name} file") if twin else " (pass --control LABEL; control='LABEL' in Python)"
            raise NoControlCells(name, f"the {name} file has no control cells: label {control!r} is not in obs[{pert_col!r}] "
                                 f"({some})", hint)
    return control


def recorded_provenance(adata: ad.AnnData) -> dict[str, Any]:
    """What made a prediction file, as ``to_anndata(..., provenance=)`` recorded it (plain Python values); ``{}`` when it records none."""
    meta = adata.uns.get("distgen") if hasattr(adata, "uns") else None
    rec = meta.get(PROVENANCE_KEY) if isinstance(meta, Mapping) else None
    if not isinstance(rec, Mapping):
        return {}
    return {str(k): v.item() if isinstance(v, np.generic) else v for k, v in rec.items()}


def recorded_scale(adata: ad.AnnData, key: str = "scale") -> str | None:
    """The value scale a file records in ``uns["distgen"]["scale"]`` (None for files that record none); ``key="kind"``: its rows' kind."""
    meta = adata.uns.get("distgen") if hasattr(adata, "uns") else None
    scale = meta.get(key) if isinstance(meta, dict) else None
    return str(scale) if scale is not None else None


def recorded_log_base(adata: ad.AnnData) -> float | None:
    """The base of ``scanpy.pp.log1p`` a file records in ``uns["log1p"]["base"]`` (``math.e`` for scanpy's ``None``), or None
    for a file without that record."""
    import math

    meta = adata.uns.get("log1p") if hasattr(adata, "uns") else None
    if not isinstance(meta, dict):
        return None
    base = meta.get("base")
    try:
        return math.e if base is None else float(base)
    except (TypeError, ValueError):
        return None


def read(
    source: Any, pert_col: str | None = None, control: str | None = None, celltype_col: str | None = None, name: str = "input",
    batch_col: str | None = None,
) -> Cells:
    """``Cells`` from an ``.h5ad`` path or AnnData in the cell-eval layout (controls keep the file's label).

    ``celltype_col`` gives the contexts (default: ``CELLTYPE_COL`` when the file has it, else one context);
    ``batch_col`` the batches (donors, plates: the populations the spread scores compare; default: the ``BATCH_COL``
    column when the file has it, else one batch; a named column the file lacks is an error).
    """
    adata, pert_col, control, celltype_col, words = _one_file(source, pert_col, control, celltype_col, name)
    return _cells(adata, pert_col, control, celltype_col, name, recorded_delimiters([adata]), words, batch_col)


def _one_file(source: Any, pert_col: str | None, control: str | None, celltype_col: str | None,
              name: str) -> tuple[ad.AnnData, str, str, str | None, tuple[str, ...]]:
    """One file's AnnData, perturbation column, control label, cell-type column and control words, as ``read`` takes them."""
    adata = as_anndata(source)
    files = {name: adata}
    check_shapes(files, pert_col)
    col = guess_pert_col(files, pert_col)
    label = guess_control(files, col, control, name)
    if celltype_col is None and CELLTYPE_COL in adata.obs.columns:
        celltype_col = CELLTYPE_COL
    return adata, col, label, celltype_col, control_words(control_named([adata], control, label))


def read_beside(
    source: Any, other: Cells, name: str, pert_col: str | None = None, control: str | None = None, celltype_col: str | None = None,
    delimiters: Sequence[str] = (), batch_col: str | None = None,
) -> tuple[Cells, list[str]]:
    """``read`` of one file scored against ``other`` (cells not read from a file: a ``Dataset``'s truth, ``Cells``), with the
    dose rule of ``read_pair`` (``split_doses``): a file whose dose column holds several doses within a label, or that is
    scored against populations labelled ``atom@dose``, is read a population per (label, dose). ``name`` is ``"pred"`` or
    ``"real"``, the file's side; ``delimiters``: combination delimiters besides the file's record (a dataset's); ``batch_col`` as
    ``read``'s; returns the cells and ``split_doses``'s notes. ``distgen.evaluate(pred_file, dataset)``
    scored such a file's doses pooled (or paired none) where ``distgen evaluate`` on the same files scored each dose."""
    adata, pert_col, control, celltype_col, words = _one_file(source, pert_col, control, celltype_col, name)
    files = {name: adata}
    ctrl = np.asarray(other.is_control)
    stub = {pert_col: np.where(ctrl, control, np.asarray(other.conditions, dtype=object))}
    if celltype_col is not None:
        stub[celltype_col] = np.asarray(other.contexts, dtype=object).astype(str)
    files["pred" if name == "real" else "real"] = ad.AnnData(obs=pd.DataFrame(stub, index=[str(i) for i in range(len(ctrl))]))
    delimiters = tuple(sorted({*recorded_delimiters([adata]), *(d for d in delimiters if d and d != COMBO)}))
    notes = split_doses(files, pert_col, control, celltype_col, words, delimiters)
    cells = _cells(files[name], pert_col, control, celltype_col, name, delimiters, words, batch_col, notes)
    from distgen.evaluation.label_notes import combination_notes  # the evaluation's notes: imported where said

    notes += combination_notes({name: _label_sizes(files[name], pert_col)}, cells.genes, control, delimiters, words, pert_col)
    return cells, notes


def _label_sizes(adata: ad.AnnData, pert_col: str) -> dict[str, int]:
    """Cells per perturbation label of a file, as written (``combination_notes``): counted on the column as it is (per
    category of a categorical one), the labels then written as text, as ``_cells`` reads them."""
    out: dict[str, int] = {}
    for k, v in adata.obs[pert_col].value_counts(sort=False).items():
        if v:
            out[str(k)] = out.get(str(k), 0) + int(v)
    return out


def control_named(files: Iterable[Any], given: str | None, control: str) -> bool:
    """Whether the control label was named: given (``--control``), or recorded by a file distgen wrote
    (``uns["distgen"]["control"]``). Then a usual control word inside a combination (``DMSO`` of ``DMSO+drugA`` when the
    control is ``untreated``) is an atom, as it is a perturbation as a whole label (``canonical_condition``)."""
    return given is not None or any(recorded_scale(a, "control") == control for a in files)


def recorded_delimiters(files: Any) -> tuple[str, ...]:
    """The combination delimiters other than ``+`` that the files record (``uns["distgen"]["combo_delimiter"]``), sorted."""
    return tuple(sorted({d for a in files if (d := recorded_scale(a, DELIMITER_KEY)) is not None and d != COMBO}))


def condition_order(adata: ad.AnnData, pert_col: str, control: str, delimiters: Sequence[str] = (),
                    controls: Sequence[str] = CONTROL_LABELS) -> tuple[str, ...]:
    """Canonical conditions of ``adata`` in its perturbation column's order: categories, else natural sort."""
    column = adata.obs[pert_col]
    present = set(column.astype(str).tolist())
    if hasattr(column, "cat"):
        labels = [str(c) for c in column.cat.categories if str(c) in present]
    else:
        from natsort import natsorted

        labels = natsorted(present)
    return tuple(dict.fromkeys(canonical_condition(v, control, delimiters, controls) for v in labels))


def check_labels(adata: ad.AnnData, pert_col: str, control: str, celltype_col: str | None, name: str, batch_col: str | None = None) -> None:
    """Refuse cells whose perturbation (or cell-type, or batch) label is missing: NaN, None, empty or a "no value" string.

    The training loader's rule (``distgen.data.conditions.handle_missing_labels``): a missing label is
    never read as a control, a perturbation called ``"nan"`` or a context ``"nan"``; the
    ``MissingLabelError`` names the column, how many cells and a few of their names.
    """
    from distgen.data.conditions import handle_missing_labels
    from distgen.data.schema import PerturbationSchema

    schema = PerturbationSchema(perturbation_col=pert_col, control_labels=(control,), context_cols=(celltype_col,) if celltype_col else (),
                                batch_col=batch_col)
    handle_missing_labels(adata.obs, schema, source=f"the {name} file", can_drop=False)


def _cells(adata: ad.AnnData, pert_col: str, control: str, celltype_col: str | None, name: str, delimiters: Sequence[str] = (),
           controls: Sequence[str] = CONTROL_LABELS, batch_col: str | None = None, notes: list[str] | None = None,
           read_default_batch: bool = True, dtype: Any = np.float32) -> Cells:
    """One file's cells (``X`` as ``dtype``); ``read_default_batch=False``: no batches when ``batch_col`` is None (not
    ``BATCH_COL``'s)."""
    if celltype_col is not None and celltype_col == pert_col:  # every context would hold one condition and no controls
        raise InputDataError(f"the cell-type column and the perturbation column are both obs[{pert_col!r}]: each perturbation would "
                             "be a context of its own, without control cells; pass the column of cell types (--celltype-col), "
                             "or none to pool them")
    genes = [str(g) for g in adata.var_names]
    if blank := blank_names(genes):
        raise InputDataError(blank_message(genes, blank, f"the {name} file"))
    if len(set(genes)) != len(genes):
        index = pd.Index(genes)
        dup = sorted(set(index[index.duplicated()]))
        raise InputDataError(
            f"the {name} file has duplicated gene names in var_names ({first_of(dup, 5, render=repr, enclosed=True)}"
            f"): a score needs one column per gene, the same in both files. Keep the first column of "
            "each name in both files (adata = adata[:, ~adata.var_names.duplicated()].copy()); var_names_make_unique() "
            "would rename the repeat to a gene the other file lacks")
    col = celltype_col
    if col is not None and col not in adata.obs.columns:
        raise InputDataError(f"cell-type column {col!r} is not in the {name} file's obs columns {list(adata.obs.columns)}")
    if batch_col is not None and batch_col not in adata.obs.columns:
        raise InputDataError(f"batch column {batch_col!r} is not in the {name} file's obs columns {list(adata.obs.columns)}: "
                             "name the column of donors / plates each file has (--batch-col), or leave it out")
    bcol = batch_col if batch_col is not None else (BATCH_COL if read_default_batch and BATCH_COL in adata.obs.columns else None)
    if batch_col is None and bcol is not None and (note := unread_batch_note(adata.obs, bcol, name)) is not None:
        bcol = None  # a column read only by its name, with unlabelled cells: not read (as a file without it), said
        if notes is None:
            from distgen.errors import warn

            warn(note)
        else:
            notes.append(note)
    # a cell without a batch label was a batch 'nan' (or ''): one more donor population in the spread scores
    check_labels(adata, pert_col, control, col, name, bcol)
    if adata.X is None:
        layers = sorted(adata.layers.keys())
        raise InputDataError(f"the {name} file has no expression matrix (adata.X is None{f'; layers: {layers}' if layers else ''}); "
                         "predictions and truths are read from X: set it to the log-normalised values (e.g. "
                         f"adata.X = adata.layers[{(layers or ['...'])[0]!r}]) and write the file again")
    from distgen.data.expression import check_sparse_format

    check_sparse_format(adata.X, f"the {name} file's X")
    raw = adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X
    x = np.ascontiguousarray(np.asarray(raw, dtype=dtype))
    cache: dict[str, str] = {}
    labels = adata.obs[pert_col].astype(str).to_numpy()
    twins = spacing_twins(pd.unique(labels).tolist(), delimiters)
    if twins:
        sizes = pd.Series(labels).value_counts()
        raise InputDataError(spacing_message(twins, lambda v: int(sizes[v]), pert_col, name))
    for column, values, what in [(pert_col, pd.unique(labels).tolist(), "conditions"),
                                 *([(col, pd.unique(adata.obs[col].astype(str)).tolist(), "cell types")] if col is not None else [])]:
        forms = form_twins(values)
        if forms:
            raise InputDataError(form_message(forms, f"the {name} file's obs[{column!r}]", what, column))
    conds = np.array([cache.setdefault(v, canonical_condition(v, control, delimiters, controls)) if v not in cache else cache[v] for v in labels],
                     dtype=object)
    contexts = adata.obs[col].astype(str).to_numpy(dtype=object) if col is not None else None
    from distgen.data.conditions import batch_labels

    batches = batch_labels(adata.obs, bcol) if bcol is not None else None  # trimmed, as the run's loader reads them
    return Cells(torch.from_numpy(x), conds, genes, contexts, batches, control, np.asarray(adata.obs_names.astype(str), dtype=object))


def unread_batch_note(obs: pd.DataFrame, column: str, name: str) -> str | None:
    """A note when ``obs[column]``, a batch column read by its name alone (``BATCH_COL``, no ``--batch-col``), has cells
    without a label (NaN, empty, 'NA'), or None. Such a column is not read: the evaluation scores as without it (no spread
    scores, controls not matched by batch). Refusing the file (as a named column's missing labels are) refused files that
    scored before, where the column means nothing to the user (its fix, removing the cells, could drop every control);
    reading the unlabelled cells as a batch 'nan' made them one more donor population, without a word."""
    from distgen.data.conditions import missing_mask

    missing = missing_mask(obs[column].to_numpy(dtype=object))
    if not missing.any():
        return None
    read_as = ("one generated population per group in the spread scores (the model's spread_ratio undefined)" if name == "pred" else
               "no spread scores across batches, controls not matched by batch" if name == "real" else "baselines fitted without batches")
    return (f"the {name} file's obs column {column!r} has {int(missing.sum())} of {counted(len(missing), 'cell')} without a label "
            f"(NaN, empty or 'NA'): its batches are not read, as in a file without the column ({read_as}); to score them, label "
            f"every cell and name the column (--batch-col {column}; batch_col={column!r} in Python)")


def read_pair(
    pred: Any, real: Any, pert_col: str | None = None, control: str | None = None, celltype_col: str | None = None,
    train: Any = None, guess_celltype: bool = True, batch_col: str | None = None, keep_float64: bool = False,
) -> tuple[Cells, Cells, Cells | None, LayoutInfo]:
    """A prediction, its truth (and optionally training cells) read with one shared column and control label.

    The column and label are guessed from the truth when not given; every file must hold control
    cells. Contexts come from ``celltype_col``, else (``guess_celltype``) from ``CELLTYPE_COL`` when every
    file has it; with no column the contexts are pooled, and a truth column named like a cell type gets a
    note (``pooled_contexts_note``). Batches come from ``batch_col`` (default ``BATCH_COL`` where a file has it): a
    prediction and truth with several batches per group get the spread scores (``distgen.evaluation.spread``).
    ``keep_float64``: when a file's ``X`` is float64, every file is read as float64 (else float32), for a reference profile
    that scores in the file's dtype (``Profile.file_dtype``).
    """
    files = {"real": as_anndata(real, "real (ground-truth) file"), "pred": as_anndata(pred, "prediction file")}
    check_pair(recorded_scale(files["pred"], TRUTH_KEY), recorded_scale(files["real"], TRUTH_KEY), pred, real)
    if train is not None:
        files["training"] = as_anndata(train, "training file")
    check_shapes(files, pert_col)
    pert_col = guess_pert_col(files, pert_col)
    # dexa@0.30000001192092896 of an earlier distgen: dexa@0.3, decided for every file together (one label, one population
    # in every file: a training file holding both spellings kept them while the truth's long one was rewritten)
    from distgen.data.conditions import current_labels_of_files

    together = current_labels_of_files(file_labels(a, pert_col) for a in files.values())
    files = {k: current_dose_labels(a, pert_col, together) for k, a in files.items()}
    given = control
    control = guess_control(files, pert_col, control, "real")
    words = control_words(control_named(files.values(), given, control))
    col = celltype_col
    if col is None and guess_celltype and all(CELLTYPE_COL in a.obs.columns for a in files.values()):
        col = CELLTYPE_COL
    delimiters = recorded_delimiters(files.values())  # KLF1_MAP2K6 in one file pairs with KLF1+MAP2K6 in the other
    info = LayoutInfo(pert_col, control, col, condition_order=condition_order(files["real"], pert_col, control, delimiters, words),
                      scales={k: s for k, a in files.items() if (s := recorded_scale(a)) is not None},
                      kinds={k: s for k, a in files.items() if (s := recorded_scale(a, "kind")) is not None},
                      log_bases={k: b for k, a in files.items() if (b := recorded_log_base(a)) is not None},
                      provenance=recorded_provenance(files["pred"]),
                      perturbation_types={k: t for k, a in files.items() if (t := recorded_scale(a, PERTURBATION_TYPE_KEY)) is not None})
    if col is None:
        obs = files["real"].obs
        pooled = pooled_contexts_note(map(str, obs.columns), lambda c: obs[c].astype(str).tolist())
        if pooled and guess_celltype and "training" in files and all(CELLTYPE_COL in files[k].obs.columns for k in ("pred", "real")) \
                and CELLTYPE_COL not in files["training"].obs.columns:  # the reason, which the note alone did not give
            pooled = [f"{pooled[0]}; the prediction and the truth have it, but the training file (--train) has no {CELLTYPE_COL!r} "
                      f"column, so every file was read pooled: add the column to the training file (or pass --celltype-col "
                      f"{CELLTYPE_COL}, which then asks for it)"]
        info.notes += pooled
    if len(set(info.scales.values())) > 1:
        said = ", ".join(f"{k}: {s}" for k, s in info.scales.items())
        raise InputDataError(f"the files record different value scales ({said}); write them at one scale "
                         "(distgen predict --counts MODEL --real REAL writes both in counts)")
    check_gene_names(files)
    info.notes += split_doses(files, pert_col, control, col, words, delimiters)
    # the training file may lack a named batch column: its cells are then read without batches (never by its own 'batch'
    # column, which the user did not name) and its baselines predict every batch from the truth's own controls, said
    unbatched = batch_col is not None and "training" in files and batch_col not in files["training"].obs.columns
    if unbatched:
        own = f"; its own {BATCH_COL!r} column is not read" if BATCH_COL in files["training"].obs.columns else ""
        info.notes.append(f"the training file has no obs column {batch_col!r} (--batch-col): its cells are read without batches "
                          f"(baselines fitted without batches){own}; add the column to the training file to fit them per batch")
    # a value past float32's range (1e300: a diverged model) is read as float32 still: inf, refused naming it (PAST_FLOAT32)
    wide = keep_float64 and any(getattr(a.X, "dtype", None) == np.float64 for a in files.values()) and not any(
        _past_float32(a.X) for a in files.values())
    cells = {k: _cells(a, pert_col, control, col, k, delimiters, words, None if k == "training" and unbatched else batch_col,
                       info.notes, read_default_batch=not (k == "training" and unbatched), dtype=np.float64 if wide else np.float32)
             for k, a in files.items()}
    from distgen.evaluation.label_notes import combination_notes  # the evaluation's notes: imported where said

    info.notes += combination_notes({k: _label_sizes(a, pert_col) for k, a in files.items()}, cells["real"].genes, control, delimiters,
                                    words, pert_col)
    return cells["pred"], cells["real"], cells.get("training"), info


def _past_float32(x: Any) -> bool:
    """Whether a float64 ``X`` (dense or sparse) holds a finite value past float32's range."""
    if getattr(x, "dtype", None) != np.float64:
        return False
    values = np.asarray(x.data if hasattr(x, "tocsr") else x)
    finite = np.isfinite(values)  # a bool mask (an eighth of the values), no copy of them
    top = float(np.finfo(np.float32).max)
    return bool(finite.any()) and max(float(np.max(values, where=finite, initial=-np.inf)),
                                      -float(np.min(values, where=finite, initial=np.inf))) > top


def file_labels(adata: ad.AnnData, pert_col: str) -> set[str]:
    """The labels of ``adata``'s ``pert_col``: its values' and, for a categorical column, its categories'."""
    column = adata.obs[pert_col]
    cats = [str(c) for c in column.cat.categories] if isinstance(column.dtype, pd.CategoricalDtype) else []
    return set(pd.unique(column.astype(str).to_numpy()).tolist()) | set(cats)


def current_dose_labels(adata: ad.AnnData, pert_col: str, together: Mapping[str, str] | None = None) -> ad.AnnData:
    """``adata`` (its matrix shared, not copied) with its labels as this distgen writes them
    (``distgen.data.conditions.current_label``): a prediction or truth written by an earlier distgen labels a float32
    dose's population ``dexa@0.30000001192092896``, which now pairs with ``dexa@0.3``. ``adata`` itself when no label
    changes, or when the rewrite would make two of its labels one (``conditions.current_labels``). ``together``: the
    rewrite of every file read with this one (``conditions.current_labels_of_files``), so that they are rewritten alike."""
    from distgen.data.conditions import current_labels

    column = adata.obs[pert_col]
    labels = column.astype(str)
    cats = [str(c) for c in column.cat.categories] if isinstance(column.dtype, pd.CategoricalDtype) else None
    mine = file_labels(adata, pert_col)
    now = {k: together.get(k, k) for k in mine} if together is not None else current_labels(mine)
    if all(k == v for k, v in now.items()):
        return adata
    out = adata.obs.copy()
    renamed = [now[c] for c in cats] if cats is not None else None
    if cats is not None and renamed is not None and len(set(renamed)) == len(renamed) and all(isinstance(c, str) for c in column.cat.categories):
        out[pert_col] = column.cat.rename_categories(renamed)  # the file's order of its labels kept (condition_order)
    else:
        out[pert_col] = labels.map(now).to_numpy()
    return ad.AnnData(X=adata.X, obs=out, var=adata.var, uns=adata.uns)


def dose_column(obs: pd.DataFrame, pert_col: str) -> str | None:
    """The first of ``DOSE_COLUMNS`` that ``obs`` has (not the perturbation column), or None."""
    return next((c for c in DOSE_COLUMNS if c in obs.columns and c != pert_col), None)


def doses_within_labels(obs: pd.DataFrame, pert_col: str, control: str, celltype_col: str | None) -> tuple[str, pd.Series] | None:
    """``(dose column, {(label, cell type): number of doses})`` of the perturbation labels whose cells carry several doses in
    one cell type, or None when every label has one dose there (or ``obs`` has no column of ``DOSE_COLUMNS``)."""
    col = dose_column(obs, pert_col)
    if col is None:
        return None
    keys = [obs[pert_col].astype(str), *([obs[celltype_col].astype(str)] if celltype_col else [])]
    frame = pd.DataFrame({"p": keys[0].to_numpy(), "k": keys[1].to_numpy() if len(keys) > 1 else "", "d": obs[col].astype(str).to_numpy()})
    frame = frame[frame["p"] != control].drop_duplicates()
    per = frame.groupby(["p", "k"], sort=True)["d"].nunique()
    several = per[per > 1]
    return None if several.empty else (col, several)


def _dose_labelled(obs: pd.DataFrame, pert_col: str, control: str) -> bool:
    """Whether every perturbed label of ``obs`` is a population at a dose, ``atom@dose`` (as distgen writes data at several doses)."""
    from distgen.data.conditions import parse_dose_label

    labels = set(obs[pert_col].astype(str).tolist()) - {control}
    return bool(labels) and all(parse_dose_label(v) is not None for v in labels)


def with_dose_labels(adata: ad.AnnData, pert_col: str, control: str, dose_col: str, controls: Sequence[str], name: str,
                     delimiters: Sequence[str] = ()) -> ad.AnnData:
    """``adata`` (its matrix shared, not copied) with each perturbed cell's label written as its population at its dose,
    ``atom@dose`` (``dexa`` at 10: ``dexa@10``; ``saha+dexa`` at ``100+10``: ``dexa@10+saha@100``), read from ``obs[dose_col]``
    as the training loader reads a dose column (``distgen.data.conditions.parse_doses``); controls keep their label.

    A combination's atoms, and its dose per slot, are split on the delimiter the file records (``uns["distgen"]
    ["combo_delimiter"]``, as distgen writes data whose schema declares one: ``saha_dexa`` at ``100_10``), else on the one
    of ``delimiters`` (the other files' record, or the dataset's schema), else on ``+``. Split on ``+`` only, ``saha_dexa``
    was one atom and its dose ``100_10`` the number 10010 (Python's ``float`` reads ``_`` as a digit separator)."""
    from distgen.data.conditions import dose_label, parse_doses
    from distgen.data.doses import DoseError
    from distgen.data.schema import PerturbationSchema

    obs = adata.obs
    labels = obs[pert_col].astype(str).to_numpy()
    delim = _dose_delimiter(adata, delimiters, labels, obs[dose_col], control)
    canon = {v: canonical_condition(v, control, (delim,), controls) for v in pd.unique(labels)}
    atoms = [() if canon[v] == control else tuple(canon[v].split(COMBO)) for v in labels]
    schema = PerturbationSchema(perturbation_col=pert_col, control_labels=tuple(dict.fromkeys((control, *controls))), dose_col=dose_col,
                                combo_delimiter=delim)
    try:
        doses = parse_doses(obs, schema, atoms)
    except (DoseError, ValueError) as err:
        raise InputDataError(f"the {name} file's obs[{dose_col!r}]: {err}") from None
    out = obs.copy()
    out[pert_col] = [v if not a else dose_label(a, d) for v, a, d in zip(labels, atoms, doses)]
    return ad.AnnData(X=adata.X, obs=out, var=adata.var)


def _dose_delimiter(adata: ad.AnnData, delimiters: Sequence[str], labels: np.ndarray, doses: pd.Series, control: str) -> str:
    """The delimiter ``with_dose_labels`` splits a combination and its dose per slot on: the file's record, else the one of
    ``+`` and ``delimiters`` that its dose column (else its labels) is written with, else the one other delimiter given.

    A file that records none is written by another tool: against a dataset (or a truth) whose combinations are written
    ``saha_dexa``, its own may still be ``saha+dexa`` at ``5+10``, which was refused ("cannot read dose '5+10' as a number
    or 'd1_d2'") once the other side's delimiter was taken for it."""
    own = recorded_scale(adata, DELIMITER_KEY)
    if own:
        return str(own)
    others = [d for d in dict.fromkeys(delimiters) if d and d != COMBO]
    if not others:
        return COMBO
    perturbed = labels != control
    written = (pd.unique(doses.astype(str).to_numpy()[perturbed]), pd.unique(labels[perturbed]))
    for texts in written:  # a dose column's '1e+06' holds '+' too: then the labels tell
        used = [d for d in (*others, COMBO) if any(d in str(t) for t in texts)]
        if len(used) == 1:
            return used[0]
    return others[0] if len(others) == 1 else COMBO


def split_doses(files: dict[str, ad.AnnData], pert_col: str, control: str, celltype_col: str | None, controls: Sequence[str],
                delimiters: Sequence[str] = ()) -> list[str]:
    """Score a population per (label, dose) when the files carry the dose in a column of ``DOSE_COLUMNS``: ``files`` relabelled
    in place (``with_dose_labels``) and a note saying so; ``[]`` when no file holds several doses within a label.

    The truth at several doses within a label is split by its dose column, and so is the prediction: by its own dose
    column, or it is already labelled ``atom@dose``; a prediction with neither is refused (which of its cells is which dose
    cannot be told). A prediction at several doses within a label is refused unless the truth can be split the same way.
    The training file (``--train``) is relabelled when it carries the dose column. A file whose labels are all ``atom@dose``
    already is left as it is, whatever dose column it also carries."""
    real, pred = files["real"].obs, files["pred"].obs
    several = doses_within_labels(real, pert_col, control, celltype_col)
    several_pred = doses_within_labels(pred, pert_col, control, celltype_col)
    # a file already labelled atom@dose keeps its labels, its dose column too (dosed again, dexa@10 read dexa@10@10)
    split = {k for k, a in files.items() if dose_column(a.obs, pert_col) is not None and not _dose_labelled(a.obs, pert_col, control)}
    if several is None and several_pred is None:
        if {"real", "pred"} <= split:  # one dose per label on each side: paired bare, which holds only if they are one dose
            _refuse_other_doses(files, pert_col, control, celltype_col, controls, delimiters)
            return []
        if "real" in split and _dose_labelled(pred, pert_col, control):
            # a prediction labelled atom@dose (dexa@10) and a truth at one dose per label in a dose column (dexa at 10):
            # the truth is relabelled from it to pair dose by dose (read bare, dexa@10 paired with nothing)
            files["real"] = with_dose_labels(files["real"], pert_col, control, str(dose_column(real, pert_col)), controls, "truth",
                                             delimiters)
            return ["doses: the prediction's populations are labelled atom@dose (dexa@10) and the truth carries its doses in a "
                    "dose column: its cells are labelled atom@dose from it to pair with them"]
        if not ("pred" in split and _dose_labelled(real, pert_col, control)):
            return []
        # a truth labelled atom@dose (distgen's, a Dataset's) and a prediction at one dose per label in a dose column: its
        # labels (dexa at 1000) are relabelled to pair (dexa@1000), as they are when some label holds several doses
        files["pred"] = with_dose_labels(files["pred"], pert_col, control, str(dose_column(pred, pert_col)), controls, "prediction",
                                         delimiters)
        return ["doses: the truth's populations are labelled atom@dose (dexa@10) and the prediction carries its doses in a dose "
                "column: its cells are labelled atom@dose from it to pair with them"]
    if several is None:  # the prediction's cells of one label carry several doses, the truth's one (or none)
        assert several_pred is not None
        (p, k), n = several_pred[1].index[0], int(several_pred[1].iloc[0])
        if "real" not in split and not _dose_labelled(real, pert_col, control):
            raise InputDataError(
                f"the prediction's obs[{several_pred[0]!r}] holds several doses within {len(several_pred[1])} perturbation label(s) "
                f"(e.g. {p!r}{f' in {k}' if k else ''}: {n} doses), but the truth has no dose column ({', '.join(DOSE_COLUMNS)}) nor "
                "atom@dose labels: which truth cells each dose is scored against cannot be told. Add the truth's dose column "
                "(or label both files atom@dose, dexa@10), or keep in the prediction only the dose the truth was measured at")
    elif "pred" not in split and not _dose_labelled(pred, pert_col, control):
        (p, k), n = several[1].index[0], int(several[1].iloc[0])
        raise InputDataError(
            f"the truth's obs[{several[0]!r}] holds several doses within {len(several[1])} perturbation label(s) (e.g. {p!r}"
            f"{f' in {k}' if k else ''}: {n} doses), but the prediction has no dose column ({', '.join(DOSE_COLUMNS)}) and "
            "its labels carry no dose (atom@dose): which of its cells to pair with which dose cannot be told (scoring them "
            "against the doses pooled is no score of any dose). Add the prediction's dose column, or write each dose into "
            "its labels as distgen does (dexa@10; distgen.data.conditions.dose_label)")
    for k in sorted(split):
        files[k] = with_dose_labels(files[k], pert_col, control, str(dose_column(files[k].obs, pert_col)), controls,
                                    {"real": "truth", "pred": "prediction"}.get(k, k), delimiters)
    return [f"doses: the {' and '.join({'real': 'truth', 'pred': 'prediction'}.get(k, k) for k in sorted(split))} {'carries' if len(split) == 1 else 'carry'} several doses "
            "within a perturbation label in a dose column: each (label, dose) is scored as a population of its own, labelled "
            "atom@dose (dexa@10), as distgen labels data at several doses"] if split else []


def _refuse_other_doses(files: dict[str, ad.AnnData], pert_col: str, control: str, celltype_col: str | None,
                        controls: Sequence[str], delimiters: Sequence[str]) -> None:
    """Refuse a prediction and a truth that each carry one dose per label (in a cell type) in a dose column, but not the
    same one for a label they share (``dexa`` predicted at 10, measured at 100): read bare, as files at one dose per label
    are, the prediction was scored against cells of another dose, silently."""
    from distgen.data.conditions import parse_dose_label

    def doses(key: str) -> dict[tuple[str, str], tuple[str, tuple[Any, ...]]]:
        a = files[key]
        dosed = with_dose_labels(a, pert_col, control, str(dose_column(a.obs, pert_col)), controls,
                                 {"real": "truth", "pred": "prediction"}[key], delimiters).obs
        cell = dosed[celltype_col].astype(str).to_numpy() if celltype_col and celltype_col in dosed.columns else np.full(len(dosed), "")
        out = {}
        for label, k in set(zip(dosed[pert_col].astype(str).tolist(), cell.tolist())):
            read = parse_dose_label(label)
            if label != control and read is not None:
                out[(COMBO.join(read[0]), str(k))] = (label, tuple(float(np.float32(d)) for d in read[1]))
        return out

    def written(key: str) -> dict[tuple[str, str], tuple[str, tuple[Any, ...]]]:
        # a column that is not doses to the loader (scPerturb's dose_value, NaN on a CRISPR screen; '10uM' with its unit):
        # its values as written, a number as float32, missing ones left out (these files paired bare before the check)
        from distgen.data.conditions import missing_mask

        obs = files[key].obs
        col = str(dose_column(obs, pert_col))
        known = ~missing_mask(obs[col].to_numpy(dtype=object))
        labels = obs[pert_col].astype(str).to_numpy()[known]
        cell = obs[celltype_col].astype(str).to_numpy()[known] if celltype_col and celltype_col in obs.columns else np.full(len(labels), "")
        out: dict[tuple[str, str], tuple[str, tuple[Any, ...]]] = {}
        for label, k, v in set(zip(labels.tolist(), cell.tolist(), obs[col].astype(str).str.strip().to_numpy()[known].tolist())):
            base = canonical_condition(label, control, delimiters, controls)
            if base != control:
                try:
                    value: Any = float(np.float32(float(v)))
                except ValueError:
                    value = v
                out[(base, str(k))] = (v, (value,))
        return out

    try:  # equal as models read doses (float32): a float32 column's 0.3 is 0.3
        truth, pred = doses("real"), doses("pred")
    except InputDataError:
        truth, pred = written("real"), written("pred")
    other = sorted((key, pred[key][0], truth[key][0]) for key in pred.keys() & truth.keys() if pred[key][1] != truth[key][1])
    spelt = [(key, p, t) for key, p, t in other if _same_number(p, t)]
    if spelt:  # 10 and '10uM': one number, written with a unit on one side only (or two units): not told apart by distgen
        (b, k), p, t = spelt[0]
        col = str(dose_column(files["real"].obs, pert_col))
        raise InputDataError(
            f"the prediction and the truth write their dose column otherwise: {len(spelt)} shared perturbation label(s) are at "
            f"one number written two ways (e.g. {b}{f' in {k}' if k else ''}: {p!r} in the prediction, {t!r} in the truth), "
            "which distgen cannot tell to be one dose (a unit is not read). Write the two columns one way, e.g. the numbers "
            f"alone in both: adata.obs[{col!r}] = adata.obs[{col!r}].astype(str).str.removesuffix('uM').astype(float) (with "
            "the unit the column carries), or the truth's spelling in the prediction; then evaluate again")
    if other:
        (b, k), p, t = other[0]
        raise InputDataError(
            f"the prediction and the truth carry a dose column, but {len(other)} shared perturbation label(s) are at other doses "
            f"in the two (e.g. {b}{f' in {k}' if k else ''}: predicted as {p}, measured as {t}): read as one label, the "
            "prediction would be scored against the cells of another dose. Predict each at the truth's dose, or label both "
            "files atom@dose (dexa@10; distgen.data.conditions.dose_label) to score the shared doses only")


#: A number and what follows it in a dose written with a unit (``10uM``, ``0.5 mg/ml``).
_NUMBER_AND_UNIT = re.compile(r"^\s*([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*(.*?)\s*$")


def _same_number(a: str, b: str) -> bool:
    """Whether two written doses that differ as text are one number written otherwise: a unit on one side only, or one
    unit spaced otherwise (``10`` and ``10uM``, ``10 uM`` and ``10uM``; not ``10uM`` and ``10nM``); the numbers read as
    float32, as models read doses."""
    ma, mb = _NUMBER_AND_UNIT.match(str(a)), _NUMBER_AND_UNIT.match(str(b))
    if ma is None or mb is None or (not ma.group(2) and not mb.group(2)):
        return False
    ua, ub = (m.group(2).replace(" ", "") for m in (ma, mb))
    if ua and ub and ua != ub:  # 10uM and 10nM: other doses
        return False
    return bool(np.float32(float(ma.group(1))) == np.float32(float(mb.group(1))))


def check_shapes(files: dict[str, ad.AnnData], pert_col: str | None = None) -> None:
    """Refuse a file without cells or without genes, and one written with cells as its var (transposed), before the
    label checks: an empty prediction was refused as 'no control cells (values include [])', a transposed one with
    'pass --pert-col' next to the truth's columns."""
    for name, a in files.items():
        if a.n_obs == 0 or a.n_vars == 0:
            raise InputDataError(f"the {name} file holds no {'cells' if a.n_obs == 0 else 'genes'} ({a.n_obs} cells x {a.n_vars} "
                                 "genes): nothing to score; pass the file that holds the predictions (or the truth), written "
                                 "with its cells as obs and its genes as var")
    for name, a in files.items():
        wanted = [pert_col] if pert_col is not None else list(PERT_COLS)
        in_obs = [c for c in wanted if c in a.obs.columns]
        in_var = [c for c in wanted if c in a.var.columns]
        if in_var and not in_obs:
            raise InputDataError(f"the {name} file holds {in_var[0]!r} in var, not in obs: it is written transposed (cells as var, "
                                 f"{a.n_vars} of them; genes as obs, {a.n_obs}); transpose it (adata = adata.T; "
                                 "adata.write_h5ad(...)) and evaluate again")


def check_gene_names(files: dict[str, Any]) -> None:
    """Refuse a file whose ``var_names`` are not the truth's gene names while one of its ``var`` columns holds them.

    scGPT-, GEARS- or Seurat-exported files often index genes by Ensembl ID with the symbols in a ``var`` column (or the
    reverse); scored as they are, no gene would match. The error names the column and the one-line fix. Files whose names
    already agree, or where no column matches, are left to the gene checks of the evaluation (``evaluation.io.align``).
    ``files``: ``{name: AnnData}`` with ``"real"`` the truth; a side that is not a file (``Cells``, a ``Dataset``'s truth)
    is given as its gene names (a sequence of str), which have no ``var`` columns to look in. One rule for ``read_pair``
    and for ``distgen.evaluate`` reading files one by one.
    """
    real = files.get("real")
    if real is None:
        return

    def names(a: Any) -> list[str]:
        return list(map(str, a.var_names)) if isinstance(a, ad.AnnData) else [str(g) for g in a]

    def columns(a: Any) -> pd.DataFrame:
        return a.var if isinstance(a, ad.AnnData) else pd.DataFrame()

    real_names = names(real)
    truth = set(real_names)
    for name, a in files.items():
        if name == "real" or truth <= set(names(a)):
            continue
        for side, holder, wanted, whose in ((name, a, truth, "the truth's"), ("real", real, set(names(a)), f"the {name} file's")):
            var = columns(holder)
            for column in var.columns:
                values = var[column]
                if values.dtype.kind not in "OUS" and not isinstance(values.dtype, pd.CategoricalDtype | pd.StringDtype):
                    continue
                found = set(values.astype(str)) & wanted
                if len(found) >= max(1, 0.9 * len(wanted)):
                    raise InputDataError(
                        f"the {name} file's genes (var_names: {first_of(list(names(a)), 3, render=repr, enclosed=True)}) are not "
                        f"named as the truth's ({first_of(list(real_names), 3, render=repr, enclosed=True)}), but the {side} file's var[{column!r}] holds "
                        f"{len(found)} of {whose} {len(wanted)} gene names: set {side}.var_names = {side}.var[{column!r}] (one name "
                        "per gene) and evaluate again")


# ---------------------------------------------------------------------------------------------- array helpers
def write_predictions(
    cells: Any,
    conditions: Sequence[str],
    control_cells: Any,
    genes: Sequence[str],
    contexts: Sequence[str] | None = None,
    control_contexts: Sequence[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    data: PerturbationData | None = None,
    pert_col: str = PERT_COL,
    control_label: str = CONTROL,
    celltype_col: str = CELLTYPE_COL,
    scale: str = "lognorm",
) -> ad.AnnData:
    """AnnData of generated ``cells`` ``[N, G]`` with real ``control_cells`` ``[M, G]`` appended (arrays in, layout out).

    ``data`` (optional) checks that the genes and the perturbations are the training ones. The file
    is written (gzip h5ad, atomically) only after every check passed. ``scale`` (``lognorm`` or
    ``counts``) is recorded in ``uns["distgen"]["scale"]``.
    """
    x, c = _np(cells), _np(control_cells)
    genes = [str(g) for g in genes]
    for what, m in (("cells", x), ("control_cells", c)):
        if m.ndim != 2 or m.shape[1] != len(genes):
            raise ValueError(f"{what} must be [N, G={len(genes)}], got {m.shape}")
    if len(conditions) != len(x):
        raise ValueError(f"{counted(len(conditions), 'condition label')} for {counted(len(x), 'cell')}")
    if (contexts is None) != (control_contexts is None):
        raise ValueError("give contexts for both the perturbed and the control cells, or for neither")
    clash = sorted({str(v) for v in set(conditions) if canonical_condition(str(v), control_label) == control_label
                    or canonical_condition(str(v), "control") == "control"})
    if clash:  # generated cells labelled so would be written (and read back) as control cells, pooled with the real ones
        raise ValueError(f"condition label {clash[0]!r} is a control label ({control_label!r}, or 'control'); pass perturbed "
                         "cells in cells= and controls in control_cells=")
    delimiter = COMBO
    labels = [str(v) for v in conditions]
    if data is not None:
        data.check_genes(genes)
        data.label_atoms(list(conditions), list(contexts) if contexts is not None else None, where="write_predictions")  # known labels
        delimiter = data.schema.combo_delimiter  # the data's labels (A_B): written as the data writes them, like its truth
        labels = [canonical_condition(v, "control", (delimiter,), data.schema.control_labels) for v in labels]
    if not np.isfinite(x).all() or not np.isfinite(c).all():
        raise ValueError("cells has NaN/inf values; the model diverged or the input was not cleaned")
    pop = Cells(
        torch.from_numpy(np.concatenate([x, c])),
        labels + ["control"] * len(c),
        genes,
        [*map(str, contexts), *map(str, control_contexts)] if contexts is not None and control_contexts is not None else None,
    )
    adata = to_anndata(pop, "pred", contexts is not None, pert_col, control_label, celltype_col, scale, combo_delimiter=delimiter,
                       perturbation_type=data.schema.perturbation_type if data is not None else None)
    if path is not None:
        _write(adata, path)
    return adata


def write_ground_truth(
    data: PerturbationData,
    cells: Any,
    control_cells: Any,
    path: str | os.PathLike[str] | None = None,
    pert_col: str = PERT_COL,
    control_label: str = CONTROL,
    celltype_col: str = CELLTYPE_COL,
    scale: str = "lognorm",
) -> ad.AnnData:
    """The real cells at indices ``cells`` (perturbed; control cells among them are dropped) and ``control_cells``."""
    from distgen.data.prepared import cells_of

    idx = np.asarray(cells, dtype=np.int64)
    idx = idx[~data.is_control[idx]]
    cidx = np.asarray(control_cells, dtype=np.int64)
    if not data.is_control[cidx].all():
        raise ValueError("control_cells must index control cells of the dataset")
    pop = cells_of(data, np.concatenate([idx, cidx]))
    adata = to_anndata(pop, "real", len(data.info.contexts) > 1, pert_col, control_label, celltype_col, scale, len(data.info.batches) > 1,
                       data.schema.combo_delimiter, perturbation_type=data.schema.perturbation_type)
    if path is not None:
        _write(adata, path)
    return adata


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


def written_kinds(path: str | os.PathLike[str]) -> set[str] | None:
    """The row kinds (``pred``/``real``/``control``) of an ``.h5ad`` this layout wrote, or None for any other file.

    Reads only the ``obs/distgen_kind`` column (h5py), so checking a large file before overwriting
    it is cheap. Used to tell a previous output of ``distgen predict`` from someone else's file.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            col = f.get(f"obs/{KIND_COL}")
            if col is None:
                return None
            values = col["categories"][()] if isinstance(col, h5py.Group) else col[()]
            return {v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).ravel().tolist()}
    except (OSError, KeyError, ValueError, TypeError):
        return None
