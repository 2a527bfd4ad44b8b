"""The counts profiles' limit on a cell's total (``io.check_cell_totals``), as cell-eval2 0.20.0's v2 presets apply it:
``per-cell total > max_counts_per_cell`` (1,000,000), strictly, on the raw totals of every gene of both files."""

import os
import subprocess
import sys

import numpy as np
import pytest

from distgen.errors import EXIT_USAGE

from .synth import CONTROL
from .test_hostile_inputs import _evaluate, _files, _pair


@pytest.mark.parametrize(("total", "code"), [(1_000_000, 0), (1_000_001, EXIT_USAGE)])
def test_a_cell_of_exactly_a_million_counts_is_scored_and_one_more_count_is_refused(tmp_path, total, code, capsys):
    """cell-eval2's gate is ``totals_max > max_counts_per_cell`` with no tolerance for counts (``norm.check_scale_limit``):
    a cell of exactly 1,000,000 counts passes it, one of 1,000,001 does not. A ``>=`` would refuse an entry cell-eval2 scores."""
    pred, real = _pair(counts=True)
    x = np.asarray(pred.X).copy()
    x[-1, 0] += total - x[-1].sum()
    pred.X = x
    pp, rp = _files(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp, "--profile", "vcc2026", "--no-target-genes") == code
    assert ("1,000,000" in capsys.readouterr().err) == bool(code)


def test_the_totals_are_summed_without_a_float64_copy_of_the_whole_matrix():
    """The totals were summed over ``x.to(torch.float64)``: a float64 copy of the whole truth, twice the size of its float32
    cells, held at once beside them (16 GB more for 120,000 cells x 18,000 genes). They are now summed a block of rows at
    a time; the peak grows by less than the matrix's own size (33 MB here, 256 MB before)."""
    code = (
        "import resource, numpy as np, torch\n"
        "from distgen.evaluation.io import check_cell_totals\n"
        "x = torch.ones(8000, 4000)\n"  # 128 MB of float32; a float64 copy is 256 MB
        "class Cells: conditions = np.array(['A'] * 8000)\n"
        "check_cell_totals(Cells(), x[:10], 'real')\n"  # torch's kernels loaded before the peak is read
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "check_cell_totals(Cells(), x, 'real')\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "131072"}  # large blocks mmapped, unmapped when freed
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert int(out.split()[-1]) < 8000 * 4000 * 4, out


def test_every_cell_of_both_files_is_counted_over_every_gene_and_its_total_is_written_whole(tmp_path, capsys):
    """A control cell of the truth past the limit is refused like a perturbed one (cell-eval2 checks the whole real matrix),
    its total taken over every gene (here 30 genes of about 33,000 counts each, none past the limit alone). The message
    said its total as ``1e+06`` (six digits), which reads as the limit itself: it now says ``1,000,001``."""
    pred, real = _pair(counts=True)
    x = np.asarray(real.X).copy()
    x[0, :] = 33_333
    x[0, 0] += 1_000_001 - x[0].sum()
    real.X = x
    pp, rp = _files(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp, "--profile", "celleval2", "--no-target-genes") == EXIT_USAGE
    err = " ".join(capsys.readouterr().err.split())
    assert "real file holds 1 cell of more than 1,000,000 counts (first: a cell of 'non-targeting', 1,000,001 counts)" in err, err


def test_the_totals_summed_for_the_limit_are_the_library_sizes_of_the_de_tables(monkeypatch):
    """Each cell's total is summed once (``check_cell_totals``) and handed, grouped with the rows, to the library-size
    normalisation (``Population.totals``); the DE tables are those of totals summed where they are used, and a file
    that grouping retypes (int64 counts read into float32) hands none."""
    import torch

    from distgen.evaluation import de, io
    from distgen.evaluation.metrics.celleval2_de import prepared_de
    from distgen.evaluation.metrics.celleval2_settings import PRESETS
    from distgen.types import Cells

    pred, real = _pair(counts=True)

    def cells(a, dtype):
        x = torch.from_numpy(np.asarray(a.X, dtype=dtype))
        return Cells(x, a.obs["target"].astype(str).to_numpy(), list(a.var_names), control=CONTROL)

    data = io.eval_data(cells(pred, np.float32), cells(real, np.float32), scale="counts")
    for pop in (data.real, data.pred):
        assert pop.totals is not None and pop.control_totals is not None
        assert torch.equal(pop.totals, pop.X.to(torch.float64).sum(-1))
        assert torch.equal(pop.control_totals, pop.control.to(torch.float64).sum(-1))
    handed = prepared_de(data, PRESETS["vcc2026"])
    summed = []
    monkeypatch.setattr(io, "check_cell_totals", lambda c, x, name: summed.append(name))  # nothing handed on
    again = io.eval_data(cells(pred, np.float32), cells(real, np.float32), scale="counts")
    assert summed == ["real", "pred"] and again.real.totals is None
    fresh = prepared_de(again, PRESETS["vcc2026"])
    for a, b in ((handed.real, fresh.real), (handed.pred, fresh.pred)):
        for name in ("pvalue", "fdr", "lfc"):
            assert torch.allclose(getattr(a, name), getattr(b, name), rtol=0, atol=0, equal_nan=True)  # equal, bit for bit
    monkeypatch.undo()
    retyped = io.eval_data(cells(pred, np.int64), cells(real, np.int64), scale="counts")
    assert retyped.real.totals is None
    x = data.real.X
    assert torch.equal(de.normalize_total(x, 1e6, data.real.totals), de.normalize_total(x, 1e6))


def test_the_totals_follow_their_rows_when_grouping_gathers_them():
    """Cells not stored grouped (controls among the perturbations, as in most files) are gathered into perturbation order
    by ``Population.from_codes``, and each total must move with its row: a total left in file order would divide
    another cell's counts by it and score the DE tables silently wrong. Each population's totals are its rows' sums, and
    the DE tables equal those of totals summed where used."""
    import torch

    from distgen.evaluation import io
    from distgen.evaluation.metrics.celleval2_de import prepared_de
    from distgen.evaluation.metrics.celleval2_settings import PRESETS
    from distgen.types import Cells

    pred, real = _pair(counts=True)
    rng = np.random.default_rng(5)
    pred, real = pred[rng.permutation(pred.n_obs)].copy(), real[rng.permutation(real.n_obs)].copy()
    assert (real.obs["target"].astype(str).to_numpy() == CONTROL)[: 30].sum() < 30  # controls mixed in: rows are gathered

    def cells(a):
        return Cells(torch.from_numpy(np.asarray(a.X, dtype=np.float32)), a.obs["target"].astype(str).to_numpy(),
                     list(a.var_names), control=CONTROL)

    data = io.eval_data(cells(pred), cells(real), scale="counts")
    for pop in (data.real, data.pred):
        assert pop.totals is not None and pop.control_totals is not None
        assert torch.equal(pop.totals, pop.X.to(torch.float64).sum(-1))
        assert torch.equal(pop.control_totals, pop.control.to(torch.float64).sum(-1))
    handed = prepared_de(data, PRESETS["vcc2026"])
    for pop in (data.real, data.pred):
        pop.totals = pop.control_totals = None
    data.cache.clear()
    data.cache["scale"] = "counts"
    fresh = prepared_de(data, PRESETS["vcc2026"])
    for a, b in ((handed.real, fresh.real), (handed.pred, fresh.pred)):
        for name in ("pvalue", "fdr", "lfc"):
            assert torch.equal(torch.nan_to_num(getattr(a, name), nan=-1.0), torch.nan_to_num(getattr(b, name), nan=-1.0)), name
