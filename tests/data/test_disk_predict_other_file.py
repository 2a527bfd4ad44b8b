"""predict_to_disk on another file than the model's training file: genes matched by name, labels by name, or refused."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.data import PerturbationData, PerturbationSchema
from distgen.data.streaming import predict_to_disk
from distgen.errors import InputDataError, InputKeyError
from distgen.models.baselines.additive import AdditiveBaseline

SCHEMA = PerturbationSchema(perturbation_col="condition", control_labels=("control",), context_cols=("cell_type",),
                            perturbation_type="chemical", scale="log")
GENES = [f"g{i}" for i in range(6)]


def _cells(conditions=("control", "A", "B", "A+B"), seed=0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    rows = [(c, ct) for c in conditions for ct in ("ct1", "ct2") for _ in range(8)]
    obs = pd.DataFrame(rows, columns=["condition", "cell_type"], index=[f"c{i}" for i in range(len(rows))])
    shift = {"control": 0.0, "A": 1.0, "B": -0.5, "A+B": 0.5}
    x = np.stack([np.log1p(rng.poisson(3.0 + 2 * shift.get(c, 0.0) * (np.arange(6) % 2), 6)) for c, _ in rows]).astype(np.float32)
    x[:, 0] = np.log1p(np.arange(len(rows), dtype=np.float32) + 0.5)  # every cell distinct
    return ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=GENES))


@pytest.fixture(scope="module")
def model():
    """Effects of A and B (control + the sum of the single effects): a prediction that depends on the atom ids and gene columns."""
    return AdditiveBaseline().fit(PerturbationData.from_anndata(_cells(), SCHEMA).table)


def _predict(model, adata, path):
    adata.write_h5ad(path)
    out = ad.read_h5ad(predict_to_disk(model, path, path.with_name(path.stem + "_pred.h5ad"), set_size=4, schema=SCHEMA))
    kept = out.obs["distgen_kind"].astype(str).to_numpy() == "predicted"
    return out[kept]


def _group(pred, condition, context="ct1"):
    rows = (pred.obs["target"].astype(str) == condition).to_numpy() & (pred.obs["celltype"].astype(str) == context).to_numpy()
    return np.asarray(pred.X[rows])


def test_genes_in_another_order_give_the_same_prediction(model, tmp_path):
    """The file's gene columns were fed to the model by position: a reordered file was predicted silently wrong."""
    ref = _predict(model, _cells(), tmp_path / "orig.h5ad")
    perm = [3, 0, 5, 1, 4, 2]
    shuffled = _predict(model, _cells()[:, perm].copy(), tmp_path / "shuffled.h5ad")
    assert list(shuffled.var_names) == GENES  # written in the model's gene order
    np.testing.assert_array_equal(np.asarray(shuffled.X), np.asarray(ref.X))


def test_a_file_with_other_perturbations_is_predicted_by_their_names(model, tmp_path):
    """A file holding only B numbers B as its atom 0, which is A for the model: B's cells got A's effect."""
    ref = _predict(model, _cells(), tmp_path / "orig.h5ad")
    only_b = _predict(model, _cells(("control", "B")), tmp_path / "only_b.h5ad")
    np.testing.assert_array_equal(_group(only_b, "B"), _group(ref, "B"))
    assert not np.array_equal(_group(ref, "B"), _group(ref, "A"))  # the atoms' predictions differ: the check above can fail


def test_labels_unknown_to_the_model_and_missing_genes_are_refused(model, tmp_path):
    with pytest.raises(InputKeyError, match=r"unknown perturbation 'Z' \(not in the training file\)"):
        _predict(model, _cells(("control", "A", "Z")), tmp_path / "z.h5ad")
    other_ctx = _cells()
    other_ctx.obs["cell_type"] = other_ctx.obs["cell_type"].astype(str).replace({"ct2": "CT2"})
    with pytest.raises(InputKeyError, match=r"unknown context 'CT2'.*'CT2' is 'ct2'"):
        _predict(model, other_ctx, tmp_path / "ctx.h5ad")
    with pytest.raises(InputDataError, match=r"1 of the model's 6 genes is missing \('g2'\)\. .*genes=model\.info\.genes"):
        _predict(model, _cells()[:, [0, 1, 3, 4, 5]].copy(), tmp_path / "fewer.h5ad")


def test_other_obs_column_names_and_control_label_are_mapped_by_the_schema(model, tmp_path):
    """The file's own column names and control label go in the schema it is read with: the same cells as the original."""
    import dataclasses

    ref = _predict(model, _cells(), tmp_path / "orig.h5ad")
    other = _cells()
    other.obs = other.obs.rename(columns={"condition": "perturbation", "cell_type": "celltype"})
    other.obs["perturbation"] = other.obs["perturbation"].astype(str).replace({"control": "ctrl"})
    path = tmp_path / "renamed.h5ad"
    other.write_h5ad(path)
    with pytest.raises(InputKeyError, match=r"missing from .*dataclasses\.replace\(schema, perturbation_col="):
        predict_to_disk(model, path, tmp_path / "renamed_pred.h5ad", set_size=4, schema=SCHEMA)
    mapped = dataclasses.replace(SCHEMA, perturbation_col="perturbation", context_cols=("celltype",), control_labels=("ctrl",))
    out = ad.read_h5ad(predict_to_disk(model, path, tmp_path / "renamed_pred.h5ad", set_size=4, schema=mapped))
    out = out[out.obs["distgen_kind"].astype(str).to_numpy() == "predicted"]
    np.testing.assert_array_equal(np.asarray(out.X), np.asarray(ref.X))
