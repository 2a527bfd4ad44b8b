"""``distgen predict``: generate the held-out conditions of a run in the cell-eval layout.

For every (condition, context) group of the chosen split, the model generates as many cells as the
group has real cells, from control cells of the same context (held-out controls when the split has
them, else training controls), in sets of ``data.set_size`` cells. Group ``i`` is drawn under a
seed from ``(seed, i)``, so under torchrun each rank takes every ``world``-th group and the merged
file equals the single-process one.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from distgen.config import ConfigError, load_yaml
from distgen.models.generator import build_model
from distgen.train import distributed as D
from distgen.train.batches import mix_seed
from distgen.train.checkpoint import CheckpointError, load_checkpoint
from distgen.train.data_section import RunData, data_section, load_run_data
from distgen.train.device import select_device, setup_backends


@dataclass
class Group:
    """One condition to generate: its label, context, real cell indices and control pool."""

    condition: str
    context: str
    cells: np.ndarray
    controls: np.ndarray


def split_groups(rd: RunData, part: str = "test") -> list[Group]:
    """The perturbed (condition, context) groups of split part ``part`` with their control pools."""
    if part not in ("train", "val", "test"):
        raise ConfigError(f"--split must be train, val or test, got {part!r}")
    data, split = rd.data, rd.split
    idx = getattr(split, part).numpy()
    ctrl_mask = data.is_control
    pert = idx[~ctrl_mask[idx]]
    if pert.size == 0:
        raise ValueError(f"split part {part!r} has no perturbed cells to predict")
    held_ctrl = idx[ctrl_mask[idx]]
    train_ctrl = split.train.numpy()[ctrl_mask[split.train.numpy()]]
    groups = []
    keys = sorted({(str(data.conditions[i]), str(data.contexts[i])) for i in pert})
    for cond, ctx in keys:
        cells = pert[(data.conditions[pert] == cond) & (data.contexts[pert] == ctx)]
        pool = held_ctrl[data.contexts[held_ctrl] == ctx]
        if pool.size == 0:
            pool = train_ctrl[data.contexts[train_ctrl] == ctx]
        if pool.size == 0:
            raise ValueError(f"no control cells of context {ctx!r} to predict {cond!r} from")
        groups.append(Group(cond, ctx, cells, pool))
    return groups


def gene_panel(rd: RunData, groups: list[Group], spec: str | None) -> np.ndarray | None:
    """Column indices of the genes to predict: ``None``/``"all"``, ``"hvg:N"`` or a file of gene names.

    ``hvg:N`` takes the ``N`` most variable genes of the groups' real cells and their control cells
    (scDFM's evaluation panel: the 1,000 most variable genes of test and control cells).
    """
    if spec is None or spec == "all":
        return None
    if spec.startswith("hvg:"):
        from distgen.data.preprocess import hvg_indices

        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            raise ConfigError(f"--genes hvg:N needs an integer N, got {spec!r}") from None
        cells = np.unique(np.concatenate([*(g.cells for g in groups), *(g.controls for g in groups)]))
        return hvg_indices(rd.data.table.X[torch.from_numpy(cells)].numpy(), n)
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"--genes must be 'all', 'hvg:N' or a file of gene names, got {spec!r} (no such file)")
    names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    index = rd.info.gene_index()
    unknown = [n for n in names if n not in index]
    if unknown:
        raise ValueError(f"--genes {spec}: {len(unknown)} gene(s) are not in the run's genes, e.g. {unknown[:5]}")
    return np.array(sorted({index[n] for n in names}))


@torch.no_grad()
def generate_group(model: nn.Module, rd: RunData, group: Group, index: int, set_size: int, seed: int, device: torch.device,
                   genes: np.ndarray | None = None) -> np.ndarray:
    """``[n_real, G]`` (or ``[n_real, len(genes)]``) generated cells for one group (deterministic in ``(seed, index)``)."""
    n = len(group.cells)
    k = math.ceil(n / set_size)
    g = torch.Generator().manual_seed(mix_seed(seed, index))
    pick = torch.from_numpy(group.controls)[torch.randint(len(group.controls), (k * set_size,), generator=g)]
    control = rd.data.table.X[pick].reshape(k, set_size, -1).to(device)
    labels = rd.data.labels_for([group.condition] * k, [group.context] * k).to(device)
    torch.manual_seed(mix_seed(seed, index, 1))
    mask = torch.ones(k, set_size, dtype=torch.bool, device=device)
    if genes is not None and "genes" in inspect.signature(model.predict).parameters:  # type: ignore[arg-type]
        out = model.predict(control, mask, labels, genes=torch.from_numpy(genes).to(device))  # type: ignore[operator]
    else:
        out = model.predict(control, mask, labels)  # type: ignore[operator]
        out = out if genes is None else out[..., torch.from_numpy(genes).to(out.device)]
    return out.reshape(k * set_size, -1)[:n].float().cpu().numpy()


def load_run_model(run_dir: Path, rd: RunData, checkpoint: str | Path | None, weights: str, device: torch.device) -> nn.Module:
    """The run's model with checkpoint weights (EMA weights unless ``weights='raw'``)."""
    config = load_yaml(run_dir / "config.yaml")
    info_file = run_dir / "info.json"
    if info_file.exists():
        rd.data.check_genes(json.loads(info_file.read_text())["genes"])
    ckpt = load_checkpoint(checkpoint or run_dir, weights_only=True)
    model = build_model(config["model"], rd.info, rd.seen_perturbations())
    if weights not in ("ema", "raw"):
        raise ConfigError(f"--weights must be ema or raw, got {weights!r}")
    state = ckpt.ema if weights == "ema" and ckpt.ema is not None else ckpt.model
    missing = set(model.state_dict()) - set(ckpt.model)  # type: ignore[attr-defined]
    if missing:
        raise CheckpointError(f"checkpoint {ckpt.path} does not fit the run's model: missing {sorted(missing)[:5]}")
    model.load_state_dict({**ckpt.model, **state})  # type: ignore[attr-defined]
    return model.to(device).eval()  # type: ignore[attr-defined,no-any-return]


def predict_run(
    run_dir: str | Path,
    out: str | Path,
    part: str = "test",
    checkpoint: str | Path | None = None,
    weights: str = "ema",
    real: str | Path | None = None,
    seed: int | None = None,
    genes: str | None = None,
) -> Any:
    """Generate split ``part`` of a run into ``out`` (cell-eval layout); ``real`` writes the truth too.

    ``genes`` restricts prediction (and the written files) to a panel (``gene_panel``).
    Returns the prediction AnnData on rank 0 (None on other ranks).
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.yaml); train one with distgen train ... --out {run_dir}")
    config = load_yaml(run_dir / "config.yaml")
    ds = data_section(config.get("data"))
    split_file = run_dir / "split.json"
    rd = load_run_data(ds, split_file if split_file.exists() else None)
    _check_data_hash(run_dir, rd)
    env = D.env_from_torchrun()
    device = select_device(config.get("train", {}).get("device", "auto"), env.local_rank)
    setup_backends(device, bool(config.get("train", {}).get("tf32", True)))
    env = D.init_from_env(device)
    seed = int(config.get("train", {}).get("seed", 0)) if seed is None else seed
    model = load_run_model(run_dir, rd, checkpoint, weights, device)
    groups = split_groups(rd, part)
    panel = gene_panel(rd, groups, genes)
    mine = {i: generate_group(model, rd, g, i, ds.set_size, seed, device, panel) for i, g in enumerate(groups) if i % env.world_size == env.rank}
    gathered = [mine]
    if env.distributed:
        import torch.distributed as dist

        gathered = [None] * env.world_size  # type: ignore[list-item]
        dist.all_gather_object(gathered, mine)
    result = None
    if env.is_main:
        cells = {i: c for part_ in gathered for i, c in part_.items()}
        result, _ = write_groups(rd, groups, [cells[i] for i in range(len(groups))], out, real, truth=real is not None, genes=panel)
    D.shutdown()
    return result


def predict_split(
    model: Any,
    rd: RunData,
    part: str = "test",
    seed: int = 0,
    set_size: int | None = None,
    out: str | Path | None = None,
    real: str | Path | None = None,
    genes: str | None = None,
) -> tuple[Any, Any]:
    """Generate every perturbed group of split ``part`` with a fitted ``model``: ``(pred, real)`` AnnData.

    The same cells as ``distgen predict`` (group ``i`` under a seed from ``(seed, i)``), in the
    cell-eval layout, from control cells of the same context; ``out``/``real`` also write the files.
    ``set_size`` defaults to the data section's; ``genes`` restricts to a panel (``gene_panel``).
    """
    if not callable(getattr(model, "predict", None)):
        raise TypeError(f"predict: {type(model).__name__} has no predict(control, control_mask, labels) method")
    groups = split_groups(rd, part)
    m = rd.section.set_size if set_size is None else int(set_size)
    if m < 1:
        raise ValueError(f"predict: set_size must be >= 1, got {m}")
    first = next(model.parameters(), None) if isinstance(model, nn.Module) else None
    device = first.device if first is not None else torch.device("cpu")
    if isinstance(model, nn.Module):
        model.eval()
    panel = gene_panel(rd, groups, genes)
    cells = [generate_group(model, rd, g, i, m, seed, device, panel) for i, g in enumerate(groups)]
    return write_groups(rd, groups, cells, out, real, genes=panel)


def write_groups(
    rd: RunData, groups: list[Group], cells: list[np.ndarray], out: str | Path | None, real: str | Path | None, truth: bool = True,
    genes: np.ndarray | None = None,
) -> tuple[Any, Any]:
    """Generated ``cells`` (one array per group) and, unless ``truth=False``, the groups' real cells, in the cell-eval layout.

    With ``genes`` (column indices) the cells hold only those genes, and so do the written files.
    """
    from distgen.data import write_ground_truth, write_predictions

    if genes is not None:  # lay out at full width, then keep the panel
        full = []
        for c in cells:
            wide = np.zeros((c.shape[0], rd.info.n_genes), dtype=c.dtype)
            wide[:, genes] = c
            full.append(wide)
        pred, truth_ad = write_groups(rd, groups, full, None, None, truth)
        pred = pred[:, genes].copy()
        truth_ad = truth_ad[:, genes].copy() if truth_ad is not None else None
        for adata, path in ((pred, out), (truth_ad, real)):
            if adata is not None and path is not None:
                adata.write_h5ad(path, compression="gzip")
        return pred, truth_ad
    pool = np.unique(np.concatenate([g.controls for g in groups]))
    has_ctx = len(rd.info.contexts) > 1
    ctx = rd.data.contexts
    pred = write_predictions(
        np.concatenate(cells),
        [g.condition for g in groups for _ in g.cells],
        rd.data.table.X[torch.from_numpy(pool)],
        rd.info.genes,
        contexts=[g.context for g in groups for _ in g.cells] if has_ctx else None,
        control_contexts=ctx[pool].tolist() if has_ctx else None,
        path=out,
        data=rd.data,
    )
    if not truth:
        return pred, None
    return pred, write_ground_truth(rd.data, np.concatenate([g.cells for g in groups]), pool, path=real)


def _check_data_hash(run_dir: Path, rd: RunData) -> None:
    manifest = run_dir / "manifest.json"
    if not manifest.exists():
        return
    want = json.loads(manifest.read_text()).get("data", {}).get("data_hash")
    if want and want != rd.data.hash:
        raise ValueError(
            f"the data of {rd.section.dataset!r} changed since this run was trained (hash {rd.data.hash} != {want}); "
            "predict with the training data, or retrain"
        )
