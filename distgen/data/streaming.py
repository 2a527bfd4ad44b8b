"""Out-of-core cell sets: train and predict from an on-disk AnnData (h5ad or zarr) with bounded memory.

``DiskCells`` (``distgen.data.disk``) opens the file and reads rows on demand; ``predict_to_disk`` and ``disk_groups``
(``distgen.data.disk_predict``) predict from such a file. ``StreamingSetSampler``
is the out-of-core twin of ``SetSampler``: each epoch it cuts every condition group into sets, assigns the sets to ranks disjointly, reads whole groups in chunks of at
most ``chunk_cells`` rows, and shuffles sets in a bounded buffer. Memory is bounded by
``chunk_cells + buffer_sets * set_size`` cells plus the control pool, whatever the file size.

It is a ``torch.utils.data.IterableDataset``: wrap it in ``DataLoader(sampler, batch_size=None,
num_workers=k)`` to read in background processes; workers split a rank's sets disjointly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import get_worker_info

from distgen.data.disk import DiskCells, control_rows
from distgen.data.disk_predict import disk_groups, predict_to_disk
from distgen.data.matching import ControlMatcher
from distgen.data.sampler import SetSamplerBase
from distgen.data.schema import PerturbationSchema
from distgen.errors import InputDataError
from distgen.types import DataInfo, SetBatch
from distgen.wording import counted

__all__ = ["DiskCells", "StreamBatches", "StreamingSetSampler", "control_rows", "disk_groups", "name_ranks", "predict_to_disk"]


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
    rows
        The file rows it may read (perturbed and control), e.g. a split's training cells
        (``distgen.data.disk_split.split_rows``); ``None``: every row. Sets and the control pool are cut from
        these rows only, so no other cell's values reach a batch.
    ranks
        ``[N]`` each row's place in the order of the cells' names (``name_ranks``; read from the file when not given):
        each group's cells and the control pool are drawn from in that order, so the same file with its rows shuffled
        gives the same batches.

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
        rows: np.ndarray | torch.Tensor | None = None,
        ranks: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        if sampling == "partition":
            raise ValueError("the streaming sampler supports sampling='condition' or 'cell', not 'partition' (in-memory data only)")
        self._configure(set_size, sets_per_batch, matcher, matcher_params, seed, rank, world_size, sampling)
        if chunk_cells < 1 or buffer_sets < 0 or control_pool < 1:
            raise ValueError(f"need chunk_cells >= 1, buffer_sets >= 0, control_pool >= 1; got {chunk_cells}, {buffer_sets}, {control_pool}")
        self.cells = source if isinstance(source, DiskCells) else DiskCells(source, schema)
        self.chunk_cells, self.buffer_sets = chunk_cells, buffer_sets
        self.rows = None if rows is None else _checked_rows(rows, self.cells.n_cells)
        self.groups = self.cells.groups()
        if self.rows is not None:
            inside = [g[np.isin(g, self.rows)] for g in self.groups]
            self.groups = [g for g in inside if g.size]
        if not self.groups:
            where = "" if self.rows is None else f" among the {counted(self.rows.size, 'row')} given"
            raise InputDataError(f"{self.cells.path} has no perturbed cells{where} to sample sets from")
        ranks = name_ranks(self.cells) if ranks is None else np.asarray(ranks, dtype=np.int64)  # not kept: workers need none
        if ranks.shape != (self.cells.n_cells,):
            raise ValueError(f"ranks must give each of the file's {self.cells.n_cells} rows its place, got shape {ranks.shape}")
        lab, info = self.cells.labels, self.cells.info
        self.groups = sorted((g[np.argsort(ranks[g], kind="stable")] for g in self.groups),  # by labels, then names
                             key=lambda g: (str(self.cells.canonical_names[self.cells.condition_codes[g[0]]]),
                                            str(info.contexts[int(lab.context[g[0]])]), str(info.batches[int(lab.batch[g[0]])])))
        self.firsts = np.array([int(g[0]) for g in self.groups], dtype=np.int64)
        sizes = np.array([g.size for g in self.groups])
        total = int(np.ceil(sizes / set_size).sum()) if sampling == "cell" else len(self.groups)
        self.n_batches = total // world_size // sets_per_batch
        if self.n_batches == 0:
            raise ValueError(
                f"{counted(total, 'set')} per epoch cannot give every one of world_size={world_size} ranks a batch of "
                f"sets_per_batch={sets_per_batch}; lower set_size or sets_per_batch"
            )
        self.pool_rows = self._choose_pool(control_pool, ranks)
        self.pool_context, self.pool_batch = lab.context[self.pool_rows], lab.batch[self.pool_rows]
        self._pool: sp.csr_matrix | None = None
        self._check_matchable()

    def _choose_pool(self, size: int, ranks: np.ndarray) -> torch.Tensor:
        """Control rows kept in memory (``control_rows``), in the order of their names (``ranks``)."""
        rows = control_rows(self.cells, size, self.seed, self.m, within=self.rows)
        if rows.size == 0:  # only with rows given: a file without control cells is refused when opened
            given = 0 if self.rows is None else self.rows.size
            raise ValueError(f"{self.cells.path} has no control cells among the {counted(given, 'row')} given")
        return torch.from_numpy(rows[np.argsort(ranks[rows], kind="stable")])

    def _check_matchable(self) -> None:
        if self.matcher.capabilities.needs_expression:
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
        pool_x = torch.from_numpy(pool.toarray()) if self.matcher.capabilities.needs_expression else None
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


def name_ranks(cells: DiskCells) -> np.ndarray:
    """``[N]`` each row's place in the order of the cells' names (``obs_names``; equal names keep their row order).

    The streaming sampler draws each group's cells and its control pool in this order, as ``Dataset.by_name`` orders
    the in-memory training cells, so a file with its rows shuffled trains on the same batches. Reads the names only
    (per million cells about 1 s to read them and 1.5 s to sort them, once per StreamBatches).
    """
    from anndata.io import read_elem

    obs = cells._open()["obs"]
    stored = np.asarray(read_elem(obs[obs.attrs.get("_index", "_index")]))
    names = stored.astype(str) if stored.dtype.kind in "OUS" else np.asarray([str(n) for n in stored], dtype=str)  # zarr: StringDType
    ranks = np.empty(names.size, dtype=np.int64)
    ranks[np.argsort(names, kind="stable")] = np.arange(names.size, dtype=np.int64)
    return ranks


def _checked_rows(rows: np.ndarray | torch.Tensor, n_cells: int) -> np.ndarray:
    """``rows`` as sorted unique int64 row indices, each in ``[0, n_cells)``."""
    out = np.unique(np.asarray(rows, dtype=np.int64))
    if out.size and (out[0] < 0 or out[-1] >= n_cells):
        raise ValueError(f"rows must be indices into the file's {n_cells} cells; got {out[0]}..{out[-1]}")
    return out


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
    rows
        The rows to train on, e.g. ``split_rows(cells, disk_split(cells, kind=...))`` (a split's training cells, as
        ``distgen.data.disk_split`` makes it): held-out conditions and cells are then never read. ``None`` (default):
        every cell of the file, which is a leak unless the file holds training cells only.
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
        rows: np.ndarray | torch.Tensor | None = None,
        **sampler_params: Any,
    ) -> None:
        self.cells = source if isinstance(source, DiskCells) else DiskCells(source, schema)
        self.rows = None if rows is None else _checked_rows(rows, self.cells.n_cells)
        self.set_size, self.sets_per_batch, self.seed = set_size, sets_per_batch, seed
        self.num_workers, self.sampler_params = num_workers, sampler_params
        self._streams: dict[tuple[int, int], tuple[StreamingSetSampler, Iterator[SetBatch] | None, int]] = {}
        self._ranks: np.ndarray | None = None  # name_ranks, read once for every shard's sampler

    @property
    def info(self) -> DataInfo:
        return self.cells.info

    def sampler(self, shard: int = 0, n_shards: int = 1) -> StreamingSetSampler:
        if self.sets_per_batch % n_shards:
            raise ValueError(f"sets_per_batch={self.sets_per_batch} does not split into {n_shards} equal shards; make it a multiple")
        key = (shard, n_shards)
        if key not in self._streams:
            params = dict(self.sampler_params)
            if params.get("ranks") is None:
                if self._ranks is None:
                    self._ranks = name_ranks(self.cells)
                params["ranks"] = self._ranks
            s = StreamingSetSampler(self.cells, self.set_size, self.sets_per_batch // n_shards, seed=self.seed, rank=shard, world_size=n_shards,
                                   rows=self.rows, **params)
            self._streams[key] = (s, None, -1)
        return self._streams[key][0]

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch: step ``k`` is batch ``k % steps_per_epoch`` of epoch ``k // steps_per_epoch``."""
        return len(self.sampler(0, 1))

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
