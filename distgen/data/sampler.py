"""``SetSampler``: batches of condition cell sets with matched control sets, split across ranks."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from distgen.config import InertSettingWarning
from distgen.data.matching import ControlMatcher, matchers
from distgen.errors import InputDataError, warn
from distgen.types import CellTable, SetBatch
from distgen.wording import counted

#: Which control -> control sets training adds (``data.control_sets``): ``auto`` (all of them when
#: some context or batch has no perturbed training cells, e.g. a held-out cell type, patient or batch
#: seen in training only through its controls; else none); ``uncovered`` (only those of such contexts
#: and batches: their embedding is trained, but then "control" and "held-out context" always come
#: together in training, and a model learns that the held-out context does not respond, see
#: docs/benchmarks.md); ``all``; ``none``.
CONTROL_SETS = ("auto", "uncovered", "all", "none")


def condition_groups(table: CellTable, control_sets: str = "none") -> tuple[list[Tensor], Tensor]:
    """Cell indices of each group (perturbation x context x batch) to train on, and their first cells ``[K]``.

    Perturbed groups always; control groups (target = control cells, condition = control) as
    ``control_sets`` says: ``"none"``, ``"uncovered"`` (those whose context or batch has no perturbed
    cells), ``"all"``, or ``"auto"`` (all when there are uncovered ones, else none).
    """
    if control_sets not in CONTROL_SETS:
        raise ValueError(f"control_sets must be one of {CONTROL_SETS}, got {control_sets!r}")
    lab = table.labels
    # a condition at several doses is a group per dose: the doses' codes last, so that a group's key, and the groups' order,
    # are those of (perturbation, context, batch) wherever each has one dose
    dose = torch.unique(lab.dose, dim=0, return_inverse=True)[1] if lab.dose.numel() else torch.zeros(len(lab.context), dtype=torch.long)
    key = torch.cat([lab.perturbation, lab.context[:, None], lab.batch[:, None], dose.reshape(-1, 1).to(lab.context.dtype)], 1)
    uniq, inv = torch.unique(key, dim=0, return_inverse=True)
    order = torch.argsort(inv, stable=True)
    counts = torch.bincount(inv, minlength=uniq.shape[0])
    is_ctrl = (uniq[:, : lab.perturbation.shape[1]] < 0).all(1)
    ctx, bat = uniq[:, lab.perturbation.shape[1]].tolist(), uniq[:, lab.perturbation.shape[1] + 1].tolist()
    pert = (~is_ctrl).tolist()
    seen_ctx = {k for k, p in zip(ctx, pert) if p}
    seen_bat = {b for b, p in zip(bat, pert) if p}
    uncovered = [k not in seen_ctx or b not in seen_bat for k, b in zip(ctx, bat)]
    mode = control_sets if control_sets != "auto" else "all" if any(uncovered) else "none"
    keep = [p or mode == "all" or (mode == "uncovered" and u) for p, u in zip(pert, uncovered)]
    groups = [g for g, ok in zip(torch.split(order, counts.tolist()), keep) if ok]
    return groups, torch.tensor([int(g[0]) for g in groups], dtype=torch.long)


class SetSamplerBase(IterableDataset):  # type: ignore[type-arg]
    """What the in-memory and the streaming set samplers share: argument checks, the matcher, epochs.

    Subclasses call ``_configure`` in ``__init__`` and ``_check_group`` for each group's (context,
    batch); ``set_epoch`` reseeds the next pass like ``DistributedSampler.set_epoch``.
    """

    m: int
    b: int
    seed: int
    rank: int
    world_size: int
    sampling: str
    matcher: ControlMatcher
    epoch: int

    def _configure(
        self,
        set_size: int,
        sets_per_batch: int,
        matcher: str | ControlMatcher,
        matcher_params: dict[str, Any] | None,
        seed: int,
        rank: int,
        world_size: int,
        sampling: str,
    ) -> None:
        if set_size < 1 or sets_per_batch < 1:
            raise ValueError(f"set_size and sets_per_batch must be >= 1, got {set_size} and {sets_per_batch}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        self.m, self.b, self.seed, self.rank, self.world_size, self.sampling = set_size, sets_per_batch, seed, rank, world_size, sampling
        if isinstance(matcher, str):
            matchers.verify(matcher)  # a plugin's first use: its cheap checks, naming it, before any batch
        self.matcher = matchers.build(matcher, **(matcher_params or {})) if isinstance(matcher, str) else matcher
        self.epoch = 0

    def _check_group(self, info: Any, ctx: int, bat: int, pool_context: Tensor, pool_batch: Tensor,
                     target: Tensor | None = None, pool_x: Tensor | None = None) -> None:
        """Fail early, naming the group, when the matcher finds no control for ``(ctx, bat)``."""
        try:
            self.matcher.match(ctx, bat, pool_context, pool_batch, 1, torch.Generator().manual_seed(0), target, pool_x)
        except ValueError as e:
            where = f"group (context {info.contexts[ctx]!r}, batch {info.batches[bat]!r}) cannot be matched"
            if isinstance(e, InputDataError) and bool((pool_context == ctx).any()):  # the context has controls, not in this batch
                none = not bool((pool_batch == bat).any())
                raise InputDataError(
                    f"{where}: the matcher draws control cells of the same context and batch, and batch {info.batches[bat]!r} has no "
                    f"control cell of context {info.contexts[ctx]!r}"
                    + (" nor of any other context: every training cell of that batch is perturbed (is the batch column confounded "
                       "with the perturbation?)" if none else "")
                    + "; set data.matcher: same_context (control cells of the context from any batch, as prediction borrows "
                    "them), or give a batch_col whose batches hold control cells"
                ) from e
            raise (InputDataError if isinstance(e, InputDataError) else ValueError)(f"{where}: {e}") from e  # the data's problem stays one (exit 2)

    def set_epoch(self, epoch: int) -> None:
        """Reseed for ``epoch`` (call once per epoch, like ``DistributedSampler``)."""
        self.epoch = epoch


#: Set sampling modes: each group equally often; groups in proportion to their cells; or every cell
#: once per epoch (``partition``: PerturbDiff's sampler).
SAMPLINGS = ("condition", "cell", "partition")


def replacement_problem(sampling: str, replacement: bool) -> str | None:
    """Why ``replacement`` cannot apply under ``sampling`` (None when it can): ``partition`` cuts every
    group into sets of distinct cells and fills only the last one with repeats, so it never reads it."""
    if replacement and sampling == "partition":
        return ("replacement=true has no effect with sampling='partition': partition never draws, it cuts every group "
                "into sets of its own cells once per epoch (only the last set of a group is filled up with repeats); "
                "set replacement: false, or sampling: condition (or cell) to draw sets with replacement")
    return None


class SetSampler(SetSamplerBase):
    """Iterable of ``SetBatch``: ``sets_per_batch`` sets of ``set_size`` cells of one condition each.

    Parameters
    ----------
    table
        Cells to sample from (usually ``data.table.subset(split.train)``); its control cells form
        the control pool unless ``controls`` is given.
    set_size
        ``m``: cells per set. Groups with fewer cells are padded (``target_mask`` False, zeros).
    sets_per_batch
        ``B`` sets per batch (per rank).
    matcher
        Registered control matcher name (``random``, ``same_batch``, ``same_context``, ``nearest``,
        ``ot``) or a ``ControlMatcher``.
    seed, rank, world_size
        Randomness depends only on ``(seed, epoch, global set index)``: the ranks take disjoint
        slices of one global sequence of sets, and their union equals the single-process sequence.
    sampling
        ``"condition"``: each group equally often (cycles through shuffled groups);
        ``"cell"``: groups in proportion to their cell counts;
        ``"partition"``: every cell once per epoch, as PerturbDiff's sampler: each group is
        shuffled, filled up to a multiple of ``m`` with cells of its own drawn with replacement,
        cut into sets, and the sets of all groups are shuffled.
    sets_per_epoch
        Global sets per epoch (default: the number of groups for ``condition``, cells / ``m`` for
        ``cell``, the number of sets of the partition for ``partition``), rounded up to a multiple
        of ``sets_per_batch * world_size`` so every rank gets the same number of batches.
    replacement
        Draw each set's ``m`` cells from its group with replacement (scDFM: every set is full, a
        small group repeats cells) instead of without (a smaller group is padded and masked).
    controls
        Optional separate control pool (a ``CellTable``; its control cells are used).
    control_sets
        Also train on control -> control sets (``CONTROL_SETS``): ``"auto"`` (all of them when some
        context or batch has only control cells, e.g. a held-out cell type; else none),
        ``"uncovered"`` (only those contexts and batches), ``"all"`` or ``"none"``.

    It is a ``torch.utils.data.IterableDataset``: ``DataLoader(sampler, batch_size=None,
    num_workers=k)`` builds batches in ``k`` background processes (worker ``w`` makes this rank's
    batches ``w, w + k, ...``; the loader interleaves them back into the same order).
    """

    def __init__(
        self,
        table: CellTable,
        set_size: int = 32,
        sets_per_batch: int = 4,
        matcher: str | ControlMatcher = "same_context",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        sampling: str = "condition",
        sets_per_epoch: int | None = None,
        controls: CellTable | None = None,
        matcher_params: dict[str, Any] | None = None,
        replacement: bool = False,
        control_sets: str = "none",
    ) -> None:
        self._configure(set_size, sets_per_batch, matcher, matcher_params, seed, rank, world_size, sampling)
        problem = replacement_problem(sampling, replacement)
        if problem:  # a warning, not a refusal: scdfm's replacement: true reaches data.sampling=partition from the preset
            warn(f"data.{problem}", InertSettingWarning)
        self.replacement = replacement
        self._partition_cache: tuple[int, list[tuple[int, Tensor]]] | None = None
        self.table = table
        self.groups, self.firsts = condition_groups(table, control_sets)
        if not bool((~table.is_control).any()):
            raise InputDataError("the table has no perturbed cells to sample sets from (is the split empty?)")
        pool_table = controls if controls is not None else table
        ctrl = torch.nonzero(pool_table.is_control).flatten()
        if ctrl.numel() == 0:
            raise InputDataError("the table has no control cells to match; keep controls in the training split or pass controls=")
        self.pool_x = pool_table.X[ctrl]
        self.pool_context = pool_table.labels.context[ctrl]
        self.pool_batch = pool_table.labels.batch[ctrl]
        self.sizes = torch.tensor([g.numel() for g in self.groups], dtype=torch.float64)
        default = {"condition": len(self.groups), "cell": max(1, int(self.sizes.sum()) // set_size),
                   "partition": sum(math.ceil(g.numel() / set_size) for g in self.groups)}[sampling]
        step = sets_per_batch * world_size
        self.sets_per_epoch = math.ceil((sets_per_epoch or default) / step) * step
        self._check_matchable()

    def _check_matchable(self) -> None:
        needs_x = self.matcher.capabilities.needs_expression
        for gi, first in enumerate(self.firsts.tolist()):
            ctx, bat = int(self.table.labels.context[first]), int(self.table.labels.batch[first])
            tgt = self.table.X[self.groups[gi][:1]] if needs_x else None
            self._check_group(self.table.info, ctx, bat, self.pool_context, self.pool_batch, tgt, self.pool_x if needs_x else None)

    def __len__(self) -> int:
        return self.sets_per_epoch // (self.b * self.world_size)

    def _schedule(self) -> Tensor:
        """``[sets_per_epoch]`` group index of every global set of this epoch."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        k = len(self.groups)
        if self.sampling == "partition":
            return torch.tensor([grp for grp, _ in self._partition()], dtype=torch.long)
        if self.sampling == "cell":
            return torch.multinomial(self.sizes, self.sets_per_epoch, replacement=True, generator=g)
        reps = math.ceil(self.sets_per_epoch / k)
        return torch.cat([torch.randperm(k, generator=g) for _ in range(reps)])[: self.sets_per_epoch]

    def _partition(self) -> list[tuple[int, Tensor]]:
        """This epoch's ``(group, cells [m])`` sets of ``sampling="partition"``, repeated to ``sets_per_epoch``."""
        if self._partition_cache is not None and self._partition_cache[0] == self.epoch:
            return self._partition_cache[1]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        sets: list[tuple[int, Tensor]] = []
        for gi, idx in enumerate(self.groups):
            cells = idx[torch.randperm(idx.numel(), generator=g)]
            short = -cells.numel() % self.m
            if short:  # fill the last set with the group's own cells, drawn with replacement
                cells = torch.cat([cells, idx[torch.randint(idx.numel(), (short,), generator=g)]])
            sets += [(gi, block) for block in cells.view(-1, self.m)]
        order = torch.randperm(len(sets), generator=g).tolist()
        sets = [sets[i] for i in order]
        sets = (sets * math.ceil(self.sets_per_epoch / len(sets)))[: self.sets_per_epoch]
        self._partition_cache = (self.epoch, sets)
        return sets

    def _set(self, group: int, global_index: int) -> tuple[Tensor, Tensor, Tensor]:
        """Target cell indices ``[m]`` (padded with index 0), mask ``[m]``, control pool indices ``[m]``."""
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + global_index)
        idx = self.groups[group]
        n = min(idx.numel(), self.m)
        if self.sampling == "partition":
            n, chosen = self.m, self._partition()[global_index][1]
        elif self.replacement:
            n, chosen = self.m, idx[torch.randint(idx.numel(), (self.m,), generator=g)]
        else:
            chosen = idx[torch.randperm(idx.numel(), generator=g)[:n]]
        mask = torch.zeros(self.m, dtype=torch.bool)
        mask[:n] = True
        cells = torch.zeros(self.m, dtype=torch.long)
        cells[:n] = chosen
        first = int(self.firsts[group])
        ctx, bat = int(self.table.labels.context[first]), int(self.table.labels.batch[first])
        needs_x = self.matcher.capabilities.needs_expression
        tgt = self.table.X[chosen] if needs_x else None
        ctl = self.matcher.match(ctx, bat, self.pool_context, self.pool_batch, n, g, tgt, self.pool_x if needs_x else None)
        if n < self.m:  # fill the control set to m from the same matched cells
            ctl = torch.cat([ctl, ctl[torch.randint(n, (self.m - n,), generator=g)]])
        return cells, mask, ctl

    def batch_indices(self, batch_number: int, schedule: Tensor | None = None) -> list[tuple[int, int, Tensor, Tensor, Tensor]]:
        """This rank's sets of batch ``batch_number``: ``(global index, group, cells, mask, controls)``."""
        sched = self._schedule() if schedule is None else schedule
        start = (batch_number * self.world_size + self.rank) * self.b
        return [(i, int(sched[i]), *self._set(int(sched[i]), i)) for i in range(start, start + self.b)]

    def batch(self, batch_number: int) -> SetBatch:
        """This rank's batch ``batch_number`` of the current epoch (random access; what ``__iter__`` yields)."""
        if not 0 <= batch_number < len(self):
            raise IndexError(f"batch {batch_number} out of range: an epoch has {counted(len(self), 'batch', 'batches')} per rank")
        return self._make_batch(self.batch_indices(batch_number))

    def _make_batch(self, sets: list[tuple[int, int, Tensor, Tensor, Tensor]]) -> SetBatch:
        cells = torch.stack([s[2] for s in sets])
        mask = torch.stack([s[3] for s in sets])
        ctl = torch.stack([s[4] for s in sets])
        target = self.table.X[cells] * mask[..., None]
        firsts = self.firsts[torch.tensor([s[1] for s in sets])]
        return SetBatch(
            target=target,
            target_mask=mask,
            control=self.pool_x[ctl],
            control_mask=torch.ones_like(mask),
            labels=self.table.labels.index(firsts),
            gene_ids=torch.arange(self.table.X.shape[1]),
        )

    def __iter__(self) -> Iterator[SetBatch]:
        sched = self._schedule()
        worker = get_worker_info()
        wid, nw = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        for bn in range(wid, len(self), nw):
            yield self._make_batch(self.batch_indices(bn, sched))
