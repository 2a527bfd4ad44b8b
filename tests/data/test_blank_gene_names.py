"""Gene names that print as nothing: ``""``, spaces only, an invisible character only.

Before, an AnnData with a gene named ``""`` loaded (in memory and streaming) and scored: a nameless column that tables,
files and pages could not name, kept through a write and a read. Now refused at loading, naming the column's position
and the fix, as duplicated names are. Names that differ only by surrounding spaces are warned about, as other twins are.
"""

import warnings

import numpy as np
import pytest

from distgen.data import PerturbationData, PerturbationSchema
from distgen.errors import InputDataError
from distgen.types.layout import blank_names
from tests.data.conftest import make_adata

SCHEMA = PerturbationSchema(perturbation_col="condition", control_labels=("control",), context_cols=("cell_type",), batch_col="donor")
BLANKS = ["", " ", "\t", "\u200b", "\u3000"]  # empty, a space, a tab, a zero-width space, an ideographic space


def _with_gene(name: str, at: int = 6):
    adata = make_adata()
    adata.var_names = [*adata.var_names[:at], name, *adata.var_names[at + 1:]]
    return adata


def test_blank_names_finds_names_that_print_as_nothing_only():
    assert blank_names(["A", *BLANKS, "B ", " B", "\u200bB", "0", "nan"]) == list(range(1, 1 + len(BLANKS)))


def test_blank_names_of_ascii_names_as_the_unicode_rule_reads_them():
    """ASCII names take a fast path: every ASCII character alone, in a name and beside spaces, is read as the
    per-character rule (``form_key``, stripped) reads it."""
    from distgen.types.layout import form_key

    names = [c for c in map(chr, range(128))] + [f" {chr(i)}\t" for i in range(128)] + ["", " \x0b\x0c\x1c\x1f ", "\x00", "\x7f"]
    assert blank_names(names) == [i for i, n in enumerate(names) if not form_key(n).strip()]
    assert blank_names(["\x1c", "\x85", "\u00ad", "\u00a0", "\u2028"]) == [0, 1, 2, 3, 4]  # separators, soft hyphen, NEL


@pytest.mark.parametrize("name", BLANKS)
def test_a_blank_gene_name_is_refused_in_memory_naming_its_column_and_the_fix(name):
    adata = _with_gene(name)
    with pytest.raises(InputDataError, match="empty or blank") as err:
        PerturbationData.from_anndata(adata, SCHEMA)
    text = str(err.value)
    assert f"column 6 ({name!a})" in text
    fix = text.split("drop those columns (")[1].split(") and load")[0]  # the message's own call, applied
    fixed = eval(fix.removeprefix("adata = "), {"adata": adata, "np": np})
    assert blank_names(fixed.var_names) == [] and fixed.n_vars == adata.n_vars - 1
    PerturbationData.from_anndata(fixed, SCHEMA)


def test_two_empty_names_are_refused_as_blank_not_as_duplicates():
    adata = make_adata()
    adata.var_names = ["", *adata.var_names[1:6], "", *adata.var_names[7:]]
    with pytest.raises(InputDataError, match="empty or blank") as err:
        PerturbationData.from_anndata(adata, SCHEMA)
    assert "(columns 0 (''), 6 (''))" in str(err.value)


def test_the_python_api_and_the_streaming_reader_refuse_them_too(tmp_path):
    import distgen
    from distgen.data.disk import DiskCells

    path = tmp_path / "blank.h5ad"
    _with_gene("").write_h5ad(path)
    with pytest.raises(InputDataError, match="empty or blank"):
        DiskCells(path, SCHEMA)
    with pytest.raises(InputDataError, match="empty or blank"):
        distgen.load_data(str(path), schema={"perturbation_col": "condition", "control_labels": ["control"]})


def test_a_raw_matrix_with_a_blank_name_is_refused_naming_raw():
    adata = make_adata()
    adata.raw = _with_gene(" ")
    with pytest.raises(InputDataError, match="the AnnData's raw has 1 gene name"):
        PerturbationData.from_anndata(adata, PerturbationSchema(**{**SCHEMA.__dict__, "expression": "raw"}))


def test_duplicated_gene_names_stay_refused():
    with pytest.raises(InputDataError, match="duplicated gene names"):
        PerturbationData.from_anndata(_with_gene("A"), SCHEMA)


def test_gene_names_that_differ_only_by_surrounding_spaces_are_warned_about():
    adata = _with_gene("A ")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = PerturbationData.from_anndata(adata, SCHEMA)
    hits = [str(w.message) for w in caught if "gene names" in str(w.message)]
    assert len(hits) == 1 and "surrounding spaces" in hits[0] and ascii("A ") in hits[0]
    assert "A " in data.info.genes  # read as written: never renamed
