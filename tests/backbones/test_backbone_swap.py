"""Swapping a preset's backbone for one that needs more than the preset gives: refused with the fix, and quietly."""

import pytest

from distgen.config import load_config


@pytest.mark.parametrize("backbone", ["mlp", "cross_dit"])
def test_a_backbone_swap_without_a_conditioner_is_refused_without_torch_warnings(backbone):
    """scdfm-small has no conditioner: swapping its backbone for one that needs an embedding is refused, naming the fix,
    and before that refusal torch warned 'Initializing zero-element tensors is a no-op' twice (a zero-width layer)."""
    import warnings

    import distgen
    from distgen.config import ConfigError as Refused

    data = distgen.load_data("norman_k562", split={"kind": "combo_seen2"})
    doc = load_config("scdfm-small", [f"model.backbone.name={backbone}"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        with pytest.raises(Refused, match=r"add a conditioner, e.g. 'model.conditioner=\{name: onehot\}'"):
            distgen.build(doc, data)
