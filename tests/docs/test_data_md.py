"""docs/data.md's tables and quoted defaults are the code's: the schema defaults it states, ``make_split``'s
signature, the split kinds, the matchers, the file layout's names and the bundled datasets' sizes and contents."""

import dataclasses
import inspect
import re

import pytest

from .conftest import ROOT

PAGE = ROOT / "docs" / "data.md"


def _text() -> str:
    return PAGE.read_text()


def _table(after: str) -> list[list[str]]:
    """The rows (cells stripped) of the first markdown table after the line starting with ``after``."""
    text = _text()
    rest = text[text.index(after):]
    lines = [ln for ln in rest[rest.index("\n|"):].split("\n\n")[0].strip().splitlines() if not ln.startswith("|---")]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[1:]]


def _ticks(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_the_schema_defaults_it_states():
    from distgen.data import PerturbationSchema

    rows = {r[0].strip("`"): r[1] for r in _table("`PerturbationSchema` maps")}
    defaults = PerturbationSchema()
    (listed,) = re.findall(r"\(default: ([^)]*)\)", rows["control_labels"])
    assert tuple(_ticks(listed)) == defaults.control_labels
    (min_cells,) = re.findall(r"\(default (\d+)\)", rows["min_cells"])
    assert int(min_cells) == defaults.min_cells
    assert re.search(rf"`{defaults.missing_labels}` \(default\)", rows["missing_labels"]), rows["missing_labels"]
    assert f"(`{defaults.combo_delimiter}`)" in rows["combo_delimiter"]
    fields = {f.name for f in dataclasses.fields(PerturbationSchema)}
    assert {n for r in rows for n in re.split(r"`?, `?", r)} <= fields, set(rows)
    (target,) = re.findall(r"The `normalize_total` target is fixed\s+\((\S+)\)", _text())
    assert float(target) == defaults.target_sum


def test_make_split_signature_and_kinds():
    from distgen.data import make_split
    from distgen.data.split import SPLIT_KINDS

    (shown,) = re.findall(r"`make_split\(data, kind, seed, ([^`]*), \.\.\.\)`", _text())
    params = inspect.signature(make_split).parameters
    for item in shown.split(", "):
        key, value = item.split("=")
        assert params[key].default == float(value), item
    kinds = []
    for row in _table("`make_split(data"):
        (name,) = _ticks(row[0])
        m = re.fullmatch(r"(\w+?)(\d)/(\d)/(\d)", name)  # combo_seen0/1/2
        kinds += [m.group(1) + d for d in m.groups()[1:]] if m else [name]
    assert kinds == list(SPLIT_KINDS)


def test_the_matcher_table_is_the_built_in_matchers():
    from distgen.data.matching import matchers

    listed = [_ticks(r[0])[0] for r in _table("`SetSampler` yields")]
    builtin = [n for n in matchers.names() if matchers.plugin(n) is None]
    assert sorted(listed) == sorted(builtin)


def test_the_layout_names_and_the_sampler_default():
    from distgen.data import SetSampler, layout

    text = " ".join(_text().split())
    assert f"perturbation column `{layout.PERT_COL}`, control label `{layout.CONTROL}`" in text
    assert f"cell-type column `{layout.CELLTYPE_COL}`" in text and f"a `{layout.BATCH_COL}` column (`BATCH_COL`)" in text
    (default,) = re.findall(r"`(\w+)` for none \(the `SetSampler` default", text)
    assert inspect.signature(SetSampler).parameters["control_sets"].default == default


@pytest.mark.parametrize("name", ["norman_k562", "kang_pbmc"])
def test_the_bundled_datasets_are_what_the_table_says(name):
    import scipy.sparse as sp

    import distgen.datasets as D

    (row,) = [r for r in _table("`distgen.datasets` ships") if r[0] == f"`{name}()`"]
    n_cells, n_genes = (int(x.replace(",", "")) for x in re.fullmatch(r"([\d,]+) x ([\d,]+)", row[1]).groups())
    adata = getattr(D, name)()
    assert adata.shape == (n_cells, n_genes)
    assert sp.isspmatrix_csr(adata.X) or isinstance(adata.X, sp.csr_array)
    assert adata.X.dtype.name == "float32"
    schema = getattr(D, _ticks(row[3])[0])
    labels = adata.obs[schema.perturbation_col].astype(str)
    controls = labels.isin(schema.control_labels)
    if name == "norman_k562":
        n_ctrl, singles, pairs = map(int, re.search(r"(\d+) controls, (\d+) singles, (\d+) pairs", row[2]).groups())
        perturbed = set(labels[~controls])
        assert controls.sum() == n_ctrl
        assert sum("+" not in c for c in perturbed) == singles and sum(c.count("+") == 1 for c in perturbed) == pairs
    else:
        (types,) = re.findall(r"(\d+) cell types", row[2])
        assert adata.obs[schema.context_cols[0]].nunique() == int(types)


def test_a_saved_split_holds_the_keys_the_page_names(tmp_path):
    import json

    import distgen

    text = " ".join(_text().split())
    sentence = text[text.index("`split.save(path)` writes a small JSON file"):text.index("`Split.load` refuses")]
    keys = re.findall(r"`(\w+)`", sentence.split(" with ", 1)[1])
    data = distgen.load_data("norman_k562", split={"kind": "combo_seen2"})
    data.split.save(tmp_path / "split.json")
    saved = json.loads((tmp_path / "split.json").read_text())
    named = {"cells_hash": "data_hash"}  # "the dataset's `cells_hash` (under the key `data_hash`)"
    assert {named.get(k, k) for k in keys if k != "data_hash"} <= set(saved), (keys, sorted(saved))
    assert saved["data_hash"] == data.data.cells_hash
