"""``distgen predict --data`` with a context (cell type, donor) the run never trained on: predicted from that context's own
control cells by a model that reads no context (``use_context: false``, as ``recipes/cell_type_transfer.yaml``), refused
naming the fix for one that embeds contexts (docs/your_data.md)."""

import anndata as ad
import numpy as np
import pytest

from distgen.cli import main
from distgen.config import save_yaml
from tests.pipeline.test_predict_round import _counts


def _train(root, data, name, use_context):
    cfg = {"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8, "use_context": use_context},
                     "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                     "dynamics": {"name": "flow_matching", "source": "control", "solver": {"name": "euler", "steps": 1}}},
           "data": {"dataset": str(data), "schema": {"perturbation_col": "condition", "control_labels": ["control"],
                                                     "context_cols": ["cell_type"], "perturbation_type": "chemical"},
                    "split": {"kind": "combo_seen2", "test_conditions": ["P1+P2"]}, "set_size": 4},
           "train": {"steps": 2, "sets_per_batch": 2, "progress": False}}
    assert main(["train", str(save_yaml(cfg, root / f"{name}.yaml")), "--out", str(root / name)]) == 0
    return root / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("newctx")
    data = _counts(root / "train.h5ad")
    new = ad.read_h5ad(data)  # another experiment: cell type B's cells are of a donor "D" the runs never saw
    new.obs["cell_type"] = new.obs["cell_type"].astype(str).replace({"B": "D"})
    new.write_h5ad(root / "new.h5ad")
    return root, _train(root, data, "blind", False), _train(root, data, "embeds", True)


def test_a_model_that_reads_no_context_predicts_a_new_context_from_its_own_controls(runs, tmp_path, capsys):
    """It was refused: "unknown context 'D' ... (a context never trained on has no embedding)", untrue of this model."""
    root, blind, _ = runs
    out, real = tmp_path / "pred.h5ad", tmp_path / "real.h5ad"
    assert main(["predict", str(blind), "--data", str(root / "new.h5ad"), "--out", str(out), "--real", str(real)]) == 0
    assert "context(s) 'D' of" in capsys.readouterr().err  # said, with how it is predicted
    pred, truth = ad.read_h5ad(out), ad.read_h5ad(real)
    for a in (pred, truth):  # each (condition, context) as many cells as the file holds: 12 perturbed, 40 controls of D
        sizes = a.obs.groupby(["target", "celltype"], observed=True).size()
        assert sizes[("P1", "D")] == 12 and sizes[("non-targeting", "D")] == 40
    ctrl_d = lambda a: np.asarray(a.X[((a.obs["celltype"] == "D") & (a.obs["target"] == "non-targeting")).to_numpy()])  # noqa: E731
    np.testing.assert_array_equal(ctrl_d(pred), ctrl_d(truth))  # D's predictions start from the file's own D controls
    assert np.isfinite(np.asarray(pred.X)).all()
    assert main(["evaluate", "--pred", str(out), "--real", str(real), "--no-ceiling", "--metrics", "mse", "--out", str(tmp_path / "ev")]) == 0
    assert "P1 @ D" in (tmp_path / "ev" / "metrics.csv").read_text()


def test_which_models_read_contexts(runs):
    from distgen.data.foreign import reads_contexts
    from distgen.pipeline.predict import open_run

    _, blind, embeds = runs
    model = open_run(blind).model
    assert not reads_contexts(model) and reads_contexts(open_run(embeds).model)
    model.anchor.kind, model.anchor.reference = "control_mean", "training"  # each context's training control mean
    assert reads_contexts(model)
    assert reads_contexts(object())  # a model that says nothing


def test_a_model_that_embeds_contexts_still_refuses_a_new_one_naming_the_fix(runs, tmp_path, capsys):
    root, _, embeds = runs
    assert main(["predict", str(embeds), "--data", str(root / "new.h5ad"), "--out", str(tmp_path / "p.h5ad")]) == 2
    err = capsys.readouterr().err
    assert "unknown context 'D'" in err and "use_context: false" in err


def test_predict_to_disk_predicts_a_new_context_for_a_model_that_reads_none(runs, tmp_path):
    from distgen.data.disk_predict import predict_to_disk
    from distgen.data.record import DataRecord
    from distgen.errors import InputKeyError
    from distgen.pipeline.predict import open_run

    root, blind, embeds = runs
    schema = DataRecord.load(blind).schema
    model = open_run(blind, None, "ema", "cpu", [], need_data=False, read_data=False).model
    predict_to_disk(model, root / "new.h5ad", tmp_path / "p.h5ad", 4, schema=schema)
    assert "D" in set(ad.read_h5ad(tmp_path / "p.h5ad").obs["celltype"].astype(str))
    other = open_run(embeds, None, "ema", "cpu", [], need_data=False, read_data=False).model
    with pytest.raises(InputKeyError, match="unknown context 'D'"):
        predict_to_disk(other, root / "new.h5ad", tmp_path / "q.h5ad", 4, schema=schema)


# The in-memory path (Dataset.data.encode, what a Python caller predicting cells of a new AnnData uses)
# refused a new context for every model, while distgen predict --data predicts it for a model that reads no context.
def test_encode_admits_a_new_context_for_a_model_that_reads_none_and_refuses_it_as_the_cli_does(runs, capsys):
    import torch

    from distgen.errors import DistgenWarning, InputKeyError
    from distgen.pipeline.predict import open_run

    root, blind, embeds = runs
    run = open_run(blind)
    new = ad.read_h5ad(root / "new.h5ad")
    with pytest.warns(DistgenWarning, match=r"context\(s\) 'D' .*the model reads no context"):
        table = run.data.data.encode(new, model=run.model)
    assert "D" not in run.model.info.contexts and table.info.contexts[-1] == "D"  # a new id, after the trained ones
    is_d = torch.from_numpy((new.obs["cell_type"].astype(str) == "D").to_numpy())
    assert [table.info.contexts[i] for i in table.labels.context[is_d].unique().tolist()] == ["D"]
    kept = ~is_d  # the trained contexts keep their ids
    assert [table.info.contexts[i] for i in table.labels.context[kept].tolist()] == new.obs["cell_type"].astype(str)[kept.numpy()].tolist()
    control = table.X[is_d & (table.labels.perturbation[:, 0] < 0)][:8].unsqueeze(0)
    picked = (is_d & (table.labels.perturbation[:, 0] >= 0)).nonzero()[0, 0]
    out = run.model.predict(control, torch.ones(control.shape[:2], dtype=torch.bool), table.labels.index(slice(int(picked), int(picked) + 1)))
    assert torch.isfinite(out).all()
    cli = capsys  # the message a model that embeds contexts gets is the CLI's (unknown context, how to predict one)
    assert main(["predict", str(embeds), "--data", str(root / "new.h5ad"), "--out", str(root / "q.h5ad")]) == 2
    said = cli.readouterr().err
    other = open_run(embeds)
    for model in (other.model, None):  # no model: whether it reads contexts is unknown, so refused with how to say it
        with pytest.raises(InputKeyError) as info:
            other.data.data.encode(new, **({} if model is None else {"model": model}))
        msg = str(info.value)
        tail = "labels the trained run does not know: "
        assert "unknown context 'D'" in msg and "use_context: false" in msg
        assert msg.split(tail, 1)[1].startswith(said.split(tail, 1)[1].strip())  # the CLI's words (and, without a model, a hint)
        assert ("encode(adata, model=model)" in msg) == (model is None)
