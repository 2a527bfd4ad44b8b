"""Batching rows, both codes run: scDFM's data preparation and per-step batches (``src/data_process/data.py``'s
``Data``, ``TrainSampler``, ``PerturbationDataset``, as ``run.py``'s ``__main__`` chains them) on a real dataset, and
PerturbDiff's cell-set sampler and control pairing (``src/data/sampler.py``'s ``CellSetBatchSampler``,
``src/data/dataset/dataset_core.py``'s ``mapping_cells``, driven without Lightning), each against distgen's
``TableBatches`` with the preset's ``data:`` settings on the same cells."""

from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from benchmarks.parity.common import Row, exact, same_law
from benchmarks.parity.shim import function_from, official_tree

#: the shared Norman file (perturbench's devel subset: 500 genes, 34 conditions, K562), else the bundled Norman subset
#: (the same layout); any file with ``condition`` (``A``, ``A+B``, ``control``) will do
SHARED_NORMAN = Path("/work/shared/data/norman2019_mcfaline2023_perturbench_devel/perturbench_devel.h5ad")


def norman() -> Path:
    """The real dataset the scDFM batching rows run on: the shared Norman file where present, else the bundled one."""
    from distgen.data.bundled import path

    return SHARED_NORMAN if SHARED_NORMAN.is_file() else Path(path("norman_k562.h5ad"))
#: steps drawn a side (one condition a step in both codes)
SCDFM_STEPS = 1500
#: HVGs of the official preparation on this 500-gene file (``run.sh``'s 5,000 on the full Norman panel)
N_TOP, INFER_TOP = 200, 100


def _official_norman(path: Path, folder: Path):
    """``norman.h5ad`` in the official layout (``condition`` ``A+ctrl`` / ``A+B`` / ``ctrl``, ``control`` 1 for controls)
    from a file in distgen's (``condition`` ``A`` / ``A+B`` / ``control``)."""
    import anndata as ad

    a = ad.read_h5ad(path)
    cond = a.obs["condition"].astype(str)
    a.obs["condition"] = [("ctrl" if c == "control" else c if "+" in c else f"{c}+ctrl") for c in cond]
    a.obs["control"] = (cond == "control").astype(int).to_numpy()
    a.write_h5ad(folder / "norman.h5ad")
    return a


def scdfm_rows(repo: Path, data: Path | None = None, steps: int = SCDFM_STEPS) -> list[Row]:
    """scDFM's preparation (HVGs with the perturbed genes forced in, the 5-fold double split, fold 0) and
    ``PerturbationDataset``'s batches (``batch_size`` 48) run on ``data``; distgen's ``TableBatches`` with the ``scdfm``
    preset's ``data:`` and ``train.sets_per_batch`` on the same training cells. Rows: each step's content (48 target
    cells of one training condition, 48 control cells), the law of the step's condition, the law of the targets' repeats
    within a step (cells drawn with replacement), the same for the control cells, and the gene panel rule."""
    data = norman() if data is None else data
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # the official code prints and warns as it goes
        warnings.simplefilter("ignore")
        return _scdfm_rows(repo, data, steps)


def _scdfm_rows(repo: Path, data: Path, steps: int) -> list[Row]:
    import scanpy as sc

    with tempfile.TemporaryDirectory() as tmp, official_tree(repo) as imp:
        folder = Path(tmp)
        raw = _official_norman(data, folder)
        utils = imp("src.utils.utils")
        import os
        import pickle
        from random import shuffle

        utils_ns: dict = {"sc": sc, "np": np, "os": os, "pickle": pickle, "torch": torch, "shuffle": shuffle, "Dataset": torch.utils.data.Dataset,
                    "build_gene_coexpression_graph": utils.build_gene_coexpression_graph, "sorted_pad_mask": utils.sorted_pad_mask}
        ns = function_from(repo / "src" / "data_process" / "data.py", ("Data", "TrainSampler", "TestDataset", "PerturbationDataset"), utils_ns)
        manager = ns["Data"](str(folder))
        manager.load_data("norman")
        np.random.seed(0)
        manager.process_data(n_top_genes=N_TOP, infer_top_gene=INFER_TOP, split_method="additive", fold=0, use_negative_edge=True, k=30)
        train_sampler, _, _ = manager.load_flow_data(batch_size=48)
        dataset = ns["PerturbationDataset"](train_sampler, 48)
        obs = train_sampler.adata.obs
        cell_cond = obs["perturbation_covariates"].to_numpy()
        name_to_row = {n: i for i, n in enumerate(train_sampler.cells_name)}
        conditions = sorted(str(c) for c in train_sampler._perturbation_covariates)
        code = {c: i for i, c in enumerate(conditions)}
        np.random.seed(1)
        theirs_cond, theirs_rep, theirs_ctrl_rep, bad = [], [], [], 0
        for i in range(steps):
            item = dataset[i]
            tgt = [name_to_row[n] for n in item["tgt_cell_id"]]
            src = [name_to_row[n] for n in item["src_cell_id"]]
            conds = {str(cell_cond[j]) for j in tgt}
            bad += _bad_step(tgt, src, conds, code, cell_cond)
            theirs_cond.append(code.get(next(iter(conds)), -1))
            theirs_rep.append(48 - len(set(tgt)))
            theirs_ctrl_rep.append(48 - len(set(src)))
        official_genes = list(manager.adata.var_names)
        train_rows = obs.index
        adata_train = raw[train_rows].copy()
        train_cond = cell_cond

    rows = []
    ours_cond, ours_rep, ours_ctrl_rep, ours_bad = _distgen_scdfm_batches(adata_train, train_cond, conditions, steps)
    rows.append(exact("scDFM", "batch content on real data, both codes run: 48 target cells of one training condition + 48 control cells a step",
                      bad == 0 and ours_bad == 0,
                      f"{data.parent.name}: {len(conditions)} training conditions, {int((train_cond == 'control+control').sum())} "
                      f"training controls; {steps} steps a side, {bad} official and {ours_bad} distgen steps otherwise"))
    k = len(conditions)
    rows.append(same_law("scDFM", "condition of a step (official np.random.choice per step, distgen data.sampling condition)",
                         torch.tensor(ours_cond), torch.tensor(theirs_cond), k,
                         "distgen visits each condition once per pass in a shuffled order (documented), the same marginal law"))
    bins = 16  # repeated target cells within a step: 0..14, 15 or more
    rows.append(same_law("scDFM", "repeated target cells within a step (48 drawn with replacement from the condition's cells)",
                         torch.tensor(ours_rep).clamp(max=bins - 1), torch.tensor(theirs_rep).clamp(max=bins - 1), bins,
                         f"mean repeats distgen {np.mean(ours_rep):.2f}, official {np.mean(theirs_rep):.2f}"))
    rows.append(same_law("scDFM", "repeated control cells within a step (48 drawn with replacement from the training controls)",
                         torch.tensor(ours_ctrl_rep).clamp(max=bins - 1), torch.tensor(theirs_ctrl_rep).clamp(max=bins - 1), bins,
                         f"mean repeats distgen {np.mean(ours_ctrl_rep):.2f}, official {np.mean(theirs_ctrl_rep):.2f}"))
    rows.append(_gene_panel(raw, official_genes))
    return rows


def _bad_step(tgt: list[int], src: list[int], conds: set[str], code: dict[str, int], cell_cond: np.ndarray) -> int:
    """1 unless a step holds 48 target cells of one training condition (a set of control cells as targets, as
    ``data.control_sets`` would add, is not one) and 48 control cells."""
    return int(len(tgt) != 48 or len(src) != 48 or len(conds) != 1 or bool(conds - set(code))
               or any(cell_cond[j] != "control+control" for j in src))


def _data_section(preset: dict):
    """The preset's ``data:`` section as training reads it (defaults filled in): the batches below are built from it
    with every sampler setting training passes, so that a preset key the rows did not name still reaches them."""
    from distgen.data.section import data_section
    from distgen.train.loop import DATASET_KEYS

    return data_section({k: v for k, v in (preset.get("data") or {}).items() if k not in DATASET_KEYS})


def _distgen_scdfm_batches(adata_train, train_cond: np.ndarray, conditions: list[str], steps: int):
    """distgen's batches of the ``scdfm`` preset on the official training cells: each cell's row index is its only gene
    (the batches carry values, so a cell is known by its value); the same conditions."""
    from distgen.config import load_config
    from distgen.data.batches import TableBatches
    from distgen.types import CellTable, ConditionLabels, DataInfo

    preset = load_config("scdfm")
    ds = _data_section(preset)
    atoms = sorted({a for c in conditions for a in c.split("+") if a != "control"})
    index = {a: i for i, a in enumerate(atoms)}
    pert = torch.full((len(train_cond), 2), -1, dtype=torch.long)
    for i, c in enumerate(train_cond):
        for j, a in enumerate(x for x in str(c).split("+") if x != "control"):
            pert[i, j] = index[a]
    n = len(train_cond)
    labels = ConditionLabels(pert, (pert >= 0).float(), torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long))
    info = DataInfo(genes=("cell",), perturbations=tuple(atoms))
    table = CellTable(torch.arange(n, dtype=torch.float32)[:, None], labels, info)
    source = TableBatches(table, ds.set_size, int(preset["train"]["sets_per_batch"]), ds.matcher, 0, control_sets=ds.control_sets,
                          **ds.sampler_options())
    code = {c: i for i, c in enumerate(conditions)}
    cond, rep, ctrl_rep, bad = [], [], [], 0
    for step in range(steps):
        b = source.batch(step)
        tgt = b.target[0, b.target_mask[0], 0].long().tolist()
        src = b.control[0, b.control_mask[0], 0].long().tolist()
        conds = {str(train_cond[j]) for j in tgt}
        bad += _bad_step(tgt, src, conds, code, train_cond)
        cond.append(code.get(next(iter(conds)), -1))
        rep.append(48 - len(set(tgt)))
        ctrl_rep.append(48 - len(set(src)))
    return cond, rep, ctrl_rep, bad


def _gene_panel(raw, official_genes: list[str]) -> Row:
    """The official gene rule (scanpy ``highly_variable_genes`` on every cell, test conditions' included, then the
    perturbed genes forced in) against the preset's (no selection: the file's genes; documented in docs/scdfm.md)."""
    from distgen.config import load_config

    perturbed = {a for c in raw.obs["condition"].astype(str) for a in c.split("+") if a != "ctrl"}
    forced = sorted(perturbed & set(official_genes))
    hvg = load_config("scdfm")["data"].get("hvg")
    ok = hvg in (None, 0) and len(official_genes) >= N_TOP
    return exact("scDFM", "gene panel: official top-N HVGs of all cells (held-out ones included) + perturbed genes; preset: the file's genes "
                 "(documented)", ok, f"official {len(official_genes)} genes ({N_TOP} HVGs + {len(official_genes) - N_TOP} perturbed genes "
                 f"forced in; {len(forced)} perturbed genes in the panel); preset data.hvg {hvg}: all {raw.n_vars}")


#: PerturbDiff toy layout: (perturbation, cell type, batch) group sizes, control cells per (cell type, batch), set size
PD_GROUPS = {(p, c, b): 5 + 3 * p + 4 * c + 7 * b for p in range(3) for c in range(2) for b in range(2)}
#: (more controls a pool than cells a set, so that drawing a set's controls without replacement is possible and seen)
PD_CONTROLS, PD_SET, PD_EPOCHS = 12, 8, 40


def _quiet_logger():
    """The official sampler's logger, silenced (it warns about its own arguments on every epoch)."""
    import logging

    logger = logging.getLogger("benchmarks.parity.official_sampler")
    logger.disabled = True
    return logger


class _Args(SimpleNamespace):
    """``data_args`` as the official sampler reads it (attributes, and ``in`` for optional keys)."""

    def __contains__(self, key: str) -> bool:
        return hasattr(self, key)


def perturbdiff_rows(repo: Path, epochs: int = PD_EPOCHS) -> list[Row]:
    """The official ``CellSetBatchSampler`` (``use_cell_set`` cells a set; Lightning's ``set_epoch`` called by hand each
    epoch, as its fit loop does) and ``mapping_cells`` (one control cell per perturbed cell) on a toy layout of
    ``PD_GROUPS``, against distgen's ``TableBatches`` with the ``perturbdiff`` preset's ``data:`` (``sampling:
    partition``, ``matcher: same_batch`` with replacement) on the same cells. Rows: every epoch's sets (one group a
    set, the sets a group gets, every cell once plus fill from its own group), and the control pairing's law."""
    import math
    from collections.abc import Iterator
    from typing import Optional

    import torch.distributed as dist
    from torch.utils.data import Dataset, Sampler

    # the sampler reads omegaconf only to refuse a DictConfig set size (omegaconf need not be installed here)
    omegaconf_standin = SimpleNamespace(dictconfig=SimpleNamespace(DictConfig=type("DictConfig", (), {})))
    ns = function_from(repo / "src" / "data" / "sampler.py", ("DistributedCellSetFixPairingBatchSampler", "CellSetBatchSampler"),
                       {"math": math, "np": np, "omegaconf": omegaconf_standin, "dist": dist, "logger": _quiet_logger(),
                        "Sampler": Sampler, "Dataset": Dataset, "Optional": Optional, "Iterator": Iterator, "Triplet": tuple})
    core = function_from(repo / "src" / "data" / "dataset" / "dataset_core.py", ("mapping_cells",), {"np": np})
    # the cells: perturbed ones group by group, then PD_CONTROLS controls per (cell type, batch)
    pert, ctype, batch = [], [], []
    for (p, c, b), n in PD_GROUPS.items():
        pert += [p] * n
        ctype += [c] * n
        batch += [b] * n
    n_pert = len(pert)
    for c in range(2):
        for b in range(2):
            pert += [-1] * PD_CONTROLS
            ctype += [c] * PD_CONTROLS
            batch += [b] * PD_CONTROLS
    pert_a, ct_a, b_a = np.array(pert), np.array(ctype), np.array(batch)
    ctrl_local = np.nonzero(pert_a < 0)[0]
    perturbed_local = np.nonzero(pert_a >= 0)[0]
    groups = {}
    for key in PD_GROUPS:
        p, c, b = key
        groups[key] = np.nonzero((pert_a[perturbed_local] == p) & (ct_a[perturbed_local] == c) & (b_a[perturbed_local] == b))[0]
    ctrl_groups = {(c, b): np.nonzero((ct_a[ctrl_local] == c) & (b_a[ctrl_local] == b))[0] for c in range(2) for b in range(2)}
    ds = "toy"
    dataset = SimpleNamespace(
        data_args=_Args(use_cell_set=PD_SET, mapping_strategy="random"), dataset_path_map={ds: "toy.h5"},
        grouped_pert_data_indices={ds: groups}, control_type={ds: "control"},
        data_indices={ds: {"perturb": perturbed_local, "control": ctrl_local}},
        grouped_num_cell={ds: {k: len(v) for k, v in ctrl_groups.items()}}, grouped_data_indices={ds: ctrl_groups},
        meta_cache=SimpleNamespace(_cache={"toy.h5": SimpleNamespace(cell_type_codes=ct_a, batch_codes=b_a)}))
    dataset._compute_index = lambda name, gidx: (name, int(dataset.data_indices[name]["perturb"][gidx]))
    sampler = ns["CellSetBatchSampler"](dataset, shuffle=True, seed=0)
    key_of = {i: (int(pert_a[i]), int(ct_a[i]), int(b_a[i])) for i in range(len(pert_a))}
    np.random.seed(2)
    theirs_sets, theirs_ctrl, theirs_rep = [], [], []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        cells = [local for _, local, _ in sampler]
        sets = [cells[i:i + PD_SET] for i in range(0, len(cells), PD_SET)]
        theirs_sets.append(sets)
        for s in sets:
            pairs = [(key_of[j], int(core["mapping_cells"](dataset, ds, j))) for j in s]
            theirs_ctrl += pairs
            theirs_rep.append(len(pairs) - len({ctl for _, ctl in pairs}))
    ours_sets, ours_ctrl, ours_rep = _distgen_partition(pert_a, ct_a, b_a, epochs)
    rows = []
    problems = {side: _partition_problems(sets_by_epoch, key_of, n_pert) for side, sets_by_epoch in (("official", theirs_sets), ("distgen", ours_sets))}
    rows.append(exact("PerturbDiff", "cell sets of every epoch, both codes run (official CellSetBatchSampler): one (perturbation, cell type, batch) "
                      "group a set, ceil(n / 8) sets a group, every cell once and the fill from its own group",
                      not problems["official"] and not problems["distgen"],
                      f"{len(PD_GROUPS)} groups of {min(PD_GROUPS.values())}-{max(PD_GROUPS.values())} cells, {epochs} epochs a side, "
                      f"{sum(len(s) for s in theirs_sets)} official and {sum(len(s) for s in ours_sets)} distgen sets; "
                      + ("; ".join(f"{k}: {', '.join(v[:3])}" for k, v in problems.items() if v) or "no set otherwise")))
    def codes(pairs):
        # the control's position in its (cell type, batch) pool; a control of another cell type or batch is impossible
        out = []
        for (_, c, b), ctl in pairs:
            pool = ctrl_local[ctrl_groups[(c, b)]]
            out.append(int(np.nonzero(pool == ctl)[0][0]) if ctl in pool else PD_CONTROLS)
        return torch.tensor(out)
    rows.append(same_law("PerturbDiff", "control cell paired with each perturbed cell (official mapping_cells vs distgen matcher same_batch): "
                         "its position in the cell type and batch's control pool (another pool impossible)",
                         codes(ours_ctrl), codes(theirs_ctrl), PD_CONTROLS))
    rows.append(same_law("PerturbDiff", "repeated control cells within a set (each perturbed cell's control drawn on its own, with "
                         f"replacement, from a pool of {PD_CONTROLS})", torch.tensor(ours_rep), torch.tensor(theirs_rep), PD_SET,
                         f"mean repeats distgen {np.mean(ours_rep):.2f}, official {np.mean(theirs_rep):.2f}"))
    return rows


def _partition_problems(sets_by_epoch, key_of, n_pert: int) -> list[str]:
    """What breaks the partition law in one side's sets: a set of two groups, a group with another number of sets than
    ``ceil(n / m)``, a cell missing from its epoch."""
    out = []
    for epoch, sets in enumerate(sets_by_epoch):
        per_group: dict = {}
        seen = set()
        for s in sets:
            keys = {key_of[j] for j in s}
            if len(keys) != 1 or len(s) != PD_SET:
                out.append(f"epoch {epoch}: a set of {len(s)} cells from {len(keys)} groups")
                continue
            per_group[next(iter(keys))] = per_group.get(next(iter(keys)), 0) + 1
            seen |= set(s)
        for key, n in PD_GROUPS.items():
            if per_group.get(key, 0) != -(-n // PD_SET):
                out.append(f"epoch {epoch}: group {key} {per_group.get(key, 0)} sets, not {-(-n // PD_SET)}")
        if len(seen) != n_pert:
            out.append(f"epoch {epoch}: {n_pert - len(seen)} cells never drawn")
    return out


def _distgen_partition(pert_a, ct_a, b_a, epochs: int):
    """distgen's sets and control pairs of the ``perturbdiff`` preset's data settings on the toy layout (a cell's row
    index is its only gene, so a batch's values name its cells)."""
    from distgen.config import load_config
    from distgen.data.batches import TableBatches
    from distgen.types import CellTable, ConditionLabels, DataInfo

    ds = _data_section(load_config("perturbdiff"))
    n = len(pert_a)
    p = torch.tensor(pert_a)[:, None]
    labels = ConditionLabels(p, (p >= 0).float(), torch.tensor(ct_a), torch.tensor(b_a))
    table = CellTable(torch.arange(n, dtype=torch.float32)[:, None], labels, DataInfo(genes=("cell",), perturbations=("P0", "P1", "P2"),
                                                                                   contexts=("c0", "c1"), batches=("b0", "b1")))
    source = TableBatches(table, PD_SET, 1, ds.matcher, 0, control_sets=ds.control_sets, **ds.sampler_options())  # the toy's set size
    per_epoch = source.steps_per_epoch
    key_of = {i: (int(pert_a[i]), int(ct_a[i]), int(b_a[i])) for i in range(n)}
    sets_by_epoch, pairs, repeats = [], [], []
    for epoch in range(epochs):
        sets = []
        for k in range(per_epoch):
            b = source.batch(epoch * per_epoch + k)
            cells = b.target[0, b.target_mask[0], 0].long().tolist()
            ctls = b.control[0, b.control_mask[0], 0].long().tolist()
            sets.append(cells)
            pairs += [(key_of[c], ctl) for c, ctl in zip(cells, ctls)]
            repeats.append(len(ctls) - len(set(ctls)))
        sets_by_epoch.append(sets)
    return sets_by_epoch, pairs, repeats
