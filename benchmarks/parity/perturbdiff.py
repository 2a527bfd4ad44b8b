"""PerturbDiff: the official Cross_DiT + CovEncoder, energy loss and DDIM sampler vs distgen's import."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import torch

from benchmarks.parity.common import Row, compare, discrete_law, exact, init_law, jitter_, lr_schedule, lrs, same_law
from benchmarks.parity.shim import function_from, official_tree
from distgen.api import build
from distgen.models.official import perturbdiff as mapping
from distgen.types import ConditionLabels, DataInfo, SetBatch

if TYPE_CHECKING:
    from distgen.train.trainer import Trainer

G, D, DEPTH, HEADS, PART = 10, 16, 3, 4, 8
#: the initialisation row's sizes (genes, width, depth, heads, part): every random tensor 64+ elements, so the one-hot
#: tables, null and token vectors and the control layer's bound are compared by law, not only for being random
INIT_SIZES = (128, 128, 3, 4, 64)
PERTS, CONTEXTS, BATCHES = ("IFNB", "IL2", "TNF"), ("B", "T"), ("d1", "d2", "d3")
#: the official codes (name -> code); the distgen data lists names in another order
CODES = {"pert_dict": {"PBS": 0, "TNF": 1, "IFNB": 2, "IL2": 3}, "cell_type_dict": {"T": 0, "B": 1}, "batch_dict": {"d3": 0, "d1": 1, "d2": 2}}


def _official(imp):
    main = imp("src.models.cross_dit.cross_dit_main")
    cov = imp("src.models.covariate_encoding")
    cfg, cov_cfg = _configs()
    torch.manual_seed(0)
    net, enc = main.Cross_DiT(cfg), cov.CovEncoder(cov_cfg)
    jitter_(net, 0.1)
    jitter_(enc, 0.1, seed=1)
    return net.eval(), enc.eval()


def _configs(g: int = G, d: int = D, depth: int = DEPTH, heads: int = HEADS, part: int = PART) -> tuple[SimpleNamespace, SimpleNamespace]:
    """The official model and covariate-encoder configs at the harness's sizes (``configs/model/base.yaml`` otherwise)."""
    cfg = SimpleNamespace(dit_num_heads=heads, separate_embedder=False, hidden_num=[g, d], dit_depth=depth, use_gene_embedding=False,
                          gene_embedding_type="linear", Block_type="MM_DiT", use_class_silu=False, predict_xstart=True, p_drop_control=0.0,
                          cutoff=1e-4, dataset_dict=None)
    cov_cfg = SimpleNamespace(pert_encoding="onehot", drug_encoding="onehot", replogle_gene_encoding="onehot", celltype_encoding="onehot",
                              batch_encoding="onehot", hidden_dim=part, num_pert=len(CODES["pert_dict"]), num_celltype=2, num_batch=3, output_dim=g)
    return cfg, cov_cfg


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
        torch.manual_seed(0)
        model = harness_model()
        sd = {f"model.{k}": v for k, v in net.state_dict().items()} | {f"cov_encoder.{k}": v for k, v in enc.state_dict().items()}
        state, _ = mapping.map_state(sd, model, CODES)
        model.load_state_dict(state)
        model.eval()
        rows += _network(net, enc, model)
        rows += _loss(model)
        rows += _ddim(imp, net, enc, model)
        rows += _training_step(repo, imp, net, enc, model)
        rows += coins(repo, imp)
        rows.append(_time_steps(imp, model))
        rows += _precision(repo, imp, net, enc)
        rows += _optimisation(imp)
    rows.append(_settings(repo))  # outside the tree: the stand-in triton must not meet torch.optim's lazy dynamo import
    rows.append(_schedule(repo))
    rows.append(_ema(repo))
    from benchmarks.parity.batching import perturbdiff_rows

    rows += perturbdiff_rows(repo)
    return rows


def harness_model(overrides: tuple[str, ...] = ()):
    """The ``perturbdiff`` preset at the harness's sizes (``overrides`` appended)."""
    info = DataInfo(genes=tuple(f"g{i}" for i in range(G)), perturbations=PERTS, contexts=CONTEXTS, batches=BATCHES)
    return build("perturbdiff", info, [f"model.backbone.dim={D}", f"model.backbone.depth={DEPTH}", f"model.backbone.heads={HEADS}",
                                       f"model.conditioner.part_dim={PART}", *overrides])


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


def _official_diffusion(imp):
    """The official ``GaussianDiffusion`` as ``create_diffusion`` builds it for the README's runs (linear, 1,000 steps, x0)."""
    core = imp("src.models.diffusion.diffusion_core")
    sched = imp("src.models.diffusion.diffusion_schedules")
    return core.GaussianDiffusion(betas=sched.get_named_beta_schedule("linear", 1000), model_mean_type=core.ModelMeanType.START_X,
                                  model_var_type=core.ModelVarType.FIXED_LARGE, loss_type=core.LossType.MSE, rescale_timesteps=False)


@torch.no_grad()
def _ddim(imp, net, enc, model) -> list[Row]:
    diffusion = _official_diffusion(imp)
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


def _official_draws(seed: int, dropped: bool) -> bool:
    """Whether ``training_losses`` self-conditions after ``manual_seed(seed)`` (its coins: ``rand(1) < p_drop_cond``
    when ``p_drop_cond > 0``, then ``rand(1) > 0.5``)."""
    torch.manual_seed(seed)
    if dropped:
        torch.rand(1)
    return bool((torch.rand(1) > 0.5).item())


def _step_inputs(imp, net, seed: int, b: int = 3, m: int = 16):
    """The official diffusion (the network's MSE term on) and one training batch: ``b`` sets of ``m`` target and control
    cells drawn from a generator seeded ``seed`` (returned, for later draws), their distgen labels and official codes."""
    diffusion = _official_diffusion(imp)
    net.model_cfg.no_mse_loss = False
    g = torch.Generator().manual_seed(seed)
    x_start, ctrl = torch.rand(b, m, G, generator=g) * 2, torch.rand(b, m, G, generator=g) * 2
    labels, codes = _labels(b, "IFNB", "B", "d2")
    return diffusion, g, x_start, ctrl, labels, codes


def _training_step(repo, imp, net, enc, model) -> list[Row]:
    """One training step on the same batch: the official ``training_losses`` + the Lightning module's sum vs ``Generator.loss``.

    The official loss of a step is ``mean(mse1 + MMD_loss_factor * mmd1)`` (``_compute_loss`` / ``training_step`` with the
    uniform schedule sampler's unit weights): per-set MSE of the x0 prediction, geomloss ``energy`` between the sets.
    Both sides get the same sets, noise, steps and coins (condition dropped or not: ``p_drop_cond`` 1 or 0; self-conditioning
    on or off: the official coin read off the seed, distgen's ``self_condition`` 1 or 0). Compares the loss and every
    gradient (official gradients mapped like weights) in all four cases. The official energy term is evaluated in float64
    (the network stays float32), for the reason given in ``_loss``: in float32 geomloss leaves each cell's distance to
    itself at rounding noise (here 1.2e-5 of the loss on 16 cells x 10 genes, all of the difference).
    """
    from geomloss import SamplesLoss

    official_energy = SamplesLoss(loss="energy", blur=0.05)
    factor = official_settings(repo).mmd_factor  # MMD_loss_factor, 1.0

    def energy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return official_energy(a.double(), b.double()).to(a.dtype)

    diffusion, g, x_start, ctrl, labels, codes = _step_inputs(imp, net, 21)
    b, m = x_start.shape[:2]
    mask = torch.ones(b, m, dtype=torch.bool)
    batch = SetBatch(target=x_start, target_mask=mask, control=ctrl, control_mask=mask, labels=labels, gene_ids=torch.arange(G))
    dyn = model.dynamics
    saved = (model.input_scale, model.p_drop_condition, dyn.self_condition)
    rows = []
    try:
        model.input_scale = 1.0  # the harness hands both sides the network's inputs
        for dropped in (False, True):
            for self_cond in (False, True):
                seed = next(s for s in range(100) if _official_draws(s, dropped) == self_cond)
                # distgen: its own step draw (read back from extras["t"]), the official noise, the same coins
                noise = torch.randn(b, m, G, generator=g)
                model.p_drop_condition, dyn.self_condition = float(dropped), float(self_cond)
                dyn.draw_source = lambda x1, c, noise=noise: noise  # type: ignore[method-assign]
                model.train()
                model.zero_grad(set_to_none=True)
                out = model.loss(batch)
                out.loss.backward()
                steps = (1000 * (1 - out.extras["t"][:, 0].double()) - 1).round().long()
                # official: the same steps and noise; its coins from the seed
                net.zero_grad(set_to_none=True)
                enc.zero_grad(set_to_none=True)
                cond_in = {"batch_emb": enc(*codes), "cont_emb": ctrl, "gene_emb": None, "ds_name": ["toy"] * b}
                torch.manual_seed(seed)
                terms = diffusion.training_losses(net, x_start, steps, self_condition=cond_in, noise=noise, p_drop_cond=float(dropped),
                                                  MMD_loss_fn=energy)
                want = (terms["loss1"] + terms["mmd1"] * factor).mean()  # unit weights (the uniform sampler)
                want.backward()
                what = f"{'condition dropped' if dropped else 'with covariates'}, {'self-conditioned' if self_cond else 'no self-conditioning'}"
                rows.append(compare("PerturbDiff", f"training loss on one batch (x0 MSE + geomloss energy), {what}", out.loss, want,
                                    f"{b} sets x {m} cells, steps {steps.tolist()}"))
                rows.append(_gradients(net, enc, model, what))
    finally:
        del dyn.draw_source
        model.input_scale, model.p_drop_condition, dyn.self_condition = saved
        model.eval()
    return rows


#: what would make the official trainer compute in another precision than Lightning's ``trainer.precision`` says
LOWER_PRECISION = re.compile(r"autocast|\.half\(\)|bfloat16|float16|set_float32_matmul_precision|allow_tf32|mixed_precision")


def lower_precision(repo: Path) -> list[str]:
    """Where the official sources under ``src/`` could compute below fp32 (``LOWER_PRECISION``): ``file: match``."""
    return sorted({f"{f.relative_to(repo)}: {m.group(0)}" for f in (repo / "src").rglob("*.py")
                   for m in LOWER_PRECISION.finditer(f.read_text(errors="replace"))})


def _precision(repo: Path, imp, net, enc) -> list[Row]:
    """Precision: the official trainer's ``trainer.precision`` (the command's, else ``configs/trainer``'s: Lightning
    ``32-true``, no autocast) and no lower-precision call in its sources, against the preset's ``train.precision: fp32``;
    and the one float64 step it has: ``training_losses`` draws its noise as ``randn_like(x, dtype=float64)`` when given
    none (as ``_compute_loss`` calls it), so ``x_t`` reaches the network in float64. Runs the official loss that way
    and with the same draw rounded to float32 (what the training-step rows give both codes, and the preset computes),
    the coins after it unchanged, on four seeds."""
    from distgen.config import load_config
    from distgen.train.options import train_options

    official = official_settings(repo)
    train = train_options(load_config("perturbdiff")["train"])
    lower = lower_precision(repo)
    rows = [exact("PerturbDiff", "precision: official trainer.precision (Lightning) and no autocast/half/bf16/TF32 in src/ vs the preset's "
                  "train.precision and train.tf32", official.precision == "32-true" and (train.precision, train.tf32) == ("fp32", False) and not lower,
                  f"official {official.precision}; preset {train.precision}, tf32 {train.tf32}" + (f"; lower precision in {', '.join(lower[:3])}" if lower else ""))]
    from geomloss import SamplesLoss

    energy = SamplesLoss(loss="energy", blur=0.05)
    diffusion, _, x_start, ctrl, _, codes = _step_inputs(imp, net, 23)
    b = x_start.shape[0]
    steps = torch.tensor([10, 500, 990])
    seen: list[torch.dtype] = []
    hook = net.register_forward_pre_hook(lambda _m, args: seen.append(args[0].dtype))
    f64, f32 = [], []
    try:
        with torch.no_grad():
            for seed in range(4):
                for rounded in (False, True):
                    cond = {"batch_emb": enc(*codes), "cont_emb": ctrl, "gene_emb": None, "ds_name": ["toy"] * b}
                    torch.manual_seed(seed)
                    noise = torch.randn_like(x_start, dtype=torch.float64).float() if rounded else None
                    terms = diffusion.training_losses(net, x_start, steps, self_condition=cond, noise=noise, p_drop_cond=0.0,
                                                      MMD_loss_fn=lambda a, c: energy(a.double(), c.double()).to(a.dtype))
                    (f32 if rounded else f64).append((terms["loss1"] + terms["mmd1"]).mean())
    finally:
        hook.remove()
    inputs = sorted({str(d).replace("torch.", "") for d in seen})
    rows.append(compare("PerturbDiff", "training loss with the official float64 noise (noise=None, as its trainer) vs the same draw in float32",
                        torch.stack(f32), torch.stack(f64), f"4 seeds, self-conditioning coins as drawn; x_t reaches the network as {', '.join(inputs)}"))
    return rows


#: training steps each side runs for the coin rows (a rate 0.1 off the official one fails at this count: z 4.5, chi2 20)
COIN_STEPS = 1000


def coins(repo, imp, overrides: tuple[str, ...] = (), steps: int = COIN_STEPS) -> list[Row]:
    """The two per-step coins of training, by running both codes for ``steps`` steps on their own seeded draws:
    the official ``training_losses`` (``p_drop_cond`` from ``official_settings``, the self-conditioning coin
    ``rand(1) > 0.5`` its own) and distgen's ``Generator.loss`` with the model's (the preset's) settings.

    What each step did is read off the network calls, not off either code's flags: a self-conditioned step calls the
    network twice (a no-grad first pass, then the pass fed its estimate; distgen: ``x_self_cond`` on the second
    call only), one that is not calls it once; a dropped condition reaches the official network as ``batch_emb None``
    and distgen's backbone as ``Condition.drop``. One coin per batch: every set of a step dropped or none, in every
    call of that step (a per-set draw, ``condition_dropout: set``, mixes them: an impossible step). The RNG calls of
    the two codes differ (distgen also draws its noise and steps from the global generator), so the draws are
    compared by law: each coin's rate, and the joint law of the two (independent coins on both sides), by a chi-square
    test of homogeneity (``same_law``)."""
    official = official_settings(repo)
    diffusion = _official_diffusion(imp)
    # one block each (the coins do not depend on the network; a deeper one only costs time), the preset's settings
    cfg, cov_cfg = _configs(depth=1)
    cfg.p_drop_control = official.p_drop_control  # the run's (0: no third coin)
    torch.manual_seed(40)
    net, enc = imp("src.models.cross_dit.cross_dit_main").Cross_DiT(cfg), imp("src.models.covariate_encoding").CovEncoder(cov_cfg)
    model = harness_model(("model.backbone.depth=1", *overrides))
    b, m = 2, 4
    x, ctrl = torch.rand(b, m, G, generator=torch.Generator().manual_seed(41)), torch.rand(b, m, G, generator=torch.Generator().manual_seed(42))
    labels, codes = _labels(b, "TNF", "B", "d1")
    mask = torch.ones(b, m, dtype=torch.bool)
    batch = SetBatch(target=x, target_mask=mask, control=ctrl, control_mask=mask, labels=labels, gene_ids=torch.arange(G))
    calls: list[tuple[bool, ...]] = []  # per network call: (self-conditioned input, dropped flag of each set)

    def official_call(module, args, kwargs):
        dropped = kwargs["self_condition"].get("batch_emb") is None
        calls.append((bool(args[0][..., G:].abs().sum() > 0), *([dropped] * b)))

    def distgen_call(module, args, kwargs):
        drop = args[2].drop
        calls.append(("x_self_cond" in kwargs, *(drop.tolist() if drop is not None else [False] * b)))

    def outcome() -> int:
        """``2 * dropped + self-conditioned`` for the step whose calls were recorded; 4 for an impossible step."""
        seen, first = list(calls), calls[0]
        calls.clear()
        flags = set(first[1:])
        if len(flags) != 1 or any(c[1:] != first[1:] for c in seen) or first[0]:
            return 4
        if len(seen) == 2 and seen[1][0]:
            return 2 * flags.pop() + 1
        return 2 * flags.pop() if len(seen) == 1 else 4

    theirs, ours = [], []
    noise = torch.randn(b, m, G, generator=torch.Generator().manual_seed(43))
    t = torch.full((b,), 500)
    net.model_cfg.no_mse_loss = False
    net.register_forward_pre_hook(official_call, with_kwargs=True)
    torch.manual_seed(44)
    with torch.no_grad():
        emb = enc(*codes)
        for _ in range(steps):
            cond_in = {"batch_emb": emb, "cont_emb": ctrl, "gene_emb": None, "ds_name": ["toy"] * b}
            diffusion.training_losses(net, x, t, self_condition=cond_in, noise=noise, p_drop_cond=official.p_drop_cond,
                                      MMD_loss_fn=lambda a, c: a.new_zeros(a.shape[0]))
            theirs.append(outcome())
    model.backbone.register_forward_pre_hook(distgen_call, with_kwargs=True)
    model.train()
    torch.manual_seed(45)
    with torch.no_grad():
        for _ in range(steps):
            model.loss(batch)
            ours.append(outcome())
    a, o = torch.tensor(ours), torch.tensor(theirs)

    def coin(codes: torch.Tensor, bit: int) -> torch.Tensor:
        return torch.where(codes > 3, 2, (codes >> bit) & 1)

    dyn = model.dynamics
    preset = f"preset self_condition {dyn.self_condition:g}, p_drop_condition {model.p_drop_condition:g} ({model.condition_dropout})"
    return [same_law("PerturbDiff", "self-conditioning coin: share of training steps self-conditioned (official: rand(1) > 0.5), "
                     "run on both sides", coin(a, 0), coin(o, 0), 2, preset),
            same_law("PerturbDiff", f"condition-dropout coin: one per batch, share of steps dropped (official p_drop_cond "
                     f"{official.p_drop_cond:g}), run on both sides", coin(a, 1), coin(o, 1), 2, preset),
            same_law("PerturbDiff", "joint law of the two coins (kept, kept+self-cond., dropped, dropped+self-cond.)", a, o, 4)]


def _time_steps(imp, model) -> Row:
    """Training time steps: distgen's draws (``Generator.loss`` on 200,000 one-cell sets, the step read back from
    ``extras["t"]``) against the official ``UniformSampler``'s law (``weights / sum``, the probabilities its ``sample``
    draws from), whose loss weights must all be 1 (the training-step rows weight every set by 1)."""
    sampler = imp("src.models.resampling").UniformSampler(_official_diffusion(imp))
    w = torch.as_tensor(sampler.weights(), dtype=torch.float64)
    _, weights = sampler.sample(4096, "cpu")
    labels, _ = _labels(20_000, "IL2", "T", "d1")
    x = torch.rand(20_000, 1, G, generator=torch.Generator().manual_seed(5))
    mask = torch.ones(20_000, 1, dtype=torch.bool)
    batch = SetBatch(target=x, target_mask=mask, control=x, control_mask=mask, labels=labels, gene_ids=torch.arange(G))
    torch.manual_seed(6)
    draws = []
    with torch.no_grad():
        for _ in range(10):
            t = model.loss(batch).extras["t"][:, 0].double()
            draws.append((1000 * (1 - t) - 1).round().long())
    row = discrete_law("PerturbDiff", "training time steps: distgen's draws against the official UniformSampler's law (1/1000 on 0..999)",
                       torch.cat(draws), w / w.sum(), f"official loss weights {sorted(set(weights.tolist()))}")
    return row if bool((weights == 1).all()) else exact(row.model, row.check, False, row.note)


def _gradients(net, enc, model, what: str) -> Row:
    """Every distgen gradient against the official one mapped like its weight (``None`` counts as zero)."""
    def grads(module, prefix):
        return {f"{prefix}.{k}": (p.grad if p.grad is not None else torch.zeros_like(p)) for k, p in module.named_parameters()}

    sd = {f"model.{k}": v for k, v in net.state_dict().items()} | {f"cov_encoder.{k}": v for k, v in enc.state_dict().items()}
    mapped, _ = mapping.map_state(sd | grads(net, "model") | grads(enc, "cov_encoder"), model, CODES)
    ours = {k: (p.grad if p.grad is not None else torch.zeros_like(p)) for k, p in model.named_parameters()}
    flat_ours = torch.cat([ours[k].flatten() for k in ours])
    flat_want = torch.cat([mapped[k].flatten() for k in ours])
    worst = max(ours, key=lambda k: float((ours[k] - mapped[k]).abs().max()))
    return compare("PerturbDiff", f"gradients of that loss, all parameters ({what})", flat_ours, flat_want, f"{len(ours)} tensors; worst {worst}")


def _official_decay_names(*modules: torch.nn.Module) -> set[str]:
    """The names ``configure_optimizers`` decays: every parameter outside ``nn.LayerNorm`` modules (transformers'
    ``get_parameter_names(module, [LayerNorm])``, relative to each module, the two modules' names pooled as the code
    pools them), less any whose name holds ``bias``, ``layer_norm`` or ``layernorm``."""
    def names(module: torch.nn.Module) -> list[str]:
        out = [n for n, _ in module.named_parameters(recurse=False)]
        for child_name, child in module.named_children():
            if not isinstance(child, torch.nn.LayerNorm):
                out += [f"{child_name}.{n}" for n in names(child)]
        return out

    pooled = {n for m in modules for n in names(m)}
    return {n for n in pooled if "bias" not in n and "layer_norm" not in n and "layernorm" not in n}


def _optimisation(imp) -> list[Row]:
    """Initialisation and weight-decay groups of the preset against the official code's."""
    from distgen.config import load_config
    from distgen.train.optim import param_groups
    from distgen.train.options import train_options

    rows = []
    # --- initialisation: both freshly built (the harness's other rows jitter the official weights), at INIT_SIZES
    main = imp("src.models.cross_dit.cross_dit_main")
    cov = imp("src.models.covariate_encoding")
    g, d, depth, heads, part = INIT_SIZES
    cfg, cov_cfg = _configs(g, d, depth, heads, part)
    info = DataInfo(genes=tuple(f"g{i}" for i in range(g)), perturbations=PERTS, contexts=CONTEXTS, batches=BATCHES)
    torch.manual_seed(1)
    net, enc = main.Cross_DiT(cfg), cov.CovEncoder(cov_cfg)
    torch.manual_seed(2)
    fresh = build("perturbdiff", info, [f"model.backbone.dim={d}", f"model.backbone.depth={depth}", f"model.backbone.heads={heads}",
                                         f"model.conditioner.part_dim={part}"])
    sd = {f"model.{k}": v for k, v in net.state_dict().items()} | {f"cov_encoder.{k}": v for k, v in enc.state_dict().items()}
    mapped, _ = mapping.map_state(sd, fresh, CODES)
    rows.append(init_law("PerturbDiff", fresh, mapped, {"conditioner.control": "zeros, official table row 0 N(0, 1): never read in training"}))
    # --- weight decay: which parameters each side decays (official flags mapped like weights)
    decayed = _official_decay_names(net, enc)
    flags = {f"model.{n}": torch.full_like(p, float(n in decayed)) for n, p in net.named_parameters()}
    flags |= {f"cov_encoder.{n}": torch.full_like(p, float(n in decayed)) for n, p in enc.named_parameters()}
    flagged, _ = mapping.map_state(sd | flags, fresh, CODES)
    train = train_options(load_config("perturbdiff")["train"])
    groups = param_groups(fresh.named_parameters(), train.weight_decay, train.decay_norm_and_bias)
    ours = {id(p): g["weight_decay"] > 0 for g in groups for p in g["params"]}
    params = dict(fresh.named_parameters())
    mixed = [n for n in params if flagged[n].min() != flagged[n].max()]  # a distgen tensor made of decayed and undecayed pieces
    differ = [n for n, p in params.items() if bool(flagged[n].min() > 0.5) != ours[id(p)]]
    # documented (docs/perturbdiff.md, "Where distgen differs"): the official groups also decay the 1-D parameters
    documented = not mixed and all(bool(flagged[n].min() > 0.5) and params[n].ndim < 2 for n in differ)
    rows.append(exact("PerturbDiff", "AdamW weight-decay groups (official: all but biases and LayerNorm weights)", documented,
                      f"{len(differ)} tensors decayed officially, not by the preset (documented: 1-D): {', '.join(differ)}"
                      + (f"; mixed: {', '.join(mixed)}" if mixed else "")))
    return rows


#: the README's training command the preset follows (its section heading) and the script it runs
RUN_SECTION, RUN_SCRIPT = "From Scratch on PBMC", "rawdata_diffusion_training.py"


class OfficialSettingError(LookupError):
    """A setting the harness reads from the official checkout is not there (or not once): names the key and the file."""


def readme_run(readme: Path, section: str = RUN_SECTION, script: str = RUN_SCRIPT) -> dict[str, tuple[str, int]]:
    """The Hydra overrides of the README's training command under the heading holding ``section``: the line running
    ``script`` and its continuation lines, each ``$BLOCK`` expanded from the README's last ``BLOCK="..."`` definition
    before the command, later overrides winning (as Hydra applies them). Read as a shell reads them: headings only
    outside code blocks (a ``# ...`` in one is a shell comment), a definition ends at its closing quote (on its own line
    or after the last override, or on the opening line), words split at white space (two overrides on a line are two).
    Returns ``key -> (value, line number)``; values lose their quotes, a trailing backslash and a ``# comment``. Raises
    ``OfficialSettingError`` naming the file and the section, block or script that is missing."""
    import re

    if not readme.is_file():
        raise OfficialSettingError(f"{readme}: no such file (the harness reads the official training command from the checkout's README)")
    lines = readme.read_text().splitlines()
    code, inside = [], False  # per line: inside a ``` code block (the fence lines count as inside)
    for line in lines:
        fence = line.lstrip().startswith("```")
        code.append(inside or fence)
        inside ^= fence

    def words(text: str, n: int) -> list[tuple[str, int]]:
        """The words of line ``n``'s ``text``, a ``# comment`` and a lone backslash dropped."""
        return [(w, n) for w in re.sub(r"(^|\s)#.*$", "", text).split() if w != "\\"]

    def value(i: int, rest: str) -> tuple[list[tuple[str, int]], int]:
        """The words of the quoted value opening with ``rest`` on line ``i`` (0-based), and the line it closes on."""
        found, quoted = [], True
        for j in range(i, len(lines)):
            text, part = rest if j == i else lines[j], ""
            for k, c in enumerate(text):
                if c == '"' and (k == 0 or text[k - 1] != "\\"):
                    quoted = not quoted
                elif not quoted and c.isspace():
                    return found + words(part, j + 1), j
                else:
                    part += c
            found += words(part, j + 1)
            if not quoted:
                return found, j
        return found, len(lines) - 1

    defined: dict[str, list[tuple[int, list[tuple[str, int]]]]] = {}  # name -> (line, words) of each definition
    i = 0
    while i < len(lines):
        m = re.match(r"\s*(?:export\s+)?(\w+)=\"(.*)$", lines[i])
        if m:
            found, last = value(i, m.group(2))
            defined.setdefault(m.group(1), []).append((i, found))
            i = last
        i += 1
    heading = next((i for i, line in enumerate(lines) if not code[i] and line.startswith("#") and section in line), None)
    if heading is None:
        raise OfficialSettingError(f"{readme}: no heading holding {section!r} (the training command the preset follows)")
    title = lines[heading].strip()
    end = next((i for i in range(heading + 1, len(lines)) if not code[i] and re.match(r"#{1,3} ", lines[i])), len(lines))
    runs = re.compile(rf"(^|[\s/]){re.escape(script)}(\s|$)")
    start = next((i for i in range(heading, end) if runs.search(lines[i])), None)
    if start is None:
        raise OfficialSettingError(f"{readme}: no `python ...{script}` command under {title!r}")

    def expand(found: list[tuple[str, int]], before: int) -> list[tuple[str, int]]:
        """``found`` with each ``$BLOCK`` word replaced by the words of its last definition before line ``before``."""
        out = []
        for w, n in found:
            m = re.fullmatch(r"\"?\$\{?(\w+)\}?\"?", w)
            if m is None:
                out.append((w, n))
                continue
            earlier = [(line, block) for line, block in defined.get(m.group(1), []) if line < before]
            if not earlier:
                raise OfficialSettingError(f"{readme}: the command under {title!r} (line {start + 1}) expands ${m.group(1)}, which the "
                                           f"README does not define as {m.group(1)}=\"...\" before line {before + 1}")
            out += expand(earlier[-1][1], earlier[-1][0])
        return out

    first = runs.search(lines[start])
    command = words(lines[start][first.end() if first else 0:], start + 1)  # the words after the script's
    i = start
    while lines[i].rstrip().endswith("\\") and i + 1 < end:
        i += 1
        command += words(lines[i], i + 1)
    run: dict[str, tuple[str, int]] = {}
    for w, n in expand(command, start):
        m = re.fullmatch(r"\+{0,2}([\w.\[\]/@-]+)=(.*)", w.rstrip("\\"))
        if m:
            run[m.group(1)] = (m.group(2).strip("\"'"), n)
    return run


def official_settings(repo: Path) -> SimpleNamespace:
    """The official training settings of the README's "From Scratch on PBMC" run (``readme_run``), read from the
    checkout: each Hydra key takes the command's override where it has one, else the config file's value: the
    optimizer (``configs/optimization/optimizer/adam.yaml``), the learning-rate schedule (``.../scheduler/cosine.yaml``),
    gradient clipping (``configs/trainer/base.yaml``: Lightning's ``gradient_clip_val``, by norm), the CFG and
    control-stream drop rates (``configs/model/base.yaml``), the distribution-loss factor
    (``configs/optimization/base.yaml``); the EMA callback's decay and cadence (``lightning.ema.decay`` /
    ``update_steps``; ``configs/lightning``'s decay 0 switches it off) and the data scale (``data.normalize_counts``)
    from the command only. The learning-rate, EMA, coin and training-step rows feed these, not the preset's, to the
    official code. A key found in neither raises ``OfficialSettingError`` naming the key and the files."""
    import yaml

    readme = repo / "README.md"
    run = readme_run(readme)

    where = f"the command under {RUN_SECTION!r} in {readme}"

    def chosen(group: str) -> str:
        """The config file of Hydra ``group`` (``a/b`` nested) under ``configs/``, as the run composes it: the command's
        ``group=choice``, else the ``defaults`` list of the config above it (the entry script's for a top group)."""
        if group in run:
            return f"{group}/{run[group][0]}.yaml"
        above, _, leaf = group.rpartition("/")
        path = repo / "configs" / (chosen(above) if above else f"{Path(RUN_SCRIPT).stem}.yaml")
        loaded = yaml.safe_load(path.read_text()) if path.is_file() else None
        listed = loaded.get("defaults") if isinstance(loaded, dict) else None
        picks = [d[leaf] for d in listed if isinstance(d, dict) and leaf in d] if isinstance(listed, list) else []
        if len(picks) != 1:
            raise OfficialSettingError(f"the config group {group}: the command selects none and {path} "
                                       + (f"lists no default for {leaf!r}" if path.is_file() else "does not exist"))
        return f"{group}/{picks[0]}.yaml"

    def value(key: str, group: str | None = None) -> str:
        """``key`` (dotted Hydra path) from the command, else from the file ``group``'s choice (its last part)."""
        if key in run:
            return run[key][0]
        if group is None:
            raise OfficialSettingError(f"{key}: not set by {where} (no config default is read for it)")
        try:
            path = repo / "configs" / chosen(group)
        except OfficialSettingError as e:
            raise OfficialSettingError(f"{key}: not set by {where}; {e}") from None
        loaded = yaml.safe_load(path.read_text()) if path.is_file() else None
        leaf = key.rsplit(".", 1)[-1]
        if not isinstance(loaded, dict) or leaf not in loaded:
            raise OfficialSettingError(f"{key}: not set by {where}, and {path} " + ("has no key " + repr(leaf) if path.is_file() else "does not exist"))
        return str(loaded[leaf]) if not isinstance(loaded[leaf], list) else ",".join(map(str, loaded[leaf]))

    opt, sched = "optimization/optimizer", "optimization/scheduler"
    return SimpleNamespace(optimizer="AdamW" if value("optimization.optimizer.adam_w_mode", opt).lower() == "true" else "Adam",
                           lr=float(value("optimization.optimizer.lr", opt)),
                           betas=tuple(float(b) for b in value("optimization.optimizer.betas", opt).strip("[]").split(",")),
                           eps=float(value("optimization.optimizer.eps", opt)), weight_decay=float(value("optimization.optimizer.weight_decay", opt)),
                           warmup_steps=int(value("optimization.scheduler.num_warmup_steps", sched)),
                           min_ratio=float(value("optimization.scheduler.min_ratio", sched)),
                           plateau_ratio=float(value("optimization.scheduler.plateau_ratio", sched)),
                           grad_clip=float(value("trainer.gradient_clip_val", "trainer")), ema_decay=float(value("lightning.ema.decay")),
                           ema_every=int(value("lightning.ema.update_steps")), p_drop_cond=float(value("model.p_drop_cond", "model")),
                           p_drop_control=float(value("model.p_drop_control", "model")),
                           input_scale=1 / float(value("data.normalize_counts")),
                           mmd_factor=float(value("optimization.MMD_loss_factor", "optimization")),
                           precision=value("trainer.precision", "trainer"))


def _settings(repo: Path) -> Row:
    """The preset's optimizer (as the trainer builds it), gradient clipping, EMA, CFG drop rate and input scale vs
    ``official_settings``; and the official control-stream drop rate against distgen's none (0)."""
    from distgen.config import load_config
    from distgen.train.optim import make_optimizer
    from distgen.train.options import train_options

    official = official_settings(repo)
    preset = load_config("perturbdiff")
    train = train_options(preset["train"])
    weights = [("w", torch.nn.Parameter(torch.zeros(3, 3))), ("b", torch.nn.Parameter(torch.zeros(3)))]
    opt = make_optimizer(weights, train.optimizer, train.lr, (float(train.betas[0]), float(train.betas[1])), train.eps, train.weight_decay,
                         train.decay_norm_and_bias)
    group = opt.param_groups[0]  # the decayed group (the matrices)
    ours = {"optimizer": type(opt).__name__, "lr": group["lr"], "betas": tuple(group["betas"]), "eps": group["eps"],
            "weight_decay": group["weight_decay"], "grad_clip": train.grad_clip, "ema_decay": train.ema_decay, "ema_every": train.ema_every,
            "p_drop_cond": preset["model"]["p_drop_condition"], "input_scale": preset["model"]["input_scale"],
            "p_drop_control": 0.0}  # distgen has no control-stream dropout
    want = {k: getattr(official, k) for k in ours}
    differ = [f"{k} {ours[k]} vs official {want[k]}" for k in ours if ours[k] != want[k]]
    return exact("PerturbDiff", "settings: optimizer, lr, betas, eps, weight decay, gradient-norm clip, EMA decay and cadence, CFG drop rate, input scale, "
                 "control-stream drop rate (none in distgen)",
                 not differ, "; ".join(differ) or ", ".join(f"{k} {v}" for k, v in want.items()))


def _schedule(repo: Path) -> Row:
    """The official ``get_cosine_schedule_with_warmup`` with ``configs/optimization/scheduler/cosine.yaml`` and the
    official learning rate vs the preset's schedule and rate."""
    import math

    from distgen.config import load_config
    from distgen.train.options import train_options
    from distgen.train.schedule import make_scheduler

    train = train_options(load_config("perturbdiff")["train"])
    official = official_settings(repo)
    ns = function_from(repo / "src" / "common" / "utils.py", ("get_cosine_schedule_with_warmup",), {"math": math})
    total = 3000
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=official.lr)
    want = lrs(opt, ns["get_cosine_schedule_with_warmup"](opt, num_warmup_steps=official.warmup_steps, num_training_steps=total,
                                                          min_ratio=official.min_ratio, plateau_ratio=official.plateau_ratio), total)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=train.lr)
    got = lrs(opt, make_scheduler(opt, total, train.warmup_steps, train.schedule, train.min_lr_ratio, train.plateau_ratio), total)
    return lr_schedule("PerturbDiff", f"learning rate at every step (lr {official.lr:g}, warm-up {official.warmup_steps}, plateau "
                       f"{official.plateau_ratio:g}, cosine floored at {official.min_ratio:g})", got, want, f"{total} steps; preset lr {train.lr:g}")


def ema_training_run() -> tuple[Trainer, list[dict[str, torch.Tensor]], int]:
    """A short distgen training run with the preset's EMA options: three full epochs of the preset's
    ``sampling: partition`` on a tiny table (the partial last epoch is a documented difference, so none here). Returns
    the trainer, the raw weights after every optimizer step and the steps per epoch."""
    from distgen.config import load_config
    from distgen.data.batches import TableBatches
    from distgen.testing.fixtures import tiny_table
    from distgen.train.options import train_options
    from distgen.train.trainer import Trainer

    table = tiny_table(n_per_condition=12)
    torch.manual_seed(3)
    model = build("perturbdiff", table.info, ["model.backbone.dim=16", "model.backbone.depth=1", "model.backbone.heads=2",
                                               "model.conditioner.part_dim=4", "model.dynamics.clip_denoised=null"])
    source = TableBatches(table, 4, 2, sampling="partition")
    epoch = source.steps_per_epoch
    steps = 3 * epoch
    # on the CPU wherever it runs (train.device auto would take a GPU; the official side's copy is on the CPU)
    options = train_options(load_config("perturbdiff")["train"], steps=steps, warmup_steps=0, lr=0.1, progress=False, seed=0,
                            device="cpu")
    trainer = Trainer(model, source, options)
    raw: list[dict[str, torch.Tensor]] = []
    trainer.optimizer.register_step_post_hook(lambda *_: raw.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()}))
    trainer.fit()
    assert trainer.ema is not None and len(raw) == steps
    return trainer, raw, epoch


def _ema(repo: Path) -> Row:
    """The EMA of a short distgen training run (``ema_training_run``, the preset's EMA options) against the official
    ``EMAWeightAveraging`` callback with the official decay and cadence (``official_settings``: 0.99, every 10;
    ``lightning_factories.py`` + ``weight_averaging_callback.py``, Lightning's hooks driven by hand) fed the same raw
    weights after every optimizer step, with the same epochs."""
    import copy

    official = official_settings(repo)
    trainer, raw, epoch = ema_training_run()
    steps = len(raw)
    with official_tree(repo, stub_packages=("src.models", "src.common", "src.models.lightning"), lightning=True) as imp:
        factories = imp("src.models.lightning.lightning_factories")
        callback = factories.EMAWeightAveraging(decay=official.ema_decay, update_steps=official.ema_every)
        module = copy.deepcopy(trainer.model)
        module.device = torch.device("cpu")  # what the callback reads off a LightningModule
        state = SimpleNamespace(global_step=0, current_epoch=0)
        callback.setup(state, module, "fit")
        for i, weights in enumerate(raw):  # Lightning: optimizer step, on_train_batch_end, and at an epoch's end on_train_epoch_end
            module.load_state_dict(weights)
            state.global_step = i + 1
            callback.on_train_batch_end(state, module, None, None, i % epoch)
            if (i + 1) % epoch == 0:
                state.current_epoch = (i + 1) // epoch - 1
                callback.on_train_epoch_end(state, module)
        averaged = callback._average_model.module.state_dict()
    keys = [k for k in trainer.ema.shadow if trainer.ema.shadow[k].is_floating_point()]
    ours = torch.cat([trainer.ema.shadow[k].flatten() for k in keys])
    want = torch.cat([averaged[k].flatten() for k in keys])
    updates = int(callback._average_model.n_averaged)
    return compare("PerturbDiff", "EMA weights after training (decay 0.99 every 10 steps and at each epoch's end, first update a copy)",
                   ours, want, f"{steps} steps in {epoch}-step epochs; {trainer.ema.updates} updates, official {updates}")
