"""embedding_table: user vectors from CSV/TSV/parquet or a mapping; unseen atoms embedded by their vector."""

import numpy as np
import pytest
import torch

from distgen.conditioners.embedding_table import EmbeddingTableConditioner, resolve_names
from distgen.conditioners.tables import load_embedding_table, table_from_matrix
from distgen.config import ConfigError
from distgen.types import ConditionLabels, DataInfo

TABLE = {"AAA": [1.0, 0.0], "BBB": [0.0, 1.0], "ccc": [1.0, 1.0], "DDD": [1.0, 0.0]}


def _info(perts=("AAA", "BBB", "CCC", "DDD", "ZZZ")):
    return DataInfo(genes=("g1", "g2", "g3"), perturbations=perts)


def _cond(**kw):
    torch.manual_seed(0)
    return EmbeddingTableConditioner(_info(), **{"table": TABLE, "dim": 4, "hidden": 8, "use_context": False, **kw})


def test_load_csv_tsv_parquet_and_key_column(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"gene": ["A", "B"], "f1": [1.0, 2.0], "f2": [3.0, 4.0]})
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    from importlib.util import find_spec

    parquet = bool(find_spec("pyarrow") or find_spec("fastparquet"))  # pandas' parquet engines: no dependency of distgen[dev]
    if parquet:
        df.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.tsv", "t.parquet") if parquet else ("t.csv", "t.tsv"):
        t = load_embedding_table(tmp_path / name)
        assert set(t) == {"A", "B"}
        np.testing.assert_allclose(t["B"], [2.0, 4.0])
    df[["f1", "f2", "gene"]].to_csv(tmp_path / "k.csv", index=False)
    np.testing.assert_allclose(load_embedding_table(tmp_path / "k.csv", key_column="gene")["A"], [1.0, 3.0])


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.csv' does not exist; training reads"):  # exit 2 in the CLI
        load_embedding_table(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="different lengths"):
        load_embedding_table({"a": [1.0], "b": [1.0, 2.0]})
    with pytest.raises(ValueError, match="unsupported file type"):
        (tmp_path / "x.json").write_text("{}")
        load_embedding_table(tmp_path / "x.json")
    with pytest.raises(ValueError, match="key_column 'nope'"):
        (tmp_path / "y.csv").write_text("a,b\nx,1\n")
        load_embedding_table(tmp_path / "y.csv", key_column="nope")


def test_table_from_matrix_checks_shape():
    t = table_from_matrix(["a", "b"], np.eye(2))
    np.testing.assert_allclose(t["b"], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"\[3, F\]"):
        table_from_matrix(["a", "b", "c"], np.eye(2))


def test_resolve_names_case_insensitive_fallback():
    assert resolve_names(["CCC", "AAA", "x"], list(TABLE), False) == ["ccc", "AAA", None]
    assert resolve_names(["CCC"], list(TABLE), True) == [None]


def test_can_embed_follows_the_table_not_the_training_split():
    c = _cond()
    assert c.can_embed(["AAA", "CCC", "ZZZ", "NOT_A_GENE"]) == [True, True, False, False]


def test_embedding_is_a_function_of_the_vector():
    c = _cond()
    e = c(ConditionLabels.make([[0], [3], [1], [4]]))  # AAA and DDD share a vector; ZZZ has none
    torch.testing.assert_close(e[0], e[1])
    assert not torch.allclose(e[0], e[2])
    assert e[3].abs().max() == 0


def test_vectors_are_frozen_and_mlp_trains():
    c = _cond()
    assert not any(b.requires_grad for b in c.buffers())
    c(ConditionLabels.make([[0, 1]])).sum().backward()
    assert c.mlp[0].weight.grad.abs().sum() > 0


def test_generalises_to_an_atom_never_seen_in_training():
    """Effects linear in the table vectors: fit on four atoms, predict a fifth from its vector alone."""
    g = torch.Generator().manual_seed(0)
    vecs = torch.randn(5, 3, generator=g)
    effect = vecs @ torch.randn(3, 2, generator=g)
    info = DataInfo(genes=("x",), perturbations=tuple(f"p{i}" for i in range(5)))
    torch.manual_seed(0)
    c = EmbeddingTableConditioner(info, {f"p{i}": vecs[i].tolist() for i in range(5)}, dim=2, hidden=16,
                                  standardize=False, use_context=False)
    opt = torch.optim.Adam(c.parameters(), lr=1e-2)
    train = ConditionLabels.make([[0], [1], [2], [3]])
    for _ in range(400):
        loss = (c(train) - effect[:4]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred = c(ConditionLabels.make([[4]]))[0].detach()
    assert (pred - effect[4]).norm() < 0.5 * effect[4].norm()


def test_a_trained_runs_record_stands_in_only_for_callers_that_keep_the_vectors_in_their_state(tmp_path):
    """Loading a run, a table file it recorded is not read for the built-in conditioners (their vectors are checkpoint
    buffers); a caller that does not say it keeps them (a plugin deriving something else from the vectors) reads the file,
    so it never gets zero vectors without a word."""
    import pandas as pd

    from distgen.conditioners import table_record

    path = tmp_path / "t.csv"
    pd.DataFrame({"gene": ["A", "B"], "f1": [1.0, 2.0], "f2": [3.0, 4.0]}).to_csv(path, index=False)
    with table_record.collecting() as found:
        load_embedding_table(str(path))
    (rec,) = found
    assert (rec.source, rec.key_column, rec.width, rec.keys) == (str(path), None, 2, ("A", "B"))
    path.unlink()
    with table_record.recorded(found, tmp_path):
        stand_in = load_embedding_table(str(path), kept_in_state=True)
        assert list(stand_in) == ["A", "B"] and not any(v.any() for v in stand_in.values())
        with pytest.raises(ConfigError, match="does not exist"):
            load_embedding_table(str(path))
    with table_record.recorded(None, tmp_path), pytest.raises(ConfigError, match="Put the table file back"):
        load_embedding_table(str(path), kept_in_state=True)


@pytest.mark.parametrize("text_dtype", [object, "string"])  # "string": pandas' string dtype, what read_csv gives under pandas 3
def test_a_table_whose_names_are_in_pandas_string_dtype_reads_like_one_with_object_names(text_dtype):
    """Under pandas 3 every CSV table's name column is in pandas' string dtype, which np.issubdtype refused with a
    TypeError ("Cannot interpret StringDtype as a data type"): distgen train stopped with an internal error."""
    import pandas as pd

    from distgen.conditioners.tables import _from_frame

    df = pd.DataFrame({"gene": pd.Series(["A", "B"], dtype=text_dtype), "f0": [1.0, 2.0], "f1": pd.array([3, 4], dtype="Int64")})
    table = _from_frame(df, None, "t.csv")
    assert sorted(table) == ["A", "B"]
    np.testing.assert_allclose(table["B"], [2.0, 4.0])
    with pytest.raises(ValueError, match=r"non-numeric column\(s\) 'note'; name the key column"):
        _from_frame(df.assign(note=pd.Series(["x", "y"], dtype=text_dtype)), "gene", "t.csv")


def test_many_non_numeric_columns_are_named_five_and_counted():
    import pandas as pd

    from distgen.conditioners.tables import _from_frame

    df = pd.DataFrame({"gene": ["A", "B"], "f0": [1.0, 2.0], **{f"n{i}": ["x", "y"] for i in range(7)}})
    with pytest.raises(ValueError) as info:
        _from_frame(df, "gene", "t.csv")
    assert "non-numeric column(s) 'n0', 'n1', 'n2', 'n3', 'n4' (and 2 more); name the key column" in str(info.value)
    assert "[" not in str(info.value)
