"""Training-time samplers: where on ``[0, 1]`` the flow-matching loss is evaluated.

A registered kind (``time_samplers``): a plugin adds one by subclassing ``TimeSampler`` and
declaring an entry point in ``distgen.time_samplers``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from distgen.capabilities import Capabilities
from distgen.registry import Registry


class TimeSampler(ABC):
    """``sample(shape, device, dtype) -> t`` with values in ``[0, 1]``, drawn from torch's global generator."""

    capabilities: Capabilities = Capabilities()

    @abstractmethod
    def sample(self, shape: tuple[int, ...], device: torch.device | str, dtype: torch.dtype) -> Tensor:
        """Times of the given shape."""


class UniformTime(TimeSampler):
    """``t ~ U(0, 1)`` (scDFM, one value per cell)."""

    def sample(self, shape: tuple[int, ...], device: torch.device | str, dtype: torch.dtype) -> Tensor:
        return torch.rand(shape, device=device, dtype=dtype)


class LogitNormalTime(TimeSampler):
    """``t = sigmoid(z)``, ``z ~ N(loc, scale^2)`` (Esser et al. 2024): more weight on middle times.

    Parameters
    ----------
    loc, scale
        Mean and standard deviation of the logit; ``loc > 0`` shifts mass towards the data end.
    """

    def __init__(self, loc: float = 0.0, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError(f"logit_normal time sampler: scale must be > 0, got {scale}")
        self.loc = float(loc)
        self.scale = float(scale)

    def sample(self, shape: tuple[int, ...], device: torch.device | str, dtype: torch.dtype) -> Tensor:
        return torch.sigmoid(self.loc + self.scale * torch.randn(shape, device=device, dtype=dtype))


#: The time-sampler registry (entry points ``distgen.time_samplers``).
time_samplers: Registry[TimeSampler] = Registry(
    "time_samplers",
    TimeSampler,
    {"logit_normal": "distgen.dynamics.time_samplers:LogitNormalTime", "uniform": "distgen.dynamics.time_samplers:UniformTime"},
)

__all__ = ["LogitNormalTime", "TimeSampler", "UniformTime", "time_samplers"]
