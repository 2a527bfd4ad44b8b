"""benchmarks/gpu_check.sh: the CPU dry run (what a CUDA machine runs at official size) and its table."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu_check

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # ~30 s on a shared 2-core CPU: the slow stage of .ci/run runs it
def test_dry_run_writes_the_table(tmp_path):
    out = tmp_path / "gpu.md"
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(out)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.with_suffix(".json").read_text())
    assert {(r["preset"], r["compile"]) for r in res["train"]} == {(p, c) for p in ("perturbdiff", "scdfm") for c in (False, True)}
    assert all(r["step_s"] > 0 and r["cells_per_s"] > 0 and r["tflops"] > 0 for r in res["train"])
    assert res["evaluation"] and all("seconds" in r for r in res["evaluation"]), [r for r in res["evaluation"] if "error" in r]
    text = out.read_text()
    assert "| perturbdiff | on |" in text and "Evaluation suite on cpu tensors" in text


def test_without_cuda_it_asks_for_the_dry_run(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(SystemExit):
        gpu_check.main(["--out", "unused.md"])
    assert "--dry-run" in capsys.readouterr().err


def test_table_reports_mfu_and_failures():
    res = {"hardware": "H200", "command": "benchmarks/gpu_check.sh", "total_s": 300.0, "device": "cuda",
           "train": [{"preset": "perturbdiff", "compile": False, "precision": "bf16 autocast", "cells_per_step": 128, "step_s": 0.1, "cells_per_s": 1280.0,
                      "peak_gib": 10.0, "tflops": 400.0, "mfu": 0.404, "warmup_s": 3.0},
                     {"preset": "scdfm", "compile": True, "error": "RuntimeError: boom"}],
           "evaluation": [{"metric": "mse", "seconds": 0.1, "device": "cuda:0", "finite": 3}, {"metric": "w2", "error": "RuntimeError: cpu only"}]}
    text = gpu_check.markdown(res)
    assert "| perturbdiff | off | bf16 autocast | 128 | 100.0 | 1280 | 10.00 | 400.00 | 40.4% | 3.0 |" in text
    assert "RuntimeError: boom" in text and "1 of 2 metrics ran" in text and "w2 (RuntimeError: cpu only)" in text


def test_sets_give_one_spec_per_batch_size_and_refuse_nonsense():
    spec = gpu_check.OFFICIAL["perturbdiff"]
    assert gpu_check.batch_sizes(spec, None) == [spec]
    rows = gpu_check.batch_sizes(spec, [4, 64])
    assert [r["sets"] for r in rows] == [4, 64] and all(r["cells"] == spec["cells"] for r in rows)
    assert spec["sets"] == 4  # the official batch is not modified in place
    with pytest.raises(ValueError, match="--sets"):
        gpu_check.batch_sizes(spec, [0])


def test_table_names_the_compile_mode():
    base = {"preset": "perturbdiff", "precision": "bf16 autocast", "cells_per_step": 2048, "step_s": 0.05, "cells_per_s": 40960.0,
            "peak_gib": 3.0, "tflops": 100.0, "mfu": 0.1, "warmup_s": 9.0}
    res = {"hardware": "H200", "command": "c", "total_s": 1.0, "device": "cuda", "evaluation": [],
           "train": [{**base, "compile": "reduce-overhead"}, {"preset": "scdfm", "compile": True, "cells_per_step": 48, "skipped": "skipped: past"}]}
    text = gpu_check.markdown(res)
    assert "| perturbdiff | on (reduce-overhead) | bf16 autocast | 2048 |" in text
    assert "| scdfm | on | - | 48 | skipped: past" in text


@pytest.mark.slow  # ~25 s on a shared 2-core CPU: the two parts' dry runs
def test_the_lease_script_dry_run_writes_what_a_device_call_brings_back(tmp_path):
    out = tmp_path / "lease"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out)}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_lease.sh"), "--dry-run"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["env.txt", "eval_speed_cuda.json", "eval_speed_cuda.md", "gpu_check.json", "gpu_check.md"], files
    assert len(files) <= 8  # the device tool brings back at most 8 files
    log = (out / "env.txt").read_text()
    assert "[gpu_check] exit 0" in log and "[eval_speed_cuda] exit 0" in log and "torch " in log
    bad = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_lease.sh"), "--fast"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "only --dry-run" in bad.stderr
