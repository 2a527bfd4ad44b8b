"""``distgen evaluate`` on the bundled Norman K562 data: additive-baseline predictions vs truth (slow)."""

import json

import pytest

from distgen.cli import main

pytestmark = pytest.mark.slow


def test_norman_additive_predictions_evaluate(tmp_path):
    from benchmarks.eval_speed import norman_pair

    paths = norman_pair(str(tmp_path))
    out = tmp_path / "eval"
    rc = main(["evaluate", "--pred", paths["pred"], "--real", paths["real"], "--train", paths["train"], "--out", str(out),
               "--pert-col", "target_gene", "--control", "non-targeting", "--quiet",
               "--metrics", "mse,pearson_delta,discrimination_score_l1,overlap_at_N,mmd"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_perturbations"] == 15
    pd = summary["metrics"]["pearson_delta"]
    # every default baseline is scored, or folded into one whose predictions it equals (summary.json baseline_aliases)
    assert set(pd["baselines"]) | set(summary["baseline_aliases"]) == {"control", "mean_perturbation", "noncontrol_mean", "additive", "linear"}
    assert pd["ceiling"] > pd["baselines"]["control"]
    # the evaluated predictions ARE the additive baseline from the same controls (distgen's control_draw), clipped at 0
    # (a file with negative values is refused): the clipping is the only difference (0.033 on pearson_delta here)
    assert abs(pd["model"] - pd["baselines"]["additive"]) < 0.05
    for f in ("summary.md", "metrics.csv", "delta_scatter.png", "embedding_overlay.png", "metrics_per_perturbation.png"):
        assert (out / f).exists()
