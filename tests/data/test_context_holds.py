"""The contexts round (docs/reliability.md, "Contexts round"): holding out contexts (cell types, donors) and
(condition, context) pairs with ``make_split``, as a user picks them."""

import numpy as np
import pytest

from distgen.data import PerturbationData, make_split
from distgen.errors import InputDataError
from tests.data.conftest import make_adata


def _data(tiny_schema, adata):
    return PerturbationData.from_anndata(adata, tiny_schema)


def _with_control_only_context(n_extra: int = 2):
    """``ct1``/``ct2`` with every condition, and ``n_extra`` contexts ``z0``, ``z1``... holding control cells only."""
    import anndata as ad

    full = make_adata(conditions=("control", "A", "B"))
    parts = [full]
    for i in range(n_extra):
        ctrl = full[full.obs["condition"] == "control"].copy()
        ctrl.obs["cell_type"] = f"z{i}"
        ctrl.obs_names = [f"{n}_z{i}" for n in ctrl.obs_names]
        parts.append(ctrl)
    return ad.concat(parts)


def test_given_pairs_that_would_leave_a_condition_in_no_training_context_are_refused(tiny_adata, tiny_schema):
    """held_out_context_perturbation with every context of ``A`` given: the last pair was dropped without a word (the
    split held out 1 of the 2 pairs asked and recorded both as asked)."""
    data = _data(tiny_schema, tiny_adata)
    with pytest.raises(InputDataError, match=r"'A'.*no training context|no training context.*'A'"):
        make_split(data, "held_out_context_perturbation", test_groups=[("A", "ct1"), ("A", "ct2")])
    ok = make_split(data, "held_out_context_perturbation", test_groups=[("A", "ct1"), ("B", "ct2")])
    assert set(ok.test_groups) == {("A", "ct1"), ("B", "ct2")}


def test_a_given_pair_of_a_condition_measured_in_one_context_says_why(tiny_schema):
    adata = make_adata(conditions=("control", "A", "B"))
    adata = adata[~((adata.obs["condition"] == "B") & (adata.obs["cell_type"] == "ct2"))].copy()
    data = _data(tiny_schema, adata)
    with pytest.raises(InputDataError, match=r"'B'.*measured in one context only.*ct1"):
        make_split(data, "held_out_context_perturbation", test_groups=[("B", "ct1")])


@pytest.mark.parametrize("seed", range(6))
def test_a_drawn_held_out_context_has_perturbed_cells(tiny_schema, seed):
    """test_frac drew among every context, control-only ones too: half of the seeds ended in "empty test set"."""
    data = _data(tiny_schema, _with_control_only_context())
    split = make_split(data, "held_out_context", seed=seed, test_frac=0.3)
    held = set(np.asarray(data.contexts)[split.test].tolist())
    assert held and held <= {"ct1", "ct2"}


def test_a_given_context_of_control_cells_only_is_refused_naming_it(tiny_schema):
    data = _data(tiny_schema, _with_control_only_context(1))
    with pytest.raises(InputDataError, match=r"z0.*control cells only"):
        make_split(data, "held_out_context", test_contexts=["z0"])


def test_held_out_entities_given_as_one_text_are_refused(tiny_schema):
    """``test_contexts="ct2"`` was read as its letters (``c``, ``t``, ``2``: "cannot be held out")."""
    data = _data(tiny_schema, make_adata(conditions=("control", "A", "B")))
    with pytest.raises(InputDataError, match=r"test_contexts.*list.*\['ct2'\]"):
        make_split(data, "held_out_context", test_contexts="ct2")
