"""Device selection, mixed precision and TF32: the hardware-facing switches of the trainer."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch

from distgen.config import ConfigError

OOM_HINT = (
    "out of GPU memory. Turn one of these knobs: lower train.sets_per_batch or data.set_size, raise "
    "train.grad_accum (same global batch, less memory per step), use train.precision=bf16, or "
    "train.strategy=fsdp under torchrun to shard a large backbone across GPUs."
)


def select_device(spec: str = "auto", local_rank: int = 0, where: str = "train.device") -> torch.device:
    """``"auto"``: ``cuda:<local_rank>`` when CUDA is present, else CPU; or an explicit device (``where`` names the setting)."""
    given, spec = spec, str(spec).strip().lower()  # "CPU", "Cuda:1" as torch spells them
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise ConfigError(f"{where}: {given!r} is not a device ({exc}); use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):  # mps, xla, meta...: failed later inside torch ("Cannot copy out of meta tensor")
        raise ConfigError(f"{where}={given!r}: distgen trains and predicts on the CPU or CUDA GPUs only; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{where}={spec!r} but CUDA is not available here; use {where}=auto or cpu")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
    return device


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (``torch.bfloat16``) or ``None`` for full fp32."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError("train.precision=bf16 but this GPU does not support bfloat16; use fp32")
        if device.type == "cpu" and not cpu_has_native_bf16():
            warnings.warn("train.precision=bf16 on a CPU without native bfloat16 arithmetic (AVX512_BF16 or AMX): its matrix products "
                          "are emulated and the step is likely slower than with train.precision=fp32", UserWarning, stacklevel=2)
        return torch.bfloat16
    return None


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively: AVX512_BF16 or AMX tiles (torch's CPU feature probe)."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(p()) for p in probes if callable(p))


def setup_backends(device: torch.device, tf32: bool) -> None:
    """TF32 matmuls/convolutions on CUDA; on CPU, flush denormal floats to zero.

    Attention over expression data produces denormals that slow CPU kernels several times over;
    flushing them changes results only below ~1e-38.
    """
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` to ``dtype`` on ``device``; a no-op when ``dtype`` is None."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def hardware() -> dict[str, object]:
    """A description of the machine for the run manifest."""
    import os
    import platform

    out: dict[str, object] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        out["cuda_version"] = torch.version.cuda
        out["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return out


@contextlib.contextmanager
def float32_default() -> Iterator[None]:
    """Build, train and sample a run's model with torch's default dtype float32, restoring the caller's afterwards.

    Data reach models as float32 and checkpoints hold float32 weights. Under a caller's
    ``torch.set_default_dtype(torch.float64)`` (a notebook's habit) a model built then holds float64
    parameters and the first matrix product with the data failed inside torch ("mat1 and mat2 must
    have the same dtype"); ``distgen run``, ``train`` and ``predict`` from Python now run in float32
    whatever the default, and leave the default as they found it.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@contextlib.contextmanager
def caller_random_state() -> Iterator[None]:
    """Run the block on torch's global generators and give the caller's states back afterwards (also on an exception).

    Training seeds each step and prediction each group with ``torch.manual_seed`` (their numbers depend on the seeds
    only), which left a notebook's own random stream at the last step's or group's seed: after ``distgen.predict``
    the caller's ``torch.rand`` gave the same numbers whatever the caller had seeded. The CPU generator and those of the
    CUDA devices already in use are kept (a device first used inside the block had no state of the caller's).
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        yield
