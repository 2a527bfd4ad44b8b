"""Distributional metrics per perturbation: compare the predicted and real CELL populations.

``mmd`` (multi-scale RBF, bandwidths from the real cells, unbiased), ``edistance`` (cell-eval's and
pertpy 1.4's default: Euclidean, diagonal included), ``edistance_sq`` (CellFlow's squared-Euclidean
V-statistic), ``edistance_scperturb`` (scPerturb's: squared Euclidean, ``N^2 - N`` pairs),
``w2`` (exact 2-Wasserstein) and ``sinkhorn`` (debiased Sinkhorn divergence); and
``pearson_edistance``, cell-eval's global correlation of E-distances from control.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

from distgen.capabilities import CORRELATION, NONNEGATIVE, MetricCapabilities
from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.metrics.base import Metric, MetricResult
from distgen.evaluation.metrics.stats import pearson_rows
from distgen.kernels.distances import euclidean_edistance, mmd2, sq_energy_distance
from distgen.kernels.pairwise import euclidean_sum, median_sq_dist, sq_norms
from distgen.kernels.rbf import RBFKernel
from distgen.kernels.transport import sinkhorn_divergence, wasserstein2
from distgen.seeds import content_order


def subsample(x: Tensor, max_cells: int | None, genes: Sequence[str] | None = None) -> Tensor:
    """At most ``max_cells`` rows of ``x [n, G]``, the same whatever the order of its rows and columns (deterministic).

    The rows are put in an order of their values (``distgen.seeds.content_order``, a hash that reads ``genes``, the names of
    the columns: ``g0, g1, ...`` when not given) and taken evenly strided from it: a sample that does not depend on
    where each cell sits in the file. (Strided over the file's order, until 2026-12-05, ``w2`` and ``sinkhorn`` of a
    group with over 1,000 cells moved by ~1% when the rows were shuffled.)
    """
    if max_cells is None or x.shape[0] <= max_cells:
        return x
    ranks = content_order(x, genes if genes is not None else [f"g{j}" for j in range(x.shape[1])])
    by_content = torch.argsort(ranks.to(x.device))
    idx = torch.linspace(0, x.shape[0] - 1, max_cells).round().long().to(x.device)
    return x[by_content[idx]]


class _PerPerturbation(Metric):
    """Applies ``distance(pred [n, G], real [m, G])`` to each perturbation (float64)."""

    max_cells: int | None = None

    @abstractmethod
    def distance(self, pred: Tensor, real: Tensor) -> Tensor:
        """Scalar distance between ``pred [n, G]`` and ``real [m, G]`` cells."""

    def undefined(self, pred: Tensor, real: Tensor) -> str | None:
        """Why the distance is undefined for these cells (the perturbation's NaN reason), or None."""
        return None

    def compute(self, data: EvalData) -> MetricResult:
        out = torch.full((data.n_perts,), float("nan"), dtype=torch.float64)
        reasons: dict[int, str] = {}
        for p in range(data.n_perts):
            x, y = data.pred.cells(p), data.real.cells(p)
            if p in data.invalid:
                continue
            if x.shape[0] < 2 or y.shape[0] < 2:
                reasons[p] = "fewer than 2 cells on one side"
                continue
            x, y = (subsample(c, self.max_cells, data.genes).to(torch.float64) for c in (x, y))
            why = self.undefined(x, y)
            if why is not None:
                reasons[p] = why
                continue
            out[p] = float(self.distance(x, y))
        return MetricResult(out, reasons)


#: ``median_sq_dist`` clamps a zero median (identical cells) to this value.
MIN_MEDIAN = 1e-12


class MMD(_PerPerturbation):
    """Unbiased MMD^2 between predicted and real cells: RBF at scales x median sq. distance of the real cells."""

    capabilities = MetricCapabilities()

    def __init__(self, scales: Sequence[float] = (0.5, 1.0, 2.0, 4.0), max_cells: int | None = None) -> None:
        self.kernel = RBFKernel(scales=scales)
        self.max_cells = max_cells

    def distance(self, pred: Tensor, real: Tensor) -> Tensor:
        return mmd2(pred[None], real[None], self.kernel, unbiased=True)[0]

    def undefined(self, pred: Tensor, real: Tensor) -> str | None:
        """NaN where the real cells give no bandwidth: with at least half of their pairs identical (a constant population)
        the median squared distance is 0, and every prediction but an exact copy scored the kernel's maximum, 2."""
        if float(median_sq_dist(real)) <= MIN_MEDIAN:
            return ("the real cells are (mostly) identical: the median-heuristic bandwidth of the RBF kernel is 0, so the MMD "
                    "cannot tell predictions apart")
        return None


class EDistance(_PerPerturbation):
    """Energy distance ``2E|x-y| - E|x-x'| - E|y-y'|`` (Euclidean, V-statistic: cell-eval's edistance)."""

    # a V-statistic (diagonal included) is the squared distance of the two empirical measures' embeddings under the
    # distance-induced kernel (Szekely and Rizzo): never negative. The scPerturb (``N^2 - N``) and the unbiased MMD can be,
    # and the debiased Sinkhorn divergence is >= 0 only at convergence (-2e-14 for a permuted copy): those declare no bound.
    capabilities = MetricCapabilities(bounds=NONNEGATIVE)

    def __init__(self, max_cells: int | None = None) -> None:
        self.max_cells = max_cells

    def distance(self, pred: Tensor, real: Tensor) -> Tensor:
        return euclidean_edistance(pred, real)


class EDistanceSquared(_PerPerturbation):
    """E-distance on squared Euclidean distances with the diagonal (CellFlow's ``e_distance``); equals ``2 |mean diff|^2``."""

    capabilities = MetricCapabilities(bounds=NONNEGATIVE)  # 2 |mean diff|^2, in closed form

    def __init__(self, max_cells: int | None = None) -> None:
        self.max_cells = max_cells

    def distance(self, pred: Tensor, real: Tensor) -> Tensor:
        return sq_energy_distance(pred, real)


class EDistanceScPerturb(_PerPerturbation):
    """scPerturb's E-statistic: squared Euclidean distances, within-set means over the ``N^2 - N`` off-diagonal pairs."""

    capabilities = MetricCapabilities()

    def __init__(self, max_cells: int | None = None) -> None:
        self.max_cells = max_cells

    def distance(self, pred: Tensor, real: Tensor) -> Tensor:
        return sq_energy_distance(pred, real, unbiased=True)


class Wasserstein2(_PerPerturbation):
    """Exact 2-Wasserstein distance between predicted and real cells (POT; ``max_cells`` per side)."""

    capabilities = MetricCapabilities(bounds=NONNEGATIVE)  # sqrt of the clamped optimal cost

    def __init__(self, max_cells: int | None = 1000) -> None:
        self.max_cells = max_cells

    def distance(self, pred: Tensor, real: Tensor) -> Tensor:
        return wasserstein2(pred, real)


class Sinkhorn(_PerPerturbation):
    """Debiased Sinkhorn divergence (Feydy et al. 2019; squared Euclidean cost, reg = ``epsilon`` x mean cost)."""

    capabilities = MetricCapabilities()

    def __init__(self, epsilon: float = 0.05, max_cells: int | None = 1000) -> None:
        self.epsilon = epsilon
        self.max_cells = max_cells

    def distance(self, pred: Tensor, real: Tensor) -> Tensor:
        return sinkhorn_divergence(pred, real, epsilon=self.epsilon)


class PearsonEDistance(Metric):
    """Pearson correlation, across perturbations, of real and predicted E-distances from control (global)."""

    capabilities = MetricCapabilities(higher_is_better=True, celleval="pearson_edistance", min_perturbations=2, per_perturbation=False,
                                      bounds=CORRELATION)

    def __init__(self, max_cells: int | None = None) -> None:
        self.max_cells = max_cells

    def from_control(self, pop: Population, genes: Sequence[str] | None = None) -> Tensor:
        """``[P]`` float64 E-distance of each perturbation's cells from ``pop``'s controls (NaN without cells)."""
        e = torch.full((pop.n_perts,), float("nan"), dtype=torch.float64)
        ctrl = subsample(pop.control, self.max_cells, genes).to(torch.float64)
        # sums of distances by blocks through one buffer, within-set terms from half the products (euclidean_sum)
        c_sq = sq_norms(ctrl)  # each set's squared norms once (each sum computed them again: 2-10% of it on Kang)
        sigma_c = euclidean_sum(ctrl, x_sq=c_sq) / ctrl.shape[0] ** 2  # the control's within-set term, once (as cell-eval)
        for p in range(pop.n_perts):
            x = pop.cells(p)
            if x.shape[0] > 0:
                x = subsample(x, self.max_cells, genes).to(torch.float64)
                n, m, x_sq = x.shape[0], ctrl.shape[0], sq_norms(x)
                e[p] = (2 * euclidean_sum(x, ctrl, x_sq=x_sq, y_sq=c_sq) / (n * m) - euclidean_sum(x, x_sq=x_sq) / n**2
                        - sigma_c)  # the control's term once
        return e

    def compute(self, data: EvalData) -> MetricResult:
        # the real side is the same for every prediction scored against this truth: computed once, shared through
        # the cache with the baselines' and references' EvalData (keys ending in "/real", calibration.reference_data)
        real = data.cached(f"edistance_from_control/{self.max_cells}/real", lambda: self.from_control(data.real, data.genes))
        e = torch.stack([real, self.from_control(data.pred, data.genes)])
        if data.invalid:
            e[:, sorted(data.invalid)] = float("nan")
        keep = torch.isfinite(e).all(0)
        r = float(pearson_rows(e[0, keep][None], e[1, keep][None])[0]) if int(keep.sum()) >= 2 else float("nan")
        scale = torch.stack([data.cached("control_distance_scale/real", lambda: _distance_scale(data.real.control)),
                             _distance_scale(data.pred.control)])
        if int(keep.sum()) >= 2 and bool((_spread(e[:, keep], scale) <= CONSTANT_TOLERANCE).any()):
            r = float("nan")  # a side's E-distances equal up to rounding: their correlation would be that of the rounding
        return MetricResult.from_values(torch.full((data.n_perts,), r, dtype=torch.float64),
                                        "fewer than 2 valid perturbations or constant E-distances")


#: E-distances whose spread is at most this fraction of the distances they are made of are constant: the same groups
#: summed in another order (a file's rows shuffled) differ in the last bits, and the Pearson of those bits is a number
#: of any sign (E-distances near 0, a prediction of the control cells, are all rounding).
CONSTANT_TOLERANCE = 1e-9


def _distance_scale(control: Tensor) -> Tensor:
    """The size of the Euclidean distances among ``control [m, G]`` cells: ``sqrt(2 mean |c - mean(c)|^2)`` (float64)."""
    c = control.to(torch.float64)
    return (2.0 * (c - c.mean(0)).pow(2).sum(-1).mean()).sqrt()


def _spread(e: Tensor, scale: Tensor) -> Tensor:
    """``[S]`` ``(max - min) / max(max |e|, scale)`` of each row of ``e [S, P]``, ``scale [S]`` its distances' size (0 where both are 0)."""
    top = torch.maximum(e.abs().amax(-1), scale)
    return torch.where(top > 0, (e.amax(-1) - e.amin(-1)) / torch.where(top > 0, top, torch.ones_like(top)), torch.zeros_like(top))
