"""``distgen predict RUN --data FILE`` is held to the rule ``distgen predict RUN`` holds the run's split to, and writes a
``normalize: false`` run's cells as the model reads and returns them.

Before, ``--data`` checked only the perturbation atoms: a model that holds a learned row per context (a covariate
conditioner) predicted the cells of a context no training set carried (a ``held_out_context`` cell type trained without
its control sets, a cell type of control cells only) from that untrained row, silently, where ``distgen predict RUN``
refused (exit 2) or warned (``preflight.allow_unembedded``).
"""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from distgen.cli import main
from distgen.config import save_yaml
from distgen.models.generator import Generator

SCHEMA = {"perturbation_col": "condition", "control_labels": ["control"], "context_cols": ["cell_type"], "perturbation_type": "chemical"}
#: A conditioner with a learned row per context (``embeds_contexts``).
MODEL = {"name": "generator", "conditioner": {"name": "covariate", "part_dim": 4, "dim": 8},
         "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
         "dynamics": {"name": "flow_matching", "source": "control", "solver": {"name": "euler", "steps": 1}}}
TRAIN = {"steps": 2, "sets_per_batch": 2, "progress": False}


def write_cells(path, contexts=("ct1", "ct2"), controls_only=(), n=8, genes=8, seed=0):
    """Counts of control, A, B and A+B in ``contexts`` (``controls_only``: contexts with control cells alone)."""
    rng = np.random.default_rng(seed)
    rows = [(c, ct) for ct in contexts for c in ("control", "A", "B", "A+B") for _ in range(n) if c == "control" or ct not in controls_only]
    obs = pd.DataFrame(rows, columns=["condition", "cell_type"], index=[f"c{i}" for i in range(len(rows))])
    base = rng.gamma(2.0, 3.0, genes)
    shift = {"control": 1.0, "A": 2.0, "B": 0.5, "A+B": 1.5}
    x = np.stack([rng.poisson(base * shift[c] * (1 + contexts.index(ct))) for c, ct in rows]).astype(np.float32)
    ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(genes)])).write_h5ad(path)
    return path


def cells_of(path, out, context):
    a = ad.read_h5ad(path)
    a[(a.obs["cell_type"] == context).to_numpy()].copy().write_h5ad(out)
    return out


def train(tmp_path, data, allow):
    cfg = save_yaml({"model": MODEL, "data": {"schema": SCHEMA, "set_size": 4, **data}, "train": TRAIN,
                     "preflight": {"allow_unembedded": allow}}, tmp_path / "c.yaml")
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    return run


def set_allow(run, allow):
    """The run's ``preflight.allow_unembedded``, as a user sets it in RUN/config.yaml."""
    doc = yaml.safe_load((run / "config.yaml").read_text())
    doc["preflight"] = {"allow_unembedded": allow}
    (run / "config.yaml").write_text(yaml.safe_dump(doc))


def predict(run, out, capsys, *data):
    code = main(["predict", str(run), *(["--data", str(data[0])] if data else []), "--out", str(out)])
    return code, capsys.readouterr().err


def preflight_lines(err):
    return [line for line in err.splitlines() if "pre-flight" in line or "config error" in line]


def test_a_held_out_context_in_no_training_set_is_refused_or_warned_alike_for_the_split_and_for_a_file(tmp_path, capsys):
    """The run holds out ct2 with data.control_sets: none, so its context row is never trained. FILE holds the ct2 cells:
    --data refuses it (exit 2, the split path's message and fix) and warns under allow_unembedded, as the split path does."""
    path = write_cells(tmp_path / "d.h5ad")
    run = train(tmp_path, {"dataset": str(path), "control_sets": "none",
                           "split": {"kind": "held_out_context", "test_contexts": ["ct2"], "seed": 0}}, allow=True)
    capsys.readouterr()
    ct2 = cells_of(path, tmp_path / "ct2.h5ad", "ct2")
    # allowed: both predict, with the same warning
    code, split_err = predict(run, tmp_path / "split.h5ad", capsys)
    assert code == 0, split_err
    code, file_err = predict(run, tmp_path / "file.h5ad", capsys, ct2)
    assert code == 0, file_err
    warned = preflight_lines(split_err)
    assert len(warned) == 1 and "context(s) ct2 come from untrained context embeddings" in warned[0]
    assert preflight_lines(file_err) == warned
    # refused: both stop before writing, naming the same fix; --data adds how to leave the cells out
    set_allow(run, False)
    code, split_err = predict(run, tmp_path / "split2.h5ad", capsys)
    assert code == 2 and not (tmp_path / "split2.h5ad").exists()
    code, file_err = predict(run, tmp_path / "file2.h5ad", capsys, ct2)
    assert code == 2 and not (tmp_path / "file2.h5ad").exists()
    for err in (split_err, file_err):
        assert "1 held-out context(s) (ct2) are in no training set" in err
        assert "use_context=false" in err and "control_sets=auto" in err and "preflight.allow_unembedded=true" in err
    assert split_err.split("Their embeddings")[0] == file_err.split("Their embeddings")[0]
    assert "ct2.h5ad without those cells" in file_err
    # the trained context of the same run predicts from FILE without a word
    code, err = predict(run, tmp_path / "ct1.h5ad", capsys, cells_of(path, tmp_path / "ct1_cells.h5ad", "ct1"))
    assert code == 0 and not preflight_lines(err), err


def test_a_context_of_control_cells_only_is_refused_for_a_file(tmp_path, capsys):
    """ct2 has control cells only in the training file: the run's split holds no ct2 cell to predict (the split path passes),
    and with control_sets: none no training set carries ct2, so FILE's perturbed ct2 cells would come from its untrained row."""
    run = train(tmp_path, {"dataset": str(write_cells(tmp_path / "d.h5ad", controls_only=("ct2",))), "control_sets": "none",
                           "split": {"kind": "combo_seen2", "test_conditions": ["A+B"]}}, allow=False)
    capsys.readouterr()
    code, err = predict(run, tmp_path / "split.h5ad", capsys)
    assert code == 0 and not preflight_lines(err), err
    other = cells_of(write_cells(tmp_path / "other.h5ad", seed=1), tmp_path / "ct2.h5ad", "ct2")
    code, err = predict(run, tmp_path / "file.h5ad", capsys, other)
    assert code == 2 and "1 held-out context(s) (ct2) are in no training set" in err
    assert not (tmp_path / "file.h5ad").exists()


def test_a_normalize_false_run_writes_the_models_cells_from_the_files_raw_counts(tmp_path, capsys, monkeypatch):
    """A run on raw counts (data.schema.normalize: false): --data feeds the model FILE's counts as stored and writes what
    the model returns, neither normalised nor log-transformed (recorded from the model's own predict calls)."""
    path = write_cells(tmp_path / "d.h5ad", n=8)
    run = train(tmp_path, {"dataset": str(path), "schema": {**SCHEMA, "normalize": False},
                           "split": {"kind": "combo_seen2", "test_conditions": ["A+B"]}}, allow=False)
    calls = []
    original = Generator.predict

    def recording(self, control, mask, labels, *args, **kwargs):
        out = original(self, control, mask, labels, *args, **kwargs)
        calls.append((control.detach().cpu().numpy().copy(), out.detach().float().cpu().numpy().copy()))
        return out

    monkeypatch.setattr(Generator, "predict", recording)
    out, real = tmp_path / "pred.h5ad", tmp_path / "real.h5ad"
    assert main(["predict", str(run), "--data", str(path), "--out", str(out), "--real", str(real)]) == 0, capsys.readouterr().err
    a = ad.read_h5ad(path)
    raw = np.asarray(a.X)
    assert raw.max() > 20 and np.array_equal(raw, np.round(raw))  # counts, which a log1p(normalize_total) would change
    stored = {r.tobytes() for r in raw[(a.obs["condition"] == "control").to_numpy()]}
    assert calls and all(r.tobytes() in stored for control, _ in calls for r in control.reshape(-1, raw.shape[1]))
    written = ad.read_h5ad(out)
    assert written.uns["distgen"]["scale"] == "counts"
    kind = written.obs["distgen_kind"].astype(str).to_numpy()
    x = np.asarray(written.X.toarray() if hasattr(written.X, "toarray") else written.X)
    returned = np.concatenate([o.reshape(-1, raw.shape[1]) for _, o in calls])
    assert len(returned) == (kind == "predicted").sum() == 48  # 8 cells of A, B and A+B in two cell types, sets of 4: nothing cut
    np.testing.assert_allclose(x[kind == "predicted"], returned, rtol=1e-6)
    assert np.abs(returned).max() > 5  # model outputs on the counts' scale: a log1p rewrite of them would show
    truth = ad.read_h5ad(real)
    t = np.asarray(truth.X.toarray() if hasattr(truth.X, "toarray") else truth.X)
    real_rows = truth.obs["distgen_kind"].astype(str).to_numpy() == "real"
    perturbed = raw[(a.obs["condition"] != "control").to_numpy()]
    assert sorted(map(bytes, t[real_rows].astype(np.float32))) == sorted(map(bytes, perturbed.astype(np.float32)))


def test_empty_control_cells_of_a_file_are_refused_for_a_whole_context_and_warned_of_otherwise(tmp_path, capsys):
    """Each prediction of FILE starts from FILE's control cells of its context and, with --counts, draws its library size
    from them: a context whose controls were all empty (every gene 0) was predicted without a word, every generated cell
    of it 0 in counts; a few empty controls gave as many all-zero predictions, told only by scanpy's 'Some cells have zero
    counts'."""
    data = write_cells(tmp_path / "d.h5ad")
    run = train(tmp_path, {"dataset": str(data)}, False)
    a = ad.read_h5ad(data)
    ctrl = (a.obs["condition"] == "control").to_numpy()
    whole = a.copy()
    whole.X[ctrl & (a.obs["cell_type"] == "ct2").to_numpy()] = 0
    whole.write_h5ad(tmp_path / "whole.h5ad")
    some = a.copy()
    some.X[np.flatnonzero(ctrl)[:3]] = 0
    some.write_h5ad(tmp_path / "some.h5ad")
    for counts in ([], ["--counts", "nb"]):
        code = main(["predict", str(run), "--data", str(tmp_path / "whole.h5ad"), "--out", str(tmp_path / "w.h5ad"), *counts])
        err = capsys.readouterr().err
        assert code == 2 and "every control cell of context(s) ct2 has no expression" in err and "Traceback" not in err
        assert not (tmp_path / "w.h5ad").exists()
        with pytest.warns(UserWarning, match="3 of the 16 control cells predictions start from have no expression"):
            code = main(["predict", str(run), "--data", str(tmp_path / "some.h5ad"), "--out", str(tmp_path / "s.h5ad"), "--overwrite", *counts])
        assert code == 0
