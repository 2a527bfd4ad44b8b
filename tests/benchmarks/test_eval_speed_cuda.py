"""benchmarks/eval_speed_cuda.py: the CPU dry run of the CUDA evaluation benchmark, and its pieces."""

import json
import math

import pytest
import torch

from benchmarks import eval_speed_cuda
from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.suite import MetricTable


@pytest.mark.slow  # ~25 s on a shared 2-core CPU: the slow stage of .ci/run runs it
def test_dry_run_writes_the_table_with_every_part(tmp_path):
    out = tmp_path / "evc.md"
    assert eval_speed_cuda.main(["--dry-run", "--out", str(out), "--work", str(tmp_path / "work")]) == 0
    res = json.loads(out.with_suffix(".json").read_text())
    rows = {(r["tool"], r["profile"], r["device"]) for r in res["rows"]}
    for profile in ("celleval2", "cell-eval-0.8.2"):
        assert ("distgen", profile, "cpu") in rows and ("distgen", profile, "cpu (via EvalData.to)") in rows
    moved = [r for r in res["rows"] if r["device"] == "cpu (via EvalData.to)"]
    assert all(r["largest_rel_diff_vs_cpu"] == 0.0 for r in moved)  # the same device: the same numbers
    assert any(r["tool"] == "cell-eval2" and r["device"] == "cpu" and r["seconds"] > 0 for r in res["rows"])
    assert "| synthetic | cell-eval2 | full | cuda |" in out.read_text()


def test_without_cuda_it_asks_for_the_dry_run(capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(SystemExit):
        eval_speed_cuda.main(["--out", "unused.md"])
    assert "--dry-run" in capsys.readouterr().err


def test_largest_difference_finds_the_worst_cell_and_a_one_sided_nan():
    a = MetricTable(perts=("p", "q"), values={"m": [1.0, 2.0], "n": [float("nan"), 1.0]})
    b = MetricTable(perts=("p", "q"), values={"m": [1.0, 2.2], "n": [float("nan"), 1.0]})
    d, where = eval_speed_cuda.largest_difference(a, b)
    assert d == pytest.approx(0.2 / 2.2) and where == "m @ q"
    b.values["n"] = [0.5, 1.0]
    assert eval_speed_cuda.largest_difference(a, b)[0] == math.inf


def test_evaldata_to_keeps_labels_and_metadata_and_drops_computed_tensors():
    d = EvalData.from_single(torch.rand(5, 3), torch.rand(6, 3), torch.rand(4, 3), torch.rand(4, 3), name="KLF1", targets=("KLF1",))
    d.invalid[0] = "too few cells"
    means = d.means("real")
    d.cache.update({"scale": "counts", "group_order": ["KLF1", "non-targeting"], "flag": True, "pair": ("x", torch.zeros(1))})
    e = d.to(torch.device("cpu"))
    assert e.perts == d.perts and e.targets == d.targets and e.genes == d.genes and e.invalid == {0: "too few cells"}
    assert set(e.cache) == {"scale", "group_order", "flag"}  # means/real and the tuple holding a tensor are recomputed
    assert torch.equal(e.means("real"), means) and torch.equal(e.pred.control, d.pred.control)
