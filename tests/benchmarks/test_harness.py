"""The harness end to end in tiny mode (CPU), through its command line and `distgen bench`."""

import json
import math

import pytest

from benchmarks.harness.cli import main
from benchmarks.harness.run import MODES, checks
from distgen.cli import build_parser


@pytest.mark.slow  # ~25 s of CPU (more on a shared machine): the slow stage of .ci/run runs it
def test_tiny_harness_runs_end_to_end(tmp_path):
    out, doc = tmp_path / "bench.json", tmp_path / "benchmarks.md"
    code = main(["run", "--mode", "tiny", "--workdir", str(tmp_path / "work"), "--out", str(out), "--docs", str(doc), "--presets", "perturbdiff-small"])
    res = json.loads(out.read_text())
    assert code == 0, [c for c in res["checks"] if not c["passed"]]
    for section in ("train", "sampling", "scaling", "streaming"):
        assert "error" not in res[section], res[section]
    train = res["train"][0]
    assert train["preset"] == "perturbdiff-small" and train["steps_per_s"] > 0 and train["flops_per_step"] > 0
    assert [r["steps"] for r in res["sampling"]] == MODES["tiny"]["nfes"] and all(r["nfe"] >= 1 for r in res["sampling"])
    pts = res["streaming"]["epochs"]["points"]
    assert [p["cells"] for p in pts] == MODES["tiny"]["stream_sizes"] and all(p["streamed_cells"] > 0 for p in pts)
    names = " ".join(c["check"] for c in res["checks"])
    assert "peak RSS" in names and "linear" in names and "waiting for data" in names
    text = doc.read_text()
    assert "Mode `tiny` on CPU" in text and "Hardware:" in text and "--presets perturbdiff-small" in text
    assert not list((tmp_path / "work").rglob("*.partial"))


def test_checks_fail_on_broken_bounds():
    res = {"streaming": {"epochs": {"points": [{"cells": 10, "n_cells_file": 10, "peak_rss_mb": 5000.0}], "exponent": 1.6},
                         "wait": [{"preset": "p", "wait_fraction": 0.5}, {"preset": "q", "error": "x"}]},
           "train": {"error": "boom"}}
    got = {c["check"].split(" ")[0]: c for c in checks(res, MODES["small"])}
    assert not got["peak"]["passed"] and not got["epoch"]["passed"]
    assert not got["p:"]["passed"] and got["p:"]["enforced"] and not got["q:"]["passed"] and not got["section"]["passed"]
    assert got["epoch"]["enforced"]
    tiny = {c["check"].split(" ")[0]: c for c in checks(res, MODES["tiny"])}
    assert not tiny["epoch"]["passed"] and not tiny["epoch"]["enforced"]  # a timing at tiny sizes: reported, not enforced
    assert tiny["peak"]["enforced"]


def test_distgen_bench_is_a_subcommand():
    args = build_parser().parse_args(["bench", "--mode", "tiny", "--sections", "streaming"])
    assert args.mode == "tiny" and args.sections == ["streaming"] and callable(args.run)


def test_unknown_mode_is_refused():
    from benchmarks.harness.run import run_all

    with pytest.raises(ValueError, match="mode"):
        run_all("huge")


@pytest.mark.slow  # builds a preset and trains a few steps from disk through the real trainer
def test_train_from_disk_runs_the_trainer_on_a_file(tmp_path, capsys):
    from benchmarks.harness.train_from_disk import main as train_main
    from distgen.data.large_synthetic import write_large_synthetic

    path = write_large_synthetic(tmp_path / "a.h5ad", n_cells=2000, n_genes=32, n_perturbations=4, layout="grouped")
    assert train_main([str(path), "--steps", "2", "--sets-per-batch", "2", "--set-size", "8", "--workers", "0"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["steps"] == 2 and out["world_size"] == 1 and math.isfinite(out["final_loss"])  # neither NaN nor inf
    assert out["train_cells"] == 2000
    split = '{"kind": "random_conditions", "seed": 0, "test_frac": 0.5}'
    assert train_main([str(path), "--steps", "1", "--sets-per-batch", "2", "--set-size", "8", "--workers", "0", "--split", split]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 < out["train_cells"] < 2000  # the split's training cells only
