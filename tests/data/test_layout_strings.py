"""Writing predictions whatever pandas' default text dtype (pandas 3 stores text as its string dtype)."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.data.layout import _write


@pytest.mark.parametrize("categorical", [False, True])
def test_text_in_pandas_string_dtype_is_written_as_plain_strings(tmp_path, categorical):
    obs = pd.DataFrame({"target": pd.array(["control", "A", "A", "control"], dtype="string")},
                       index=pd.Index(["c0", "c1", "c2", "c3"], dtype="string"))
    if categorical:
        obs["target"] = obs["target"].astype("category")
    var = pd.DataFrame(index=pd.Index(["g0", "g1"], dtype="string"))
    adata = ad.AnnData(X=np.arange(8, dtype=np.float32).reshape(4, 2), obs=obs, var=var)
    assert adata.obs.index.dtype == "string"
    path = tmp_path / "p.h5ad"
    with ad.settings.override(allow_write_nullable_strings=False):  # what anndata 0.12 does by default
        _write(adata, path)
    back = ad.read_h5ad(path)
    assert back.obs_names.tolist() == ["c0", "c1", "c2", "c3"] and back.var_names.tolist() == ["g0", "g1"]
    assert back.obs["target"].astype(str).tolist() == ["control", "A", "A", "control"]
    assert np.array_equal(back.X, adata.X)
