"""The ten overlap / precision metrics rank the two DE tables once per side and threshold (``de_metrics.top_rank``)."""

from __future__ import annotations

import numpy as np
import torch

from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.metrics import de_metrics

OVERLAPS = [de_metrics.OverlapAtN, de_metrics.OverlapAt50, de_metrics.OverlapAt100, de_metrics.OverlapAt200,
            de_metrics.OverlapAt500, de_metrics.PrecisionAtN, de_metrics.PrecisionAt50, de_metrics.PrecisionAt100,
            de_metrics.PrecisionAt200, de_metrics.PrecisionAt500]


def population(seed: int, shift: float, genes: int = 60) -> Population:
    gen = torch.Generator().manual_seed(seed)
    sizes = [30, 25, 35]
    up = torch.zeros(genes)
    up[: genes // 2] = torch.linspace(0.2, shift, genes // 2)  # graded responses: lfc ranks of several sizes
    x = [torch.rand(n, genes, generator=gen).mul(2).log1p() + (p + 1) * up / 3 for p, n in enumerate(sizes)]
    return Population(X=torch.cat(x), offsets=torch.tensor([0, *np.cumsum(sizes).tolist()]),
                      control=torch.rand(50, genes, generator=gen).mul(2).log1p())


def data(pred_seed: int) -> EvalData:
    return EvalData(real=population(0, 2.0), pred=population(pred_seed, 1.5), perts=("a", "b", "c"), targets=((),) * 3,
                    genes=tuple(f"g{i}" for i in range(60)))


def test_the_tables_are_ranked_once_and_every_value_is_that_of_its_own_ranking(monkeypatch):
    calls = []
    plain = de_metrics.top_rank

    def counted(de, fdr=de_metrics.FDR):
        calls.append(fdr)
        return plain(de, fdr)

    fresh = {cls.__name__: cls().compute(data(1)).values for cls in OVERLAPS}  # each on its own EvalData: ranked anew
    assert any(bool((v > 0).any()) for v in fresh.values())  # significant genes: the ranks decide something
    fresh_01 = de_metrics.OverlapAt50(fdr=0.01).compute(data(1)).values
    monkeypatch.setattr(de_metrics, "top_rank", counted)
    shared = data(1)
    for cls in OVERLAPS:
        assert torch.equal(cls().compute(shared).values, fresh[cls.__name__]), cls.__name__
    assert len(calls) == 2  # one real, one pred ranking for the ten metrics
    assert torch.equal(de_metrics.OverlapAt50(fdr=0.01).compute(shared).values, fresh_01)  # another threshold: its own ranking
    assert len(calls) == 4


def test_a_replaced_prediction_is_ranked_again():
    """calibration replaces a half's prediction and keeps only the real side's cache (``real_side_cache``): the prediction's
    ranking goes, the truth's (key ending in "/real") is reused."""
    from distgen.evaluation.calibration import real_side_cache

    shared = data(1)
    de_metrics.PrecisionAt50().compute(shared)
    other = data(7)
    shared.pred = other.pred
    shared.cache = real_side_cache(shared)
    assert "de/top_rank/0.05/real" in shared.cache
    for cls in OVERLAPS:
        assert torch.equal(cls().compute(shared).values, cls().compute(data(7)).values), cls.__name__


def _numpy_rank(de, fdr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The ranking written out in numpy, int64: significant genes by |lfc| (float32) descending, ties in gene order."""
    sig = de.significant(fdr).numpy()
    key = np.where(sig, np.abs(de.lfc.numpy().astype(np.float32)), np.float32(-1.0))
    order = np.argsort(-key, axis=-1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(key.shape[-1]), order.shape), axis=-1)
    return torch.as_tensor(sig), torch.as_tensor(rank)


def test_the_cached_ranks_are_int32_and_score_as_int64_ranks_do(monkeypatch):
    """The cached rank was int64 ``[P, G]`` per side; int32 halves what EvalData holds, with the same values.
    Failed before (int64)."""
    shared = data(1)
    values = {cls.__name__: cls().compute(shared).values for cls in OVERLAPS}
    real, pred = de_metrics.de_tables(shared)
    for side, table in (("real", real), ("pred", pred)):
        sig, rank = shared.cache[f"de/top_rank/0.05/{side}"]
        assert rank.dtype == torch.int32
        ref_sig, ref_rank = _numpy_rank(table, 0.05)
        assert torch.equal(sig, ref_sig) and torch.equal(rank.to(torch.int64), ref_rank)
    monkeypatch.setattr(de_metrics, "top_rank", _numpy_rank)  # a fresh EvalData ranked in int64
    for cls in OVERLAPS:
        fresh = cls().compute(data(1)).values
        assert fresh.dtype == values[cls.__name__].dtype and torch.equal(fresh, values[cls.__name__]), cls.__name__
