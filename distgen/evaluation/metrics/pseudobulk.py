"""Pseudobulk metrics: compare mean expression profiles (or deltas from control) of predicted and real cells.

Definitions follow cell-eval (``mse``, ``mae`` on the perturbation means; ``*_delta`` and
``pearson_delta`` on deltas, each file against its OWN controls). ``*_realctrl`` variants take both
deltas against the REAL controls (the scGen/CPA convention). ``r2`` is CellFlow's
``r2_score(mean(real), mean(pred))`` over genes.
"""

from __future__ import annotations

from typing import Any

from distgen.capabilities import AT_MOST_ONE, CORRELATION, NONNEGATIVE, MetricCapabilities
from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.metrics.base import Metric, MetricResult
from distgen.evaluation.metrics.stats import pearson_rows, r2_rows

_CONTROLS = ("own", "real")


def _check_control(control: str) -> str:
    if control not in _CONTROLS:
        raise ValueError(f"control must be one of {_CONTROLS} (whose controls the predicted delta is taken against), got {control!r}")
    return control


class MeanSquaredError(Metric):
    """Mean over genes of the squared difference between predicted and real mean profiles."""

    capabilities = MetricCapabilities(celleval="mse", bounds=NONNEGATIVE)

    def compute(self, data: EvalData) -> MetricResult:
        d = data.means("pred") - data.means("real")
        return MetricResult.from_values(d.pow(2).mean(-1), "no cells")


class MeanAbsoluteError(Metric):
    """Mean over genes of the absolute difference between predicted and real mean profiles."""

    capabilities = MetricCapabilities(celleval="mae", bounds=NONNEGATIVE)

    def compute(self, data: EvalData) -> MetricResult:
        d = data.means("pred") - data.means("real")
        return MetricResult.from_values(d.abs().mean(-1), "no cells")


class MeanSquaredErrorDelta(Metric):
    """Mean squared error between predicted and real deltas from control (``control``: whose controls)."""

    capabilities = MetricCapabilities(celleval="mse_delta", bounds=NONNEGATIVE)

    def __init__(self, control: str = "own") -> None:
        self.control = _check_control(control)

    def compute(self, data: EvalData) -> MetricResult:
        d = data.delta("pred", self.control) - data.delta("real")
        return MetricResult.from_values(d.pow(2).mean(-1), "no cells")


class MeanAbsoluteErrorDelta(Metric):
    """Mean absolute error between predicted and real deltas from control (``control``: whose controls)."""

    capabilities = MetricCapabilities(celleval="mae_delta", bounds=NONNEGATIVE)

    def __init__(self, control: str = "own") -> None:
        self.control = _check_control(control)

    def compute(self, data: EvalData) -> MetricResult:
        d = data.delta("pred", self.control) - data.delta("real")
        return MetricResult.from_values(d.abs().mean(-1), "no cells")


class PearsonDelta(Metric):
    """Pearson correlation over genes of predicted and real deltas, each against its own controls."""

    capabilities = MetricCapabilities(higher_is_better=True, celleval="pearson_delta", bounds=CORRELATION)

    def __init__(self, control: str = "own") -> None:
        self.control = _check_control(control)

    def compute(self, data: EvalData) -> MetricResult:
        r = pearson_rows(data.delta("pred", self.control), data.delta("real"))
        return MetricResult.from_values(r, "a delta is constant over genes (or no cells)")


class PearsonDeltaRealControl(PearsonDelta):
    """Pearson correlation of deltas, the predicted one taken against the REAL controls."""

    capabilities = MetricCapabilities(higher_is_better=True, bounds=CORRELATION)

    def __init__(self, control: str = "real") -> None:
        super().__init__(control)


class RSquared(Metric):
    """CellFlow's R^2: ``r2_score(mean(real), mean(pred))`` over genes (on means, not deltas)."""

    capabilities = MetricCapabilities(higher_is_better=True, bounds=AT_MOST_ONE)  # 1 - SS_res / SS_tot

    def compute(self, data: EvalData) -> MetricResult:
        return MetricResult.from_values(r2_rows(data.means("real"), data.means("pred")), "real mean is constant over genes (or no cells)")


class RSquaredDelta(Metric):
    """R^2 of the real delta explained by the predicted delta (``control``: whose controls)."""

    capabilities = MetricCapabilities(higher_is_better=True, bounds=AT_MOST_ONE)  # 1 - SS_res / SS_tot

    def __init__(self, control: str = "own") -> None:
        self.control = _check_control(control)

    def compute(self, data: EvalData) -> MetricResult:
        r = r2_rows(data.delta("real"), data.delta("pred", self.control))
        return MetricResult.from_values(r, "real delta is constant over genes (or no cells)")


def _realctrl(base: type[Metric]) -> type[Metric]:
    """``base`` with the predicted delta taken against the REAL controls."""

    def __init__(self: Any, control: str = "real") -> None:
        base.__init__(self, control)  # type: ignore[misc,call-arg]

    doc = f"{(base.__doc__ or '').splitlines()[0].rstrip('.')}, the predicted delta against the REAL controls."
    caps = MetricCapabilities(higher_is_better=base.capabilities.higher_is_better, bounds=base.capabilities.bounds)
    return type(base.__name__ + "RealControl", (base,), {"__doc__": doc, "capabilities": caps, "__init__": __init__, "__module__": __name__})


MeanSquaredErrorDeltaRealControl = _realctrl(MeanSquaredErrorDelta)
MeanAbsoluteErrorDeltaRealControl = _realctrl(MeanAbsoluteErrorDelta)
RSquaredDeltaRealControl = _realctrl(RSquaredDelta)
