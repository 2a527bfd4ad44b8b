"""Every registered component (built-ins and installed plugins) against its kind's contract."""

from distgen.testing import (
    BackboneContract,
    ConditionerContract,
    CouplingContract,
    DynamicsContract,
    EncoderContract,
    KernelContract,
    MatcherContract,
    MetricContract,
    ModelContract,
)


class TestKernels(KernelContract):
    pass


class TestEncoders(EncoderContract):
    pass


class TestConditioners(ConditionerContract):
    pass


class TestBackbones(BackboneContract):
    pass


class TestDynamics(DynamicsContract):
    pass


class TestCouplings(CouplingContract):
    pass


class TestMetrics(MetricContract):
    pass


class TestModels(ModelContract):
    pass


class TestMatchers(MatcherContract):
    pass
