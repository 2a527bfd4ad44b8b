"""Held-out groups and their control cells: the one rule of what a prediction starts from.

A held-out condition in a context is predicted batch by batch (``Group``: condition x context x
batch), each from the control cells of its own context and batch; a batch without any control cell
of the context borrows the controls of the context's other batches (``Group.other_batches``).
``held_out_groups`` applies this rule to rows of any table (``Dataset.groups`` in memory, the
streaming predictor ``distgen.data.disk_predict.predict_to_disk`` on disk), and ``control_draw`` picks,
per group, which control cells of its pool a prediction of ``n`` cells starts from: positions in the pool
taken in the order of the cells' values (``draw_order``: ``distgen.seeds.content_keys``, the order the
ceiling's half-splits use), so the same cells in another row order of the file give the same draws. Both are
pure functions of labels and cell values, so the two paths give the same groups and the same draws.
``group_seed`` seeds a group's own random draws (a model's noise, drawn library sizes) from the run's
seed and the group's labels, so a group gets the same draws whichever other groups are predicted with it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from distgen.errors import InputDataError
from distgen.seeds import label_seed


@dataclass(frozen=True)
class Group:
    """One held-out condition in one context and batch: its real cells and the control cells it is predicted from.

    ``cells`` (ascending) and ``controls`` are row indices into the dataset; ``controls`` are in ``draw_order``
    (by their values), the order ``control_draw``'s positions refer to. ``condition`` is canonical (``A+B``).
    ``other_batches`` is True when the batch has no control cell of the context, so ``controls`` are
    control cells of the context from other batches (``Dataset.groups``).
    """

    condition: str
    context: str
    batch: str
    cells: np.ndarray
    controls: np.ndarray
    other_batches: bool = False


def group_seed(seed: int, condition: str, context: str, batch: str, stream: int = 0) -> int:
    """A 63-bit seed for the random draws of one (condition, context, batch) group, from ``seed`` and the labels only.

    Neither the group's position among the predicted groups nor the other groups enter it, so a condition
    predicted alone, in another order, or later beside new ones gets the same draws. ``stream`` keeps
    different uses apart (1: a model's sampling, 2: drawn library sizes).
    """
    return label_seed(seed, (condition, context, batch), stream)


def draw_order(keys: np.ndarray) -> np.ndarray:
    """Positions of a set of cells (a control pool, a capped group's cells) in the order of their values, from their ``keys``.

    ``keys``: ``distgen.seeds.content_keys`` of the cells (a split's picks give their names instead, which a split is
    tied to: ``distgen.data.splitters.make_split``). Ascending keys, so the order is the cells' and not the file's
    rows'; identical cells (equal keys) keep the given order and are interchangeable. ``control_draw``'s positions
    refer to a pool in this order.
    """
    return np.argsort(np.asarray(keys), kind="stable")


def control_draw(pool_size: int, n: int, condition: str, context: str, batch: str) -> np.ndarray:
    """Positions in a group's control pool (in ``draw_order``) of the ``n`` control cells its prediction starts from.

    The pool in a random order, repeated (each pass reshuffled) when ``n`` exceeds it, so no control is
    used twice before every one is used once. Seeded by the group's labels only: a model and every
    reference (baselines, ``distgen.pipeline.references``) read the same controls for the same cells,
    whatever the seed, so their scores differ by what they predict, not by which controls they drew.
    """
    if pool_size < 1:
        raise InputDataError(f"no control cells to predict {condition!r} @ {context!r} from")
    rng = np.random.default_rng(zlib.crc32(f"controls\x1f{condition}\x1f{context}\x1f{batch}".encode()))
    passes = -(-n // pool_size)
    return np.concatenate([rng.permutation(pool_size) for _ in range(passes)])[:n] if n else np.zeros(0, dtype=np.int64)


def held_out_groups(
    rows: np.ndarray,
    conditions: np.ndarray,
    contexts: np.ndarray,
    batches: np.ndarray,
    own_controls: Callable[[str, str | None], np.ndarray],
    keys: Callable[[np.ndarray], np.ndarray],
    max_cells: int | None = None,
    names: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[Group]:
    """The (condition, context, batch) groups of the perturbed ``rows``, sorted, with their control pools.

    Parameters
    ----------
    rows
        ``[n]`` row indices of the perturbed cells to predict.
    conditions, contexts, batches
        ``[N]`` per-row labels (canonical conditions) of the whole table ``rows`` index.
    own_controls
        ``(context, batch)`` -> sorted row indices of the control cells of that context and batch
        (``batch=None``: of the context, any batch); empty when there are none.
    keys
        Sorted rows -> their ``distgen.seeds.content_keys`` (on the genes predicted): each control pool is put in
        ``draw_order``, so that ``control_draw`` picks the same cells whatever the row order of the table. Asked for
        the control pools (and, without ``names``, for the cells of a capped group).
    max_cells
        At most this many cells per condition in a context, over its batches: a fixed random subset
        (seeded by the labels, drawn from the cells in the order of ``names``, so the same cells whatever the row order
        and however their values are stored), so the kept cells keep the batch mix of the real ones.
    names
        Sorted rows -> keys of the cells' names (``distgen.seeds.name_keys`` of ``obs_names``), asked for the cells of a
        (condition, context) only when ``max_cells`` caps it: the capped draw follows the names, so a capped group
        keeps the same cells whether their values are stored as counts or as log1p. None: ``keys`` (the values) order it.

    A group is predicted from ``own_controls(context, batch)``; when that is empty, from the union of
    the pools of the context's other batches among the groups, else from ``own_controls(context, None)``
    (``Group.other_batches`` is then True). No control cell of the context at all is an error.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cond_names, cond_codes = np.unique(np.asarray(conditions, dtype=str)[rows], return_inverse=True)
    ctx_names, ctx_codes = np.unique(np.asarray(contexts, dtype=str)[rows], return_inverse=True)
    pair = cond_codes.reshape(-1).astype(np.int64) * len(ctx_names) + ctx_codes.reshape(-1)  # sorts as (condition, context)
    order = np.argsort(pair, kind="stable")
    bounds = np.flatnonzero(np.diff(pair[order])) + 1
    bat = np.asarray(batches, dtype=str)
    found = []
    for members in np.split(order, bounds) if rows.size else []:
        cond, ctx = str(cond_names[pair[members[0]] // len(ctx_names)]), str(ctx_names[pair[members[0]] % len(ctx_names)])
        cells = rows[np.sort(members)]
        if max_cells is not None and len(cells) > max_cells:
            rng = np.random.default_rng(zlib.crc32(f"{cond}\x1f{ctx}".encode()))
            cells = np.sort(rng.choice(cells[draw_order((names or keys)(cells))], max_cells, replace=False))
        found += [(cond, ctx, str(b), cells[bat[cells] == b]) for b in sorted(set(bat[cells].tolist()))]

    def ordered(pool: np.ndarray) -> np.ndarray:
        return pool[draw_order(keys(pool))] if pool.size else pool

    pools = {(ctx, b): own_controls(ctx, b) for _, ctx, b, _ in found}
    drawn: dict[tuple[str, str | None], np.ndarray] = {k: ordered(p) for k, p in pools.items()}
    groups = []
    for cond, ctx, b, cells in found:
        pool = drawn[(ctx, b)]
        if pool.size == 0:
            if (ctx, None) not in drawn:  # one borrowed pool per context
                lent = [p for (c, _), p in pools.items() if c == ctx and p.size]
                drawn[(ctx, None)] = ordered(np.unique(np.concatenate(lent)) if lent else own_controls(ctx, None))
            pool = drawn[(ctx, None)]
        if pool.size == 0:
            raise InputDataError(f"no control cells of context {ctx!r} to predict {cond!r} from")
        groups.append(Group(cond, ctx, b, cells, pool, other_batches=pools[(ctx, b)].size == 0))
    return groups


__all__ = ["Group", "control_draw", "draw_order", "group_seed", "held_out_groups"]
