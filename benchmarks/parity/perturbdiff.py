"""PerturbDiff: the official Cross_DiT + CovEncoder, energy loss and DDIM sampler vs distgen's import."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from benchmarks.parity.common import Row, compare, exact, jitter_
from benchmarks.parity.shim import official_tree
from distgen.api import build
from distgen.models.official import perturbdiff as mapping
from distgen.types import ConditionLabels, DataInfo

G, D, DEPTH, HEADS, PART = 10, 16, 3, 4, 8
PERTS, CONTEXTS, BATCHES = ("IFNB", "IL2", "TNF"), ("B", "T"), ("d1", "d2", "d3")
#: the official codes (name -> code); the distgen data lists names in another order
CODES = {"pert_dict": {"PBS": 0, "TNF": 1, "IFNB": 2, "IL2": 3}, "cell_type_dict": {"T": 0, "B": 1}, "batch_dict": {"d3": 0, "d1": 1, "d2": 2}}


def _official(imp):
    main = imp("src.models.cross_dit.cross_dit_main")
    cov = imp("src.models.covariate_encoding")
    cfg = SimpleNamespace(dit_num_heads=HEADS, separate_embedder=False, hidden_num=[G, D], dit_depth=DEPTH, use_gene_embedding=False,
                          gene_embedding_type="linear", Block_type="MM_DiT", use_class_silu=False, predict_xstart=True, p_drop_control=0.0,
                          cutoff=1e-4, dataset_dict=None)
    cov_cfg = SimpleNamespace(pert_encoding="onehot", drug_encoding="onehot", replogle_gene_encoding="onehot", celltype_encoding="onehot",
                              batch_encoding="onehot", hidden_dim=PART, num_pert=len(CODES["pert_dict"]), num_celltype=2, num_batch=3, output_dim=G)
    torch.manual_seed(0)
    net, enc = main.Cross_DiT(cfg), cov.CovEncoder(cov_cfg)
    jitter_(net, 0.1)
    jitter_(enc, 0.1, seed=1)
    return net.eval(), enc.eval()


def _labels(n: int, pert: str, ctx: str, batch: str) -> tuple[ConditionLabels, tuple[torch.Tensor, ...]]:
    ours = ConditionLabels(perturbation=torch.tensor([[PERTS.index(pert)]] * n), dose=torch.ones(n, 1),
                           context=torch.full((n,), CONTEXTS.index(ctx)), batch=torch.full((n,), BATCHES.index(batch)))
    theirs = tuple(torch.full((n, 1), CODES[k][v]) for k, v in (("pert_dict", pert), ("cell_type_dict", ctx), ("batch_dict", batch)))
    return ours, theirs


def run(repo: Path) -> list[Row]:
    rows: list[Row] = []
    with official_tree(repo, stub_packages=("src.models", "src.common")) as imp:
        net, enc = _official(imp)
        keys = {f"model.{k}": tuple(v.shape) for k, v in net.state_dict().items()} | {f"cov_encoder.{k}": tuple(v.shape) for k, v in enc.state_dict().items()}
        want = mapping.official_keys(G, D, DEPTH, HEADS, len(CODES["pert_dict"]), 2, 3, PART)
        rows.append(exact("PerturbDiff", "official state-dict keys and shapes = mapping's list", keys == want, f"{len(keys)} keys"))
        info = DataInfo(genes=tuple(f"g{i}" for i in range(G)), perturbations=PERTS, contexts=CONTEXTS, batches=BATCHES)
        torch.manual_seed(0)
        model = build("perturbdiff", info, [f"model.backbone.dim={D}", f"model.backbone.depth={DEPTH}", f"model.backbone.heads={HEADS}",
                                            f"model.conditioner.part_dim={PART}"])
        sd = {f"model.{k}": v for k, v in net.state_dict().items()} | {f"cov_encoder.{k}": v for k, v in enc.state_dict().items()}
        state, _ = mapping.map_state(sd, model, CODES)
        model.load_state_dict(state)
        model.eval()
        rows += _network(net, enc, model)
        rows += _loss(model)
        rows += _ddim(imp, net, enc, model)
    return rows


def _inputs(b: int = 2, m: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, m, G, generator=g), torch.rand(b, m, G, generator=g), torch.rand(b, m, G, generator=g)


@torch.no_grad()
def _network(net, enc, model) -> list[Row]:
    rows = []
    x_t, x_sc, ctrl = _inputs()
    b, m, _ = x_t.shape
    labels, codes = _labels(b, "IL2", "B", "d3")
    steps = torch.tensor([37, 912])
    t = (1 - (steps.double() + 1) / 1000).float()[:, None].expand(b, m)  # distgen's time for step n
    zeros = torch.zeros_like(ctrl)
    for dropped in (False, True):
        cond_in = {"ds_name": ["toy"] * b} | ({} if dropped else {"batch_emb": enc(*codes)})
        want = net(torch.cat([x_t, x_sc], -1), torch.cat([ctrl, zeros], -1), steps[:, None], self_condition=cond_in)["x"]
        drop = torch.full((b,), dropped)
        cond = model.condition(labels, ctrl, torch.ones(b, m, dtype=torch.bool), torch.arange(G), drop)
        got = model.backbone(x_t, t, cond, x_self_cond=x_sc)
        what = "null condition (CFG)" if dropped else "with covariates, self-conditioning"
        rows.append(compare("PerturbDiff", f"Cross-DiT output, {what}", got, want, f"steps 37 and 912, {b} sets x {m} cells"))
    return rows


@torch.no_grad()
def _loss(model) -> list[Row]:
    from geomloss import SamplesLoss

    # In float64, so that the formula is compared and not the rounding: in float32 geomloss takes each
    # norm apart from the matmul, which leaves noise on the zero diagonal (1.8e-4 of the loss on 9 cells
    # x 2,000 genes against float64), where distgen reads the norms off the matmul's own diagonal (2e-6).
    # What remains in float64 (~1e-5 relative at 9 cells) is geomloss' floor on squared distances,
    # sqrt(max(d^2, 1e-8)): each cell is 1e-4 from itself there, 0 in distgen.
    x, y, _ = _inputs(b=3, m=9, seed=4)
    x, y = x.double(), y.double()
    want = SamplesLoss(loss="energy", blur=0.05)(y, x)  # (target, prediction) per set, as the official loss
    mask = torch.ones(3, 9, dtype=torch.bool)
    got = model.distribution_weight * model.distribution_loss.distance(x, mask, y, mask)
    return [compare("PerturbDiff", "energy loss (geomloss 'energy' = 1/2 biased energy distance), float64", got, want, "3 sets")]


@torch.no_grad()
def _ddim(imp, net, enc, model) -> list[Row]:
    core = imp("src.models.diffusion.diffusion_core")
    sched = imp("src.models.diffusion.diffusion_schedules")
    diffusion = core.GaussianDiffusion(betas=sched.get_named_beta_schedule("linear", 1000), model_mean_type=core.ModelMeanType.START_X,
                                       model_var_type=core.ModelVarType.FIXED_LARGE, loss_type=core.LossType.MSE, rescale_timesteps=False)
    _, _, ctrl = _inputs(b=2, m=6, seed=9)
    b, m, _ = ctrl.shape
    labels, codes = _labels(b, "TNF", "T", "d1")
    noise = torch.randn(b, m, G, generator=torch.Generator().manual_seed(2))
    cond_in = {"batch_emb": enc(*codes), "cont_emb": ctrl, "gene_emb": None, "ds_name": ["toy"] * b}
    want, _ = diffusion.ddim_sample_loop(net, (b, m, G), self_condition=cond_in, noise=noise, clip_denoised=True, start_time=100, eta=0.0,
                                         guidance_strength=1.0)
    mask = torch.ones(b, m, dtype=torch.bool)
    cond = model.condition(labels, ctrl, mask, torch.arange(G))
    null = model.condition(labels, ctrl, mask, torch.arange(G), torch.ones(b, dtype=torch.bool))
    got = model.dynamics.sample(model.bind(cond, null), noise, mask)
    return [compare("PerturbDiff", "DDIM eta 0, steps 99..0 from noise, CFG strength 1, clipping 1e-4, self-conditioning",
                    got.cells, want, f"{got.nfe} network calls")]
