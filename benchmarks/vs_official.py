"""distgen against the official scDFM code, side by side: training step, memory, sampling.

Both sides are built at the same shapes and fed the same pre-drawn data: the same cells, gene
columns, gene graph and perturbation of every step (written once to a temporary file); each side
draws its own noise and times from the same distributions. Each measurement runs in a fresh
process with one thread, ``OMP_WAIT_POLICY=PASSIVE`` and denormals flushed, and the two sides
alternate (official, distgen, then distgen, official, ...) so that a change in machine load hits
both; the table reports the median over rounds of each process's median step, with the load
average before and after. A training step is forward + loss (flow-matching MSE + 0.5 x MMD) +
backward + optimizer update: the official side with ``torch.optim.Adam`` as in its ``run.py``, the
distgen side with the trainer's optimizer (``distgen.train.optim``) and its gradient-norm pass.

Official side: ``src/models/origin/model.py`` of a checkout of github.com/AI4Science-WestlakeU/scDFM
(``--scdfm PATH``), its ``AffineProbPath`` and the MMD functions of ``src/script/run.py`` (read from
the file; that module itself needs jax, accelerate and cell-eval at import). Two imports that the
model does not use are replaced when missing: ``rotary.py`` (a triton RoPE kernel for an unused
attention class) and,
when ``timm`` is not installed, ``timm``'s ``Mlp`` by the same two-layer MLP (fc1, activation, fc2,
with dropout 0 as the official blocks build it). Without ``--scdfm`` only distgen's side is printed.

PerturbDiff rows (``--rows pd-official pd-reduced pd-sampling``): the official side
(``--perturbdiff PATH``, a checkout of github.com/DeepGraphLearning/PerturbDiff, and geomloss) is its
``Cross_DiT``, one-hot ``CovEncoder``, ``GaussianDiffusion`` and geomloss energy loss, imported as
``benchmarks/parity/perturbdiff.py`` imports them (timm stand-ins, with timm's fused SDPA and
``rms_norm`` kernels); see ``OfficialPerturbDiff``. A training step is timed as the mean of a pair
of steps, one with and one without the self-conditioning pass, on both sides.

Usage::

    python benchmarks/vs_official.py --scdfm /path/to/scDFM                 # the scDFM table
    python benchmarks/vs_official.py --scdfm /path/to/scDFM --write-docs    # ... into docs/benchmarks.md
    python benchmarks/vs_official.py --perturbdiff /path/to/PerturbDiff --rows pd-official pd-reduced pd-sampling
    python benchmarks/vs_official.py --rows tiny                            # seconds: distgen only, tiny
    python benchmarks/vs_official.py ... --precision bf16                   # both sides under bf16 autocast
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

SECTION = "## Side by side with the official PerturbDiff and scDFM code"
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Shape:
    """Model and batch shape: width, layers, heads; cells x gene tokens out of a vocabulary of genes."""

    d: int
    layers: int
    heads: int
    cells: int
    tokens: int
    genes: int
    graph_k: int = 30
    sets: int = 1  # PerturbDiff: cell sets per batch (tokens = cells)


@dataclass(frozen=True)
class Row:
    """One line of the table: a task at a shape (``cells`` may list several for memory per cell)."""

    name: str
    label: str
    task: str  # "train" or "sample"
    shape: Shape
    cells: tuple[int, ...] = ()
    steps: int = 3  # timed steps (training) or sampling runs
    warmup: int = 1
    solver: str = "rk4"
    grid: int = 20
    sides: tuple[str, ...] = ("official", "distgen")
    model: str = "scdfm"  # "scdfm" or "perturbdiff"
    overrides: tuple[str, ...] = ()  # extra config overrides of the distgen side
    rounds: int | None = None  # at most this many rounds (long rows)


REDUCED = Shape(d=128, layers=4, heads=8, cells=48, tokens=64, genes=500)  # the bundled Norman panel
PAPER = Shape(d=512, layers=4, heads=8, cells=2, tokens=1000, genes=5029)
TINY = Shape(d=16, layers=1, heads=2, cells=4, tokens=8, genes=40, graph_k=4)
PD_OFFICIAL = Shape(d=512, layers=8, heads=8, cells=32, tokens=32, genes=2000, sets=4)
TINY_PD = Shape(d=16, layers=1, heads=2, cells=4, tokens=4, genes=24, sets=2)
ROWS = {
    "reduced": Row("reduced", "scDFM reduced (d=128, 4 layers, 8 heads, 48 cells x 64 of 500 genes) train step", "train", REDUCED, steps=5, warmup=2),
    "paper": Row("paper", "scDFM paper shapes (d=512, 4 layers, 1,000 of 5,029 genes), 2 cells: train step", "train", PAPER, steps=2),
    "reduced-vocab": Row("reduced-vocab", "scDFM reduced model over the paper's vocabulary (48 cells x 64 of 5,029 genes) train step", "train",
                         replace(REDUCED, genes=5029), steps=3),
    "memory": Row("memory", "scDFM paper shapes, peak memory at 2 and 3 cells", "train", PAPER, cells=(2, 3), steps=1),
    "memory-ckpt": Row("memory-ckpt", "scDFM paper shapes, activation checkpointing forced on, peak memory at 2 and 4 cells", "train", PAPER,
                       cells=(2, 4), steps=1, sides=("distgen",), overrides=("model.backbone.checkpointing=always",)),
    "paper48": Row("paper48", "scDFM paper batch (48 cells, 1,000 of 5,029 genes): distgen peak memory", "train", PAPER, cells=(48,), steps=1,
                   sides=("distgen",), rounds=1),
    "sampling": Row("sampling", "scDFM reduced sampling, 128 cells, RK4 on 20 points (76 evaluations)", "sample",
                    replace(REDUCED, cells=128), steps=1),
    "pd-official": Row("pd-official", "PerturbDiff official size (d=512, depth 8, 2,000 genes), 4 sets x 32 cells: train step", "train",
                       PD_OFFICIAL, steps=3, model="perturbdiff"),
    "pd-reduced": Row("pd-reduced", "PerturbDiff reduced (d=128, depth 4, 2,000 genes), 4 sets x 32 cells: train step", "train",
                      replace(PD_OFFICIAL, d=128, layers=4), steps=5, warmup=2, model="perturbdiff"),
    "pd-sampling": Row("pd-sampling", "PerturbDiff reduced sampling, 128 cells, DDIM 100 steps with guidance", "sample",
                       replace(PD_OFFICIAL, d=128, layers=4, cells=128, tokens=128, sets=1), steps=1, model="perturbdiff"),
    "tiny": Row("tiny", "tiny shapes (test of the harness)", "train", TINY, steps=1, sides=("distgen",)),
    "tiny-pd": Row("tiny-pd", "tiny PerturbDiff shapes (test of the harness)", "train", TINY_PD, steps=1, sides=("distgen",), model="perturbdiff"),
    "tiny-pd-both": Row("tiny-pd-both", "tiny PerturbDiff shapes, both sides (test of the official adapter)", "train", TINY_PD, steps=1,
                        model="perturbdiff"),
    "tiny-pd-sampling": Row("tiny-pd-sampling", "tiny PerturbDiff sampling, both sides (test of the official adapter)", "sample",
                            replace(TINY_PD, sets=1, cells=8, tokens=8), steps=1, warmup=0, model="perturbdiff"),
    "tiny-sampling": Row("tiny-sampling", "tiny shapes, sampling (test of the harness)", "sample", TINY, steps=1, grid=3, sides=("distgen",)),
}
DEFAULT_ROWS = ("reduced", "reduced-vocab", "paper", "memory", "memory-ckpt", "paper48", "sampling")
PERTURBDIFF_ROWS = ("pd-official", "pd-reduced", "pd-sampling")


# ---------------------------------------------------------------------------------------------- data
def random_graph(genes: int, k: int, seed: int = 0) -> Any:
    """``[G, G]`` symmetric bool adjacency: each gene linked to ``k`` random genes (stands in for
    the top-k co-expression graph; its cost depends only on the number of edges)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, genes, (genes, k), generator=gen)
    adj = torch.zeros(genes, genes, dtype=torch.bool)
    adj.scatter_(1, idx, True)
    adj = adj | adj.T
    adj.fill_diagonal_(False)
    return adj


def draw_data(row: Row, cells: int, n_batches: int, seed: int = 0) -> dict[str, Any]:
    """Pre-drawn inputs of every step: cells, gene columns and a perturbation pair (genes of the vocabulary).

    PerturbDiff: ``[sets, cells, genes]`` target and control sets and one perturbation per set.
    """
    import torch

    s = row.shape
    if row.model == "perturbdiff":
        gen = torch.Generator().manual_seed(seed)

        def sets() -> Any:
            return (torch.rand(s.sets, cells, s.genes, generator=gen) * 3) * (torch.rand(s.sets, cells, s.genes, generator=gen) < 0.3)

        return {"batches": [{"target": sets(), "control": sets(), "pert": torch.randint(0, 16, (s.sets,), generator=gen)} for _ in range(n_batches)]}
    gen = torch.Generator().manual_seed(seed)

    def expr(n: int) -> Any:  # sparse non-negative log-expression
        return (torch.rand(n, s.tokens, generator=gen) * 3) * (torch.rand(n, s.tokens, generator=gen) < 0.3)

    batches = []
    for _ in range(n_batches):
        genes = torch.randperm(s.genes, generator=gen)[: s.tokens]
        batches.append({"target": expr(cells), "control": expr(cells), "genes": genes,
                        "pert": torch.randint(0, min(16, s.genes), (2,), generator=gen)})
    return {"graph": random_graph(s.genes, s.graph_k, seed), "batches": batches}


# ---------------------------------------------------------------------------------------------- official scDFM
def _shim_imports() -> list[str]:
    """Stand-ins for imports the official model file does not use (see the module docstring)."""
    import torch.nn as nn

    shims = []
    try:
        import triton  # noqa: F401
    except ImportError:  # blocks.py imports the RoPE kernel file, which needs triton; the model never calls it
        rotary = types.ModuleType("src.models.origin.rotary")
        rotary.apply_rotary_emb = None  # type: ignore[attr-defined]
        sys.modules["src.models.origin.rotary"] = rotary
        shims.append("src/models/origin/rotary.py (triton RoPE kernel, unused by the model)")
    try:
        from timm.models.vision_transformer import Mlp
    except Exception:

        class Mlp(nn.Module):  # type: ignore[no-redef]
            def __init__(self, in_features: int, hidden_features: int | None = None, out_features: int | None = None,
                         act_layer: Any = nn.GELU, drop: float = 0.0, **_: Any) -> None:
                super().__init__()
                self.fc1 = nn.Linear(in_features, hidden_features or in_features)
                self.act = act_layer()
                self.drop1 = nn.Dropout(drop)
                self.fc2 = nn.Linear(hidden_features or in_features, out_features or in_features)
                self.drop2 = nn.Dropout(drop)

            def forward(self, x: Any) -> Any:
                return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))

        vt = types.ModuleType("timm.models.vision_transformer")
        vt.Mlp, vt.Attention, vt.PatchEmbed = Mlp, None, None  # type: ignore[attr-defined]
        sys.modules.update({"timm": types.ModuleType("timm"), "timm.models": types.ModuleType("timm.models"),
                            "timm.models.vision_transformer": vt})
        shims.append("timm Mlp")
    return shims


def _official_functions(repo: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """Top-level functions ``names`` of the official ``src/script/run.py``, without importing it."""
    import torch

    src = (repo / "src" / "script" / "run.py").read_text()
    tree = ast.parse(src)
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    missing = set(names) - {n.name for n in keep}
    if missing:
        raise RuntimeError(f"{repo}/src/script/run.py has no function(s) {sorted(missing)}; is this the scDFM repository?")
    ns: dict[str, Any] = {"torch": torch}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(repo / "src/script/run.py"), "exec"), ns)
    return ns


def precision_context(device: str, precision: str) -> Any:
    """A fresh context for one forward + loss: ``torch.autocast`` to bfloat16 (``bf16``) or nothing (``fp32``)."""
    import contextlib

    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


class _Amp:
    """Mixin: ``self.amp()`` is the precision context of this side's forward + loss (set by ``measure``)."""

    precision = "fp32"
    amp_device = "cpu"

    def amp(self) -> Any:
        return precision_context(self.amp_device, self.precision)


class OfficialScdfm(_Amp):
    """The official model, its loss and its sampler at a shape (vocabulary ids = gene + 4 specials)."""

    def __init__(self, repo: Path, shape: Shape, graph: Any, workdir: Path, device: str = "cpu") -> None:
        import torch

        self.shims = _shim_imports()
        sys.path.insert(0, str(repo))
        from src.flow_matching.path import AffineProbPath
        from src.flow_matching.path.scheduler import CondOTScheduler
        from src.models.origin.model import model as Model

        g = shape.genes
        mask = torch.ones(g + 4, g + 4, dtype=torch.bool)  # True = blocked (MultiheadAttention convention)
        mask[4:, 4:] = ~(graph | torch.eye(g, dtype=torch.bool))
        mask.fill_diagonal_(False)
        (workdir / "bench").mkdir(exist_ok=True)
        mask_path = workdir / "bench" / "mask.pt"
        torch.save(mask, mask_path)
        torch.manual_seed(0)
        self.model = Model(ntoken=max(6000, g + 4), d_model=shape.d, nhead=shape.heads, nlayers=shape.layers,
                           fusion_method="differential_perceiver", perturbation_function="crisper", mask_path=str(mask_path)).to(device)
        self.path = AffineProbPath(scheduler=CondOTScheduler())
        self.fns = _official_functions(repo, ("pairwise_sq_dists", "median_sigmas", "mmd2_unbiased_multi_sigma"))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=5e-5)  # run.py: Adam(vf.parameters(), lr=config.lr)

    def train_step(self, b: dict[str, Any]) -> float:
        import torch

        source, target = b["control"], b["target"]
        n = target.shape[0]
        gene_input = (b["genes"] + 4).repeat(n, 1)
        pert = (b["pert"] + 4).repeat(n, 1)
        t = torch.rand(n, device=source.device)
        noise = torch.randn_like(source)
        p = self.path.sample(t=t, x_0=noise, x_1=target)
        with self.amp():
            v = self.model(gene_input, p.x_t, p.t, source, pert, gene_input, mode="predict_y")
            loss = ((v - p.dx_t) ** 2).mean()
            x1_hat = p.x_t + v * (1 - t).unsqueeze(-1)
            sigmas = self.fns["median_sigmas"](target, scales=(0.5, 1.0, 2.0, 4.0))
            loss = loss + self.fns["mmd2_unbiased_multi_sigma"](x1_hat, target, sigmas) * 0.5
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def sample(self, b: dict[str, Any], grid: int, solver: str) -> Any:
        import torch
        import torchdiffeq

        source = b["control"]
        n = source.shape[0]
        gene = (b["genes"] + 4).repeat(n, 1)
        pert = (b["pert"] + 4).repeat(n, 1)
        self.model.eval()
        with torch.inference_mode(), self.amp():
            noise = torch.randn(n, source.shape[1], device=source.device)
            traj = torchdiffeq.odeint(lambda t, x: self.model(gene, x, t, source, pert, gene), noise, torch.linspace(0, 1, grid, device=source.device),
                                      atol=1e-4, rtol=1e-4, method=solver)
            return torch.clamp(traj[-1], min=0)


# ---------------------------------------------------------------------------------------------- official PerturbDiff
def _fused_timm_standins() -> None:
    """Give the harness's timm stand-ins the fused kernels that timm itself uses on this torch.

    timm's ``Attention`` calls ``F.scaled_dot_product_attention`` (its ``fused_attn`` default) and its
    ``RMSNorm`` calls the fused ``rms_norm``; the parity stand-ins write attention out explicitly
    (a check independent of SDPA), which would make the official side slower than timm makes it.
    """
    import torch.nn.functional as F

    from benchmarks.parity import shim

    class FusedAttention(shim.AttentionStandin):
        def forward(self, x: Any) -> Any:
            b, n, c = x.shape
            q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            o = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v)
            return self.proj(o.transpose(1, 2).reshape(b, n, c))

    class FusedRMSNorm(shim.RMSNormStandin):
        def forward(self, x: Any) -> Any:
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)

    sys.modules["timm.models.vision_transformer"].Attention = FusedAttention  # type: ignore[attr-defined]
    sys.modules["timm.layers.create_norm"].get_norm_layer = lambda name: FusedRMSNorm  # type: ignore[attr-defined]


class OfficialPerturbDiff(_Amp):
    """The official Cross_DiT, CovEncoder (one-hot), GaussianDiffusion and energy loss at a shape.

    Built as ``benchmarks/parity/perturbdiff.py`` builds them (``--perturbdiff PATH``), with the
    official training settings: ``configs/model/base.yaml`` (MM_DiT blocks, x0 prediction, linear
    schedule of 1,000 steps), ``SamplesLoss("energy", blur=0.05)`` with ``MMD_loss_factor`` 1, AdamW
    (lr 2e-4, betas 0.9/0.98, weight decay 0.01 on weights) and Lightning's gradient clipping at 1.
    One training step is the official ``training_losses`` sequence (float64 noise, ``q_sample``, an
    optional no-grad self-conditioning pass, ``diffusion_loss``) with the self-conditioning coin
    fixed by the caller, so both sides do the same work per step.
    """

    def __init__(self, repo: Path, shape: Shape, device: str = "cpu") -> None:
        from types import SimpleNamespace

        import torch
        from geomloss import SamplesLoss

        from benchmarks.parity.shim import official_tree

        self.shims = ["timm Attention/Mlp/RMSNorm (harness stand-ins with timm's fused SDPA and rms_norm)"]
        import torch._dynamo  # before the stand-in triton module exists: the optimizer imports it

        with official_tree(repo, stub_packages=("src.models", "src.common")) as imp:  # the built objects outlive the imports
            _fused_timm_standins()
            main = imp("src.models.cross_dit.cross_dit_main")
            cov = imp("src.models.covariate_encoding")
            self.core = imp("src.models.diffusion.diffusion_core")
            sched = imp("src.models.diffusion.diffusion_schedules")
        g = shape.genes
        cfg = SimpleNamespace(dit_num_heads=shape.heads, separate_embedder=False, hidden_num=[g, shape.d], dit_depth=shape.layers,
                              use_gene_embedding=False, gene_embedding_type="linear", Block_type="MM_DiT", use_class_silu=False,
                              predict_xstart=True, p_drop_control=0.5, cutoff=1e-4, dataset_dict=None, no_mse_loss=False)
        cov_cfg = SimpleNamespace(pert_encoding="onehot", drug_encoding="onehot", replogle_gene_encoding="onehot", celltype_encoding="onehot",
                                  batch_encoding="onehot", hidden_dim=128, num_pert=17, num_celltype=2, num_batch=2, output_dim=g)
        torch.manual_seed(0)
        self.model, self.enc = main.Cross_DiT(cfg).to(device), cov.CovEncoder(cov_cfg).to(device)
        core = self.core
        self.diffusion = core.GaussianDiffusion(betas=sched.get_named_beta_schedule("linear", 1000), model_mean_type=core.ModelMeanType.START_X,
                                                model_var_type=core.ModelVarType.FIXED_LARGE, loss_type=core.LossType.MSE, rescale_timesteps=False)
        self.loss_fn = SamplesLoss(loss="energy", blur=0.05)
        params = [*self.model.named_parameters(), *self.enc.named_parameters()]
        groups = [{"params": [p for n, p in params if "bias" not in n], "weight_decay": 0.01},
                  {"params": [p for n, p in params if "bias" in n], "weight_decay": 0.0}]
        self.opt = torch.optim.AdamW(groups, lr=2e-4, betas=(0.9, 0.98), eps=1e-8)
        self.all_params = [p for _, p in params]

    def _cond(self, b: dict[str, Any]) -> dict[str, Any]:
        import torch

        sets = b["target"].shape[0]
        dev = b["target"].device
        codes = (b["pert"][:, None], torch.zeros(sets, 1, dtype=torch.long, device=dev), torch.zeros(sets, 1, dtype=torch.long, device=dev))
        return {"batch_emb": self.enc(*codes), "cont_emb": b["control"] * 0.1, "gene_emb": None, "ds_name": ["bench"] * sets}

    def train_step(self, b: dict[str, Any], self_condition: bool) -> float:
        import torch

        self.model.train()
        self.enc.train()
        cond = self._cond(b)
        x_start = b["target"] * 0.1  # normalize_counts=10, as distgen's input_scale
        t = torch.randint(0, 1000, (x_start.shape[0],), device=x_start.device)  # uniform schedule sampler
        noise = torch.randn_like(x_start, dtype=torch.float64)
        x_t = self.diffusion.q_sample(x_start, t, noise=noise)
        control = cond["cont_emb"]
        x_0, control_0 = torch.zeros_like(x_t), torch.zeros_like(control)
        with self.amp():
            if self_condition:
                with torch.no_grad():
                    out = self.diffusion.get_model_output(model=self.model, x_t=torch.cat([x_t, x_0], -1),
                                                          control_input_t=torch.cat([control, control_0], -1), t=t, self_condition=cond)
                x_0 = out["x"]
            terms = self.diffusion.diffusion_loss(model=self.model, x_start=x_start, x_t=x_t, control_input_t=control, t=t, self_condition=cond,
                                                  noise=noise, x_0=x_0, control_0=control_0, MMD_loss_fn=self.loss_fn)
            loss = terms["loss1"].mean() + terms["mmd1"] * 1.0
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.all_params, 1.0)  # Lightning's gradient_clip_val: 1.0
        self.opt.step()
        return float(loss.detach())

    def sample(self, b: dict[str, Any]) -> Any:
        import torch

        self.model.eval()
        self.enc.eval()
        with torch.no_grad(), self.amp():
            cond = self._cond(b)
            shape = tuple(b["control"].shape)
            cells, _ = self.diffusion.ddim_sample_loop(self.model, shape, self_condition=cond, noise=torch.randn(shape, device=b["control"].device),
                                                       clip_denoised=True, device=b["control"].device,
                                                       start_time=100, eta=0.0, guidance_strength=1.0)
        self.nfe = 200
        return cells


# ---------------------------------------------------------------------------------------------- distgen
class DistgenScdfm(_Amp):
    """The ``scdfm`` preset at a shape, with the trainer's optimizer; the same gene graph injected."""

    def __init__(self, shape: Shape, graph: Any, grid: int = 20, solver: dict[str, Any] | None = None, extra: tuple[str, ...] = (),
                 device: str = "cpu") -> None:
        import torch

        from distgen.api import build
        from distgen.config import load_config
        from distgen.train.optim import make_optimizer, optimizer_impl
        from distgen.types import DataInfo

        genes = tuple(f"G{i:05d}" for i in range(shape.genes))
        self.info = DataInfo(genes, genes[:16])
        node = {"name": "rk4", "steps": grid - 1, **(solver or {})}  # a solver node; grid points = steps + 1
        dyn = {"model.dynamics.solver.name": node.pop("name"), **{f"model.dynamics.solver.{k}": v for k, v in node.items()}}
        overrides = [f"model.backbone.d_model={shape.d}", f"model.backbone.layers={shape.layers}", f"model.backbone.heads={shape.heads}",
                     "model.genes_per_step=null", *(f"{k}={v}" for k, v in dyn.items()), *extra]
        torch.manual_seed(0)
        self.model = build("scdfm", self.info, overrides)
        self.model.backbone.set_gene_graph(graph)
        self.device = device
        self.model.to(device)
        tr = load_config("scdfm")["train"]
        self.opt = make_optimizer(self.model.named_parameters(), tr["optimizer"], float(tr["lr"]), tuple(tr["betas"]), 1e-8,
                                  float(tr["weight_decay"]), bool(tr.get("decay_norm_and_bias", True)))
        self.impl = optimizer_impl(self.opt)

    def _batch(self, b: dict[str, Any]) -> Any:
        import torch

        from distgen.types import ConditionLabels, SetBatch

        n = b["target"].shape[0]
        ones = torch.ones(1, n, dtype=torch.bool)
        return SetBatch(b["target"][None], ones, b["control"][None], ones.clone(), ConditionLabels.make([b["pert"].tolist()]),
                        b["genes"]).to(self.device)

    def train_step(self, b: dict[str, Any]) -> float:
        from distgen.train.optim import clipped_step, grad_norm

        self.model.train()
        with self.amp():
            out = self.model.loss(self._batch(b))
        self.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        params = list(self.model.parameters())
        clipped_step(self.opt, params, grad_norm(params), None)  # the trainer's gradient-norm pass (the scdfm preset does not clip)
        return float(out.loss.detach())

    def sample(self, b: dict[str, Any]) -> Any:
        import torch

        batch = self._batch(b)
        m = self.model
        m.eval()
        with torch.inference_mode(), self.amp():
            cond = m.condition(batch.labels, batch.control, batch.control_mask, batch.gene_ids)
            x0 = m.dynamics.draw_source(batch.control, batch.control)
            out = m.dynamics.sample(m.bind(cond), x0, batch.control_mask)
        self.nfe = out.nfe
        return out.cells


class DistgenPerturbDiff(_Amp):
    """The ``perturbdiff`` preset at a shape (cell tokens: sets x cells over all genes), with the trainer's optimizer."""

    def __init__(self, shape: Shape, overrides: tuple[str, ...] = (), device: str = "cpu") -> None:
        import torch

        from distgen.api import build
        from distgen.config import load_config
        from distgen.train.optim import make_optimizer, optimizer_impl
        from distgen.types import DataInfo

        genes = tuple(f"G{i:05d}" for i in range(shape.genes))
        self.info = DataInfo(genes, genes[:16], ("ctx0", "ctx1"), ("b0", "b1"))
        doc = load_config("perturbdiff")
        torch.manual_seed(0)
        self.model = build(doc, self.info, [f"model.backbone.dim={shape.d}", f"model.backbone.depth={shape.layers}",
                                            f"model.backbone.heads={shape.heads}", *overrides])
        self.device = device
        self.model.to(device)
        tr = doc["train"]
        self.opt = make_optimizer(self.model.named_parameters(), tr["optimizer"], float(tr["lr"]), tuple(tr["betas"]), float(tr.get("eps", 1e-8)),
                                  float(tr["weight_decay"]), bool(tr.get("decay_norm_and_bias", True)))
        self.impl = optimizer_impl(self.opt)
        self.clip = tr.get("grad_clip")

    def _batch(self, b: dict[str, Any]) -> Any:
        import torch

        from distgen.types import ConditionLabels, SetBatch

        sets, n, _ = b["target"].shape
        ones = torch.ones(sets, n, dtype=torch.bool)
        labels = ConditionLabels.make([[int(p)] for p in b["pert"]], context=[0] * sets, batch=[0] * sets)
        return SetBatch(b["target"], ones, b["control"], ones.clone(), labels, torch.arange(self.info.n_genes)).to(self.device)

    def train_step(self, b: dict[str, Any], self_condition: bool) -> float:
        """One trainer step with the self-conditioning coin fixed (the preset's 0.5 draws it per step)."""
        from distgen.train.optim import clipped_step, grad_norm

        self.model.train()
        self.model.dynamics.self_condition = 1.0 if self_condition else 0.0
        with self.amp():
            out = self.model.loss(self._batch(b))
        self.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        params = list(self.model.parameters())
        clipped_step(self.opt, params, grad_norm(params), float(self.clip) if self.clip is not None else None)  # as the trainer
        return float(out.loss.detach())

    def sample(self, b: dict[str, Any]) -> Any:
        import torch

        batch = self._batch(b)
        self.model.eval()
        with torch.inference_mode(), self.amp():
            cells = self.model.predict(batch.control, batch.control_mask, batch.labels)
        self.nfe = getattr(self.model, "last_nfe", None)
        return cells


# ---------------------------------------------------------------------------------------------- one measurement
def rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """One side, one row, one cell count, in this process: median seconds, peak RSS."""
    import torch

    torch.set_num_threads(spec["threads"])
    torch.set_flush_denormal(True)
    row = ROWS[spec["row"]]
    device = spec.get("device") or "cpu"
    data = torch.load(spec["data"])
    data["batches"] = [{k: v.to(device) for k, v in b.items()} for b in data["batches"]]
    cuda = device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    t_build = time.perf_counter()
    if spec["side"] == "official" and row.model == "perturbdiff":
        sub: Any = OfficialPerturbDiff(Path(spec["perturbdiff"]), row.shape, device)
    elif spec["side"] == "official":
        sub = OfficialScdfm(Path(spec["scdfm"]), row.shape, data["graph"], Path(spec["workdir"]), device)
    elif row.model == "perturbdiff":
        sub = DistgenPerturbDiff(row.shape, row.overrides, device)
    else:
        sub = DistgenScdfm(row.shape, data["graph"], row.grid, spec.get("solver"), row.overrides, device)
    sub.precision, sub.amp_device = spec.get("precision") or "fp32", device
    out: dict[str, Any] = {"side": spec["side"], "row": row.name, "cells": spec["cells"], "build_s": time.perf_counter() - t_build,
                           "base_gib": rss_gib(), "params": sum(p.numel() for p in sub.model.parameters())}
    batches = data["batches"]
    torch.manual_seed(1)
    times, cpu = [], []
    for i in range(row.warmup + row.steps):
        b = batches[i % len(batches)]
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        if row.task == "train" and row.model == "perturbdiff":  # a pair of steps, with and without self-conditioning (p = 0.5)
            out.setdefault("losses", []).extend([sub.train_step(b, True), sub.train_step(batches[(i + 1) % len(batches)], False)])
        elif row.task == "train":
            out.setdefault("losses", []).append(sub.train_step(b))
        else:
            res = sub.sample(b) if spec["side"] == "distgen" or row.model == "perturbdiff" else sub.sample(b, row.grid, row.solver)
            out["finite"] = bool(torch.isfinite(res).all())
        sync()
        per = 2 if row.task == "train" and row.model == "perturbdiff" else 1  # seconds per step
        if i >= row.warmup:
            times.append((time.perf_counter() - t0) / per)
            cpu.append((time.process_time() - c0) / per)
    out["seconds"] = statistics.median(times)
    out["cpu_seconds"] = statistics.median(cpu)
    out["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if cuda:
        out["peak_cuda_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if spec["side"] == "distgen":
        out["optimizer"] = sub.impl
        out["nfe"] = getattr(sub, "nfe", None)
    else:
        out["shims"] = sub.shims
    return out


def run_one(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "MKL_NUM_THREADS": str(spec["threads"]), "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {**{k: spec[k] for k in ("side", "row", "cells")}, "error": " | ".join(tail)[-400:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------- orchestration
def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def run_rows(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    workdir = Path(tempfile.mkdtemp(prefix="vs_official_"))
    official = {"scdfm": bool(args.scdfm), "perturbdiff": bool(args.perturbdiff)}
    res: dict[str, Any] = {"load_before": loadavg(), "rows": [], "hardware": hardware(args.device), "threads": args.threads, "rounds": args.rounds,
                           "precision": args.precision,
                           "official": {k: v for k, v in official.items() if v}}
    for name in args.rows:
        row = ROWS[name]
        sides = [s for s in row.sides if s == "distgen" or official[row.model]]
        for cells in row.cells or (row.shape.cells,):
            data_path = workdir / f"{name}-{cells}.pt"
            torch.save(draw_data(row, cells, max(2, row.warmup + row.steps)), data_path)
            results: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
            extra: list[dict[str, Any]] = []
            for r in range(min(args.rounds, row.rounds or args.rounds)):
                order = sides if r % 2 == 0 else sides[::-1]
                for side in order:
                    spec = {"side": side, "row": name, "cells": cells, "data": str(data_path), "threads": args.threads,
                            "scdfm": str(args.scdfm) if args.scdfm else None, "workdir": str(workdir),
                            "perturbdiff": str(args.perturbdiff) if args.perturbdiff else None, "device": args.device,
                            "precision": args.precision}
                    out = run_one(spec, args.timeout)
                    print(json.dumps(out), flush=True)
                    results[side].append(out)
                if row.task == "sample" and row.model == "scdfm" and "distgen" in sides and args.half_nfe:
                    spec = {"side": "distgen", "row": name, "cells": cells, "data": str(data_path), "threads": args.threads,
                            "workdir": str(workdir), "solver": args.half_nfe, "device": args.device,
                            "precision": args.precision}
                    out = run_one(spec, args.timeout)
                    print(json.dumps(out), flush=True)
                    extra.append(out)
            res["rows"].append({"row": name, "cells": cells, "label": row.label, "task": row.task, "model": row.model,
                                "sides": {s: summarize(v) for s, v in results.items()}, "half_nfe": summarize(extra) if extra else None})
    res["load_after"] = loadavg()
    return res


def summarize(outs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [o for o in outs if "error" not in o]
    if not ok:
        return {"error": outs[0].get("error", "?") if outs else "not run"}
    return {"seconds": statistics.median(o["seconds"] for o in ok), "cpu_seconds": statistics.median(o["cpu_seconds"] for o in ok),
            "peak_gib": max(o["peak_gib"] for o in ok),
            "runs": len(ok), "spread": [round(o["seconds"], 3) for o in ok],
            "finite": all(o.get("finite", True) and all(math.isfinite(v) for v in o.get("losses", ())) for o in ok), **{k: ok[0][k] for k in ("params", "optimizer", "nfe", "shims") if k in ok[0]},
            **({"peak_cuda_gib": max(o["peak_cuda_gib"] for o in ok)} if "peak_cuda_gib" in ok[0] else {})}


def hardware(device: str = "cpu") -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    import torch

    where = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"
    if device.startswith("cuda"):
        where = f"{torch.cuda.get_device_name(torch.device(device))} ({device}); host {where}"
    return where


def markdown(res: dict[str, Any], command: str) -> str:
    lines = [SECTION, "",
             f"Command: `{command}`. Hardware: {res['hardware']}; {res['threads']} thread per process, `OMP_WAIT_POLICY=PASSIVE`, denormals "
             f"flushed; {res['rounds']} alternating rounds, median of each process's median step (wall clock; the last column compares the "
             "processes' CPU times, which a busy machine distorts less). Load average (1, 5, 15 min) before: "
             f"{res['load_before']}, after: {res['load_after']}."
             + (" Both sides' forward and loss under bf16 autocast (`--precision bf16`); backward, optimizer and sampler state in fp32."
                if res.get("precision") == "bf16" else ""), ""]
    models = {r.get("model", "scdfm") for r in res["rows"]}
    flags = {"scdfm": "--scdfm PATH", "perturbdiff": "--perturbdiff PATH"}
    missing = [m for m in sorted(models) if m not in (res["official"] or {})]
    if missing:
        lines += [f"No official checkout given for {', '.join(missing)} ({', '.join(f'`{flags[m]}`' for m in missing)}): "
                  "distgen's side only for those rows.", ""]
    lines += ["| figure | official | distgen | official / distgen | ratio of CPU times |", "|---|---:|---:|---:|---:|"]
    mem: dict[tuple[str, str], dict[int, float]] = {}
    for r in res["rows"]:
        o, d = r["sides"].get("official", {}), r["sides"].get("distgen", {})
        def cell(x: dict[str, Any], key: str = "seconds", unit: str = " s", fmt: str = ".2f") -> str:
            if not x:
                return "-"
            return f"{x[key]:{fmt}}{unit}" if key in x else f"failed: {x.get('error', '?')[:80]}"
        label = r["label"] + (f" ({r['cells']} cells)" if len(ROWS[r["row"]].cells) > 1 else "")
        if ROWS[r["row"]].cells:
            for s, x in (("official", o), ("distgen", d)):
                if "peak_gib" in x:
                    mem.setdefault((r["row"], s), {})[r["cells"]] = x["peak_gib"]
            ratio = f"{o['peak_gib'] / d['peak_gib']:.2f}x less" if "peak_gib" in o and "peak_gib" in d else "-"
            lines.append(f"| {label}: peak RSS | {cell(o, 'peak_gib', ' GiB')} | {cell(d, 'peak_gib', ' GiB')} | {ratio} | |")
            continue

        def ratios(a: dict[str, Any], b: dict[str, Any]) -> str:
            if "seconds" not in a or "seconds" not in b:
                return "- | -"
            return f"{a['seconds'] / b['seconds']:.2f}x | {a['cpu_seconds'] / b['cpu_seconds']:.2f}x"

        lines.append(f"| {label} | {cell(o)} | {cell(d)} | {ratios(o, d)} |")
        if r["task"] == "train" and "peak_gib" in d:
            lines.append(f"| ... peak RSS | {cell(o, 'peak_gib', ' GiB')} | {cell(d, 'peak_gib', ' GiB')} | | |")
        if r.get("half_nfe") and "seconds" in r["half_nfe"]:
            h = r["half_nfe"]
            lines.append(f"| ... distgen at {h.get('nfe')} evaluations ({res.get('half_nfe_label', '')}) | {cell(o)} | {cell(h)} | {ratios(o, h)} |")
    per_cell = {k: (v[max(v)] - v[min(v)]) / (max(v) - min(v)) for k, v in mem.items() if len(v) >= 2}
    for row_name in dict.fromkeys(k[0] for k in per_cell):
        o, d = per_cell.get((row_name, "official")), per_cell.get((row_name, "distgen"))
        ratio = f"{o / d:.1f}x less" if o and d else "-"
        what = " (activation checkpointing on)" if "checkpointing=always" in " ".join(ROWS[row_name].overrides) else ""
        lines.append(f"| scDFM paper shapes, memory per extra cell{what} | {f'{o:.2f} GiB' if o else '-'} | {f'{d:.2f} GiB' if d else '-'} | {ratio} | |")
    if "perturbdiff" in models:
        lines += ["", "PerturbDiff training rows: seconds per step, the mean of a pair of steps with and without the self-conditioning "
                  "pass (the presets draw it with p = 0.5); each side: forward, MSE + energy loss, backward, gradient clipping at 1, AdamW "
                  "(the official side with `torch.optim.AdamW` defaults, as its Lightning module builds it). Sampling: 128 cells, DDIM "
                  "steps 99..0, guidance (two network calls per step), self-conditioning on the previous estimate."]
    shims = {x for r in res["rows"] for x in r["sides"].get("official", {}).get("shims", [])}
    if shims:
        lines += ["", f"Official side imports replaced (not installed here, not used by the model's computation): {', '.join(sorted(shims))}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scdfm", type=Path, default=os.environ.get("DISTGEN_SCDFM_REPO"), help="checkout of the official scDFM repository")
    p.add_argument("--perturbdiff", type=Path, default=os.environ.get("DISTGEN_PERTURBDIFF_REPO"),
                   help="checkout of the official PerturbDiff repository (needs geomloss: pip install -e '.[parity]')")
    p.add_argument("--rows", nargs="+", default=list(DEFAULT_ROWS), choices=sorted(ROWS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="torch device of both sides (e.g. cuda; benchmarks/gpu_vs_official.sh)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="both sides' forward and loss in fp32 or under bf16 autocast (training and sampling; CPUs with AVX512_BF16 or AMX)")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--half-nfe", type=json.loads, default={"name": "midpoint", "steps": 19},
                   help="distgen's sampler at half the evaluations, as an ODE solver node in JSON (default midpoint, 19 steps: 38)")
    p.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    p.add_argument("--write-docs", action="store_true")
    p.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(json.loads(args.worker))))
        return 0
    if args.scdfm is not None and not (args.scdfm / "src" / "models" / "origin" / "model.py").exists():
        p.error(f"--scdfm {args.scdfm}: no src/models/origin/model.py there; pass a checkout of github.com/AI4Science-WestlakeU/scDFM")
    if args.perturbdiff is not None and not (args.perturbdiff / "src" / "models" / "cross_dit" / "cross_dit_main.py").exists():
        p.error(f"--perturbdiff {args.perturbdiff}: no src/models/cross_dit/cross_dit_main.py there; "
                "pass a checkout of github.com/DeepGraphLearning/PerturbDiff")
    res = run_rows(args)
    res["half_nfe_label"] = ", ".join(f"{k}={v}" for k, v in args.half_nfe.items())
    hide = {str(args.scdfm): "/path/to/scDFM", str(args.perturbdiff): "/path/to/PerturbDiff"}
    command = "python benchmarks/vs_official.py " + " ".join(hide.get(a, a) for a in (argv if argv is not None else sys.argv[1:]))
    block = markdown(res, command.strip())
    print(block)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    if args.write_docs:
        from benchmarks.pad_memory import update_section

        update_section(block, args.docs, SECTION)
    return 0 if all("error" not in s for r in res["rows"] for s in r["sides"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
