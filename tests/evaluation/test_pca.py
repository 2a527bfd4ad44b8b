"""The embedding figures' PCA gives the same axes (signs included) for the same cells, whatever torch's global generator.

The evaluation's ``embedding_overlay.png`` called ``torch.pca_lowrank`` unseeded: two runs of the same files drew
another random start, so another basis and other signs (a mirrored or rotated cloud).
"""

import pytest
import torch

from distgen.evaluation import pca
from distgen.evaluation.pca import principal_axes


def _cells(n: int = 300, g: int = 40, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen, dtype=torch.float64) @ (torch.randn(3, g, generator=gen, dtype=torch.float64) * 3)
    x = x + 0.1 * torch.randn(n, g, generator=gen, dtype=torch.float64)
    return x - x.mean(0)


@pytest.mark.parametrize("exact", [True, False])
def test_the_same_cells_give_the_same_axes_whatever_the_global_generator(monkeypatch, exact):
    if not exact:
        monkeypatch.setattr(pca, "EXACT_WORK", 0)  # the randomized path on a table small enough to test
    x = _cells()
    runs = []
    for global_seed in (1, 2, 3):
        torch.manual_seed(global_seed)
        state = torch.random.get_rng_state()
        runs.append(principal_axes(x, 2))
        assert torch.equal(torch.random.get_rng_state(), state)  # the caller's generator is left as it was
    for s, v in runs[1:]:
        assert torch.equal(s, runs[0][0]) and torch.equal(v, runs[0][1])


def test_the_randomized_axes_are_the_exact_ones_with_the_same_signs(monkeypatch):
    x = _cells(seed=4)
    s, v = principal_axes(x, 2)
    monkeypatch.setattr(pca, "EXACT_WORK", 0)
    s2, v2 = principal_axes(x, 2)
    _, s_ref, _ = torch.linalg.svd(x, full_matrices=False)
    torch.testing.assert_close(s, s_ref[:2])
    torch.testing.assert_close(s2, s, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(v2, v, rtol=1e-5, atol=1e-7)  # a sign flip would differ by 2 |v|
    top = v.abs().argmax(0)
    assert bool((v[top, torch.arange(2)] > 0).all())  # each axis's largest loading is positive


def test_a_flipped_table_gives_the_same_oriented_axes():
    """Negating every cell flips any SVD's signs freely; the orientation rule brings the same axes back."""
    x = _cells(seed=5)
    assert torch.allclose(principal_axes(x, 2)[1], principal_axes(-x, 2)[1])


def test_degenerate_tables_keep_their_shape():
    s, v = principal_axes(torch.zeros(5, 3, dtype=torch.float64), 2)
    assert v.shape == (3, 2) and torch.isfinite(v).all() and s.shape == (2,)
    s, v = principal_axes(_cells(n=4, g=1), 2)
    assert v.shape == (1, 1)


def test_the_evaluation_embedding_overlay_is_the_same_file_twice(tmp_path):
    from distgen.evaluation import run_metrics
    from distgen.evaluation.report import plots
    from tests.report.tiny import tiny_data

    data = tiny_data(genes=60, cells=80)
    table = run_metrics(data, ["mse"])
    made = []
    for k, global_seed in enumerate((0, 123)):
        torch.manual_seed(global_seed)
        out = tmp_path / f"run{k}"
        out.mkdir()
        files = plots(data, table, str(out))
        made.append((out / "embedding_overlay.png").read_bytes())
        assert any(f.endswith("embedding_overlay.png") for f in files)
    assert made[0] == made[1]


def test_the_report_pca_projects_the_same_coordinates_twice():
    import numpy as np

    from distgen.report.cells import RealPCA
    from tests.report.tiny import tiny_data

    data = tiny_data(genes=60, cells=80)
    coords = []
    for global_seed in (0, 7):
        torch.manual_seed(global_seed)
        coords.append(RealPCA([data], max_cells=200).project(data.pred.X))
    assert np.array_equal(coords[0], coords[1])
