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


def run(repo: Path, overrides: tuple[str, ...] = (), data_rows: bool = True) -> list[Row]:
    """Every row; ``overrides`` are appended to the preset model's (the rows that compare its settings then fail).
    ``data_rows=False`` leaves out the batching rows on a real dataset and the evaluation rows (about a minute)."""
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
        rows += _dropout(official, model, vocab, order, mapping.graph_from_mask(mask, order, vocab), overrides)
        rows.append(_init(origin, mask_path, info, vocab))
    rows.append(_precision(repo))
    rows += _optimisation()  # outside the tree: the stand-in triton must not meet torch.optim's lazy dynamo import
    if data_rows:
        from benchmarks.parity.batching import scdfm_rows

        rows += scdfm_rows(repo)
        rows += _evaluation(repo)
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


#: forward passes a side for the dropout rows (train mode, one seed each)
DROPOUT_DRAWS = 300


@torch.no_grad()
def _dropout(official, model, vocab, order, graph: torch.Tensor, overrides: tuple[str, ...] = (), draws: int = DROPOUT_DRAWS) -> list[Row]:
    """Dropout in training, by law (the two codes draw their masks in another order and shape, so not draw for draw):
    the official network built with ``dropout=0.1`` (``run.py``'s default) and the preset's backbone at its own
    ``dropout`` and ``gene_dropout``, the same weights, both in train mode, ``draws`` seeded forward passes each on one
    input. Compared: the spread of each output around its mean over the draws (std pooled over every output; the same
    dropout rate gives the same spread) and the correlation of two cells' deviations (each cell its own gene-encoder
    draw gives a correlation near the official one; one draw for the whole batch correlates them). Tolerances:
    std ratio within 10 %, correlations within 0.1."""
    pick, off_ids, x_t, ctrl, t = _inputs(order, vocab)
    n = x_t.shape[0]
    atoms = ["G03", "G11"]
    pert = torch.tensor([[vocab[a] for a in atoms]]).repeat(n, 1)
    torch.manual_seed(0)
    train_model = build("scdfm", model.info, [f"model.backbone.d_model={D}", f"model.backbone.heads={HEADS}", f"model.backbone.layers={LAYERS}",
                                              "model.genes_per_step=12", *overrides])
    train_model.backbone.set_gene_graph(graph)
    train_model.load_state_dict(model.state_dict())
    bb = train_model.backbone
    cond = Condition(gene_ids=pick, control=ctrl[None], control_mask=torch.ones(1, n, dtype=torch.bool),
                     labels=_labels(model.info.perturbations, atoms))
    official.train()
    train_model.train()
    try:
        theirs, ours = [], []
        for seed in range(draws):
            torch.manual_seed(1000 + seed)
            theirs.append(official(off_ids.repeat(n, 1), x_t, t, ctrl, pert))
            torch.manual_seed(5000 + seed)
            ours.append(train_model.backbone(x_t[None], t[None], cond)[0])
    finally:
        official.eval()
    o, d = torch.stack(theirs).double(), torch.stack(ours).double()

    def spread(x: torch.Tensor) -> float:
        return float((x - x.mean(0)).pow(2).mean().sqrt())

    def cells_corr(x: torch.Tensor) -> float:
        dev = (x - x.mean(0)).flatten(2)
        a, b = dev[:, 0].flatten(), dev[:, 1].flatten()
        return float((a * b).mean() / (a.pow(2).mean() * b.pow(2).mean()).sqrt())

    ratio = spread(d) / spread(o)
    rows = [exact("scDFM", f"dropout in training, by law: spread of the outputs over {draws} train-mode passes (official dropout 0.1, "
                  "preset backbone.dropout; within 10 %)", abs(ratio - 1) < 0.1,
                  f"std distgen {spread(d):.4g}, official {spread(o):.4g} (ratio {ratio:.3f}); preset gene_dropout {bb.gene_dropout}")]
    co, cd = cells_corr(o), cells_corr(d)
    rows.append(exact("scDFM", "dropout in training, by law: correlation of two cells' deviations (the gene encoder's draw per cell; within 0.1)",
                      abs(co - cd) < 0.1, f"distgen {cd:.3f}, official {co:.3f}"))
    return rows


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


def _precision(repo: Path) -> Row:
    """Precision: ``run.py`` builds ``Accelerator(kwargs_handlers=...)`` with no ``mixed_precision`` (accelerate's default:
    none) and nothing under ``src/`` autocasts, halves or allows TF32, so it trains in full fp32; the preset's
    ``train.precision`` and ``train.tf32`` against that."""
    import ast

    from benchmarks.parity.perturbdiff import lower_precision
    from distgen.config import load_config
    from distgen.train.options import train_options

    tree = ast.parse((repo / "src" / "script" / "run.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Accelerator"]
    mixed = [k.arg for c in calls for k in c.keywords if k.arg in ("mixed_precision", "fp16", "cpu")]
    lower = lower_precision(repo)
    train = train_options(load_config("scdfm")["train"])
    ok = len(calls) == 1 and not mixed and not lower and (train.precision, train.tf32) == ("fp32", False)
    return exact("scDFM", "precision: run.py's Accelerator without mixed precision, no autocast/half/bf16/TF32 in src/ vs the preset's "
                 "train.precision and train.tf32", ok, f"{len(calls)} Accelerator call(s), mixed-precision arguments {mixed or 'none'}; "
                 f"lower precision in src/: {', '.join(lower[:3]) or 'none'}; preset {train.precision}, tf32 {train.tf32}")


#: the metrics ``pick_eval_score`` reads for its single-metric schemes (``scheme`` names ``agg_results`` columns)
EVAL_SCHEMES = ("mse", "mae", "pearson_delta", "mse_delta")


def _eval_pair(n_genes: int = 60, n_real: int = 50, n_pred: int = 128, seed: int = 4):
    """A prediction/truth pair laid out as the official ``test()`` writes it: the control cells in both files (the
    prediction's are the same control cells), then per condition its real cells and 128 generated ones."""
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 1.0, n_genes)
    ctrl = np.log1p(rng.poisson(base, (n_real, n_genes)))
    real, pred, real_obs, pred_obs = [ctrl], [ctrl], ["control"] * n_real, ["control"] * n_real
    for name in ("G03", "G07", "G03+G11"):
        effect = rng.normal(0, 0.8, n_genes) * (rng.random(n_genes) < 0.3)
        real.append(np.log1p(rng.poisson(base * np.exp(effect), (n_real, n_genes))))
        pred.append(np.log1p(rng.poisson(base * np.exp(0.6 * effect + rng.normal(0, 0.2, n_genes)), (n_pred, n_genes))))
        real_obs += [name] * n_real
        pred_obs += [name] * n_pred
    var = pd.DataFrame(index=[f"g{i}" for i in range(n_genes)])

    def adata(x, obs):
        return ad.AnnData(X=np.vstack(x).astype(np.float32), obs=pd.DataFrame({"perturbation": obs}, index=[f"c{i}" for i in range(len(obs))]),
                          var=var)

    return adata(pred, pred_obs), adata(real, real_obs)


def _evaluation(repo: Path) -> list[Row]:
    """Evaluation as the official ``test()`` computes it: cell-eval's ``MetricsEvaluator(pred, real, control_pert="control",
    pert_col="perturbation").compute()`` (its defaults), per perturbation, against distgen's metrics of the same names on
    the same pair (``load_pair`` + ``run_metrics``); and the one number ``test()`` returns and prints,
    ``pick_eval_score(agg_results, scheme)`` (``src/utils/utils.py``), against distgen's mean over perturbations.
    Skipped rows name why when cell-eval is not installed."""
    try:
        from cell_eval import MetricsEvaluator
    except ImportError:
        return [exact("scDFM", "evaluation: official test()'s cell-eval metrics", False, "cell-eval is not installed: pip install cell-eval==0.8.2")]
    import contextlib
    import io
    import warnings

    from distgen.evaluation.suite import run_metrics
    from distgen.pipeline.evaluate import load_pair

    pred, real = _eval_pair()
    ns = function_from(repo / "src" / "utils" / "utils.py", ("pick_eval_score",), {})
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        ev = MetricsEvaluator(adata_pred=pred.copy(), adata_real=real.copy(), control_pert="control", pert_col="perturbation", num_threads=1,
                              outdir=tmp)
        results, agg = ev.compute(write_csv=False)  # its defaults, as test() calls it
    theirs = results.to_pandas().set_index("perturbation")
    data, _ = load_pair(pred, real, "perturbation", "control")
    ours = run_metrics(data, names=list(EVAL_SCHEMES))
    perts = list(ours.perts)
    got = torch.tensor([[ours.values[m][perts.index(p)] for m in EVAL_SCHEMES] for p in perts], dtype=torch.float64)
    want = torch.tensor([[float(theirs.loc[p, m]) for m in EVAL_SCHEMES] for p in perts], dtype=torch.float64)
    rows = [compare("scDFM", f"evaluation: official test()'s cell-eval metrics per perturbation ({', '.join(EVAL_SCHEMES)}) vs distgen's",
                    got, want, f"{len(perts)} perturbations, 128 generated cells each, control cells in both files")]
    table = agg.to_pandas()
    mean_row = table.index[table["statistic"] == "mean"][0]
    picked = [float(ns["pick_eval_score"](agg, m)) for m in EVAL_SCHEMES]
    means = [float(table.loc[mean_row, m]) for m in EVAL_SCHEMES]
    ours_mean = [ours.mean(m) for m in EVAL_SCHEMES]
    first = str(table["statistic"].iloc[0])
    rows.append(compare("scDFM", "evaluation: agg_results' mean row (the official test()'s summary table) vs distgen's mean over perturbations; "
                        "the score test() returns, pick_eval_score(agg_results, scheme), is not compared: it reads the first row",
                        torch.tensor(ours_mean, dtype=torch.float64), torch.tensor(means, dtype=torch.float64),
                        f"compared with agg_results' 'mean' row; the official pick_eval_score reads its first row, '{first}': "
                        + ", ".join(f"{m} {v:g}" for m, v in zip(EVAL_SCHEMES, picked)) + " (documented)"))
    return rows
