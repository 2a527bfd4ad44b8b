"""One "unknown metric" message for ``evaluate.metrics``/``--metrics`` (``pipeline.checks.metric_problems``) and
``train.val_metrics`` (``train.options.check_val_metrics``): before, the two checks worded it apart
("(did you mean ...?); ..." against ". Did you mean ...?"), only the second knew the val_ prefix, and neither said
what to do about a plugin's metric that is not installed (the registry's own message did)."""

import sys

import pytest

from distgen.config import ConfigError
from distgen.pipeline.checks import metric_problems
from distgen.train.options import check_val_metrics


def _both(name):
    """The message of each path with its ``where:`` prefix left out."""
    (problem,) = metric_problems([name], "evaluate.metrics")
    with pytest.raises(ConfigError) as caught:
        check_val_metrics([name])
    evaluate, val = problem.removeprefix("evaluate.metrics: "), str(caught.value).removeprefix("train.val_metrics: ")
    assert problem.startswith("evaluate.metrics: ") and str(caught.value).startswith("train.val_metrics: ")
    return evaluate, val


@pytest.mark.parametrize(("typed", "meant"), [("pearsn_delta", "pearson_delta"), ("PEARSON_DELTA", "pearson_delta"),
                                              ("Pearson-Delta", "pearson_delta"), ("msee", "mse"), ("MSE", "mse")])
def test_misspelt_or_miscased_metric_is_worded_alike_on_both_paths(typed, meant):
    evaluate, val = _both(typed)
    assert evaluate.rstrip(".") == val.rstrip(".")
    assert val.startswith(f"unknown metric {typed!r}. Did you mean {meant!r}")
    assert "'distgen components --kind metrics' lists them" in val


def test_val_prefixed_metric_names_the_bare_metric_on_both_paths():
    evaluate, val = _both("val_mse")
    assert evaluate.rstrip(".") == val.rstrip(".")
    assert val.startswith("unknown metric 'val_mse'. Did you mean 'mse'? (metrics are named without val_")


def test_a_metric_named_by_no_installed_plugin_says_to_install_it_on_both_paths():
    evaluate, val = _both("bayes_posterior_fancy_score")
    assert evaluate.rstrip(".") == val.rstrip(".")
    assert "Did you mean" not in val
    assert "If 'bayes_posterior_fancy_score' comes from a plugin, install that package" in val and sys.executable in val


BROKEN = '''
raise ImportError("needs the package fancylib")
'''


def test_a_plugin_metric_that_fails_to_load_is_named_as_such_on_both_paths(plugins):
    """Before, train.val_metrics let it through (its name was listed until loading it failed) and the trainer raised later."""
    plugins.install("fake-broken-metric", "fake_broken_metric", BROKEN, {"broken_score": "fake_broken_metric:Score"},
                    "distgen.metrics")
    out = plugins.run("""
import warnings
warnings.simplefilter("ignore")
from distgen.pipeline.checks import metric_problems
from distgen.train.options import check_val_metrics
print("EVAL", metric_problems(["broken_score"], "evaluate.metrics"))
try:
    check_val_metrics(["broken_score"])
    print("VAL passed")
except Exception as exc:
    print("VAL", type(exc).__name__, exc)
""")
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert "'broken_score' from 'fake-broken-metric' failed to load" in lines["EVAL"] and "fancylib" in lines["EVAL"]
    assert lines["VAL"].startswith("ConfigError train.val_metrics: ")
    assert "'broken_score' from 'fake-broken-metric' failed to load" in lines["VAL"] and "fancylib" in lines["VAL"]


ONE_VALUE = '''
from distgen.evaluation.metrics.base import Metric, MetricResult


class OneValue(Metric):
    """One number for all perturbations (a metric gives one per perturbation)."""

    def compute(self, data):
        return MetricResult.from_values((data.means("pred") - data.means("real")).abs().mean().reshape(1), "no cells")
'''


def test_a_plugin_metric_failing_its_cheap_checks_is_refused_in_train_val_metrics_too(plugins):
    """Before, ``train.val_metrics`` ran no check of a plugin's metric: it was first computed at a validation, mid-run."""
    plugins.install("fake-metrics", "fake_metrics", ONE_VALUE, {"one_value": "fake_metrics:OneValue"}, "distgen.metrics")
    out = plugins.run("""
from distgen.train.options import train_options
try:
    train_options({"val_metrics": ["one_value"]})
    print("VAL passed")
except Exception as exc:
    print("VAL", type(exc).__name__, exc)
""")
    assert out.returncode == 0, out.stderr
    assert "VAL ConfigError train.val_metrics: metrics component 'one_value' from plugin 'fake-metrics'" in out.stdout
    assert "expected (3,)" in out.stdout
