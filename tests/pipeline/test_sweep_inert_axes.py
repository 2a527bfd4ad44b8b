"""A grid axis whose values all gave the same results is named (ablation-settings round, 2026-12-07).

"Variants without effect" listed pairs of variants (``a=1,b=x = a=1,b=y``, ...), one line per pair; in a two-axis grid
the reader had to see that every pair differs in the same setting. The sweep now names the setting.
"""

from __future__ import annotations

import json

from distgen.pipeline.aggregate import inert_axes
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
