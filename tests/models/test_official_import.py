"""Official checkpoints: the mapping's key lists and shapes against distgen's own modules, pickle-free reading,
and ``distgen import`` -> ``distgen predict`` end to end (on state dicts made from the mapping's key lists;
``benchmarks/parity`` checks the same mapping against the official code itself)."""

import json
import pickle

import numpy as np
import pytest
import torch

from distgen.api import build
from distgen.models.official import OfficialCheckpointError, read_official
from distgen.models.official import perturbdiff as pd_map
from distgen.models.official import scdfm as sc_map
from distgen.types import DataInfo

GENES = [f"g{i}" for i in range(12)]
VOCAB = {s: i for i, s in enumerate(("<pad>", "<cls>", "<mask>", "control"))} | {g: 4 + i for i, g in enumerate(sorted(GENES))}
SC = dict(d=16, heads=8, layers=2, ntoken=24)


def _random_state(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


def _scdfm_model(genes=GENES, perts=("g1", "g4")):
    torch.manual_seed(0)
    info = DataInfo(genes=tuple(genes), perturbations=perts)
    return build("scdfm", info, [f"model.backbone.d_model={SC['d']}", f"model.backbone.heads={SC['heads']}",
                                 f"model.backbone.layers={SC['layers']}", "model.genes_per_step=8"])


def test_scdfm_mapping_fills_every_network_parameter_and_drops_only_unused_ones():
    official = _random_state(sc_map.official_keys(**SC))
    assert sc_map.infer_sizes(official) == {"d_model": 16, "heads": 8, "layers": 2, "mlp_ratio": 4, "ntoken": 24}
    order = GENES[::-1]  # data columns in another order than the vocabulary
    model = _scdfm_model(order)
    state, report = sc_map.map_state(official, model, VOCAB)
    model.load_state_dict(state)  # strict
    assert set(report.dropped) == {"p_mask_embed", "p_head.0.weight", "p_head.0.bias", "p_head.1.weight", "p_head.1.bias",
                                   "perturbation_embedder.embedding.weight", "perturbation_embedder.enc_norm.weight",
                                   "perturbation_embedder.enc_norm.bias"}
    backbone_kept = {k for k in report.kept if k.startswith("backbone.")}
    assert backbone_kept == {"backbone.null", "backbone.genes.nbr_ptr", "backbone.genes.nbr_idx"}
    table = state["backbone.genes.table.weight"]
    for i, gname in enumerate(order):
        assert torch.equal(table[i], official["encoder.embedding.weight"][VOCAB[gname]])
    assert torch.equal(table[-1], official["encoder.embedding.weight"][VOCAB["control"]])
    w = official["fusion_layer.0.weight"]
    assert torch.equal(torch.cat([state["backbone.fusion.wx.weight"], state["backbone.fusion.wc.weight"]], 1), w)


def test_scdfm_mapping_refuses_a_panel_that_is_not_the_vocabulary():
    with pytest.raises(OfficialCheckpointError, match="lacks"):
        sc_map.check_panel(GENES[:-1], VOCAB)
    official = _random_state(sc_map.official_keys(**SC))
    with pytest.raises(OfficialCheckpointError, match="not in the official vocabulary"):
        sc_map.map_state(official, _scdfm_model([*GENES, "zz"]), VOCAB)
    official["blocks.0.extra.weight"] = torch.zeros(1)
    with pytest.raises(OfficialCheckpointError, match="no distgen counterpart"):
        sc_map.map_state(official, _scdfm_model(), VOCAB)


def test_scdfm_mask_becomes_the_same_graph():
    g = torch.Generator().manual_seed(0)
    adj = torch.rand(len(GENES), len(GENES), generator=g) < 0.3
    adj = adj | adj.T | torch.eye(len(GENES), dtype=torch.bool)
    order = sorted(GENES)  # the official mask is in vocabulary order, specials first, all blocked
    mask = torch.ones(len(VOCAB), len(VOCAB), dtype=torch.bool)
    mask[4:, 4:] = ~adj
    perm = [order.index(x) for x in GENES[::-1]]
    assert torch.equal(sc_map.graph_from_mask(mask, GENES[::-1], VOCAB), adj[perm][:, perm])


PD = dict(n_genes=12, dim=16, depth=2, heads=4, n_pert=3, n_context=2, n_batch=2, part_dim=4)
CODES = {"pert_dict": {"ctrl": 0, "B": 1, "A": 2}, "cell_type_dict": {"y": 0, "x": 1}, "batch_dict": {"b1": 0, "b0": 1}}


def _pd_model():
    torch.manual_seed(0)
    info = DataInfo(genes=tuple(GENES), perturbations=("A", "B"), contexts=("x", "y"), batches=("b0", "b1"))
    return build("perturbdiff", info, [f"model.backbone.dim={PD['dim']}", f"model.backbone.depth={PD['depth']}",
                                       f"model.backbone.heads={PD['heads']}", f"model.conditioner.part_dim={PD['part_dim']}"])


def test_perturbdiff_mapping_fills_every_network_parameter_and_drops_only_unused_ones():
    official = _random_state(pd_map.official_keys(**PD))
    sizes = pd_map.infer_sizes(official)
    assert (sizes["n_genes"], sizes["dim"], sizes["depth"], sizes["heads"], sizes["part_dim"]) == (12, 16, 2, 4, 4)
    model = _pd_model()
    state, report = pd_map.map_state(official, model, CODES)
    model.load_state_dict(state)
    last = "model.blocks.1.block."
    assert {k for k in report.dropped if "control_mlp" in k} == {f"{last}control_mlp.fc{i}.{s}" for i in (1, 2) for s in ("weight", "bias")}
    assert all(k.startswith(("model.control_final_layer.", "model.gene_embedding.", last + "control_mlp")) for k in report.dropped)
    assert {k for k in report.kept if k.startswith("backbone.")} == set()
    assert torch.equal(state["backbone.in_c.weight"], official["model.x_control_embedder.weight"][:, :12])
    assert torch.equal(state["backbone.token"], official["model.gene_embedding.null_emb.weight"][0])  # the preset's token_bias: shared
    assert torch.equal(state["backbone.in_p.bias"], official["model.x_embedder.bias"])
    assert torch.equal(state["backbone.blocks.1.ada_c.lin.weight"], official[last + "control_adaLN_modulation.1.weight"][:32])
    pert = official["cov_encoder.pert_encoder.weight"]
    assert torch.equal(state["conditioner.pert.weight"], pert[torch.tensor([3, 2])])  # A -> code 2 -> row 3, B -> row 2
    assert torch.equal(state["conditioner.context.weight"], official["cov_encoder.celltype_encoder.weight"][torch.tensor([1, 0])])


def test_perturbdiff_mapping_folds_the_token_vector_into_the_input_biases_for_token_bias_folded():
    official = _random_state(pd_map.official_keys(**PD))
    torch.manual_seed(0)
    info = DataInfo(genes=tuple(GENES), perturbations=("A", "B"), contexts=("x", "y"), batches=("b0", "b1"))
    model = build("perturbdiff", info, [f"model.backbone.dim={PD['dim']}", f"model.backbone.depth={PD['depth']}", f"model.backbone.heads={PD['heads']}",
                                        f"model.conditioner.part_dim={PD['part_dim']}", "model.backbone.token_bias=folded"])
    state, report = pd_map.map_state(official, model, CODES)
    model.load_state_dict(state)
    null = official["model.gene_embedding.null_emb.weight"][0]
    assert "backbone.token" not in state
    torch.testing.assert_close(state["backbone.in_p.bias"], official["model.x_embedder.bias"] + null)
    torch.testing.assert_close(state["backbone.in_c.bias"], official["model.x_control_embedder.bias"] + null)
    assert any("folded" in n for n in report.notes)


def test_perturbdiff_mapping_refuses_other_blocks_and_unknown_labels():
    official = _random_state(pd_map.official_keys(**PD))
    with pytest.raises(OfficialCheckpointError, match="lack"):
        pd_map.map_state(official, _pd_model(), {**CODES, "pert_dict": {"A": 0}})
    torch.manual_seed(0)
    info = DataInfo(genes=tuple(GENES), perturbations=("A", "B"), contexts=("x", "y"), batches=("b0", "b1"))
    seq = build("perturbdiff", info, ["model.backbone.dim=16", "model.backbone.depth=2", "model.backbone.heads=4",
                                      "model.conditioner.part_dim=4", "model.backbone.block=sequential"])
    with pytest.raises(OfficialCheckpointError, match="parallel"):
        pd_map.map_state(official, seq, CODES)


class _Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_official_files_are_read_without_running_pickled_code(tmp_path):
    ok = tmp_path / "ok.pt"
    torch.save({"model_state_dict": {"w": torch.ones(2)}, "iteration": 3, "eval_score": None}, ok)
    assert read_official(ok)["iteration"] == 3
    bad = tmp_path / "bad.pt"
    with bad.open("wb") as fh:
        pickle.dump({"x": _Payload()}, fh, protocol=2)
    with pytest.raises(OfficialCheckpointError, match="weights_only=True"):
        read_official(bad)


def _norman_like_h5ad(path):
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(0)
    conds = ["control"] * 60 + ["g1"] * 30 + ["g4"] * 30 + ["g1+g4"] * 30
    x = np.log1p(rng.poisson(1.5, (len(conds), len(GENES)))).astype(np.float32)
    obs = pd.DataFrame({"condition": pd.Categorical(conds)}, index=[f"c{i}" for i in range(len(conds))])
    ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=GENES)).write_h5ad(path)


def _import_scdfm(tmp_path):
    """An official scDFM checkpoint (random weights, iteration 7) of the Norman-like file, imported into ``tmp_path/run``:
    ``(h5ad, checkpoint, run, the import's arguments)``."""
    from distgen.cli import main

    h5ad = tmp_path / "toy.h5ad"
    _norman_like_h5ad(h5ad)
    ckpt = tmp_path / "checkpoint.pt"
    torch.save({"model_state_dict": _random_state(sc_map.official_keys(**SC)), "iteration": 7, "optimizer_state_dict": {}, "eval_score": None}, ckpt)
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps(VOCAB))
    run = tmp_path / "run"
    args = ["import", "scdfm-official", str(ckpt), f"data.dataset={h5ad}", "data.split.kind=random_conditions", "data.split.test_frac=0.34",
            "data.set_size=8", "model.dynamics.solver.steps=2", "--out", str(run), "--vocab", str(vocab)]
    assert main(args) == 0
    return h5ad, ckpt, run, args


def test_import_writes_a_run_that_predict_uses(tmp_path):
    from distgen.cli import main

    _, _, run, args = _import_scdfm(tmp_path)
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "manifest.json", "split.json", "info.json", "import.json", "checkpoints"}
    report = json.loads((run / "import.json").read_text())
    assert report["step"] == 7 and "p_head.1.weight" in report["dropped"]
    # the weights were not fitted on this run's split.train: the manifest must not say they were
    assert json.loads((run / "manifest.json").read_text())["data"]["provenance"]["fitted_on"]["model"].startswith("imported (scdfm-official)")
    assert main(["predict", str(run), "--out", str(tmp_path / "pred.h5ad")]) == 0
    import anndata as ad

    pred = ad.read_h5ad(tmp_path / "pred.h5ad")
    assert pred.n_vars == len(GENES) and np.isfinite(pred.X).all()
    assert main(args) == 2  # a second import into the same run directory is refused (a usage error, RunFolderError)
    panel = tmp_path / "panel.txt"
    panel.write_text("g9\ng2\ng5\n")
    assert main(["predict", str(run), "--out", str(tmp_path / "p3.h5ad"), "--real", str(tmp_path / "r3.h5ad"), "--genes", str(panel)]) == 0
    p3, r3 = ad.read_h5ad(tmp_path / "p3.h5ad"), ad.read_h5ad(tmp_path / "r3.h5ad")
    assert list(p3.var_names) == list(r3.var_names) == ["g2", "g5", "g9"] and p3.n_obs == r3.n_obs


def _covariate_h5ad(path):
    """A log1p file of 120 cells: conditions ctrl/A/B x cell types x/y x donors b0/b1, 10 cells each, the GENES."""
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(1)
    rows = [(c, ct, d) for c in ("ctrl", "A", "B") for ct in ("x", "y") for d in ("b0", "b1") for _ in range(10)]
    obs = pd.DataFrame(rows, columns=["condition", "cell_type", "donor"], index=[f"c{i}" for i in range(len(rows))]).astype("category")
    ad.AnnData(X=np.log1p(rng.poisson(1.0, (len(rows), len(GENES)))).astype(np.float32), obs=obs,
               var=pd.DataFrame(index=GENES)).write_h5ad(path)
    return path


def test_perturbdiff_import_reads_lightning_layout_and_keeps_ema_weights(tmp_path):

    from distgen.cli import main

    h5ad = _covariate_h5ad(tmp_path / "toy.h5ad")
    raw = {f"{k}": v for k, v in _random_state(pd_map.official_keys(**PD), seed=1).items()}
    ema = {k: v + 1.0 for k, v in raw.items()}
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": ema, "current_model_state": raw, "global_step": 11,
                "hyper_parameters": {"cov_encoding_cfg": dict(CODES)}}, ckpt)
    run = tmp_path / "run"
    args = ["import", "perturbdiff-official", str(ckpt), f"data.dataset={h5ad}", "data.schema.control_labels=[ctrl]",
            "data.schema.context_cols=[cell_type]", "data.schema.batch_col=donor", "data.split.kind=random_conditions",
            "data.split.test_frac=0.5", "data.set_size=4", "model.dynamics.sampler.start_step=3",
            "preflight.allow_unembedded=true",  # the toy split holds out a perturbation the one-hot table never trained
            "--out", str(run)]
    assert main(args) == 0
    from distgen.train.checkpoint import load_checkpoint

    ck = load_checkpoint(run, weights_only=True)
    assert ck.step == 11 and ck.ema is not None
    training = json.loads((run / "manifest.json").read_text())["training"]  # distgen import's record: not trained by distgen
    assert training["trained_by_distgen"] is False and "PerturbDiff" in training["trained_by"] and training["official_step"] == 11
    assert training["checkpoint"] == str(ckpt.resolve()) and len(training["sha256"]) == 64
    torch.testing.assert_close(ck.ema["backbone.head.lin.weight"], ck.model["backbone.head.lin.weight"] + 1.0)
    assert main(["predict", str(run), "--out", str(tmp_path / "pred.h5ad")]) == 0


def _read_x(path):
    import anndata as ad

    a = ad.read_h5ad(path)
    return np.asarray(a.X.toarray() if hasattr(a.X, "toarray") else a.X), a.obs


def test_an_imported_run_keeps_a_data_record_and_predicts_another_file_without_the_training_file(tmp_path):
    """distgen import has the data (its data: section), so it writes the record training writes; before, an imported run
    had none and ``predict RUN --data FILE`` without the training file was refused as a run 'trained before records'."""
    import shutil

    from distgen.cli import main
    from distgen.data.record import ARRAYS_FILE, RECORD_FILE, DataRecord

    h5ad = tmp_path / "toy.h5ad"
    _norman_like_h5ad(h5ad)
    shutil.copy(h5ad, tmp_path / "other.h5ad")
    ckpt = tmp_path / "checkpoint.pt"
    torch.save({"model_state_dict": _random_state(sc_map.official_keys(**SC)), "iteration": 7}, ckpt)
    (tmp_path / "vocab.json").write_text(json.dumps(VOCAB))
    run = tmp_path / "run"
    assert main(["import", "scdfm-official", str(ckpt), f"data.dataset={h5ad}", "data.split.kind=random_conditions",
                 "data.split.test_frac=0.34", "data.set_size=8", "model.dynamics.solver.steps=2", "train.seed=4", "--out", str(run),
                 "--vocab", str(tmp_path / "vocab.json")]) == 0
    assert (run / RECORD_FILE).is_file() and (run / ARRAYS_FILE).is_file()
    import distgen

    loaded = distgen.load_run(run)
    assert DataRecord.load(run).same_as(DataRecord.from_dataset(loaded.data, seed=4)) == []  # the record training would write
    with_args = ["predict", str(run), "--data", str(tmp_path / "other.h5ad")]
    assert main([*with_args, "--out", str(tmp_path / "with.h5ad")]) == 0
    h5ad.rename(tmp_path / "moved.h5ad")
    assert main([*with_args, "--out", str(tmp_path / "without.h5ad")]) == 0
    (x, obs), (y, obs2) = _read_x(tmp_path / "with.h5ad"), _read_x(tmp_path / "without.h5ad")
    np.testing.assert_array_equal(x, y)
    assert obs.equals(obs2)


def test_a_perturbdiff_import_with_frozen_tables_predicts_without_its_table_files(tmp_path):
    """PerturbDiff's frozen perturbation vectors go to the run's tables/*.csv; the run records their keys (embedding_tables.json),
    so it predicts the same cells when those files are gone (the vectors are checkpoint buffers)."""

    from distgen.cli import main
    from distgen.conditioners.table_record import TABLES_FILE

    h5ad = _covariate_h5ad(tmp_path / "toy.h5ad")
    keys = pd_map.official_keys(**PD)
    keys.pop("cov_encoder.pert_encoder.weight")  # the frozen-table layout (ESM2 vectors + a linear map), width 5
    keys |= {"cov_encoder.pert_encoder.0.weight": (PD["n_pert"] + 1, 5), "cov_encoder.pert_encoder.1.weight": (PD["part_dim"], 5),
             "cov_encoder.pert_encoder.1.bias": (PD["part_dim"],)}
    torch.save({"state_dict": _random_state(keys, seed=2), "global_step": 3, "hyper_parameters": {"cov_encoding_cfg": dict(CODES)}},
               tmp_path / "last.ckpt")
    run = tmp_path / "run"
    assert main(["import", "perturbdiff-official", str(tmp_path / "last.ckpt"), f"data.dataset={h5ad}", "data.schema.control_labels=[ctrl]",
                 "data.schema.context_cols=[cell_type]", "data.schema.batch_col=donor", "data.split.kind=random_conditions",
                 "data.split.test_frac=0.5", "data.set_size=4", "model.dynamics.sampler.start_step=3", "--out", str(run)]) == 0
    (entry,) = json.loads((run / TABLES_FILE).read_text())["tables"]
    assert entry["source"] == str((run / "tables" / "perturbation.csv").resolve()) and entry["width"] == 5
    assert sorted(entry["keys"]) == sorted(CODES["pert_dict"])
    assert main(["predict", str(run), "--out", str(tmp_path / "with.h5ad")]) == 0
    (run / "tables").rename(tmp_path / "tables_moved")
    assert main(["predict", str(run), "--out", str(tmp_path / "without.h5ad")]) == 0
    (x, obs), (y, obs2) = _read_x(tmp_path / "with.h5ad"), _read_x(tmp_path / "without.h5ad")
    np.testing.assert_array_equal(x, y)
    assert obs.equals(obs2)


def test_an_imported_run_records_that_distgen_did_not_train_it_and_predictions_say_where_the_weights_came_from(tmp_path, capsys):
    """distgen train writes the manifest's training record (steps, seconds, loss divergence); an imported run had none, so
    nothing told its predictions or its report page that the weights came from an official file. It now records what was
    imported, from where and its digest, with trained_by_distgen false; predict says so and records it in the file."""
    import hashlib
    from types import SimpleNamespace

    import anndata as ad

    from distgen.cli import main
    from distgen.report.inputs import read_run_dir
    from distgen.report.page import _training

    h5ad, ckpt, run, _ = _import_scdfm(tmp_path)
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    training = json.loads((run / "manifest.json").read_text())["training"]
    assert training["trained_by_distgen"] is False and training["by"] == "distgen import" and "scDFM" in training["trained_by"]
    assert training["checkpoint"] == str(ckpt.resolve()) and training["sha256"] == digest and training["bytes"] == ckpt.stat().st_size
    assert training["official_step"] == 7 and training["steps_done"] == 0
    capsys.readouterr()
    for args, out in (([], "pred.h5ad"), (["--data", str(h5ad)], "other.h5ad")):  # the run's split, and another file
        assert main(["predict", str(run), *args, "--out", str(tmp_path / out)]) == 0
        err = capsys.readouterr().err
        assert "imported by distgen import" in err and str(ckpt.resolve()) in err and digest[:16] in err, err
        prov = ad.read_h5ad(tmp_path / out).uns["distgen"]["provenance"]
        assert prov["imported_sha256"] == digest and prov["imported_from"] == f"scdfm-official {ckpt.resolve()}"
    page = _training(SimpleNamespace(run=read_run_dir(run)))
    assert "imported by distgen import" in page and digest[:16] in page and "No training log" not in page
