"""Messages that name the first few of a list count the rest: ``a, b, c (and 2 more)``, or ``(a, b, c, and 2 more)`` where
the message writes the list inside parentheses (``distgen.wording.first_of``).

Each of these cut its list with a bare `` ...`` (or ``... (N values)``, ``... (N in all)``), so a reader could not tell
one more label from a thousand. Each test gives a list longer than the site's cut and reads the count of the ones left
out, and that the first ones are still named as the site writes them (``repr``, or quoted only when a label holds a comma).
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.config import ConfigError
from distgen.errors import InputDataError


def test_preflight_report_counts_the_atoms_it_leaves_out():
    from distgen.models.preflight import PreflightReport

    atoms = tuple(f"a{i}" for i in range(11)) + ("x, y",)
    report = PreflightReport(component="onehot", conditions=atoms, embeddable=(False,) * 12, missing_atoms=atoms)
    text = report.message()
    assert "(atoms without an embedding: a0, a1, a2, a3, a4, a5, a6, a7, and 4 more)" in text
    assert "a8" not in text and " ..." not in text
    assert '"x, y", z' in PreflightReport(component="onehot", conditions=("x, y", "z"), embeddable=(False, False),
                                          missing_atoms=("x, y", "z")).message()  # a label holding a comma stays quoted


def test_the_doses_of_a_condition_a_dose_blind_model_is_refused_count_the_rest():
    from distgen.models.preflight import several_doses_refusal

    doses = [(float(d),) for d in range(1, 9)]
    with pytest.raises(ConfigError) as info:
        several_doses_refusal("dose", {(("dexa",), "K562"): doses}, "the data")
    assert "dexa in K562 at 1, 2, 3, 4, 5, and 3 more)" in str(info.value)


def test_unknown_and_known_labels_of_a_trained_run_count_the_rest():
    from distgen.data.foreign import unknown_labels_message
    from distgen.data.schema import PerturbationSchema
    from distgen.types import DataInfo

    known = tuple(f"P{i:02d}" for i in range(23))
    info = DataInfo(genes=("g0",), perturbations=known, contexts=tuple(f"K{i:02d}" for i in range(13)), batches=("b0",))
    text = unknown_labels_message([("Z1",), ("Z2",)], ["Q"] * 2, ["b0"] * 2, PerturbationSchema(), info)
    assert text is not None
    assert "knows 23 perturbations: P00, P01" in text and "P19 (and 3 more)" in text and "P20" not in text
    assert "known: K00, K01" in text and "K09, and 3 more)" in text and "K10" not in text


def test_combinations_written_in_two_orders_and_control_atom_labels_count_the_rest():
    from distgen.evaluation.label_notes import control_atom_note, crossed_note

    crossed = [(f"A{i}+B{i}", f"B{i}+A{i}") for i in range(5)]
    note = crossed_note(crossed, "perturbation")
    assert "'A2+B2' in the prediction, 'B2+A2' in the truth; and 2 more):" in note and "A3+B3" not in note
    read = {f"ctrl+G{i}": f"G{i}" for i in range(7)}
    note = control_atom_note(read)
    assert "labels 'ctrl+G0', 'ctrl+G1', 'ctrl+G2' (and 4 more) hold a control atom" in note


def test_a_table_without_the_required_columns_names_its_header_and_counts_the_rest(tmp_path):
    from distgen.report.files import read_rows

    path = tmp_path / "metrics.csv"
    path.write_text(",".join(f"c{i}" for i in range(11)) + "\n" + ",".join("1" * 11) + "\n")
    with pytest.raises(ValueError) as info:
        read_rows(path, required=("metric",))
    assert "(its header: ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7' (and 3 more)])" in str(info.value)


def test_a_base_chain_too_deep_counts_the_configs_it_leaves_out(tmp_path):
    from distgen.config import MAX_BASE_DEPTH, load_config

    n = MAX_BASE_DEPTH + 5
    for i in range(n):
        (tmp_path / f"c{i}.yaml").write_text(f"base: c{i + 1}.yaml\n" if i + 1 < n else "seed: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c0.yaml")
    text = str(info.value)
    assert f", and {MAX_BASE_DEPTH - 4} more)" in text and text.count(" -> ") == 3 and " ...)" not in text


def test_cell_types_pooled_into_one_context_count_the_rest():
    from distgen.data.conditions import pooled_context_warnings
    from distgen.data.schema import PerturbationSchema

    obs = pd.DataFrame({"perturbation": ["ctrl"] * 7, "cell_type": [f"T{i}" for i in range(7)]})
    (text,) = pooled_context_warnings(obs, PerturbationSchema())
    assert "holds 7 values (T0, T1, T2, T3, and 3 more) but no context column is set" in text


def test_a_file_without_a_control_label_counts_the_values_left_out():
    from distgen.data.layout import guess_control

    a = ad.AnnData(np.zeros((10, 1), dtype=np.float32), obs=pd.DataFrame({"p": [f"L{i}" for i in range(10)]},
                                                                           index=[str(i) for i in range(10)]))
    with pytest.raises(InputDataError) as info:
        guess_control({"real": a}, "p", None, "real")
    assert "'L7', and 2 more values)" in str(info.value) and "'L8'" not in str(info.value)


def test_duplicated_gene_names_count_the_rest(tmp_path):
    from distgen.data.layout import read_pair

    genes = [f"G{i // 2}" for i in range(16)]  # G0..G7, each twice
    obs = pd.DataFrame({"perturbation": ["ctrl", "A"]}, index=["c0", "c1"])
    for name in ("pred", "real"):
        ad.AnnData(np.ones((2, 16), dtype=np.float32), obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(tmp_path / f"{name}.h5ad")
    with pytest.raises(InputDataError) as info:
        read_pair(tmp_path / "pred.h5ad", tmp_path / "real.h5ad", "perturbation", "ctrl")
    assert "var_names ('G0', 'G1', 'G2', 'G3', 'G4', and 3 more): a score" in str(info.value)


def test_compare_given_six_folders_counts_the_rest(tmp_path, capsys):
    from distgen.cli import main

    folders = [str(tmp_path / f"r{i}") for i in range(6)]
    assert main(["compare", *folders]) != 0
    err = capsys.readouterr().err
    assert f"got 6 ({', '.join(folders[:4])}, and 2 more);" in err


def test_atoms_read_as_dose_labels_count_the_rest():
    from distgen.data.conditions import LabelError, check_dose_labels
    from distgen.data.schema import PerturbationSchema

    with pytest.raises(LabelError) as info:
        check_dose_labels(PerturbationSchema(dose_col="dose"), [f"x{i}@5" for i in range(7)])
    assert "('x0@5', 'x1@5', 'x2@5', 'x3@5', 'x4@5', and 2 more): asking for 'x0@5' would mean" in str(info.value)


def test_combinations_of_three_atoms_count_the_rest_in_both_lists():
    from distgen.data.splitters import _warn_large_combinations

    large = [f"A{i}+B{i}+C{i}" for i in range(14)]
    with pytest.warns(UserWarning) as caught:
        _warn_large_combinations("combo_seen", large, set(large[:7]), {f"{x}{i}" for x in "ABC" for i in range(14)}, "+")
    text = str(caught[0].message)
    assert "'A4+B4+C4' (3 of 3 seen) (and 2 more); 'A7+B7+C7'" in text
    assert "'A11+B11+C11' (and 2 more) have every atom seen" in text


def test_a_sweep_folder_given_to_compare_names_two_runs_and_counts_the_rest(tmp_path):
    from distgen.evaluation.compare import evaluation_folder

    (tmp_path / "sweep.yaml").write_text("seeds: [0]\n")
    for i in range(4):
        (tmp_path / "runs" / f"r{i}" / "eval").mkdir(parents=True)
        (tmp_path / "runs" / f"r{i}" / "eval" / "summary.json").write_text("{}")
    with pytest.raises(FileNotFoundError) as info:
        evaluation_folder(tmp_path)
    assert f"({tmp_path / 'runs' / 'r0'}, {tmp_path / 'runs' / 'r1'}, and 2 more)" in str(info.value)


def test_a_missing_label_names_four_control_labels_and_counts_the_rest():
    from distgen.data.conditions import MissingLabelError, handle_missing_labels
    from distgen.data.schema import PerturbationSchema

    schema = PerturbationSchema(control_labels=tuple(f"c{i}" for i in range(6)))
    with pytest.raises(MissingLabelError) as info:
        handle_missing_labels(pd.DataFrame({"condition": ["A", None]}), schema)
    assert "control_labels=['c0', 'c1', 'c2', 'c3' (and 2 more)])" in str(info.value)


def test_perturbations_under_two_modalities_count_the_rest():
    from distgen.data.conditions import modality_warnings
    from distgen.data.schema import PerturbationSchema

    obs = pd.DataFrame({"condition": [f"G{i}" for i in range(7)] * 2, "modality": ["CRISPRa"] * 7 + ["CRISPRi"] * 7})
    (text,) = modality_warnings(obs, PerturbationSchema())
    assert text.startswith("7 perturbations (G0, G1, G2, G3, G4, and 2 more) occur under several values")


def test_a_missing_context_column_names_ten_contexts_and_counts_the_rest():
    from distgen.data.foreign import missing_columns_message
    from distgen.data.schema import PerturbationSchema
    from distgen.types import DataInfo

    info = DataInfo(genes=("g",), perturbations=("A",), contexts=tuple(f"K{i}" for i in range(13)), batches=("b",))
    text = missing_columns_message(pd.DataFrame({"condition": ["A"]}), PerturbationSchema(context_cols=("cell_type",)), info,
                                   ["cell_type"])
    assert "(one of K0, K1, K2, K3, K4, K5, K6, K7, K8, K9, and 3 more)" in text


def test_characters_drawn_as_boxes_are_counted_past_eight():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from distgen.report.html import figure

    fig = Figure()
    fig.subplots().set_title("".join(chr(0xE000 + i) for i in range(11)))  # private-use characters: no font draws them
    html = figure(fig, "caption", "alt")
    assert "11 character(s) of this figure" in html and "(U+E007) (and 3 more); the tables" in html and "U+E008" not in html


def test_labels_outside_a_vocabulary_name_the_first_and_count_the_rest():
    from distgen.types import DataInfo, labels_in

    info = DataInfo(genes=("g",), perturbations=tuple(f"P{i}" for i in range(12)), contexts=tuple(f"K{i}" for i in range(13)),
                    batches=("b",))
    with pytest.raises(KeyError) as info_a:
        labels_in(info, [["Q"]], ["K0"], ["b"])
    assert "known atoms include 'P0', 'P1'" in str(info_a.value) and "'P9' (and 2 more)" in str(info_a.value)
    with pytest.raises(KeyError) as info_c:
        labels_in(info, [["P0"]] * 7, [f"Z{i}" for i in range(7)], ["b"] * 7)
    text = str(info_c.value)
    assert "unknown context 'Z0', 'Z1', 'Z2', 'Z3', 'Z4' (and 2 more); known: 'K0'" in text and "'K9' (and 3 more)" in text


def test_an_evaluation_without_a_perturbation_column_names_eight_columns_and_counts_the_rest(tmp_path):
    from distgen.evaluation.compare import load_evaluation

    (tmp_path / "metrics.csv").write_text(",".join(f"m{i}" for i in range(10)) + "\n" + ",".join("1" * 10) + "\n")
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(ValueError) as info:
        load_evaluation(tmp_path)
    assert "(columns: 'm0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', and 2 more)" in str(info.value)


def test_perturbations_that_look_like_combinations_count_the_rest():
    from distgen.evaluation.label_notes import foreign_note

    note = foreign_note({"_": [f"A{i}_B{i}" for i in range(7)], "|": [f"C{i}|D{i}" for i in range(5)]}, "perturbation", "pred")
    assert "perturbation(s) 'A0_B0', 'A1_B1', 'A2_B2', 'A3_B3', 'A4_B4' (and 2 more); joined by '|': 'C0|D0', 'C1|D1', " \
           "'C2|D2' (and 2 more) are scored" in note


def test_an_empty_header_still_reads_as_an_empty_list(tmp_path):
    from distgen.report.files import read_rows

    (tmp_path / "metrics.csv").write_text("")
    with pytest.raises(ValueError) as info:
        read_rows(tmp_path / "metrics.csv", required=("metric",))
    assert "(its header: [])" in str(info.value)


def test_an_empty_vocabulary_is_said_not_left_blank():
    """A vocabulary without atoms (or without contexts) is named as empty: the message does not end on "include "."""
    from distgen.types import DataInfo, labels_in

    with pytest.raises(KeyError) as atoms:
        labels_in(DataInfo(genes=("g",), perturbations=()), [["Q"]], ["all"], ["all"])
    assert "unknown perturbation 'Q': not seen in the data; the data holds no perturbation atoms" in str(atoms.value)
    with pytest.raises(KeyError) as contexts:
        labels_in(DataInfo(genes=("g",), perturbations=("P",), contexts=()), [["P"]], ["Z"], ["all"])
    assert "unknown context 'Z'; known: none" in str(contexts.value)


def test_control_atom_labels_count_the_rest_of_both_lists():
    """The labels and the conditions they are read as are both cut at three: each counts what it leaves out."""
    from distgen.evaluation.label_notes import control_atom_note

    note = control_atom_note({f"ctrl+G{i}": f"G{i}" for i in range(7)})
    assert "read without it, as 'G0', 'G1', 'G2' (and 4 more):" in note and "G3" not in note


def test_duplicated_vocabulary_entries_count_the_rest():
    from distgen.types import DataInfo

    with pytest.raises(ValueError, match=r"DataInfo.genes has duplicated entries: 'g0', 'g1', 'g2', 'g3', 'g4' \(and 2 more\)$"):
        DataInfo(genes=tuple(f"g{i}" for i in range(7)) * 2, perturbations=("P",))


def test_doses_keys_no_group_holds_count_the_rest():
    """Both lists of the refusal count what they leave out: the unknown keys (cut at five) and the conditions (at eight)."""
    from distgen.data.doses import DoseError, DoseRecord, group_doses

    conditions = [f"C{i}" for i in range(10)]
    with pytest.raises(DoseError) as refused:
        group_doses(DoseRecord("dose", {}, {}, {}, {}), conditions, ["all"] * 10, {f"Z{i}": 1.0 for i in range(8)})
    text = str(refused.value)
    assert "doses names 'Z0', 'Z1', 'Z2', 'Z3', 'Z4' (and 3 more), not a condition" in text
    assert "(10 conditions: C0, C1, C2, C3, C4, C5, C6, C7, and 2 more)" in text


@pytest.mark.parametrize("k", [1, 7])
def test_groups_under_min_cells_are_counted_with_the_first_five_named(tmp_path, k):
    """The min_cells refusal printed its count and then a Python list (``e.g. ['G0 @ all: 3', ...]``) that did not say how
    many it left out."""
    import distgen

    labels = ["ctrl"] * 20 + [f"P{i}" for i in range(k) for _ in range(2)] + ["Q"] * 6
    a = ad.AnnData(np.ones((len(labels), 4), np.float32), obs=pd.DataFrame({"pert": labels}, index=[f"c{i}" for i in range(len(labels))]))
    a.var_names = [f"g{i}" for i in range(4)]
    a.write_h5ad(tmp_path / "d.h5ad")
    with pytest.raises(InputDataError) as info:
        distgen.load_data(str(tmp_path / "d.h5ad"), schema={"perturbation_col": "pert", "control_labels": ["ctrl"], "min_cells": 3})
    text = str(info.value)
    head = "1 (condition, context) group has" if k == 1 else f"{k} (condition, context) groups have"
    shown = "; ".join(f"P{i} @ all: 2" for i in range(min(k, 5))) + (" (and 2 more)" if k == 7 else "")
    assert text.startswith(f"{head} fewer than min_cells=3 cells: {shown}; a population needs several cells"), text


@pytest.mark.parametrize("k", [1, 7])
def test_a_prediction_of_one_cell_per_perturbation_counts_the_perturbations_it_names(tmp_path, k):
    """The means-only refusal printed its count of groups and then a Python list of three conditions."""
    from distgen.pipeline.evaluate import check_not_means

    perts = [f"P{i}" for i in range(k)]
    cells = __import__("distgen").Cells(X=np.ones((k + 2, 3), np.float32), conditions=np.array(["ctrl", "ctrl", *perts]),
                                        genes=["a", "b", "c"], control="ctrl")
    with pytest.raises(InputDataError) as info:
        check_not_means(cells, "prediction")
    text = str(info.value)
    shown = ", ".join(map(repr, perts[:3])) + (", and 4 more" if k == 7 else "")
    assert f"holds one cell per perturbation ({k} perturbation{'s' if k > 1 else ''}: {shown}): a mean" in text, text
    assert "e.g. [" not in text


@pytest.mark.parametrize("k", [3, 12])
def test_a_file_without_the_control_label_names_its_values_and_counts_the_rest(tmp_path, k):
    """The no-control refusal printed ``(values include ['A', 'B', ...])``, cut at 8 without saying how many it left out."""
    from distgen.data.layout import guess_control

    labels = [f"P{i:02d}" for i in range(k)]
    real = ad.AnnData(np.ones((k + 1, 2), np.float32), obs=pd.DataFrame({"target": [*labels, "ctrl"]}))
    pred = ad.AnnData(np.ones((k, 2), np.float32), obs=pd.DataFrame({"target": labels}))
    with pytest.raises(InputDataError) as info:
        guess_control({"real": real, "pred": pred}, "target", "ctrl", "real")
    shown = ", ".join(map(repr, labels[:8])) + (", and 4 more values" if k == 12 else "")
    assert f"label 'ctrl' is not in obs['target'] (its values: {shown}); every evaluation" in str(info.value), str(info.value)


def test_labels_written_otherwise_inside_parentheses_count_the_rest_without_a_second_pair():
    """The note's list sits in parentheses: its tail read ``(and 2 more)):`` where the crossed-order note beside it reads
    ``; and 2 more):``."""
    from distgen.evaluation.label_notes import rewritten_note

    note = rewritten_note([(f"A{i} ", f"A{i}") for i in range(5)], "target")
    assert "atom ('A0 ' in the prediction, 'A0' in the truth; 'A1 ' in the prediction, 'A1' in the truth; 'A2 ' in the " \
           "prediction, 'A2' in the truth; and 2 more): distgen" in note, note
    assert "))" not in note.split("distgen scores")[0]


@pytest.mark.parametrize("k", [1, 7])
def test_blank_gene_names_are_counted_and_their_columns_named_in_one_pair_of_parentheses(k):
    from distgen.types.layout import blank_message

    names = ["" if i < k else f"g{i}" for i in range(10)]
    text = blank_message(names, list(range(k)), "the pred file")
    shown = ", ".join(f"{i} ('')" for i in range(min(k, 5))) + (", and 2 more" if k == 7 else "")
    head = "1 gene name that is" if k == 1 else f"{k} gene names that are"
    column = "column" if k == 1 else "columns"
    assert text.startswith(f"the pred file has {head} empty or blank ({column} {shown}): a gene"), text
