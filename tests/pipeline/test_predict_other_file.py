"""``distgen predict RUN --data FILE``: a trained run predicts the perturbations of another file from that file's control cells.

Before, ``distgen predict`` generated the run's own split only; another file went through Python. Genes and labels are
matched by name (``distgen.data.foreign`` through ``predict_to_disk``), and a file that cannot be predicted is refused
(exit 2) with a message that names the fix.
"""

import json
import pathlib

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.cli import main
from distgen.config import save_yaml
from distgen.data.bundled import path as bundled_path

DATA = {"dataset": "norman_k562", "hvg": 32, "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, "set_size": 4}
#: A generator that starts from control cells (flow matching from the control source), so FILE's controls matter.
TINY = {"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8},
                  "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                  "dynamics": {"name": "flow_matching", "source": "control", "solver": {"name": "euler", "steps": 1}}},
        "data": DATA, "train": {"steps": 2, "sets_per_batch": 2, "progress": False}}
#: Perturbations of the bundled Norman file the tests predict again from another file.
SOME = ["CBL+CNN1", "FOXO4", "KLF1"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """``run/`` (TINY trained 2 steps) and its predictions of the whole training file given as ``--data`` (``orig_*.h5ad``)."""
    root = tmp_path_factory.mktemp("pf")
    cfg = save_yaml(TINY, root / "t.yaml")
    assert main(["train", str(cfg), "--out", str(root / "run")]) == 0
    assert main(["predict", str(root / "run"), "--data", bundled_path("norman_k562.h5ad"), "--out", str(root / "orig_pred.h5ad"),
                 "--real", str(root / "orig_real.h5ad")]) == 0
    return root


def _genes(root):
    return json.loads((root / "run" / "info.json").read_text())["genes"]


def _other(root, name, conditions=None, extra_genes=40, seed=0, edit=None):
    """The Norman file with the run's genes and ``extra_genes`` others in a shuffled order, its ``conditions`` (all: None)
    and every control cell, after ``edit(adata)``."""
    a = ad.read_h5ad(bundled_path("norman_k562.h5ad"))
    genes = _genes(root)
    keep = list(genes) + [g for g in a.var_names if g not in set(genes)][:extra_genes]
    keep = [keep[i] for i in np.random.default_rng(seed).permutation(len(keep))]
    cond = a.obs["condition"].astype(str)
    rows = np.ones(a.n_obs, dtype=bool) if conditions is None else cond.isin(["control", *conditions]).to_numpy()
    b = a[rows, keep].copy()
    if edit is not None:
        edit(b)
    path = root / name
    b.write_h5ad(path)
    return path


def _dense(b):
    return b.X.toarray() if hasattr(b.X, "toarray") else np.asarray(b.X)


def _groups(path, kind="predicted"):
    """``{condition: [n, G] rows}`` of a written prediction (``kind="control"``: its control rows under ``"control"``)."""
    a = ad.read_h5ad(path)
    rows = a.obs["distgen_kind"].astype(str).to_numpy() == kind
    target = a.obs["target"].astype(str).to_numpy()
    x = _dense(a)
    return {c: x[rows & (target == c)] for c in sorted(set(target[rows]))}


def test_another_file_with_shuffled_genes_extra_genes_and_some_perturbations_gives_the_same_cells(made):
    """FILE holds the run's genes shuffled among 40 others and 4 of the training file's perturbations; 3 are asked for."""
    other = _other(made, "other.h5ad", conditions=[*SOME, "FOXL2+HOXB9"])
    out, real = made / "other_pred.h5ad", made / "other_real.h5ad"
    assert main(["predict", str(made / "run"), "--data", str(other), "--perturbations", *SOME, "--out", str(out), "--real", str(real)]) == 0
    written = ad.read_h5ad(out)
    assert list(written.var_names) == _genes(made)  # in the run's gene order, the extra genes left out
    assert written.uns["distgen"]["scale"] == "lognorm"
    recorded = written.uns["distgen"]["provenance"]  # what made the file
    assert recorded["data"] == str(other) and recorded["perturbations"] == " ".join(SOME) and recorded["part"] == "file"
    ref, got = _groups(made / "orig_pred.h5ad"), _groups(out)
    assert sorted(got) == sorted(SOME)
    for c in SOME:
        np.testing.assert_array_equal(got[c], ref[c])
    assert not np.array_equal(ref["FOXO4"].mean(0), ref["KLF1"].mean(0))  # the labels reach the model: the check above can fail
    truth, ref_truth = _groups(real, "real"), _groups(made / "orig_real.h5ad", "real")
    for c in SOME:
        np.testing.assert_array_equal(truth[c], ref_truth[c])


def _write_older_encoding(a, path):
    """``a`` as anndata before 0.7 wrote it: ``obs`` / ``var`` as HDF5 tables (a record array, the index first), ``X`` dense."""
    import h5py

    def table(df):
        cols = {"index": np.asarray(df.index.astype(str), dtype="S")}
        for c in df.columns:
            v = df[c]
            cols[c] = v.to_numpy() if pd.api.types.is_numeric_dtype(v) else np.asarray(v.astype(str), dtype="S")
        return np.rec.fromarrays(list(cols.values()), names=list(cols))

    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=_dense(a).astype(np.float32))
        f.create_dataset("obs", data=table(a.obs))
        f.create_dataset("var", data=table(a.var))


def test_a_file_in_the_older_anndata_encoding_is_read_whole_with_a_note_and_gives_the_same_cells(made, capsys):
    """A file written before anndata 0.7 (the encoding of some shared datasets, e.g. scGen's Kang file) trains (read whole by
    anndata) but could not be given as --data: it was refused with "write it again". It is now read whole once, written
    again in a temporary folder (removed after), said in a note, and predicted as the same cells."""
    import warnings

    older = made / "older.h5ad"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _write_older_encoding(ad.read_h5ad(bundled_path("norman_k562.h5ad")), older)
    out = made / "older_pred.h5ad"
    assert main(["predict", str(made / "run"), "--data", str(older), "--perturbations", *SOME, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "older anndata encoding" in err and "anndata.read_h5ad(path).write_h5ad(new_path)" in err
    copy = err.split("current one at '")[1].split("'")[0]
    assert not pathlib.Path(copy).exists()  # the temporary copy is gone
    assert ad.read_h5ad(out).uns["distgen"]["provenance"]["data"] == str(older)  # the user's file is recorded, not the copy
    ref, got = _groups(made / "orig_pred.h5ad"), _groups(out)
    assert sorted(got) == sorted(SOME)
    for c in SOME:
        np.testing.assert_array_equal(got[c], ref[c])


def test_a_csc_file_is_read_whole_with_a_note_and_gives_the_same_cells(made, capsys):
    """A CSC file (scipy's column-major sparse matrix, as R converters and ``adata.X.tocsc()`` write it) trains (the load
    reads it whole) but was refused as --data: "the matrix is CSC ... or write_large_synthetic-style chunked CSR appends".
    It is now read whole once, written again as CSR in a temporary folder (removed after), said in a note, and predicted
    as the same cells as the dense file."""
    import scipy.sparse as sp

    def to_csc(b):
        b.X = sp.csc_matrix(_dense(b))

    csc = _other(made, "csc.h5ad", conditions=SOME, edit=to_csc)
    out = made / "csc_pred.h5ad"
    assert main(["predict", str(made / "run"), "--data", str(csc), "--perturbations", *SOME, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "CSC" in err and "adata.X = adata.X.tocsr()" in err
    copy = err.split("written again as CSR at '")[1].split("'")[0]
    assert not pathlib.Path(copy).exists()
    ref, got = _groups(made / "orig_pred.h5ad"), _groups(out)
    assert sorted(got) == sorted(SOME)
    for c in SOME:
        np.testing.assert_array_equal(got[c], ref[c])


def test_a_csc_layer_the_run_does_not_read_leaves_the_file_read_by_rows(made, capsys):
    """Review of the CSC copy: a file whose X (what the run reads) is CSR but which holds another matrix as CSC (a layer the
    run never reads, as R converters leave them) streamed by rows before; the first pass read the whole file into memory
    and wrote a copy of it to a temporary folder, with a note calling the file unreadable by rows. Only the matrix the run
    reads decides now: no copy, no note, the same cells."""
    import scipy.sparse as sp

    def csc_layer(b):
        b.layers["spliced"] = sp.csc_matrix(_dense(b))

    path = _other(made, "csc_layer.h5ad", conditions=SOME, edit=csc_layer)
    out = made / "csc_layer_pred.h5ad"
    assert main(["predict", str(made / "run"), "--data", str(path), "--perturbations", *SOME, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "CSC" not in err and "written again" not in err, err
    ref, got = _groups(made / "orig_pred.h5ad"), _groups(out)
    assert sorted(got) == sorted(SOME)
    for c in SOME:
        np.testing.assert_array_equal(got[c], ref[c])


def test_a_refused_file_in_the_older_encoding_is_named_as_given_not_as_its_temporary_copy(made, capsys):
    """A refusal of such a file (here: a gene the run reads is missing) named the temporary copy it was read through
    (/tmp/distgen-.../older.h5ad), removed by the time the message is read; it names the file given."""
    import warnings

    older = made / "older_lacking.h5ad"
    full = ad.read_h5ad(bundled_path("norman_k562.h5ad"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _write_older_encoding(full[:, full.var_names != _genes(made)[0]].copy(), older)
    assert main(["predict", str(made / "run"), "--data", str(older), "--out", str(made / "lacking_pred.h5ad")]) == 2
    err = capsys.readouterr().err
    copy = err.split("current one at '")[1].split("'")[0]
    refusal = err.split("error: ")[-1]
    assert f"{older} lacks 1 of the run's" in refusal and copy not in refusal, refusal


def test_the_files_own_control_cells_start_the_prediction(made):
    """The same perturbations with other control cells (the controls' values of one gene raised) give other cells."""
    gene = _genes(made)[0]

    def raise_controls(b):
        ctrl = (b.obs["condition"].astype(str) == "control").to_numpy()
        col = list(b.var_names).index(gene)
        x = _dense(b)
        x[ctrl, col] += 1.0
        b.X = x

    other = _other(made, "own_controls.h5ad", conditions=SOME, edit=raise_controls)
    out = made / "own_controls_pred.h5ad"
    assert main(["predict", str(made / "run"), "--data", str(other), "--out", str(out)]) == 0
    ref, got = _groups(made / "orig_pred.h5ad"), _groups(out)
    col = _genes(made).index(gene)
    for c in SOME:
        assert got[c][:, col].mean() > ref[c][:, col].mean() + 0.5


def test_counts_are_written_as_distgen_predict_writes_the_runs_own_truth(made, tmp_path):
    """--counts with --data: the real cells of FILE in counts are those the in-memory ``distgen predict --counts`` writes for
    the same cells (each at its own library size, obs['ncounts']); the generated ones are integers."""
    run = str(made / "run")
    assert main(["predict", run, "--out", str(tmp_path / "mem_pred.h5ad"), "--real", str(tmp_path / "mem_real.h5ad"), "--counts"]) == 0
    mem = _groups(tmp_path / "mem_real.h5ad", "real")
    other = _other(made, "counts_other.h5ad", conditions=sorted(mem)[:3])
    out, real = tmp_path / "pred.h5ad", tmp_path / "real.h5ad"
    assert main(["predict", run, "--data", str(other), "--out", str(out), "--real", str(real), "--counts", "nb"]) == 0
    got = _groups(real, "real")
    assert sorted(got) == sorted(mem)[:3]
    for c in got:  # the same cells, perhaps in another row order
        np.testing.assert_array_equal(np.unique(got[c], axis=0), np.unique(mem[c], axis=0))
    pred = ad.read_h5ad(out)
    x = _dense(pred)
    assert pred.uns["distgen"]["scale"] == "counts" and np.array_equal(x, np.round(x)) and x.min() >= 0 and x.max() > 0


def _refused(made, capsys, path, *extra):
    code = main(["predict", str(made / "run"), "--data", str(path), "--out", str(made / "refused.h5ad"), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert not (made / "refused.h5ad").exists()
    return err


def _relabel(mapping):
    def edit(b):
        b.obs["condition"] = b.obs["condition"].astype(str).replace(mapping)
    return edit


def test_a_missing_file_is_refused(made, capsys):
    err = _refused(made, capsys, made / "nowhere.h5ad")
    assert "nowhere.h5ad" in err and "no such file" in err


def test_a_home_folder_of_no_such_user_is_a_missing_file_not_an_internal_error(made, capsys):
    """pathlib's expanduser raised RuntimeError ('Could not determine home directory') on '~nouser/...': exit 1, 'internal
    error'. Such paths are read as written (os.path.expanduser), so they are missing files, named (exit 2)."""
    err = _refused(made, capsys, "~distgen_no_such_user_xyz/other.h5ad")
    assert "internal error" not in err and "~distgen_no_such_user_xyz/other.h5ad" in err and "no such file" in err
    err = _refused(made, capsys, bundled_path("norman_k562.h5ad"), "--train-data", "~distgen_no_such_user_xyz/train.h5ad")
    assert "internal error" not in err and "~distgen_no_such_user_xyz/train.h5ad" in err


def test_a_file_without_control_cells_is_refused_naming_the_relabel(made, capsys):
    path = _other(made, "noctrl.h5ad", conditions=SOME, edit=_relabel({"control": "ctrl"}))
    err = _refused(made, capsys, path)
    assert "has no control cells" in err and "replace({'ctrl': 'control'})" in err


def test_a_file_lacking_run_genes_is_refused_naming_them(made, capsys):
    genes = _genes(made)
    path = _other(made, "fewer.h5ad", conditions=SOME, edit=None)
    b = ad.read_h5ad(path)
    b[:, [g for g in b.var_names if g not in genes[:2]]].copy().write_h5ad(path)
    err = _refused(made, capsys, path)
    assert f"lacks 2 of the run's {len(genes)} genes" in err and repr(genes[0]) in err


def test_labels_the_run_never_saw_are_refused_naming_them_and_what_it_knows(made, capsys):
    path = _other(made, "labels.h5ad", conditions=SOME, edit=_relabel({"FOXO4": "foxo4", "KLF1": "NOTAGENE"}))
    err = _refused(made, capsys, path)
    assert "unknown perturbations 'NOTAGENE', 'foxo4'" in err
    assert "'foxo4' is 'FOXO4'" in err  # the training spelling
    assert "the trained run knows" in err and "FOXO4" in err.split("the trained run knows")[1]
    path = _other(made, "delimiter.h5ad", conditions=SOME, edit=_relabel({"CBL+CNN1": "CBL_CNN1"}))
    err = _refused(made, capsys, path)
    assert "CBL_CNN1 join(s) training perturbations with '_'" in err and "'CBL_CNN1' as 'CBL+CNN1'" in err


def test_raw_counts_against_a_log_run_are_refused(made, capsys):
    def to_counts(b):
        b.X = np.round(np.expm1(_dense(b)) * 3).astype(np.float32)

    err = _refused(made, capsys, _other(made, "counts.h5ad", conditions=SOME, edit=to_counts))
    assert "holds raw counts but the run was trained on log1p values" in err and "sc.pp.log1p" in err


def test_log_values_on_another_depth_scale_are_refused(made, capsys):
    def cpm(b):
        b.X = np.log1p(np.expm1(_dense(b)) * 100).astype(np.float32)

    err = _refused(made, capsys, _other(made, "cpm.h5ad", conditions=SOME, edit=cpm))
    assert "on another scale than the run's training cells" in err and "more than 4x" in err


def test_other_obs_column_names_are_refused_naming_the_rename(made, capsys):
    def rename(b):
        b.obs = b.obs.rename(columns={"condition": "perturbation"})

    err = _refused(made, capsys, _other(made, "cols.h5ad", conditions=SOME, edit=rename))
    assert "rename(columns={'perturbation': 'condition'})" in err


def test_options_that_do_not_apply_and_perturbations_the_file_lacks_are_refused(made, capsys):
    path = _other(made, "few.h5ad", conditions=SOME[:2])
    assert "--split does not apply with --data" in _refused(made, capsys, path, "--split", "val")
    err = _refused(made, capsys, path, "--perturbations", "KLF1")
    assert "holds no perturbed cells of KLF1" in err and "FOXO4" in err
    code = main(["predict", str(made / "run"), "--perturbations", "KLF1", "--out", str(made / "refused.h5ad")])
    assert code == 2 and "--perturbations chooses perturbations of a --data FILE" in capsys.readouterr().err


def _counts_file(path, genes, seed=0, n=16):
    """Raw counts: NT controls, G1, G2 and G1+G2 in two cell types."""
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 2.0, len(genes))
    effect = {"NT": 1.0, "G1": np.where(np.arange(len(genes)) % 3 == 0, 3.0, 1.0), "G2": np.where(np.arange(len(genes)) % 4 == 1, 0.2, 1.0)}
    effect["G1+G2"] = effect["G1"] * effect["G2"]
    rows, xs = [], []
    for cond, e in effect.items():
        for ct in ("T", "B"):
            xs.append(rng.poisson(base * e * 4, (n, len(genes))))
            rows += [(cond, ct)] * n
    obs = pd.DataFrame(rows, columns=["perturbation", "cell_type"], index=[f"cell{i}" for i in range(len(rows))])
    ad.AnnData(np.concatenate(xs).astype(np.float32), obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(path)


def test_a_counts_run_with_a_gene_selection_normalises_another_file_as_its_training_file(tmp_path, capsys):
    """A run trained on counts keeps 12 of 40 genes (data.hvg): another file's counts are normalised over the 40 training genes
    (those it holds; its other genes left out of the sum), as the training cells were, so the training file with its genes
    shuffled among 10 others predicts the same cells, and its real cells are those the in-memory prediction reads (normalised
    over the 12 kept genes alone, they differed by up to 5 in log1p units)."""
    genes = [f"gene{i}" for i in range(40)]
    _counts_file(tmp_path / "train.h5ad", genes)
    doc = {**TINY, "data": {"dataset": str(tmp_path / "train.h5ad"), "hvg": 12, "set_size": 4,
                            "schema": {"perturbation_col": "perturbation", "control_labels": ["NT"], "context_cols": ["cell_type"],
                                       "perturbation_type": "chemical"},
                            "split": {"kind": "combo_seen2", "test_conditions": ["G1+G2"]}}}
    run = tmp_path / "run"
    assert main(["train", str(save_yaml(doc, tmp_path / "c.yaml")), "--out", str(run)]) == 0
    a = ad.read_h5ad(tmp_path / "train.h5ad")
    extra = ad.AnnData(np.random.default_rng(1).poisson(5.0, (a.n_obs, 10)).astype(np.float32), obs=a.obs,
                       var=pd.DataFrame(index=[f"other{i}" for i in range(10)]))
    wide = ad.concat([a, extra], axis=1, merge="first")
    wide.obs = a.obs
    wide[:, list(np.random.default_rng(2).permutation(wide.var_names))].copy().write_h5ad(tmp_path / "wide.h5ad")
    for name in ("train", "wide"):
        assert main(["predict", str(run), "--data", str(tmp_path / f"{name}.h5ad"), "--out", str(tmp_path / f"{name}_pred.h5ad"),
                     "--real", str(tmp_path / f"{name}_real.h5ad")]) == 0
    ref, got = _groups(tmp_path / "train_pred.h5ad"), _groups(tmp_path / "wide_pred.h5ad")
    assert sorted(got) == sorted(ref) == ["G1", "G1+G2", "G2"]
    for c in ref:
        np.testing.assert_allclose(got[c], ref[c], atol=1e-4)
    assert np.abs(ref["G1"] - ref["G2"]).max() > 0.1  # the labels reach the model
    # the held-out cells as the run's own prediction writes them (normalised in memory at load, over every training gene)
    assert main(["predict", str(run), "--out", str(tmp_path / "mem_pred.h5ad"), "--real", str(tmp_path / "mem_real.h5ad")]) == 0
    mem = _groups(tmp_path / "mem_real.h5ad", "real")["G1+G2"]
    for name in ("train", "wide"):
        read = _groups(tmp_path / f"{name}_real.h5ad", "real")["G1+G2"]
        np.testing.assert_allclose(read[np.lexsort(read.T)], mem[np.lexsort(mem.T)], atol=1e-5)
    # --counts: the file's own cells come back as their raw counts (each at its library size over the training genes)
    assert main(["predict", str(run), "--data", str(tmp_path / "wide.h5ad"), "--out", str(tmp_path / "c_pred.h5ad"),
                 "--real", str(tmp_path / "c_real.h5ad"), "--counts"]) == 0
    written = ad.read_h5ad(tmp_path / "c_real.h5ad")
    raw = a[(a.obs["perturbation"] == "G1+G2").to_numpy(), list(written.var_names)].X
    back = _groups(tmp_path / "c_real.h5ad", "real")["G1+G2"]
    np.testing.assert_array_equal(back[np.lexsort(back.T)], raw[np.lexsort(raw.T)])
    x = _dense(ad.read_h5ad(tmp_path / "c_pred.h5ad"))
    assert np.array_equal(x, np.round(x)) and x.max() > 0
    # a context whose control cells the file lacks: refused before any work (was: an error naming neither file nor fix)
    a[~((a.obs["perturbation"] == "NT") & (a.obs["cell_type"] == "B")).to_numpy()].copy().write_h5ad(tmp_path / "no_b.h5ad")
    assert main(["predict", str(run), "--data", str(tmp_path / "no_b.h5ad"), "--out", str(tmp_path / "no_b_pred.h5ad")]) == 2
    err = capsys.readouterr().err
    assert "no_b.h5ad has no control cells of context(s) B" in err and "Add that context's control cells" in err


def test_log_values_of_another_transform_past_20_are_not_told_to_be_logged_again(made, capsys):
    """--data FILE whose X holds log values of another transform, a few past 20 (Zhao 2021's scater logcounts: max 21.65):
    refused as "normalised but not log-transformed; apply log1p", which logs log values twice. The refusal now says only a
    few values reach 20 and not to apply log1p."""
    genes = _genes(made)

    def log2_like(b):
        x = _dense(b) / np.log(2)
        x[0, list(b.var_names).index(genes[0])] = 21.0  # a gene of the run: the one value past 20
        b.X = x.astype(np.float32)

    err = _refused(made, capsys, _other(made, "log2_like.h5ad", conditions=SOME, edit=log2_like))
    assert "not log-transformed" in err and "do not apply sc.pp.log1p" in err, err
