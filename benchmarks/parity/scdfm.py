"""scDFM: the official PAD-Transformer, differential attention, MMD, path and RK4 sampler vs distgen's import."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from benchmarks.parity.common import Row, compare, exact, init_law, jitter_, lr_schedule, lrs, same_law
from benchmarks.parity.shim import function_from, official_tree
from distgen.api import build
from distgen.backbones.base import Condition
from distgen.models.official import scdfm as mapping
from distgen.types import ConditionLabels, DataInfo, SetBatch

D, HEADS, LAYERS, NTOKEN = 32, 8, 2, 48  # the official gene encoder always has 8 heads
N_GENES, K = 24, 4


def _data(seed: int = 0) -> tuple[list[str], dict[str, int], np.ndarray]:
    genes = [f"G{i:02d}" for i in range(N_GENES)]
    vocab = {s: i for i, s in enumerate(("<pad>", "<cls>", "<mask>", "control"))} | {g: 4 + i for i, g in enumerate(sorted(genes))}
    rng = np.random.default_rng(seed)
    x = np.log1p(rng.poisson(rng.gamma(2.0, 1.0, (1, N_GENES)), size=(200, N_GENES))).astype(np.float64)
    x[:, 5] = 0.7  # a zero-variance gene: no co-expression edges
    return genes, vocab, x


def run(repo: Path, overrides: tuple[str, ...] = ()) -> list[Row]:
    """Every row; ``overrides`` are appended to the preset model's (the rows that compare its settings then fail)."""
    rows: list[Row] = []
    genes, vocab, x = _data()
    with official_tree(repo) as imp, tempfile.TemporaryDirectory() as tmp:
        utils = imp("src.utils.utils")
        # --- co-expression graph: official builder (without its double log1p) vs distgen's
        blocked = utils.build_gene_coexpression_graph(x, method="pearson", sparsify="topk", k=K, log1p=False, use_negative_edge=True)
        from distgen.data.graph import coexpression_graph

        ours = coexpression_graph(torch.tensor(x, dtype=torch.float32), K)
        rows.append(exact("scDFM", "co-expression graph (top-4 |Pearson|, zero-variance gene)", bool(torch.equal(ours, ~blocked))))
        mask = utils.sorted_pad_mask(blocked, pad_size=4, gene_names=genes)
        mask_path = Path(tmp) / "toy" / "mask.pt"
        mask_path.parent.mkdir()
        torch.save(mask, mask_path)
        origin = imp("src.models.origin.model")
        torch.manual_seed(0)
        official = origin.model(ntoken=NTOKEN, d_model=D, nhead=HEADS, nlayers=LAYERS, dropout=0.1, fusion_method="differential_perceiver",
                                perturbation_function="crisper", mask_path=str(mask_path))
        jitter_(official)
        official.eval()
        keys = {k: tuple(v.shape) for k, v in official.state_dict().items()}
        want = mapping.official_keys(D, HEADS, LAYERS, NTOKEN)
        rows.append(exact("scDFM", "official state-dict keys and shapes = mapping's list", keys == want, f"{len(keys)} keys"))
        # --- distgen model: genes in another order than the vocabulary, three perturbed genes
        order = list(np.random.default_rng(1).permutation(genes))
        info = DataInfo(genes=tuple(order), perturbations=("G03", "G07", "G11"))
        torch.manual_seed(0)
        model = build("scdfm", info, [f"model.backbone.d_model={D}", f"model.backbone.heads={HEADS}", f"model.backbone.layers={LAYERS}",
                                      "model.backbone.dropout=0.0", "model.genes_per_step=12", "model.dynamics.solver.steps=19", *overrides])
        state, _ = mapping.map_state(official.state_dict(), model, vocab)
        model.load_state_dict(state)
        model.backbone.set_gene_graph(mapping.graph_from_mask(mask, order, vocab))
        model.eval()
        rows += _network(official, model, vocab, order)
        rows += _losses_and_sampler(repo, imp, official, model, vocab, order)
        rows += _training_step(repo, imp, official, model, vocab, order)
        rows.append(_times(repo, imp, official, model, vocab, order))
        rows.append(_init(origin, mask_path, info, vocab))
    rows += _optimisation()  # outside the tree: the stand-in triton must not meet torch.optim's lazy dynamo import
    return rows


def _inputs(order: list[str], vocab: dict[str, int], n: int = 6, length: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(order), generator=g)[:length]  # a gene subset in random order, as training draws it
    names = [order[i] for i in pick]
    off_ids = torch.tensor([vocab[s] for s in names])
    x_t = torch.randn(n, length, generator=g)
    ctrl = torch.rand(n, length, generator=g) * 3
    t = torch.rand(n, generator=g)
    return pick, off_ids, x_t, ctrl, t


def _labels(info_perts: tuple[str, ...], atoms: list[str]) -> ConditionLabels:
    ids = [info_perts.index(a) for a in atoms] + [-1] * (2 - len(atoms))
    return ConditionLabels(perturbation=torch.tensor([ids]), dose=torch.ones(1, 2), context=torch.zeros(1, dtype=torch.long),
                           batch=torch.zeros(1, dtype=torch.long))


@torch.no_grad()
def _network(official, model, vocab, order) -> list[Row]:
    rows = []
    pick, off_ids, x_t, ctrl, t = _inputs(order, vocab)
    n, length = x_t.shape
    for atoms in (["G07"], ["G03", "G11"]):
        pert = [vocab[a] for a in atoms] + [vocab["control"]] * (2 - len(atoms))
        want = official(off_ids.repeat(n, 1), x_t, t, ctrl, torch.tensor([pert]).repeat(n, 1))
        cond = Condition(gene_ids=pick, control=ctrl[None], control_mask=torch.ones(1, n, dtype=torch.bool),
                         labels=_labels(model.info.perturbations, atoms))
        got = model.backbone(x_t[None], t[None], cond)[0]
        kind = "single" if len(atoms) == 1 else "combination"
        rows.append(compare("scDFM", f"PAD-Transformer output, {kind} perturbation", got, want, f"{n} cells x {length} genes"))
    # differential attention of both block kinds on the same inputs
    g = torch.Generator().manual_seed(3)
    h, hc = torch.randn(4, length, D, generator=g), torch.randn(4, length, D, generator=g)
    for i in range(len(model.backbone.self_blocks)):
        blk = official.blocks[i]
        rows.append(compare("scDFM", f"differential attention, layer {i} self (Q from h~, K from h)",
                            model.backbone.self_blocks[i].attn(h, hc, h), blk.diff_self_attn.attn(h, hc)))
        rows.append(compare("scDFM", f"differential attention, layer {i} cross (map 2 from control)",
                            model.backbone.cross_blocks[i].attn(h, h, h, hc, hc), blk.diff_cross_attn.attn(h, hc)))
    return rows


@torch.no_grad()
def _losses_and_sampler(repo, imp, official, model, vocab, order) -> list[Row]:
    rows = []
    ns = function_from(repo / "src" / "script" / "run.py",
                       ("pairwise_sq_dists", "median_sigmas", "mmd2_unbiased_multi_sigma", "wrapped_vf", "generate_sample"), {})
    g = torch.Generator().manual_seed(5)
    x1_hat, x1 = torch.randn(16, 12, generator=g) * 2, torch.rand(16, 12, generator=g) * 3
    want = ns["mmd2_unbiased_multi_sigma"](x1_hat, x1, ns["median_sigmas"](x1, scales=(0.5, 1.0, 2.0, 4.0)))
    ones = torch.ones(1, 16, dtype=torch.bool)
    got = model.distribution_loss.distance(x1_hat[None], ones, x1[None], ones)[0]
    rows.append(compare("scDFM", "MMD^2 (4 RBF kernels, median bandwidths, unbiased)", got, want))
    # the CondOT path of the vendored flow_matching library
    affine = imp("src.flow_matching.path.affine")
    sched = imp("src.flow_matching.path.scheduler.scheduler")
    path = affine.AffineProbPath(scheduler=sched.CondOTScheduler())
    x0, t = torch.randn(16, 12, generator=g), torch.rand(16, generator=g)
    ps = path.sample(t=t, x_0=x0, x_1=x1)
    x_t, u = model.dynamics.path.sample(x0[None], x1[None], t[None])
    rows.append(compare("scDFM", "flow-matching path x_t (CondOT, sigma_min 0)", x_t[0], ps.x_t))
    rows.append(compare("scDFM", "flow-matching target velocity", u[0], ps.dx_t))
    # RK4 on linspace(0, 1, 20) from N(0, I), clamped at 0, with the official network vs the imported one
    pick, off_ids, _, ctrl, _ = _inputs(order, vocab, n=8, seed=7)
    pert = torch.tensor([[vocab["G03"], vocab["G11"]]]).repeat(8, 1)
    import torchdiffeq

    ns.update(config=SimpleNamespace(noise_type="Gaussian", infer_top_gene=len(pick)), device=torch.device("cpu"), torchdiffeq=torchdiffeq)
    torch.manual_seed(11)
    noise = torch.randn(8, len(pick))
    torch.manual_seed(11)  # generate_sample draws exactly this noise first
    want = ns["generate_sample"](ns["wrapped_vf"], ctrl, pert, official, gene_ids=off_ids, gene_all=off_ids, steps=20, method="rk4")
    cond = model.condition(_labels(model.info.perturbations, ["G03", "G11"]), ctrl[None], torch.ones(1, 8, dtype=torch.bool), pick)
    got = model.dynamics.sample(model.bind(cond), noise[None], torch.ones(1, 8, dtype=torch.bool))
    rows.append(compare("scDFM", "RK4 sampler, 19 steps (76 network calls), clamped", got.cells[0], want))
    return rows


def _training_step(repo, imp, official, model, vocab, order) -> list[Row]:
    """One training step on the same batch: the official ``train_step`` (MSE + 0.5 MMD^2) vs ``Generator.loss``.

    Same weights, dropout off on both sides (``eval()``; the official network has no other mode switch), the
    same cells, gene subset, times and noise: ``train_step`` draws ``randperm`` (genes), ``rand`` (t) and
    ``randn_like`` (x0) in that order after the seed, and distgen's side is given exactly those draws.
    Compares the loss and every parameter's gradient (official gradients mapped like weights).
    """
    train_step, _ = _official_train_step(repo, imp, vocab, order)
    target, control, pert, atoms = _step_batch(vocab, order)
    b = len(target)
    official.zero_grad(set_to_none=True)
    torch.manual_seed(17)
    want = train_step(control, target, pert, official, None, SimpleNamespace(device=torch.device("cpu")), noise_type="Gaussian")
    want.backward()
    torch.manual_seed(17)  # the same draws, in train_step's order
    cols = torch.randperm(len(order))[:12]
    t = torch.rand(b)
    x0 = torch.randn(b, 12)
    batch = SetBatch(target=target[None], target_mask=torch.ones(1, b, dtype=torch.bool), control=control[None],
                     control_mask=torch.ones(1, b, dtype=torch.bool), labels=_labels(model.info.perturbations, atoms),
                     gene_ids=torch.arange(len(order))).select_genes(cols)
    dyn = model.dynamics
    saved = dyn.time_sampler
    dyn.draw_source = lambda x1, c: x0[None]  # type: ignore[method-assign]
    dyn.time_sampler = SimpleNamespace(sample=lambda shape, device, dtype: t[None])
    try:
        model.zero_grad(set_to_none=True)
        got = model.loss(batch).loss
        got.backward()
    finally:
        del dyn.draw_source
        dyn.time_sampler = saved
    rows = [compare("scDFM", "training loss on one batch (flow MSE + 0.5 MMD^2)", got, want, f"{b} cells x 12 of {len(order)} genes")]
    grads = {k: (p.grad if p.grad is not None else torch.zeros_like(p)) for k, p in official.named_parameters()}
    mapped, _ = mapping.map_state({**official.state_dict(), **grads}, model, vocab)
    ours = {k: (p.grad if p.grad is not None else torch.zeros_like(p)) for k, p in model.named_parameters()}
    worst = max(ours, key=lambda k: float((ours[k] - mapped[k]).abs().max()) / max(float(mapped[k].abs().max()), 1e-12) if mapped[k].abs().max() > 0 else 0.0)
    flat_ours = torch.cat([ours[k].flatten() for k in ours])
    flat_want = torch.cat([mapped[k].flatten() for k in ours])
    rows.append(compare("scDFM", "gradients of that loss, all parameters", flat_ours, flat_want, f"{len(ours)} tensors; worst {worst}"))
    return rows


def _official_train_step(repo, imp, vocab, order):
    """The official ``train_step`` of ``run.py`` (12 genes a step, MMD weight 0.5) on a CondOT path, and the times it
    drew (each call's ``t``, recorded as the path samples it)."""
    affine = imp("src.flow_matching.path.affine")
    sched = imp("src.flow_matching.path.scheduler.scheduler")
    path, drawn = affine.AffineProbPath(scheduler=sched.CondOTScheduler()), []

    def sample(t, x_0, x_1):
        drawn.append(t.detach().clone())
        return path.sample(t=t, x_0=x_0, x_1=x_1)

    config = SimpleNamespace(infer_top_gene=12, use_mmd_loss=True, gamma=0.5)
    ns = function_from(repo / "src" / "script" / "run.py", ("train_step", "pairwise_sq_dists", "median_sigmas", "mmd2_unbiased_multi_sigma"),
                       {"config": config, "gene_ids": torch.tensor([vocab[s] for s in order]), "path": SimpleNamespace(sample=sample)})
    return ns["train_step"], drawn


def _step_batch(vocab, order, b: int = 16):
    """The training rows' cells: ``b`` targets and controls (log1p counts), their perturbation's vocabulary ids, atoms."""
    g = torch.Generator().manual_seed(13)
    target = torch.log1p(torch.poisson(torch.rand(b, len(order), generator=g) * 4, generator=g))
    control = torch.log1p(torch.poisson(torch.rand(b, len(order), generator=g) * 4, generator=g))
    atoms = ["G03", "G11"]
    return target, control, torch.tensor([[vocab[a] for a in atoms]]).repeat(b, 1), atoms


#: training steps each side runs for the time row (16 cells a step: 3,200 times a side)
TIME_STEPS, TIME_BINS = 200, 10


def _times(repo, imp, official, model, vocab, order, steps: int = TIME_STEPS) -> Row:
    """Training times by law, both codes run: the official ``train_step`` (its ``torch.rand(B)``, read off the path it
    samples) and distgen's ``Generator.loss`` (the preset's time sampler, read back from ``extras["t"]``), ``steps``
    seeded steps of 16 cells each. Each time counts in one of ``TIME_BINS`` equal bins of [0, 1); a time outside them
    is impossible, and so is every time of a step whose cells all share one (a draw per set, not per cell: the same
    marginal law). The two samples' bin counts are compared by a chi-square test of homogeneity (``same_law``)."""
    train_step, drawn = _official_train_step(repo, imp, vocab, order)
    target, control, pert, atoms = _step_batch(vocab, order)
    mask = torch.ones(1, len(target), dtype=torch.bool)
    batch = SetBatch(target=target[None], target_mask=mask, control=control[None], control_mask=mask,
                     labels=_labels(model.info.perturbations, atoms), gene_ids=torch.arange(len(order)))

    def codes(t: torch.Tensor) -> torch.Tensor:
        shared = t.numel() > 1 and bool((t == t.flatten()[0]).all())
        inside = (t >= 0) & (t < 1)
        return torch.where(inside & ~torch.tensor(shared), (t * TIME_BINS).floor().long().clamp(max=TIME_BINS - 1), TIME_BINS).flatten()

    torch.manual_seed(18)
    with torch.no_grad():
        for _ in range(steps):
            train_step(control, target, pert, official, None, SimpleNamespace(device=torch.device("cpu")), noise_type="Gaussian")
        theirs = torch.cat([codes(t) for t in drawn])
        torch.manual_seed(19)
        ours = torch.cat([codes(model.loss(batch).extras["t"].detach()) for _ in range(steps)])
    sampler = model.dynamics.time_sampler
    return same_law("scDFM", f"training times: official torch.rand per cell against distgen's, run on both sides ({TIME_BINS} bins of [0, 1); "
                    "a step sharing one time is impossible)", ours, theirs, TIME_BINS,
                    f"preset time sampler {type(sampler).__name__}")


#: further fresh builds of each side for the initialisation row: its tensors under 64 elements (the 4-element lambda
#: vectors, the 32-element value encoders and decoder output) are compared by law pooled over these builds
INIT_BUILDS = 12


def _lambda_pool(name: str) -> str:
    """One pool per block kind for the four lambda vectors of every layer (one law, ``N(0, 0.1^2)``, officially)."""
    return re.sub(r"\.\d+\.attn\.lambda_[qk][12]$", ".#.attn.lambda_*", name)


def _init(origin, mask_path, info, vocab, builds: int = INIT_BUILDS, overrides: tuple[str, ...] = ()) -> Row:
    """Initialisation law: a freshly built official model (its ``initialize_weights``: Xavier-uniform Linear weights,
    zero biases; ``nn.Embedding`` N(0, 1), ``nn.MultiheadAttention``'s own Xavier ``in_proj``, lambda vectors N(0, 0.1^2))
    mapped onto a freshly built preset model, parameter by parameter; the small tensors pooled over ``builds`` more
    fresh pairs (``init_law``'s ``extra``), the lambda vectors also across layers and the four names."""
    def pair(seed: int):
        torch.manual_seed(seed)
        official = origin.model(ntoken=NTOKEN, d_model=D, nhead=HEADS, nlayers=LAYERS, dropout=0.1, fusion_method="differential_perceiver",
                                perturbation_function="crisper", mask_path=str(mask_path))
        torch.manual_seed(seed + 1)
        fresh = build("scdfm", info, [f"model.backbone.d_model={D}", f"model.backbone.heads={HEADS}", f"model.backbone.layers={LAYERS}",
                                      *overrides])
        return fresh, mapping.map_state(official.state_dict(), fresh, vocab)[0]

    fresh, state = pair(1)
    return init_law("scDFM", fresh, state, extra=[pair(100 + 2 * i) for i in range(builds)], pool=_lambda_pool)


def _optimisation() -> list[Row]:
    """Optimizer and learning-rate schedule: ``run.py``'s ``Adam(vf.parameters(), lr=config.lr)`` and
    ``CosineAnnealingLR(optimizer, T_max=config.steps, eta_min=config.eta_min)`` with ``run.sh``'s values (lr 5e-5,
    eta_min 1e-6) vs the preset's optimizer and scheduler as the trainer builds them."""
    from distgen.config import load_config
    from distgen.train.optim import make_optimizer
    from distgen.train.options import train_options
    from distgen.train.schedule import make_scheduler

    train = train_options(load_config("scdfm")["train"])
    total, lr, eta_min = 2000, 5e-5, 1e-6
    weights = [torch.nn.Parameter(torch.zeros(3, 3)), torch.nn.Parameter(torch.zeros(3))]
    ours = make_optimizer([("w", weights[0]), ("b", weights[1])], train.optimizer, train.lr, (float(train.betas[0]), float(train.betas[1])),
                          train.eps, train.weight_decay, train.decay_norm_and_bias)
    theirs = torch.optim.Adam(weights, lr=lr)
    keys = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")
    same = type(ours) is torch.optim.Adam and all(g[k] == theirs.param_groups[0][k] for g in ours.param_groups for k in keys)
    same = same and train.grad_clip is None and train.ema_decay is None  # run.py clips nothing and averages nothing
    preset = "; ".join(", ".join(f"{k} {g[k]}" for k in keys) for g in ours.param_groups)
    rows = [exact("scDFM", "optimizer: Adam, its settings (" + ", ".join(keys) + "), no clipping, no EMA", same,
                  f"official {', '.join(f'{k} {theirs.param_groups[0][k]}' for k in keys)}; preset {type(ours).__name__} {preset}, "
                  f"grad clip {train.grad_clip}, EMA {train.ema_decay}")]
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([w], lr=lr)
    got_opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=train.lr)
    got = lrs(got_opt, make_scheduler(got_opt, total, train.warmup_steps, train.schedule, train.min_lr_ratio, train.plateau_ratio), total)
    # documented (docs/scdfm.md, "Where distgen differs"): the preset's cosine reaches eta_min at its last step, T_max - 1
    want = lrs(opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - 1, eta_min=eta_min), total)
    opt = torch.optim.Adam([w], lr=lr)
    official = lrs(opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=eta_min), total)
    off, at = max((abs(a - b) / b, i) for i, (a, b) in enumerate(zip(got, official)))
    rows.append(lr_schedule("scDFM", "learning rate at every step = CosineAnnealingLR(T_max = steps - 1, eta_min 1e-6)", got, want,
                            f"{total} steps; against the official T_max = steps: at most {off:.2%} apart, at step {at} (documented)"))
    return rows
