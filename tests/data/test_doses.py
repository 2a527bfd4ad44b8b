"""Doses (``schema.dose_col``): which atom gets which dose, and one dose per condition (unseen-data round, 2026-12-06).

Found on synthetic files in the layouts of GEARS (``A+ctrl`` at dose ``1+1``) and sci-Plex (a drug at four doses).
"""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.data import PerturbationData, PerturbationSchema
from distgen.errors import InputDataError

from .conftest import make_adata


def _dose_of(data: PerturbationData, condition: str) -> dict[str, float]:
    i = int(np.flatnonzero(data.conditions == condition)[0])
    atoms = [data.info.perturbations[j] for j in data.table.labels.perturbation[i].tolist() if j >= 0]
    return dict(zip(atoms, data.table.labels.dose[i, : len(atoms)].tolist()))


def test_per_atom_doses_follow_their_atoms_not_the_sorted_order():
    """``B+A`` at ``1+3`` is B at 1 and A at 3; the doses were given to the sorted atoms in the order written (A 1, B 3)."""
    a = make_adata(conditions=("ctrl", "A", "B", "B+A"), counts=False)
    a.obs["dose"] = np.where(a.obs["condition"] == "B+A", "1+3", "2")
    data = PerturbationData.from_anndata(a, PerturbationSchema(control_labels=("ctrl",), context_cols=("cell_type",), dose_col="dose"))
    assert _dose_of(data, "A+B") == {"A": 3.0, "B": 1.0}
    assert _dose_of(data, "A") == {"A": 2.0}


def test_parallel_columns_read_one_dose_per_column():
    a = make_adata(conditions=("ctrl", "A", "B", "B+A"), counts=False)
    parts = a.obs["condition"].str.split("+", expand=True)
    a.obs["p1"], a.obs["p2"] = parts[0], parts[1].fillna("ctrl")
    a.obs["dose"] = np.where(a.obs["condition"] == "B+A", "1+3", "2")
    schema = PerturbationSchema(perturbation_col=("p1", "p2"), control_labels=("ctrl",), context_cols=("cell_type",), dose_col="dose")
    assert _dose_of(PerturbationData.from_anndata(a, schema), "A+B") == {"A": 3.0, "B": 1.0}


def test_gears_ctrl_slot_has_a_dose_of_its_own():
    """GEARS writes ``A+ctrl`` at dose ``1+1`` (a dose per slot, the control's included): it was refused, 2 values for 1 atom."""
    a = make_adata(conditions=("ctrl", "A+ctrl", "ctrl+B", "A+B"), counts=False)
    a.obs["dose"] = np.where(a.obs["condition"] == "A+ctrl", "2+1", np.where(a.obs["condition"] == "ctrl+B", "1+5", "1+1"))
    data = PerturbationData.from_anndata(a, PerturbationSchema(control_labels=("ctrl",), context_cols=("cell_type",), dose_col="dose"))
    assert _dose_of(data, "A") == {"A": 2.0}
    assert _dose_of(data, "B") == {"B": 5.0}
    assert _dose_of(data, "A+B") == {"A": 1.0, "B": 1.0}


def test_dose_counts_that_fit_no_reading_are_refused():
    a = make_adata(conditions=("ctrl", "A", "A+B"), counts=False)
    a.obs["dose"] = np.where(a.obs["condition"] == "A+B", "1+2+3", "1")
    with pytest.raises(InputDataError, match=r"dose '1\+2\+3' has 3 values for the 2 atoms.*one per slot"):
        PerturbationData.from_anndata(a, PerturbationSchema(control_labels=("ctrl",), context_cols=("cell_type",), dose_col="dose"))


def test_a_repeated_atom_with_two_doses_is_refused():
    a = make_adata(conditions=("ctrl", "A", "A+A"), counts=False)
    a.obs["dose"] = np.where(a.obs["condition"] == "A+A", "1+2", "1")
    with pytest.warns(UserWarning, match="more than once"), pytest.raises(InputDataError, match=r"gives atom 'A' two doses \(1 and 2\)"):
        PerturbationData.from_anndata(a, PerturbationSchema(control_labels=("ctrl",), context_cols=("cell_type",), dose_col="dose"))


def _sciplex(doses: list[float]) -> ad.AnnData:
    a = make_adata(conditions=("vehicle", "dex", "saha"), counts=True, n_per_group=8)
    a.obs["dose"] = 0.0
    pert = (a.obs["condition"] != "vehicle").to_numpy()
    a.obs.loc[pert, "dose"] = np.resize(np.asarray(doses, dtype=float), int(pert.sum()))
    return a


def test_a_condition_at_several_doses_is_a_population_per_dose():
    """sci-Plex: a drug at four doses was refused (before that it was one population, trained as a mix); now each
    dose is a population of its own, labelled drug@dose, its cells at their dose, the atom one."""
    schema = PerturbationSchema(control_labels=("vehicle",), context_cols=("cell_type",), dose_col="dose", perturbation_type="chemical")
    data = PerturbationData.from_anndata(_sciplex([10.0, 100.0]), schema)
    assert data.dosed
    assert set(data.conditions) == {"control", "dex@10", "dex@100", "saha@10", "saha@100"}
    assert data.info.perturbations == ("dex", "saha")
    assert _dose_of(data, "dex@100") == {"dex": 100.0}
    assert _dose_of(data, "dex@10") == {"dex": 10.0}
    assert set(data.base_conditions) == {"control", "dex", "saha"}
    one = PerturbationData.from_anndata(_sciplex([100.0]), schema)  # one dose per condition (controls at 0): labels as ever
    assert not one.dosed and set(one.conditions) == {"control", "dex", "saha"}
    assert _dose_of(one, "dex") == {"dex": 100.0}
    pooled = PerturbationData.from_anndata(_sciplex([10.0, 100.0]), PerturbationSchema(control_labels=("vehicle",), context_cols=("cell_type",),
                                                                                      perturbation_type="chemical"))
    assert set(pooled.conditions) == {"control", "dex", "saha"}  # no dose column: pooled, as asked


def test_a_dose_per_context_is_one_dose_per_group():
    a = _sciplex([1.0])
    a.obs.loc[(a.obs["cell_type"] == "ct2").to_numpy() & (a.obs["condition"] != "vehicle").to_numpy(), "dose"] = 5.0
    data = PerturbationData.from_anndata(a, PerturbationSchema(control_labels=("vehicle",), context_cols=("cell_type",), dose_col="dose",
                                                              perturbation_type="chemical"))
    ct2 = (data.contexts == "ct2") & (data.conditions == "dex")
    assert set(data.table.labels.dose[np.flatnonzero(ct2), 0].tolist()) == {5.0}


def test_the_streaming_reader_reads_a_population_per_dose_as_memory_does(tmp_path):
    """``DiskCells`` refused several doses per (condition, context); it now labels them as the in-memory load does, and a
    split of the file on disk is the split of the file in memory."""
    from distgen.data import make_split
    from distgen.data.disk import DiskCells
    from distgen.data.disk_split import disk_split

    path = tmp_path / "sciplex.h5ad"
    a = _sciplex([10.0, 100.0])
    a.write_h5ad(path)
    schema = PerturbationSchema(control_labels=("vehicle",), context_cols=("cell_type",), dose_col="dose", perturbation_type="chemical")
    cells = DiskCells(str(path), schema)
    mem = PerturbationData.from_anndata(a, schema)
    assert cells.dosed and list(cells.condition_names[cells.condition_codes]) == list(mem.conditions)
    for kind in ("held_out_dose", "random_conditions"):
        on_disk, in_memory = disk_split(cells, kind=kind, seed=2, test_frac=0.5), make_split(mem, kind=kind, seed=2, test_frac=0.5)
        assert on_disk.hash == in_memory.hash and on_disk.test_groups == in_memory.test_groups
    one = tmp_path / "one.h5ad"
    _sciplex([100.0]).write_h5ad(one)
    cells = DiskCells(str(one), schema)
    assert not cells.dosed and set(cells.condition_names) == {"control", "dex", "saha"}
    assert set(cells.labels.dose[~pd.Series(cells.is_control).to_numpy(), 0].tolist()) == {100.0}
