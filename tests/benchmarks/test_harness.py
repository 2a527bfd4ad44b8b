"""The harness end to end in tiny mode (CPU), through its command line and `distgen bench`."""

import json
import math
import re

import pytest
import torch

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
    assert re.search(r"Measured 20\d\d-\d\d-\d\d \d\d:\d\d to 20\d\d-\d\d-\d\d \d\d:\d\d UTC, load average ", text)
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
    from distgen.data import PerturbationSchema
    from distgen.data.disk import DiskCells
    from distgen.data.disk_fingerprint import content_fingerprint

    run = tmp_path / "run"  # --out records the file's fingerprint, which predict_to_disk(fingerprint=...) checks
    assert train_main([str(path), "--steps", "1", "--sets-per-batch", "2", "--set-size", "8", "--workers", "0", "--out", str(run)]) == 0
    recorded = json.loads((run / "data_fingerprint.json").read_text())["content_fingerprint"]
    schema = PerturbationSchema(perturbation_col="perturbation", context_cols=("cell_type",), batch_col="batch")
    assert recorded == content_fingerprint(DiskCells(path, schema))


@pytest.mark.slow  # 4 torchrun launches of 2 CPU processes
def test_train_from_disk_on_two_ranks_resumes_its_stream_exactly(tmp_path):
    """docs/scale.md's multi-process command: 2 ranks streaming from disk equal 1 process with the same 2 shards, and a
    run stopped after a checkpoint continues with ``--resume`` to the uninterrupted run's weights and losses. Before,
    the command had no resume: run again into its folder it trained from step 0 and overwrote the checkpoints."""
    import os
    import shutil
    import subprocess
    import sys

    from safetensors.torch import load_file

    from benchmarks.harness.train_from_disk import main as train_main
    from distgen.data.large_synthetic import write_large_synthetic

    path = write_large_synthetic(tmp_path / "a.h5ad", n_cells=2000, n_genes=32, n_perturbations=4, layout="grouped")
    args = [str(path), "--steps", "4", "--checkpoint-every", "2", "--sets-per-batch", "4", "--set-size", "16", "--workers", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def torchrun(*extra):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
               "benchmarks.harness.train_from_disk", *args, *extra]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)

    full, cut = tmp_path / "full", tmp_path / "cut"
    proc = torchrun("--out", str(full))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert train_main([*args, "--grad-accum", "2", "--out", str(tmp_path / "one")]) == 0
    shutil.copytree(full, cut)
    shutil.rmtree(cut / "checkpoints" / "step_00000004")  # preempted after step 2's checkpoint
    proc = torchrun("--out", str(cut))
    assert proc.returncode != 0 and "pass --resume" in proc.stderr
    proc = torchrun("--out", str(cut), "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = load_file(str(full / "checkpoints" / "step_00000004" / "model.safetensors"))
    for other in (cut, tmp_path / "one"):
        b = load_file(str(other / "checkpoints" / "step_00000004" / "model.safetensors"))
        assert last.keys() == b.keys() and all(torch.equal(last[k], b[k]) for k in last), other.name
    losses = [[line.split(",")[:2] for line in (d / "metrics.csv").read_text().splitlines()] for d in (full, cut)]
    assert losses[0] == losses[1] and len(losses[0]) == 5
