"""The closed-form baselines on data at several doses per condition (a population per dose, ``docs/data.md`` "Doses").

``additive`` and ``matching_mean`` read the dose asked: an atom's effect alone at that dose, or at its nearest training
dose (a held-out highest dose from the next one down), never its doses pooled; the others are dose-blind, and every
reference scored on such data says which rule it follows (a note per baseline in the report).
"""

import numpy as np
import pytest
import torch

from distgen.data import Dataset
from distgen.models.baselines.additive import AdditiveBaseline
from distgen.models.baselines.effects import condition_effects, is_dosed, nearest_dose
from distgen.models.baselines.matching_mean import MatchingMeanBaseline
from distgen.pipeline.references import dataset_references

from ..data.test_dose_populations import SCHEMA, sciplex

SPLIT = {"kind": "held_out_dose", "test_conditions": ["dexa"], "val_frac": 0.0, "seed": 0}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    a = sciplex(n=6)
    dexa = (a.obs["drug"] == "dexa").to_numpy()
    dose = a.obs["dose"][dexa].astype(float).to_numpy()
    a.X[dexa, 0] += 5 * np.log10(dose).astype(np.float32)  # dexa raises g0 by 0, 5, 10, 15 counts with its dose
    path = tmp_path_factory.mktemp("dosebase") / "d.h5ad"
    a.write_h5ad(path)
    return Dataset.load({"dataset": str(path), "schema": SCHEMA.to_dict(), "split": SPLIT, "set_size": 4})


def _effect(table, atom: str, dose: float) -> torch.Tensor:
    """The effect of ``atom`` alone at ``dose``, by hand: its cells' mean minus the controls' in each context, averaged."""
    a = table.info.perturbations.index(atom)
    x, lab = table.X.double(), table.labels
    alone = (lab.perturbation[:, 0] == a) & ((lab.perturbation >= 0).sum(1) == 1) & (lab.dose[:, 0] == dose)
    out = []
    for c in range(len(table.info.contexts)):
        here = lab.context == c
        if (alone & here).any():
            out.append(x[alone & here].mean(0) - x[lab.is_control & here].mean(0))
    return torch.stack(out).mean(0)


def _predicted_effect(model, dataset, label: str, context: str = "A549") -> torch.Tensor:
    control = torch.zeros(1, 3, dataset.info.n_genes)
    pred = model.predict(control, torch.ones(1, 3, dtype=torch.bool), dataset.labels([label], [context]))
    return pred[0, 0].double()


def test_nearest_dose_is_the_measured_one_else_the_nearest_on_a_log_scale_ties_lower():
    assert nearest_dose([1.0, 10.0, 100.0], 10.0) == 10.0
    assert nearest_dose([100.0, 1000.0], 500.0) == 1000.0  # log: 500 is 2x from 1000, 5x from 100 (linear would say 100)
    assert nearest_dose([1.0, 100.0], 10.0) == 1.0  # 10x either way: the lower
    assert nearest_dose([0.0, 10.0], 4.0) == 0.0  # a dose of 0: linear
    assert nearest_dose([1.0, 10.0, 100.0], 1e6) == 100.0


@pytest.mark.parametrize("cls", [AdditiveBaseline, MatchingMeanBaseline])
def test_a_held_out_dose_is_predicted_from_the_nearest_training_dose_not_the_doses_pooled(dataset, cls):
    train = dataset.train_table
    assert is_dosed(train)
    assert not (train.labels.dose[train.labels.perturbation[:, 0] == train.info.perturbations.index("dexa")] == 1000).any()
    model = cls().fit(train)
    got = _predicted_effect(model, dataset, "dexa@1000")
    assert torch.allclose(got, _effect(train, "dexa", 100.0).float().double(), atol=1e-5)
    pooled = condition_effects(train)[(train.info.perturbations.index("dexa"),)]
    assert got[0] > pooled[0] + 0.3  # the pooled reference (doses 1, 10, 100) is lower on g0 (1.53 vs 0.96 in log1p)
    for dose in (1.0, 10.0):  # a training dose: its own effect
        assert torch.allclose(_predicted_effect(model, dataset, f"dexa@{dose:g}"), _effect(train, "dexa", dose).float().double(), atol=1e-5)


@pytest.mark.parametrize("cls", [AdditiveBaseline, MatchingMeanBaseline])
def test_an_atom_asked_at_dose_0_adds_no_effect(dataset, cls):
    """Dose 0 is none of the drug: the nearest training dose (the lowest, 1) gave it that dose's effect. A combination with
    one atom at 0 is the other atom alone."""
    train = dataset.train_table
    model = cls().fit(train)
    labels = dataset.labels(["dexa"], ["A549"], doses=0.0)
    got = model.predict(torch.zeros(1, 3, dataset.info.n_genes), torch.ones(1, 3, dtype=torch.bool), labels)[0, 0].double()
    assert torch.allclose(got, torch.zeros_like(got), atol=1e-6)
    assert _predicted_effect(model, dataset, "dexa@1").abs().max() > 0.1  # the lowest dose's effect is not nothing
    both = dataset.labels(["dexa+saha"], ["A549"], doses=[[0.0, 100.0]])  # matching_mean: the mean over the atoms given
    got = model.predict(torch.zeros(1, 3, dataset.info.n_genes), torch.ones(1, 3, dtype=torch.bool), both)[0, 0].double()
    assert torch.allclose(got, _effect(train, "saha", 100.0).float().double(), atol=1e-5)


def test_a_combination_adds_its_atoms_effects_at_their_own_doses(dataset):
    train = dataset.train_table
    model = AdditiveBaseline().fit(train)
    got = _predicted_effect(model, dataset, "dexa@10+saha@100")
    want = _effect(train, "dexa", 10.0) + _effect(train, "saha", 100.0)
    assert torch.allclose(got, want.float().double(), atol=1e-5)


def test_the_report_says_each_baselines_dose_rule_on_dosed_data_only(dataset, tmp_path):
    truth = dataset.truth("test")
    _, notes = dataset_references(dataset, truth, ("control", "mean_perturbation", "additive", "noncontrol_mean", "linear"))
    rules = {n.split("'")[1]: n for n in notes if "on data at several doses" in n}
    assert set(rules) == {"mean_perturbation", "additive", "noncontrol_mean", "linear"}
    assert "nearest training dose" in rules["additive"]
    assert all("dose-blind" in rules[n] for n in ("mean_perturbation", "noncontrol_mean", "linear"))
    a = sciplex(n=6)
    a = a[a.obs["dose"].isin(["0", "10", "100+10"])].copy()  # one dose per condition: labelled as without doses
    a.write_h5ad(tmp_path / "one.h5ad")
    one = Dataset.load({"dataset": str(tmp_path / "one.h5ad"), "schema": SCHEMA.to_dict(), "set_size": 4,
                        "split": {"kind": "random_conditions", "test_conditions": ["nutlin"], "val_frac": 0.0, "seed": 0}})
    assert not is_dosed(one.train_table) and AdditiveBaseline().fit(one.train_table).dosed is None
    _, notes = dataset_references(one, one.truth("test"), ("additive", "mean_perturbation"))
    assert not any("several doses" in n for n in notes)


def test_evaluate_train_on_files_reads_atom_at_dose_labels_as_the_run_does(dataset):
    """``distgen evaluate --train`` (``cells_references``) on cells labelled ``atom@dose``: the atoms are the drugs, each
    population at its dose, so its references are the run's (``dataset_references``), not 'dexa@1000' as an unseen atom."""
    from distgen.pipeline.references import cells_references

    truth = dataset.truth("test")
    names = ("additive", "matching_mean", "mean_perturbation")
    run, run_notes = dataset_references(dataset, truth, names)
    files, notes = cells_references(dataset.train_cells(), truth, names)
    for name in names:
        assert np.array_equal(files[name].conditions, run[name].conditions)
        assert torch.allclose(files[name].X, run[name].X, atol=1e-5), name
    assert not any("cannot predict" in n for n in notes)  # dexa@1000 is dexa, seen at 1 to 100
    assert [n for n in notes if "several doses" in n] == [n for n in run_notes if "several doses" in n]


def test_cells_encoded_with_dosed_data_are_dosed_for_the_baselines(dataset):
    table = dataset.data.encode(sciplex(n=2))
    assert is_dosed(table) and AdditiveBaseline().fit(table).dosed is not None
