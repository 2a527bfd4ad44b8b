"""torch.distributed plumbing: process group from torchrun's environment, DDP/FSDP wrapping.

``torchrun --nproc-per-node N -m distgen train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; ``init_from_env`` joins the group (NCCL for CUDA tensors, gloo for CPU ones). Multi-node runs use
torchrun's own rendezvous flags (``--nnodes``, ``--rdzv-endpoint``); nothing here is home-made.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from distgen.types import LossOutput, SetBatch


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_from_torchrun() -> DistEnv:
    """Rank and world size from torchrun's environment variables (1 process when absent)."""
    return DistEnv(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))


#: The process group's backends on CUDA: each device type its own.
BACKEND_CUDA = "cpu:gloo,cuda:nccl"


@contextlib.contextmanager
def said_by_main(env: DistEnv) -> Iterator[None]:
    """Within the block, a rank other than 0 shows no warning and prints nothing on stderr: checks every rank makes alike
    (a resume's choice of checkpoint, the pre-flight), whose notes rank 0 says once, not once per rank. Errors are raised
    as ever.

    The warning filters hold on every rank: a warning made an error (``python -W error``) raises on each alike (were the
    other ranks to ignore it, it would stop rank 0 alone and the others would wait for it in the training forever). A rank
    other than 0 records its warnings (shown nowhere) instead of showing them."""
    if env.is_main:
        yield
        return
    with warnings.catch_warnings(record=True), contextlib.redirect_stderr(io.StringIO()):
        yield


def init_from_env(device: torch.device) -> DistEnv:
    """Join the process group torchrun describes (no-op in a single process)."""
    env = env_from_torchrun()
    if env.distributed and not dist.is_initialized():
        # on CUDA, NCCL for the model's tensors and gloo for the trainer's small CPU tensors (the step's loss/stop
        # all-reduce, the checkpoint checksums, the validation numbers): "nccl" alone has no backend for CPU tensors
        backend = BACKEND_CUDA if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return env


def shutdown(wait: bool = True) -> None:
    """Leave the process group (after a barrier unless ``wait`` is False, e.g. on an error)."""
    if dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum ``t`` over ranks in place (identity in a single process)."""
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_values(values: dict[str, float], src: int = 0) -> dict[str, float]:
    """Every rank gets rank ``src``'s numbers under the same keys (all ranks must call with the same keys; identity in a
    single process). Decisions made from them (early stopping, the best step) are then the same on every rank."""
    if not dist.is_initialized() or not values:
        return values
    names = sorted(values)
    t = torch.tensor([float(values[k]) for k in names], dtype=torch.float64)
    dist.broadcast(t, src=src)
    return dict(zip(names, t.tolist()))


class LossModule(nn.Module):
    """``forward(batch) -> loss``: routes ``model.loss`` through ``forward`` so DDP/FSDP hooks fire.

    The full ``LossOutput`` of the last call is kept in ``last``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.last: LossOutput | None = None

    def forward(self, batch: SetBatch) -> Tensor:
        out = self.model.loss(batch)  # type: ignore[operator]
        self.last = out
        return out.loss


def wrap(module: LossModule, env: DistEnv, strategy: str, device: torch.device, find_unused: bool = True) -> nn.Module:
    """DDP- or FSDP-wrap ``module`` for a multi-process job; unchanged in a single process."""
    if not env.distributed:
        return module
    if strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(device.type, (env.world_size,))
        # FSDP gathers a unit's parameters only around that unit's forward(). A module whose code reads its blocks'
        # weights outside their forward (the PAD-Transformer computes every layer's per-gene terms up front) sets
        # ``fsdp_shard_blocks = False``: its blocks stay in the enclosing unit, else they would meet sharded
        # DTensor parameters ("got mixed torch.Tensor and DTensor").
        whole = {id(m) for owner in module.modules() if getattr(owner, "fsdp_shard_blocks", True) is False
                 for m in owner.modules()}
        for sub in module.modules():
            if isinstance(sub, nn.ModuleList) and id(sub) not in whole:
                for block in sub:
                    if any(True for _ in block.parameters()):
                        fully_shard(block, mesh=mesh)
        fully_shard(module, mesh=mesh)
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(module, device_ids=ids, find_unused_parameters=find_unused)


def gathered(wrapped: nn.Module, sharded: bool) -> Any:
    """Context in which the parameters of an FSDP root unit are whole (all-gathered), for code that calls the model
    outside the wrapped ``forward`` (validation: ``model.loss`` and ``model.predict``). Every rank must enter it.

    FSDP2 all-gathers a unit's parameters only around that unit's ``forward``; called directly, the root's own
    parameters stayed sharded ``DTensor``s and the model failed with "got mixed torch.Tensor and DTensor". Blocks
    sharded as units of their own gather themselves around their ``forward`` as in training. Outside FSDP: nothing.
    """
    import contextlib

    if not sharded or not hasattr(wrapped, "unshard"):
        return contextlib.nullcontext()
    module: Any = wrapped

    @contextlib.contextmanager
    def _whole() -> Any:
        module.unshard()
        try:
            yield
        finally:
            module.reshard()

    return _whole()


def no_sync(wrapped: nn.Module, sync: bool) -> Any:
    """Context that skips the gradient all-reduce of DDP/FSDP on non-final micro-batches."""
    import contextlib

    if sync:
        return contextlib.nullcontext()
    module: Any = wrapped
    if hasattr(module, "no_sync"):
        return module.no_sync()
    if hasattr(module, "set_requires_gradient_sync"):
        module.set_requires_gradient_sync(False)

        @contextlib.contextmanager
        def _restore() -> Any:
            try:
                yield
            finally:
                module.set_requires_gradient_sync(True)

        return _restore()
    return contextlib.nullcontext()


def param_checksums(module: nn.Module) -> list[float]:
    """One float64 checksum of this rank's parameters per rank (all ranks must call; identical under DDP).

    Raises ``RuntimeError`` when ranks disagree: their replicas diverged (a bug or a non-deterministic
    op outside the synchronised gradient path).
    """
    local = torch.zeros(1, dtype=torch.float64)
    for i, p in enumerate(module.parameters()):
        local += (p.detach().double().cpu().flatten() * (1.0 + 1e-3 * i)).sum()
    if not dist.is_initialized():
        return [float(local)]
    out = [torch.zeros(1, dtype=torch.float64) for _ in range(dist.get_world_size())]
    dist.all_gather(out, local)
    values = [float(t) for t in out]
    if any(v != values[0] for v in values):
        raise RuntimeError(f"ranks out of sync: parameter checksums differ across ranks {values}")
    return values
