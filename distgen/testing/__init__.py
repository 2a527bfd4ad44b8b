"""Contract suites and tiny fixtures for testing components, built-in and plugin."""

from distgen.testing.contracts import (
    ALL_CONTRACTS,
    BackboneContract,
    ConditionerContract,
    CouplingContract,
    DynamicsContract,
    EncoderContract,
    KernelContract,
    MatcherContract,
    MetricContract,
    ModelContract,
    example_node,
    make,
)
from distgen.testing.fixtures import tiny_batch, tiny_info, tiny_labels, tiny_table

__all__ = [
    "ALL_CONTRACTS",
    "BackboneContract",
    "ConditionerContract",
    "CouplingContract",
    "DynamicsContract",
    "EncoderContract",
    "KernelContract",
    "MatcherContract",
    "MetricContract",
    "ModelContract",
    "example_node",
    "make",
    "tiny_batch",
    "tiny_info",
    "tiny_labels",
    "tiny_table",
]
