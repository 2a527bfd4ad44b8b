"""End-to-end: load, split, save/reload, leakage check, sample, write predictions."""

import torch

from distgen.data import PerturbationData, SetSampler, Split, make_split, write_ground_truth, write_predictions


def test_pipeline_round_trip(tiny_adata, tiny_schema, tmp_path):
    data = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    assert data.scale == "counts" and data.table.meta["scale"] == "log"
    split = make_split(data, kind="combo_seen2", seed=0)
    path = split.save(tmp_path / "split.json")
    again = Split.load(path)
    assert again.hash == split.hash
    again.check_leakage(data)
    sampler = SetSampler(data.table.subset(split.train), set_size=8, sets_per_batch=3, matcher="same_context", seed=0)
    batch = next(iter(sampler))
    assert batch.shape == (3, 8, data.info.n_genes)
    test = split.test.numpy()
    truth = write_ground_truth(data, test, data.is_control.nonzero()[0], path=tmp_path / "real.h5ad")
    pert = test[~data.is_control[test]]
    pred = write_predictions(
        torch.zeros(len(pert), data.info.n_genes), data.conditions[pert].tolist(), data.table.X[data.is_control], data.info.genes,
        contexts=data.contexts[pert].tolist(), control_contexts=data.contexts[data.is_control].tolist(), data=data,
    )
    assert set(pred.obs["target"]) == set(truth.obs["target"])
