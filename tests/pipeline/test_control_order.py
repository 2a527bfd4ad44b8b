"""The control cells a prediction and the baselines start from do not depend on the row order of the files.

A group's control pool is taken in the order of its cells' values (``distgen.data.groups.draw_order``, the rule of
the ceiling's ``content_order``) before ``control_draw`` picks positions in it. Before, the pool was in row order, so
the same file with its rows shuffled (control rows included) gave a model other control cells, hence other predicted
cells, in memory and streaming alike, and moved the ``control`` baseline's metrics.
"""

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from distgen.cli import main
from distgen.data import Dataset
from distgen.data.streaming import predict_to_disk
from distgen.pipeline.predict import predict

SCHEMA = {"perturbation_col": "condition", "control_labels": ["control"], "context_cols": ["cell_type"], "batch_col": "donor",
          "perturbation_type": "chemical"}
SPLIT = {"kind": "random_conditions", "test_conditions": ["B", "A+B"], "val_frac": 0.0, "seed": 0}


class NoisyShift:
    """A stochastic model: its controls shifted by a per-atom amount plus torch noise (the run's seed drives the noise)."""

    def predict(self, control, mask, labels):
        p = labels.perturbation
        shift = ((p + 1) * (p >= 0)).sum(-1).to(control.dtype)[:, None, None] * 0.1  # -1 pads (of any width) add nothing
        return control + shift + 0.05 * torch.randn_like(control)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One file (control, A, B, A+B in ct1, ct2 x donors b1, b2, b3; b3 has no control of ct2) and its rows shuffled."""
    rng = np.random.default_rng(3)
    rows = []
    for cond in ("control", "A", "B", "A+B"):
        for ct in ("ct1", "ct2"):
            for b in ("b1", "b2", "b3"):
                if (cond, ct, b) != ("control", "ct2", "b3"):
                    rows += [(cond, ct, b)] * (int(rng.integers(12, 20)) if cond == "control" else int(rng.integers(3, 9)))
    obs = pd.DataFrame(rows, columns=["condition", "cell_type", "donor"], index=[f"c{i}" for i in range(len(rows))])
    x = np.log1p(rng.poisson(3.0, (len(rows), 7))).astype(np.float32)
    x[:, 0] = np.log1p(np.arange(len(rows), dtype=np.float32) + 0.5)  # every cell distinct
    adata = ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(7)]))
    root = tmp_path_factory.mktemp("control_order")
    paths = {"orig": str(root / "orig.h5ad"), "shuffled": str(root / "shuffled.h5ad")}
    adata.write_h5ad(paths["orig"])
    adata[rng.permutation(adata.n_obs)].copy().write_h5ad(paths["shuffled"])
    return paths


def _by_group(x, conditions, contexts, batches):
    out: dict = {}
    for key, row in zip(zip(conditions, contexts, batches), x):
        out.setdefault(tuple(map(str, key)), []).append(row)
    return {k: np.stack(v) for k, v in out.items()}


@pytest.mark.parametrize("max_cells", [None, 5])
def test_a_models_predicted_cells_do_not_depend_on_the_row_order_in_memory_and_streaming(files, tmp_path, max_cells):
    """``max_cells`` 5: each (condition, context) keeps 5 of its 9-24 cells, drawn in the order of their values, so the
    kept cells (the truth) and their batch mix, hence the groups' sizes, are the same whatever the row order."""
    predicted, truth = {}, {}
    for name, path in files.items():
        ds = Dataset.load({"dataset": path, "schema": SCHEMA, "set_size": 4, "split": SPLIT}).capped(max_cells)
        mem = predict(NoisyShift(), ds, seed=7, preflight=False)
        gen = ~mem.is_control
        predicted[name] = _by_group(mem.X.numpy()[gen], mem.conditions[gen], mem.contexts[gen], mem.batches[gen])
        real = ds.truth()
        truth[name] = {k: np.sort(v.view(np.int32), axis=0) for k, v in
                       _by_group(real.X.numpy(), real.conditions, real.contexts, real.batches).items()}  # each group's cells, any order
        out = predict_to_disk(NoisyShift(), path, tmp_path / f"{name}.h5ad", set_size=4, seed=7, schema=ds.data.schema,
                              max_cells=max_cells)
        streamed = ad.read_h5ad(out)
        kind = streamed.obs["distgen_kind"].astype(str).to_numpy() == "predicted"
        obs = streamed.obs[kind]
        predicted[name + "/stream"] = {k: v for k, v in _by_group(streamed.X[kind], obs["target"], obs["celltype"], obs["batch"]).items()
                                       if k[0] in ("B", "A+B")}
    assert truth["shuffled"].keys() == truth["orig"].keys()
    assert all(np.array_equal(truth["shuffled"][k], v) for k, v in truth["orig"].items())
    if max_cells is None:
        assert len(predicted["orig"]) == 12 and ("B", "ct2", "b3") in predicted["orig"]  # b3 of ct2 borrows the other batches' controls
    else:
        assert sum(len(v) for v in predicted["orig"].values()) == 4 * max_cells  # B and A+B in ct1 and ct2
    for name in ("shuffled", "orig/stream", "shuffled/stream"):
        assert predicted[name].keys() == predicted["orig"].keys()
        for key, x in predicted["orig"].items():  # the same cells, cell for cell (same controls in the same order, same noise)
            np.testing.assert_allclose(predicted[name][key], x, rtol=0, atol=1e-6, err_msg=f"{name} {key}")


def test_the_control_baselines_metrics_do_not_depend_on_the_truths_row_order(files, tmp_path, capsys):
    scores = {}
    for name, path in files.items():
        out = tmp_path / name
        assert main(["evaluate", "--pred", files["orig"], "--real", path, "--pert-col", "condition", "--control", "control",
                     "--celltype-col", "cell_type", "--out", str(out), "--no-plots", "--quiet", "--metrics", "mse,mmd,edistance"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        scores[name] = {m: summary["metrics"][m]["baselines"]["control"] for m in ("mse", "mmd", "edistance")}
    capsys.readouterr()
    assert all(np.isfinite(v) for v in scores["orig"].values())
    for m, v in scores["orig"].items():
        assert scores["shuffled"][m] == pytest.approx(v, rel=1e-6, abs=1e-9), m


def test_content_keys_of_a_sparse_matrix_are_those_of_its_dense_form_and_give_the_ceilings_order(monkeypatch):
    import scipy.sparse as sp

    import distgen.seeds
    from distgen.seeds import content_keys, content_order

    rng = np.random.default_rng(0)
    x = np.where(rng.random((50, 9)) < 0.6, 0.0, rng.random((50, 9))).astype(np.float32)
    x[3, 2] = -0.0  # a negative zero adds nothing, as a zero
    genes = [f"g{i}" for i in range(9)]
    dense = content_keys(x, genes)
    assert np.array_equal(content_keys(sp.csr_matrix(x), genes), dense)
    assert np.array_equal(content_keys(torch.from_numpy(x), genes), dense)
    assert np.array_equal(content_keys(x.astype(np.float64), genes), dense)  # float32 values, whatever the storage
    stored = sp.csr_matrix((np.array([-0.0, 0.5], dtype=np.float32), ([0, 0], [1, 2])), shape=(1, 9))  # an explicit -0.0
    assert content_keys(stored, genes)[0] == content_keys(np.eye(1, 9, 2, dtype=np.float32) * 0.5, genes)[0]
    # duplicate entries (one value of the dense form: 0.5 + 0.25), unsorted column indices and empty rows
    odd = sp.csr_matrix((np.array([0.5, 0.25, 2.0, 1.0], dtype=np.float64), np.array([4, 4, 7, 1]), np.array([0, 0, 2, 2, 4])),
                        shape=(4, 9))
    assert not odd.has_canonical_format
    assert np.array_equal(content_keys(odd, genes), content_keys(odd.toarray(), genes))
    assert odd.nnz == 4  # the caller's matrix is left as it was
    monkeypatch.setattr(distgen.seeds, "SPARSE_BLOCK", 5)  # rows hashed a few at a time (a row of more values alone)
    assert np.array_equal(content_keys(sp.csr_matrix(x), genes), dense)
    assert len(set(dense.tolist())) == 50  # distinct rows, distinct keys
    ranks = content_order(torch.from_numpy(x), genes).numpy()
    assert np.array_equal(np.argsort(ranks), np.argsort(dense, kind="stable"))


def _names(path):
    return ad.read_h5ad(path, backed="r").obs_names.to_numpy()


def test_the_streaming_control_sample_beyond_control_pool_does_not_depend_on_the_row_order(files, tmp_path, monkeypatch):
    """A file with more controls than ``control_pool`` keeps a seeded sample of each (context, batch): it was drawn in
    row order, so the shuffled file kept other controls and predicted other cells. Now drawn in the order of values."""
    import distgen.data.disk
    from distgen.data.disk import DiskCells, control_rows
    from distgen.data.schema import PerturbationSchema
    from distgen.seeds import content_keys

    schema = PerturbationSchema.from_dict(SCHEMA)
    adata = ad.read_h5ad(files["orig"])
    by_value = str(tmp_path / "by_value.h5ad")  # rows in the order of their values: the draw order is the row order
    adata[np.argsort(content_keys(adata.X, adata.var_names), kind="stable")].copy().write_h5ad(by_value)
    paths = {**files, "by_value": by_value}
    n_ctrl = int((adata.obs["condition"] == "control").sum())
    sample = {(name, seed): frozenset(_names(p)[control_rows(DiskCells(p, schema), 30, seed, 4)])
              for name, p in paths.items() for seed in (0, 1)}
    assert 30 <= len(sample["orig", 0]) < n_ctrl
    assert sample["shuffled", 0] == sample["by_value", 0] == sample["orig", 0]
    assert sample["shuffled", 1] == sample["orig", 1] != sample["orig", 0]  # the seed still changes the sample
    monkeypatch.setattr(distgen.data.disk, "draw_order", lambda keys: np.arange(len(keys)))  # the former row-order rule
    assert frozenset(_names(by_value)[control_rows(DiskCells(by_value, schema), 30, 0, 4)]) == sample["by_value", 0]
    assert frozenset(_names(files["orig"])[control_rows(DiskCells(files["orig"], schema), 30, 0, 4)]) != sample["orig", 0]
    monkeypatch.undo()

    predicted = {}
    for name, path in files.items():
        out = predict_to_disk(NoisyShift(), path, tmp_path / f"{name}.h5ad", set_size=4, seed=7, schema=schema, control_pool=30)
        streamed = ad.read_h5ad(out)
        kind = streamed.obs["distgen_kind"].astype(str).to_numpy() == "predicted"
        obs = streamed.obs[kind]
        predicted[name] = _by_group(streamed.X[kind], obs["target"], obs["celltype"], obs["batch"])
        assert (~kind).sum() < n_ctrl  # the controls written are those of the sample, fewer than the file's
    assert predicted["shuffled"].keys() == predicted["orig"].keys()
    for key, x in predicted["orig"].items():
        np.testing.assert_allclose(predicted["shuffled"][key], x, rtol=0, atol=1e-6, err_msg=str(key))
