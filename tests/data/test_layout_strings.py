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


def test_the_synthetic_atlas_writer_writes_text_in_pandas_string_dtype_as_plain_strings(tmp_path, monkeypatch):
    """write_large_synthetic writes obs through anndata's write_elem, not write_h5ad: under pandas 3 its categories are
    in pandas' string dtype, which anndata 0.12 refused (docs/scale.md's streaming block failed there)."""
    import distgen.data.large_synthetic as ls

    made = ls.synthetic_obs

    def string_obs(spec):
        obs = made(spec)
        for col in obs.columns:
            if isinstance(obs[col].dtype, pd.CategoricalDtype):
                obs[col] = obs[col].cat.set_categories(obs[col].cat.categories.astype("string"))
        obs.index = obs.index.astype("string")
        return obs

    monkeypatch.setattr(ls, "synthetic_obs", string_obs)
    with ad.settings.override(allow_write_nullable_strings=False):  # what anndata 0.12 does by default
        path = ls.write_large_synthetic(tmp_path / "atlas.h5ad", n_cells=60, n_genes=8, n_perturbations=3, n_contexts=1, n_batches=1)
    back = ad.read_h5ad(path)
    assert back.n_obs == 60 and set(back.obs["perturbation"].astype(str)) >= {"control"}


def test_the_chunked_prediction_writer_writes_text_as_plain_strings_under_pandas_3s_text_default(tmp_path):
    """ChunkedWriter (distgen predict on a file streamed from disk) builds its obs categoricals from Python strings:
    under pandas 3 (here pandas' own switch to its future text default) their categories are in the string dtype,
    which anndata 0.12.6 (what pip installs beside pandas 3) refused (docs/scale.md's streaming block failed under pandas
    3.1.1); anndata 0.12.19 writes that dtype, so this fails only with pandas 3's anndata."""
    from importlib.util import find_spec

    from distgen.data.layout import ChunkedWriter

    if int(pd.__version__.split(".")[0]) < 3 and find_spec("pyarrow") is None:
        pytest.skip("pandas 2's future.infer_string needs pyarrow before pandas 2.3 (pyarrow is no dependency of distgen)")
    path = tmp_path / "pred.h5ad"
    with (pd.option_context("future.infer_string", True), ad.settings.override(allow_write_nullable_strings=False),
          ChunkedWriter(path, ["g0", "g1"]) as w):
        w.append(np.ones((3, 2), dtype=np.float32), ["control", "A", "A"], ["k", "k", "k"], "pred")
    back = ad.read_h5ad(path)
    assert back.obs_names.tolist() == ["cell0", "cell1", "cell2"] and back.var_names.tolist() == ["g0", "g1"]
    assert back.obs.iloc[:, 0].astype(str).tolist() == ["control", "A", "A"]
