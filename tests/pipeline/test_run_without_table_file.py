"""A trained run whose model read an embedding-table file loads and predicts without that file.

Before, loading a run (``distgen predict RUN``, ``distgen.load_run``) built its conditioner again from ``config.yaml``,
which read the table file, although every vector the model uses is a checkpoint buffer: a moved table gave a bare
"does not exist" (exit 1). Training now writes ``embedding_tables.json`` (the file's keys and width) and loading builds
the model from it; training still reads the file and says so when it is missing (exit 2).
"""

import json
import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import distgen
from distgen.cli import main
from distgen.conditioners.embedding_table import EmbeddingTableConditioner
from distgen.conditioners.table_record import TABLES_FILE
from distgen.config import save_yaml
from distgen.data.bundled import path as bundled_path

SOME = ["CBL+CNN1", "FOXO4", "KLF1"]


def _atoms():
    conds = ad.read_h5ad(bundled_path("norman_k562.h5ad")).obs["condition"].astype(str).unique()
    return sorted({a for c in conds if c != "control" for a in c.split("+")})


def _config(table, conditioner):
    node = ({"name": "embedding_table", "table": str(table), "dim": 8, "hidden": 8} if conditioner == "embedding_table" else
            {"name": "covariate", "perturbation": "table", "perturbation_table": str(table), "part_dim": 4, "dim": 8})
    return {"model": {"name": "generator", "conditioner": node, "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                      "dynamics": {"name": "flow_matching", "source": "control", "solver": {"name": "euler", "steps": 1}}},
            "data": {"dataset": "norman_k562", "hvg": 32, "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, "set_size": 4},
            "train": {"steps": 2, "sets_per_batch": 2, "progress": False},
            "preflight": {"allow_unembedded": True}}  # KLF1 has no row: predicted with a warning


def _read(path):
    a = ad.read_h5ad(path)
    return (a.X.toarray() if hasattr(a.X, "toarray") else np.asarray(a.X)), a.obs


@pytest.fixture(scope="module", params=["embedding_table", "covariate"])
def made(request, tmp_path_factory):
    """A run trained with a table file that lacks one atom (KLF1), and its predictions made while the file is there."""
    root = tmp_path_factory.mktemp("table")
    atoms = [a for a in _atoms() if a != "KLF1"]
    rng = np.random.default_rng(0)
    pd.DataFrame(rng.normal(size=(len(atoms) + 2, 5)), index=pd.Index([*atoms, "EXTRA1", "EXTRA2"], name="gene")).to_csv(root / "t.csv")
    cfg = save_yaml(_config(root / "t.csv", request.param), root / "c.yaml")
    assert main(["train", str(cfg), "--out", str(root / "run")]) == 0
    sub = ad.read_h5ad(bundled_path("norman_k562.h5ad"))
    sub[sub.obs["condition"].astype(str).isin(["control", *SOME]).to_numpy()].copy().write_h5ad(root / "other.h5ad")
    assert main(["predict", str(root / "run"), "--out", str(root / "split_with.h5ad")]) == 0
    assert main(["predict", str(root / "run"), "--data", str(root / "other.h5ad"), "--out", str(root / "other_with.h5ad")]) == 0
    return root


def test_the_run_records_the_tables_keys_and_width(made):
    doc = json.loads((made / "run" / TABLES_FILE).read_text())
    (entry,) = doc["tables"]
    keys = pd.read_csv(made / "t.csv")["gene"].tolist()
    assert entry["source"] == str(made / "t.csv") and entry["width"] == 5 and entry["keys"] == keys


def test_a_run_predicts_the_same_arrays_without_its_table_file(made):
    (made / "t.csv").rename(made / "moved.csv")
    try:
        assert main(["predict", str(made / "run"), "--out", str(made / "split_without.h5ad")]) == 0
        assert main(["predict", str(made / "run"), "--data", str(made / "other.h5ad"), "--out", str(made / "other_without.h5ad")]) == 0
        run = distgen.load_run(made / "run")
        cond = run.model.conditioner
        assert cond.can_embed(["CBL", "KLF1", "EXTRA1", "cbl", "NOPE"]) == [True, False, True, True, False]
        table = pd.read_csv(made / "moved.csv", index_col=0)
        if isinstance(cond, EmbeddingTableConditioner):  # z-scored over the table's rows (standardize: true)
            table = (table - table.mean()) / table.std(ddof=0)
        atoms = list(run.record.info.perturbations)
        got = cond.atom_vectors.numpy()
        for a in ("CBL", "FOXO4"):  # the training file's vectors, from the checkpoint (the record holds none)
            np.testing.assert_allclose(got[atoms.index(a)], table.loc[a].to_numpy(), rtol=1e-5, atol=1e-6)
        assert not got[atoms.index("KLF1")].any()
    finally:
        (made / "moved.csv").rename(made / "t.csv")
    for name in ("split", "other"):
        (x, obs), (y, obs2) = _read(made / f"{name}_with.h5ad"), _read(made / f"{name}_without.h5ad")
        np.testing.assert_array_equal(x, y)
        assert obs.equals(obs2)


def test_training_without_the_table_file_says_training_reads_it(made, tmp_path, capsys):
    cfg = json.loads(json.dumps(_config(tmp_path / "gone.csv", "embedding_table")))
    capsys.readouterr()
    assert main(["train", str(save_yaml(cfg, tmp_path / "c.yaml")), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "gone.csv' does not exist" in err and "training reads" in err and "embedding_table: table" in err


def test_a_run_without_the_record_names_the_path_to_put_the_table_back_at(made, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(made / "run", old)
    (old / TABLES_FILE).unlink()  # a run trained before runs recorded their tables
    (made / "t.csv").rename(made / "moved.csv")
    try:
        capsys.readouterr()
        assert main(["predict", str(old), "--out", str(tmp_path / "p.h5ad")]) == 2
        err = capsys.readouterr().err
        assert str(made / "t.csv") in err and TABLES_FILE in err and "Put the table file back" in err
    finally:
        (made / "moved.csv").rename(made / "t.csv")
    assert main(["predict", str(old), "--out", str(tmp_path / "p.h5ad")]) == 0
    np.testing.assert_array_equal(_read(tmp_path / "p.h5ad")[0], _read(made / "split_with.h5ad")[0])


def _table_warnings(record):
    return [str(w.message) for w in record if "embedding table" in str(w.message)]


def _swap_table(made, edit):
    """Replace ``t.csv`` by ``edit(text)`` (the training's kept aside); returns the restore function."""
    original = (made / "t.csv").read_text()
    (made / "t.csv").write_text(edit(original))
    return lambda: (made / "t.csv").write_text(original)


def _edit_one_value(text):
    lines = text.splitlines()
    cells = lines[2].split(",")
    cells[1] = str(float(cells[1]) + 0.5)  # one value of the second atom
    return "\n".join([*lines[:2], ",".join(cells), *lines[3:]]) + "\n"


def _drop_extra1(text):
    return "\n".join(ln for ln in text.splitlines() if not ln.startswith("EXTRA1,")) + "\n"


@pytest.mark.parametrize("edit", ["unchanged", "one value", "a row dropped", "unreadable"])
def test_a_table_file_there_is_checked_against_the_checkpoint_and_never_used_over_it(made, tmp_path, edit):
    """Loading a run read no table file at all (the record's keys, the checkpoint's vectors), so a table edited since
    training went unsaid. Where the file is there it is read and compared: other vectors, other rows or an unreadable file
    warn naming the file and the checkpoint, and the run predicts with the checkpoint's vectors all the same."""
    import warnings

    edits = {"unchanged": lambda t: t, "one value": _edit_one_value, "a row dropped": _drop_extra1,
             "unreadable": lambda t: "\x00\x01 not a table"}
    restore = _swap_table(made, edits[edit])
    try:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            run = distgen.load_run(made / "run")
        said = _table_warnings(record)
        assert main(["predict", str(made / "run"), "--out", str(tmp_path / "p.h5ad")]) == 0
    finally:
        restore()
    np.testing.assert_array_equal(_read(tmp_path / "p.h5ad")[0], _read(made / "split_with.h5ad")[0])  # the checkpoint's
    if edit == "unchanged":
        assert said == []
        return
    (message,) = said
    ckpt = max(p for p in (made / "run" / "checkpoints").iterdir() if p.name.startswith("step_"))
    assert str(made / "t.csv") in message and str(ckpt) in message and "predicts with the" in message, message
    expected = {"one value": "differ from those its checkpoint", "a row dropped": "gone: ['EXTRA1']",
                "unreadable": "cannot be read"}[edit]
    assert expected in message, message
    if edit == "one value" and not isinstance(run.model.conditioner, EmbeddingTableConditioner):
        assert "1 of " in message  # only the edited atom's row (the embedding table z-scores columns: every row moves)


def test_a_run_without_the_record_warns_of_an_edited_table_file(made, tmp_path):
    """A run trained before runs recorded their tables reads the file to build its model: an edited one is said too."""
    import warnings

    old = tmp_path / "old"
    shutil.copytree(made / "run", old)
    (old / TABLES_FILE).unlink()
    restore = _swap_table(made, _edit_one_value)
    try:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            distgen.load_run(old)
    finally:
        restore()
    (message,) = _table_warnings(record)
    assert str(made / "t.csv") in message and "differ from those its checkpoint" in message and str(old) in message


def _parses(monkeypatch):
    """The table files parsed from now on (``tables._read_file``'s paths)."""
    from distgen.conditioners import tables

    seen: list[str] = []
    read = tables._read_file
    monkeypatch.setattr(tables, "_read_file", lambda path, key: seen.append(str(path)) or read(path, key))
    return seen


def test_the_record_keeps_the_files_sha256_and_loading_parses_no_file_training_read(made, monkeypatch):
    """Loading parsed a table file that is there every time (seconds for a genome-wide CSV) to compare it with the
    checkpoint; the bytes training read (their sha256, recorded) are not parsed: their vectors are the checkpoint's."""
    import hashlib
    import warnings

    (entry,) = json.loads((made / "run" / TABLES_FILE).read_text())["tables"]
    assert entry["sha256"] == hashlib.sha256((made / "t.csv").read_bytes()).hexdigest()
    seen = _parses(monkeypatch)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        run = distgen.load_run(made / "run")
    assert seen == [] and _table_warnings(record) == []
    assert run.model.conditioner.can_embed(["CBL", "KLF1", "EXTRA1"]) == [True, False, True]


@pytest.mark.parametrize("how", ["same size and time", "no hash recorded"])
def test_a_file_not_known_by_its_hash_is_parsed_and_compared(made, tmp_path, monkeypatch, how):
    """An edit that keeps the file's size and modification time is found (the hash is of the contents); a record written
    before the hash was kept parses the file as before, and an unchanged one says nothing."""
    import os
    import warnings

    run_dir = made / "run"
    if how == "no hash recorded":
        run_dir = tmp_path / "old"
        shutil.copytree(made / "run", run_dir)
        doc = json.loads((run_dir / TABLES_FILE).read_text())
        del doc["tables"][0]["sha256"]
        (run_dir / TABLES_FILE).write_text(json.dumps(doc))
    path = made / "t.csv"
    original, st = path.read_text(), path.stat()
    edited = _edit_one_value(original)
    if how == "same size and time":
        edited = edited.replace(edited.splitlines()[2], edited.splitlines()[2][: len(original.splitlines()[2])].ljust(len(original.splitlines()[2]), "0"))
        assert len(edited) == len(original) and edited != original
    seen = _parses(monkeypatch)
    try:
        path.write_text(edited)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            distgen.load_run(run_dir)
    finally:
        path.write_text(original)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    (message,) = _table_warnings(record)
    assert seen == [str(path)] and "differ from those its checkpoint" in message, (seen, message)
    if how == "no hash recorded":
        seen.clear()
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            distgen.load_run(run_dir)
        assert seen == [str(path)] and _table_warnings(record) == []
