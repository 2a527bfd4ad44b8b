"""``DiskCells``: the cells of an on-disk AnnData (h5ad or zarr), readable by row without loading the matrix.

``obs``/``var`` (small) are read at open; rows of the expression matrix are read on demand through
anndata's own ``anndata.io.sparse_dataset`` (CSR) or the h5py/zarr array (dense), and log-normalised
per row when the file holds counts. ``distgen.data.streaming`` builds cell sets on top of it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from distgen.data.conditions import (
    CONTEXT_COLUMNS,
    MODALITY_COLUMNS,
    batch_labels,
    check_dose_labels,
    check_float32_doses,
    check_label_forms,
    check_min_cells,
    condition_string,
    context_labels,
    dose_label,
    handle_missing_labels,
    label_slots,
    label_warnings,
    legacy_labels,
    modality_warnings,
    parse_atoms,
    parse_doses,
    pooled_context_warnings,
    several_doses,
)
from distgen.data.expression import RAW_SOURCES, check_unique_cells, check_unique_genes
from distgen.data.groups import draw_order
from distgen.data.schema import PerturbationSchema
from distgen.errors import DistgenError, InputDataError, InputKeyError, warn
from distgen.seeds import content_keys
from distgen.types import COMBO, PAD, ConditionLabels, DataInfo, canonical
from distgen.types.layout import position_type_problem, sparse_position_problem
from distgen.wording import first_of


def backed_rows(dataset: Any, mask: np.ndarray) -> Any:
    """``dataset[mask]`` for anndata's on-disk sparse matrix; a clear error where the installed anndata cannot index it.

    anndata 0.12.0-0.12.6 index through scipy's private ``_validate_indices``, which scipy 1.17 removed; anndata 0.12.7
    fixed it but also requires pandas < 3, so an environment with pandas 3 (pip keeps anndata at 0.12.6 there) and the
    newest scipy cannot read a file's rows at all. That is no bug of distgen or of the file: the message names the pair.
    """
    try:
        return dataset[mask]
    except AttributeError as exc:
        if "_validate_indices" not in str(exc):
            raise
        from importlib.metadata import version

        raise DistgenError(
            f"anndata {version('anndata')} cannot read rows of a sparse matrix on disk with scipy {version('scipy')} "
            "(scipy 1.17 removed the private function anndata before 0.12.7 calls): install a pair that works, "
            "pip install 'scipy<1.17', or pip install -U anndata (0.12.7 or later, which needs pandas < 3)") from None


class DiskCells:
    """The cells of an on-disk AnnData, readable by row without loading the matrix.

    Parameters
    ----------
    path
        An ``.h5ad`` file or a ``.zarr`` store (``obs``/``var``/``X`` as anndata writes them).
    schema
        Column mapping (as for ``PerturbationData``); ``expression`` may be ``"X"`` or a layer.
    genes
        Keep only these gene columns (e.g. training HVGs), in this order; default all.
    library_genes
        When the file holds counts that are normalised here: the genes whose counts ``normalize_total`` sums per cell
        (those of them the file holds; ``genes`` always among them), as a run normalised its training file over every
        gene of it before keeping ``genes``. Default: the kept genes (``genes``, or all).

    Attributes
    ----------
    info
        Vocabularies (sorted, as ``PerturbationData`` builds them for the same columns).
    labels
        Per-cell ``ConditionLabels`` ``[N]`` (small: a few integers per cell).
    condition_codes, condition_names, canonical_names
        Per-cell condition as codes ``[N]`` into ``condition_names`` (atoms joined by the schema's
        ``combo_delimiter``) and ``canonical_names`` (joined by ``+``, as predictions are grouped).
    written_names
        Per code, the atoms in the order the file writes them, joined by ``+`` (``MAP2K6+KLF1``; a control or repeated
        atom dropped, as reading drops it): the label a prediction from the file gives its group (``predict_to_disk``).
    """

    def __init__(self, path: str | Path, schema: PerturbationSchema | None = None, genes: Sequence[str] | None = None,
                 library_genes: Sequence[str] | None = None) -> None:
        from anndata.io import read_elem

        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path} does not exist; write one with distgen.data.large_synthetic.write_large_synthetic or AnnData.write_h5ad")
        self.schema = schema or PerturbationSchema()
        self._root: Any = None
        self._pid = -1
        self._ds: tuple[int, Any] | None = None
        # what the labels read below describe; every later open checks it (a zarr store's folders below: every read)
        self._stamp, self._folders = store_stamp(self.path)
        root = self._open(stamped=True)  # the stamp was taken just now: not a second walk of the store
        if not hasattr(root["obs"], "keys") or not hasattr(root["var"], "keys"):  # h5py/zarr groups have keys, legacy tables not
            raise ValueError(f"{self.path} is stored in an older anndata encoding (before anndata 0.7: obs and var as tables, not "
                             "groups), which streaming does not read; write it again with this anndata: "
                             "anndata.read_h5ad(path).write_h5ad(new_path)")
        missing = [c for c in self.schema.required_columns() if c not in root["obs"]]
        if missing:
            raise InputKeyError(f"obs column(s) {missing} named in PerturbationSchema are missing from {self.path}; available: "
                                f"{sorted(root['obs'].keys())}. A file that names them otherwise is read with a schema naming its "
                                "own columns, the rest kept: dataclasses.replace(schema, perturbation_col=..., context_cols=(...,))")
        extra = [c for c in (*MODALITY_COLUMNS, *CONTEXT_COLUMNS) if c in root["obs"] and c not in self.schema.required_columns()]  # for the warnings
        obs = pd.DataFrame({c: read_elem(root["obs"][c]) for c in [*self.schema.required_columns(), *extra]})
        obs.index = cell_names(root)  # as in memory: unique (the split and the leakage checks name cells), messages name them
        check_unique_cells(obs.index, str(self.path))
        raw = self.schema.expression in RAW_SOURCES  # .raw has its own genes (scanpy keeps them there before scaling X)
        if raw and ("raw" not in root or "X" not in root["raw"] or "var" not in root["raw"]):
            raise InputKeyError(f"expression={self.schema.expression!r}: {self.path} has no .raw (raw/X and raw/var)")
        var_names = [str(g) for g in read_elem(root["raw"]["var"] if raw else root["var"]).index]
        check_unique_genes(var_names, f"{self.path}'s raw" if raw else str(self.path))
        self.n_cells = len(obs)
        self.columns: np.ndarray | None = None
        self._library: tuple[np.ndarray, np.ndarray] | None = None  # (file columns summed, kept columns among them)
        index = pd.Index(var_names)
        if genes is not None:
            pos = index.get_indexer(list(genes))
            if (pos < 0).any():
                raise InputKeyError(f"genes {first_of([g for g, p in zip(genes, pos) if p < 0], 5, render=repr)} are not in {self.path}")
            self.columns = pos
        if library_genes is not None:
            kept = np.arange(len(var_names)) if self.columns is None else self.columns
            summed = np.union1d(index.get_indexer(list(library_genes)), kept)
            self._library = (summed[summed >= 0], np.searchsorted(summed[summed >= 0], kept))
        if genes is not None:
            var_names = [str(g) for g in genes]
        self.normalize = False  # until the matrix is described: its first rows are read as stored
        self._describe_matrix(root)
        self._build_labels(obs, var_names)

    def cell_names(self) -> np.ndarray:
        """``[N]`` the cells' names (``obs_names``, unique: checked when opened), read from the file (not kept in memory)."""
        return np.asarray(cell_names(self._open()), dtype=object)

    # ------------------------------------------------------------------ file access
    def _open(self, stamped: bool = False) -> Any:
        """The root group, (re)opened once per process (h5py handles do not survive ``fork``); refused when the file
        changed since this ``DiskCells`` read its labels (``file_stamp``): its rows would be read under the old labels.
        ``stamped``: the stamp was taken just before (``__init__``), so the full check is left out."""
        # every file of a zarr store when (re)opening it (a process, a worker, after close), its folders at each read
        reopen = self._root is None or self._pid != os.getpid()
        folders = None if reopen else getattr(self, "_folders", None)  # none: pickled by an older distgen (or reopening)
        if not stamped and not stamp_matches(self.path, self._stamp, folders):
            from distgen.errors import InputFileError

            raise InputFileError(
                f"{str(self.path)!r} changed since it was opened (it was written again, replaced or modified: its size, time or "
                "identity differ), so its rows no longer match the cell labels read then; open it again with "
                "DiskCells(path, schema) and restart what reads it (training, prediction), or keep the file unchanged while "
                "they run (write a new file beside it)")
        if self._root is None or self._pid != os.getpid():
            if self.path.suffix == ".zarr" or self.path.is_dir():
                import zarr

                self._root = zarr.open_group(str(self.path), mode="r")
            else:
                import h5py

                try:
                    self._root = h5py.File(self.path, "r")
                except OSError as exc:
                    from distgen.data.h5ad import sniff
                    from distgen.errors import InputFileError

                    kind, fix = sniff(self.path)
                    raise InputFileError(f"{str(self.path)!r} is not a readable .h5ad file: it is {kind} ({exc}); {fix}") from None
            self._pid = os.getpid()
        return self._root

    def _elem(self) -> Any:
        src = self.schema.expression
        root = self._open()
        if src == "X":
            if "X" not in root or root["X"].attrs.get("encoding-type") == "null":  # anndata 0.12.0 writes X=None as a null element
                layers = sorted(root["layers"].keys()) if "layers" in root else []
                raise InputKeyError(f"{self.path} has no X; stream a layer instead (PerturbationSchema.expression = 'layers/<name>'"
                               + (f"; layers: {layers})" if layers else ")"))
            return root["X"]
        if src in RAW_SOURCES:
            return root["raw"]["X"]
        layer = src[7:] if src.startswith("layers/") else src
        if src.startswith("obsm/") or "layers" not in root or layer not in root["layers"]:
            raise InputKeyError(f"expression={src!r}: streaming reads 'X', 'raw' or a layer ('layers/<name>') of {self.path}"
                               + (f"; layers: {sorted(root['layers'].keys())}" if "layers" in root else ""))
        return root["layers"][layer]

    def _describe_matrix(self, root: Any) -> None:
        elem = self._elem()
        enc = elem.attrs.get("encoding-type", "array")
        if enc == "csc_matrix":
            raise InputDataError(
                f"{self.path}: the matrix is CSC, whose row reads touch the whole file. Convert it once to CSR "
                "(adata.X = adata.X.tocsr() and rewrite, or write_large_synthetic-style chunked CSR appends)"
            )
        self.sparse = enc == "csr_matrix"
        self._n_rows = self.n_cells
        if self.sparse:
            self._check_indptr(elem)
        first = self.read(np.arange(min(self.n_cells, 2000)), log=False)
        from distgen.data.expression import check_log_base, check_values, detect_scale, few_above_log_range

        check_values(first, self.schema.expression)
        found = detect_scale(first)
        if found == "normalized":
            raise InputDataError(f"{self.path}: values are normalised but not log-transformed; apply log1p or stream the counts layer"
                                 + few_above_log_range(first))
        if found == "log":  # log2 / log10 values would be read as log1p, too large (the message gives the conversion)
            # on the rows the in-memory load looks at (200 spread over the whole file, not over its first 2,000): a file
            # whose first rows are natural log and the rest log2 streamed as natural log (each later value 1.44x too large)
            # where the in-memory load refused it. Once, at open: the check costs ~70 ms a 512-cell chunk, 4x a streamed batch
            spread = np.unique(np.linspace(0, self.n_cells - 1, min(self.n_cells, 200)).astype(np.int64))
            check_log_base(first if self.n_cells <= first.shape[0] else self.read(spread, log=False),
                           self.schema.expression, self.schema.target_sum)
        declared = self.schema.scale
        if declared != "auto" and declared != found:
            raise InputDataError(f"{self.path}: PerturbationSchema.scale={declared!r} but the values look like {found!r}; fix the schema")
        self.scale = found
        self.normalize = found == "counts" and self.schema.normalize

    def read(self, rows: np.ndarray, log: bool = True) -> sp.csr_matrix:
        """``[len(rows), G]`` CSR float32 of the given rows (any order; read in sorted order)."""
        srt, inverse = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
        out = self._stored(srt)
        if self._library is not None and self.normalize:  # normalised over the library genes, then the kept columns
            summed, kept = self._library
            out = out[:, summed]
            out = (_log_normalize(out, self.schema.target_sum) if log else out)[:, kept]
        else:
            if self.columns is not None:
                out = out[:, self.columns]
            if log and self.normalize:
                out = _log_normalize(out, self.schema.target_sum)
        return out if srt.size == inverse.size and (np.diff(inverse) == 1).all() else out[inverse.reshape(-1)]

    def _check_indptr(self, elem: Any) -> None:
        """Refuse a CSR matrix whose row pointers are not non-decreasing from 0 to the number of stored values (read once,
        ``n_cells + 1`` integers): a streamed read builds rows from them, and beyond the rows read to describe the matrix
        a damaged pointer failed deep inside anndata. Column indices are checked on every read (``_stored``), but their
        stored type only here: anndata's row reader re-types them (a float 2.5 becomes column 2), so positions not stored
        as integers (``position_type_problem`` of the indices' stored type, nothing read; ``sparse_position_problem`` of the
        pointer) are refused first."""
        stored = elem["indptr"][:]
        for name, problem in (("indices", position_type_problem(elem["indices"].dtype)), ("indptr", sparse_position_problem(stored))):
            if problem is not None:
                raise self._malformed(f"its {name} {problem}")
        indptr = np.asarray(stored, dtype=np.int64)
        nnz = int(elem["indices"].shape[0])
        if indptr.size != self._n_rows + 1 or indptr[0] != 0 or indptr[-1] != nnz or (np.diff(indptr) < 0).any():
            raise self._malformed(f"its indptr is not a non-decreasing sequence from 0 to the {nnz} stored values over "
                                  f"{self._n_rows} rows")

    def _malformed(self, why: str) -> InputDataError:
        return InputDataError(f"{self.path}: {self.schema.expression} is a malformed sparse CSR matrix ({why}): the file is "
                              "damaged or was written by hand; write it again from the original data")

    def _stored(self, srt: np.ndarray) -> sp.csr_matrix:
        """``[len(srt), all genes]`` CSR float32 of the sorted unique rows ``srt``, as stored."""
        elem = self._elem()
        if self.sparse:
            from anndata.io import sparse_dataset

            if self._ds is None or self._ds[0] != os.getpid():
                self._ds = (os.getpid(), sparse_dataset(elem))  # caches indptr: one per process
            mask = np.zeros(self._n_rows, dtype=bool)
            mask[srt] = True
            out = backed_rows(self._ds[1], mask)  # anndata reads each contiguous run of rows as one slice
        else:
            rows = elem[srt] if hasattr(elem, "id") else elem.oindex[srt, :]
            out = sp.csr_matrix(np.asarray(rows, dtype=np.float32))  # scipy.sparse has no float16 (a dense float16 X)
        self._check_read(out, srt)
        out = sp.csr_matrix(out, dtype=np.float32)
        if not out.has_canonical_format:  # a value stored twice is one value of the dense matrix, as in memory: summed
            out.sum_duplicates()  # before log1p (log1p of each part summed is another number)
        return out

    def _check_read(self, x: sp.csr_matrix, srt: np.ndarray) -> None:
        """Refuse in every read what the in-memory load refuses in the whole matrix (the file was described from its first
        2,000 rows only): a malformed matrix, NaN/inf/negative values, and, in a file read as counts (``scale='auto'``),
        a value that is not a whole number."""
        from distgen.data.expression import check_values

        where = f"{self.path}: {self.schema.expression} (rows {int(srt[0])}-{int(srt[-1])})" if srt.size else str(self.path)
        check_values(x, where)  # a column index past the genes read silently, NaN reached scanpy, a negative value streamed
        if getattr(self, "scale", None) == "counts" and self.schema.scale == "auto" and x.nnz:
            v = x.data
            if float(np.abs(v - np.round(v)).max()) >= 1e-6:
                raise InputDataError(
                    f"{where} holds values that are not whole numbers, though the file's first rows are counts: the in-memory "
                    "load would not read it as counts either. Fractional counts (SoupX, CellBender) are read with "
                    "PerturbationSchema(scale='counts'); a file mixing counts and log values must be written again from one")
        if getattr(self, "scale", None) == "log" and self.schema.scale == "auto" and x.nnz:
            from distgen.data.expression import LOG_MAX

            top = float(x.data.max())
            if top >= LOG_MAX:
                raise InputDataError(
                    f"{where} holds values up to {top:.4g}, though the file's first rows are log values (below {LOG_MAX}): the "
                    "in-memory load would not read it as log values either. Values normalised but not log-transformed need "
                    "log1p; a file mixing scales must be written again from one")

    def library_sizes(self, rows: np.ndarray) -> np.ndarray:
        """``[len(rows)]`` stored totals of the given rows over the genes ``normalize_total`` sums (``library_genes``, else
        the kept genes): their library sizes when the file holds counts (``scale == "counts"``)."""
        rows = np.asarray(rows, dtype=np.int64)
        summed = self._library[0] if self._library is not None else self.columns
        out = np.zeros(rows.size, dtype=np.float64)
        for i in range(0, rows.size, 16384):
            srt, inverse = np.unique(rows[i : i + 16384], return_inverse=True)
            x = self._stored(srt)
            x = x if summed is None else x[:, summed]
            out[i : i + 16384] = np.asarray(x.sum(axis=1, dtype=np.float64), dtype=np.float64).reshape(-1)[inverse.reshape(-1)]
        return out

    def close(self) -> None:
        if self._root is not None and hasattr(self._root, "close"):
            self._root.close()
        self._root = None
        self._ds = None  # anndata's sparse dataset holds the closed file: the next read opens both again

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_root": None, "_pid": -1, "_ds": None}

    # ------------------------------------------------------------------ labels
    def _build_labels(self, obs: pd.DataFrame, genes: list[str]) -> None:
        s = self.schema
        handle_missing_labels(obs, s, str(self.path), can_drop=False)  # rows are read by position: no dropping on disk
        cols = [*s.perturbation_cols, *([s.dose_col] if s.dose_col else [])]
        codes = np.stack([pd.factorize(obs[c].astype(str))[0] for c in cols], 1)
        _, first, inv = np.unique(codes, axis=0, return_index=True, return_inverse=True)
        small = obs.iloc[first].reset_index(drop=True)
        atoms = parse_atoms(small, s, genes)  # parsed once per distinct label, not per cell
        doses = parse_doses(small, s, atoms)
        ctx = context_labels(obs, s.context_cols)
        bat = batch_labels(obs, s.batch_col)
        ctx_names, ctx_codes = np.unique(ctx.astype(str), return_inverse=True)
        bat_names, bat_codes = np.unique(bat.astype(str), return_inverse=True)
        pert_vocab = tuple(sorted({a for t in atoms for a in t}))
        check_label_forms(obs, s, pert_vocab)
        for message in label_warnings(obs, s, genes, pert_vocab) + modality_warnings(obs, s) + pooled_context_warnings(obs, s):
            warn(message)
        self.info = DataInfo(tuple(genes), pert_vocab, tuple(ctx_names), tuple(bat_names), s.perturbation_type, "control")
        pidx = self.info.perturbation_index()
        width = max([len(a) for a in atoms] + [1])
        upert = np.full((len(atoms), width), PAD, dtype=np.int64)
        udose = np.zeros((len(atoms), width), dtype=np.float32)
        for i, (a, d) in enumerate(zip(atoms, doses)):
            upert[i, : len(a)] = [pidx[x] for x in a]
            udose[i, : len(a)] = d
        inv = inv.reshape(-1)
        self.condition_names = np.array([condition_string(a, s.combo_delimiter) for a in atoms], dtype=object)
        self.canonical_names = np.array([canonical(a, self.info.control_label) for a in atoms], dtype=object)  # joined by +
        slots = [label_slots(tuple(row), s) for row in small[list(s.perturbation_cols)].itertuples(index=False, name=None)]
        self.written_names = np.array([COMBO.join(dict.fromkeys(x for x in w if x is not None)) if a else self.info.control_label
                                       for w, a in zip(slots, atoms)], dtype=object)
        ctx_codes_ = ctx_codes.reshape(-1)
        seen = np.unique(np.stack([inv.reshape(-1), ctx_codes_], 1), axis=0)  # distinct (label, context): not a tuple per cell
        # a condition at several doses in a context: a population per dose, labelled atom@dose, as PerturbationData reads it
        self.dosed = s.dose_col is not None and not several_doses(self.condition_names[seen[:, 0]], ctx_names[seen[:, 1]],
                                                                   [doses[i] for i in seen[:, 0]]).empty
        self.legacy_labels: dict[str, str] = {}
        if self.dosed:
            check_dose_labels(s, {x for a in atoms for x in a})
            check_float32_doses(atoms, doses, s)
            self.condition_names = np.array([dose_label(a, d, s.combo_delimiter) for a, d in zip(atoms, doses)], dtype=object)
            # what cells_hash hashes (distgen.data.conditions.legacy_labels): a float32 dose's label as written before
            self.legacy_labels = legacy_labels(dict(zip(zip(atoms, doses), self.condition_names)), s.combo_delimiter)
            self.canonical_names = np.array([dose_label(a, d, COMBO) for a, d in zip(atoms, doses)], dtype=object)
        self.condition_codes = inv
        self.is_control = np.array([len(a) == 0 for a in atoms])[inv]
        if not self.is_control.any():
            raise InputDataError(f"{self.path}: no control cells (control_labels={list(s.control_labels)} in {list(s.perturbation_cols)})")
        # as in memory (PerturbationData): a group of fewer than min_cells cells is refused at load, a context with a single
        # control cell included (its perturbed groups would all be predicted from that one cell)
        check_min_cells(self.condition_names[inv], ctx, s.min_cells)
        self.labels = ConditionLabels(
            torch.from_numpy(upert[inv]), torch.from_numpy(udose[inv]), torch.from_numpy(ctx_codes.astype(np.int64)), torch.from_numpy(bat_codes.astype(np.int64))
        )

    def groups(self) -> list[np.ndarray]:
        """Row indices ``[n_k]`` of each perturbed group (condition x context x batch), sorted by key."""
        lab = self.labels
        key = self.condition_codes * (len(self.info.contexts) * len(self.info.batches)) + lab.context.numpy() * len(self.info.batches) + lab.batch.numpy()
        key = np.where(self.is_control, -1, key)
        order = np.argsort(key, kind="stable")
        bounds = np.flatnonzero(np.diff(key[order])) + 1
        return [g for g in np.split(order, bounds) if not self.is_control[g[0]]]


#: First entry of a zarr store's stamp that covers its nested entries (``file_stamp``); a stamp without it is the older,
#: top-level-only form, still checked as it was written (``stamp_matches``).
NESTED_STAMP = -2


def _top_stamp(path: Path) -> tuple[int, ...]:
    """Device, inode, size and modification time (ns) of ``path`` and, of a folder, of each entry at its top."""
    out: list[int] = []
    entries = [path]
    if path.is_dir():
        entries += sorted(path.iterdir())
    for p in entries:
        try:
            st = os.stat(p)
        except OSError:
            return (-1,)
        out += [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
    return tuple(out)


def _entry(rel: str, st: os.stat_result) -> bytes:
    return f"{rel}\x1f{st.st_ino}\x1f{st.st_size}\x1f{st.st_mtime_ns}\x1e".encode()


def _walk(path: Path) -> tuple[list[str], int, int]:
    """The folders below ``path`` (relative, in walk order) and two 63-bit digests of the name, inode, size and modification
    time of each folder and of each file below it; digests -1 when an entry cannot be read."""
    folders: list[str] = []
    hd, hf = hashlib.blake2b(digest_size=8), hashlib.blake2b(digest_size=8)
    todo = [path]
    try:
        while todo:
            folder = todo.pop()
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
            for e in entries:
                rel = os.path.relpath(e.path, path)
                st = os.stat(e.path, follow_symlinks=False)  # as _folder_digest reads it (DirEntry.stat: no inode on Windows)
                if e.is_dir(follow_symlinks=False):
                    todo.append(Path(e.path))
                    folders.append(rel)
                    hd.update(_entry(rel, st))
                else:
                    hf.update(_entry(rel, st))
    except OSError:
        return folders, -1, -1
    return folders, _int(hd), _int(hf)


def _int(h: Any) -> int:
    return int.from_bytes(h.digest(), "little") >> 1


def _folder_digest(path: Path, folders: Sequence[str]) -> int:
    """``_walk``'s folder digest from a known list of ``folders`` (one ``stat`` each, no listing); -1 when one is gone."""
    h = hashlib.blake2b(digest_size=8)
    try:
        for rel in folders:
            h.update(_entry(rel, os.stat(path / rel, follow_symlinks=False)))
    except OSError:
        return -1
    return _int(h)


def file_stamp(path: Path) -> tuple[int, ...]:
    """What tells a changed file from the one opened: device, inode, size and modification time (ns) of an ``.h5ad``;
    of a ``.zarr`` store, ``NESTED_STAMP``, then those of its folder and of each entry at its top (``obs``, ``X``,
    ``.zattrs``...: anndata writes a store again as a new folder), then a digest of every folder below (zarr writes a chunk
    to a temporary file renamed into its folder, and deletes an empty one: the folder's time changes) and a digest of
    every file below (a chunk rewritten in place: ``X/data/0``, ``obs/<col>/codes/0``, ``layers/counts/...``). A file
    modified in place within one tick of the file system's clock is not told apart. Cost: a listing and a ``stat`` of
    every entry of the store (20-25 ms for the 721 of a 200,000 x 2,000 CSR store; ``stamp_matches`` with the store's
    folders, at each read, 19 ``stat`` calls and the top entries: docs/reliability.md, "Storage round 2").
    """
    return store_stamp(path)[0]


def store_stamp(path: Path) -> tuple[tuple[int, ...], list[str]]:
    """``file_stamp(path)`` and the folders below a zarr store (``stamp_matches``' cheap check), in one walk."""
    top = _top_stamp(path)
    if top == (-1,) or not path.is_dir():
        return top, []
    folders, dirs, files = _walk(path)
    return (NESTED_STAMP, *top, dirs, files), folders


def stamp_matches(path: Path, stamp: tuple[int, ...], folders: Sequence[str] | None = None) -> bool:
    """Whether ``path`` still has ``stamp`` (``file_stamp``). A zarr stamp of the older form (top entries only, before
    ``NESTED_STAMP``: a ``DiskCells`` pickled by an older distgen) is checked as it was written, over the top entries.
    Given the store's ``folders`` (``store_stamp``), only its top entries and those folders are compared (a ``stat`` each:
    a chunk written through zarr, or added or removed, changes its folder; one rewritten in place is seen by the full
    check only)."""
    if not path.is_dir() or not stamp or stamp[0] != NESTED_STAMP:
        return _top_stamp(path) == tuple(stamp)
    if folders is None:
        return file_stamp(path) == tuple(stamp)
    return (NESTED_STAMP, *_top_stamp(path), _folder_digest(path, folders)) == tuple(stamp[:-1])


def cell_names(root: Any) -> pd.Index:
    """``[N]`` the cells' names (``obs_names``) of an open h5ad/zarr root, as text."""
    from anndata.io import read_elem

    obs = root["obs"]
    stored = np.asarray(read_elem(obs[obs.attrs.get("_index", "_index")]))
    return pd.Index(stored.astype(str) if stored.dtype.kind in "OUS" else [str(n) for n in stored], dtype=object)


_NORMALISED_IN: set[int] = set()  # processes that normalised rows here (the check below runs once in each)


def _refuse_inherited_openmp() -> None:
    """In a ``DataLoader`` worker forked from a process whose numba threads run on GNU OpenMP (scanpy's ``normalize_total``
    ran there), scanpy's next parallel kernel kills the worker ("fork() called from a process already using GNU OpenMP");
    the loader then said only that a worker "exited unexpectedly". Say why, and what to do, before that kernel runs."""
    from torch.utils.data import get_worker_info

    par = sys.modules.get("numba.np.ufunc.parallel")
    if get_worker_info() is None or par is None or not getattr(par, "_is_initialized", False):
        return
    if getattr(par, "_threading_layer", None) != "omp":
        return
    raise DistgenError(
        "this DataLoader worker was forked from a process whose numba threads run on GNU OpenMP (scanpy's normalize_total "
        "or another numba kernel ran there before the workers started), and the raw counts it reads are normalised by such "
        "a kernel, which would kill it: start Python with NUMBA_THREADING_LAYER=workqueue (or set os.environ"
        "['NUMBA_THREADING_LAYER'] = 'workqueue' before scanpy runs), or read with num_workers=0, or stream a file of "
        "log-normalised values")


def _log_normalize(x: sp.csr_matrix, target_sum: float) -> sp.csr_matrix:
    """Row-wise ``log1p(normalize_total)`` through scanpy (row-local: no statistic crosses cells)."""
    import anndata as ad
    import scanpy as sc

    if os.getpid() not in _NORMALISED_IN:
        _refuse_inherited_openmp()
        _NORMALISED_IN.add(os.getpid())

    from distgen.data.counts import deep_rows, exact_deep_rows

    deep = deep_rows(x)  # before scanpy scales x in place
    tmp = ad.AnnData(X=x)
    with warnings.catch_warnings():  # scanpy's "Some cells have zero counts", raw on stderr of --data: distgen says which
        warnings.filterwarnings("ignore", message="Some cells have zero counts")  # (check_empty_controls, as in memory)
        sc.pp.normalize_total(tmp, target_sum=target_sum)
    sc.pp.log1p(tmp)
    return exact_deep_rows(sp.csr_matrix(tmp.X, dtype=np.float32), deep, target_sum)  # a library past 2**24: float64 sums


def control_rows(cells: DiskCells, size: int, seed: int = 0, least: int = 1, within: np.ndarray | None = None) -> np.ndarray:
    """Sorted control rows of ``cells`` (of the rows ``within`` when given) kept in memory: all when at most ``size``,
    else a seeded sample of each (context, batch) in proportion to its size (at least ``least`` cells of each, all of a
    smaller one).

    The sample is drawn from each (context, batch)'s controls in the order of their values (``draw_order`` of their
    ``content_keys`` on ``cells``' genes, the rule of the control pools), so the same file with its rows shuffled keeps
    the same cells; every control is read once (a block of rows at a time) for its key when there are more than ``size``.
    """
    ctrl = np.flatnonzero(cells.is_control)
    if within is not None:
        ctrl = ctrl[np.isin(ctrl, within)]
    if ctrl.size <= size:
        return ctrl
    values = np.concatenate([content_keys(cells.read(ctrl[i : i + 16384]), cells.info.genes) for i in range(0, ctrl.size, 16384)])
    rng = np.random.default_rng([seed, 7])
    where = cells.labels.context.numpy()[ctrl] * len(cells.info.batches) + cells.labels.batch.numpy()[ctrl]
    keep = []
    for k in np.unique(where):
        mine = where == k
        rows = ctrl[mine][draw_order(values[mine])]
        n = min(rows.size, max(least, round(size * rows.size / ctrl.size)))
        keep.append(rng.choice(rows, n, replace=False))
    return np.sort(np.concatenate(keep))
