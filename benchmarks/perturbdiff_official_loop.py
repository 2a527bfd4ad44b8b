"""The official PerturbDiff training loop and sampler on distgen's Kang data and split (issue 16, item 8).

``benchmarks/equal_budget.py --model perturbdiff`` trains distgen's ``perturbdiff`` preset at the reduced size;
this script trains the *official* network on the same cells and scores it with the same code, so that the two
differ only in the model code. It is the PerturbDiff counterpart of ``scdfm_official_loop.py``.

Official (run from a checkout of github.com/DeepGraphLearning/PerturbDiff at 63afe45, ``--perturbdiff PATH``,
imported through ``benchmarks/parity/shim.py``; nothing of it is copied here):

* network: ``Cross_DiT`` (``src/models/cross_dit``, MM_DiT blocks, x0 prediction, ReLU head) at dim 128,
  depth 4, 4 heads, and the one-hot ``CovEncoder`` (``src/models/covariate_encoding.py``; perturbation,
  cell type and batch, 128 each, ``pert_dict`` / ``cell_type_dict`` / ``batch_dict`` as sorted name lists);
  timm's ``Attention`` / ``Mlp`` / RMSNorm are the harness stand-ins with timm's fused SDPA and ``rms_norm``
  (``benchmarks/vs_official.py``);
* data path: the training split's perturbed cells grouped by (perturbation, cell type, batch) and its control
  cells by (cell type, batch) with ``split_out_control`` / ``register_mapping_indices``
  (``src/data/dataset/dataset_grouping.py``); sets from ``CellSetBatchSampler`` (``src/data/sampler.py``:
  each epoch every group shuffled, padded to a multiple of 32 with its own cells, cut into sets, set order
  shuffled, ``set_epoch(epoch)`` as Lightning calls it, a new sampler every epoch as
  ``reload_dataloaders_every_n_epochs: 1``); each cell's control drawn by ``mapping_cells`` and the item and
  batch built by ``getitem_impl`` / ``collate_fn`` (``src/data/dataset/dataset_core.py``), in a torch
  ``DataLoader`` of 128 cells (``micro_batch_size``, ``drop_last``), inputs divided by ``normalize_counts`` 10;
* step: ``GaussianDiffusion.training_losses`` (linear schedule of 1,000 steps, ``UniformSampler`` times,
  float64 noise, ``p_drop_cond`` 0.5 per micro-batch, ``p_drop_control`` 0 as the README's scratch runs,
  self-conditioning coin 0.5) with geomloss ``SamplesLoss("energy", blur=0.05)``; the loss
  ``(loss1 + MMD_loss_factor x mmd1) x weights`` averaged, as ``PlModel._compute_loss`` / ``training_step``;
* optimisation: AdamW (0.9, 0.98), eps 1e-8, lr 2e-3 (the README's Replogle preset), weight decay 0.01 on the
  parameter names that ``PlModel.configure_optimizers`` decays (outside ``nn.LayerNorm`` modules, no
  ``bias`` / ``layer_norm`` / ``layernorm`` in the name, model and covariate-encoder names pooled), the official
  ``get_cosine_schedule_with_warmup`` (200 warm-up steps from 0, 10 % plateau, cosine clamped at 0.1 of
  ``--steps``) stepped every step, gradient-norm clipping at 1 (``gradient_clip_val``), fp32;
* EMA 0.99 (``EMAWeightAveraging(decay=0.99, update_steps=10)`` on ``torch.optim.swa_utils.AveragedModel``,
  first update a copy) updated after optimizer steps 1, 11, 21, ... *and at the end of every epoch*: its
  ``should_update`` returns True for any ``epoch_idx`` and the callback's ``on_train_epoch_end`` asks it. With
  Kang's 683 training cells an epoch is 6 steps, so the average moves about every 4 steps on average, not every
  10 (the JSON's ``ema_updates`` counts them);
* sampler: ``GaussianDiffusion.ddim_sample_loop`` (eta 0, ``start_time`` 100: steps 99..0 from pure noise,
  ``guidance_strength`` 1, ``clip_denoised`` with cutoff 1e-4, self-conditioning on the previous estimate),
  inputs divided by 10 and samples multiplied by 10, in eval mode. The official sampler reads EMA weights
  (its checkpoints hold them); both the EMA and the raw weights are scored here.

Not reproduced: the per-epoch validation pass (it changes no weights, only how far the random streams have
advanced) and the exact random streams in general (same generators and draws per step, other seeds' history).

distgen's (the same as ``equal_budget.py`` builds for distgen's ``perturbdiff`` run): the data (Kang PBMC,
2,000 HVGs, ``distgen.data`` preprocessing), the split (stimulated CD4T held out, ``val_frac`` 0), and the
prediction protocol: ``distgen.pipeline.predict.predict`` asks the official sampler (wrapped as a model with a
``predict(control, mask, labels)`` method) for as many cells as each held-out group has, in sets of 32, from
random held-out control cells of the same cell type, labelled with the first batch; and the scoring
(``equal_budget.score_prediction``: ``distgen`` = ``api.evaluate`` with the control baseline, ``official`` =
the official R2 of pooled means). Cell types are one-hot here (the released runs embed them by LLM text
vectors, which Kang's labels have no file for); the distgen preset uses one-hot too.

Needs geomloss (``pip install -e '.[parity]'``); timm, Lightning, Hydra, omegaconf are not needed (stand-ins /
stubs, see ``benchmarks/parity/shim.py``; ``omegaconf`` is stubbed only when it is not installed).

Usage (from the repository root; CPU about 0.5 s per step at one thread)::

    python -m benchmarks.perturbdiff_official_loop --perturbdiff /path/to/PerturbDiff --steps 2000 --seed 0 --out pd_official_loop.json
    python -m benchmarks.perturbdiff_official_loop --perturbdiff /path/to/PerturbDiff --device cuda --steps 2000 --seed 0 --out X.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import pickle
import platform
import random
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch._dynamo  # torch.optim imports it lazily; it must load before the shim installs its triton stand-in
from torch import nn

from benchmarks.equal_budget import SETUPS, context_draws, held_out_contexts, response_fit, score_prediction

DIM, DEPTH, HEADS, PART = 128, 4, 4, 128  # reduced network; CovEncoder hidden_dim 128
SET_SIZE, MICRO_BATCH, LR = 32, 128, 2e-3  # README's Replogle preset: use_cell_set 32, micro_batch_size 128, lr 2e-3
NORMALIZE = 10.0  # data.normalize_counts
T_STEPS, START_TIME = 1000, 100
DS_NAME = "kang_pbmc"


class _Args(dict):
    """The official code reads ``data_args`` both as attributes and with ``in`` (a DictConfig); this is both."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


@contextlib.contextmanager
def omegaconf_stub() -> Iterator[None]:
    """``src/data/sampler.py`` imports omegaconf only to reject a DictConfig set size; a stand-in when it is not installed."""
    try:
        import omegaconf  # noqa: F401

        yield
        return
    except ImportError:
        pass
    dictconfig = types.ModuleType("omegaconf.dictconfig")
    dictconfig.DictConfig = type("DictConfig", (dict,), {})  # type: ignore[attr-defined]
    stub = types.ModuleType("omegaconf")
    stub.dictconfig, stub.DictConfig = dictconfig, dictconfig.DictConfig  # type: ignore[attr-defined]
    sys.modules.update({"omegaconf": stub, "omegaconf.dictconfig": dictconfig})
    try:
        yield
    finally:
        sys.modules.pop("omegaconf", None)
        sys.modules.pop("omegaconf.dictconfig", None)


class OfficialView(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """distgen's training cells with the attributes the official ``H5adSentenceDataset`` functions read.

    One "file" (``DS_NAME``) whose rows are the rows of distgen's table; categories sorted by name (the official
    dictionaries are sorted name lists). ``split_out_control`` and ``register_mapping_indices`` run on it as in
    the official dataset constructor; items and batches come from the official ``getitem_impl`` / ``collate_fn``.
    """

    def __init__(self, fns: dict[str, Any], x: torch.Tensor, perts: np.ndarray, cell_types: np.ndarray, batches: np.ndarray,
                 rows: np.ndarray, control: str, genes: list[str], tmp: Path) -> None:
        self._fns = fns
        self.x = x
        self.stage = "train"
        self._names = [DS_NAME]
        self.control_type = {DS_NAME: control}
        self.data_indices: dict[str, Any] = {DS_NAME: np.asarray(rows, dtype=np.int64)}
        self.num_cell = {DS_NAME: len(rows)}
        self.dataset_path_map = {DS_NAME: "distgen"}
        cats = {k: np.array(sorted(set(v.tolist()))) for k, v in (("pert", perts), ("cell_type", cell_types), ("batch", batches))}
        cache = SimpleNamespace(**{f"{k}_categories": c for k, c in cats.items()},
                                **{f"{k}_codes": np.searchsorted(cats[k], v) for k, v in (("pert", perts), ("cell_type", cell_types), ("batch", batches))})
        self.meta_cache = SimpleNamespace(_cache={"distgen": cache}, pert_dict={p: i for i, p in enumerate(cats["pert"])},
                                          cell_type_dict={c: i for i, c in enumerate(cats["cell_type"])},
                                          batch_dict={f"{DS_NAME}_{b}": i for i, b in enumerate(cats["batch"])})
        g = x.shape[1]
        self.data_args = _Args(use_cell_set=SET_SIZE, keep_control_cell=False, indices_cache_dir=str(tmp), skip_cached_indices=True,
                               normalize_counts=NORMALIZE, embed_key="X_hvg", pad_length=g, embed_shape=g, mapping_strategy="random")
        self.py_logger = logging.getLogger("perturbdiff_official_loop")
        self.selected_genes = list(genes)
        self.store = SimpleNamespace(dataset_file=lambda ds_name: None)
        fns["split_out_control"](self)
        fns["register_mapping_indices"](self)

    # the methods H5adSentenceDataset delegates to its module functions
    def _compute_index(self, ds_name: str, idx: int) -> tuple[str, int]:
        return self._fns["compute_index"](self, ds_name, idx)  # type: ignore[no-any-return]

    def _mapping_cells(self, ds_name: str, local_idx: int) -> int:
        return self._fns["mapping_cells"](self, ds_name, local_idx)  # type: ignore[no-any-return]

    def _get_covarates(self, ds_name: str, local_idx: int) -> tuple[int, int, int]:
        return self._fns["get_covarates"](self, ds_name, local_idx)  # type: ignore[no-any-return]

    def _retrieve_counts(self, h5f: Any, ds_name: str, local_idx: int) -> torch.Tensor:
        return self.x[local_idx:local_idx + 1].clone()  # [1, G], as the official reader returns one row

    def __getitem__(self, index: Any) -> Any:
        return self._fns["getitem_impl"](self, index)

    def __len__(self) -> int:
        return len(self.data_indices[DS_NAME]["perturb"])

    def collate_fn(self, batch: list[Any]) -> dict[str, Any]:
        return self._fns["collate_fn"](self, batch)  # type: ignore[no-any-return]


class Official(nn.Module):
    """The two trained modules in ``PlModel``'s attribute order (what the EMA callback averages)."""

    def __init__(self, cov_encoder: nn.Module, model: nn.Module) -> None:
        super().__init__()
        self.cov_encoder = cov_encoder
        self.model = model


def parameter_names_outside(module: nn.Module, forbidden: tuple[type, ...]) -> list[str]:
    """Dotted names of the parameters not held by a ``forbidden`` module (the rule of ``get_parameter_names`` of
    ``transformers.trainer_pt_utils``, which ``configure_optimizers`` calls with ``[nn.LayerNorm]``)."""
    names = []
    for name, child in module.named_children():
        if not isinstance(child, forbidden):
            names += [f"{name}.{n}" for n in parameter_names_outside(child, forbidden)]
    return names + list(module._parameters.keys())


def optimizer_groups(official: Official, weight_decay: float) -> list[dict[str, Any]]:
    """``configure_optimizers``' two groups: names pooled over the model and the covariate encoder, decayed unless
    inside a LayerNorm or named ``bias`` / ``layer_norm`` / ``layernorm``."""
    pooled = set(parameter_names_outside(official.model, (nn.LayerNorm,))) | set(parameter_names_outside(official.cov_encoder, (nn.LayerNorm,)))
    decay_names = {n for n in pooled if "bias" not in n and "layer_norm" not in n and "layernorm" not in n}
    decay, no_decay = [], []
    for module in (official.model, official.cov_encoder):
        for n, p in module.named_parameters():
            if p.requires_grad:
                (decay if n in decay_names else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class OfficialSampler:
    """The official DDIM sampler behind distgen's ``predict(control, control_mask, labels)`` interface."""

    def __init__(self, official: Official, diffusion: Any, view: OfficialView, info: Any, device: torch.device) -> None:
        self.official, self.diffusion, self.view, self.info, self.device = official, diffusion, view, info, device

    def _codes(self, labels: Any, m: int) -> tuple[torch.Tensor, ...]:
        meta = self.view.meta_cache
        pert = []
        for row in labels.perturbation.tolist():
            atoms = [self.info.perturbations[a] for a in row if a >= 0]
            if len(atoms) > 1:
                raise ValueError(f"the official one-hot encoder takes one perturbation per set, got {atoms}")
            pert.append(meta.pert_dict[atoms[0] if atoms else self.info.control_label])
        ctype = [meta.cell_type_dict[self.info.contexts[c]] for c in labels.context.tolist()]
        batch = [meta.batch_dict[f"{DS_NAME}_{self.info.batches[b]}"] for b in labels.batch.tolist()]
        return tuple(torch.tensor(v, dtype=torch.long, device=self.device)[:, None].expand(-1, m).contiguous() for v in (pert, ctype, batch))

    @torch.no_grad()
    def predict(self, control: torch.Tensor, control_mask: torch.Tensor, labels: Any) -> torch.Tensor:
        k, m, g = control.shape
        self.official.eval()
        cond = {"batch_emb": self.official.cov_encoder(*self._codes(labels, m)), "cont_emb": control.to(self.device).float() / NORMALIZE,
                "gene_emb": None, "ds_name": [DS_NAME] * k}
        sample, _ = self.diffusion.ddim_sample_loop(self.official.model, (k, m, g), self_condition=cond, clip_denoised=True, device=self.device,
                                                    progress=False, start_time=START_TIME, eta=0.0, guidance_strength=1.0, sample_kwargs={})
        return (sample.float() * NORMALIZE).cpu()


def load_dataset(seed: int) -> Any:
    """The data and split of ``equal_budget.py --model perturbdiff`` (its overrides, resolved by distgen's config)."""
    from distgen.config import load_config
    from distgen.data.prepared import Dataset
    from distgen.data.section import data_section

    doc = load_config(SETUPS["perturbdiff"]["preset"], [*SETUPS["perturbdiff"]["overrides"], f"train.seed={seed}"])
    return Dataset.load(data_section(doc["data"]))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--perturbdiff", required=True, type=Path, help="path to a checkout of github.com/DeepGraphLearning/PerturbDiff (63afe45)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", nargs="+", choices=["ema", "raw"], default=["ema", "raw"], help="which weights to sample and score")
    p.add_argument("--work", default="official_loop_runs", help="folder of the api.evaluate reports")
    p.add_argument("--out", help="write the results (JSON) here")
    p.add_argument("--save-checkpoint", metavar="PATH",
                   help="also write the trained weights as a Lightning-style checkpoint (state_dict = EMA, current_model_state = raw, "
                        "the covariate dictionaries under hyper_parameters with distgen's batch names) for `distgen import perturbdiff-official`")
    p.add_argument("--context-draws", type=int, default=0, metavar="K",
                   help="also score the EMA weights K times with the held-out cell types' (untrained) one-hot rows re-drawn from N(0, 1)")
    args = p.parse_args(argv)
    if not (args.perturbdiff / "src" / "models" / "cross_dit" / "cross_dit_main.py").is_file():
        p.error(f"--perturbdiff {args.perturbdiff}: no src/models/cross_dit/cross_dit_main.py; pass a checkout of DeepGraphLearning/PerturbDiff")
    if args.steps < 1:
        p.error("--steps must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA device")
    try:
        from geomloss import SamplesLoss
    except ImportError:
        p.error("needs geomloss (the official energy loss): pip install -e '.[parity]'")
    sys.dont_write_bytecode = True  # leave the official checkout as it is (no __pycache__)
    torch.set_flush_denormal(True)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.init()  # before the harness's stand-in modules exist
    t_start = time.perf_counter()

    from benchmarks.parity.shim import function_from, official_tree
    from benchmarks.vs_official import _fused_timm_standins
    from distgen.pipeline.predict import predict

    ds = load_dataset(args.seed)
    info, data = ds.info, ds.data
    x = data.table.X.float()
    perts = np.asarray([str(c) for c in data.conditions], dtype=object)
    contexts = np.asarray([str(c) for c in data.contexts], dtype=object)
    batches = np.asarray([str(b) for b in data.batches], dtype=object)
    train = ds.split.train.numpy()
    repo = args.perturbdiff.resolve()
    src = repo / "src"

    random.seed(args.seed)  # pl.seed_everything
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    quiet = lambda it, *a, **k: it  # noqa: E731  the grouping functions wrap loops in tqdm
    grouping = function_from(src / "data" / "dataset" / "dataset_grouping.py",
                             ("split_out_control", "group_by_two_keys", "group_by_three_keys", "register_mapping_indices"),
                             {"np": np, "os": os, "pickle": pickle, "tqdm": quiet})
    core = function_from(src / "data" / "dataset" / "dataset_core.py", ("compute_index", "collate_fn", "mapping_cells", "get_covarates", "getitem_impl"),
                         {"np": np, "libc": None})
    fns = {k: v for ns in (grouping, core) for k, v in ns.items() if callable(v) and k in {
        "split_out_control", "register_mapping_indices", "compute_index", "collate_fn", "mapping_cells", "get_covarates", "getitem_impl"}}
    utils = function_from(src / "common" / "utils.py", ("get_cosine_schedule_with_warmup",), {"math": math})

    with tempfile.TemporaryDirectory() as tmp, omegaconf_stub(), \
            official_tree(repo, stub_packages=("src.models", "src.common", "src.data", "src.data.dataset")) as imp:
        view = OfficialView(fns, x, perts, contexts, batches, train, info.control_label, list(info.genes), Path(tmp))
        _fused_timm_standins()
        main_mod = imp("src.models.cross_dit.cross_dit_main")
        cov_mod = imp("src.models.covariate_encoding")
        core_mod = imp("src.models.diffusion.diffusion_core")
        sched_mod = imp("src.models.diffusion.diffusion_schedules")
        resampling = imp("src.models.resampling")
        sampler_mod = imp("src.data.sampler")
        logging.getLogger(sampler_mod.__name__).setLevel(logging.ERROR)  # its per-epoch "only for sampling" warnings
        g = x.shape[1]
        meta = view.meta_cache
        cov_cfg = SimpleNamespace(pert_encoding="onehot", drug_encoding="onehot", replogle_gene_encoding="onehot", celltype_encoding="onehot",
                                  batch_encoding="onehot", hidden_dim=PART, num_pert=len(meta.pert_dict), num_celltype=len(meta.cell_type_dict),
                                  num_batch=len(meta.batch_dict), output_dim=g, pert_dict=meta.pert_dict, cell_type_dict=meta.cell_type_dict,
                                  batch_dict=meta.batch_dict)
        model_cfg = SimpleNamespace(model_type="Cross_DiT", Block_type="MM_DiT", dit_depth=DEPTH, dit_num_heads=HEADS, hidden_num=[g, DIM],
                                    input_dim=g, use_gene_embedding=False, gene_embedding_type="linear", use_class_silu=False, separate_embedder=False,
                                    predict_xstart=True, p_drop_cond=0.5, p_drop_control=0.0, cutoff=1e-4, no_mse_loss=False, dataset_dict=[DS_NAME],
                                    steps=T_STEPS, noise_schedule="linear", noise_schedule_gamma=0.3)
        torch.manual_seed(args.seed)
        official = Official(cov_mod.CovEncoder(cov_cfg), main_mod.Cross_DiT(model_cfg)).to(device)  # PlModel: CovEncoder, then the network
        diffusion = core_mod.GaussianDiffusion(betas=sched_mod.get_named_beta_schedule(model_cfg.noise_schedule, T_STEPS, model_cfg.noise_schedule_gamma),
                                               model_mean_type=core_mod.ModelMeanType.START_X, model_var_type=core_mod.ModelVarType.FIXED_LARGE,
                                               loss_type=core_mod.LossType.MSE, rescale_timesteps=False)
        schedule_sampler = resampling.UniformSampler(diffusion)
        loss_fn = SamplesLoss(loss="energy", blur=0.05)
        opt = torch.optim.AdamW(optimizer_groups(official, 0.01), lr=LR, eps=1e-8, betas=(0.9, 0.98))
        lr_sched = utils["get_cosine_schedule_with_warmup"](opt, num_warmup_steps=200, num_training_steps=args.steps, min_ratio=0.1, plateau_ratio=0.1)
        ema = torch.optim.swa_utils.AveragedModel(official, use_buffers=True, avg_fn=torch.optim.swa_utils.get_ema_avg_fn(0.99))
        params = [q for group in opt.param_groups for q in group["params"]]
        n_params = sum(q.numel() for q in official.parameters())
        print(f"official Cross_DiT + CovEncoder: {n_params:,} parameters; {len(view)} training perturbed cells in "
              f"{sum(len(v) > 0 for v in view.grouped_pert_data_indices[DS_NAME].values())} groups; device {device}", flush=True)

        official.train()
        losses: list[float] = []
        per_100: list[float] = []
        step, epoch, ema_updates = 0, 0, 0
        t0 = time.perf_counter()
        while step < args.steps:
            sampler = sampler_mod.CellSetBatchSampler(view, shuffle=True, seed=args.seed)  # reload_dataloaders_every_n_epochs: 1
            sampler.set_epoch(epoch)
            loader = torch.utils.data.DataLoader(view, batch_size=MICRO_BATCH, sampler=sampler, collate_fn=view.collate_fn, drop_last=True, num_workers=0)
            if len(loader) == 0:
                raise RuntimeError(f"an epoch holds fewer than {MICRO_BATCH} cells")
            for batch in loader:
                if step >= args.steps:
                    break
                batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
                cond = {"batch_emb": official.cov_encoder(batch["cov_pert"], batch["cov_celltype"], batch["cov_batch"]),
                        "cont_emb": batch["cont_emb"], "gene_emb": None, "cov_celltype": batch["cov_celltype"], "cov_pert": batch["cov_pert"],
                        "ds_name": batch["ds_name"]}
                t, weights = schedule_sampler.sample(batch["pert_emb"].shape[0], device)
                terms = diffusion.training_losses(official.model, batch["pert_emb"], t, self_condition=cond, model_kwargs=None, noise=None,
                                                  p_drop_cond=model_cfg.p_drop_cond, MMD_loss_fn=loss_fn)
                loss = ((terms["loss1"] + terms["mmd1"] * 1.0) * weights).mean()  # MMD_loss_factor 1, use_mse_loss true
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                lr_sched.step()
                step += 1
                if (step - 1) % 10 == 0:  # EMAWeightAveraging.should_update(step_idx = global_step - 1)
                    ema.update_parameters(official)
                    ema_updates += 1
                losses.append(float(loss.detach()))
                if step % 100 == 0 or step == args.steps:  # the last window may be shorter
                    per_100.append(float(np.mean(losses[100 * len(per_100):])))
                    print(f"step {step}: loss {per_100[-1]:.4f} (epoch {epoch}, {time.perf_counter() - t0:.0f} s)", flush=True)
            ema.update_parameters(official)  # on_train_epoch_end: should_update(epoch_idx=...) is True for every epoch, the last one too
            ema_updates += 1
            epoch += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_s = time.perf_counter() - t0

        results: dict[str, Any] = {}
        truth = ds.truth("test")
        if args.save_checkpoint:
            prefix = f"{DS_NAME}_"
            cov = {"pert_dict": {str(k): int(v) for k, v in view.meta_cache.pert_dict.items()},
                   "cell_type_dict": {str(k): int(v) for k, v in view.meta_cache.cell_type_dict.items()},
                   "batch_dict": {str(k)[len(prefix):]: int(v) for k, v in view.meta_cache.batch_dict.items()}}
            torch.save({"state_dict": {k: v.detach().cpu().clone() for k, v in ema.module.state_dict().items()},
                        "current_model_state": {k: v.detach().cpu().clone() for k, v in official.state_dict().items()},
                        "global_step": step, "hyper_parameters": {"cov_encoding_cfg": cov}}, args.save_checkpoint)
        work = Path(args.work)
        raw_state = {k: v.detach().clone() for k, v in official.state_dict().items()}
        for which in args.weights:
            if which == "ema":
                official.load_state_dict(ema.module.state_dict())  # on_train_end: the average replaces the weights
            else:
                official.load_state_dict(raw_state)
            t1 = time.perf_counter()
            pred = predict(OfficialSampler(official, diffusion, view, info, device), ds, "test", seed=args.seed, genes=SETUPS["perturbdiff"]["genes"],
                           preflight=False)
            predict_s = time.perf_counter() - t1
            scores = {"distgen": score_prediction("perturbdiff", pred, truth, "distgen", work / f"eval_pd_official_loop_seed{args.seed}_{which}"),
                      "official": score_prediction("perturbdiff", pred, truth, "official", work)}
            results[which] = {"predict_seconds": round(predict_s, 1), "scores": scores, "response": response_fit(pred, truth)}
            if args.context_draws and which == "ema":
                names = held_out_contexts(ds)
                guided = OfficialSampler(official, diffusion, view, info, device)

                def score(guided: OfficialSampler = guided) -> dict[str, dict[str, float]]:
                    pr = predict(guided, ds, "test", seed=args.seed, genes=SETUPS["perturbdiff"]["genes"], preflight=False)
                    return score_prediction("perturbdiff", pr, truth, "distgen", work / f"eval_pd_official_loop_seed{args.seed}_draw")

                rows = [meta.cell_type_dict[n] for n in names]
                results[which]["context_draws"] = {"contexts": names,
                                                   "draws": context_draws(official.cov_encoder.celltype_encoder.weight, rows, args.context_draws, args.seed, score)}
                print("context draws: " + "; ".join(f"mse {d['scores']['mse']['model']:.4f} r2 {d['scores']['r2']['model']:.3f} "
                                                      f"pd {d['scores']['pearson_delta']['model']:.3f}" for d in results[which]["context_draws"]["draws"]), flush=True)
            print(f"{which} weights ({predict_s:.0f} s to predict): " + ", ".join(
                f"{m} {v['model']:.4f} (control {v['control']:.4f})" for part in scores.values() for m, v in part.items()), flush=True)
    wall = time.perf_counter() - t_start
    res = {"seed": args.seed, "steps": args.steps, "device": str(device), "epochs": epoch, "ema_updates": ema_updates, "parameters": n_params,
           "train_seconds": round(train_s, 1), "wall_seconds": round(wall, 1), "loss_per_100": [round(v, 5) for v in per_100],
           "final_loss_100": float(np.mean(losses[-100:])), "weights": results, "official_figures": SETUPS["perturbdiff"]["official"],
           "command": "python -m benchmarks.perturbdiff_official_loop " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                       "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                       "loadavg": Path("/proc/loadavg").read_text().split()[:3]}}
    print(json.dumps({k: res[k] for k in ("train_seconds", "wall_seconds", "final_loss_100")} | {"scores": {w: r["scores"] for w, r in results.items()}}, indent=1))
    print(f"wall time {wall:.1f} s (training {train_s:.1f} s)", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
