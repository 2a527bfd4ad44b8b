"""Sizes that cannot build a component are config errors naming the key (hostile-input round of 2026-12-06).

``heads=0`` ended in ``ZeroDivisionError`` and a negative width in torch's "Trying to create tensor with negative
dimension" (internal errors, exit 1); ``mlp_ratio=0`` built an MLP of no unit and the covariate conditioner's ``dim=0`` a
condition of no feature, and both trained: the second a model that never saw which perturbation it generates.
"""

from __future__ import annotations

import pytest

from distgen.config import ConfigError, build_component
from distgen.testing.checks import example_node, injected

CASES = [
    ("backbones", "cross_dit", {"heads": 0}, r"cross_dit: heads must be >= 1"),
    ("backbones", "cross_dit", {"heads": -1}, r"cross_dit: heads must be >= 1"),
    ("backbones", "cross_dit", {"mlp_ratio": 0.0}, r"cross_dit: .*mlp_ratio must give an MLP of at least one unit"),
    ("backbones", "cross_dit", {"mlp_ratio": -1.0}, r"cross_dit: .*mlp_ratio"),
    ("backbones", "pad_transformer", {"heads": 0}, r"pad_transformer: heads must be >= 1"),
    ("backbones", "pad_transformer", {"mlp_ratio": 0}, r"pad_transformer: .*mlp_ratio"),
    ("backbones", "pad_transformer", {"d_model": 0}, r"pad_transformer: d_model must be >= 1"),
    ("conditioners", "covariate", {"dim": 0}, r"covariate: dim must be >= 1"),
    ("conditioners", "covariate", {"dim": -1}, r"covariate: dim must be >= 1"),
    ("conditioners", "onehot", {"dim": 0}, r"onehot: dim must be >= 1"),
    ("encoders", "deepsets", {"pool": "attention", "heads": 0}, r"deepsets: heads must be >= 1"),
]


@pytest.mark.parametrize("kind, name, params, words", CASES, ids=[f"{c[1]}-{c[2]}" for c in CASES])
def test_a_size_that_cannot_build_the_component_is_a_config_error(kind, name, params, words):
    with pytest.raises(ConfigError, match=words):
        build_component(kind, {**example_node(kind, name), **params}, **injected())


def test_the_cli_says_it_in_one_line_with_exit_2(tmp_path, capsys):
    from distgen.cli import main

    code = main(["train", "perturbdiff-small", "--out", str(tmp_path / "r"), "train.steps=1", "model.backbone.heads=0"])
    err = capsys.readouterr().err
    assert code == 2 and "config error: cross_dit: heads must be >= 1" in err and "internal error" not in err
    assert not (tmp_path / "r" / "checkpoints").exists()
