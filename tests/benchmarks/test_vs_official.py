"""benchmarks/vs_official.py: distgen-only mode at tiny shapes (no official checkout in CI)."""

import json

import pytest

from benchmarks import vs_official


def test_distgen_only_mode_prints_distgen_side_at_tiny_shapes(tmp_path, capsys):
    docs = tmp_path / "benchmarks.md"
    code = vs_official.main(["--rows", "tiny", "tiny-pd", "--rounds", "1", "--json", str(tmp_path / "r.json"), "--write-docs", "--docs", str(docs)])
    assert code == 0
    res = json.loads((tmp_path / "r.json").read_text())
    for row in res["rows"]:  # scDFM and PerturbDiff: distgen's side, with the trainer's optimizer
        assert set(row["sides"]) == {"distgen"} and row["sides"]["distgen"]["seconds"] > 0
        assert row["sides"]["distgen"]["optimizer"] in ("fused", "foreach", "loop")
    text = docs.read_text()
    assert vs_official.SECTION in text and "distgen's side only" in text and "Load average" in text
    assert "No official checkout given for perturbdiff, scdfm" in text


def test_official_loss_functions_are_read_from_the_file_without_importing_it(tmp_path):
    script = tmp_path / "src" / "script"
    script.mkdir(parents=True)
    (script / "run.py").write_text("import jax  # never imported\n\ndef pairwise_sq_dists(X, Y):\n    return torch.cdist(X, Y) ** 2\n")
    fns = vs_official._official_functions(tmp_path, ("pairwise_sq_dists",))
    import torch

    assert fns["pairwise_sq_dists"](torch.zeros(2, 3), torch.ones(1, 3)).tolist() == [[3.0], [3.0]]
    with pytest.raises(RuntimeError, match="no function"):
        vs_official._official_functions(tmp_path, ("median_sigmas",))


def test_markdown_reports_ratios_and_memory_per_cell():
    res = {"hardware": "cpu", "threads": 1, "rounds": 1, "load_before": "1 1 1", "load_after": "1 1 1", "official": {"scdfm": "/x"}, "half_nfe_label": "",
           "rows": [{"row": "reduced", "cells": 48, "label": "reduced", "task": "train",
                     "sides": {"official": {"seconds": 3.0, "cpu_seconds": 2.9, "peak_gib": 2.0}, "distgen": {"seconds": 1.0, "cpu_seconds": 1.0, "peak_gib": 1.0}}},
                    {"row": "memory", "cells": 1, "label": "mem", "task": "train",
                     "sides": {"official": {"seconds": 1, "cpu_seconds": 1, "peak_gib": 4.0}, "distgen": {"seconds": 1, "cpu_seconds": 1, "peak_gib": 1.0}}},
                    {"row": "memory", "cells": 2, "label": "mem", "task": "train",
                     "sides": {"official": {"seconds": 1, "cpu_seconds": 1, "peak_gib": 6.0}, "distgen": {"seconds": 1, "cpu_seconds": 1, "peak_gib": 1.5}}}]}
    text = vs_official.markdown(res, "cmd")
    assert "| reduced | 3.00 s | 1.00 s | 3.00x | 2.90x |" in text
    assert "memory per extra cell | 2.00 GiB | 0.50 GiB | 4.0x less |" in text


def test_precision_context_casts_matmuls_to_bf16_only_when_asked():
    import torch

    a = torch.ones(2, 3)
    with vs_official.precision_context("cpu", "bf16"):
        assert (a @ a.T).dtype == torch.bfloat16
    with vs_official.precision_context("cpu", "fp32"):
        assert (a @ a.T).dtype == torch.float32
    with pytest.raises(ValueError, match="fp32 or bf16"):
        vs_official.precision_context("cpu", "fp16")


def test_bf16_rows_train_both_presets_with_finite_losses(tmp_path):
    docs = tmp_path / "benchmarks.md"
    code = vs_official.main(["--rows", "tiny", "tiny-pd", "--rounds", "1", "--precision", "bf16", "--json", str(tmp_path / "r.json"),
                             "--write-docs", "--docs", str(docs)])
    assert code == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["precision"] == "bf16"
    assert all(r["sides"]["distgen"]["seconds"] > 0 and r["sides"]["distgen"]["finite"] for r in res["rows"])
    assert "under bf16 autocast" in docs.read_text()
