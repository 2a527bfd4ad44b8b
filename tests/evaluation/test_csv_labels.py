"""metrics.csv and calibration.csv keep every label exactly: read back by pandas (labels as text) or by distgen's reader."""

import math

import pandas as pd

from distgen.evaluation.report import read_table_csv, write_csv, write_long_csv
from distgen.evaluation.suite import MetricTable

LABELS = ("001", "1e3", "1.0", "A+B", "a, b", 'say "hi"', "two\nlines", "A|B <i>x</i>", "é ü 中", " lead", "=SUM(A1)", "x" * 300)


def _table() -> MetricTable:
    n = len(LABELS)
    return MetricTable(perts=LABELS, values={"mse": [float(i) for i in range(n)], "pearson_delta": [math.nan] * n},
                       reasons={"pearson_delta": dict.fromkeys(LABELS, "constant; no spread")},
                       info={"context": ["1e3"] * n, "n_cells_real": [10] * n})


def test_metrics_csv_round_trips_labels_through_pandas_and_distgen(tmp_path):
    write_csv(_table(), tmp_path / "metrics.csv")
    frame = pd.read_csv(tmp_path / "metrics.csv", dtype={"perturbation": str, "context": str})
    assert tuple(frame["perturbation"]) == LABELS and set(frame["context"]) == {"1e3"}
    assert frame["mse"].tolist() == list(range(len(LABELS))) and frame["pearson_delta"].isna().all()
    rows = read_table_csv(tmp_path / "metrics.csv")
    assert tuple(r["perturbation"] for r in rows) == LABELS and {r["context"] for r in rows} == {"1e3"}
    assert [r["mse"] for r in rows] == list(range(len(LABELS))) and all(math.isnan(r["pearson_delta"]) for r in rows)


def test_calibration_csv_round_trips_labels_through_pandas(tmp_path):
    write_long_csv({"control": _table(), "ceiling": _table()}, tmp_path / "calibration.csv")
    frame = pd.read_csv(tmp_path / "calibration.csv", dtype={"perturbation": str})
    for source in ("control", "ceiling"):
        part = frame[(frame["source"] == source) & (frame["metric"] == "mse")]
        assert tuple(part["perturbation"]) == LABELS and part["value"].tolist() == list(range(len(LABELS)))
