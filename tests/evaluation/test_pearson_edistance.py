"""``pearson_edistance``: cell-eval's formula, invalid perturbations left out, the real side computed once per truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.io import flag_invalid
from distgen.evaluation.metrics.distributional import PearsonEDistance


def population(gen: torch.Generator, sizes: list[int], shifts: list[float], g: int = 12) -> Population:
    cells = [torch.randn(n, g, generator=gen, dtype=torch.float64) + s for n, s in zip(sizes, shifts)]
    offsets = torch.tensor([0, *np.cumsum(sizes).tolist()])
    return Population(X=torch.cat(cells), offsets=offsets, control=torch.randn(40, g, generator=gen, dtype=torch.float64))


def make_data(seed: int = 0) -> EvalData:
    gen = torch.Generator().manual_seed(seed)
    sizes, shifts = [9, 14, 7, 20, 11], [0.1, 0.5, 0.9, 1.4, 2.0]
    real = population(gen, sizes, shifts)
    pred = population(gen, [13, 8, 10, 6, 15], [0.2, 0.3, 1.1, 1.2, 2.2])
    return EvalData(real=real, pred=pred, perts=tuple(f"p{i}" for i in range(5)), targets=((),) * 5,
                    genes=tuple(f"g{i}" for i in range(12)))


def edistances(pop: Population, keep: list[int]) -> np.ndarray:
    """cell-eval's per-perturbation E-distance from control: 2 E|x-c| - E|x-x'| - E|c-c'| (Euclidean, diagonal in)."""
    c = pop.control.numpy()
    return np.array([2 * cdist(x, c).mean() - cdist(x, x).mean() - cdist(c, c).mean()
                     for x in (pop.cells(p).numpy() for p in keep)])


def test_equals_the_formula_with_scipy_distances():
    data = make_data()
    r = PearsonEDistance().compute(data).values
    keep = list(range(5))
    expected = np.corrcoef(edistances(data.real, keep), edistances(data.pred, keep))[0, 1]
    assert torch.allclose(r, torch.full((5,), expected, dtype=r.dtype), rtol=1e-12, atol=0)


def test_an_invalid_perturbation_is_left_out_of_the_correlation():
    data = make_data(1)
    data.pred.X[data.pred.offsets[2]] = float("nan")  # a NaN cell in perturbation 2's prediction
    flag_invalid(data)
    assert 2 in data.invalid
    r = float(PearsonEDistance().compute(data).values[0])
    keep = [0, 1, 3, 4]
    assert r == pytest.approx(np.corrcoef(edistances(data.real, keep), edistances(data.pred, keep))[0, 1], rel=1e-12)


def test_the_real_side_is_computed_once_for_predictions_of_the_same_truth(monkeypatch):
    data = make_data(2)
    metric = PearsonEDistance()
    calls = []
    original = PearsonEDistance.from_control
    monkeypatch.setattr(PearsonEDistance, "from_control", lambda self, pop, *rest: calls.append(pop) or original(self, pop, *rest))
    first = metric.compute(data).values[0]
    # a second prediction of the same truth, sharing the real side's cache as calibration.reference_data does
    other = EvalData(real=data.real, pred=make_data(3).pred, perts=data.perts, targets=data.targets, genes=data.genes,
                     cache={k: v for k, v in data.cache.items() if k.endswith("/real")})
    second = metric.compute(other).values[0]
    assert [p is data.real for p in calls] == [True, False, False]  # real once, then each prediction
    fresh = EvalData(real=data.real, pred=other.pred, perts=data.perts, targets=data.targets, genes=data.genes)
    assert float(second) == float(metric.compute(fresh).values[0]) and float(first) != float(second)


def test_the_same_cells_for_every_perturbation_are_nan_in_any_row_order():
    # a prediction giving every perturbation the same cells has one E-distance from control: the correlation is
    # undefined (NaN). Each group's cells in another order sum to E-distances that differ in the last bits, whose
    # Pearson was a number of any sign (0.0116 on the invariance audit's pair after its rows were shuffled)
    data = make_data(2)
    gen = torch.Generator().manual_seed(5)
    block = torch.randn(10, 12, generator=gen, dtype=torch.float64) + 1.0
    orders = [torch.randperm(10, generator=gen) for _ in range(5)]
    pred = Population(X=torch.cat([block[o] for o in orders]), offsets=torch.arange(6) * 10, control=data.pred.control)
    same = EvalData(real=data.real, pred=pred, perts=data.perts, targets=data.targets, genes=data.genes)
    e = PearsonEDistance().from_control(pred)
    assert len(set(e.tolist())) > 1  # the rounding this guards against: the sums differ in their last bits
    result = PearsonEDistance().compute(same)
    assert torch.isnan(result.values).all() and "constant E-distances" in result.reasons[0]
    spread = Population(X=pred.X + torch.arange(50, dtype=torch.float64)[:, None].div(10).floor() * 1e-3, offsets=pred.offsets,
                        control=pred.control)  # groups 1e-3 apart: a real (tiny) spread is still scored
    assert not torch.isnan(PearsonEDistance().compute(EvalData(real=data.real, pred=spread, perts=data.perts, targets=data.targets,
                                                               genes=data.genes)).values).any()


def test_the_control_cells_as_every_prediction_are_nan_in_any_row_order():
    # a "no effect" prediction (its own control cells for every perturbation, each group in another order): every
    # E-distance from control is 0 in exact arithmetic and rounding in fact; NaN, not the Pearson of the rounding
    data = make_data(3)
    gen = torch.Generator().manual_seed(6)
    ctrl = data.pred.control
    pred = Population(X=torch.cat([ctrl[torch.randperm(40, generator=gen)] for _ in range(5)]), offsets=torch.arange(6) * 40,
                      control=ctrl)
    assert PearsonEDistance().from_control(pred).abs().max() > 0  # the rounding
    same = EvalData(real=data.real, pred=pred, perts=data.perts, targets=data.targets, genes=data.genes)
    assert torch.isnan(PearsonEDistance().compute(same).values).all()


def test_from_control_sharing_the_squared_norms_is_bit_for_bit_the_three_sums():
    """Each set's squared norms are computed once for its sums (the control's for every perturbation): the E-distances are
    bit for bit those of the three plain sums per perturbation, more controls than one block of ``euclidean_sum`` included."""
    from distgen.kernels.pairwise import euclidean_sum

    gen = torch.Generator().manual_seed(11)
    sizes = [300, 1, 57, 0, 260]
    cells = torch.rand(sum(sizes), 30, generator=gen, dtype=torch.float64).mul(3).log1p()
    pop = Population(X=cells, offsets=torch.tensor([0, *np.cumsum(sizes).tolist()]),
                     control=torch.rand(530, 30, generator=gen, dtype=torch.float64).mul(3).log1p())
    e = PearsonEDistance().from_control(pop)
    c, m = pop.control, pop.control.shape[0]
    for p, n in enumerate(sizes):
        if n == 0:
            assert torch.isnan(e[p])
            continue
        x = pop.cells(p)
        plain = 2 * euclidean_sum(x, c) / (n * m) - euclidean_sum(x) / n**2 - euclidean_sum(c) / m**2
        assert e[p].item() == plain.item()
