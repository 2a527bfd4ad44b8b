"""Differential tests of the reference profiles on small adversarial pairs (``tests/evaluation/adversarial.py``).

The slow, ``celleval`` tests run cell-eval2 0.20.0 (profile ``full``, presets ``vcc2026`` and ``cell-eval-0.7.6``) and
cell-eval 0.8.2 (profile ``full``) on each generated case and compare every metric of every perturbation and every
mean with ``distgen evaluate --profile`` at < 1e-6 (NaN patterns exactly; a pair the reference refuses must be refused).
The default-suite tests pin what the round found, without the references.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from distgen.evaluation.metrics import metrics
from distgen.evaluation.profiles import resolve_profile

from .adversarial import CASES, COUNTS, PROFILES, make_case
from .test_metrics import _data


def _tied_pair():
    """Five perturbations; P1 and P2 have the same real and the same predicted means (an exact tie in every distance row)."""
    rng = np.random.default_rng(4)
    real = rng.uniform(0, 3, (5, 12))
    pred = real + rng.normal(0, 0.4, real.shape)
    real[2], pred[2] = real[1], pred[1]
    perts = ("P0", "P1", "P2", "P3", "P4")
    return _data(pred, real, ctrl_pred=0.3, ctrl_real=0.0, perts=perts), pred - 0.3, real


@pytest.mark.parametrize(("name", "distance"), [("discrimination_score_l1", "cityblock"),
                                                ("discrimination_score_l2", "euclidean"),
                                                ("discrimination_score_cosine", "cosine")])
def test_cell_eval_0_8_2_profile_breaks_an_exact_tie_by_argsort_position(name, distance):
    # cell-eval 0.8.2 ranks the own real effect by its position in numpy's argsort of the distance row
    # (metrics/_anndata.py: discrimination_score), so two perturbations with one real effect do not share a midrank:
    # the profile gave both 0.9375 where cell-eval gave 0.875 and 1.0 (tests/evaluation/adversarial.py: tied_effects)
    data, pred_delta, real_delta = _tied_pair()
    params = resolve_profile("cell-eval-0.8.2").params[name]
    got = metrics.get(name)(**params).compute(data).values.numpy()
    d = cdist(pred_delta, real_delta, metric=distance)
    expected = [1 - np.flatnonzero(np.argsort(d[p]) == p)[0] / 5 for p in range(5)]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert got[1] != got[2] and got[1] + got[2] == pytest.approx(2 * (1 - 0.5 / 5))  # split, not shared; the mean of a midrank
    default = metrics.get(name)().compute(data).values.numpy()  # distgen's own evaluation keeps the midrank
    assert default[1] == default[2] == pytest.approx(1 - 0.5 / 5)


def test_discrimination_ties_option_is_checked():
    with pytest.raises(ValueError, match="ties must be 'midrank'"):
        metrics.get("discrimination_score_l1")(ties="first")
