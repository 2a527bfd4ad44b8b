"""``benchmarks/iid_reference.py``: the error of an i.i.d. sample's mean, and the table on a real (tiny) run."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.iid_reference import edistance, mean_error_draws, reference_table
from distgen.cli import main


def test_mean_error_draws_have_the_covariance_of_an_n_cell_sample_mean():
    gen = torch.Generator().manual_seed(0)
    cov = torch.tensor([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]], dtype=torch.float64)
    cells = torch.randn(40, 3, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    draws = mean_error_draws(cells, 40_000, gen)
    want = torch.cov(cells.T) / len(cells)  # the sample covariance of the cells, over n
    assert draws.shape == (40_000, 3)
    assert torch.allclose(draws.mean(0), torch.zeros(3, dtype=torch.float64), atol=4 * float(want.diag().max().sqrt()) / 200)
    assert torch.allclose(torch.cov(draws.T), want, rtol=0.05, atol=2e-3)


def test_moving_every_cell_by_one_offset_raises_the_edistance_of_an_exact_copy():
    x = torch.randn(30, 4, generator=torch.Generator().manual_seed(1))
    assert edistance(x, x) == pytest.approx(0.0, abs=1e-12)
    assert edistance(x + torch.tensor([0.5, 0.0, 0.0, 0.0]), x) > 0.01


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A two-step ``distgen run`` of a tiny additive-anchored model on control, singles A/B/C and pairs A+B, B+C."""
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(6)]
    rows, xs = [], []
    for cond in ("control", "A", "B", "C", "A+B", "B+C"):
        x = rng.gamma(2.0, 0.5, (24, len(genes)))
        for atom, col in (("A", 0), ("B", 1), ("C", 2)):
            if atom in cond.split("+"):
                x[:, col] += 1.5
        xs.append(x)
        rows += [cond] * 24
    tmp = tmp_path_factory.mktemp("iid")
    path = tmp / "combos.h5ad"
    obs = pd.DataFrame({"condition": rows}, index=[f"c{i}" for i in range(len(rows))])
    ad.AnnData(np.log1p(np.concatenate(xs)).astype(np.float32), obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(path)
    cfg = tmp / "exp.yaml"
    cfg.write_text(
        "model: {name: generator, anchor: additive, conditioner: {name: onehot, dim: 8}, backbone: {name: mlp, hidden: 16, depth: 1},\n"
        "        dynamics: {name: flow_matching, solver: {name: euler, steps: 2}}}\n"
        f"data: {{dataset: {path}, schema: {{perturbation_col: condition, control_labels: [control]}},\n"
        "       split: {kind: combo_seen2, seed: 0, test_conditions: [A+B]}, set_size: 8}\n"
        "train: {steps: 2, sets_per_batch: 2, progress: false}\n")
    assert main(["run", str(cfg), "--out", str(tmp / "run"), "--metrics", "edistance", "--no-plots"]) == 0
    return tmp / "run"


def test_the_table_scores_the_model_the_baseline_its_iid_version_and_the_ceiling(run):
    res = reference_table(run, "additive", draws=20, seed=0)
    (row,) = res["groups"]
    assert row["condition"] == "A+B" and row["cells"] > 0
    assert all(np.isfinite(row[k]) for k in ("model", "baseline", "sampled_mean", "ceiling"))
    assert row["sampled_min"] <= row["sampled_mean"] <= row["sampled_max"]
    m = res["mean"]
    assert m["sampled_p05"] <= m["sampled_mean"] <= m["sampled_p95"] and 0.0 <= m["sampled_within_1.1x"] <= 1.0
    # the baseline with the sampling error of its mean: never better on average than the baseline itself here
    assert row["sampled_mean"] > row["baseline"]
    summary = (run / "eval" / "metrics.csv").read_text()
    assert "edistance" in summary


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        reference_table(tmp_path, "additive", draws=2, seed=0)


@pytest.mark.parametrize("args", [["--baseline", "generator"], ["--baseline", "nosuch"], ["--draws", "0"]])
def test_the_command_refuses_a_baseline_it_cannot_fit_and_no_draws(run, args, capsys):
    from benchmarks.iid_reference import main as iid_main

    with pytest.raises(SystemExit) as exc:
        iid_main([str(run), *args])
    assert exc.value.code == 2 and "error:" in capsys.readouterr().err
