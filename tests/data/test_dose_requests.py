"""The doses a model is asked at from Python (``Dataset.labels``, ``PerturbationData.labels_for``): each (condition, context)
at the dose its cells carry unless told, other doses checked and warned about (``distgen.data.doses``).

Before: both asked dose 1 whatever the data recorded, so ``model.predict(control, mask, data.labels(...))`` asked a drug
trained at 100 nM at 1 nM, and a dose-aware conditioner (``onehot`` multiplies by the dose) predicted another population.
"""

import math
import warnings

import numpy as np
import pytest

from distgen.data import Dataset, PerturbationData, PerturbationSchema
from distgen.data.doses import DoseError, DoseExtrapolationWarning

from .conftest import make_adata

#: A drug's dose per context (a sci-Plex file with one dose per drug and cell line).
DOSES = {("A", "ct1"): 100.0, ("A", "ct2"): 1000.0, ("B", "ct1"): 10.0, ("B", "ct2"): 30.0}
PAIR = {"ct1": "2+5", "ct2": "2+5"}  # A+B written 'A+B' at '2+5': A 2, B 5


def _dosed_adata():
    a = make_adata(conditions=("control", "A", "B", "A+B"), batches=("b1",), counts=False)
    cond, ctx = a.obs["condition"].astype(str), a.obs["cell_type"].astype(str)
    a.obs["dose"] = [PAIR[k] if c == "A+B" else "0" if c == "control" else str(DOSES[(c, k)]) for c, k in zip(cond, ctx)]
    return a


def _dosed(path):
    _dosed_adata().write_h5ad(path)
    return str(path)


SCHEMA = {"control_labels": ["control"], "context_cols": ["cell_type"], "dose_col": "dose", "perturbation_type": "chemical"}


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    """A held out in ct1 (trained in ct2 at 1000 only), everything else trained."""
    path = _dosed(tmp_path_factory.mktemp("doses") / "d.h5ad")
    return Dataset.load({"dataset": path, "schema": SCHEMA, "set_size": 4,
                         "split": {"kind": "held_out_context_perturbation", "test_groups": [["A", "ct1"]], "val_frac": 0.0}})


def _dose(labels):
    return [[round(x, 6) for x, p in zip(d, q) if p >= 0] for d, q in zip(labels.dose.tolist(), labels.perturbation.tolist())]


def test_each_condition_is_asked_at_its_recorded_dose_by_default(ds):
    lab = ds.labels(["A", "A", "B", "B", "A+B", "control"], ["ct1", "ct2", "ct1", "ct2", "ct1", "ct1"])
    assert _dose(lab) == [[100.0], [1000.0], [10.0], [30.0], [2.0, 5.0], []]
    same = ds.data.labels_for(["A", "B+A"], ["ct1", "ct2"])  # the file's own spelling; the doses follow the atoms
    assert _dose(same) == [[100.0], [2.0, 5.0]]


def test_asked_doses_follow_the_atoms_as_written(ds):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DoseExtrapolationWarning)
        lab = ds.labels(["A+B", "B+A", "A", "A"], ["ct1"] * 4, doses=[[1.0, 3.0], [1.0, 3.0], None, 5.0])
        assert _dose(lab) == [[1.0, 3.0], [3.0, 1.0], [100.0], [5.0]]  # B+A at [1, 3]: B 1, A 3 (atoms sorted: A 3, B 1)
        assert _dose(ds.labels(["A", "control"], ["ct2", "ct2"], doses=700.0)) == [[700.0], []]  # a number: every perturbed one
        assert _dose(ds.labels(["A"], ["ct2"], doses=np.array([700.0]))) == [[700.0]]


@pytest.mark.parametrize("doses, match", [
    (-1.0, "dose -1.0 of A is not a finite number >= 0"),
    ([math.nan], "dose nan of A is not a finite number >= 0"),
    ([math.inf], "is not a finite number >= 0"),
    ([1.0, 2.0], r"doses has 2 entries for 1 condition; give one per condition"),
    ([[1.0, 2.0]], r"A has 1 atom \(A\) but its doses \[1.0, 2.0\] hold 2 values"),
    (["10"], "the dose of A must be a number or a list of 1 number"),
    ("10", "doses must be None .* got str '10'"),
    ([True], "the dose of A must be a number"),
])
def test_bad_doses_are_refused_naming_the_fix(ds, doses, match):
    with pytest.raises(DoseError, match=match):
        ds.labels(["A"], ["ct1"], doses=doses)


def test_a_dose_for_a_control_or_for_an_unrecorded_group(ds):
    with pytest.raises(DoseError, match="a control has no perturbation to dose; give None for it"):
        ds.labels(["control"], ["ct1"], doses=[3.0])
    a = _dosed_adata()
    a = a[~((a.obs["condition"] == "A") & (a.obs["cell_type"] == "ct1")).to_numpy()].copy()  # A never measured in ct1
    data = PerturbationData.from_anndata(a, PerturbationSchema.from_dict(SCHEMA))
    with pytest.raises(DoseError, match=r"A has no recorded dose in ct1 .* recorded in ct2 at 1000\. Say the dose"):
        data.labels_for(["A"], ["ct1"])
    assert _dose(data.labels_for(["A"], ["ct1"], doses=[1000.0])) == [[1000.0]]


def test_a_dose_outside_the_training_range_warns_naming_it(ds):
    with pytest.warns(DoseExtrapolationWarning, match=r"A asked at 5000, the training cells carry it at 2 to 1000\b"):
        ds.labels(["A"], ["ct1"], doses=[5000.0])  # A alone at 1000 (ct2; ct1's 100 held out), in A+B at 2
    with pytest.warns(DoseExtrapolationWarning, match=r"B asked at 50, the training cells carry it at 5 to 30"):
        ds.labels(["B"], ["ct1"], doses=[50.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds.labels(["B", "A"], ["ct1", "ct1"], doses=[20.0, None])  # inside B's range; A at its own (held-out) dose: quiet


def test_data_without_a_dose_column_is_at_dose_1_and_refuses_others():
    data = PerturbationData.from_anndata(make_adata(conditions=("control", "A", "B"), counts=False),
                                         PerturbationSchema(context_cols=("cell_type",), batch_col="donor"))
    assert _dose(data.labels_for(["A", "B"], doses=[None, 1.0])) == [[1.0], [1.0]]
    with pytest.raises(DoseError, match=r"no dose column \(schema.dose_col\).*asked A at 2.*data.schema.dose_col"):
        data.labels_for(["A"], doses=2.0)


# ------------------------------------------------------------------ the record of hand-made labels; doses per group


def test_the_record_pairs_each_dose_with_its_own_atom_whatever_the_slot_order():
    """``dose_record`` read a row's doses from its first slots: a hand-made ``[PAD, A]`` at ``[0, 5]`` was A at 0."""
    import torch

    from distgen.data.doses import dose_record
    from distgen.types import ConditionLabels, DataInfo

    info = DataInfo(genes=("g0",), perturbations=("A", "B"), contexts=("ct1", "ct2"))
    labels = ConditionLabels(torch.tensor([[-1, 0], [1, 0], [0, -1]]), torch.tensor([[0.0, 5.0], [2.0, 7.0], [9.0, 0.0]]),
                             torch.tensor([0, 0, 1]), torch.tensor([0, 0, 0]))
    record = dose_record(labels, info, "dose")
    assert record.recorded == {(("A",), "ct1"): (5.0,), (("A", "B"), "ct1"): (7.0, 2.0), (("A",), "ct2"): (9.0,)}
    assert record.ranges == {"A": (5.0, 9.0), "B": (2.0, 2.0)}
    proper = dose_record(ConditionLabels(torch.tensor([[0, -1], [0, 1], [0, -1]]), torch.tensor([[5.0, 0.0], [7.0, 2.0], [9.0, 0.0]]),
                                         torch.tensor([0, 0, 1]), torch.tensor([0, 0, 0])), info, "dose")
    assert proper == record  # the same cells written as distgen writes them


def test_group_doses_read_a_condition_in_any_atom_order_or_delimiter(ds):
    from distgen.data.doses import group_doses

    record, conds, ctx = ds.dose_record(), ["A", "A+B"], ["ct1", "ct1"]
    assert group_doses(record, conds, ctx, None) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DoseExtrapolationWarning)
        own = group_doses(record, conds, ctx, {"A+B": [2.0, 5.0]})
        assert own == [(100.0,), (2.0, 5.0)]  # A at its own, A+B as named
        assert group_doses(record, conds, ctx, {"B+A": [5.0, 2.0]}) == own  # per atom in the order the key writes them
        assert group_doses(record, conds, ctx, {"B_A": [5.0, 2.0]}, delimiters=["_"]) == own
        assert group_doses(record, conds, ctx, 3.0) == [(3.0,), (3.0, 3.0)]
    with pytest.raises(DoseError, match=r"names the condition A\+B twice \('A\+B' and 'B\+A'\)"):
        group_doses(record, conds, ctx, {"A+B": 1.0, "B+A": 2.0})
    with pytest.raises(DoseError, match=r"doses names 'C', not a condition of the groups predicted \(2 conditions: A, A\+B\)"):
        group_doses(record, conds, ctx, {"C": 1.0})


def test_with_doses_sets_each_slot_by_its_atom():
    import torch

    from distgen.data.doses import with_doses
    from distgen.types import ConditionLabels

    labels = ConditionLabels(torch.tensor([[-1, 0], [1, 0]]), torch.ones(2, 2), torch.tensor([0, 0]), torch.tensor([0, 0]))
    assert with_doses(labels, ["A", "B"], {"A": 5.0, "B": 2.0}).dose.tolist() == [[0.0, 5.0], [2.0, 5.0]]
