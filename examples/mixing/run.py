"""Mix components across the two published models: build, pre-flight, train a few steps, sample.

Each config in ``configs/`` starts from a preset (``base: scdfm-small`` / ``perturbdiff-small``)
and swaps one component: PAD-Transformer + diffusion, Cross-DiT + flow matching, scDFM with a
kernel-mean-embedding or Set-Transformer population condition, PerturbDiff with an RBF kernel.

Usage::

    python examples/mixing/run.py                      # every config, bundled Norman K562, 30 steps
    python examples/mixing/run.py --tiny               # every config, tiny synthetic data, seconds each
    python examples/mixing/run.py configs/pad_diffusion.yaml --steps 200 model.dynamics.sampler.steps=50

Extra ``key=value`` arguments are dotted config overrides applied to every config.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from distgen.config import load_config
from distgen.models.generator import build_model
from distgen.models.preflight import preflight
from distgen.train import fit
from distgen.types import CellTable, ConditionLabels

HERE = Path(__file__).parent
CONFIGS = sorted((HERE / "configs").glob("*.yaml"))

#: Shrinks networks and samplers so a config runs in seconds on a CPU (names kept, sizes cut).
TINY = {
    "pad_transformer": ["model.backbone.d_model=16", "model.backbone.heads=2", "model.backbone.layers=1", "model.backbone.graph_k=3"],
    "cross_dit": ["model.backbone.dim=16", "model.backbone.depth=1", "model.backbone.heads=2"],
    "covariate": ["model.conditioner.part_dim=8", "model.conditioner.dim=16"],
    "diffusion": ["model.dynamics.schedule.timesteps=100", "model.dynamics.sampler={name: ddim, steps: 5}"],
    "flow_matching": ["model.dynamics.solver.steps=3"],
    "set_transformer": ["model.population_encoder.dim=8", "model.population_encoder.hidden=8", "model.population_encoder.heads=2"],
    "train": ["train.sets_per_batch=2", "train.warmup_steps=0", "train.ema_decay=null", "data.set_size=8"],
}


def tiny_overrides(doc: dict[str, Any]) -> list[str]:
    """Size overrides for ``doc``'s components (see ``TINY``)."""
    model = doc["model"]
    names = {model[k]["name"] for k in ("backbone", "dynamics", "conditioner", "population_encoder") if isinstance(model.get(k), dict)}
    out = [o for n in sorted(names) for o in TINY.get(n, [])] + TINY["train"]
    if {"cross_dit", "diffusion"} <= names and model["backbone"].get("time_input", "step") == "step":
        out.append("model.backbone.timesteps=100")  # the network's step count follows the shortened schedule
    if model.get("genes_per_step"):
        out.append("model.genes_per_step=6")
    return out


def load_data(kind: str) -> tuple[CellTable, list[str], list[str]]:
    """Training table, training atoms and test conditions (tiny: seeded fixture; norman: bundled K562)."""
    if kind == "tiny":
        from distgen.testing.fixtures import tiny_table

        table = tiny_table()
        return table, list(table.info.perturbations[:3]), ["G0", "G2"]
    from distgen.data import PerturbationData, make_split
    from distgen.datasets import NORMAN_SCHEMA, norman_k562

    data = PerturbationData.from_anndata(norman_k562(), NORMAN_SCHEMA)
    split = make_split(data, "random_conditions", seed=0, test_frac=0.2)
    atoms = sorted({a for c in split.train_conditions for a in data.atoms_of(c)})
    test = [c for c in split.test_conditions if all(a in atoms for a in data.atoms_of(c))][:2]
    return data.table.subset(split.train), atoms, test


def condition_sets(table: CellTable, conditions: list[str], m: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, ConditionLabels]:
    """``m`` random control cells per condition, with the condition labels, for ``predict``."""
    g = torch.Generator().manual_seed(seed)
    ctrl = torch.nonzero(table.is_control).flatten()
    idx = ctrl[torch.randint(ctrl.numel(), (len(conditions), m), generator=g)]
    index = table.info.perturbation_index()
    labels = ConditionLabels.make([[index[a] for a in c.split("+")] for c in conditions])
    return table.X[idx], torch.ones(len(conditions), m, dtype=torch.bool), labels


def run(config: str | Path, data: str = "norman", steps: int = 30, tiny: bool = False, overrides: list[str] | None = None) -> dict[str, Any]:
    """Build, pre-flight, train ``steps`` steps and sample one config; returns a summary."""
    torch.manual_seed(0)
    doc = load_config(config)
    doc = load_config(doc, (tiny_overrides(doc) if tiny else []) + [f"train.steps={steps}", "train.progress=false"] + list(overrides or []))
    table, atoms, test = load_data("tiny" if tiny else data)
    t0 = time.perf_counter()
    model = build_model(doc["model"], table.info, seen_perturbations=atoms)
    report = preflight(model, test)  # stops here if a test perturbation cannot be embedded
    data_cfg = doc.get("data", {})
    train_cfg = {k: v for k, v in doc.get("train", {}).items()}
    fit(model, table, set_size=int(data_cfg.get("set_size", 32)), matcher="random", **train_cfg)
    control, mask, labels = condition_sets(table, test, int(data_cfg.get("set_size", 32)))
    cells = model.predict(control, mask, labels)
    if not torch.isfinite(cells).all():
        raise FloatingPointError(f"{config}: non-finite samples")
    return {
        "config": Path(config).stem,
        "backbone": doc["model"]["backbone"]["name"],
        "dynamics": doc["model"]["dynamics"]["name"],
        "population_encoder": (doc["model"].get("population_encoder") or {}).get("name"),
        "distribution_kernel": ((doc["model"].get("distribution_loss") or {}).get("kernel") or {}).get("name"),
        "embedded_by": report.component,
        "params": sum(p.numel() for p in model.parameters()),
        "sample_shape": tuple(cells.shape),
        "nfe": model.last_nfe,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="*", help="config files (default: every file in configs/); key=value items are overrides")
    p.add_argument("--data", choices=("norman", "tiny"), default="norman")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--tiny", action="store_true", help="tiny data and networks: seconds per config")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    overrides = [c for c in args.configs if "=" in c]
    configs = [c for c in args.configs if "=" not in c] or CONFIGS
    for cfg in configs:
        print(run(cfg, args.data, args.steps, args.tiny, overrides), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
