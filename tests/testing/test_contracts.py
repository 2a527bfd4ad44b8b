"""Every registered component (built-ins and installed plugins) against its kind's contract."""

from distgen.testing import (
    BackboneContract,
    ConditionerContract,
    CouplingContract,
    DiffusionSamplerContract,
    DynamicsContract,
    EncoderContract,
    KernelContract,
    MatcherContract,
    MetricContract,
    ModelContract,
    NoiseScheduleContract,
    ODESolverContract,
    PathContract,
    SDESolverContract,
    TimeSamplerContract,
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


class TestPaths(PathContract):
    pass


class TestTimeSamplers(TimeSamplerContract):
    pass


class TestODESolvers(ODESolverContract):
    pass


class TestSDESolvers(SDESolverContract):
    pass


class TestNoiseSchedules(NoiseScheduleContract):
    pass


class TestDiffusionSamplers(DiffusionSamplerContract):
    pass


class TestCouplings(CouplingContract):
    pass


class TestMetrics(MetricContract):
    pass


class TestModels(ModelContract):
    pass


class TestMatchers(MatcherContract):
    pass


def test_every_kind_has_a_contract_suite_with_components():
    from distgen.registry import KINDS, registry
    from distgen.testing import ALL_CONTRACTS

    covered = {suite.kind for suite in ALL_CONTRACTS}
    assert covered == set(KINDS), f"kinds without a contract suite: {sorted(set(KINDS) - covered)}"
    for kind in KINDS:
        assert registry(kind).names(), f"no registered {kind}: the {kind} contract would run over nothing"
