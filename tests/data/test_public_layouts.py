"""Tiny AnnData in the layouts of public screens distgen was not tuned on, read as their users would write the schema
(unseen-data round, 2026-12-06; docs/reliability.md): what is read as control, condition, context, batch and dose, and
what is said. Replogle 2022 (``gene``, ``non-targeting``, ``gem_group``, Ensembl ``var_names``), sci-Plex (``product_name``
+ ``dose``, ``Vehicle``), Tahoe-100M (``drug``, ``DMSO_TF``, ``plate``, ``cell_line``), Parse cytokines (``cytokine``,
``PBS``, donors), GEARS (``A+ctrl``, ``ctrl``, dose ``1+1``)."""

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from distgen.data import PerturbationData, PerturbationSchema
from distgen.errors import InputDataError

GENES = [f"GENE{i}" for i in range(12)]


def _adata(rows: list[dict], n: int, var: pd.DataFrame | None = None, seed: int = 0) -> ad.AnnData:
    """``n`` cells per row of ``rows`` (obs values), Poisson counts stored CSR, genes ``GENES``."""
    rng = np.random.default_rng(seed)
    obs = pd.DataFrame([r for r in rows for _ in range(n)])
    obs.index = [f"cell{i}" for i in range(len(obs))]
    x = sp.csr_matrix(rng.poisson(4.0, (len(obs), len(GENES))).astype(np.float32))
    return ad.AnnData(X=x, obs=obs, var=var if var is not None else pd.DataFrame(index=GENES))


def _quiet(adata: ad.AnnData, schema: PerturbationSchema) -> PerturbationData:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return PerturbationData.from_anndata(adata, schema)


def test_replogle_layout():
    rows = [{"gene": g, "gem_group": gem} for gem in (1, 2) for g in ("non-targeting", "GENE0", "GENE1", "GENE2")]
    var = pd.DataFrame({"gene_name": GENES}, index=[f"ENSG{i:011d}" for i in range(len(GENES))])
    a = _adata(rows, 5, var)
    schema = PerturbationSchema(perturbation_col="gene", control_labels=("non-targeting",), batch_col="gem_group")
    with pytest.warns(UserWarning, match=r"var column\(s\) \['gene_name'\] hold them"):
        PerturbationData.from_anndata(a, schema)
    a.var_names = a.var["gene_name"].astype(str)
    data = _quiet(a, schema)
    assert data.info.batches == ("1", "2") and data.info.contexts == ("all",)
    assert int(data.is_control.sum()) == 10 and set(data.info.perturbations) <= set(data.info.genes)


def test_sciplex_layout():
    rows = [{"product_name": "Vehicle", "dose": 0.0, "cell_type": ct} for ct in ("A549", "MCF7")]
    rows += [{"product_name": d, "dose": dose, "cell_type": ct} for d in ("Dex", "SAHA") for dose in (10.0, 1000.0) for ct in ("A549", "MCF7")]
    a = _adata(rows, 4)
    schema = PerturbationSchema(perturbation_col="product_name", control_labels=("Vehicle",), context_cols=("cell_type",),
                                dose_col="dose", perturbation_type="chemical")
    dosed = _quiet(a.copy(), schema)  # a population per dose (it was refused), the drug one atom, the dose a number
    assert set(dosed.conditions) == {"control", "Dex@10", "Dex@1000", "SAHA@10", "SAHA@1000"} and dosed.info.perturbations == ("Dex", "SAHA")
    assert dosed.table.labels.dose[int(np.flatnonzero(dosed.conditions == "Dex@1000")[0]), 0] == 1000.0
    lab = a.obs["product_name"].astype(str)  # the dose in the label: one atom per dose, as before
    a.obs["product_name"] = lab.where(lab == "Vehicle", lab + "_" + a.obs["dose"].astype(str))
    data = _quiet(a, schema)
    assert set(data.conditions) == {"control", "Dex_10.0", "Dex_1000.0", "SAHA_10.0", "SAHA_1000.0"}
    i = int(np.flatnonzero(data.conditions == "Dex_1000.0")[0])
    assert data.table.labels.dose[i, 0] == 1000.0 and data.info.contexts == ("A549", "MCF7")


def test_tahoe_layout():
    rows = [{"drug": d, "plate": p, "cell_line": cl} for p, drugs in (("plate1", ("DrugA", "DrugB")), ("plate2", ("DrugC",)))
            for cl in ("CVCL_0023", "CVCL_0480") for d in ("DMSO_TF", *drugs)]
    a = _adata(rows, 3)
    with pytest.raises(InputDataError, match=r"no control cells.*look like controls: \['DMSO_TF'\]"):
        PerturbationData.from_anndata(a, PerturbationSchema(perturbation_col="drug", context_cols=("cell_line",), perturbation_type="chemical"))
    data = _quiet(a, PerturbationSchema(perturbation_col="drug", control_labels=("DMSO_TF",), context_cols=("cell_line",),
                                        batch_col="plate", perturbation_type="chemical"))
    groups = data.groups()
    assert {(c, b) for c, _, b in groups} == {("DrugA", "plate1"), ("DrugB", "plate1"), ("DrugC", "plate2")}
    assert data.info.contexts == ("CVCL_0023", "CVCL_0480")


def test_parse_cytokine_layout():
    rows = [{"cytokine": c, "donor": d, "cell_type": ct} for d in ("Donor1", "Donor2") for ct in ("CD4 T", "CD14 Mono")
            for c in ("PBS", "IFN-gamma", "IL-1-beta", "TNF-alpha")]
    a = _adata(rows, 3)
    with pytest.warns(UserWarning, match=r"declare PerturbationSchema.perturbation_type='chemical'"):  # genetic is the default
        PerturbationData.from_anndata(a, PerturbationSchema(perturbation_col="cytokine", control_labels=("PBS",), context_cols=("cell_type", "donor")))
    data = _quiet(a, PerturbationSchema(perturbation_col="cytokine", control_labels=("PBS",), context_cols=("cell_type", "donor"),
                                        perturbation_type="chemical"))
    assert data.info.perturbations == ("IFN-gamma", "IL-1-beta", "TNF-alpha")  # hyphens are part of the name
    assert "CD4 T|Donor2" in data.info.contexts and len(data.info.contexts) == 4


def test_gears_layout():
    rows = [{"condition": "ctrl", "cell_type": "K562", "dose_val": "1"}]
    rows += [{"condition": f"{g}+ctrl", "cell_type": "K562", "dose_val": "1+1"} for g in ("GENE0", "GENE1", "GENE2")]
    rows += [{"condition": "GENE1+GENE0", "cell_type": "K562", "dose_val": "1+1"}]
    a = _adata(rows, 4)
    data = _quiet(a, PerturbationSchema(control_labels=("ctrl",), context_cols=("cell_type",), dose_col="dose_val"))
    assert set(data.conditions) == {"control", "GENE0", "GENE1", "GENE2", "GENE0+GENE1"}
    assert bool((data.table.labels.dose[~np.asarray(data.is_control)][:, 0] == 1.0).all())
