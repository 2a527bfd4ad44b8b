"""Leakage check of a ``Split`` against its ``PerturbationData``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from distgen.data.split import LeakageError, Split
from distgen.data.splitters import seen_count

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
            raise LeakageError(f"{len(both)} cell(s) are in both {a} and {b}, e.g. {data.adata.obs_names[both[:3]].tolist()}")
    names = data.adata.obs_names.to_numpy()
    dup = np.intersect1d(names[parts["train"]], names[parts["test"]])
    if len(dup):
        raise LeakageError(f"cell names {dup[:3].tolist()} occur in train and test (duplicated cells in the AnnData)")
    ctrl = data.is_control
    test_pert = parts["test"][~ctrl[parts["test"]]]
    seen = np.concatenate([parts["train"], parts["val"]])
    seen_pert = seen[~ctrl[seen]]
    if len(test_pert) == 0:
        raise LeakageError("the test set has no perturbed cells (an empty split)")
    if len(parts["train"]) == 0:
        raise LeakageError("the training set is empty")

    cond, ctx, bat = data.conditions, data.contexts, data.batches

    def keys(idx: np.ndarray, *cols: np.ndarray) -> set[tuple[str, ...]]:
        return set(zip(*(c[idx] for c in cols)))

    kind = split.kind
    if kind in ("random_conditions", "unseen_single") or kind.startswith("combo_seen"):
        leaked = keys(test_pert, cond) & keys(seen_pert, cond)
        what = "condition"
    elif kind == "held_out_context":
        leaked = keys(test_pert, ctx) & keys(seen_pert, ctx)
        what = "context (perturbed cells)"
    elif kind == "held_out_context_perturbation":
        leaked = keys(test_pert, cond, ctx) & keys(seen_pert, cond, ctx)
        what = "(condition, context) pair"
    elif kind == "held_out_batch":
        leaked = keys(test_pert, bat) & keys(seen_pert, bat)
        what = "batch (perturbed cells)"
    else:
        raise LeakageError(f"unknown split kind {kind!r}")
    if leaked:
        raise LeakageError(f"held-out {what} {sorted(leaked)[:3]} has cells in train/val as well as test")
    # the held-out groups promised by the split must be the ones found in the data
    found = {(str(c), str(k)) for c, k in zip(cond[test_pert], ctx[test_pert])}
    if found != set(split.test_groups):
        raise LeakageError("split.test_groups do not match the conditions of its test cells; the file was edited or the data changed")

    delim = data.schema.combo_delimiter
    if kind == "unseen_single" or kind.startswith("combo_seen"):
        train_singles = {c for c in set(cond[seen_pert]) if delim not in c}
        train_atoms = {a for c in set(cond[seen_pert]) for a in data.atoms_of(c)}
        test_singles = {c for c in set(cond[test_pert]) if delim not in c}
        if test_singles & train_atoms:
            raise LeakageError(f"held-out single(s) {sorted(test_singles & train_atoms)[:3]} appear in training combinations")
        if kind.startswith("combo_seen"):
            k = int(kind[-1])
            bad = {c: seen_count(data.atoms_of(c), train_singles) for c in set(cond[test_pert]) if delim in c}
            bad = {c: n for c, n in bad.items() if n != k and not set(data.atoms_of(c)) & test_singles}
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
