"""Sweep variants: named sets of overrides, one factor at a time (an ablation), not a Cartesian product."""

import pytest

from distgen.cli import main
from distgen.commands.sweep import parse_variant_args
from distgen.config import ConfigError, load_config, load_yaml, save_yaml
from distgen.pipeline.grid import expand
from distgen.pipeline.sweep import sweep

from .test_sweep import FakeRunner


def test_variants_are_one_factor_at_a_time_each_at_every_seed():
    variants = {"preset": [], "ot": "model.coupling.name=exact_ot",
                "mlp": ["model.backbone.name=mlp", "model.conditioner={name: onehot}"]}
    runs = expand({}, [0, 1], variants)
    assert [r.slug for r in runs] == ["preset__seed0", "preset__seed1", "ot__seed0", "ot__seed1", "mlp__seed0", "mlp__seed1"]
    assert runs[0].overrides == ("train.seed=0",)  # the config as written
    assert runs[3].overrides == ("model.coupling.name=exact_ot", "train.seed=1")  # one change, not the product with mlp's
    assert runs[4].overrides == ("model.backbone.name=mlp", "model.conditioner={name: onehot}", "train.seed=0")
    crossed = expand({"train.lr": [0.1, 0.2], "train.seed": [3]}, None, {"a": [], "b": "x.y=1"})
    assert [r.slug for r in crossed] == ["a,lr=0.1__seed3", "a,lr=0.2__seed3", "b,lr=0.1__seed3", "b,lr=0.2__seed3"]
    assert crossed[3].overrides == ("x.y=1", "train.lr=0.2", "train.seed=3")


def test_a_variant_setting_what_a_grid_axis_varies_is_refused():
    """The grid's overrides come after a variant's: ``ot`` crossed with a coupling axis ran independent and sinkhorn, never
    exact_ot, under the name ot."""
    grid = {"model.coupling.name": ["independent", "sinkhorn"]}
    with pytest.raises(ConfigError, match=r"grid axis model\.coupling\.name varies"):
        expand(grid, [0], {"preset": [], "ot": "model.coupling.name=exact_ot"})
    with pytest.raises(ConfigError, match=r"grid axis model\.coupling varies"):  # the axis replaces the whole component
        expand({"model.coupling": [{"name": "independent"}]}, [0], {"preset": [], "ot": "model.coupling.name=exact_ot"})
    assert len(expand({"train.lr": [0.1, 0.2]}, [0], {"preset": [], "ot": "model.coupling.name=exact_ot"})) == 4
    refined = expand({"model.dynamics.solver.steps": [5, 10]}, [0], {"preset": [], "ode": "model.dynamics={name: flow_matching}"})
    assert refined[3].overrides == ("model.dynamics={name: flow_matching}", "model.dynamics.solver.steps=10", "train.seed=0")


@pytest.mark.parametrize("variants, match", [
    ({}, "non-empty mapping"),
    (["model.coupling.name=exact_ot"], "non-empty mapping"),
    ({"a b": []}, "names a run folder"),
    ({"ot": {"model.coupling.name": "exact_ot"}}, "expected an override"),
    ({"ot": "model.coupling.name"}, "is not an override"),
    ({"s": "train.seed=3"}, "sets the seed"),
    ({"A": [], "a": "x.y=1"}, "share one run folder"),
])
def test_bad_variants_are_refused_naming_the_fix(variants, match):
    with pytest.raises(ConfigError, match=match):
        expand({}, [0], variants)


def test_variants_from_the_sweep_section_compare_each_against_the_first(tmp_path):
    cfg = save_yaml({"model": {"name": "control"},
                     "sweep": {"variants": {"good": [], "bad": ["description=bad"]}, "seeds": [0, 1]}}, tmp_path / "s.yaml")
    runner = FakeRunner()
    res = sweep(str(cfg), out=tmp_path / "sw", runner=runner, metrics=["mse"], progress=False)
    assert sorted(runner.calls) == ["bad__seed0", "bad__seed1", "good__seed0", "good__seed1"]
    (cmp,) = res.comparisons
    assert cmp.variant == "bad" and cmp.better == "reference"  # against the first variant, good
    assert load_yaml(tmp_path / "sw" / "sweep.yaml")["variants"] == {"good": [], "bad": ["description=bad"]}
    # a file that inherits the sweep file and declares its own variants replaces them (they do not merge)
    child = save_yaml({"base": str(cfg), "sweep": {"variants": {"only": []}}}, tmp_path / "child.yaml")
    assert load_config(str(child))["sweep"]["variants"] == {"only": []}


def test_a_misspelt_sweep_key_is_refused_not_ignored(tmp_path):
    cfg = save_yaml({"model": {"name": "control"}, "sweep": {"variant": {"a": []}, "seeds": [0]}}, tmp_path / "s.yaml")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'variant'.*did you mean 'variants'"):
        sweep(str(cfg), out=tmp_path / "sw", runner=FakeRunner(), progress=False)
    assert not (tmp_path / "sw").exists()


def test_a_variant_override_that_cannot_apply_is_refused_before_any_run(tmp_path):
    cfg = save_yaml({"model": {"name": "control"}, "sweep": {"variants": {"a": [], "b": "trian.steps=3"}}}, tmp_path / "s.yaml")
    runner = FakeRunner()
    with pytest.raises(ConfigError, match="trian"):
        sweep(str(cfg), out=tmp_path / "sw", runner=runner, progress=False)
    assert runner.calls == []


def test_the_command_line_takes_variants(tmp_path, capsys):
    assert parse_variant_args([["preset"], ["ot", "model.coupling.name=exact_ot"]]) == {
        "preset": [], "ot": ["model.coupling.name=exact_ot"]}
    assert parse_variant_args([]) is None
    with pytest.raises(ConfigError, match="first word is the variant's name"):
        parse_variant_args([["model.coupling.name=exact_ot"]])
    with pytest.raises(ConfigError, match="given twice"):
        parse_variant_args([["a"], ["a", "x.y=1"]])
    cfg = save_yaml({"model": {"name": "control"}}, tmp_path / "s.yaml")
    # an override that does not apply is a usage error (exit 2) before any run: the option reached the sweep
    assert main(["sweep", str(cfg), "--variant", "a", "--variant", "b", "trian.steps=3", "--out", str(tmp_path / "sw")]) == 2
    assert "trian" in capsys.readouterr().err


def test_the_ablation_in_configs_md_builds_every_variant(tmp_path):
    """docs/configs.md's ablation block: each variant's overrides apply to its base and assemble on the bundled data."""
    import re
    from pathlib import Path

    import distgen

    page = (Path(__file__).resolve().parents[2] / "docs" / "configs.md").read_text()
    (text,) = [b for b in re.findall(r"```yaml\n(.*?)```", page, re.S) if "variants:" in b]
    cfg = tmp_path / "abl.yaml"
    cfg.write_text(text)
    runs = expand({}, load_config(str(cfg))["sweep"]["seeds"], load_config(str(cfg))["sweep"]["variants"])
    assert {r.variant for r in runs} == {"preset", "ot", "energy", "diffusion", "mlp"}
    data = distgen.load_data("norman_k562", split={"kind": "combo_seen2"})
    for r in runs[::3]:  # one seed of each variant
        doc = load_config(str(cfg), list(r.overrides))
        distgen.build(doc, data)  # assembly refuses a swap that needs more than its overrides



def test_the_summary_compares_the_metrics_the_config_evaluates_by_default(tmp_path, capsys):
    """A config that sets evaluate.metrics: the summary takes those (it warned about every default metric left out)."""
    cfg = save_yaml({"model": {"name": "control"}, "evaluate": {"metrics": ["mse"]},
                     "sweep": {"variants": {"good": [], "bad": "description=bad"}}}, tmp_path / "s.yaml")
    res = sweep(str(cfg), out=tmp_path / "sw", runner=FakeRunner(), progress=False)
    assert {c.metric for c in res.comparisons} == {"mse"}
    assert "not in the summary" not in capsys.readouterr().err
    # without evaluate.metrics the default list stays, and a metric no run computed is still named
    plain = save_yaml({"model": {"name": "control"}, "sweep": {"variants": {"good": [], "bad": "description=bad"}}},
                      tmp_path / "p.yaml")
    sweep(str(plain), out=tmp_path / "sw2", runner=FakeRunner(), progress=False)
    assert "edistance" in capsys.readouterr().err


def test_a_config_written_after_a_variant_is_named_in_the_error(tmp_path, capsys):
    """``--variant a base.yaml`` reads base.yaml as an override of a: argparse said only 'config is required'."""
    assert main(["sweep", "--out", str(tmp_path / "sw"), "--variant", "a", "base.yaml"]) == 2
    err = capsys.readouterr().err
    assert "'base.yaml' was read as an override of --variant a" in err and "before the first --variant" in err
    assert not (tmp_path / "sw").exists()
