"""A grid axis whose values all gave the same results is named (ablation-settings round, 2026-12-07).

"Variants without effect" listed pairs of variants (``a=1,b=x = a=1,b=y``, ...), one line per pair; in a two-axis grid
the reader had to see that every pair differs in the same setting. The sweep now names the setting.
"""

from __future__ import annotations

import json

import pytest

from distgen.pipeline.aggregate import identical_variants, inert_axes
from distgen.pipeline.sweep import sweep
from tests.pipeline.test_sweep import FakeRunner, base  # noqa: F401  (the fixture)


def test_an_axis_whose_values_coincide_everywhere_is_named_and_one_that_matters_is_not():
    ov = {"a=1,b=x": ("m.a=1", "m.b=x"), "a=1,b=y": ("m.a=1", "m.b=y"),
          "a=2,b=x": ("m.a=2", "m.b=x"), "a=2,b=y": ("m.a=2", "m.b=y")}
    same = {"a=1,b=y": "a=1,b=x", "a=2,b=y": "a=2,b=x"}  # b changes nothing, a does
    assert inert_axes(ov, same) == {"m.b": ["x", "y"]}
    assert inert_axes(ov, {"a=1,b=y": "a=1,b=x"}) == {}  # b matters where a=2: not inert
    assert inert_axes(ov, {}) == {}
    everything = {v: "a=1,b=x" for v in ov if v != "a=1,b=x"}  # nothing changed anything: both named
    assert inert_axes(ov, everything) == {"m.a": ["1", "2"], "m.b": ["x", "y"]}


def test_a_variant_without_the_axis_counts_as_the_configured_value():
    ov = {"ref": (), "b=y": ("m.b=y",)}
    assert inert_axes(ov, {"b=y": "ref"}) == {"m.b": ["(as configured)", "y"]}
    assert inert_axes(ov, {}) == {}


def test_the_sweep_names_the_setting_in_summary_json_md_and_stderr(tmp_path, base, capsys):  # noqa: F811
    # the fake runner reads only whether the variant says "good": the x-note axis is read by nothing
    res = sweep(base, {"description": ["good", "bad"], "x-note": ["one", "two"], "train.seed": [0, 1]}, tmp_path / "sw",
                runner=FakeRunner(), progress=False)
    summary = json.loads((res.out / "summary.json").read_text())
    assert summary["inert_settings"] == {"x-note": ["one", "two"]}
    assert "## Settings without effect" in (res.out / "summary.md").read_text()
    assert "sweep setting x-note had no effect" in capsys.readouterr().err


def _rows(values: dict[str, list[float]], metric: str = "mmd") -> list[dict]:
    """Two seeds x len(values) perturbations per variant: ``values[variant]`` in (seed, perturbation) order."""
    return [{"variant": v, "seed": i // 3, "perturbation": f"P{i % 3}", metric: x} for v, xs in values.items() for i, x in enumerate(xs)]


BASE = [0.31, 1.7e-4, 2.4, 0.29, -3.0e-3, 2.5]  # sizes of several orders and both signs, as an MMD or a delta metric


def test_runs_differing_in_their_last_digits_give_the_same_results():
    # round 2: on a GPU two runs of one config differ in their last digits; exact equality named no variant and no axis
    noisy = [x * (1 + 1e-7 * (-1) ** i) for i, x in enumerate(BASE)]  # 1e-7 relative, both ways
    drift = [x + 1e-7 * 2.4 for x in BASE]  # and the same absolute drift on the small values (3e-3 moved by 8e-5 of itself)
    rows = _rows({"b=x": BASE, "b=y": noisy, "b=z": drift})
    assert identical_variants(rows, ["b=x", "b=y", "b=z"], ["mmd"]) == {"b=y": "b=x", "b=z": "b=x"}
    ov = {"b=x": ("m.b=x",), "b=y": ("m.b=y",), "b=z": ("m.b=z",)}
    assert inert_axes(ov, identical_variants(rows, list(ov), ["mmd"])) == {"m.b": ["x", "y", "z"]}


@pytest.mark.parametrize("moved", [
    lambda xs: [xs[0] * 1.001, *xs[1:]],  # 0.1% on one perturbation of one seed
    lambda xs: [*xs[:1], xs[1] * 2, *xs[2:]],  # a small value doubled (its size is far below the metric's)
    lambda xs: [*xs[:4], xs[4] + 1e-3, xs[5]],  # a sign-changing value moved by a third of itself
    lambda xs: [*xs[:5], float("nan")],  # a value that became NaN
])
def test_a_real_effect_is_not_called_inert(moved):
    rows = _rows({"b=x": BASE, "b=y": moved(list(BASE))})
    assert identical_variants(rows, ["b=x", "b=y"], ["mmd"]) == {}
    assert inert_axes({"b=x": ("m.b=x",), "b=y": ("m.b=y",)}, identical_variants(rows, ["b=x", "b=y"], ["mmd"])) == {}


def test_the_tolerance_is_per_metric():
    # a metric of size 1e3 beside one of size 1e-4: the large one's tolerance does not hide a change of the small one
    rows = [{**a, **b} for a, b in zip(_rows({"x": [1e3] * 6, "y": [1e3] * 6}, "n_cells"),
                                       _rows({"x": [1e-4] * 6, "y": [1e-4] * 5 + [1.1e-4]}), strict=True)]
    assert identical_variants(rows, ["x", "y"], ["n_cells", "mmd"]) == {}
    assert identical_variants(rows, ["x", "y"], ["n_cells"]) == {"y": "x"}


def test_one_large_value_does_not_hide_a_change_of_the_others():
    # review of round 2: the tolerance was 1e-5 of the metric's MEAN |value|, which one large value sets (a perturbation
    # 1000 times the others', as an MSE or energy distance of a strong or diverged perturbation): a 0.1% change of a
    # typical value (100 times the tolerance on its own scale) was called "no effect"
    spread = [1e3, 1.0, 0.9, 1.1, 1.2, 0.8]
    moved = [spread[0], spread[1] * 1.001, *spread[2:]]
    assert identical_variants(_rows({"b=x": spread, "b=y": moved}), ["b=x", "b=y"], ["mmd"]) == {}
    # while the large value's own last digits (1e-7 of itself, 1e-4 here: above 1e-5 of the others' size) are rounding
    noisy = [spread[0] * (1 + 1e-7), *spread[1:]]
    assert identical_variants(_rows({"b=x": spread, "b=y": noisy}), ["b=x", "b=y"], ["mmd"]) == {"b=y": "b=x"}
