"""The trainer: one loop for any model with ``loss(SetBatch) -> LossOutput`` and parameters.

Randomness is a function of ``(seed, step, shard)``: before each micro-batch the global torch RNG
is seeded from those keys, and batches come from a ``BatchSource`` that is itself a pure function of
them. Hence a resumed run continues exactly, and ``N`` ranks x ``k`` accumulation micro-batches give
the same updates as any other split of the same global batch into ``N k`` shards.
"""

from __future__ import annotations

import math
import sys
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from distgen.config import ConfigError, InertSettingWarning
from distgen.errors import DistgenError, DistgenWarning, DivergenceWarning, Interrupted, warn
from distgen.models.base import mark_trained
from distgen.runtime import apply_threads
from distgen.train import distributed as D
from distgen.train.batches import BatchSource, mix_seed
from distgen.train.checkpoint import (
    Checkpoint,
    check_compatible,
    check_run_folder,
    fingerprint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    shards_of,
)
from distgen.train.device import OOM_HINT, autocast, resolve_precision, select_device, setup_backends
from distgen.train.ema import EMA
from distgen.train.interrupt import StopOnSignal
from distgen.train.lock import RunLock
from distgen.train.logger import MetricsLog, duration, progress_bar
from distgen.train.optim import clipped_step, grad_norms, make_optimizer
from distgen.train.options import TrainOptions, compile_mode
from distgen.train.schedule import make_scheduler
from distgen.train.state_dicts import get_full_state, set_full_state
from distgen.train.state_io import rng_state, set_rng_state
from distgen.train.validation import higher_is_better, resolve_metrics, validate
from distgen.types import ConditionLabels, DataInfo
from distgen.wording import counted, first_of

PREFIX = "model."  #: parameter names inside the ``LossModule`` wrapper


class ResumeShardsWarning(DistgenWarning):
    """A resume splits each global batch into another number of shards than the checkpoint's run did."""


class NoGradientWarning(DistgenWarning):
    """A component of the model received no gradient in a whole ``fit``: it was not trained."""


class DetachedLossError(DistgenError, TypeError):
    """A model's loss has no ``grad_fn``: it depends on no trainable parameter (exit 1, the message names the model)."""


class NonFiniteLossError(DistgenError, FloatingPointError):
    """Training produced a NaN/inf loss or gradient; the message names step, conditions, checkpoint."""


@dataclass
class TrainResult:
    """What a finished ``fit`` reports."""

    losses: list[float] = field(default_factory=list)
    step: int = 0
    train_steps: int | None = None  #: the ``train.steps`` this fit trained towards (``step`` may be past it after a resume)
    stopped_early: bool = False
    best: float | None = None
    best_step: int | None = None
    validations: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    #: the checkpoint of ``best_step`` (written when the validation improved, spared from pruning; None without a run folder
    #: or a validation, or when the run folder lacks it: a copy without it, resumed): ``distgen predict RUN --checkpoint best``
    best_checkpoint: Path | None = None
    stopped_by_budget: bool = False  #: ``train.minutes`` ran out before ``train.steps``
    seconds: float = 0.0  #: wall seconds of this ``fit``
    #: wall seconds of the training before this ``fit``, as the checkpoint it resumed from records them (``state.json``
    #: ``train_seconds``): 0 for a fit from scratch; None when that checkpoint records none (written before the record)
    seconds_before: float | None = 0.0
    estimate_s: float | None = None  #: the time to ``train.steps`` estimated after the first steps
    #: ``{"step", "loss", "first_loss", "lr", "grad_norm", "grad_clip"}`` of the first step whose loss exceeded
    #: ``DIVERGENCE_FACTOR`` times the first step's (``Trainer.watch_divergence``); None while the loss stayed within it
    diverged: dict[str, Any] | None = None
    #: trainable parameters that received no gradient in any step of this ``fit`` (names as ``model.named_parameters``)
    no_gradient: list[str] = field(default_factory=list)
    #: trainable parameters whose gradient was exactly 0 at every step of this ``fit`` that gave them one (their output
    #: multiplied by 0, a term weighted 0): they learned nothing either; not those of ``no_gradient``
    zero_gradient: list[str] = field(default_factory=list)

    @property
    def seconds_total(self) -> float | None:
        """Wall seconds of the whole training of the model: ``seconds_before`` and this ``fit``'s (None: the seconds
        before are not recorded)."""
        return None if self.seconds_before is None else self.seconds_before + self.seconds


def describe_conditions(labels: ConditionLabels, info: DataInfo | None, limit: int = 4) -> str:
    """Readable conditions of a batch's sets (``G1+G2 @ ctxA``), for error messages."""
    names = []
    for i in range(min(len(labels), limit)):
        ids = [int(a) for a in labels.perturbation[i].tolist() if a >= 0]
        if info is None:
            atoms, ctx = "+".join(map(str, ids)) or "control", str(int(labels.context[i]))
        else:
            atoms = "+".join(info.perturbations[a] for a in ids) or info.control_label
            ctx = info.contexts[int(labels.context[i])]
        names.append(f"{atoms} @ {ctx}")
    return first_of(names, limit, total=len(labels), noun="set")


def detached_parts(parts: Mapping[str, Any], owner: str) -> dict[str, Tensor | float]:
    """``LossOutput.parts`` as the trainer keeps them until it logs: tensors detached (nothing read from the device),
    anything else as a float (a plugin's float parts are accepted as ever). A part must be one number."""
    out: dict[str, Tensor | float] = {}
    for k, v in parts.items():
        if isinstance(v, Tensor):
            if v.numel() != 1:
                raise TypeError(f"{owner}.loss returned LossOutput.parts[{k!r}] of shape {tuple(v.shape)}; a loss part must be one "
                                "number: a 0-dim tensor (detached, e.g. mse.detach()) or a float")
            out[k] = v.detach()
        else:
            try:
                out[k] = float(v)
            except (TypeError, ValueError):
                raise TypeError(f"{owner}.loss returned LossOutput.parts[{k!r}] = {v!r} ({type(v).__name__}); a loss part must be "
                                "one number: a 0-dim tensor (detached, e.g. mse.detach()) or a float") from None
    return out


def host_floats(values: Sequence[Tensor | float]) -> list[float]:
    """``values`` as Python floats, the tensors among them read back in one transfer per device (exactly: float64)."""
    out: list[float] = [v if not isinstance(v, Tensor) else math.nan for v in values]
    groups: dict[torch.device, list[int]] = {}
    for i, v in enumerate(values):
        if isinstance(v, Tensor):
            groups.setdefault(v.device, []).append(i)
    for idx in groups.values():
        read = torch.stack([values[i].detach().reshape(()).to(torch.float64) for i in idx]).tolist()  # type: ignore[union-attr]
        for i, x in zip(idx, read, strict=True):
            out[i] = x
    return out


def divergence_message(d: Mapping[str, Any]) -> str:
    """What ``DivergenceWarning`` says about a run's ``TrainResult.diverged`` record (also a ``distgen run`` note)."""
    clip = d.get("grad_clip")
    fix = "lower train.lr (or raise train.warmup_steps)" + (", set train.grad_clip (e.g. 1.0)" if clip is None else "") + \
        ", or check the weights of the loss terms"
    return (f"training diverged: the loss at step {d['step']:.0f} was {d['loss']:.4g}, {d['loss'] / max(abs(d['first_loss']), FLOOR):.3g} "
            f"times the first step's ({d['first_loss']:.4g}; lr {d['lr']:.3g}, gradient norm {d['grad_norm']:.4g}). Checkpoints and "
            f"predictions from step {d['step']:.0f} on come from a diverged model: {fix}")


class Trainer:
    """Fit ``model`` on batches from ``train``; optionally validate on ``val`` and write a run directory.

    Parameters
    ----------
    model
        An ``nn.Module`` with ``loss(SetBatch) -> LossOutput`` (and ``predict`` for metrics).
    train, val
        Batch sources (``distgen.train.batches.TableBatches``); ``val`` may be None.
    options
        The ``train:`` section.
    run_dir
        Where config, manifest, metrics and checkpoints go (rank 0 writes); None keeps all in memory.
    config
        The resolved config document, stored with checkpoints and used to reject a resume from a
        checkpoint of another config.
    info
        Vocabularies, to name conditions in error messages.
    callbacks
        ``f(trainer, step)`` called after every optimizer step (and its checkpoint).
    """

    def __init__(
        self,
        model: nn.Module,
        train: BatchSource,
        options: TrainOptions,
        val: BatchSource | None = None,
        run_dir: str | Path | None = None,
        config: Mapping[str, Any] | None = None,
        info: DataInfo | None = None,
        callbacks: Sequence[Callable[[Trainer, int], None]] = (),
    ) -> None:
        apply_threads()  # affinity/cgroup-bounded torch threads (distgen.runtime)
        self.opts = options
        self.model = model
        self.train_source = train
        self.val_source = val
        self.info = info
        self.callbacks = list(callbacks)
        self.env = D.env_from_torchrun()
        self.device = select_device(options.device, self.env.local_rank)
        self.env = D.init_from_env(self.device)
        setup_backends(self.device, options.tf32)
        self.amp = resolve_precision(options.precision, self.device)
        if options.strategy == "fsdp" and options.ema_decay is not None and self.env.distributed:
            raise ConfigError("train.ema_decay is not supported with train.strategy=fsdp; use strategy=ddp or ema_decay=null")
        dynamics = getattr(model, "dynamics", None)
        if options.strategy == "fsdp" and self.env.distributed and getattr(getattr(dynamics, "capabilities", None), "self_conditioning", False):
            # each rank draws its own self-conditioning coin, so ranks would run different numbers of forward passes
            # and FSDP's all-gathers would not pair up (gloo: "collective mismatch" abort; NCCL: a hang)
            raise ConfigError(
                f"train.strategy=fsdp cannot train a self-conditioning dynamics (model.dynamics.self_condition="
                f"{getattr(dynamics, 'self_condition', '?')}): each rank draws its own self-conditioning coin, so the ranks' "
                "forward passes (and FSDP's collectives) would not match; use train.strategy=ddp, or "
                "model.dynamics.self_condition=0 with model.backbone.self_conditioning=false")
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is not None and self.env.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config = dict(config) if config is not None else {"train": options.to_dict()}
        self.fp_config = {k: v for k, v in self.config.items() if k != "train"} | {"train": options.fingerprint_dict()}
        self.fingerprint = fingerprint(self.fp_config)
        if val is None and (options.val_every or options.patience is not None) and self.env.is_main:
            # trained to the last step without a validation (nor early stopping), and nothing said so
            asked = ", ".join(k for k, on in (("train.val_every", options.val_every), ("train.patience", options.patience is not None)) if on)
            warn(f"{asked} set, but there are no validation cells: the run is never validated"
                 + (" and never stops early" if options.patience is not None else "")
                 + "; set data.split.val_frac (e.g. 0.1) or give fit(..., val=...), or unset " + asked, InertSettingWarning)
        self.metrics = resolve_metrics(options.val_metrics) if val is not None else {}
        self.maximize = higher_is_better(options.monitor, self.metrics) if val is not None else False
        self.n_shards = self.env.world_size * options.grad_accum
        if options.sets_per_batch % self.n_shards:
            raise ConfigError(
                f"train.sets_per_batch={options.sets_per_batch} must be a multiple of world size x grad_accum "
                f"= {self.env.world_size} x {options.grad_accum}"
            )
        model.to(self.device)
        if options.compile:
            target = getattr(model, "backbone", model)
            target.compile(mode=compile_mode(options.compile))
        self.loss_module = D.LossModule(model)
        self.wrapped = D.wrap(self.loss_module, self.env, options.strategy, self.device, options.find_unused_parameters)
        named = [(n, p) for n, p in self.wrapped.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError(f"{type(model).__name__} has no trainable parameters; nothing to train")
        betas = (float(options.betas[0]), float(options.betas[1]))
        self.optimizer = make_optimizer(named, options.optimizer, options.lr, betas, options.eps, options.weight_decay, options.decay_norm_and_bias)
        self.scheduler = make_scheduler(
            self.optimizer, options.steps, options.warmup_steps, options.schedule, options.min_lr_ratio, options.plateau_ratio
        )
        self.ema = EMA(model, options.ema_decay, options.ema_warmup) if options.ema_decay is not None else None
        self.epoch_steps = epoch_steps(train) if options.ema_epoch_end and self.ema is not None else None
        self.step = 0
        self.best: float | None = None
        self.best_step: int | None = None
        #: the checkpoint folder of the best validation (``step_`` and its step in 8 digits), written at the step it improved and spared from pruning
        self.best_checkpoint: str | None = None
        #: only early stopping (train.patience) checkpoints an improving validation: validation alone monitors, without a
        #: full checkpoint (optimizer state, digests, a gather of every shard under FSDP) at each improvement
        self.keep_best = options.patience is not None
        self.bad_validations = 0
        self.first_loss: float | None = None  #: the loss of the run's first step: what divergence is measured against
        self.last_loss: float | None = None  #: the loss of the last finished step (named when a later one is NaN)
        self.diverged: dict[str, Any] | None = None  #: see ``TrainResult.diverged``
        self._warned_validation = False  #: a non-finite validation was said (once per trainer)
        self.last_checkpoint: Path | None = None
        #: wall seconds of the training of the steps before the current ``fit`` (a checkpoint's ``train_seconds`` after a
        #: ``restore``); None when the checkpoint restored records none. The training after a run's last checkpoint, lost
        #: with an interruption, is not in it: those steps are trained again and counted then
        self.trained_seconds: float | None = 0.0
        self._fit_t0: float | None = None  #: ``perf_counter`` at the start of the current ``fit``'s training
        self._stop = StopOnSignal(enabled=False)
        self.stop_requested = False
        self._no_grad: dict[str, nn.Parameter] = {}  #: trainable parameters without a gradient so far in this fit
        self._grad_seen = False  #: a step of this fit had a non-zero gradient norm
        #: per parameter (``self.wrapped.parameters()`` order) the sum of its gradient's norms over this fit's steps, on the
        #: device: read once at the end (``_zero_gradient``), from the norms the step's clipping computes anyway
        self._grad_sums: Tensor | None = None
        self._grad_index: dict[tuple[int, ...], Tensor] = {}  #: positions of the parameters with a gradient, on the device
        self._grad_counted = 0  #: the steps of this fit summed in ``_grad_sums``
        self._updates = 0  #: updates with a learning rate above 0 before this step (this fit's, and the steps resumed from)
        self._bad_ranks: list[int] = []  #: the ranks whose loss was non-finite at the last step (named in the error)
        # one writer per run folder: a second process is refused, naming the holder (rank 0 writes)
        self._lock = RunLock(self.run_dir, "train").acquire() if self.run_dir is not None and self.env.is_main else None
        if self._lock is not None:
            weakref.finalize(self, self._lock.release)

    # ------------------------------------------------------------------ state
    @property
    def ckpt_dir(self) -> Path | None:
        return self.run_dir / "checkpoints" if self.run_dir is not None else None

    @property
    def sharded(self) -> bool:
        return self.env.distributed and self.opts.strategy == "fsdp"

    def save(self) -> Path | None:
        """Checkpoint the current step (every rank takes part; rank 0 writes)."""
        msd, osd = get_full_state(self.loss_module, self.optimizer, self.sharded)
        if self.keep_best and self.best_step is not None and self.best_step == self.step:  # this step's validation is the best so far
            self.best_checkpoint = f"step_{self.step:08d}"
        elif self.best_checkpoint is not None and self.best_checkpoint != f"step_{self.best_step or 0:08d}":
            # beaten where no best is checkpointed (resumed without train.patience): it would name a step that is not the best
            self.best_checkpoint = None
        checksums = D.param_checksums(self.loss_module) if not self.sharded else []
        path = None
        if self.env.is_main and self.ckpt_dir is not None:
            state = {
                "fingerprint": self.fingerprint,
                "fingerprint_config": self.fp_config,
                "config": self.config,
                "scheduler": {k: v for k, v in self.scheduler.state_dict().items() if k != "lr_lambdas"},
                "ema_updates": self.ema.updates if self.ema else 0,
                "best": self.best,
                "best_step": self.best_step,
                "best_checkpoint": self.best_checkpoint,  # kept from pruning; distgen predict --checkpoint best
                "best_kept": self.keep_best,  # false: validated without train.patience (best_checkpoint's refusal says so)
                "bad_validations": self.bad_validations,
                "first_loss": self.first_loss,
                "diverged": self.diverged,
                "world_size": self.env.world_size,
                "rank_checksums": checksums,
                "train_seconds": self._seconds_so_far(),  # null: resumed from a checkpoint that recorded none
            }
            path = save_checkpoint(
                self.ckpt_dir, self.step, {k.removeprefix(PREFIX): v for k, v in msd.items()}, osd, rng_state(), state,
                self.ema.state_dict() if self.ema else None, keep=self.opts.keep_checkpoints,
                spare=[p for p in (self._before_divergence(), self.best_checkpoint) if p is not None],
            )
        D.barrier()
        self.last_checkpoint = path or (self.ckpt_dir / f"step_{self.step:08d}" if self.ckpt_dir else None)
        return path

    def _seconds_so_far(self) -> float | None:
        """Wall seconds of the training up to now: ``trained_seconds`` and the current ``fit``'s so far (None: unknown)."""
        if self.trained_seconds is None:
            return None
        return round(self.trained_seconds + (time.perf_counter() - self._fit_t0 if self._fit_t0 is not None else 0.0), 3)

    def _before_divergence(self) -> Path | None:
        """The newest checkpoint written before the step the loss began to diverge at (None: not diverging, or none)."""
        if not self.diverged or self.ckpt_dir is None:
            return None
        earlier = [p for p in list_checkpoints(self.ckpt_dir) if int(p.name.rsplit("_", 1)[-1]) < self.diverged["step"]]
        return earlier[-1] if earlier else None

    def restore(self, ckpt: Checkpoint | str | Path) -> None:
        """Continue from a checkpoint of the same config (exactly: weights, optimizer, schedule, EMA, RNG)."""
        if not isinstance(ckpt, Checkpoint):
            ckpt = load_checkpoint(ckpt)
        check_compatible(ckpt, self.fp_config, self.fingerprint, self.env.world_size)
        was = shards_of(ckpt.state)
        if was is not None and was != self.n_shards and self.env.is_main:
            warn(f"resuming {ckpt.path} with world_size x train.grad_accum = {self.env.world_size} x {self.opts.grad_accum} = "
                 f"{self.n_shards} shards per step; it was trained with {was}. The global batch stays the same but its shards, "
                 "and so their random draws, differ: the run continues differently from an uninterrupted one (as another "
                 f"seed would, not bit for bit). To continue exactly, resume with world_size x grad_accum = {was}",
                 ResumeShardsWarning)
        expected = set(self.model.state_dict())
        if set(ckpt.model) != expected:
            extra, miss = sorted(set(ckpt.model) - expected), sorted(expected - set(ckpt.model))
            said = "; ".join(([f"it holds {counted(len(extra), 'tensor')} this model lacks: "
                               f"{first_of(extra, 5, render=repr, enclosed=True)}"] if extra else [])
                             + ([f"it lacks {len(miss)} of the model's {counted(len(expected), 'tensor')}: "
                                 f"{first_of(miss, 5, render=repr, enclosed=True)}"] if miss else []))
            raise ConfigError(f"checkpoint {ckpt.path} does not fit this model ({said})")
        msd = {PREFIX + k: v for k, v in ckpt.model.items()}
        set_full_state(self.loss_module, self.optimizer, msd, ckpt.optimizer, self.sharded)
        self.scheduler.load_state_dict({**ckpt.state["scheduler"], "lr_lambdas": [None]})
        # the optimizer's saved lr is the next step's under the checkpoint's schedule; train.steps (its span) may have
        # changed since (an extended run), so take this schedule's: before, the first step after extending a cosine run
        # updated with the old schedule's last rate (0 with min_lr_ratio 0) while metrics.csv logged the new one.
        # Unchanged steps give the same number (the same function of the same step): exact resumes stay exact
        for group, base, factor in zip(self.optimizer.param_groups, self.scheduler.base_lrs, self.scheduler.lr_lambdas, strict=True):
            group["lr"] = base * factor(self.scheduler.last_epoch)  # type: ignore[misc]
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]  # type: ignore[attr-defined]
        if self.ema is not None:
            if ckpt.ema is None:
                raise ConfigError(f"checkpoint {ckpt.path} has no EMA weights but train.ema_decay is set")
            self.ema.load_state_dict(ckpt.ema, ckpt.state.get("ema_updates", 0))
        set_rng_state(ckpt.rng)
        self.step = ckpt.step
        self.best, self.best_step = ckpt.state.get("best"), ckpt.state.get("best_step")
        self.best_checkpoint = ckpt.state.get("best_checkpoint")  # None from a checkpoint written before it was kept
        if ("best_checkpoint" not in ckpt.state and self.best_step is not None and self.ckpt_dir is not None
                and ckpt.path.parent.resolve() == self.ckpt_dir.resolve()):
            # written before it was kept: the best step's checkpoint, where it fell on checkpoint_every, is still the best
            # step's (checkpoint.best_checkpoint gives it), and is spared from pruning like one kept since
            on_schedule = f"step_{int(self.best_step):08d}"
            if (self.ckpt_dir / on_schedule / "state.json").is_file():
                self.best_checkpoint = on_schedule
        self.bad_validations = int(ckpt.state.get("bad_validations", 0))
        self.first_loss, self.diverged = ckpt.state.get("first_loss"), ckpt.state.get("diverged")
        # absent (or null) in a checkpoint written before it was recorded; an edited value that is no number of seconds: unknown
        recorded = ckpt.state.get("train_seconds")
        self.trained_seconds = None
        if isinstance(recorded, int | float) and not isinstance(recorded, bool) and math.isfinite(recorded) and recorded >= 0:
            self.trained_seconds = float(recorded)
        self.last_checkpoint = ckpt.path

    # ------------------------------------------------------------------ loop
    def train_step(self) -> tuple[float, float, list[dict[str, Tensor | float]]]:
        """One optimizer step over ``grad_accum`` micro-batches; returns (loss, grad norm, parts).

        ``parts`` holds each micro-batch's ``LossOutput.parts`` (detached; see ``part_means``), not read back here.
        The step reads the device once: the micro-batches' losses and the gradient norm, in one transfer. It must,
        before the optimizer applies the update: a NaN/inf loss or gradient norm stops training with
        ``NonFiniteLossError`` before it reaches the weights (and so a checkpoint), and the loss of every step is
        reported (``TrainResult.losses``, the progress bar, the divergence warning).
        """
        opts, env = self.opts, self.env
        self.wrapped.train()
        self.optimizer.zero_grad(set_to_none=True)
        losses: list[Tensor] = []
        labels: list[ConditionLabels] = []  # each micro-batch's conditions, to name those of a non-finite loss
        parts: list[dict[str, Tensor | float]] = []
        for micro in range(opts.grad_accum):
            shard = env.rank * opts.grad_accum + micro
            batch = self.train_source.batch(self.step, shard, self.n_shards).to(self.device)
            torch.manual_seed(mix_seed(opts.seed, self.step, shard, 7))
            with D.no_sync(self.wrapped, micro == opts.grad_accum - 1):  # forward and backward skip the all-reduce
                with autocast(self.device, self.amp):
                    loss = self.wrapped(batch)
                if not loss.requires_grad:  # torch said only "element 0 of tensors does not require grad and does not have a grad_fn"
                    raise DetachedLossError(
                        f"{type(self.model).__name__}.loss returned a loss that depends on no trainable parameter (it has no "
                        "grad_fn: a constant, a value computed under torch.no_grad(), or a .detach()/.item() on the way), so "
                        "there is nothing to train; return the loss as a tensor computed from the model's parameters")
                (loss.float() / opts.grad_accum).backward()
            losses.append(loss.detach())
            labels.append(batch.labels)
            last = self.loss_module.last
            parts.append(detached_parts(last.parts, type(self.model).__name__) if last is not None else {})
        params = list(self.wrapped.parameters())
        norm_t, per_param, order = grad_norms(params)
        # no read: summed on the device, looked at once at the end of the fit; not before ZERO_GRADIENT_AFTER updates with a
        # rate (a layer initialised to 0, adaLN-Zero's gate, gives what is behind it gradients of 0 until it has moved)
        if per_param is not None and self._updates >= ZERO_GRADIENT_AFTER:
            self._sum_grad_norms(per_param, order, len(params))
            self._grad_counted += 1
        norm_local = norm_t.full_tensor() if hasattr(norm_t, "full_tensor") else norm_t  # FSDP: a DTensor
        dev = losses[0].device
        *values, norm = torch.stack([*(v.reshape(()).to(torch.float64) for v in losses),
                                     norm_local.reshape(()).to(dev, torch.float64)]).tolist()  # the step's one device read
        loss_sum, n_bad, bad_labels = 0.0, 0, None
        for value, lab in zip(values, labels, strict=True):
            if not math.isfinite(value):
                n_bad += 1
                bad_labels = lab if bad_labels is None else bad_labels
            loss_sum += value
        stop = float(self._stop.requested)
        bad_ranks = [0.0] * env.world_size  # which ranks saw a non-finite loss (for the message)
        bad_ranks[env.rank] = float(n_bad)
        if env.distributed:  # loss sum, non-finite count and stop requests over ranks: all stop at the same step
            packed = torch.tensor([loss_sum, float(n_bad), stop, *bad_ranks], dtype=torch.float64)
            D.all_reduce_sum(packed)
            loss_sum, bad, stop, *bad_ranks = packed.tolist()
            n_bad = int(bad)
        self.stop_requested = stop > 0  # the same on every rank
        self._bad_ranks = [r for r in range(env.world_size) if bad_ranks[r] > 0]
        if n_bad > 0:
            self._non_finite("loss", bad_labels)
        if not math.isfinite(norm):
            self._non_finite("gradient norm", labels[-1])
        self._grad_seen = self._grad_seen or norm != 0.0
        if self._no_grad:  # cheap: only the parameters still without a gradient are looked at
            self._no_grad = {n: p for n, p in self._no_grad.items() if p.grad is None}
        clipped_step(self.optimizer, params, norm_t, opts.grad_clip, norm)  # clip_grad_norm_ + step, the scaling pass avoided
        self._updates += any(g["lr"] > 0 for g in self.optimizer.param_groups)  # host floats (cosine_floor's warm-up starts at 0)
        self.scheduler.step()
        if self.ema is not None:
            if self.step % self.opts.ema_every == 0:
                self.ema.update(self.model)
            if self.epoch_steps and (self.step + 1) % self.epoch_steps == 0:  # ema_epoch_end
                self.ema.update(self.model)
        self.step += 1
        return loss_sum / self.n_shards, norm, parts

    def part_means(self, steps: Sequence[Sequence[Mapping[str, Tensor | float]]]) -> dict[str, float]:
        """The mean of each loss part over ``steps`` (each a list of micro-batch parts, as ``train_step`` returns them):
        over the micro-batches, then the ranks (every rank calls this at the same step), then the steps.

        The tensors of all steps are read back together (one device sync per logged row, none in the steps between).
        A part missing from a step counts as 0 there, the mean is over all ``steps``."""
        if not steps:
            return {}
        floats = iter(host_floats([v for step in steps for micro in step for v in micro.values()]))
        per_step: list[dict[str, float]] = []
        for step in steps:
            acc: dict[str, float] = {}
            for micro in step:
                for k in micro:
                    acc[k] = acc.get(k, 0.0) + next(floats) / self.opts.grad_accum
            per_step.append({k: acc[k] for k in sorted(acc)})
        if self.env.distributed:  # summed over ranks (the ranks' parts have the same names at each step)
            packed = torch.tensor([v for d in per_step for v in d.values()], dtype=torch.float64)
            D.all_reduce_sum(packed)
            summed = iter(packed.tolist())
            per_step = [{k: next(summed) for k in d} for d in per_step]
        sums: dict[str, float] = {}
        for d in per_step:
            for k, v in d.items():
                sums[k] = sums.get(k, 0.0) + v / self.env.world_size
        return {k: v / len(steps) for k, v in sums.items()}

    def _non_finite(self, what: str, labels: ConditionLabels | None) -> None:
        """Stop with ``NonFiniteLossError``: the step, the settings that drove it (lr, grad_clip, precision), the loss
        before, since when it was diverging, the batch's conditions and the last checkpoint."""
        opts = self.opts
        conds = describe_conditions(labels, self.info) if labels is not None else \
            f"(on rank {', '.join(map(str, self._bad_ranks)) or '?'}: its error names them)"
        lr = float(self.scheduler.get_last_lr()[0])  # this step's (the scheduler steps after the update)
        clip = "train.grad_clip=null" if opts.grad_clip is None else f"train.grad_clip={opts.grad_clip:g}"
        bf16 = ", train.precision=bf16" if self.amp == torch.bfloat16 else ""
        before = (f"the loss was {self.last_loss:.4g} at step {self.step}" if self.last_loss is not None
                  else f"the first step since resuming at step {self.step}")
        d = self.diverged
        since = f", diverging since step {d['step']:.0f} (loss {d['loss']:.4g}, {d['loss'] / max(abs(d['first_loss']), FLOOR):.3g} times the first step's)" if d else ""
        last = str(self.last_checkpoint) if self.last_checkpoint else "none saved yet"
        if d and self.last_checkpoint is not None and int(self.last_checkpoint.name.rsplit("_", 1)[-1]) >= d["step"]:
            earlier = self._before_divergence()
            last += (f" (written after the loss began to diverge at step {d['step']:.0f}: "
                     + (f"take the one written before it, {earlier.name})" if earlier else "none was written before it: train again)"))
        last_out = self.loss_module.last
        named = {k: v for k, v in last_out.parts.items() if k != "loss"} if last_out is not None else {}
        parts = ", ".join(f"{k} {v:.4g}" for k, v in zip(named, host_floats(list(named.values()))))
        parts = f"; loss terms: {parts}" if parts else ""
        if self.step == 0:  # the run's first step: no update made yet, so the learning rate did not cause it
            fixes = (["try train.precision=fp32"] if bf16 else []) + [
                "check the data of these conditions (NaN/inf values) and the loss settings (a term's weight that overflows "
                "float32, a kernel or time setting that divides by zero)"]
            cause = "no update had been made, so the learning rate is not the cause"
        else:
            fixes = ["lower train.lr" + (" or raise train.warmup_steps" if opts.warmup_steps == 0 else "")]
            if opts.grad_clip is None:
                fixes.append("set train.grad_clip (e.g. 1.0)")
            if bf16:
                fixes.append("try train.precision=fp32")
            fixes.append("check the weights of the loss terms and the data of these conditions")
            cause = before
        to_fix = fixes[0] if len(fixes) == 1 else f"{', '.join(fixes[:-1])}, or {fixes[-1]}"
        raise NonFiniteLossError(
            f"non-finite {what} at step {self.step + 1} (rank {self.env.rank}; lr {lr:.3g}, {clip}{bf16}; {cause}{since}{parts}); "
            f"batch conditions: {conds}. Last checkpoint: {last}. To fix: {to_fix}."
        )

    def watch_divergence(self, step: int, loss: float, lr: float, norm: float) -> None:
        """Warn once (``DivergenceWarning``) when the loss of ``step`` exceeds ``DIVERGENCE_FACTOR`` times the first step's.

        A loss that explodes without becoming NaN (a learning rate ten times too high, a loss term weighted absurdly,
        clipping that only slows it) trains on and gives checkpoints and predictions of a diverged model; the warning names
        the step, the loss, the first step's, the learning rate and the gradient norm. ``TrainResult.diverged`` and the run's
        ``manifest.json`` (``training.diverged``) record it, and ``distgen run``/``distgen sweep`` report it.
        """
        if self.first_loss is None:
            self.first_loss = loss
            return
        if self.diverged is not None or not loss > DIVERGENCE_FACTOR * max(abs(self.first_loss), FLOOR):
            return
        self.diverged = {"step": step, "loss": loss, "first_loss": self.first_loss, "lr": lr, "grad_norm": norm,
                         "grad_clip": self.opts.grad_clip}
        if self.env.is_main:
            warn(divergence_message(self.diverged), DivergenceWarning)

    def validate(self) -> dict[str, float]:
        assert self.val_source is not None
        ctx = self.ema.swapped_in(self.model) if self.ema is not None else _null()
        genes = self.info.genes if self.info is not None else ()
        with ctx, D.gathered(self.wrapped, self.sharded), autocast(self.device, self.amp):
            return validate(self.model, self.val_source, self.metrics, self.opts.seed, self.device, genes)

    def fit(self, resume: Checkpoint | str | Path | None = None) -> TrainResult:
        """Train to ``options.steps`` (from ``resume`` when given); returns losses and validation history.

        A ``run_dir`` that already holds checkpoints needs ``resume`` (``RunFolderError`` otherwise, before anything is
        written: the checks of ``distgen train --out``, ``distgen.train.checkpoint.check_run_folder``)."""
        opts, env = self.opts, self.env
        if self.run_dir is not None:  # a folder holding checkpoints needs resume=, as distgen train needs --resume
            try:
                check_run_folder(self.run_dir, resume, python_resume_option(self.run_dir), "run_dir")
            except BaseException:
                if self._lock is not None:  # refused before anything was written: the folder is left free
                    self._lock.release()
                raise
        if self._lock is not None:
            self._lock.acquire()  # again, if an earlier fit of this trainer released it
        if resume is not None:
            try:
                self.restore(resume)
            except BaseException:
                if self._lock is not None:  # a checkpoint that cannot be restored leaves the run folder free
                    self._lock.release()
                raise
        if resume is not None and self.step > opts.steps and env.is_main:  # nothing to train: the model stays the later one
            warn(f"resumed at step {self.step}, past train.steps={opts.steps}: nothing was trained, and the model is the one of step "
                 f"{self.step}, not of step {opts.steps}; for the model of an earlier step, resume one of its earlier checkpoints "
                 "into a new folder (docs/training.md, \"Only forward\")", DistgenWarning)
        result = TrainResult(step=self.step, train_steps=opts.steps, seconds_before=self.trained_seconds)
        log = MetricsLog(self.run_dir / "metrics.csv", resume_step=self.step if resume is not None else None) if (env.is_main and self.run_dir) else None
        if log is not None and log.note and self.step == 0:
            print(f"note: {log.note}", file=sys.stderr)
        if env.is_main and self.n_shards > 1:  # the same global batch on any number of ranks: say how it is cut
            ranks = f"{env.world_size} {'rank' if env.world_size == 1 else 'ranks'}" if env.distributed else "1 process"
            print(f"batch: {opts.sets_per_batch} sets per step (train.sets_per_batch, the global batch) = {ranks} x {opts.grad_accum} "
                  f"micro-batch{'es' if opts.grad_accum > 1 else ''} (train.grad_accum) x {opts.sets_per_batch // self.n_shards} "
                  f"set{'s' if opts.sets_per_batch // self.n_shards > 1 else ''}", file=sys.stderr)
        bar = progress_bar(opts.steps, self.step, opts.progress and env.is_main)
        window: list[float] = []
        window_parts: list[list[dict[str, Tensor | float]]] = []  # read back when a row is logged
        t0, s0 = time.perf_counter(), self.step
        t_first = self._fit_t0 = t0
        self._no_grad = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        self._grad_seen = False
        self._grad_sums, self._grad_index = None, {}
        self._grad_counted = 0  # the steps whose gradient norms are in _grad_sums
        self._updates = self.step  # the steps before a resume moved the weights (only a warm-up's first step has rate 0)
        weights0 = self._weights_norm() if self.step < opts.steps else 0.0  # for _check_final_weights (one read a fit)
        cells_per_step = opts.sets_per_batch * getattr(self.train_source, "set_size", 0)
        # SIGINT/SIGTERM: finish the step, write a final checkpoint, raise Interrupted (distgen.train.interrupt)
        self._stop = StopOnSignal(enabled=self.ckpt_dir is not None, last_checkpoint=self.last_checkpoint)
        stopper = self._stop
        try:
            stopper.__enter__()
            while self.step < opts.steps:
                t_step = time.perf_counter()
                lr = float(self.scheduler.get_last_lr()[0])  # the rate this step updates with
                try:
                    loss, norm, parts = self.train_step()
                except torch.cuda.OutOfMemoryError as exc:
                    raise RuntimeError(f"step {self.step}: {OOM_HINT}") from exc
                self.watch_divergence(self.step, loss, lr, norm)
                self.last_loss = loss
                result.losses.append(loss)
                window.append(loss)
                window_parts.append(parts)
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                bar.update(1)
                row: dict[str, float] = {}
                if self.step % opts.log_every == 0 or self.step == opts.steps:
                    means = self.part_means(window_parts)  # the window's one device read of the loss parts
                    rate = (self.step - s0) / max(time.perf_counter() - t0, 1e-9)
                    row = {"loss": sum(window) / len(window), "lr": float(self.scheduler.get_last_lr()[0]), "grad_norm": norm,
                           "steps_per_s": rate, "cells_per_s": rate * cells_per_step, **{f"loss_{k}": v for k, v in means.items() if k != "loss"}}
                    if self.device.type == "cuda":
                        row["peak_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 1e9
                    window, window_parts = [], []
                if self.step - s0 == ESTIMATE_AFTER and opts.steps - s0 > ESTIMATE_AFTER:
                    result.estimate_s = self._estimate(t_first, s0)
                if self.step - s0 == 1:
                    t_first = time.perf_counter()  # the first step carries one-time costs; time from its end
                out_of_time = self._out_of_time(t0) if opts.minutes is not None and self.step < opts.steps else False
                result.stopped_by_budget = out_of_time
                stop = out_of_time
                improved = False  # this step's validation improved train.monitor: its checkpoint is the best (spared from pruning)
                if self.val_source is not None and opts.val_every and (self.step % opts.val_every == 0 or self.step == opts.steps):
                    # rank 0's numbers on every rank: the ranks validate the same sets with the same weights, but one
                    # rank deciding to stop (train.patience) while another trains on would leave the other hanging
                    vals = D.broadcast_values(self.validate())
                    result.validations.append({"step": self.step, **vals})
                    row.update(vals)
                    stop = self._early_stop(vals) or out_of_time  # the patience count is kept either way; a budget run out still stops
                    improved = self.keep_best and self.best_step == self.step
                if row and log is not None:
                    log.log(self.step, row)
                if self.step == opts.steps or stop:  # no later loss shows an update that overflowed: look at the weights
                    self._check_final_weights(lr, norm, weights0)
                if self.ckpt_dir is not None and (self.step % opts.checkpoint_every == 0 or self.step == opts.steps or stop or improved):
                    self.save()
                for cb in self.callbacks:
                    cb(self, self.step)
                stopper.step_done(time.perf_counter() - t_step, self.step, self.last_checkpoint)
                if self.stop_requested or (stopper.requested and not env.distributed):
                    self._interrupted(stopper.signal or "SIGTERM")
                if stop:
                    result.stopped_early = not out_of_time
                    break
        finally:
            stopper.__exit__(None, None, None)
            bar.close()
            if log is not None:
                log.close()
            if self._lock is not None:
                self._lock.release()
        result.step, result.best, result.best_step = self.step, self.best, self.best_step
        if self.step > 0:
            mark_trained(self.model)  # distgen.predict no longer warns about initial weights
        result.checkpoint = self.last_checkpoint
        best_dir = self.ckpt_dir / self.best_checkpoint if self.ckpt_dir is not None and self.best_checkpoint else None
        # a run copied without its best step's checkpoint and resumed still records the name: not given as a checkpoint
        result.best_checkpoint = best_dir if best_dir is not None and (best_dir / "state.json").is_file() else None
        result.diverged = self.diverged
        if self.step > s0:
            result.no_gradient = sorted(self._no_grad)
            result.zero_gradient = self._zero_gradient()
            # a gradient norm of 0 at every step (every parameter's gradient 0) is said once below, not per component
            warned = self._warn_no_gradient(result.no_gradient, self.step - s0, result.zero_gradient if self._grad_seen else [])
            # not "and not result.no_gradient": a parameter merely listed (the null embedding of a model without condition
            # dropout, in every fit) silenced this warning for a loss weighted 0
            if not self._grad_seen and env.is_main and not warned:
                n = self.step - s0
                warn(f"the gradient norm was 0 at every one of the {n} training step{'s' if n > 1 else ''} of this fit: the loss does not "
                     "change with the weights (every loss term weighted 0, or the output multiplied by 0), so nothing was learned "
                     "but weight decay; check the loss weights", NoGradientWarning)
        result.seconds = time.perf_counter() - t0
        self._fit_t0 = None
        if self.trained_seconds is not None:
            self.trained_seconds += result.seconds
        if result.stopped_early and env.is_main and self.best_step is not None and self.best_step != self.step:
            # the weights kept are the last step's (the default of distgen predict, as of distgen run), which early stopping
            # users often take for the best one's; a run folder keeps the best step's checkpoint too (--checkpoint best)
            best = result.best_checkpoint
            print(f"train: stopped early at step {self.step}: {opts.monitor} did not improve for {opts.patience} validation(s) after "
                  f"its best, {self.best:.4g} at step {self.best_step}; the model"
                  + (f" (and checkpoint {self.last_checkpoint})" if self.last_checkpoint is not None else "")
                  + f" is step {self.step}'s, not the best step's"
                  + (f"; the best step's is checkpoint {best} (distgen predict RUN --checkpoint best)" if best is not None else
                     f"; step {self.best_step}'s checkpoint ({self.best_checkpoint}) is not in {self.ckpt_dir} (a copy of the "
                     "run without it?), so there is no best checkpoint to predict from" if best_dir is not None else ""),
                  file=sys.stderr)
        if result.stopped_by_budget and env.is_main:
            print(f"train: the budget train.minutes={opts.minutes:g} ran out at step {self.step} of {opts.steps}; "
                  f"checkpoint {self.last_checkpoint}", file=sys.stderr)
        return result

    def _sum_grad_norms(self, norms: Tensor, order: list[int], n_params: int) -> None:
        """Add this step's per-gradient norms (``grad_norms``) to ``_grad_sums`` at the positions ``order``, on the device.
        The index tensor of a pattern of parameters with a gradient is made once (a host-to-device copy, no read)."""
        local = norms.to_local() if hasattr(norms, "to_local") else norms  # FSDP: this rank's shards' norms (summed at the end)
        if self._grad_sums is None:
            self._grad_sums = torch.zeros(n_params, dtype=torch.float32, device=local.device)
        key = tuple(order)
        index = self._grad_index.get(key)
        if index is None:
            index = torch.tensor(order, dtype=torch.long, device=local.device)
            if len(self._grad_index) < 16:  # a few patterns (a null embedding used on some steps only)
                self._grad_index[key] = index
        self._grad_sums.index_add_(0, index, local.detach().to(torch.float32))

    def _zero_gradient(self) -> list[str]:
        """The trainable parameters (model names) that got a gradient in this fit, exactly 0 at every step (one read)."""
        if self._grad_sums is None:
            return []
        sums = self._grad_sums
        if self.env.distributed:  # FSDP: each rank summed its shards; DDP: the same on every rank (0 stays 0)
            D.all_reduce_sum(sums)
        names = {id(p): n for n, p in self.model.named_parameters()}
        params = list(self.wrapped.parameters())
        return sorted(names[id(params[i])] for i, v in enumerate(sums.tolist())
                      if v == 0.0 and id(params[i]) in names and names[id(params[i])] not in self._no_grad and params[i].requires_grad)

    def _warn_no_gradient(self, names: Sequence[str], steps: int, zero: Sequence[str] = ()) -> bool:
        """Warn (``NoGradientWarning``) about each component of the model none of whose trainable parameters received a
        gradient in ``steps`` steps: the loss does not depend on it (detached, unused, or a loss term of weight 0), so it
        stayed at its initial weights while the run looked healthy. A single parameter without a gradient in a component
        that learns (a null-condition embedding that condition dropout did not draw in a short run) is not warned about;
        ``TrainResult.no_gradient`` lists every one. A component whose parameters got gradients of exactly 0 at every step
        (``zero``: its output multiplied by 0 while the others learn; ``TrainResult.zero_gradient``) is warned about alike.
        Returns whether a component was warned about."""
        if not (names or zero) or not self.env.is_main:
            return False
        pending, zeros = set(names), set(zero)
        trainable: dict[str, list[str]] = {}
        for n, p in self.model.named_parameters():
            if p.requires_grad:
                trainable.setdefault(n.split(".", 1)[0] if "." in n else "", []).append(n)
        dead = {c: ns for c, ns in trainable.items() if all(n in pending or n in zeros for n in ns)}
        if "" in dead and len(dead) < len(trainable):
            # the model's own parameters are not a component: a null vector of its own is unused without condition
            # dropout while every component learns (listed in no_gradient, not warned, as one inside a component)
            del dead[""]
        for comp, ns in dead.items():
            what = f"model.{comp}" if comp else f"{type(self.model).__name__}'s own parameters"
            shown = first_of(ns, 4)
            params = f"{len(ns)} trainable parameter{'s' if len(ns) > 1 else ''}: {shown}"
            if any(n in zeros for n in ns):
                counted = self._grad_counted
                first = f" after its first {ZERO_GRADIENT_AFTER} updates" if counted < steps else ""
                warn(f"{what} received a gradient of exactly 0 at every one of the {counted} training step{'s' if counted > 1 else ''} "
                     f"of this fit{first} ({params}) while the rest of the model learned: the loss does not change with it (its output "
                     "multiplied by 0, or feeding only a loss term of weight 0), so it learned nothing (weight decay aside). If "
                     "that is meant, freeze it (requires_grad=False); otherwise check where its output is scaled away", NoGradientWarning)
                continue
            warn(f"{what} received no gradient in {steps} training step{'s' if steps > 1 else ''} ({params}): the loss does not "
                 "depend on it (a detached output, an unused component, or a loss term of weight 0), so it kept its initial "
                 "weights. If that is meant, freeze it (requires_grad=False); otherwise check where its output leaves the loss",
                 NoGradientWarning)
        return bool(dead)

    def _weights_norm(self) -> float:
        """The largest magnitude of a trainable parameter (NaN when one is: one device read; every rank takes part under
        FSDP). The max norm, not the 2-norm: squares of weights of 1e30 overflow float32, so the 2-norm of finite weights is inf.
        Each rank's own shards, the empty ones left out: under FSDP a parameter with fewer rows than ranks has an empty shard
        on some rank, where ``get_total_norm(..., inf)`` raised ("cannot compute the infinity norm on an empty tensor")."""
        local = [p.detach() for p in self.wrapped.parameters() if p.requires_grad]
        local = [t.to_local() if hasattr(t, "to_local") else t for t in local]  # FSDP: a DTensor's shard on this rank
        peaks = [t.abs().amax().float().to(self.device) for t in local if t.numel() > 0]
        peak = torch.stack(peaks).amax() if peaks else torch.zeros((), device=self.device)
        if self.sharded:  # the ranks hold different shards: the largest over all (NaN as inf, so no rank's is lost)
            peak = torch.nan_to_num(peak, nan=math.inf).reshape(1)
            torch.distributed.all_reduce(peak, op=torch.distributed.ReduceOp.MAX)
        return float(peak.reshape(()))

    def _check_final_weights(self, lr: float, grad: float, norm0: float) -> None:
        """After the last step of a fit: weights that are not finite stop the run before they are checkpointed
        (``NonFiniteLossError``), weights whose largest magnitude grew past ``DIVERGENCE_FACTOR`` times the fit's first (``norm0``) are a
        ``DivergenceWarning``. Every earlier update is checked by the next step's loss; the last one has none (a one-step
        run with ``lr: 1e40`` finished with inf weights, ``1e30`` with weights of 1e30, without a word)."""
        norm = self._weights_norm()
        clip = "train.grad_clip=null" if self.opts.grad_clip is None else f"train.grad_clip={self.opts.grad_clip:g}"
        if not math.isfinite(norm):
            last = str(self.last_checkpoint) if self.last_checkpoint else "none saved yet"
            raise NonFiniteLossError(
                f"the weights after step {self.step} are not finite (the update of lr {lr:.3g}, {clip}, gradient norm "
                f"{grad:.4g}, overflowed; the loss before it was {self.last_loss:.4g}); they were not checkpointed. Last "
                f"checkpoint: {last}. To fix: lower train.lr" + (" or set train.grad_clip (e.g. 1.0)" if self.opts.grad_clip is None else ""))
        if self.diverged is None and norm0 > 0 and norm > DIVERGENCE_FACTOR * max(norm0, FLOOR) and self.env.is_main:
            warn(f"the weights after step {self.step} reach {norm:.4g} in magnitude, {norm / norm0:.3g} times their norm (largest "
                 f"magnitude) at the start of this fit ({norm0:.4g}; lr {lr:.3g}, {clip}): the last updates diverged and no later loss shows it, so the "
                 "checkpoint and predictions come from a diverged model: lower train.lr", DivergenceWarning)

    def _estimate(self, t_first: float, s0: int) -> float:
        """Seconds to ``train.steps`` from the steps timed so far (printed on rank 0, with the budget's reach)."""
        per_step = (time.perf_counter() - t_first) / (ESTIMATE_AFTER - 1)
        left = self.opts.steps - self.step
        eta = per_step * left
        if self.env.is_main:
            msg = f"train: ~{per_step:.3g} s/step, {left} more steps: about {duration(eta)}"
            if self.opts.minutes is not None and eta > self.opts.minutes * 60:
                msg += f"; train.minutes={self.opts.minutes:g} stops it near step {self.step + int(self.opts.minutes * 60 / per_step)}"
            print(msg, file=sys.stderr)
        return eta

    def _out_of_time(self, t0: float) -> bool:
        """Has ``train.minutes`` run out? Every rank gets rank 0's answer (so all stop at the same step)."""
        assert self.opts.minutes is not None
        flag = torch.tensor([float(time.perf_counter() - t0 >= self.opts.minutes * 60)], dtype=torch.float64)
        if self.env.distributed:
            if not self.env.is_main:
                flag.zero_()
            D.all_reduce_sum(flag)
        return bool(flag[0] > 0)

    def _interrupted(self, signal_name: str) -> None:
        """Write a final checkpoint at this step boundary (unless one was just written) and raise ``Interrupted``."""
        if self.ckpt_dir is not None and (self.last_checkpoint is None or self.last_checkpoint.name != f"step_{self.step:08d}"):
            self.save()
        raise Interrupted(
            f"interrupted by {signal_name} at step {self.step} of {self.opts.steps}; final checkpoint: {self.last_checkpoint}",
            signal_name, self.step, self.last_checkpoint, self.run_dir,
        )

    def _early_stop(self, vals: dict[str, float]) -> bool:
        """Whether ``train.patience`` validations in a row failed to improve ``train.monitor`` (updates ``best``).

        A NaN/inf value is never the best and counts as a validation without improvement: a model whose validation turned
        non-finite is stopped by ``patience`` instead of training on to the last step (said once, as a ``DivergenceWarning``).
        """
        value = vals.get(self.opts.monitor, vals.get(f"val_{self.opts.monitor}"))
        if value is None:
            return False
        if not math.isfinite(value):
            if not self._warned_validation and self.env.is_main:
                self._warned_validation = True
                patience = "no improvement" + (f" toward train.patience={self.opts.patience}" if self.opts.patience is not None else "")
                warn(f"validation at step {self.step} gave {self.opts.monitor}={value}: the model's validation loss or samples are "
                     f"not finite (counted as {patience}; the best so far is "
                     f"{'none' if self.best is None else f'{self.best:.4g} at step {self.best_step}'}). Look at metrics.csv for "
                     "the step where the validation columns turned NaN", DivergenceWarning)
            self.bad_validations += 1
            return self.opts.patience is not None and self.bad_validations >= self.opts.patience
        better = self.best is None or (value > self.best if self.maximize else value < self.best)
        if better:
            self.best, self.best_step, self.bad_validations = value, self.step, 0
            return False
        self.bad_validations += 1
        return self.opts.patience is not None and self.bad_validations >= self.opts.patience


#: Steps after which the trainer prints its time estimate (timed from the end of the first step).
ESTIMATE_AFTER = 3
#: A finite loss above this multiple of the first step's (in magnitude, at least ``FLOOR``) is a diverging run.
#: Noise, warm-up spikes and the loss rising while a model learns stay far below it: on the tiny test model, learning
#: rates up to 0.1 stayed under 70 times the first loss, while 1.0 reached 1e8 times and 10 reached 1e16 times at step 2
#: (examples/ablation_grid_tiny.yaml with lr 10: 7.6e18 times).
DIVERGENCE_FACTOR = 1e3
#: steps before this many updates with a learning rate above 0 are left out of the zero-gradient check: a layer initialised
#: to 0 (adaLN-Zero's gates, a zero final layer) gives what lies behind it gradients of exactly 0 until an update moves it,
#: and a chain of two such layers needs two (a smoke run of 1 or 2 steps of perturbdiff-small warned that its conditioner
#: learned nothing)
ZERO_GRADIENT_AFTER = 2
FLOOR = 1e-6  #: the first step's loss magnitude below which the factor applies to this value instead


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def python_resume_option(run_dir: Path) -> str:
    """How a Python caller resumes ``run_dir`` (``fit``/``Trainer.fit``'s ``resume=``), for ``check_run_folder``'s message."""
    return f"resume={str(run_dir)!r} (its newest checkpoint)"


def latest_step(run_dir: str | Path) -> int | None:
    """Step of the newest complete checkpoint of a run directory (None when there is none)."""
    found = list_checkpoints(Path(run_dir) / "checkpoints")
    return int(found[-1].name.split("_")[1]) if found else None


def epoch_steps(source: BatchSource) -> int:
    """Optimizer steps per epoch of a batch source that has epochs (``train.ema_epoch_end``)."""
    n = getattr(source, "steps_per_epoch", None)
    if not isinstance(n, int) or n < 1:
        raise ConfigError(
            f"train.ema_epoch_end needs a batch source with epochs; {type(source).__name__} has none "
            "(use the in-memory data path, or ema_epoch_end=false)"
        )
    return n
