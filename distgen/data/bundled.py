"""Real perturbation datasets bundled inside the package (no download), with their schemas.

The files live in ``distgen/datasets/`` (package data), each with a ``*_SOURCE.md`` recording
origin, changes and licence; ``distgen.datasets`` re-exports these loaders.
"""

from __future__ import annotations

import os
import warnings

import anndata as ad

from distgen.data.schema import PerturbationSchema

_HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "datasets")

#: Schema of ``norman_k562()``: combinations joined by ``+``, one context (K562), CRISPRa.
NORMAN_SCHEMA = PerturbationSchema(
    perturbation_col="condition",
    control_labels=("control",),
    context_cols=("cell_type",),
    combo_delimiter="+",
    expression="X",
    perturbation_type="genetic",
    scale="log",
)

#: Schema of ``kang_pbmc()``: IFN-beta stimulation vs control in 7 PBMC cell types.
KANG_SCHEMA = PerturbationSchema(
    perturbation_col="condition",
    control_labels=("control",),
    context_cols=("cell_type",),
    expression="X",
    perturbation_type="chemical",
    scale="log",
)


def path(name: str) -> str:
    """Absolute path of a bundled file (``"norman_k562.h5ad"``, ``"kang_pbmc.h5ad"``)."""
    p = os.path.join(_HERE, name)
    if not os.path.exists(p):
        raise FileNotFoundError(f"bundled dataset {name!r} is missing from {_HERE}; reinstall distgen (package data)")
    return p


def _read(name: str) -> ad.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return ad.read_h5ad(path(name))


def norman_k562() -> ad.AnnData:
    """Norman 2019 K562 CRISPRa: 3,375 cells x 500 genes, 18 singles, 15 pairs, 100 controls (log1p).

    Use with ``NORMAN_SCHEMA``.
    """
    return _read("norman_k562.h5ad")


def kang_pbmc() -> ad.AnnData:
    """Kang 2018 PBMC IFN-beta (scGen validation split): 1,975 cells x 6,998 genes, 7 cell types (log1p).

    Use with ``KANG_SCHEMA``.
    """
    return _read("kang_pbmc.h5ad")


__all__ = ["KANG_SCHEMA", "NORMAN_SCHEMA", "kang_pbmc", "norman_k562", "path"]
