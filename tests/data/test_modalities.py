"""One gene name under two modalities (CRISPRa in one line, CRISPRi in another, as in the PerturBench devel file of
Norman 2019 and McFaline-Figueroa 2023): one atom to distgen, so loading says so and how to keep them apart."""

import warnings

import numpy as np
import pandas as pd
import pytest

from distgen.data import PerturbationData, PerturbationSchema
from distgen.data.disk import DiskCells

from .conftest import make_adata

SCHEMA = PerturbationSchema(control_labels=("control",), context_cols=("cell_type",))


def _two_modalities():
    """A and B activated in ct1 (CRISPRa), A and C interfered with in ct2 (CRISPRi): A is named alike under both."""
    a = make_adata(conditions=("control", "A", "B", "C", "A+B"), contexts=("ct1", "ct2"), counts=True)
    keep = ~(((a.obs["cell_type"] == "ct1") & (a.obs["condition"] == "C")) | ((a.obs["cell_type"] == "ct2") & a.obs["condition"].isin(["B", "A+B"])))
    a = a[keep.to_numpy()].copy()
    a.obs["perturbation_type"] = np.where(a.obs["cell_type"] == "ct1", "CRISPRa", "CRISPRi")
    return a


def test_an_atom_under_two_modalities_is_named_with_the_column_and_the_fix():
    with pytest.warns(UserWarning, match=r"1 perturbation \(A\) occurs under several values of obs column 'perturbation_type' "
                                         r"\(CRISPRa, CRISPRi\); distgen identifies a perturbation by its name alone.*A as A_CRISPRi.*"
                                         r"One gene, two modalities"):
        PerturbationData.from_anndata(_two_modalities(), SCHEMA)


def test_the_streaming_reader_says_the_same(tmp_path):
    path = tmp_path / "two.h5ad"
    _two_modalities().write_h5ad(path)
    with pytest.warns(UserWarning, match=r"1 perturbation \(A\) occurs under several values of obs column 'perturbation_type'"):
        DiskCells(str(path), SCHEMA)


def _quiet(adata):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return PerturbationData.from_anndata(adata, SCHEMA)


def test_one_modality_or_distinct_names_load_quietly():
    a = _two_modalities()
    one = a.copy()
    one.obs["perturbation_type"] = "CRISPRi"
    _quiet(one)
    # the relabelling of docs/your_data.md ("One gene, two modalities"), controls left as they are
    lab, mode = a.obs["condition"].astype(str), a.obs["perturbation_type"].astype(str)
    a.obs["condition"] = [x if x == "control" else "+".join(f"{g}_{m}" for g in x.split("+")) for x, m in zip(lab, mode)]
    with pytest.warns(UserWarning, match=r"none of the 4 genetic perturbation\(s\).*is a gene name") as said:  # what it costs
        data = PerturbationData.from_anndata(a, SCHEMA)
    text = " ".join(str(w.message) for w in said)
    # the relabelled genes are named as such, not called drugs: the old hint said to declare them 'chemical'
    assert "4 of them hold one with a tag" in text and "holds the gene 'A'" in text and "do not declare them 'chemical'" in text
    assert "declare PerturbationSchema.perturbation_type='chemical'" not in text
    assert {"A_CRISPRa", "A_CRISPRi", "B_CRISPRa", "C_CRISPRi"} == set(data.info.perturbations)
    assert "A_CRISPRa+B_CRISPRa" in set(data.conditions)


def test_controls_and_missing_modalities_are_not_counted():
    a = _two_modalities()
    a.obs["perturbation_type"] = pd.Series(np.where(a.obs["condition"] == "control", "none", a.obs["perturbation_type"]), index=a.obs.index)
    a.obs.loc[(a.obs["condition"] == "A").to_numpy() & (a.obs["cell_type"] == "ct2").to_numpy(), "perturbation_type"] = np.nan
    _quiet(a)


def test_labels_that_are_not_genes_still_get_the_chemical_hint():
    """Without a gene inside the labels (drugs named like 'drug_1'), the hint to declare 'chemical' stays."""
    a = _two_modalities()
    names = {"A": "dex_1", "B": "ifn-b", "C": "tnf"}
    a.obs["condition"] = ["+".join(names[g] for g in x.split("+")) if x != "control" else x for x in a.obs["condition"].astype(str)]
    with pytest.warns(UserWarning, match=r"declare PerturbationSchema.perturbation_type='chemical'"):
        PerturbationData.from_anndata(a, SCHEMA)
