"""Labels and gene names that are one text in two Unicode forms (``é`` composed, NFC, or ``e`` plus a combining accent,
NFD, as macOS file names and some exports write it).

Before, each form was a label of its own without a word: a perturbation split into two conditions that print alike
(two rows ``Müller`` in metrics.csv, trained as two atoms), a cell type split into two contexts. Now refused naming both
(escaped, since they print alike) and the fix; gene names so spelled, or differing by an Ensembl version suffix, are
warned about (one gene read as two columns).
"""

import unicodedata
import warnings

import numpy as np
import pytest

from distgen.data import PerturbationData, PerturbationSchema
from distgen.errors import LabelError
from distgen.types.layout import form_twins
from tests.data.conftest import make_adata

SCHEMA = PerturbationSchema(perturbation_col="condition", control_labels=("control",), context_cols=("cell_type",), batch_col="donor")
NFC, NFD = unicodedata.normalize("NFC", "Müller"), unicodedata.normalize("NFD", "Müller")


def _with_forms(col: str, old: str) -> "object":
    """``make_adata`` with ``old`` in ``col`` written as NFC ``Müller`` in half its cells and NFD in the other half."""
    adata = make_adata()
    values = adata.obs[col].astype(str).to_numpy().copy()
    rows = np.flatnonzero(values == old)
    values[rows[::2]], values[rows[1::2]] = NFC, NFD
    adata.obs[col] = values
    return adata


def test_form_twins_groups_unicode_forms_and_nothing_else():
    assert NFC != NFD and form_twins([NFC, NFD, "B"]) == [sorted([NFC, NFD])]
    assert form_twins(["µg", "μg"]) == [sorted(["µg", "μg"])]  # micro sign and Greek mu
    assert form_twins(["A", "a", "A ", "A+B", "B+A", "é"]) == []  # case, spaces, order: other checks' business
    # invisible format characters: a zero-width space copied from a web page, a spreadsheet's byte-order mark
    assert form_twins(["KLF1", "KLF1\u200b", "\ufeffB", "B"]) == [["B", "\ufeffB"], ["KLF1", "KLF1\u200b"]]


def test_a_label_with_a_zero_width_space_beside_the_same_label_without_is_refused():
    """'KLF1' and 'KLF1' + U+200B (pasted from a web page) were two perturbations, each with half the cells, silently."""
    adata = make_adata()
    values = adata.obs["condition"].astype(str).to_numpy().copy()
    rows = np.flatnonzero(values == "A")
    values[rows[::2]] = "A\u200b"
    adata.obs["condition"] = values
    with pytest.raises(LabelError, match="invisible characters") as err:
        PerturbationData.from_anndata(adata, SCHEMA)
    assert ascii("A\u200b") in str(err.value) and "category(c) != 'Cf'" in str(err.value)


@pytest.mark.parametrize(("col", "old", "what"), [("condition", "A", "perturbations"), ("cell_type", "ct1", "contexts"),
                                                   ("donor", "b1", "batches")])
def test_a_label_in_two_unicode_forms_is_refused_naming_both_forms(col, old, what):
    adata = _with_forms(col, old)
    with pytest.raises(LabelError) as err:
        PerturbationData.from_anndata(adata, SCHEMA)
    text = str(err.value)
    assert ascii(NFC) in text and ascii(NFD) in text and f"different {what}" in text
    assert f"adata.obs[{col!r}]" in text and "normalize('NFKC'" in text


def test_an_atom_of_a_combination_in_two_forms_is_refused_too():
    adata = make_adata()
    values = adata.obs["condition"].astype(str).to_numpy().copy()
    values[values == "A"], values[values == "A+B"] = NFC, f"{NFD}+B"
    adata.obs["condition"] = values
    with pytest.raises(LabelError, match="Unicode form"):
        PerturbationData.from_anndata(adata, SCHEMA)


def test_the_fix_the_message_gives_loads_one_label():
    adata = _with_forms("condition", "A")
    adata.obs["condition"] = adata.obs["condition"].astype(str).map(lambda s: unicodedata.normalize("NFKC", s))
    data = PerturbationData.from_anndata(adata, SCHEMA)
    assert NFC in data.info.perturbations and NFD not in data.info.perturbations


def test_the_streaming_reader_refuses_them_too(tmp_path):
    from distgen.data.disk import DiskCells

    path = tmp_path / "forms.h5ad"
    _with_forms("cell_type", "ct1").write_h5ad(path)
    with pytest.raises(LabelError, match="Unicode form"):
        DiskCells(path, SCHEMA)


@pytest.mark.parametrize(("pair", "said"), [((NFC, NFD), "Unicode form"),
                                             (("ENSG00000141510.1", "ENSG00000141510.2"), "Ensembl version suffix")])
def test_gene_names_that_are_one_gene_written_two_ways_are_warned_about(pair, said):
    adata = make_adata()
    adata.var_names = [*pair, *adata.var_names[2:]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = PerturbationData.from_anndata(adata, SCHEMA)
    hits = [str(w.message) for w in caught if "gene names" in str(w.message)]
    assert len(hits) == 1 and said in hits[0] and ascii(pair[0]) in hits[0] and ascii(pair[1]) in hits[0]
    assert list(data.info.genes[:2]) == list(pair)  # read as written: never renamed


def test_gene_names_that_differ_in_case_stay_quiet():  # TP53 and Tp53: two species' genes in one panel
    adata = make_adata()
    adata.var_names = ["TP53", "Tp53", *adata.var_names[2:]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PerturbationData.from_anndata(adata, SCHEMA)
    assert not [w for w in caught if "gene names" in str(w.message)]


def _nfc_data():
    adata = make_adata()
    adata.obs["condition"] = adata.obs["condition"].astype(str).replace({"A": NFC, "A+B": f"{NFC}+B"})
    return adata, PerturbationData.from_anndata(adata, SCHEMA)


def test_a_held_out_condition_written_in_the_other_form_names_the_form():
    """'cannot be held out; eligible: [..., Müller+B, ...]' named the label as one of the eligible ones it printed alike to."""
    from distgen.data import make_split
    from distgen.errors import InputDataError

    _, data = _nfc_data()
    with pytest.raises(InputDataError) as err:
        make_split(data, "combo_seen2", test_conditions=[f"B+{NFD}"])
    assert "Unicode form" in str(err.value) and ascii(f"B+{NFD}") in str(err.value) and "normalize('NFC'" in str(err.value)


def test_cells_to_encode_written_in_the_other_form_name_the_form():
    """'unknown perturbation Müller; the trained run knows ... Müller ...': now the pair, escaped, and the form to write."""
    adata, data = _nfc_data()
    other = adata.copy()
    other.obs["condition"] = other.obs["condition"].astype(str).replace({NFC: NFD, f"{NFC}+B": f"{NFD}+B"})
    with pytest.raises(Exception) as err:
        data.encode(other)
    text = str(err.value)
    assert f"{NFD!a} is {NFC!a}" in text and "normalize('NFC'" in text and "has no label id" not in text


@pytest.mark.parametrize(("unknown", "known"), [("\u00b5g", "\u03bcg"), (NFD, NFC), (NFC, NFD), ("A\u200b", "A"),
                                                ("\u00b5g\u200b", "\u03bcg")])
def test_the_form_a_hint_names_writes_the_label_as_the_data_does(unknown, known):
    """The hint's call, applied to the unknown label, gives the known one: 'µg' (micro sign) was told to use NFC, which
    leaves it as it is (only NFKC makes it 'μg')."""
    import re

    from distgen.types.layout import form_hint, form_pairs

    pairs = form_pairs([unknown], [known])
    hint = form_hint(pairs, "the data")
    form = re.search(r"does \(unicodedata\.normalize\('(\w+)', label\)\)$", hint)
    if form is not None:
        assert unicodedata.normalize(form.group(1), unknown) == known
    else:
        fix = re.search(r"without them: (.+)\)$", hint)
        assert fix is not None and eval(fix.group(1), {"unicodedata": unicodedata, "label": unknown}) == known


def test_a_hint_for_pairs_that_no_one_call_writes_names_no_call():
    from distgen.types.layout import form_hint

    hint = form_hint([(NFD, NFC), (NFC + "x", NFD + "x")], "the data")  # the data writes one NFC, the other NFD
    assert "normalize(" not in hint and ascii(NFD) in hint and "write each as the data does" in hint
