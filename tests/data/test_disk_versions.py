"""What distgen says where the installed anndata cannot read a file: rows of an on-disk sparse matrix (anndata < 0.12.7
with scipy >= 1.17), or an element encoded by a newer anndata.

pip gives exactly that pair where pandas 3 is installed: anndata 0.12.7 and later require pandas < 3, and anndata
0.12.0-0.12.6 index through a private scipy function that scipy 1.17 removed. The failure there was an AttributeError
from deep inside anndata, reported by the CLI as an internal error of distgen."""

from importlib.metadata import version

import anndata as ad
import h5py
import numpy as np
import pytest

from distgen.data.disk import backed_rows
from distgen.data.h5ad import read_h5ad
from distgen.errors import DistgenError, InputFileError


class _Dataset:
    def __init__(self, exc: Exception | None) -> None:
        self.exc = exc

    def __getitem__(self, mask):
        if self.exc is not None:
            raise self.exc
        return np.flatnonzero(mask)


def test_rows_are_read_through_anndata():
    mask = np.array([False, True, True, False])
    assert backed_rows(_Dataset(None), mask).tolist() == [1, 2]


def test_anndata_that_cannot_index_with_this_scipy_names_both_versions_and_the_fix():
    exc = AttributeError("'backed_csr_matrix' object has no attribute '_validate_indices'")
    with pytest.raises(DistgenError) as e:
        backed_rows(_Dataset(exc), np.ones(3, dtype=bool))
    msg = str(e.value)
    assert f"anndata {version('anndata')}" in msg and f"scipy {version('scipy')}" in msg
    assert "pip install 'scipy<1.17'" in msg and "pip install -U anndata" in msg


def test_other_attribute_errors_are_not_renamed():
    with pytest.raises(AttributeError, match="something else"):
        backed_rows(_Dataset(AttributeError("something else")), np.ones(3, dtype=bool))


def test_a_file_with_an_encoding_this_anndata_lacks_says_to_upgrade_anndata(tmp_path):
    """anndata 0.12 writes ``None`` (scanpy's ``uns['log1p']['base']``) as an element anndata 0.11 cannot read; such a
    file was called truncated or damaged."""
    path = tmp_path / "newer.h5ad"
    adata = ad.AnnData(np.ones((3, 2), dtype=np.float32))
    adata.uns["log1p"] = {"base": 2.0}
    adata.write_h5ad(path)
    with h5py.File(path, "r+") as f:
        f["uns/log1p/base"].attrs["encoding-type"] = "an-encoding-from-a-later-anndata"
    with pytest.raises(InputFileError, match=r"written by a newer anndata than the installed .*an-encoding-from-a-later-anndata"
                       r".*not damaged: pip install -U anndata") as e:
        read_h5ad(path, "--pred")
    assert "damaged or not written by anndata" not in str(e.value)


def test_a_warning_made_an_error_while_reading_is_not_called_a_damaged_file(tmp_path):
    # under python -W error, anndata's "Variable names are not unique" raised inside read_h5ad was reported as "not a
    # readable .h5ad file: ... truncated, damaged or not written by anndata": the warning now passes on as it is
    import warnings

    a = ad.AnnData(np.ones((2, 2), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.var_names = ["G", "G"]
    a.write_h5ad(tmp_path / "dup.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="Variable names are not unique"):
            read_h5ad(tmp_path / "dup.h5ad")
