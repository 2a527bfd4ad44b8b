"""Several doses per (condition, context): a population per dose, labelled ``atom@dose``.

sci-Plex (Srivatsan et al. 2020) measures each drug at four doses in three cell lines; such data was refused
(``check_one_dose``). Now each (condition, doses, context) is a population of its own: the model's input stays the atoms
with the dose as a number, the labels users see carry the dose (``dexa@10``, ``dexa@10+saha@100``).
"""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from distgen.data import Dataset, PerturbationData, PerturbationSchema, make_split
from distgen.data.conditions import dose_label, parse_dose_label
from distgen.data.doses import DoseError
from distgen.data.sampler import condition_groups
from distgen.errors import InputDataError, LabelError

DRUGS = ("dexa", "saha", "nutlin")
LEVELS = (1.0, 10.0, 100.0, 1000.0)
SCHEMA = PerturbationSchema(perturbation_col="drug", control_labels=("vehicle",), context_cols=("cell_line",), dose_col="dose",
                            perturbation_type="chemical")


def sciplex(n: int = 5, combo_dose: str = "100+10") -> ad.AnnData:
    """Vehicle (dose 0) and three drugs at four doses in two cell lines, and ``saha+dexa`` at a dose per slot."""
    rows = []
    for ct in ("A549", "K562"):
        rows += [("vehicle", ct, "0")] * (2 * n)
        rows += [(d, ct, f"{x:g}") for d in DRUGS for x in LEVELS for _ in range(n)]
        rows += [("saha+dexa", ct, combo_dose)] * n
    obs = pd.DataFrame(rows, columns=["drug", "cell_line", "dose"], index=[f"c{i}" for i in range(len(rows))])
    x = np.random.default_rng(0).poisson(3.0, (len(rows), 6)).astype(np.float32)
    return ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(6)]))


def _doses_of(data: PerturbationData, label: str) -> set[tuple[tuple[str, float], ...]]:
    out = set()
    for i in np.flatnonzero(data.conditions == label):
        ids = data.table.labels.perturbation[i].tolist()
        out.add(tuple((data.info.perturbations[j], float(d)) for j, d in zip(ids, data.table.labels.dose[i].tolist()) if j >= 0))
    return out


def test_each_dose_is_a_population_with_the_atoms_as_input_and_the_dose_a_number():
    data = PerturbationData.from_anndata(sciplex(), SCHEMA)
    assert data.dosed
    assert data.info.perturbations == ("dexa", "nutlin", "saha")  # the atoms, not one per dose
    pops = set(data.conditions.tolist())
    assert {f"{d}@{x:g}" for d in DRUGS for x in LEVELS} | {"control", "dexa@10+saha@100"} == pops
    assert _doses_of(data, "saha@1000") == {(("saha", 1000.0),)}
    assert _doses_of(data, "dexa@10+saha@100") == {(("dexa", 10.0), ("saha", 100.0))}  # per slot: saha+dexa at 100+10
    assert data.base_condition("dexa@10+saha@100") == "dexa+saha" and data.atoms_of("dexa@1") == ("dexa",)
    assert set(data.base_conditions[~data.is_control]) == {*DRUGS, "dexa+saha"}


@pytest.mark.parametrize("atoms,doses", [(("A",), (10.0,)), (("A", "B"), (1.0, 3.0)), (("A1", "A"), (0.1, 1e-7)), (("x@5",), (2.5e20,)),
                                         (("B", "A"), (1 / 3, 0.0))])
def test_a_population_label_reads_back_exactly_and_is_its_own_sorted_form(atoms, doses):
    label = dose_label(atoms, doses)
    assert "e" not in label.replace(atoms[0], "")  # positional: an exponent's '+' would read as a combination
    got = parse_dose_label(label)
    assert got is not None
    assert dict(zip(*got)) == dict(zip(atoms, doses))  # the very floats
    assert "+".join(sorted(label.split("+"))) == label  # readers that sort a label's parts leave it as it is


def test_the_delimiter_of_the_data_is_kept_and_predictions_use_plus():
    a = sciplex(combo_dose="100_10")
    a.obs["drug"] = a.obs["drug"].str.replace("+", "_", regex=False)
    data = PerturbationData.from_anndata(a, PerturbationSchema(**{**SCHEMA.to_dict(), "combo_delimiter": "_"}))
    assert "dexa@10_saha@100" in set(data.conditions)
    from distgen.data.prepared import cells_of

    assert "dexa@10+saha@100" in set(cells_of(data, np.arange(data.n_cells)).conditions)


def test_a_delimiter_that_a_dose_is_written_with_is_refused():
    a = sciplex(combo_dose="10")
    a.obs["drug"] = a.obs["drug"].str.replace("+", ".", regex=False)
    with pytest.raises(LabelError, match=r"combo_delimiter '\.' is written inside such labels"):
        PerturbationData.from_anndata(a, PerturbationSchema(**{**SCHEMA.to_dict(), "combo_delimiter": "."}))


@pytest.mark.parametrize("streamed", [False, True])
def test_a_perturbation_already_written_like_a_dose_label_is_refused(tmp_path, streamed):
    """At several doses ``x@5`` at dose 2 is labelled ``x@5@2``, and a user's ``x@5`` (``--perturbations``, ``--dose``,
    ``Dataset.labels``) would read as ``x`` at dose 5: refused at loading, naming the perturbation and a rename."""
    from distgen.data.disk import DiskCells

    a = sciplex()
    a.obs["drug"] = a.obs["drug"].astype(str).str.replace("nutlin", "nutlin@5", regex=False)
    with pytest.raises(LabelError, match=r"'nutlin@5'.*str\.replace\('@', '_at_'\)"):
        if streamed:
            a.write_h5ad(tmp_path / "d.h5ad")
            DiskCells(tmp_path / "d.h5ad", SCHEMA)
        else:
            PerturbationData.from_anndata(a, SCHEMA)
    fixed = a.copy()
    fixed.obs["drug"] = fixed.obs["drug"].astype(str).str.replace("@", "_at_")
    assert "nutlin_at_5@10" in set(PerturbationData.from_anndata(fixed, SCHEMA).conditions.tolist())  # the rename given loads
    one = a[(a.obs["dose"] == "10").to_numpy() | (a.obs["drug"] == "vehicle").to_numpy()].copy()  # one dose each: no dose labels
    assert "nutlin@5" in set(PerturbationData.from_anndata(one, SCHEMA).conditions.tolist())


def test_training_sets_are_drawn_per_dose():
    data = PerturbationData.from_anndata(sciplex(), SCHEMA)
    groups, _ = condition_groups(data.table)
    for g in groups:
        assert len(set(data.conditions[g.numpy()].tolist())) == 1  # one population each, never a mix of doses
    assert len(groups) == 2 * (len(DRUGS) * len(LEVELS) + 1)


def test_one_dose_per_condition_keeps_the_labels_and_the_groups():
    """A dose column with one dose per (condition, context) reads as before: labels without doses, the same groups."""
    a = sciplex()
    keep = (a.obs["dose"].isin(["0", "100", "100+10"])).to_numpy()
    one = PerturbationData.from_anndata(a[keep].copy(), SCHEMA)
    assert not one.dosed and set(one.conditions) == {"control", *DRUGS, "dexa+saha"}
    pooled = PerturbationData.from_anndata(a[keep].copy(), PerturbationSchema(**{**SCHEMA.to_dict(), "dose_col": None}))
    g1, f1 = condition_groups(one.table)
    g2, f2 = condition_groups(pooled.table)
    assert torch.equal(f1, f2) and all(torch.equal(x, y) for x, y in zip(g1, g2))


def test_bad_doses_are_refused_or_read_as_documented():
    a = sciplex()
    a.obs.loc[a.obs.index[(a.obs["drug"] == "dexa").to_numpy()][:2], "dose"] = np.nan  # a perturbed cell without a dose
    with pytest.raises(InputDataError, match=r"perturbed cells of dexa have no dose \(nan\); give every perturbed cell its dose"):
        PerturbationData.from_anndata(a, SCHEMA)
    a = sciplex()
    a.obs["dose"] = a.obs["dose"].astype(str) + "uM"  # units: refused, naming the fix
    a.obs.loc[(a.obs["drug"] == "saha+dexa").to_numpy(), "dose"] = "100+10"
    with pytest.raises(InputDataError, match=r"carries one \('uM'\).*str.replace\('uM', ''\).astype\(float\)"):
        PerturbationData.from_anndata(a, SCHEMA)
    a = sciplex()
    vehicle = (a.obs["drug"] == "vehicle").to_numpy()
    a.obs.loc[vehicle, "dose"] = np.where(np.arange(vehicle.sum()) % 2, "0.1", "0")  # controls' doses: no perturbation to dose
    data = PerturbationData.from_anndata(a, SCHEMA)
    assert set(data.conditions[data.is_control]) == {"control"}
    assert float(data.table.labels.dose[torch.from_numpy(data.is_control)].abs().sum()) == 0.0


def test_a_dose_beyond_float32_is_refused_not_read_as_inf(tmp_path):
    """Models read doses as float32: 1e39 is finite as a float but inf there, in the data and asked alike (it reached the
    dose tensors as inf); 1e21 and 1e-7 read as themselves."""
    a = sciplex()
    a.obs.loc[(a.obs["drug"] == "dexa").to_numpy() & (a.obs["dose"] == "1000").to_numpy(), "dose"] = "1e39"
    with pytest.raises(InputDataError, match="beyond the largest float32"):
        PerturbationData.from_anndata(a, SCHEMA)
    sciplex().write_h5ad(tmp_path / "d.h5ad")
    ds = Dataset.load({"dataset": str(tmp_path / "d.h5ad"), "schema": SCHEMA.to_dict(), "set_size": 4})
    with pytest.raises(DoseError, match="beyond the largest float32"):
        ds.labels(["dexa@10"], ["A549"], doses=[1e39])
    with pytest.warns(UserWarning):  # outside the training range
        assert ds.labels(["dexa@10", "dexa@10"], ["A549"] * 2, doses=[1e21, 1e-7]).dose[:, 0].tolist() == [
            float(np.float32(1e21)), float(np.float32(1e-7))]


@pytest.mark.parametrize("streamed", [False, True])
def test_two_doses_equal_as_float32_are_refused_naming_both(tmp_path, streamed):
    """1 and 1.0000000000000002 are two float64 doses, so two populations (``dexa@1``, ``dexa@1.0000000000000002``), but
    one float32, as which models read doses: the model would read them as one dose. Refused at loading, naming both."""
    from distgen.data.disk import DiskCells

    a = sciplex()
    dexa10 = np.flatnonzero(((a.obs["drug"] == "dexa") & (a.obs["dose"] == "10")).to_numpy())
    a.obs["dose"] = a.obs["dose"].astype(object)
    a.obs.iloc[dexa10[:3], a.obs.columns.get_loc("dose")] = "1.0000000000000002"  # three of dexa@10's cells in A549
    assert float("1.0000000000000002") != 1.0 and np.float32(float("1.0000000000000002")) == np.float32(1.0)
    with pytest.raises(InputDataError, match=r"'dexa' is at doses 1 and 1\.0000000000000002, distinct numbers but one float32.*round\(6\)"):
        if streamed:
            a.write_h5ad(tmp_path / "d.h5ad")
            DiskCells(tmp_path / "d.h5ad", SCHEMA)
        else:
            PerturbationData.from_anndata(a, SCHEMA)
    a.obs["dose"] = a.obs["dose"].astype(str).astype(object)  # (writing made it categorical)
    one = (a.obs["drug"] != "saha+dexa").to_numpy()  # the fix given (a single-dose column) loads, as one population
    a.obs.loc[one, "dose"] = a.obs.loc[one, "dose"].astype(float).round(6).astype(str)
    assert "dexa@1.0000000000000002" not in set(PerturbationData.from_anndata(a, SCHEMA).conditions.tolist())


def test_a_condition_split_holds_every_dose_of_a_held_out_condition():
    data = PerturbationData.from_anndata(sciplex(), SCHEMA)
    s = make_split(data, "random_conditions", test_conditions=["nutlin"], val_frac=0.2)
    assert set(s.test_conditions) == {f"nutlin@{x:g}" for x in LEVELS}
    assert not any(c.startswith("nutlin@") for c in (*s.train_conditions, *s.val_conditions))
    s.check_leakage(data)
    r = make_split(data, "random_conditions", seed=4, test_frac=0.5)
    held = {data.base_condition(c) for c in r.test_conditions}
    assert held and not held & {data.base_condition(c) for c in r.train_conditions}
    r.check_leakage(data)


def test_held_out_dose_holds_out_the_top_dose_in_each_context():
    data = PerturbationData.from_anndata(sciplex(), SCHEMA)
    s = make_split(data, "held_out_dose", test_conditions=["dexa", "saha"], val_frac=0.0)
    assert set(s.test_groups) == {(f"{d}@1000", k) for d in ("dexa", "saha") for k in ("A549", "K562")}
    assert {"dexa@100", "saha@1", "nutlin@1000"} <= set(s.train_conditions)
    s.check_leakage(data)
    picked = make_split(data, "held_out_dose", seed=1, test_frac=0.3)  # a third of the drugs, chosen by the seed
    assert len({data.base_condition(c) for c in picked.test_conditions}) == 1
    with pytest.raises(InputDataError, match="'held_out_dose' needs conditions measured at several doses"):
        one = sciplex()
        make_split(PerturbationData.from_anndata(one[one.obs["dose"].isin(["0", "10", "100+10"]).to_numpy()].copy(), SCHEMA), "held_out_dose")


def test_a_held_out_dose_trained_in_another_context_is_warned_about():
    """held_out_dose works per context: a cell line where dexa was measured at 1000 only trains dexa@1000, so the model has
    seen the drug at the held-out dose of the other lines. The split stays (the user's choice) and a warning names it."""
    import warnings

    from distgen.errors import DistgenWarning

    a = sciplex()
    hek = a[(a.obs["cell_line"] == "A549").to_numpy() & a.obs["dose"].isin(["0", "1000"]).to_numpy()].copy()
    hek.obs["cell_line"] = "HEK"
    hek = hek[(hek.obs["drug"] != "saha").to_numpy()].copy()
    hek.obs_names = [f"h{i}" for i in range(hek.n_obs)]
    data = PerturbationData.from_anndata(ad.concat([a, hek]), SCHEMA)
    with pytest.warns(DistgenWarning, match=r"dexa@1000 held out in A549, K562 trains in HEK"):
        s = make_split(data, "held_out_dose", test_conditions=["dexa"], val_frac=0.0)
    assert ("dexa@1000", "HEK") not in set(s.test_groups) and ("dexa@1000", "A549") in set(s.test_groups)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DistgenWarning)
        make_split(PerturbationData.from_anndata(sciplex(), SCHEMA), "held_out_dose", test_conditions=["dexa"], val_frac=0.0)


def test_labels_take_the_dose_of_the_population_label(tmp_path):
    sciplex().write_h5ad(tmp_path / "s.h5ad")
    ds = Dataset.load({"dataset": str(tmp_path / "s.h5ad"), "schema": SCHEMA.to_dict(), "set_size": 4,
                       "split": {"kind": "held_out_dose", "test_conditions": ["dexa"], "val_frac": 0.0}})
    lab = ds.labels(["dexa@10", "dexa@10+saha@100"], ["A549", "K562"], ["all", "all"])
    assert lab.dose[0, 0].item() == 10.0 and sorted(lab.dose[1, :2].tolist()) == [10.0, 100.0]
    assert ds.data.labels_for(["saha@100"], ["A549"]).dose[0, 0].item() == 100.0
    with pytest.raises(DoseError, match=r"dexa was measured at 4 doses in A549 \(1, 10, 100, 1000\).*\(dexa@1000\)"):
        ds.labels(["dexa"], ["A549"], ["all"])  # which dose? never a guess
    assert ds.labels(["dexa"], ["A549"], ["all"], doses=[30.0]).dose[0, 0].item() == 30.0


@pytest.mark.parametrize("kind,kw,held", [
    ("held_out_context_perturbation", {"test_groups": [("dexa", "A549")]}, {("dexa", "A549")}),
    ("unseen_single", {"test_conditions": ["dexa"]}, {("dexa", k) for k in ("A549", "K562")} | {("dexa+saha", k) for k in ("A549", "K562")}),
    ("combo_seen2", {}, {("dexa+saha", k) for k in ("A549", "K562")}),
    ("held_out_context", {"test_contexts": ["K562"]}, {(c, "K562") for c in (*DRUGS, "dexa+saha")}),
])
def test_every_condition_kind_holds_out_a_condition_at_all_its_doses(kind, kw, held):
    data = PerturbationData.from_anndata(sciplex(), SCHEMA)
    s = make_split(data, kind, seed=1, **kw)
    s.check_leakage(data)
    assert {(data.base_condition(c), k) for c, k in s.test_groups} == held
    doses = {data.base_condition(c): set() for c, _ in s.test_groups}
    for c, _ in s.test_groups:
        doses[data.base_condition(c)].add(c)
    assert all(len(v) == (1 if "+" in b else len(LEVELS)) for b, v in doses.items())  # every dose of each held-out condition


def test_held_out_dose_interpolates_interior_or_listed_doses_and_records_them(tmp_path):
    """``test_doses``: ``interior`` holds out the doses between a condition's lowest and highest (interpolation), a list
    the doses named; the lowest and highest (or the others) train. Left out, the split and its record are as before."""
    from distgen.data.split import LeakageError, Split

    data = PerturbationData.from_anndata(sciplex(), SCHEMA)
    inner = make_split(data, "held_out_dose", test_conditions=["dexa"], val_frac=0.0, test_doses="interior")
    assert set(inner.test_groups) == {(f"dexa@{x:g}", k) for x in LEVELS[1:-1] for k in ("A549", "K562")}
    assert {f"dexa@{LEVELS[0]:g}", f"dexa@{LEVELS[-1]:g}"} <= set(inner.train_conditions)
    inner.check_leakage(data)
    assert Split.load(inner.save(tmp_path / "s.json")).params["test_doses"] == "interior"
    listed = make_split(data, "held_out_dose", test_conditions=["dexa", "saha"], val_frac=0.0, test_doses=[10, 1000.0])
    assert set(listed.test_groups) == {(f"{d}@{x}", k) for d in ("dexa", "saha") for x in (10, 1000) for k in ("A549", "K562")}
    assert listed.params["test_doses"] == [10.0, 1000.0]
    listed.check_leakage(data)
    assert make_split(data, "held_out_dose", test_conditions=["dexa"], test_doses=10).test_groups == (("dexa@10", "A549"), ("dexa@10", "K562"))
    default = make_split(data, "held_out_dose", test_conditions=["dexa"])
    assert "test_doses" not in default.params  # the default's record (and hash) is the one made before test_doses existed
    assert set(default.test_groups) == set(make_split(data, "held_out_dose", test_conditions=["dexa"], test_doses="top").test_groups)
    # a split whose held-out dose is not where its record says is refused by the leakage check
    forged = Split.from_dict({**listed.to_dict(), "params": {**listed.params, "test_doses": "interior"}})
    with pytest.raises(LeakageError, match=r"'dexa@1000' in A549 is not between the training doses"):
        forged.check_leakage(data)


def test_impossible_dose_hold_outs_are_refused_naming_the_fix():
    data = PerturbationData.from_anndata(sciplex(), SCHEMA)
    with pytest.raises(InputDataError, match=r"test_doses 300 is not a measured dose of 'dexa' \(measured at 1, 10, 100, 1000 in A549.*give doses it was measured at"):
        make_split(data, "held_out_dose", test_conditions=["dexa"], test_doses=[10, 300])
    with pytest.raises(InputDataError, match=r"would hold out every dose of 'dexa' in A549 \(1, 10, 100, 1000\).*hold out fewer doses"):
        make_split(data, "held_out_dose", test_conditions=["dexa"], test_doses=list(LEVELS))
    two = sciplex()
    two = PerturbationData.from_anndata(two[two.obs["dose"].isin(["0", "10", "1000", "100+10"]).to_numpy()].copy(), SCHEMA)
    with pytest.raises(InputDataError, match=r"'dexa' has no interior dose \(measured at 10, 1000 in A549; 10, 1000 in K562\).*test_doses: top"):
        make_split(two, "held_out_dose", test_conditions=["dexa"], test_doses="interior")
    with pytest.raises(InputDataError, match="no condition is measured at three doses or more"):
        make_split(two, "held_out_dose", test_doses="interior")
    with pytest.raises(ValueError, match="test_doses applies to split kind 'held_out_dose' only"):
        make_split(data, "random_conditions", test_doses="interior")
    with pytest.raises(ValueError, match=r"test_doses must be 'top'.*'interior'.*a number or a list"):
        make_split(data, "held_out_dose", test_doses="middle")
    from distgen.config import ConfigError
    from distgen.data.section import check_split_values

    with pytest.raises(ConfigError, match=r"data\.split\.test_doses must be"):
        check_split_values({"kind": "held_out_dose", "test_doses": "middle"})
    with pytest.raises(ConfigError, match="test_doses applies to split kind 'held_out_dose' only"):
        check_split_values({"kind": "random_conditions", "test_doses": [10]})


def test_an_interior_dose_of_a_combination_lies_between_two_training_doses_in_every_slot(tmp_path):
    """``dexa@1+saha@1000`` sorts between ``dexa@1+saha@1`` and ``dexa@1000+saha@1`` as a tuple of doses, but its saha is
    above both: it was held out as 'interior' (interpolation) and passed the leakage check. Of a combination, an interior
    dose is one between two others in every slot; a split claiming otherwise is refused."""
    from distgen.data.split import LeakageError

    a = sciplex()
    combo = np.flatnonzero((a.obs["drug"] == "saha+dexa").to_numpy())
    a.obs["dose"] = a.obs["dose"].astype(str).astype(object)
    a = ad.concat([a, *(a[combo].copy() for _ in range(4))], index_unique="-")  # saha+dexa at five dose pairs
    combo = np.flatnonzero((a.obs["drug"] == "saha+dexa").to_numpy())
    for i, dose in enumerate(("1+1", "1000+1", "1+1000", "10+10", "100+100")):  # saha+dexa: saha's dose first
        a.obs.iloc[combo[i::5], a.obs.columns.get_loc("dose")] = dose
    data = PerturbationData.from_anndata(a, SCHEMA)
    s = make_split(data, "held_out_dose", test_conditions=["dexa+saha"], val_frac=0.0, test_doses="interior")
    # was the middle of the tuples in order: dexa@1+saha@1000 and dexa@100+saha@100 too, above every other in a slot
    assert set(s.test_groups) == {("dexa@10+saha@10", k) for k in ("A549", "K562")}
    s.check_leakage(data)
    forged = _forged(data, {("dexa@1000+saha@1", k) for k in ("A549", "K562")}, {"test_doses": "interior"})  # not between
    with pytest.raises(LeakageError, match=r"'dexa@1000\+saha@1' in A549 is not between the training doses"):
        forged.check_leakage(data)
    corner = a[~a.obs["dose"].isin(["10+10", "100+100"]).to_numpy()].copy()  # three pairs, none between two others in both slots
    with pytest.raises(InputDataError, match=r"'dexa\+saha' has no interior dose.*between two others in every slot"):
        make_split(PerturbationData.from_anndata(corner, SCHEMA), "held_out_dose", test_conditions=["dexa+saha"], test_doses="interior")


def test_listed_doses_match_a_float32_dose_column():
    """A dose column stored as float32 (as h5ad files often hold it) labels 0.3 as ``dexa@0.30000001192092896``; a listed
    ``test_doses: [0.3]`` was refused as 'not a measured dose (measured at ..., 0.30000001192092896, ...)'. Doses are matched
    as models read them, float32 (two doses one float32 apart are refused at loading, so the match is unambiguous)."""
    a = sciplex()
    a = a[~a.obs["dose"].astype(str).str.contains("+", regex=False).to_numpy()].copy()
    a.obs["dose"] = a.obs["dose"].astype(str).map({"0": 0.0, "1": 0.1, "10": 0.3, "100": 3.3, "1000": 30.0}).astype(np.float32)
    data = PerturbationData.from_anndata(a, SCHEMA)
    s = make_split(data, "held_out_dose", test_conditions=["dexa"], val_frac=0.0, test_doses=[0.3])
    # the label is dexa@0.3 (its text reads back as the float32 the model reads: docs/data.md "Doses")
    assert {tuple(np.float32(x) for x in data.dose_of(c)[1]) for c, _ in s.test_groups} == {(np.float32(0.3),)}
    assert s.params["test_doses"] == [0.3]  # recorded as asked
    s.check_leakage(data)
    with pytest.raises(InputDataError, match=r"test_doses 0\.4 is not a measured dose of 'dexa'"):
        make_split(data, "held_out_dose", test_conditions=["dexa"], test_doses=[0.3, 0.4])


def test_a_held_out_lowest_dose_is_warned_about_as_below_the_training_doses(tmp_path):
    """``test_doses: [1]`` holds out the lowest dose; predicting it at its own dose was worded 'a held-out top dose'."""
    from distgen.data.doses import DoseExtrapolationWarning

    sciplex().write_h5ad(tmp_path / "s.h5ad")
    ds = Dataset.load({"dataset": str(tmp_path / "s.h5ad"), "schema": SCHEMA.to_dict(), "set_size": 4,
                       "split": {"kind": "held_out_dose", "test_conditions": ["dexa"], "val_frac": 0.0, "test_doses": [1]}})
    with pytest.warns(DoseExtrapolationWarning, match=r"dexa measured at 1, .*a held-out dose below every training dose") as seen:
        ds.labels(["dexa@1"], ["A549"], ["all"])
    assert not any("a held-out top dose" in str(w.message) for w in seen)


def _combo_at(pairs_by_context: dict[str, tuple[str, ...]]) -> ad.AnnData:
    """``sciplex()`` with ``saha+dexa`` in each cell line at the dose pairs given (written saha's dose first)."""
    a = sciplex()
    a.obs["dose"] = a.obs["dose"].astype(str).astype(object)
    keep = (a.obs["drug"] != "saha+dexa").to_numpy()
    parts = [a[keep].copy()]
    for ct, pairs in pairs_by_context.items():
        one = a[((a.obs["drug"] == "saha+dexa") & (a.obs["cell_line"] == ct)).to_numpy()]
        for dose in pairs:
            b = one.copy()
            b.obs["dose"] = dose
            b.obs_names = [f"{n}-{ct}-{dose}" for n in b.obs_names]
            parts.append(b)
    return ad.concat(parts)


def _forged(data: PerturbationData, held: set[tuple[str, str]], params: dict) -> "object":
    """A held_out_dose split holding out exactly the populations ``held`` (as an edited split file would)."""
    from distgen.data.split import Split

    test = np.array([(c, k) in held for c, k in zip(data.conditions.tolist(), data.contexts.tolist())])
    real = make_split(data, "held_out_dose", test_conditions=["dexa"], val_frac=0.0)
    conds = lambda m: sorted(set(data.conditions[m & ~data.is_control].tolist()))  # noqa: E731
    return Split.from_dict({**real.to_dict(), "params": {**real.params, **params}, "train": np.flatnonzero(~test).tolist(),
                            "val": [], "test": np.flatnonzero(test).tolist(), "train_conditions": conds(~test),
                            "val_conditions": [], "test_conditions": conds(test), "test_groups": sorted(map(list, held))})


def test_the_top_dose_of_a_combination_is_above_every_other_in_every_slot():
    """``test_doses: top`` took a combination's last dose tuple in order: of ``dexa+saha`` at (1, 1), (1, 1000) and
    (1000, 1) it held out ``dexa@1000+saha@1``, below ``dexa@1+saha@1000`` in saha, and the leakage check agreed (tuples
    again). The top dose is now judged slot by slot, as ``interior`` is: the population at the highest dose of every slot
    at once; a context without one trains every dose, a condition without one anywhere is refused by name, never picked."""
    from distgen.data.split import LeakageError

    corner = ("1+1", "1+1000", "1000+1")  # saha+dexa: saha's dose first
    data = PerturbationData.from_anndata(_combo_at({"A549": corner, "K562": (*corner, "1000+1000")}), SCHEMA)
    s = make_split(data, "held_out_dose", test_conditions=["dexa+saha"], val_frac=0.0)
    assert set(s.test_groups) == {("dexa@1000+saha@1000", "K562")}  # A549 has no top: its three pairs train
    assert {"dexa@1000+saha@1", "dexa@1+saha@1000"} <= set(s.train_conditions)
    s.check_leakage(data)
    only_corner = PerturbationData.from_anndata(_combo_at({"A549": corner, "K562": corner}), SCHEMA)
    with pytest.raises(InputDataError, match=r"'dexa\+saha' has no top dose \(measured at 1\+1, 1\+1000, 1000\+1 in A549.*test_conditions"):
        make_split(only_corner, "held_out_dose", test_conditions=["dexa+saha"])
    for seed in range(6):  # drawn by test_frac: never a condition without a top dose
        picked = make_split(only_corner, "held_out_dose", seed=seed, test_frac=0.9, val_frac=0.0)
        assert "dexa+saha" not in {only_corner.base_condition(c) for c in picked.test_conditions}
        picked.check_leakage(only_corner)
    forged = _forged(only_corner, {("dexa@1000+saha@1", k) for k in ("A549", "K562")}, {})
    with pytest.raises(LeakageError, match=r"'dexa@1000\+saha@1' in A549 as the top dose.*higher in 'saha'"):
        forged.check_leakage(only_corner)


def test_listed_doses_of_a_combination_are_given_per_slot(tmp_path):
    """``test_doses`` had no way to name ``dexa@5+saha@10``: a number matched a combination only with every atom at it. A
    dose per slot is written ``'d1+d2'``, in the order of the population label (atoms sorted as text), recorded so, matched
    as float32 slot by slot and held to by the leakage check; the wrong count, a bad part, or a combination written in
    another order beside it is refused naming the fix."""
    from distgen.data.split import Split

    pairs = ("1+1", "10+5", "100+100")  # saha+dexa, saha first: dexa@1+saha@1, dexa@5+saha@10, dexa@100+saha@100
    data = PerturbationData.from_anndata(_combo_at({"A549": pairs, "K562": pairs}), SCHEMA)
    s = make_split(data, "held_out_dose", test_conditions=["dexa+saha", "dexa"], val_frac=0.0, test_doses=["5+10", 1000])
    assert set(s.test_groups) == {(c, k) for c in ("dexa@5+saha@10", "dexa@1000") for k in ("A549", "K562")}
    assert s.params["test_doses"] == [1000.0, "5+10"]
    s.check_leakage(data)
    assert Split.load(s.save(tmp_path / "s.json")).params["test_doses"] == [1000.0, "5+10"]
    with pytest.raises(InputDataError, match=r"test_doses 10\+5 is not a measured dose of 'dexa\+saha' \(measured at 1\+1, 5\+10, 100\+100 in A549"):
        make_split(data, "held_out_dose", test_conditions=["dexa+saha"], test_doses="10+5")  # saha's dose first: not measured
    with pytest.raises(InputDataError, match=r"test_conditions writes 'saha\+dexa': write it 'dexa\+saha'"):
        make_split(data, "held_out_dose", test_conditions=["saha+dexa"], test_doses="5+10")
    with pytest.raises(InputDataError, match=r"names no dose of 'dexa', a condition of 1 atoms"):
        make_split(data, "held_out_dose", test_conditions=["dexa"], test_doses="5+10")
    for bad in ("5+", "5+ten", "1_0+5", ["5+10", True]):
        with pytest.raises(ValueError, match=r"of a combination, also 'd1\+d2'"):
            make_split(data, "held_out_dose", test_conditions=["dexa+saha"], test_doses=bad)
    drawn = make_split(data, "held_out_dose", seed=0, test_frac=0.01, val_frac=0.0, test_doses="5+10")  # only dexa+saha fits
    assert {data.base_condition(c) for c in drawn.test_conditions} == {"dexa+saha"}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_held_out_dose_of_a_float_column_is_worded_as_measured(tmp_path, dtype):
    """A float64 dose column's 0.1 is labelled ``dexa@0.1`` and recorded as the float32 the model reads
    (0.10000000149011612): held out by ``test_doses: [0.1]`` and asked by its label, it was worded as a dose a caller
    chose ('dexa asked at 0.1 ... no measured cell checks it') though its measured cells score it. Compared as float32."""
    import warnings

    from distgen.data.doses import DoseExtrapolationWarning

    a = sciplex()
    a = a[~a.obs["dose"].astype(str).str.contains("+", regex=False).to_numpy()].copy()
    a.obs["dose"] = a.obs["dose"].astype(str).map({"0": 0.0, "1": 0.1, "10": 0.3, "100": 3.3, "1000": 30.0}).astype(dtype)
    a.write_h5ad(tmp_path / "s.h5ad")
    ds = Dataset.load({"dataset": str(tmp_path / "s.h5ad"), "schema": SCHEMA.to_dict(), "set_size": 4,
                       "split": {"kind": "held_out_dose", "test_conditions": ["dexa"], "val_frac": 0.0, "test_doses": [0.1]}})
    lowest = min((c for c in set(ds.data.conditions) if c.startswith("dexa@")), key=lambda c: ds.data.dose_of(c)[1])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ds.labels([lowest], ["A549"], ["all"])
    said = [str(w.message) for w in seen if issubclass(w.category, DoseExtrapolationWarning)]
    assert len(said) == 1 and "populations predicted at their own measured dose" in said[0] and "asked at" not in said[0], said
    with warnings.catch_warnings(record=True) as seen:  # a training dose asked by a caller is inside the range, as float32
        warnings.simplefilter("always")
        ds.labels(["dexa"], ["A549"], ["all"], doses=[0.3])
    assert not [w for w in seen if issubclass(w.category, DoseExtrapolationWarning)]


def test_doses_per_slot_are_refused_where_the_label_writes_the_atoms_in_another_order():
    """A dose per slot ('d1+d2') is read in the order of the condition's atoms sorted as text. Where one atom's name
    starts another's and goes on with a character that sorts below '@' (dexa, dexa2), the population label writes them the
    other way round (``dexa2@10+dexa@5``, the parts sorted with their doses): '10+5', written in the label's order, held
    out ``dexa2@5+dexa@10``, another population, without a word. Such a condition's unequal per-slot doses are refused,
    naming the order they are read in; equal doses ('5+5') and other conditions are unaffected."""
    a = sciplex()
    a.obs["dose"] = a.obs["dose"].astype(str).astype(object)
    a.obs["drug"] = a.obs["drug"].astype(str).replace({"saha": "dexa2", "saha+dexa": "dexa2+dexa"}).astype(object)
    one = a[(a.obs["drug"] == "dexa2+dexa").to_numpy()]
    parts = [a[(a.obs["drug"] != "dexa2+dexa").to_numpy()].copy()]
    for dose in ("1+1", "5+10", "10+5", "100+100"):  # dexa2+dexa: dexa2's dose first
        b = one.copy()
        b.obs["dose"] = dose
        b.obs_names = [f"{n}-{dose}" for n in b.obs_names]
        parts.append(b)
    data = PerturbationData.from_anndata(ad.concat(parts), SCHEMA)
    assert "dexa2@10+dexa@5" in set(data.conditions) and data.dose_of("dexa2@10+dexa@5") == (("dexa", "dexa2"), (5.0, 10.0))
    with pytest.raises(InputDataError, match=r"per slot \(10\+5\), read in the order dexa, dexa2 .*labels of 'dexa\+dexa2' write them in another order \('dexa2@"):
        make_split(data, "held_out_dose", test_conditions=["dexa+dexa2"], val_frac=0.0, test_doses="10+5")
    with pytest.raises(InputDataError, match=r"'dexa\+dexa2'"):  # drawn: the same condition would be read the same way
        make_split(data, "held_out_dose", seed=0, test_frac=0.01, val_frac=0.0, test_doses="10+5")
    equal = make_split(data, "held_out_dose", test_conditions=["dexa+dexa2"], val_frac=0.0, test_doses="100+100")
    assert {c for c, _ in equal.test_groups} == {"dexa2@100+dexa@100"}


@pytest.mark.parametrize("text", ["'5+10'", "['5+10']", "[1000, '5+10']", "[5+10]"])
def test_a_config_names_doses_per_slot_as_the_docs_write_them(tmp_path, text):
    """``data.split.test_doses: [1000, '5+10']`` (docs/data.md's form) was refused by the config's check of make_split's
    signature ('expected str | float | Sequence[float] | None, got list'): only a bare '5+10' passed. A list may hold them."""
    import yaml

    pairs = ("1+1", "10+5", "100+100")  # saha+dexa, saha first: dexa@5+saha@10
    _combo_at({"A549": pairs, "K562": pairs}).write_h5ad(tmp_path / "d.h5ad")
    held = ["dexa+saha", "dexa"] if "1000" in text else ["dexa+saha"]
    split = {"kind": "held_out_dose", "test_conditions": held, "val_frac": 0.0, **yaml.safe_load(f"test_doses: {text}")}
    ds = Dataset.load({"dataset": str(tmp_path / "d.h5ad"), "schema": SCHEMA.to_dict(), "set_size": 4, "split": split})
    assert ("dexa@5+saha@10", "A549") in set(ds.split.test_groups)


def test_a_split_file_holding_out_a_combination_top_dose_by_tuple_order_is_refused_saying_so():
    """A split file made before the top dose of a combination was judged slot by slot holds out its last dose pair in tuple
    order (``dexa@1000+saha@1`` of (1, 1), (1, 1000), (1000, 1)). The leakage check refused it, guessing at 'edited or the data
    changed (or ... tuples)'; it now says what happened: which pair trains higher in which atom, that the split was made by
    tuple order, and how to remake it. A held-out pair that is not the last in tuple order keeps the generic refusal."""
    from distgen.data.split import LeakageError

    corner = ("1+1", "1+1000", "1000+1")  # saha+dexa: saha's dose first
    data = PerturbationData.from_anndata(_combo_at({"A549": corner, "K562": corner}), SCHEMA)
    old = _forged(data, {("dexa@1000+saha@1", k) for k in ("A549", "K562")}, {})
    with pytest.raises(LeakageError, match=r"holds out 'dexa@1000\+saha@1' in A549 as the top dose of 'dexa\+saha', but 'dexa\+saha' "
                                           r"trains there at 1\+1000 \(dexa\+saha\), higher in 'saha' \(1000 against 1\): the split was "
                                           r"made by a distgen that took .* tuple order.*Make the split again from its data\.split settings"):
        old.check_leakage(data)
    edited = _forged(data, {("dexa@1+saha@1000", k) for k in ("A549", "K562")}, {})  # not last in tuple order: not that story
    with pytest.raises(LeakageError, match=r"is not above the training doses.*the file was edited or the data changed"):
        edited.check_leakage(data)


def test_a_float32_dose_is_labelled_by_its_shortest_float32_text_and_two_float32_doses_never_share_a_label(tmp_path):
    """A float32 dose column labelled 0.3 as ``dexa@0.30000001192092896`` (the float64 of the float32). Its label is the
    shortest text that reads back as that float32, ``dexa@0.3``; in memory and streamed alike, with the data hash of the
    long labels that earlier split files and runs store. Any dose's text read back (as float64, then float32, as labels are
    read) is its float32, so two doses that differ in float32 never share a label; two that are one float32 (0.3 and
    0.30000001192092896 written in one column) are refused at loading, named apart."""
    from distgen.data.conditions import dose_label, dose_text
    from distgen.data.disk import DiskCells
    from distgen.data.disk_split import DiskLabels

    rng = np.random.default_rng(0)
    bits = rng.integers(0, 0x7F800000, 20000, dtype=np.uint32).view(np.float32)  # every finite non-negative float32
    singles = np.concatenate([bits, np.float32([0.1, 0.3, 3.3, 1e-7, 16777217.0, 3.4e38])])
    wide = np.concatenate([rng.random(5000) * 10.0 ** rng.integers(-8, 9, 5000), [0.3, 0.1 + 0.2]])
    for d in [*map(float, singles), *map(float, wide)]:
        text = dose_text(d)
        assert np.float32(float(text)) == np.float32(d) and "e" not in text.lower() and "+" not in text
    texts = {dose_text(float(x)) for x in singles}
    assert len(texts) == len(set(singles.tolist()))  # one label per float32
    assert [dose_text(float(np.float32(x))) for x in (0.3, 3.3, 0.1, 30.0)] == ["0.3", "3.3", "0.1", "30"]
    assert dose_text(0.1 + 0.2) == "0.30000000000000004" and dose_text(0.3) == "0.3"  # float64 doses as before
    assert dose_label(["saha", "dexa"], [float(np.float32(3.3)), float(np.float32(0.3))]) == "dexa@0.3+saha@3.3"

    a = sciplex()
    a = a[~a.obs["dose"].astype(str).str.contains("+", regex=False).to_numpy()].copy()
    a.obs["dose"] = a.obs["dose"].astype(str).map({"0": 0.0, "1": 0.1, "10": 0.3, "100": 3.3, "1000": 30.0}).astype(np.float32)
    a.write_h5ad(tmp_path / "f.h5ad")
    data = PerturbationData.from_anndata(a, SCHEMA)
    disk = DiskCells(tmp_path / "f.h5ad", SCHEMA)
    short = {f"{d}@{x}" for d in DRUGS for x in ("0.1", "0.3", "3.3", "30")}
    assert set(data.conditions.tolist()) - {"control"} == short == set(disk.condition_names.tolist()) - {"control"}
    assert _doses_of(data, "dexa@0.3") == {(("dexa", float(np.float32(0.3))),)}  # the model's dose is the float32 itself
    assert DiskLabels(disk).cells_hash == data.cells_hash
    assert data.legacy_labels["dexa@0.3"] == "dexa@0.30000001192092896" and "nutlin@30" not in data.legacy_labels

    a.obs["dose"] = a.obs["dose"].astype(float).astype(str).astype(object)  # 0.3 and the float64 of its float32, one column
    dexa = np.flatnonzero(((a.obs["drug"] == "dexa") & (a.obs["dose"] == "0.30000001192092896")).to_numpy())
    a.obs.iloc[dexa[:3], a.obs.columns.get_loc("dose")] = "0.3"
    with pytest.raises(InputDataError, match=r"'dexa' is at doses 0\.3 and 0\.30000001192092896, distinct numbers but one float32"):
        PerturbationData.from_anndata(a, SCHEMA)


def test_a_split_of_data_without_doses_keeps_labels_that_read_as_long_float32_doses(tmp_path):
    """Data with one dose per condition (or no dose column) keeps its labels as written, ``@`` and digits included: a
    perturbation named ``dexa@0.30000001192092896`` (an earlier distgen's prediction used as data, say) is no dose label,
    and its split file must load and pass the leakage check. ``Split.load`` rewrote it to ``dexa@0.3`` (the form of now of
    an earlier float32 dose label) whatever the data, so a split just made and saved was refused ('test_groups do not
    match the conditions of its test cells'); the labels of a split are rewritten only against data at several doses."""
    from distgen.data.split import Split

    rows = []
    for ct in ("A549", "K562"):
        rows += [("vehicle", ct)] * 10 + [(d, ct) for d in ("dexa@0.30000001192092896", "saha@1", "tp53") for _ in range(5)]
    obs = pd.DataFrame(rows, columns=["drug", "cell_line"], index=[f"c{i}" for i in range(len(rows))])
    a = ad.AnnData(X=np.random.default_rng(0).poisson(3.0, (len(rows), 6)).astype(np.float32), obs=obs,
                   var=pd.DataFrame(index=[f"g{i}" for i in range(6)]))
    schema = PerturbationSchema(perturbation_col="drug", control_labels=("vehicle",), context_cols=("cell_line",),
                                perturbation_type="chemical")
    data = PerturbationData.from_anndata(a, schema)
    assert not data.dosed and "dexa@0.30000001192092896" in set(data.conditions)
    split = make_split(data, "random_conditions", test_conditions=["dexa@0.30000001192092896"], val_frac=0.0)
    split.check_leakage(data)
    split.save(tmp_path / "s.json")
    loaded = Split.load(tmp_path / "s.json")
    loaded.check_leakage(data)
    assert loaded.test_conditions == ("dexa@0.30000001192092896",)
    a.write_h5ad(tmp_path / "a.h5ad")
    assert Dataset.load({"dataset": str(tmp_path / "a.h5ad"), "schema": schema.to_dict(), "split": str(tmp_path / "s.json"), "set_size": 4}
                        ).split.test_conditions == ("dexa@0.30000001192092896",)


def test_current_label_rewrites_only_the_dose_text_of_an_earlier_float32_dose_label():
    """``current_label`` turns a label as the earlier ``dose_label`` wrote a float32 dose into the one of now, and leaves
    any other text: a float64 dose of 17 digits, ``10.0``, a unit, and a number with an exponent, which no dose label
    holds (``1.100000023841858e-05``'s mantissa is a float32's long text: it was rewritten to ``1.1e-05``). Idempotent;
    a label of now is never changed."""
    from distgen.data.conditions import current_label, dose_label, legacy_dose_label

    assert current_label("dexa@0.30000001192092896+saha@1") == "dexa@0.3+saha@1"
    assert current_label("dexa@0.30000001192092896 @ A549") == "dexa@0.3 @ A549"  # a metrics row in a context
    assert current_label("n@-0.30000001192092896") == "n@-0.3"
    for kept in ("x@0.30000000000000004", "dexa@10.0", "a@10uM", "x@1e-05", "x@1.100000023841858e-05", "x@1.100000023841858E5",
                 "control", "dexa", "x@0.3", "TP53@chr1:0.30000001192092896"):
        assert current_label(kept) == kept, kept
    rng = np.random.default_rng(1)
    singles = rng.integers(0, 0x7F800000, 3000, dtype=np.uint32).view(np.float32)
    for x in map(float, singles):
        old, now = legacy_dose_label(["b", "a"], [x, 1.0]), dose_label(["b", "a"], [x, 1.0])
        assert current_label(old) == now and current_label(now) == now
    for x in rng.random(1000) * 10.0 ** rng.integers(-8, 9, 1000):
        assert current_label(dose_label(["a"], [float(x)])) == dose_label(["a"], [float(x)])
