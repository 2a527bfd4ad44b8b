"""Out-of-core cell sets: train and predict from an on-disk AnnData (h5ad or zarr) with bounded memory.

``DiskCells`` opens the file, reads ``obs``/``var`` (small) and leaves the expression matrix on disk;
rows are read through anndata's own ``anndata.io.sparse_dataset`` (CSR) or the h5py/zarr array
(dense). ``StreamingSetSampler`` is the out-of-core twin of ``SetSampler``: each epoch it cuts every
condition group into sets, assigns the sets to ranks disjointly, reads whole groups in chunks of at
most ``chunk_cells`` rows, and shuffles sets in a bounded buffer. Memory is bounded by
``chunk_cells + buffer_sets * set_size`` cells plus the control pool, whatever the file size.

It is a ``torch.utils.data.IterableDataset``: wrap it in ``DataLoader(sampler, batch_size=None,
num_workers=k)`` to read in background processes; workers split a rank's sets disjointly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch.utils.data import get_worker_info

from distgen.data.conditions import condition_string, parse_atoms, parse_doses
from distgen.data.matching import ControlMatcher
from distgen.data.sampler import SetSamplerBase
from distgen.data.schema import PerturbationSchema
from distgen.types import PAD, ConditionLabels, DataInfo, SetBatch


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

    Attributes
    ----------
    info
        Vocabularies (sorted, as ``PerturbationData`` builds them for the same columns).
    labels
        Per-cell ``ConditionLabels`` ``[N]`` (small: a few integers per cell).
    conditions, contexts, batches
        Per-cell canonical strings as codes: ``np.ndarray`` ``[N]`` of ints into ``*_names``.
    """

    def __init__(self, path: str | Path, schema: PerturbationSchema | None = None, genes: Sequence[str] | None = None) -> None:
        from anndata.io import read_elem

        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path} does not exist; write one with distgen.data.large_synthetic.write_large_synthetic or AnnData.write_h5ad")
        self.schema = schema or PerturbationSchema()
        self._root: Any = None
        self._pid = -1
        self._ds: tuple[int, Any] | None = None
        root = self._open()
        missing = [c for c in self.schema.required_columns() if c not in root["obs"]]
        if missing:
            raise KeyError(f"obs column(s) {missing} named in PerturbationSchema are missing from {self.path}; available: {sorted(root['obs'].keys())}")
        obs = pd.DataFrame({c: read_elem(root["obs"][c]) for c in self.schema.required_columns()})
        var_names = [str(g) for g in read_elem(root["var"]).index]
        self.n_cells = len(obs)
        self.columns: np.ndarray | None = None
        if genes is not None:
            pos = pd.Index(var_names).get_indexer(list(genes))
            if (pos < 0).any():
                raise KeyError(f"genes {[g for g, p in zip(genes, pos) if p < 0][:5]} are not in {self.path}")
            self.columns, var_names = pos, [str(g) for g in genes]
        self._describe_matrix(root)
        self._build_labels(obs, var_names)

    # ------------------------------------------------------------------ file access
    def _open(self) -> Any:
        """The root group, (re)opened once per process (h5py handles do not survive ``fork``)."""
        if self._root is None or self._pid != os.getpid():
            if self.path.suffix == ".zarr" or self.path.is_dir():
                import zarr

                self._root = zarr.open_group(str(self.path), mode="r")
            else:
                import h5py

                self._root = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._root

    def _elem(self) -> Any:
        src = self.schema.expression
        root = self._open()
        if src == "X":
            return root["X"]
        layer = src[7:] if src.startswith("layers/") else src
        if src.startswith("obsm/") or "layers" not in root or layer not in root["layers"]:
            raise KeyError(f"expression={src!r}: streaming reads 'X' or a layer ('layers/<name>') of {self.path}")
        return root["layers"][layer]

    def _describe_matrix(self, root: Any) -> None:
        elem = self._elem()
        enc = elem.attrs.get("encoding-type", "array")
        if enc == "csc_matrix":
            raise ValueError(
                f"{self.path}: the matrix is CSC, whose row reads touch the whole file. Convert it once to CSR "
                "(adata.X = adata.X.tocsr() and rewrite, or write_large_synthetic-style chunked CSR appends)"
            )
        self.sparse = enc == "csr_matrix"
        self._n_rows = self.n_cells
        first = self.read(np.arange(min(self.n_cells, 2000)), log=False)
        from distgen.data.expression import check_values, detect_scale

        check_values(first, self.schema.expression)
        found = detect_scale(first)
        if found == "normalized":
            raise ValueError(f"{self.path}: values are normalised but not log-transformed; apply log1p or stream the counts layer")
        declared = self.schema.scale
        if declared != "auto" and declared != found:
            raise ValueError(f"{self.path}: PerturbationSchema.scale={declared!r} but the values look like {found!r}; fix the schema")
        self.scale = found
        self.normalize = found == "counts" and self.schema.normalize

    def read(self, rows: np.ndarray, log: bool = True) -> sp.csr_matrix:
        """``[len(rows), G]`` CSR float32 of the given rows (any order; read in sorted order)."""
        srt, inverse = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
        elem = self._elem()
        if self.sparse:
            from anndata.io import sparse_dataset

            if self._ds is None or self._ds[0] != os.getpid():
                self._ds = (os.getpid(), sparse_dataset(elem))  # caches indptr: one per process
            mask = np.zeros(self._n_rows, dtype=bool)
            mask[srt] = True
            out = self._ds[1][mask]  # anndata reads each contiguous run of rows as one slice
        else:
            out = sp.csr_matrix(elem[srt] if hasattr(elem, "id") else elem.oindex[srt, :])
        out = sp.csr_matrix(out, dtype=np.float32)
        if self.columns is not None:
            out = out[:, self.columns]
        if log and self.normalize:
            out = _log_normalize(out, self.schema.target_sum)
        return out if srt.size == inverse.size and (np.diff(inverse) == 1).all() else out[inverse.reshape(-1)]

    def close(self) -> None:
        if self._root is not None and hasattr(self._root, "close"):
            self._root.close()
        self._root = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_root": None, "_pid": -1, "_ds": None}

    # ------------------------------------------------------------------ labels
    def _build_labels(self, obs: pd.DataFrame, genes: list[str]) -> None:
        s = self.schema
        cols = [*s.perturbation_cols, *([s.dose_col] if s.dose_col else [])]
        codes = np.stack([pd.factorize(obs[c].astype(str))[0] for c in cols], 1)
        _, first, inv = np.unique(codes, axis=0, return_index=True, return_inverse=True)
        small = obs.iloc[first].reset_index(drop=True)
        atoms = parse_atoms(small, s, genes)  # parsed once per distinct label, not per cell
        doses = parse_doses(small, s, atoms)
        ctx = _joined(obs, s.context_cols)
        bat = obs[s.batch_col].astype(str).to_numpy(dtype=object) if s.batch_col else np.full(len(obs), "all", dtype=object)
        ctx_names, ctx_codes = np.unique(ctx.astype(str), return_inverse=True)
        bat_names, bat_codes = np.unique(bat.astype(str), return_inverse=True)
        pert_vocab = tuple(sorted({a for t in atoms for a in t}))
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
        self.condition_codes = inv
        self.is_control = np.array([len(a) == 0 for a in atoms])[inv]
        if not self.is_control.any():
            raise ValueError(f"{self.path}: no control cells (control_labels={list(s.control_labels)} in {list(s.perturbation_cols)})")
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


def _joined(obs: pd.DataFrame, cols: tuple[str, ...]) -> np.ndarray:
    if not cols:
        return np.full(len(obs), "all", dtype=object)
    out = obs[cols[0]].astype(str).to_numpy(dtype=object)
    for c in cols[1:]:
        out = out + "|" + obs[c].astype(str).to_numpy(dtype=object)
    return out


def _log_normalize(x: sp.csr_matrix, target_sum: float) -> sp.csr_matrix:
    """Row-wise ``log1p(normalize_total)`` through scanpy (row-local: no statistic crosses cells)."""
    import anndata as ad
    import scanpy as sc

    tmp = ad.AnnData(X=x)
    sc.pp.normalize_total(tmp, target_sum=target_sum)
    sc.pp.log1p(tmp)
    return sp.csr_matrix(tmp.X, dtype=np.float32)


class StreamingSetSampler(SetSamplerBase):
    """Iterable of ``SetBatch`` read from disk: ``sets_per_batch`` sets of ``set_size`` cells each.

    Same contract as ``SetSampler`` (padded sets with a mask, matched controls by a registered
    matcher, deterministic under ``seed``, disjoint across ranks) for data that does not fit in memory.

    Parameters
    ----------
    source
        A ``DiskCells`` or a path to an ``.h5ad`` / ``.zarr`` (opened with ``schema``).
    set_size, sets_per_batch, matcher, matcher_params, seed, rank, world_size
        As in ``SetSampler``.
    sampling
        ``"cell"`` (default): an epoch cuts every group into sets of ``m`` cells, so every perturbed
        cell is seen once; ``"condition"``: one set of ``m`` random cells per group per epoch.
    chunk_cells
        Most rows read from disk at once (several small groups, or part of a large group).
    buffer_sets
        Sets held in the shuffle buffer; batches mix sets from about this many sets' worth of groups.
    control_pool
        Control cells kept in memory (CSR) as the matching pool, sampled per context once; all
        controls when there are fewer.

    Notes
    -----
    Each epoch, the global list of sets is shuffled under ``(seed, epoch)`` and rank ``r`` takes
    every ``world_size``-th set, truncated so that all ranks get the same number of whole batches
    (the few left-over sets are dropped, never duplicated, so ranks stay disjoint). A rank then
    reads its sets group by group (groups in a seeded random order) in chunks of ``chunk_cells``
    rows, and a seeded shuffle buffer mixes them into batches.
    """

    def __init__(
        self,
        source: DiskCells | str | Path,
        set_size: int = 32,
        sets_per_batch: int = 4,
        matcher: str | ControlMatcher = "same_context",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        sampling: str = "cell",
        schema: PerturbationSchema | None = None,
        chunk_cells: int = 16384,
        buffer_sets: int = 64,
        control_pool: int = 20000,
        matcher_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self._configure(set_size, sets_per_batch, matcher, matcher_params, seed, rank, world_size, sampling)
        if chunk_cells < 1 or buffer_sets < 0 or control_pool < 1:
            raise ValueError(f"need chunk_cells >= 1, buffer_sets >= 0, control_pool >= 1; got {chunk_cells}, {buffer_sets}, {control_pool}")
        self.cells = source if isinstance(source, DiskCells) else DiskCells(source, schema)
        self.chunk_cells, self.buffer_sets = chunk_cells, buffer_sets
        self.groups = self.cells.groups()
        if not self.groups:
            raise ValueError(f"{self.cells.path} has no perturbed cells to sample sets from")
        self.firsts = np.array([int(g[0]) for g in self.groups], dtype=np.int64)
        sizes = np.array([g.size for g in self.groups])
        total = int(np.ceil(sizes / set_size).sum()) if sampling == "cell" else len(self.groups)
        self.n_batches = total // world_size // sets_per_batch
        if self.n_batches == 0:
            raise ValueError(
                f"{total} sets per epoch cannot give every one of world_size={world_size} ranks a batch of "
                f"sets_per_batch={sets_per_batch}; lower set_size or sets_per_batch"
            )
        self.pool_rows = self._choose_pool(control_pool)
        lab = self.cells.labels
        self.pool_context, self.pool_batch = lab.context[self.pool_rows], lab.batch[self.pool_rows]
        self._pool: sp.csr_matrix | None = None
        self._check_matchable()

    def _choose_pool(self, size: int) -> torch.Tensor:
        """Control rows kept in memory: all, or a per-context proportional sample (sorted)."""
        ctrl = np.flatnonzero(self.cells.is_control)
        if ctrl.size <= size:
            return torch.from_numpy(ctrl)
        rng = np.random.default_rng([self.seed, 7])
        ctx = self.cells.labels.context.numpy()[ctrl]
        keep = []
        for c in np.unique(ctx):
            rows = ctrl[ctx == c]
            k = min(rows.size, max(self.m, round(size * rows.size / ctrl.size)))
            keep.append(rng.choice(rows, k, replace=False))
        return torch.from_numpy(np.sort(np.concatenate(keep)))

    def _check_matchable(self) -> None:
        if self.matcher.capabilities.get("needs_expression", False):
            return  # checked on the first batch: needs expression read from disk
        lab = self.cells.labels
        for ctx, bat in sorted({(int(lab.context[f]), int(lab.batch[f])) for f in self.firsts}):
            self._check_group(self.cells.info, ctx, bat, self.pool_context, self.pool_batch)

    def __len__(self) -> int:
        return self.n_batches

    @property
    def info(self) -> DataInfo:
        return self.cells.info

    def plan(self, worker: int = 0, num_workers: int = 1) -> list[tuple[int, np.ndarray]]:
        """This rank's (and worker's) sets of the epoch, ``(group, rows [n <= m])``, in read order."""
        rng = np.random.default_rng([self.seed, self.epoch])
        tasks: list[tuple[int, np.ndarray]] = []
        for k, rows in enumerate(self.groups):
            perm = rng.permutation(rows)
            if self.sampling == "condition":
                tasks.append((k, perm[: self.m]))
            else:
                tasks += [(k, perm[i : i + self.m]) for i in range(0, perm.size, self.m)]
        order = rng.permutation(len(tasks))[self.rank :: self.world_size][: self.n_batches * self.b]
        group_rank = rng.permutation(len(self.groups))
        order = order[np.lexsort((order, group_rank[[tasks[i][0] for i in order]]))]  # read group by group
        counts = [len(range(w, self.n_batches, num_workers)) * self.b for w in range(num_workers)]
        start = sum(counts[:worker])
        return [tasks[i] for i in order[start : start + counts[worker]]]

    def _pool_matrix(self) -> sp.csr_matrix:
        if self._pool is None:
            rows = self.pool_rows.numpy()
            parts = [self.cells.read(rows[i : i + self.chunk_cells]) for i in range(0, rows.size, self.chunk_cells)]
            self._pool = sp.vstack(parts, format="csr")
        return self._pool

    def __iter__(self) -> Iterator[SetBatch]:
        wi = get_worker_info()
        w, nw = (wi.id, wi.num_workers) if wi is not None else (0, 1)
        plan = self.plan(w, nw)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, w])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        pool = self._pool_matrix()
        pool_x = torch.from_numpy(pool.toarray()) if self.matcher.capabilities.get("needs_expression", False) else None
        buffer: list[tuple[int, sp.csr_matrix]] = []
        pending: list[tuple[int, sp.csr_matrix]] = []

        def pop() -> tuple[int, sp.csr_matrix]:
            i = int(rng.integers(len(buffer)))
            buffer[i], buffer[-1] = buffer[-1], buffer[i]
            return buffer.pop()

        for chunk in _chunked(plan, self.chunk_cells):
            x = self.cells.read(np.concatenate([rows for _, rows in chunk]))
            offsets = np.cumsum([0] + [rows.size for _, rows in chunk])
            buffer += [(k, x[offsets[j] : offsets[j + 1]]) for j, (k, _) in enumerate(chunk)]
            while len(buffer) > self.buffer_sets:
                pending.append(pop())
                if len(pending) == self.b:
                    yield self._batch(pending, pool, pool_x, gen)
                    pending = []
        while buffer:
            pending.append(pop())
            if len(pending) == self.b:
                yield self._batch(pending, pool, pool_x, gen)
                pending = []

    def _batch(self, sets: list[tuple[int, sp.csr_matrix]], pool: sp.csr_matrix, pool_x: torch.Tensor | None, gen: torch.Generator) -> SetBatch:
        b, m, g = len(sets), self.m, self.cells.info.n_genes
        target = torch.zeros(b, m, g)
        control = torch.zeros(b, m, g)
        mask = torch.zeros(b, m, dtype=torch.bool)
        lab = self.cells.labels
        for i, (k, x) in enumerate(sets):
            n = x.shape[0]
            dense = torch.from_numpy(x.toarray())
            target[i, :n], mask[i, :n] = dense, True
            first = int(self.firsts[k])
            ctl = self.matcher.match(int(lab.context[first]), int(lab.batch[first]), self.pool_context, self.pool_batch, n, gen, dense, pool_x)
            if n < m:  # fill the control set to m from the same matched cells
                ctl = torch.cat([ctl, ctl[torch.randint(n, (m - n,), generator=gen)]])
            control[i] = torch.from_numpy(pool[ctl.numpy()].toarray())
        return SetBatch(
            target=target,
            target_mask=mask,
            control=control,
            control_mask=torch.ones(b, m, dtype=torch.bool),
            labels=lab.index(torch.from_numpy(self.firsts[[k for k, _ in sets]])),
            gene_ids=torch.arange(g),
        )


def _chunked(plan: list[tuple[int, np.ndarray]], chunk_cells: int) -> Iterator[list[tuple[int, np.ndarray]]]:
    """Consecutive sets of ``plan`` grouped into reads of at most ``chunk_cells`` rows (one set at least)."""
    chunk: list[tuple[int, np.ndarray]] = []
    rows = 0
    for item in plan:
        if chunk and rows + item[1].size > chunk_cells:
            yield chunk
            chunk, rows = [], 0
        chunk.append(item)
        rows += item[1].size
    if chunk:
        yield chunk


class StreamBatches:
    """The trainer's ``BatchSource`` over a file on disk: ``batch(step, shard, n_shards)``.

    Shard ``s`` of ``n_shards`` (ranks x accumulation micro-batches) reads with its own
    ``StreamingSetSampler(rank=s, world_size=n_shards)``, so shards are disjoint; step ``k`` is batch
    ``k % len`` of epoch ``k // len``. Steps asked in order are streamed; a jump (a resumed run)
    re-plans that epoch and skips ahead, so a resume sees exactly the batches it would have seen.

    Parameters
    ----------
    source
        A ``DiskCells`` or a path (opened with ``schema``).
    set_size, sets_per_batch, seed
        As for ``TableBatches``: ``sets_per_batch`` is the global number of sets per step.
    num_workers
        Background reader processes per shard (``torch.utils.data.DataLoader``); 0 reads inline.
    sampler_params
        More ``StreamingSetSampler`` arguments (``matcher``, ``chunk_cells``, ``buffer_sets``, ...).
    """

    def __init__(
        self,
        source: DiskCells | str | Path,
        set_size: int = 32,
        sets_per_batch: int = 4,
        seed: int = 0,
        schema: PerturbationSchema | None = None,
        num_workers: int = 0,
        **sampler_params: Any,
    ) -> None:
        self.cells = source if isinstance(source, DiskCells) else DiskCells(source, schema)
        self.set_size, self.sets_per_batch, self.seed = set_size, sets_per_batch, seed
        self.num_workers, self.sampler_params = num_workers, sampler_params
        self._streams: dict[tuple[int, int], tuple[StreamingSetSampler, Iterator[SetBatch] | None, int]] = {}

    @property
    def info(self) -> DataInfo:
        return self.cells.info

    def sampler(self, shard: int = 0, n_shards: int = 1) -> StreamingSetSampler:
        if self.sets_per_batch % n_shards:
            raise ValueError(f"sets_per_batch={self.sets_per_batch} does not split into {n_shards} equal shards; make it a multiple")
        key = (shard, n_shards)
        if key not in self._streams:
            s = StreamingSetSampler(self.cells, self.set_size, self.sets_per_batch // n_shards, seed=self.seed, rank=shard, world_size=n_shards, **self.sampler_params)
            self._streams[key] = (s, None, -1)
        return self._streams[key][0]

    def batch(self, step: int, shard: int = 0, n_shards: int = 1) -> SetBatch:
        s = self.sampler(shard, n_shards)
        _, it, last = self._streams[(shard, n_shards)]
        epoch, index = divmod(step, len(s))
        if it is None or last != step - 1 or index == 0:
            s.set_epoch(epoch)
            loader = torch.utils.data.DataLoader(s, batch_size=None, num_workers=self.num_workers) if self.num_workers else s
            it = iter(loader)
            for _ in range(index):
                next(it)
        out = next(it)
        self._streams[(shard, n_shards)] = (s, it, step)
        return out


def predict_to_disk(
    model: Any,
    source: DiskCells | str | Path,
    out: str | Path,
    set_size: int = 256,
    sets_per_call: int = 8,
    matcher: str | ControlMatcher = "same_context",
    seed: int = 0,
    schema: PerturbationSchema | None = None,
    control_pool: int = 20000,
) -> Path:
    """Generate ``set_size`` cells for every perturbed group of an on-disk AnnData, written chunk by chunk.

    Each group (condition x context x batch) of ``source`` is predicted from ``set_size`` matched
    control cells of the in-memory control pool, ``sets_per_call`` groups per ``model.predict``
    call; generated rows are appended to ``out`` (dense ``X``, h5ad) as they come, followed by the
    pool's real control cells, in the layout of Arc Institute's ``cell-eval run``
    (``obs['target_gene']``, control label ``non-targeting``, ``obs['celltype']``).
    Peak memory is one call's cells plus the control pool, whatever the number of groups.
    """
    import h5py
    from anndata.io import write_elem

    from distgen.data.predictions import CELL_EVAL_CELLTYPE_COL, CELL_EVAL_CONTROL, CELL_EVAL_PERT_COL

    sampler = StreamingSetSampler(source, set_size, 1, matcher, seed, sampling="condition", schema=schema, control_pool=control_pool)
    cells, info, lab = sampler.cells, sampler.cells.info, sampler.cells.labels
    pool = sampler._pool_matrix()
    gen = torch.Generator().manual_seed(seed)
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    conds: list[str] = []
    ctxs: list[str] = []
    kinds: list[str] = []
    with h5py.File(tmp, "w") as f:
        f.attrs["encoding-type"], f.attrs["encoding-version"] = "anndata", "0.1.0"
        x = f.create_dataset("X", shape=(0, info.n_genes), maxshape=(None, info.n_genes), dtype="float32", chunks=(max(1, min(set_size, 1024)), info.n_genes))
        x.attrs["encoding-type"], x.attrs["encoding-version"] = "array", "0.2.0"

        def append(rows: np.ndarray) -> None:
            n0 = x.shape[0]
            x.resize(n0 + rows.shape[0], axis=0)
            x[n0:] = rows

        with torch.no_grad():
            for start in range(0, len(sampler.groups), sets_per_call):
                ks = list(range(start, min(start + sets_per_call, len(sampler.groups))))
                firsts = torch.from_numpy(sampler.firsts[ks])
                idx = [sampler.matcher.match(int(lab.context[c]), int(lab.batch[c]), sampler.pool_context, sampler.pool_batch, set_size, gen) for c in firsts]
                control = torch.stack([torch.from_numpy(pool[i.numpy()].toarray()) for i in idx])
                pred = model.predict(control, torch.ones(len(ks), set_size, dtype=torch.bool), lab.index(firsts))
                append(pred.reshape(-1, info.n_genes).float().cpu().numpy())
                for c in firsts.tolist():
                    conds += [str(cells.condition_names[cells.condition_codes[c]])] * set_size
                    ctxs += [info.contexts[int(lab.context[c])]] * set_size
                    kinds += ["predicted"] * set_size
        for i in range(0, pool.shape[0], sampler.chunk_cells):
            append(pool[i : i + sampler.chunk_cells].toarray())
        conds += [CELL_EVAL_CONTROL] * pool.shape[0]
        ctxs += [info.contexts[int(c)] for c in sampler.pool_context]
        kinds += ["control"] * pool.shape[0]
        obs = pd.DataFrame(
            {CELL_EVAL_PERT_COL: pd.Categorical(conds), CELL_EVAL_CELLTYPE_COL: pd.Categorical(ctxs), "distgen_kind": pd.Categorical(kinds)},
            index=pd.Index([f"cell{i}" for i in range(len(conds))], dtype=object),
        )
        write_elem(f, "obs", obs)
        write_elem(f, "var", pd.DataFrame(index=pd.Index(list(info.genes), dtype=object)))
    tmp.replace(out)
    return out
