"""Ceiling options without the ceiling are warned about (ablation-settings round, 2026-12-07).

``replicate`` and ``ceiling_splits`` choose how the ceiling is drawn; with ``ceiling: false`` (``--no-ceiling``) they were
accepted and read by nothing, so two evaluations differing in them were identical without a word.
"""

from __future__ import annotations

import warnings

import pytest

from distgen.config import InertSettingWarning
from distgen.evaluation import score
from tests.evaluation.test_score import METRICS, _population


@pytest.mark.parametrize("kw, words", [
    ({"replicate": "extrapolated"}, "replicate=extrapolated has no effect without the ceiling"),
    ({"ceiling_splits": 3}, "ceiling_splits=3 has no effect without the ceiling"),
])
def test_a_ceiling_option_without_the_ceiling_is_warned_about(kw, words):
    truth, pred = _population(0), _population(1, noise=0.05)
    with pytest.warns(InertSettingWarning, match=words) as said:
        rep = score(pred, truth, metrics=METRICS, ceiling=False, **kw)
    assert sum(issubclass(w.category, InertSettingWarning) for w in said) == 1  # said once, for the option given
    assert rep.ceiling is None  # and indeed no ceiling was drawn with it


def test_read_options_say_nothing():
    truth, pred = _population(0), _population(1, noise=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InertSettingWarning)
        assert score(pred, truth, metrics=METRICS, ceiling=False).ceiling is None
        score(pred, truth, metrics=METRICS, ceiling=False, ceiling_splits=2, interpolated=True)  # the duplicate reads it
        drawn = score(pred, truth, metrics=METRICS, ceiling=True, ceiling_splits=2, replicate="extrapolated")
    assert drawn.ceiling is not None and drawn.ceiling.perts == drawn.table.perts  # the options were read: a ceiling drawn
