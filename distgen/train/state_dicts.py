"""Full (unsharded) model and optimizer state, keyed by parameter name, for any wrapping.

Optimizer state is keyed by parameter name (not position) so a checkpoint moves between a single
process, DDP and FSDP. Under FSDP the gathering is done by ``torch.distributed.checkpoint``'s
``get_state_dict`` (imported only then: it is slow to import); otherwise by renaming in place.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from distgen.wording import counted, first_of


def _names(module: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    by_id = {id(p): n for n, p in module.named_parameters()}
    return [by_id[id(p)] for g in optimizer.param_groups for p in g["params"]]


def get_full_state(module: nn.Module, optimizer: torch.optim.Optimizer, sharded: bool) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(model_state, optimizer_state)`` of the unwrapped ``module`` (every rank must call it under FSDP)."""
    if sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        full = get_state_dict(module, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return full[0], dict(full[1])  # type: ignore[return-value]
    names = _names(module, optimizer)
    osd: dict[str, Any] = dict(optimizer.state_dict())  # type: ignore[arg-type]
    state = {names[i]: s for i, s in osd["state"].items()}
    groups = [{**g, "params": [names[i] for i in g["params"]]} for g in osd["param_groups"]]
    return module.state_dict(), {"state": state, "param_groups": groups}


def set_full_state(module: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict[str, Tensor], optim_state: dict[str, Any], sharded: bool) -> None:
    """Inverse of ``get_full_state``."""
    if sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        opts = StateDictOptions(full_state_dict=True)
        set_state_dict(module, optimizer, model_state_dict=dict(model_state), optim_state_dict=optim_state, options=opts)  # type: ignore[arg-type]
        return
    module.load_state_dict(model_state)
    index = {n: i for i, n in enumerate(_names(module, optimizer))}
    unknown = [n for n in optim_state["state"] if n not in index]
    if unknown:
        raise KeyError(f"optimizer state names {counted(len(unknown), 'parameter')} this model lacks: {first_of(unknown, 5, render=repr)}")
    optimizer.load_state_dict({
        "state": {index[n]: s for n, s in optim_state["state"].items()},
        "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in optim_state["param_groups"]],
    })
