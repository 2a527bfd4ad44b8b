"""Leakage check of a ``Split`` against its ``PerturbationData``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from distgen.data.split import DuplicateCellWarning, LeakageError, Split
from distgen.data.splitters import between, dominates, seen_count
from distgen.errors import warn
from distgen.wording import counted, first_of

if TYPE_CHECKING:
    from distgen.data.dataset import PerturbationData


def check_split(split: Split, data: PerturbationData) -> None:
    """Raise ``LeakageError`` when test cells or test-fitted statistics reach training.

    Checks: the split belongs to ``data``; train/val/test are disjoint, in range and non-empty;
    no training or validation cell shares a held-out group with a test cell (for the split's kind:
    condition, context, (condition, context) pair or batch); combination splits hold exactly the
    promised number of seen constituents; every recorded fitted statistic (``data.fitted``) used
    training cells only.
    """
    split = split.labelled_as(data)  # an earlier split file's labels (dexa@0.30000001192092896) as the data's, when it is dosed
    if split.data_hash != data.cells_hash or split.n_cells != data.n_cells:
        raise LeakageError(
            f"split was made for dataset {split.data_hash} ({split.n_cells} cells), not this one ({data.cells_hash}, {data.n_cells} cells); "
            "remake the split for this data"
        )
    parts = {"train": split.train.numpy(), "val": split.val.numpy(), "test": split.test.numpy()}
    for name, idx in parts.items():
        if len(idx) and (idx.min() < 0 or idx.max() >= data.n_cells):
            raise LeakageError(f"split.{name} has indices outside [0, {data.n_cells})")
        if len(np.unique(idx)) != len(idx):
            raise LeakageError(f"split.{name} repeats cells")
    for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
        both = np.intersect1d(parts[a], parts[b])
        if len(both):
            raise LeakageError(f"{counted(len(both), 'cell')} {'is' if len(both) == 1 else 'are'} in both {a} and {b}: "
                               f"{first_of([str(n) for n in data.adata.obs_names[both]], 3, render=repr)}")
    names = data.adata.obs_names.to_numpy()
    dup = np.intersect1d(names[parts["train"]], names[parts["test"]])
    if len(dup):
        raise LeakageError(f"{counted(len(dup), 'cell name')} {'occurs' if len(dup) == 1 else 'occur'} in train and test "
                           f"({first_of([str(n) for n in dup], 3, render=repr, enclosed=True)}: duplicated cells in the AnnData)")
    ctrl = data.is_control
    test_pert = parts["test"][~ctrl[parts["test"]]]
    seen = np.concatenate([parts["train"], parts["val"]])
    seen_pert = seen[~ctrl[seen]]
    if len(test_pert) == 0:
        raise LeakageError("the test set has no perturbed cells (an empty split)")
    if len(parts["train"]) == 0:
        raise LeakageError("the training set is empty")
    _warn_duplicated_cells(data, test_pert, seen)

    cond, ctx, bat = data.conditions, data.contexts, data.batches
    base = getattr(data, "base_conditions", data.conditions)  # a condition without its doses: all doses of a held-out condition are held out
    delim = data.schema.combo_delimiter

    def atoms_of(c: str) -> tuple[str, ...]:
        return tuple(c.split(delim))

    def keys(idx: np.ndarray, *cols: np.ndarray) -> set[tuple[str, ...]]:
        return set(zip(*(c[idx] for c in cols)))

    kind = split.kind
    if kind in ("random_conditions", "unseen_single") or kind.startswith("combo_seen"):
        leaked = keys(test_pert, base) & keys(seen_pert, base)
        what = ("condition", "conditions")
    elif kind == "held_out_dose":
        leaked = keys(test_pert, cond, ctx) & keys(seen_pert, cond, ctx)
        what = ("(condition at its doses, context) population", "(condition at its doses, context) populations")
    elif kind == "held_out_context":
        leaked = keys(test_pert, ctx) & keys(seen_pert, ctx)
        what = ("context (perturbed cells)", "contexts (perturbed cells)")
    elif kind == "held_out_context_perturbation":
        leaked = keys(test_pert, base, ctx) & keys(seen_pert, base, ctx)
        what = ("(condition, context) pair", "(condition, context) pairs")
    elif kind == "held_out_batch":
        leaked = keys(test_pert, bat) & keys(seen_pert, bat)
        what = ("batch (perturbed cells)", "batches (perturbed cells)")
    else:
        raise LeakageError(f"unknown split kind {kind!r}")
    if leaked:
        one = len(leaked) == 1  # a key of one column is written as its label, not as a 1-tuple
        shown = first_of(sorted(leaked), 3, render=lambda k: repr(k[0]) if len(k) == 1 else repr(k))
        raise LeakageError(f"held-out {what[0] if one else what[1]} {shown} {'has' if one else 'have'} cells in train/val as well as test")
    # the held-out groups promised by the split must be the ones found in the data
    found = {(str(c), str(k)) for c, k in zip(cond[test_pert], ctx[test_pert])}
    if found != set(split.test_groups):
        raise LeakageError("split.test_groups do not match the conditions of its test cells; the file was edited or the data changed")

    if kind == "held_out_dose":
        _check_held_doses(split, data, test_pert, seen_pert)
    if kind == "unseen_single" or kind.startswith("combo_seen"):
        train_singles = {c for c in set(base[seen_pert]) if delim not in c}
        train_atoms = {a for c in set(base[seen_pert]) for a in atoms_of(c)}
        test_singles = {c for c in set(base[test_pert]) if delim not in c}
        if test_singles & train_atoms:
            raise LeakageError(f"held-out single(s) {first_of(sorted(test_singles & train_atoms), 3, render=repr)} appear in training "
                              "combinations")
        if kind.startswith("combo_seen"):
            k = int(kind[-1])
            bad = {c: seen_count(atoms_of(c), train_singles) for c in set(base[test_pert]) if delim in c}
            bad = {c: n for c, n in bad.items() if n != k and not set(atoms_of(c)) & test_singles}
            if bad:
                raise LeakageError(f"{kind}: test combination(s) {bad} do not have exactly {k} constituent(s) seen as singles")

    held = np.concatenate([parts["test"], parts["val"]])
    for stat, cells in data.fitted.items():
        bad_cells = np.intersect1d(np.asarray(cells), held)
        if len(bad_cells):
            raise LeakageError(
                f"statistic {stat!r} was fitted on {len(bad_cells)} validation/test cell(s); refit it on split.train only "
                "(e.g. highly_variable_genes(data, n_top, fit_on=split.train))"
            )


def _check_held_doses(split: Split, data: PerturbationData, test_pert: np.ndarray, seen_pert: np.ndarray) -> None:
    """A ``held_out_dose`` split keeps its promise: each held-out population's condition trains at another dose in its
    context, and its dose lies where ``test_doses`` says (``top``: above every training dose; ``interior``: between two;
    both in every slot of a combination)."""
    which = split.params.get("test_doses", "top")
    cond, ctx = data.conditions, data.contexts
    trained: dict[tuple[str, str], set[tuple[float, ...]]] = {}
    for c, k in {(str(c), str(k)) for c, k in zip(cond[seen_pert], ctx[seen_pert])}:
        trained.setdefault((data.base_condition(c), k), set()).add(data.dose_of(c)[1])
    for c, k in sorted({(str(c), str(k)) for c, k in zip(cond[test_pert], ctx[test_pert])}):
        b, d = data.base_condition(c), data.dose_of(c)[1]
        doses = trained.get((b, k), set())
        if not doses:
            raise LeakageError(f"held_out_dose: {c!r} in {k} is held out but {b!r} trains at no other dose there: a held-out dose "
                               "is of a condition the model has seen at its other doses")
        # judged slot by slot, a combination as interior_doses judges it: top is at or above every training dose in every slot
        top_ok = all(dominates(d, t) for t in doses)
        if which == "top" and not top_ok and len(d) > 1 and all(d > t for t in doses):
            raise LeakageError(_tuple_order_top(c, k, b, d, doses, data.dose_of(c)[0]))
        if (which == "top" and not top_ok) or (which == "interior" and not any(between(lo, d, hi) for lo in doses for hi in doses)):
            slots = ", in every slot" if len(d) > 1 else ""
            raise LeakageError(f"held_out_dose (test_doses={which}): {c!r} in {k} is not {'above' if which == 'top' else 'between'} the "
                               f"training doses of {b!r} there ({sorted(doses)}{slots}); the file was edited or the data changed (or, "
                               "for a combination's top dose, the split was made by a distgen that ordered dose pairs as tuples: "
                               "make the split again)")


def _tuple_order_top(label: str, context: str, base: str, dose: tuple[float, ...], trained: set[tuple[float, ...]],
                     atoms: tuple[str, ...]) -> str:
    """Why a split file holds out ``label`` in ``context`` as the top dose of the combination ``base`` though it is not
    above the training doses in every slot: it is the last of the condition's dose pairs in tuple order, which is how
    distgen picked a combination's top dose before it judged it slot by slot. A split made since never holds it out."""
    from distgen.data.conditions import dose_text

    higher = sorted(t for t in trained if not all(x >= y for x, y in zip(dose, t)))
    slot = next(i for i, (x, y) in enumerate(zip(dose, higher[0])) if y > x)
    pair = "+".join(dose_text(x) for x in higher[0])
    return (f"held_out_dose (test_doses=top): this split holds out {label!r} in {context} as the top dose of {base!r}, but "
            f"{base!r} trains there at {pair} ({'+'.join(atoms)}), higher in {atoms[slot]!r} ({dose_text(higher[0][slot])} "
            f"against {dose_text(dose[slot])}): the split was made by a distgen that took a combination's top dose as the last "
            "of its dose pairs in tuple order (first slot first). Its test set is not a top dose (the model trained at a "
            f"higher dose of {atoms[slot]!r} in this combination), so the scores of a run on it do not measure what "
            "test_doses: top promises. Make the split again from its data.split settings (kind: held_out_dose, test_doses: "
            "top; not this split file) and train again: a combination's top dose is now the pair at or above every other "
            "in every slot (a context without one trains all its doses; a condition without one anywhere is refused by name)")


#: Held-out cells with fewer nonzero values than this are not compared: near-empty cells coincide by chance.
MIN_NONZERO = 10
#: Rows hashed at a time (bounds the ``[rows, genes]`` uint64 buffer).
HASH_ROWS = 4096


def row_hashes(x: np.ndarray) -> np.ndarray:
    """``[n]`` uint64 hash of each row's values (``x [n, G]`` float32 or float64): rows of equal values hash alike.

    A sum of the values' bit patterns times fixed random odd multipliers, modulo 2^64 (integer arithmetic: exact, in
    any order); ``-0.0`` counts as ``0.0``. Two rows of different values collide with probability ~2^-64; callers
    confirm candidate pairs by comparing the rows.
    """
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    uint = np.uint32 if x.dtype == np.float32 else np.uint64
    mult = np.random.default_rng(0x5EED).integers(1, 2**63, size=x.shape[1], dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    out = np.empty(x.shape[0], dtype=np.uint64)
    for start in range(0, x.shape[0], HASH_ROWS):
        block = np.ascontiguousarray(x[start:start + HASH_ROWS]) + x.dtype.type(0)  # -0.0 -> 0.0
        out[start:start + HASH_ROWS] = (block.view(uint).astype(np.uint64) * mult).sum(1, dtype=np.uint64)
    return out


def identical_cells(x: np.ndarray, held: np.ndarray, seen: np.ndarray, min_nonzero: int = MIN_NONZERO) -> list[tuple[int, int]]:
    """``(held cell, seen cell)`` index pairs whose rows of ``x`` are equal, for held cells with at least ``min_nonzero``
    nonzero values (one seen cell per held cell)."""
    held = held[(x[held] != 0).sum(1) >= min_nonzero] if len(held) else held
    if len(held) == 0 or len(seen) == 0:
        return []
    seen_hash = row_hashes(x[seen])
    order = np.argsort(seen_hash, kind="stable")
    sorted_hash = seen_hash[order]
    held_hash = row_hashes(x[held])
    at = np.searchsorted(sorted_hash, held_hash)
    pairs = []
    for i in np.flatnonzero((at < len(sorted_hash)) & (sorted_hash[np.minimum(at, len(sorted_hash) - 1)] == held_hash)):
        j = at[i]
        while j < len(sorted_hash) and sorted_hash[j] == held_hash[i]:  # confirm by the values (a hash collision is not a pair)
            if np.array_equal(x[held[i]], x[seen[order[j]]]):
                pairs.append((int(held[i]), int(seen[order[j]])))
                break
            j += 1
    return pairs


def _warn_duplicated_cells(data: PerturbationData, test_pert: np.ndarray, seen: np.ndarray) -> None:
    """Warn when held-out perturbed cells have exactly the expression of training or validation cells under other names
    (cell names that repeat are refused before): the same cells twice in the file, the test scoring what training saw."""
    x = data.table.X.numpy()
    pairs = identical_cells(x, test_pert, seen)
    if not pairs:
        return
    names, cond = data.adata.obs_names, data.conditions
    shown = "; ".join(f"test {names[a]!r} ({cond[a]}) = {names[b]!r} ({cond[b]})" for a, b in pairs[:3])
    warn(f"{len(pairs)} of {len(test_pert)} held-out perturbed cells have exactly the expression of a training/validation "
         f"cell under another name (e.g. {shown}): the same cells twice in the file (files concatenated, cells relabelled)? "
         "A model that trained on them is scored on them. Keep each cell once before loading, e.g. with X = adata.X as a "
         "dense array: _, first = numpy.unique(X, axis=0, return_index=True); adata = adata[numpy.sort(first)]", DuplicateCellWarning)
