"""The ``train:`` section of a config: every knob of the trainer, with its default.

The dataclass *is* the schema: ``train_options(section)`` rejects unknown keys and wrong types with
the key named (through ``distgen.config.validate_params``) and checks value ranges.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from distgen.config import ConfigError, InertSettingWarning, plain_values, validate_params
from distgen.errors import warn
from distgen.wording import did_you_mean

#: Keys that may change between a checkpoint and its resume (they steer the run, not its result).
RUN_CONTROL_KEYS = frozenset(
    {"steps", "checkpoint_every", "keep_checkpoints", "log_every", "progress", "val_every", "patience", "device", "compile",
     "check_memory", "minutes"}
)


@dataclass
class TrainOptions:
    """Trainer settings (the ``train:`` config section).

    Parameters
    ----------
    seed
        Seeds data sampling and every random draw of the model, per step and shard.
    steps
        Optimizer steps.
    minutes
        Wall-clock budget: stop after the first step that ends past this many minutes of training,
        write a checkpoint there and record it (``TrainResult.stopped_by_budget``). The learning-rate
        schedule still spans ``steps``: for a complete schedule set ``steps`` to what the budget
        reaches (the trainer prints its estimate after the first steps). ``None``: no budget.
    sets_per_batch
        Global batch size in cell sets (split evenly across ranks x accumulation micro-batches).
    grad_accum
        Micro-batches accumulated per optimizer step on each rank.
    optimizer
        ``"adamw"`` or ``"adam"``.
    lr, weight_decay, betas, eps
        Optimizer hyper-parameters (the fastest kernel, fused or multi-tensor, is chosen for the device).
    decay_norm_and_bias
        Apply ``weight_decay`` to every parameter (True), or only to matrices (Linear and embedding
        weights) and not to biases, norm gains and other 1-D parameters (False; near PerturbDiff's code, which also decays its 1-D norm scales and null vectors: docs/perturbdiff.md).
    schedule
        ``"cosine"`` (linear warm-up then cosine decay to ``min_lr_ratio * lr``), ``"constant"``
        (linear warm-up then flat) or ``"cosine_floor"`` (PerturbDiff's: warm-up from 0, cosine
        towards 0 clamped below at ``min_lr_ratio``; ``distgen.train.schedule.lr_factor``).
    warmup_steps, min_lr_ratio, plateau_ratio
        Schedule shape; ``plateau_ratio * steps`` steps at the peak between warm-up and decay
        (PerturbDiff: 0.1).
    grad_clip
        Clip the global gradient norm to this value; ``None`` disables clipping.
    ema_decay
        Keep an exponential moving average of the weights with this decay (e.g. 0.999); ``None``
        disables it. Validation and prediction use the EMA weights when present.
    ema_every, ema_warmup
        Update the average after every ``ema_every``-th optimizer step (steps 1, 1 + k, ...;
        PerturbDiff: 0.99 every 10); ``ema_warmup`` ramps the decay up over the first updates
        (False: the first update copies the weights, as torch's ``AveragedModel``).
    ema_epoch_end
        Also update the average after the last step of every epoch of the batch source, on top of
        the ``ema_every`` cadence: official PerturbDiff's EMA callback does (its ``should_update``
        answers True at every epoch end), which on a small data set is most of its updates.
    precision
        ``"auto"`` (bf16 autocast on CUDA, fp32 elsewhere), ``"fp32"`` or ``"bf16"``.
    tf32
        Allow TF32 matmuls and convolutions on CUDA.
    device
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    compile
        Compile the backbone with ``torch.compile``: ``true`` (its default mode), or a mode by name:
        ``"reduce-overhead"`` (CUDA graphs: for small steps that launch-bound GPUs spend on kernel
        launches), ``"max-autotune"``, ``"max-autotune-no-cudagraphs"``.
    strategy
        Multi-process wrapping: ``"ddp"`` or ``"fsdp"`` (FSDP2 ``fully_shard``, for large backbones).
        Ignored in a single process.
    find_unused_parameters
        DDP option; keep True when some parameters may get no gradient in a step (e.g. null
        condition embeddings without condition dropout).
    val_every
        Validate every this many steps, and at the last step (0: never). Needs validation cells
        (``data.split.val_frac > 0``).
    val_sets, val_metrics
        Validation draws ``val_sets`` fixed sets; reports their loss and the named evaluation
        metrics (registered ``metrics``) of cells generated for them.
    monitor, patience
        Early stopping: stop when ``monitor`` (``"val_loss"`` or a metric name) has not improved for
        ``patience`` validations. ``patience=None`` disables it.
    checkpoint_every, keep_checkpoints
        Checkpoint period in steps (and always at the end) and how many to keep.
    log_every, progress
        Metrics row period in steps and whether to show a progress bar.
    check_memory
        Before building the model, estimate the memory of a training step (parameters with their
        gradients and optimizer state, input cells, activations; ``distgen.train.resources``) and
        refuse a config that cannot fit on this machine. ``false`` tries anyway, without the estimate (its meta
        builds took seconds of a tiny run's start on a loaded machine).
    """

    seed: int = 0
    steps: int = 1000
    sets_per_batch: int = 8
    grad_accum: int = 1
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    decay_norm_and_bias: bool = True
    schedule: str = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    plateau_ratio: float = 0.0
    grad_clip: float | None = 1.0
    ema_decay: float | None = None
    ema_every: int = 1
    ema_warmup: bool = True
    ema_epoch_end: bool = False
    precision: str = "auto"
    tf32: bool = True
    device: str = "auto"
    compile: bool | str = False
    strategy: str = "ddp"
    find_unused_parameters: bool = True
    val_every: int = 0
    val_sets: int = 16
    val_metrics: list[str] = field(default_factory=lambda: ["mse"])
    monitor: str = "val_loss"
    patience: int | None = None
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10
    progress: bool = True
    check_memory: bool = True
    minutes: float | None = None

    def __post_init__(self) -> None:
        _choice("optimizer", self.optimizer, ("adamw", "adam"))
        _choice("schedule", self.schedule, ("cosine", "constant", "cosine_floor"))
        _choice("precision", self.precision, ("auto", "fp32", "bf16"))
        _choice("strategy", self.strategy, ("ddp", "fsdp"))
        if isinstance(self.compile, str):
            _choice("compile", self.compile, COMPILE_MODES)
        for key in ("steps", "sets_per_batch", "grad_accum", "checkpoint_every", "log_every", "keep_checkpoints", "val_sets", "ema_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"train.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("warmup_steps", "val_every"):
            if getattr(self, key) < 0:
                raise ConfigError(f"train.{key} must be >= 0, got {getattr(self, key)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if not 0.0 <= self.plateau_ratio < 1.0:
            raise ConfigError(f"train.plateau_ratio must be in [0, 1), got {self.plateau_ratio}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"train.grad_clip must be > 0 or null, got {self.grad_clip}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in (0, 1) or null, got {self.ema_decay}")
        if len(self.betas) != 2:
            raise ConfigError(f"train.betas must be two floats [beta1, beta2], got {self.betas}")
        # torch's optimizer checks these only when the trainer builds it, after the data is loaded and the run folder
        # written, with a message that names no setting ("Invalid beta parameter at index 0: 1.5")
        for i, beta in enumerate(self.betas):
            if not 0.0 <= beta < 1.0:
                raise ConfigError(f"train.betas[{i}] must be in [0, 1), got {beta} (Adam's moment decays; default [0.9, 0.999])")
        if self.eps < 0:
            raise ConfigError(f"train.eps must be >= 0, got {self.eps} (default 1e-8)")
        if self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.weight_decay} (0 disables it)")
        if self.minutes is not None and not self.minutes > 0:
            raise ConfigError(f"train.minutes must be > 0 or null, got {self.minutes}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"train.patience must be >= 1 or null, got {self.patience}")
        self._check_val_metrics()
        for message in self.inert():
            warn(message, InertSettingWarning)

    def _check_val_metrics(self) -> None:
        """``val_metrics`` registered metrics and ``monitor`` one of them (or ``val_loss``): caught with the other settings
        (``check_experiment``, ``train_options``), not when the trainer is built after the data is loaded."""
        check_val_metrics(self.val_metrics)
        check_monitor(self.monitor, self.val_metrics)

    def inert(self) -> list[str]:
        """Settings given a non-default value that have no effect with the others (``InertSettingWarning``)."""
        out = []
        if self.schedule == "constant":
            for key in ("min_lr_ratio", "plateau_ratio"):
                if getattr(self, key) != 0:
                    out.append(f"train.{key}={getattr(self, key)} has no effect with train.schedule=constant (the learning "
                               "rate stays at its peak after the warm-up); set a decaying schedule (cosine, cosine_floor) or "
                               f"train.{key}=0")
        if self.ema_decay is None:
            defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name in ("ema_every", "ema_warmup", "ema_epoch_end")}
            for key, default in defaults.items():
                if getattr(self, key) != default:
                    out.append(f"train.{key}={getattr(self, key)} has no effect with train.ema_decay=null (no moving "
                               "average is kept); set train.ema_decay (e.g. 0.999)")
        if self.warmup_steps >= self.steps:
            decay = "" if self.schedule == "constant" else f" and the {self.schedule} decay never starts"
            out.append(f"train.warmup_steps={self.warmup_steps} is not shorter than train.steps={self.steps}: the learning rate "
                       f"never reaches train.lr={self.lr:g}{decay}; lower train.warmup_steps (train.steps sets the schedule's "
                       "span, also when a run is resumed with more steps)")
        if self.weight_decay == 0 and not self.decay_norm_and_bias:
            out.append("train.decay_norm_and_bias=false has no effect with train.weight_decay=0 (nothing is decayed)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint_dict(self) -> dict[str, Any]:
        """The settings that define the training trajectory (``RUN_CONTROL_KEYS`` left out)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUN_CONTROL_KEYS}


def check_val_metrics(names: Sequence[str]) -> None:
    """Refuse (``ConfigError``) a name in ``train.val_metrics`` that is no registered metric (or a plugin's that fails to
    load or its cheap checks), worded as for ``evaluate.metrics`` (``evaluation.metrics.base.metric_problem``): the one
    check of the config (``TrainOptions``) and of the trainer (``validation.resolve_metrics``)."""
    from distgen.evaluation.metrics.base import metric_problem

    for name in names:
        if (problem := metric_problem(name, "train.val_metrics")) is not None:
            raise ConfigError(problem)


def check_monitor(monitor: str, val_metrics: Sequence[str]) -> None:
    """Refuse a ``train.monitor`` that is neither ``val_loss`` nor one of ``val_metrics`` (``val_mse`` or ``mse``), as the
    trainer reads it (``validation.higher_is_better``)."""
    if monitor == "val_loss" or monitor.removeprefix("val_") in val_metrics:
        return
    watched = ("val_loss", *(f"val_{m}" for m in val_metrics))
    raise ConfigError(f"train.monitor={monitor!r} is neither val_loss nor one of train.val_metrics {list(val_metrics)} (as "
                      f"val_<metric>).{did_you_mean(monitor, watched)} To stop on another metric, name it in both "
                      "(train.val_metrics=[mse,pearson_delta] train.monitor=val_pearson_delta)")


#: ``train.compile`` as a string: a ``torch.compile`` mode
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(value: bool | str) -> str | None:
    """The ``torch.compile`` mode that a ``train.compile`` value other than ``false`` asks for (``None``: torch's default)."""
    return None if value is True or value == "default" or not value else str(value)


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"train.{key}: expected one of {', '.join(allowed)}, got {value!r}.{did_you_mean(value, allowed)}")


def train_options(section: Mapping[str, Any] | TrainOptions | None = None, **overrides: Any) -> TrainOptions:
    """Validate a ``train:`` section (unknown keys and wrong types fail, naming the key)."""
    base = section.to_dict() if isinstance(section, TrainOptions) else dict(section or {})
    base.update(overrides)
    base = plain_values(base)  # np.int64(3) from a notebook is the seed 3
    validate_params(TrainOptions, base, "train")
    return TrainOptions(**base)
