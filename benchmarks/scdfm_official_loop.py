"""The official scDFM training loop and sampler on distgen's data and split (issue 16, item 8).

``benchmarks/equal_budget.py --model scdfm`` trains distgen's ``scdfm`` preset; this script trains the
*official* network (``src/models/origin/model.py`` of a checkout of github.com/AI4Science-WestlakeU/scDFM)
with the official training step (``train_step`` of ``src/script/run.py``: a random gene subset shared by
the batch, N(0, I) source, CondOT path, MSE + gamma x unbiased 4-kernel MMD^2), the official batch
construction (``PerturbationDataset.__getitem__``: a condition drawn uniformly, then 48 perturbed and 48
control cells drawn with replacement), ``torch.optim.Adam`` with ``CosineAnnealingLR``, the network in
training mode throughout (the official code never calls ``eval()``, so it samples with dropout on), and
the official sampler (``generate_sample``: RK4 on ``linspace(0, 1, 20)`` from N(0, I), clamped at 0, 128
cells per condition from 128 random control cells, in chunks of 48). The data, split, evaluated gene
panel (``hvg:64``) and the scoring (``distgen.api.evaluate``) are those of ``equal_budget.py``, so the
two scripts differ only in the model code.

Not distgen: this only reads the official checkout (``benchmarks/parity/shim.py`` imports it without
its heavy dependencies). Perturbed genes outside the bundled 500-gene panel get their own vocabulary
rows with no co-expression edges (distgen's ``missing_perturbation_genes: extend``).

Usage (CPU; about a second per step at one thread)::

    python benchmarks/scdfm_official_loop.py --scdfm /path/to/scDFM --steps 1500 --seed 0 --out official_loop.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch._dynamo  # torch.optim imports it lazily; it must load before the shim installs its triton stand-in

from benchmarks.equal_budget import DOUBLES, SETUPS

D_MODEL, GENES_PER_STEP, CELLS, N_PRED = 128, 64, 48, 128


def load_dataset() -> Any:
    from distgen.data.prepared import Dataset
    from distgen.data.section import data_section

    data = {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "test_conditions": list(DOUBLES), "val_frac": 0.0},
            "set_size": CELLS, "matcher": "random", "replacement": True}
    return Dataset.load(data_section(data))


def build_vocab(genes: list[str], extra: list[str]) -> dict[str, int]:
    """The official ``GeneVocab`` layout: 4 specials, then the genes in alphabetical order (``extra``: perturbed genes outside the panel)."""
    names = sorted(set(genes) | set(extra))
    return {s: i for i, s in enumerate(("<pad>", "<cls>", "<mask>", "control"))} | {g: 4 + i for i, g in enumerate(names)}


def build_mask(utils: Any, x_train: np.ndarray, genes: list[str], vocab: dict[str, int], k: int = 30) -> torch.Tensor:
    """The official co-expression mask (``True`` = blocked) over the vocabulary rows; extra tokens attend only to themselves."""
    blocked = utils.build_gene_coexpression_graph(x_train, method="pearson", sparsify="topk", k=k, use_negative_edge=True)
    blocked = torch.as_tensor(np.asarray(blocked), dtype=torch.bool)
    v = len(vocab)
    mask = torch.ones(v, v, dtype=torch.bool)
    ids = torch.tensor([vocab[g] for g in genes])
    mask[ids[:, None], ids[None, :]] = blocked
    mask[torch.arange(v), torch.arange(v)] = False
    return mask


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scdfm", required=True, help="path to a checkout of github.com/AI4Science-WestlakeU/scDFM")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--eta-min", type=float, default=1e-6)
    p.add_argument("--gamma", type=float, default=0.5)
    p.add_argument("--eval-dropout", choices=["on", "off"], default="on", help="on: sample in training mode, as the official code")
    p.add_argument("--work", default="official_loop_runs")
    p.add_argument("--out")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (fp32 on both sides; TF32 off)")
    args = p.parse_args(argv)
    dev = torch.device(args.device)
    torch.set_flush_denormal(True)
    if dev.type == "cuda":
        torch.cuda.init()  # before the harness's stand-in modules exist
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    from benchmarks.parity.shim import function_from, official_tree
    from distgen import api
    from distgen.pipeline.predict import gene_panel, generated_cells

    repo = Path(args.scdfm)
    ds = load_dataset()
    info, table = ds.info, ds.data.table
    genes = list(info.genes)
    train = ds.split.train.numpy()
    is_ctrl = ds.data.is_control
    conds = np.asarray([str(c) for c in ds.train_cells().conditions], dtype=object)
    atoms_all = sorted({a for c in set(conds[~is_ctrl[train]]) for a in c.split("+")} | {a for d in DOUBLES for a in d.split("+")})
    vocab = build_vocab(genes, [a for a in atoms_all if a not in genes])
    x = table.X.numpy().astype(np.float64)
    groups_train = {c: train[(conds == c)] for c in sorted(set(conds[~is_ctrl[train]]))}
    ctrl_train = train[is_ctrl[train]]
    names = sorted(groups_train)
    gene_ids = torch.tensor([vocab[g] for g in genes])

    def pert_ids(cond: str, n: int) -> torch.Tensor:
        a = cond.split("+")
        a = a + ["control"] * (2 - len(a))
        return torch.tensor([vocab[s] for s in a], device=dev).repeat(n, 1)

    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    with official_tree(repo) as imp, tempfile.TemporaryDirectory() as tmp:
        utils = imp("src.utils.utils")
        mask_path = Path(tmp) / "mask.pt"
        torch.save(build_mask(utils, x[train], genes, vocab), mask_path)
        origin = imp("src.models.origin.model")
        affine = imp("src.flow_matching.path.affine")
        sched = imp("src.flow_matching.path.scheduler.scheduler")
        torch.manual_seed(args.seed)
        vf = origin.model(ntoken=len(vocab), d_model=D_MODEL, nhead=8, nlayers=4, dropout=0.1, fusion_method="differential_perceiver",
                          perturbation_function="crisper", mask_path=str(mask_path)).to(dev)
        import torchdiffeq

        config = SimpleNamespace(infer_top_gene=GENES_PER_STEP, use_mmd_loss=args.gamma > 0, gamma=args.gamma, noise_type="Gaussian")
        ns = function_from(repo / "src" / "script" / "run.py",
                           ("train_step", "pairwise_sq_dists", "median_sigmas", "mmd2_unbiased_multi_sigma", "wrapped_vf", "generate_sample"),
                           {"config": config, "gene_ids": gene_ids, "path": affine.AffineProbPath(scheduler=sched.CondOTScheduler()),
                            "device": dev, "torchdiffeq": torchdiffeq})
        acc = SimpleNamespace(device=dev)
        opt = torch.optim.Adam(vf.parameters(), lr=args.lr)
        lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps, eta_min=args.eta_min)
        vf.train()
        losses = []
        for step in range(args.steps):
            cond = names[rng.integers(len(names))]  # PerturbationDataset: np.random.choice(len(perturbations), 1)
            tgt = torch.from_numpy(x[rng.choice(groups_train[cond], CELLS)]).float().to(dev)
            src = torch.from_numpy(x[rng.choice(ctrl_train, CELLS)]).float().to(dev)
            loss = ns["train_step"](src, tgt, pert_ids(cond, CELLS), vf, None, acc, noise_type="Gaussian", mode="predict_y")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lr_sched.step()
            losses.append(float(loss.detach()))
            if (step + 1) % 100 == 0:
                print(f"step {step + 1}: loss {np.mean(losses[-100:]):.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        train_s = time.perf_counter() - t0
        # ---- prediction, as test() + generate_sample (dropout on unless --eval-dropout off)
        groups = ds.groups("test")
        panel = gene_panel(ds, groups, "hvg:64")
        panel_ids = gene_ids[torch.from_numpy(panel)].to(dev)
        config.infer_top_gene = len(panel)
        if args.eval_dropout == "off":
            vf.eval()
        cells = []
        t1 = time.perf_counter()
        with torch.no_grad():
            for g in groups:
                ctrl = torch.from_numpy(x[g.controls][:, panel]).float().to(dev)
                ctrl = ctrl[torch.randperm(len(ctrl)).to(dev)][:N_PRED]
                out = []
                for i in range(0, len(ctrl), CELLS):
                    src = ctrl[i:i + CELLS]
                    out.append(ns["generate_sample"](ns["wrapped_vf"], src, pert_ids(g.condition, len(src)), vf, gene_ids=panel_ids,
                                                     gene_all=panel_ids, steps=20, method="rk4"))
                cells.append(torch.cat(out).cpu().numpy())
        predict_s = time.perf_counter() - t1
    pred = generated_cells(ds, groups, cells, panel)
    truth = ds.truth("test")
    truth = truth.with_genes(pred.genes)
    metrics = SETUPS["scdfm"]["metrics"]
    work = Path(args.work)
    report = api.evaluate(pred, truth, work / f"eval_official_loop_seed{args.seed}", baselines=["control"], metric_names=metrics,
                          ceiling=False, make_plots=False, progress=False)
    scores = {m: {"model": report.metrics[m]["model"], "control": report.metrics[m]["baselines"].get("control")} for m in metrics}
    res = {"seed": args.seed, "steps": args.steps, "eval_dropout": args.eval_dropout, "train_seconds": round(train_s, 1),
           "predict_seconds": round(predict_s, 1), "final_loss_100": float(np.mean(losses[-100:])),
           "loss_per_100": [round(float(np.mean(losses[i:i + 100])), 4) for i in range(0, len(losses), 100)], "device": str(dev), "scores": scores,
           "command": "python benchmarks/scdfm_official_loop.py " + " ".join(argv or []),
           "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(), "loadavg": Path("/proc/loadavg").read_text().split()[:3]}}
    print(json.dumps({k: res[k] for k in ("scores", "train_seconds", "final_loss_100")}, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
