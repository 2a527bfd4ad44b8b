"""Each E-distance convention against its written definition; the real-control delta variants."""

import torch

from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.metrics import metrics


def _sets(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(9, 5, generator=g, dtype=torch.float64) + 0.4


def _edist(x, y, power, diagonal):
    d = lambda a, b: torch.cdist(a, b).pow(power)  # noqa: E731
    def within(a):
        n = a.shape[0]
        return d(a, a).sum() / (n * n if diagonal else n * (n - 1))
    return 2 * d(x, y).mean() - within(x) - within(y)


def test_edistance_conventions_match_their_definitions():
    x, y = _sets()
    ev = EvalData.from_single(x, y, x, y)
    want = {"edistance": _edist(x, y, 1, True),  # cell-eval, pertpy 1.4 default: Euclidean, diagonal in
            "edistance_sq": _edist(x, y, 2, True),  # CellFlow: squared, diagonal in (= 2 |mean diff|^2)
            "edistance_scperturb": _edist(x, y, 2, False)}  # scPerturb: squared, N^2 - N pairs
    for name, value in want.items():
        got = metrics.get(name)().compute(ev).values[0]
        torch.testing.assert_close(got, value.to(torch.float64), rtol=1e-10, atol=1e-12)
    assert abs(float(want["edistance_sq"]) - 2 * float((x.mean(0) - y.mean(0)).pow(2).sum())) < 1e-10


def test_real_control_variants_take_the_predicted_delta_against_the_real_controls():
    x, y = _sets(1)
    ctrl_pred, ctrl_real = torch.zeros(4, 5, dtype=torch.float64), torch.ones(4, 5, dtype=torch.float64)
    ev = EvalData.from_single(x, y, ctrl_pred, ctrl_real)
    own = metrics.get("mse_delta")().compute(ev).values[0]
    real = metrics.get("mse_delta_realctrl")().compute(ev).values[0]
    torch.testing.assert_close(real, (x.mean(0) - y.mean(0)).pow(2).mean())  # controls cancel
    torch.testing.assert_close(own, (x.mean(0) - 0 - (y.mean(0) - 1)).pow(2).mean())
    assert metrics.get("discrimination_score_l1_realctrl")().control == "real"


def test_edistance_scperturb_and_realctrl_deltas_against_numpy():
    """Independent numpy computations (no torch distance code) of the scPerturb statistic and each `_realctrl` delta."""
    import numpy as np

    rng = np.random.default_rng(5)
    x, y = rng.normal(0, 1, (6, 4)), rng.normal(0.5, 1.2, (8, 4))
    cp, cr = rng.normal(0, 1, (5, 4)), rng.normal(0.3, 1, (7, 4))
    sq = lambda a, b: ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)  # noqa: E731
    within = lambda a: sq(a, a)[~np.eye(len(a), dtype=bool)].mean()  # noqa: E731
    want_e = 2 * sq(x, y).mean() - within(x) - within(y)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    ev = EvalData.from_single(t(x), t(y), t(cp), t(cr))
    assert abs(float(metrics.get("edistance_scperturb")().compute(ev).values[0]) - want_e) < 1e-10
    dp, dr = x.mean(0) - cr.mean(0), y.mean(0) - cr.mean(0)  # both deltas against the REAL controls
    want = {"mse_delta_realctrl": ((dp - dr) ** 2).mean(), "mae_delta_realctrl": np.abs(dp - dr).mean(),
            "pearson_delta_realctrl": np.corrcoef(dp, dr)[0, 1],
            "r2_delta_realctrl": 1 - ((dr - dp) ** 2).sum() / ((dr - dr.mean()) ** 2).sum()}
    for name, value in want.items():
        assert abs(float(metrics.get(name)().compute(ev).values[0]) - value) < 1e-10, name
