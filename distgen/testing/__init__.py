"""Contract suites and tiny fixtures for testing components, built-in and plugin.

The suites (``*Contract``) need pytest and load on first use, so ``distgen.testing.checks`` (the
cheap checks the registry runs on a plugin's first build) and the fixtures import without it.
"""

from __future__ import annotations

from typing import Any

from distgen.testing.fixtures import tiny_batch, tiny_eval, tiny_info, tiny_labels, tiny_table

_CONTRACTS = (
    "ALL_CONTRACTS",
    "BackboneContract",
    "ConditionerContract",
    "CouplingContract",
    "DiffusionSamplerContract",
    "DynamicsContract",
    "EncoderContract",
    "KernelContract",
    "MatcherContract",
    "MetricContract",
    "ModelContract",
    "NoiseScheduleContract",
    "ODESolverContract",
    "PathContract",
    "SDESolverContract",
    "TimeSamplerContract",
)
_CHECKS = ("example_node", "make")

__all__ = [*_CONTRACTS, *_CHECKS, "tiny_batch", "tiny_eval", "tiny_info", "tiny_labels", "tiny_table"]


def __getattr__(name: str) -> Any:
    if name in _CONTRACTS:
        from distgen.testing import contracts

        return getattr(contracts, name)
    if name in _CHECKS:
        from distgen.testing import checks

        return getattr(checks, name)
    raise AttributeError(f"module 'distgen.testing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
