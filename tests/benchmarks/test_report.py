"""Markdown and docs section writing of the harness."""

from benchmarks.harness.measure import hardware
from benchmarks.harness.report import SECTION, markdown, update_docs


def _result():
    return {
        "mode": "tiny", "device": "cpu", "hardware": hardware(), "config": {"stream_set_size": 8, "stream_sets": 4, "stream_genes": 16},
        "train": [{"preset": "p-small", "size": "small", "genes": 16, "sets": 2, "set_size": 4, "params": 10, "precision": "fp32",
                   "steps_per_s": 2.0, "cells_per_s": 16.0, "achieved_tflops": 1e-6, "mfu": None},
                  {"preset": "p", "size": "official", "skipped": "one step took 99 s"}],
        "sampling": [{"preset": "p-small", "steps": 2, "nfe": 2, "seconds": 0.1, "cells_per_s": 80.0}, {"preset": "q", "error": "boom"}],
        "scaling": [{"preset": "p-small", "genes": {"points": [{"genes": 8, "step_s": 0.1}], "exponent": 1.0},
                     "set_size": {"points": [{"set_size": 4, "step_s": 0.1}], "exponent": 2.0}}, {"preset": "q", "error": "bad"}],
        "streaming": {"epochs": {"points": [{"cells": 100, "streamed_cells": 90, "generate_s": 0.1, "open_s": 0.1, "epoch_s": 1.0, "epoch_cpu_s": 0.9,
                                              "cells_per_s": 90.0, "peak_rss_mb": 300.0}], "exponent": 1.01},
                      "wait": [{"preset": "p-small", "steps": 3, "num_workers": 1, "step_s": 1.0, "wait_s": 0.01, "wait_fraction": 0.01}]},
        "evaluation": {"skipped": "tiny"},
        "checks": [{"check": "rss", "value": 300.0, "passed": True, "enforced": True}, {"check": "wait", "value": 0.5, "passed": False, "enforced": False}],
    }


def test_markdown_names_hardware_command_and_every_section():
    md = markdown(_result(), "python -m benchmarks run --mode tiny")
    for text in ("Hardware:", "`python -m benchmarks run --mode tiny`", "| p-small | small |", "one step took 99 s", "boom", "bad",
                 "cells^1.010", "epoch s (CPU)", "wait fraction", "not met (reported)", "| rss | 300 | pass |"):
        assert text in md, text


def test_markdown_dates_a_run_and_gives_its_load():
    res = {**_result(), "started": {"utc": "2026-12-05 16:58", "load": [3.6, 3.0, 2.0]}, "ended": {"utc": "2026-12-05 17:03", "load": [4.1, 3.2, 2.1]}}
    md = markdown(res, "python -m benchmarks run --mode tiny")
    assert "Measured 2026-12-05 16:58 to 2026-12-05 17:03 UTC, load average 3.6 3 2 -> 4.1 3.2 2.1." in md
    assert "Measured" not in markdown(_result(), "python -m benchmarks run --mode tiny")  # an old result file has no date: none is made up


def test_update_docs_replaces_only_its_own_block(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Other helper\n\nkeep me\n")
    update_docs("first tiny", "tiny", doc)
    update_docs("first full", "full", doc)
    update_docs("second tiny", "tiny", doc)
    text = doc.read_text()
    assert text.count(SECTION) == 1 and "keep me" in text
    assert "second tiny" in text and "first tiny" not in text and "first full" in text
    assert text.index("## Other helper") < text.index(SECTION)


def test_update_docs_creates_the_file(tmp_path):
    path = update_docs("block", "small", tmp_path / "new" / "benchmarks.md")
    assert path.read_text().startswith("# Benchmarks") and "block" in path.read_text()
