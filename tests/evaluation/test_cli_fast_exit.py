"""``distgen evaluate --profile`` as a program ends without the interpreter's teardown (``distgen.cli.fast_exit``):
its files and its stdout must still be complete, and an in-process ``main([...])`` must return, not end pytest."""

import csv
import json
import subprocess
import sys

from distgen.cli import main

from .synth import make_pair


def test_profile_cli_output_is_complete_when_the_process_ends_fast(tmp_path):
    real, pred = make_pair(seed=5, n_genes=30, n_ctrl=40, n_cells=12, combos=False)
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    args = ["evaluate", "--profile", "cell-eval-0.8.2", "--pred", str(tmp_path / "pred.h5ad"), "--real", str(tmp_path / "real.h5ad"),
            "--quiet", "--json"]
    proc = subprocess.run([sys.executable, "-m", "distgen", *args, "--out", str(tmp_path / "cli")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)  # the whole JSON reached the pipe (flushed before the process ended)
    on_disk = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert printed["n_perturbations"] == on_disk["n_perturbations"] == 10 and set(printed["metrics"]) == set(on_disk["metrics"])

    assert main([*args, "--out", str(tmp_path / "inproc")]) == 0  # returns: only the program entry point ends the process
    rows = {name: list(csv.DictReader((tmp_path / name / "metrics.csv").open())) for name in ("cli", "inproc")}
    assert len(rows["cli"]) == 10 and rows["cli"] == rows["inproc"]

