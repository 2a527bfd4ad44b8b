"""Configs: validation against signatures, overrides, inheritance, round trip."""

import pytest

from distgen.config import (
    ConfigError,
    apply_overrides,
    build_component,
    load_config,
    parse_override,
    resolve_node,
    save_yaml,
    validate_node,
    validate_params,
)
from distgen.models.generator import build_model
from distgen.testing import tiny_info

MODEL = {
    "name": "generator",
    "conditioner": {"name": "onehot", "dim": 8},
    "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
    "dynamics": {"name": "flow_matching", "solver": {"name": "rk4", "steps": 2}},
}


def test_unknown_component_name():
    with pytest.raises(ConfigError, match=r"model\[generator\]\.backbone\.name: unknown backbones component 'mpl'.*Did you mean 'mlp'.*Available"):
        validate_node("models", {**MODEL, "backbone": {"name": "mpl"}}, "model")


def test_unknown_key_names_key_and_suggests():
    with pytest.raises(ConfigError, match=r"model\[generator\]\.backbone\[mlp\]: unknown key 'hiden'.*Did you mean 'hidden'"):
        validate_node("models", {**MODEL, "backbone": {"name": "mlp", "hiden": 3}}, "model")


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"backbone\[mlp\]\.depth: expected int, got str 'three'"):
        validate_node("models", {**MODEL, "backbone": {"name": "mlp", "depth": "three"}})
    with pytest.raises(ConfigError, match=r"\.hidden: expected int, got bool"):
        validate_node("backbones", {"name": "mlp", "hidden": True})


def test_int_accepted_for_float_and_none_for_optional():
    def make(rate: float = 1.0, limit: float | None = 2.0) -> None: ...

    validate_params(make, {"rate": 0, "limit": None}, "x")  # an int where a float goes, None where optional: accepted ...
    with pytest.raises(ConfigError, match=r"x\.rate: expected float, got str"):  # ... while the same check refuses a string
        validate_params(make, {"rate": "0"}, "x")
    with pytest.raises(ConfigError, match=r"x\.limit: expected"):
        validate_params(make, {"limit": "none"}, "x")
    validate_node("dynamics", {"name": "flow_matching", "path": {"name": "condot", "sigma_min": 0}, "clamp_min": None})


def test_missing_required_param():
    with pytest.raises(ConfigError, match=r"missing required parameter\(s\) 'backbone'"):
        validate_node("models", {k: v for k, v in MODEL.items() if k != "backbone"})
    # `conditioner.name=embedding_table` said "missing required parameter(s) 'table'." and nothing of what a table is
    # (component-matrix walk, 2026-12-06)
    with pytest.raises(ConfigError, match=r"conditioner\[embedding_table\]: missing required parameter\(s\) 'table' "
                                          r"\(str \| dict\[str, list\[float\]\]\); give it in this node"):
        validate_node("models", {**MODEL, "conditioner": {"name": "embedding_table"}})


def test_injected_param_cannot_be_set():
    with pytest.raises(ConfigError, match=r"n_genes.*filled in from the data"):
        validate_node("backbones", {"name": "mlp", "n_genes": 5})


def test_node_without_name():
    with pytest.raises(ConfigError, match=r"has no 'name'.*mlp"):
        validate_node("backbones", {"hidden": 3})


def test_constructor_errors_are_still_clear():
    with pytest.raises(ValueError, match="rk4 solver: steps must be >= 1, got 0"):
        build_component("dynamics", {"name": "flow_matching", "solver": {"name": "rk4", "steps": 0}})
    with pytest.raises(ConfigError, match=r"solver\.name: unknown ode_solvers component 'rk5'.*Did you mean 'rk4'"):
        build_component("dynamics", {"name": "flow_matching", "solver": "rk5"})


def test_a_bare_name_is_shorthand_for_a_node_and_resolves_to_it():
    short = resolve_node("dynamics", {"name": "flow_matching", "solver": "euler"})
    assert short["solver"] == {"name": "euler", "steps": 20}
    assert short == resolve_node("dynamics", {"name": "flow_matching", "solver": {"name": "euler"}})
    assert resolve_node("dynamics", "flow_matching")["path"] == {"name": "condot", "sigma_min": 0.0}  # defaults too
    with pytest.raises(ConfigError, match=r"solver\[euler\]: unknown key 'rtol'"):
        validate_node("dynamics", {"name": "flow_matching", "solver": {"name": "euler", "rtol": 1e-3}})


def test_overrides_reach_into_nested_parts():
    doc = {"model": {"dynamics": {"name": "flow_matching", "solver": {"name": "rk4", "steps": 19}}}}
    out = apply_overrides(doc, ["model.dynamics.solver=euler"])  # a new name replaces the part (old overrides keep working)
    assert out["model"]["dynamics"]["solver"] == "euler"
    out = apply_overrides(doc, ["model.dynamics.solver=euler", "model.dynamics.solver.steps=4"])  # then set inside it
    assert out["model"]["dynamics"]["solver"] == {"name": "euler", "steps": 4}
    out = apply_overrides(doc, ["model.dynamics.solver.steps=5"])  # params merge while the name stays
    assert out["model"]["dynamics"]["solver"] == {"name": "rk4", "steps": 5}
    out = apply_overrides(doc, ["model.dynamics.solver={name: dopri5, rtol: 1.0e-3}"])
    assert build_component("dynamics", out["model"]["dynamics"]).solver.rtol == 1e-3


def test_overrides_merge_or_replace():
    doc = {"model": MODEL, "train": {"seed": 0}}
    out = apply_overrides(doc, ["model.backbone.depth=4", "train.seed=3", "train.lr=1e-3", "model.dynamics.name=flow_matching"])
    assert out["model"]["backbone"] == {"name": "mlp", "hidden": 16, "depth": 4}
    assert out["train"] == {"seed": 3, "lr": 1e-3}
    assert out["model"]["dynamics"] == MODEL["dynamics"]  # same name: params kept
    out2 = apply_overrides(doc, ["model.coupling.name=independent", "model.backbone.name=other"])
    assert out2["model"]["backbone"] == {"name": "other"}  # new name: node replaced
    assert doc["model"]["backbone"]["depth"] == 1  # input untouched


def test_a_name_change_keeps_what_earlier_overrides_of_the_same_call_set_inside_the_node():
    """`backbone.hidden=32 backbone.name=mlp` used to drop hidden=32 silently (the name change cleared the node);
    the order of the two overrides must not matter."""
    doc = {"model": {"backbone": {"name": "pad_transformer", "layers": 2}, "dynamics": MODEL["dynamics"]}}
    first = apply_overrides(doc, ["model.backbone.hidden=32", "model.backbone.name=mlp"])
    assert first["model"]["backbone"] == {"name": "mlp", "hidden": 32}  # the preset's layers=2 is gone with the old node
    assert first == apply_overrides(doc, ["model.backbone.name=mlp", "model.backbone.hidden=32"])
    deep = apply_overrides(doc, ["model.backbone.attention.name=x", "model.backbone.attention.k=1", "model.backbone.name=y"])
    assert deep["model"]["backbone"] == {"name": "y", "attention": {"name": "x", "k": 1}}
    again = apply_overrides(doc, ["model.backbone.name=a", "model.backbone.k=1", "model.backbone.name=b"])
    assert again["model"]["backbone"] == {"name": "b", "k": 1}
    # a key the new component does not take is now an error naming it, not a silent drop
    bad = apply_overrides(doc, ["model.backbone.layers=1", "model.backbone.name=mlp"])
    with pytest.raises(ConfigError, match=r"backbone\[mlp\]: unknown key 'layers'"):
        validate_node("backbones", bad["model"]["backbone"], "backbone")


@pytest.mark.parametrize("bad", ["noequals", "a..b=1", "x=[1,"])
def test_bad_override_syntax(bad):
    with pytest.raises(ConfigError):
        parse_override(bad)


def test_resolved_config_round_trips(tmp_path):
    resolved = resolve_node("models", MODEL)
    assert resolved["backbone"]["use_control"] is False  # defaults filled in from the signature
    path = save_yaml({"model": resolved}, tmp_path / "cfg.yaml")
    assert load_config(path)["model"] == resolved
    model = build_model(resolved, tiny_info())
    assert sum(p.numel() for p in model.parameters()) > 0


def test_base_inheritance(tmp_path):
    save_yaml({"model": MODEL, "train": {"seed": 1}}, tmp_path / "base.yaml")
    save_yaml({"base": str(tmp_path / "base.yaml"), "train": {"seed": 2}, "model": {"backbone": {"depth": 3}}}, tmp_path / "child.yaml")
    doc = load_config(tmp_path / "child.yaml", ["train.steps=5"])
    assert doc["train"] == {"seed": 2, "steps": 5}
    assert doc["model"]["backbone"] == {"name": "mlp", "hidden": 16, "depth": 3}


def test_missing_config_file_or_preset():
    with pytest.raises(ConfigError, match="neither a config file nor a preset"):
        load_config("no-such-preset")


def test_relative_base_is_found_next_to_the_including_file(tmp_path, monkeypatch):
    (tmp_path / "cfgs").mkdir()
    save_yaml({"model": MODEL, "train": {"seed": 1}}, tmp_path / "cfgs" / "base.yaml")
    save_yaml({"base": "base.yaml", "train": {"seed": 2}}, tmp_path / "cfgs" / "child.yaml")
    monkeypatch.chdir(tmp_path)  # base.yaml is not in the working directory
    doc = load_config("cfgs/child.yaml")
    assert doc["train"]["seed"] == 2 and doc["model"] == MODEL


def test_base_override_swaps_the_whole_preset_under_the_document(tmp_path, monkeypatch):
    (tmp_path / "cfgs").mkdir()
    other = {"name": "generator", "conditioner": {"name": "onehot", "dim": 4}, "backbone": {"name": "mlp", "hidden": 8, "depth": 1}}
    save_yaml({"model": MODEL, "train": {"seed": 1, "steps": 9}}, tmp_path / "cfgs" / "a.yaml")
    save_yaml({"model": other, "train": {"seed": 5}, "sweep": {"grid": {"model.backbone.depth": [1, 2]}}}, tmp_path / "cfgs" / "b.yaml")
    save_yaml({"base": "a.yaml", "train": {"seed": 2}}, tmp_path / "cfgs" / "sweep.yaml")
    monkeypatch.chdir(tmp_path)
    assert load_config("cfgs/sweep.yaml")["model"] == MODEL
    doc = load_config("cfgs/sweep.yaml", ["base=b.yaml", "train.steps=3"])  # found next to the sweep file
    assert doc["model"] == other and doc["train"] == {"seed": 2, "steps": 3}  # the document's own sections still win
    assert "base" not in doc and doc["sweep"]["grid"] == {"model.backbone.depth": [1, 2]}  # inherited: no grid declared here
    save_yaml({"base": "b.yaml", "sweep": {"grid": {"train.lr": [0.1]}, "seeds": [0, 1]}}, tmp_path / "cfgs" / "own.yaml")
    own = load_config("cfgs/own.yaml")
    assert own["sweep"] == {"grid": {"train.lr": [0.1]}, "seeds": [0, 1]}  # a declared grid replaces the base's whole
    assert load_config({"train": {"seed": 0}}, ["base=scdfm-small"])["model"]["backbone"]["name"] == "pad_transformer"
    with pytest.raises(ConfigError, match="base must be a preset name or a config path"):
        load_config({"train": {}}, ["base=[a, b]"])
    with pytest.raises(ConfigError, match="neither a config file nor a preset"):
        load_config({"train": {}}, ["base=no-such-preset"])


def test_a_file_sets_parameters_of_a_part_its_base_names_by_a_bare_name(tmp_path):
    """`solver: euler` in a base file and `solver: {steps: 3}` over it was "component node has no 'name'" (the overrides
    `solver=euler solver.steps=3` expand the bare name); outside `model`, a mapping still replaces a string (a split file)."""
    (tmp_path / "b1.yaml").write_text("model: {dynamics: {name: flow_matching, solver: euler}}\ndata: {split: split.json}\n")
    (tmp_path / "b2.yaml").write_text("base: b1.yaml\nmodel: {dynamics: {solver: {steps: 3}}}\ndata: {split: {kind: combo_seen2}}\n")
    doc = load_config(tmp_path / "b2.yaml")
    assert doc["model"]["dynamics"]["solver"] == {"name": "euler", "steps": 3}
    assert doc["data"]["split"] == {"kind": "combo_seen2"}
    assert build_component("dynamics", doc["model"]["dynamics"]).solver.steps == 3


def test_parameters_of_a_part_left_at_its_default_set_that_default_part():
    """`model.dynamics.name=flow_matching model.dynamics.solver.steps=3` (an ablation that swaps the dynamics and shrinks its
    solver) was refused: "solver: component node has no 'name'", though flow matching's solver defaults to rk4
    (component-matrix round, 2026-12-06). The node takes the default part's name; a part without a default still needs one."""
    doc = load_config("perturbdiff-small", ["model.dynamics.name=flow_matching", "model.dynamics.solver.steps=3"])
    assert doc["model"]["dynamics"]["solver"] == {"steps": 3}  # the document as written ...
    built = build_component("dynamics", doc["model"]["dynamics"])
    assert type(built.solver).__name__ == "RK4" and built.solver.steps == 3  # ... builds the default solver with 3 steps
    assert resolve_node("dynamics", doc["model"]["dynamics"])["solver"] == {"name": "rk4", "steps": 3}  # what config.yaml holds
    diffusion = build_component("dynamics", {"name": "diffusion", "sampler": {"steps": 7}, "schedule": {"timesteps": 50}})
    assert (type(diffusion.sampler).__name__, diffusion.sampler.steps, diffusion.schedule.T) == ("DDIM", 7, 50)
    with pytest.raises(ConfigError, match=r"unknown key 'stepz'.*Valid keys: steps"):
        build_component("dynamics", {"name": "flow_matching", "solver": {"stepz": 3}})
    with pytest.raises(ConfigError, match=r"has no 'name'.*mlp"):  # no default to take the name from
        validate_node("models", {**MODEL, "backbone": {"hidden": 3}})


def test_only_parameters_assembly_fills_are_injected():
    """`dim_in` and `kernel_ref` were listed as injected but nothing ever filled them: a plugin parameter called `dim_in`
    was refused in configs ("filled in from the data at assembly") and stuck at its default."""
    from distgen.config import INJECTED, validate_params

    def plugin(n_genes: int, dim_in: int = 3, kernel_ref: str = "x") -> None: ...

    validate_params(plugin, {"dim_in": 5, "kernel_ref": "y"}, "encoders[plugin]")
    assert {"dim_in", "kernel_ref"}.isdisjoint(INJECTED) and "n_genes" in INJECTED
    with pytest.raises(ConfigError, match="'n_genes' is filled in from the data"):
        validate_params(plugin, {"n_genes": 5}, "encoders[plugin]")
