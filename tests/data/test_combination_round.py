"""Combinations as users' files write them (the combinations round, docs/reliability.md): GEARS ``A+ctrl`` labels, atoms in
either order, a repeated atom, triples; what a split holds out and what it names."""

import warnings

import numpy as np
import pytest

from distgen.data import PerturbationData, PerturbationSchema, make_split
from distgen.errors import DistgenWarning, InputDataError
from tests.data.conftest import make_adata

GEARS = ("ctrl", "A+ctrl", "B+ctrl", "C+ctrl", "A+B", "B+C", "D+E")


def _data(conditions=GEARS, control="ctrl"):
    a = make_adata(conditions=conditions, contexts=("ct1",), batches=("b1",), n_per_group=4)
    return PerturbationData.from_anndata(a, PerturbationSchema(context_cols=("cell_type",), control_labels=(control,)))


@pytest.mark.parametrize(("given", "read"), [("A+ctrl", "A"), ("ctrl+A", "A"), ("A + ctrl", "A"), ("A+B+ctrl", "A+B"),
                                             ("B+A+A", "A+B"), ("B + A", "A+B")])
def test_a_held_out_condition_written_as_the_file_writes_it_is_the_condition_loading_reads(given, read):
    """Loading reads a GEARS ``A+ctrl`` cell as ``A`` and ``A+A`` as ``A``; a ``test_conditions`` entry written the same way
    was refused ("cannot be held out; eligible: [...]") until the combinations round."""
    data = _data()
    assert set(data.conditions) == {"control", "A", "B", "C", "A+B", "B+C", "D+E"}
    kind = "unseen_single" if "+" not in read else "combo_seen2"
    split = make_split(data, kind=kind, seed=0, test_conditions=[given])
    assert read in split.test_conditions
    assert set(data.conditions[split.test]) >= {read}
    assert split.params["test_conditions"] == [read]  # recorded as held out


def test_a_held_out_condition_of_control_atoms_only_is_still_refused():
    with pytest.raises(Exception, match="cannot be held out"):
        make_split(_data(), kind="random_conditions", seed=0, test_conditions=["ctrl+ctrl"])


def test_combinations_in_either_order_make_one_held_out_condition_and_the_same_split():
    plain = _data(("ctrl", "A", "B", "C", "A+B", "B+C"))
    mixed = make_adata(conditions=("ctrl", "A", "B", "C", "A+B", "B+C"), contexts=("ct1",), batches=("b1",), n_per_group=4)
    lab = mixed.obs["condition"].astype(str).to_numpy().copy()
    rows = np.flatnonzero(lab == "B+C")
    lab[rows[::2]] = "C+B"
    mixed.obs["condition"] = lab
    mixed_data = PerturbationData.from_anndata(mixed, PerturbationSchema(context_cols=("cell_type",), control_labels=("ctrl",)))
    for seed in range(3):
        a = make_split(plain, kind="combo_seen2", seed=seed, test_frac=0.5)
        b = make_split(mixed_data, kind="combo_seen2", seed=seed, test_frac=0.5)
        assert np.array_equal(np.sort(a.test), np.sort(b.test)) and a.test_conditions == b.test_conditions


def test_labels_joined_by_a_hyphen_are_named_at_loading():
    """``A-B`` beside ``A`` and ``B`` with the default ``+``: read as one perturbation, as before, but now with the warning that
    ``A_B`` gets (the hyphen was not among the separators checked); a hyphenated gene name (``HLA-A``) is not a combination."""
    a = make_adata(conditions=("ctrl", "A", "B", "A-B", "HLA-A"), contexts=("ct1",), batches=("b1",), n_per_group=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = PerturbationData.from_anndata(a, PerturbationSchema(context_cols=("cell_type",), control_labels=("ctrl",)))
    assert "A-B" in set(data.conditions)
    said = [str(w.message) for w in caught if "look like combinations" in str(w.message)]
    assert len(said) == 1 and "'A-B'" in said[0] and "'-'" in said[0] and "HLA-A" not in said[0]


@pytest.mark.parametrize("written", ["saha+dexa+vehicle", "vehicle+saha+dexa", "saha+dexa+saha"])
def test_a_dose_per_slot_beside_a_condition_written_out_of_order_with_a_control_or_repeated_atom_is_refused(written):
    """Review of the combinations round: ``saha+dexa`` beside ``test_doses: '5+10'`` is refused (which atom is at 5 would read
    the other way round from the order written), but the same condition written with a control atom or a repeated atom
    (``saha+dexa+vehicle``), accepted since the round read such entries as loading does, slipped past that check and held out
    ``dexa@5+saha@10`` without a word (before the round the entry was refused as not a condition)."""
    from tests.data.test_dose_populations import SCHEMA, _combo_at

    pairs = ("1+1", "10+5", "100+100")  # saha+dexa, saha first: dexa@5+saha@10 is measured
    data = PerturbationData.from_anndata(_combo_at({"A549": pairs, "K562": pairs}), SCHEMA)
    with pytest.raises(InputDataError, match=r"write it 'dexa\+saha'"):
        make_split(data, "held_out_dose", test_conditions=[written], test_doses="5+10")
    ok = make_split(data, "held_out_dose", test_conditions=["dexa+saha+vehicle"], val_frac=0.0, test_doses="5+10")  # in order: read
    assert {c for c, _ in ok.test_groups} == {"dexa@5+saha@10"}


TRIPLES = ("ctrl", "A", "B", "C", "D", "A+B", "B+C", "A+B+C", "A+B+E", "C+D")


def test_combo_seen_says_how_triples_are_counted():
    """Review of the combinations round: ``combo_seen2`` (GEARS: a pair with both atoms seen) also held a triple with one
    atom never seen alone, and a triple with every atom seen was in no kind, without a word. Kept (docs/data.md), said
    when the data has combinations of three or more atoms."""
    data = _data(TRIPLES)
    with pytest.warns(DistgenWarning, match=r"combo_seen2 counts the atoms seen as singles.*'A\+B\+E' \(2 of 3 seen\)") as rec:
        split = make_split(data, kind="combo_seen2", seed=0, test_conditions=["A+B", "A+B+E"])
    assert "A+B+C" in str(rec[0].message) and "random_conditions" in str(rec[0].message)  # every atom seen: in no kind, named
    assert {"A+B", "A+B+E"} <= set(split.test_conditions)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pairs only: no word
        make_split(_data(("ctrl", "A", "B", "C", "A+B", "B+C")), kind="combo_seen2", seed=0)


@pytest.mark.parametrize("given", ["A++B", "A+B+", "+A+B", "A+ +B"])
def test_a_held_out_condition_with_an_empty_atom_is_refused_saying_so(given):
    """Leftover of the combinations round: ``A++B`` (loading reads such a label as ``A+B``) is refused, since an empty atom
    may be one left out (``A+C+B``); the refusal said only "cannot be held out; eligible: [...]"."""
    with pytest.raises(InputDataError, match=r"empty atom.*write 'A\+B' if that is meant"):
        make_split(_data(), kind="combo_seen2", seed=0, test_conditions=[given])


def test_a_held_out_context_or_condition_with_a_plus_that_is_no_delimiter_is_not_said_to_have_an_empty_atom():
    """Review of the combinations leftovers round: the empty-atom hint read ``+`` as the delimiter wherever a name was not
    found, so a context ``CD4+`` (cell types write ``+``) or a condition ``A+`` of data joined by ``_`` was said to have "an
    empty atom (two delimiters in a row, or one at an end)"; it is about conditions, split on the data's own delimiter."""
    a = make_adata(conditions=("ctrl", "A", "B", "A_B"), contexts=("CD4+ T", "CD8+ T"), batches=("b1",), n_per_group=4)
    data = PerturbationData.from_anndata(a, PerturbationSchema(context_cols=("cell_type",), control_labels=("ctrl",),
                                                               combo_delimiter="_"))
    with pytest.raises(InputDataError, match="cannot be held out") as ctx:
        make_split(data, kind="held_out_context", seed=0, test_contexts=["CD4+"])
    assert "empty atom" not in str(ctx.value)
    with pytest.raises(InputDataError, match="cannot be held out") as cond:
        make_split(data, kind="random_conditions", seed=0, test_conditions=["A+"])
    assert "empty atom" not in str(cond.value)
    with pytest.raises(InputDataError, match=r"empty atom.*write 'A_B' if that is meant"):  # the data's delimiter
        make_split(data, kind="combo_seen2", seed=0, test_conditions=["A__B"])
