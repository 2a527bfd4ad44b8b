"""Memory estimates before a model is built: sizes that cannot fit fail in seconds, naming the knob.

``check_memory`` estimates what one training step needs and compares it with the machine (the GPU's
memory, or the RAM of the host or its cgroup limit), before anything large is allocated:

* **input cells**: ``sets x set_size x genes x 4 bytes`` for the target and the control cells of a
  micro-batch (closed form);
* **parameters**: the model is built on PyTorch's ``meta`` device (shapes only, no memory), with
  registration hooks that stop the build as soon as the count passes what the machine holds; a
  model knob (any integer in the ``model:`` section) larger than ``PROBE_ABOVE`` is first probed:
  the model is built at three small values of that knob and the parameter count extrapolated by
  the quadratic through them (exact for depths, widths and feature counts), so ``layers: 100000``
  is refused in seconds instead of being built layer by layer. Each parameter costs 16 bytes in
  training (weights, gradients, two AdamW moments), 20 with EMA; buffers 4;
* **activations**: one forward pass of the training loss on ``meta`` tensors of the real batch
  shape, counting the bytes of the storages alive at its peak (what backward will need). Models
  whose loss cannot run on ``meta`` (data-dependent shapes, NumPy inside) get no activation
  estimate; the other two still apply.

A config whose estimate exceeds the machine raises ``ResourceError`` (a ``ConfigError``: exit code
2) naming the largest part, the knob to turn and ``train.check_memory=false`` to try anyway.
Estimates are approximate (allocator slack, workspace and fused kernels are not counted); they are
meant to catch sizes that are off by orders of magnitude, not to squeeze the last gigabyte.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from distgen.config import ConfigError
from distgen.errors import format_bytes
from distgen.types import ConditionLabels, DataInfo, SetBatch
from distgen.wording import counted

#: Integer model settings above this are probed by extrapolation before the full meta build.
PROBE_ABOVE = 4096
#: Tensors created with at least this many elements go to the meta device during an estimate;
#: smaller ones (schedules, vocabularies, index tables) stay real, so construction code may inspect them.
LARGE = 1 << 16
#: Seconds the meta build (and the meta forward) may take before the estimate gives up.
TIME_LIMIT_S = 20.0
_PROBES = ((1, 2, 3), (16, 32, 48), (48, 96, 144))
_NOT_SIZES = frozenset({"seed", "steps", "num_steps", "sample_steps"})


class ResourceError(ConfigError):
    """The config needs more memory than this machine has (exit code 2)."""


class _OverBudget(Exception):
    pass


class _TooSlow(Exception):
    pass


@dataclass
class MemoryEstimate:
    """Bytes one training step is expected to need, by part (None: could not be estimated)."""

    available: int
    where: str
    batch: int = 0
    parameters: int | None = None  #: count
    buffers: int | None = None  #: count
    param_bytes: int | None = None  #: parameters x bytes per parameter in training + buffers x 4
    activations: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.batch + (self.param_bytes or 0) + (self.activations or 0)

    def summary(self) -> str:
        parts = [f"input cells {format_bytes(self.batch)}"]
        if self.param_bytes is not None:
            parts.append(f"parameters {format_bytes(self.param_bytes)} ({self.parameters:.3g} weights)")
        if self.activations is not None:
            parts.append(f"activations {format_bytes(self.activations)}")
        return f"about {format_bytes(self.total)} ({', '.join(parts)}) of {format_bytes(self.available)} ({self.where})"


# ---------------------------------------------------------------------------- the machine
def machine_memory(device: torch.device | str = "cpu") -> tuple[int, str]:
    """``(bytes, description)`` of the memory training will use: the GPU's, or the host's RAM (cgroup-capped)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        idx = device.index if device.index is not None else torch.cuda.current_device()
        total = torch.cuda.get_device_properties(idx).total_memory
        return int(total), f"memory of GPU {idx}"
    total = 0
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 0
    limit = _cgroup_limit()
    if limit and (not total or limit < total):
        return limit, "RAM limit of this container"
    return int(total) or 1 << 62, "RAM"


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return None


# ---------------------------------------------------------------------------- parts
def batch_bytes(sets: int, set_size: int, n_genes: int) -> int:
    """Bytes of one micro-batch's target and control cells (float32) and masks."""
    return 2 * sets * set_size * (n_genes * 4 + 1)


def _bytes_per_param(ema: bool) -> int:
    return 20 if ema else 16


def _size_knobs(node: Any, where: str = "model") -> list[tuple[str, int]]:
    """``(dotted key, value)`` of integer settings larger than ``PROBE_ABOVE``."""
    out: list[tuple[str, int]] = []
    if isinstance(node, Mapping):
        for k, v in node.items():
            out += _size_knobs(v, f"{where}.{k}") if str(k) not in _NOT_SIZES else []
    elif isinstance(node, int) and not isinstance(node, bool) and node > PROBE_ABOVE:
        out.append((where, node))
    return out


def _set(node: dict[str, Any], dotted: str, value: int) -> None:
    keys = dotted.split(".")[1:]
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value


def _numel(shape: Any) -> int | None:
    if isinstance(shape, int):
        return shape
    if isinstance(shape, list | tuple | torch.Size) and all(isinstance(d, int) for d in shape):
        return math.prod(shape)
    return None


class LargeOnMeta(TorchFunctionMode):
    """Tensor factories asked for ``LARGE`` or more elements (without a device) allocate on ``meta``.

    Weights and big tables cost nothing; small tensors that construction code inspects (``.item()``,
    ``bool(...)``) stay real on the CPU. Random values of meta tensors are never drawn (no generator).
    """

    _SIZED = frozenset({torch.empty, torch.zeros, torch.ones, torch.rand, torch.randn})

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        if kwargs.get("device") is None:
            n = None
            if func in self._SIZED:
                n = _numel(kwargs["size"]) if "size" in kwargs else _numel(args[0] if len(args) == 1 else tuple(args))
            elif func is torch.full and args:
                n = _numel(args[0])
            elif func is torch.randint:
                n = _numel(kwargs.get("size", args[-1] if args else None))
            if n is not None and n >= LARGE:
                kwargs["device"] = "meta"
                kwargs.pop("generator", None)
        return func(*args, **kwargs)


def meta_build(build: Any, budget: int | None = None, bytes_per_param: int = 16, time_limit: float = TIME_LIMIT_S) -> tuple[Any, int, int]:
    """``(model on meta, parameters, buffers)`` of ``build()``, stopping early past ``budget`` bytes or ``time_limit`` s."""
    from torch.nn.modules.module import register_module_buffer_registration_hook, register_module_parameter_registration_hook

    counts = [0, 0]
    t0 = time.perf_counter()

    def check() -> None:
        if budget is not None and counts[0] * bytes_per_param + counts[1] * 4 > budget:
            raise _OverBudget(tuple(counts))
        if time.perf_counter() - t0 > time_limit:
            raise _TooSlow

    def on_param(module: Any, name: str, param: Any) -> None:
        if param is not None:
            counts[0] += param.numel()
            check()

    def on_buffer(module: Any, name: str, buf: Any) -> None:
        if buf is not None:
            counts[1] += buf.numel()
            check()

    handles = [register_module_parameter_registration_hook(on_param), register_module_buffer_registration_hook(on_buffer)]
    try:
        with LargeOnMeta():
            model = build()
    finally:
        for h in handles:
            h.remove()
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    return model, params, buffers


def _extrapolate(build_at: Any, value: int) -> tuple[float, float] | None:
    """Parameter and buffer counts at ``value`` of one knob, from the quadratic through three small builds."""
    import numpy as np

    for xs in _PROBES:
        if xs[-1] >= value:
            continue
        try:
            counts = [meta_build(lambda x=x: build_at(x), time_limit=TIME_LIMIT_S / 4)[1:] for x in xs]
        except Exception:
            continue
        est = []
        for i in range(2):
            ys = [float(c[i]) for c in counts]
            coef = np.polyfit(xs, ys, 2)
            est.append(max(float(np.polyval(coef, value)), ys[-1], 0.0))
        return est[0], est[1]
    return None


class _PeakStorage(TorchDispatchMode):
    """Peak bytes of tensor storages created inside the mode and still alive (meta tensors work)."""

    def __init__(self, deadline: float) -> None:
        super().__init__()
        from torch.multiprocessing.reductions import StorageWeakRef

        self._ref = StorageWeakRef
        self.live: dict[int, tuple[Any, int]] = {}
        self.peak = 0
        self.deadline = deadline

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.ops.aten._local_scalar_dense.default and args[0].device.type == "meta":
            # a data-dependent value (.item(), bool(...)) of a shape-only tensor: checks read "fine" (False), counts 1
            return False if args[0].dtype == torch.bool else 1
        flat = torch.utils._pytree.tree_leaves((args, kwargs))
        if any(isinstance(t, torch.Tensor) and t.device.type == "meta" for t in flat):  # small real + meta: all meta
            args, kwargs = torch.utils._pytree.tree_map(_to_meta, (args, kwargs or {}))
        try:
            out = func(*args, **(kwargs or {}))
        except NotImplementedError:  # no meta kernel (e.g. unique): run it on small stand-ins with distinct values
            if sum(t.numel() for t in flat if isinstance(t, torch.Tensor)) > LARGE:
                raise
            stand_in = torch.utils._pytree.tree_map(_distinct_cpu, (args, kwargs or {}))
            out = torch.utils._pytree.tree_map(_to_meta, func(*stand_in[0], **stand_in[1]))
        if time.perf_counter() > self.deadline:
            raise _TooSlow
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                key = st._cdata
                if key not in self.live:
                    self.live[key] = (self._ref(st), st.nbytes())
        for key in [k for k, (ref, _) in self.live.items() if ref.expired()]:
            del self.live[key]
        self.peak = max(self.peak, sum(n for _, n in self.live.values()))
        return out


def _distinct_cpu(t: Any) -> Any:
    """A CPU tensor shaped like meta ``t`` whose values are all distinct (bool: all False)."""
    if not isinstance(t, torch.Tensor) or t.device.type != "meta":
        return t
    if t.dtype == torch.bool:
        return torch.zeros(t.shape, dtype=torch.bool)
    return torch.arange(t.numel()).reshape(t.shape).to(t.dtype)


def _to_meta(t: Any) -> Any:
    return t.to("meta") if isinstance(t, torch.Tensor) and t.device.type != "meta" and t.dim() > 0 else t


def meta_batch(info: DataInfo, sets: int, set_size: int) -> SetBatch:
    """A ``SetBatch`` of meta tensors with the shape of one training micro-batch."""
    g, meta = info.n_genes, torch.device("meta")
    labels = ConditionLabels(
        torch.zeros(sets, 1, dtype=torch.long, device=meta), torch.ones(sets, 1, device=meta),
        torch.zeros(sets, dtype=torch.long, device=meta), torch.zeros(sets, dtype=torch.long, device=meta),
    )
    return SetBatch(torch.empty(sets, set_size, g, device=meta), torch.ones(sets, set_size, dtype=torch.bool, device=meta),
                    torch.empty(sets, set_size, g, device=meta), torch.ones(sets, set_size, dtype=torch.bool, device=meta),
                    labels, torch.arange(g, device=meta))


def activation_bytes(model: Any, batch: SetBatch, time_limit: float = TIME_LIMIT_S) -> int | None:
    """Peak bytes alive during one training-loss forward pass on meta tensors (None when it cannot run on meta)."""
    mode = _PeakStorage(time.perf_counter() + time_limit)
    try:
        model.train()
        with mode:
            out = model.loss(batch)
            del out
    except Exception:  # an op without a meta kernel, a data-dependent shape, or too slow: no estimate
        return None
    return mode.peak


# ---------------------------------------------------------------------------- the check
def estimate_memory(
    model_node: Mapping[str, Any],
    info: DataInfo,
    seen_perturbations: Sequence[str] | None,
    *,
    sets_per_batch: int,
    set_size: int,
    grad_accum: int = 1,
    world_size: int = 1,
    ema: bool = False,
    device: torch.device | str = "cpu",
    half_precision: bool = False,
    prepare: Any = None,
) -> tuple[MemoryEstimate, str | None]:
    """The estimate and, when it does not fit, the message naming what to turn down (else None)."""
    from distgen.models.generator import build_model

    available, where = machine_memory(device)
    est = MemoryEstimate(available, where)
    sets = max(1, math.ceil(sets_per_batch / max(1, grad_accum * world_size)))
    est.batch = batch_bytes(sets, set_size, info.n_genes)
    machine = f"this machine's {format_bytes(available)} ({where})"
    if est.batch > available:
        return est, (
            f"one training step holds at least {format_bytes(est.batch)} of input cells ({counted(sets, 'set')} x {counted(set_size, 'cell', spec=',')} x "
            f"{counted(info.n_genes, 'gene', spec=',')} x 4 bytes, target and control), more than {machine}. Lower data.set_size or "
            "train.sets_per_batch (or raise train.grad_accum), or keep fewer genes (data.hvg)"
        )
    bpp = _bytes_per_param(ema)
    budget = available - est.batch
    node = copy.deepcopy(dict(model_node))
    knobs = _size_knobs(node)
    for key, value in knobs:
        def build_at(x: int, key: str = key) -> Any:
            probe = copy.deepcopy(node)
            for other, _ in knobs:
                _set(probe, other, 48)
            _set(probe, key, x)
            return build_model(probe, info, seen_perturbations)

        counts = _extrapolate(build_at, value)
        if counts is not None and counts[0] * bpp + counts[1] * 4 > budget:
            need = counts[0] * bpp + counts[1] * 4
            return est, (
                f"{key}={value:,} makes the model need at least {format_bytes(need)} ({counts[0]:.3g} parameters x {bpp} bytes "
                f"for weights, gradients and optimizer state, {counts[1]:.3g} buffer values x 4), more than {machine}. "
                f"Lower {key}"
            )
    try:
        model, est.parameters, est.buffers = meta_build(lambda: build_model(node, info, seen_perturbations), budget, bpp)
    except _OverBudget as exc:
        params, buffers = exc.args[0]
        est.parameters, est.buffers, est.param_bytes = params, buffers, params * bpp + buffers * 4  # lower bounds
        big = ", ".join(f"{k}={v}" for k, v in _largest_settings(node)) or "the model's sizes"
        return est, (
            f"the model needs more than {format_bytes(budget)} for its parameters (over {params:.3g} weights x {bpp} bytes "
            f"for weights, gradients and optimizer state, counted before its construction finished), more than {machine}. "
            f"Lower its largest sizes ({big})"
        )
    except Exception as exc:  # the model cannot be built on meta (or too slowly): no parameter estimate
        est.notes.append(f"parameters not estimated ({type(exc).__name__})")
        return est, None
    est.param_bytes = est.parameters * bpp + est.buffers * 4
    try:
        if prepare is not None:
            prepare(model)  # data-fitted structure (a gene graph) the forward pass needs
        act = activation_bytes(model, meta_batch(info, sets, set_size))
    except Exception as exc:
        est.notes.append(f"activations not estimated ({type(exc).__name__})")
        act = None
    if act is None and not est.notes:
        est.notes.append("activations not estimated (the loss does not run on meta tensors)")
    if act is not None:
        est.activations = act // 2 if half_precision else act
    if est.total > available:
        if (est.activations or 0) >= max(est.param_bytes, est.batch):
            knob = "data.set_size or train.sets_per_batch (or raise train.grad_accum), or the model's widths"
        else:
            knob = ", ".join(f"{k}={v}" for k, v in _largest_settings(node)) or "the model's sizes"
        return est, f"a training step needs {est.summary()}, more than fits. Lower {knob}"
    return est, None


def _largest_settings(node: Mapping[str, Any], n: int = 3) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []

    def walk(v: Any, where: str) -> None:
        if isinstance(v, Mapping):
            for k, x in v.items():
                if str(k) not in _NOT_SIZES:
                    walk(x, f"{where}.{k}")
        elif isinstance(v, int) and not isinstance(v, bool) and v > 1:
            found.append((where, v))

    walk(node, "model")
    return sorted(found, key=lambda kv: -kv[1])[:n]


def check_memory(
    model_node: Mapping[str, Any],
    info: DataInfo,
    seen_perturbations: Sequence[str] | None,
    opts: Any,
    set_size: int,
    device: torch.device | str = "cpu",
    world_size: int = 1,
    prepare: Any = None,
) -> MemoryEstimate:
    """Refuse (``ResourceError``) a training config that cannot fit, unless ``opts.check_memory`` is False.

    ``opts`` is the ``TrainOptions`` of the run (``sets_per_batch``, ``grad_accum``, ``ema_decay``,
    ``precision``, ``check_memory``).
    """
    device = torch.device(device)
    half = opts.precision == "bf16" or (opts.precision == "auto" and device.type == "cuda")
    est, problem = estimate_memory(
        model_node, info, seen_perturbations, sets_per_batch=opts.sets_per_batch, set_size=set_size,
        grad_accum=opts.grad_accum, world_size=world_size, ema=opts.ema_decay is not None, device=device, half_precision=half,
        prepare=prepare,
    )
    if problem is not None and getattr(opts, "check_memory", True):
        raise ResourceError(f"{problem}; or set train.check_memory=false to try anyway")
    return est
