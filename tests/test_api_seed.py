"""``distgen.build`` draws the initial weights from ``train.seed`` as ``distgen train`` does, leaving the caller's random state alone."""

import torch

import distgen

DOC = {"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8}, "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                 "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 2}}},
       "train": {"seed": 5}}


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_same_config_and_seed_build_the_same_weights_whatever_the_global_random_state():
    data = distgen.load_data("norman_k562", split={"kind": "combo_seen2", "seed": 0}, hvg=32)
    torch.manual_seed(123)
    a = distgen.build(DOC, data)
    after_a = torch.rand(3)
    torch.manual_seed(999)
    b = distgen.build(DOC, data)
    torch.testing.assert_close(_weights(a), _weights(b), rtol=0, atol=0)
    torch.manual_seed(123)
    torch.testing.assert_close(torch.rand(3), after_a)  # building drew nothing from the caller's generator
    other = distgen.build(DOC, data, ["train.seed=6"])
    assert not torch.equal(_weights(a), _weights(other))
    assert torch.equal(_weights(distgen.build(DOC, data, seed=6)), _weights(other))


def test_a_misspelt_section_is_refused_by_build_and_fit_as_distgen_train_refuses_it(tmp_path):
    """``trian: {seed: 3}`` was ignored by distgen.build and distgen.fit (the model kept train.seed 0) without a word."""
    import pytest

    from distgen.config import ConfigError
    from distgen.testing.fixtures import tiny_table

    data = distgen.load_data("norman_k562", split={"kind": "combo_seen2", "seed": 0}, hvg=32)
    bad = {**DOC, "trian": {"seed": 3}}
    with pytest.raises(ConfigError, match=r"unknown top-level section\(s\) \['trian'\]\. Did you mean 'train'\?"):
        distgen.build(bad, data)
    path = tmp_path / "cfg.yaml"
    path.write_text("model: {name: additive}\ntrian: {seed: 3}\n")
    with pytest.raises(ConfigError, match="'trian'"):
        distgen.build(str(path), data)
    with pytest.raises(ConfigError, match="'trian'"):
        distgen.fit(distgen.build({"name": "additive"}, data), tiny_table(), config={"model": {"name": "additive"}, "trian": {"seed": 3}})
    assert distgen.build({**DOC, "x-anchors": {"a": 1}, "evaluate": {"plots": False}}, data) is not None  # known and anchor sections pass
