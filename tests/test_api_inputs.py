"""What a notebook hands ``distgen.load_data``: an in-memory AnnData is refused with the way to a file, not a type error."""

import pytest

import distgen
from distgen.config import ConfigError
from distgen.data import bundled


def test_an_anndata_is_refused_with_the_fix():
    adata = bundled.norman_k562()
    with pytest.raises(ConfigError, match=r"got an AnnData.*adata\.write_h5ad\('cells\.h5ad'\).*data\.data\.encode\(adata\)") as info:
        distgen.load_data(adata)
    assert len(str(info.value)) < 500  # was 'data.dataset: expected str, got AnnData AnnData object with n_obs x ...' and no way out
