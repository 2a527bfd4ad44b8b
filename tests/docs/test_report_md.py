"""docs/report.md: its Python block and its ``python -m distgen.report`` commands run as written on an evaluation
folder at the path they name (``quickstart/eval``, made here from a tiny pair of files instead of a quickstart)."""

import re
import shlex

import numpy as np
import pytest

import distgen
from distgen.report.__main__ import main

from ..evaluation.synth import make_pair
from .conftest import ROOT, run_block

PAGE = ROOT / "docs" / "report.md"


def _quickstart_eval(tmp_path):
    real, pred = make_pair(seed=5, n_genes=30, n_ctrl=40, n_cells=12, combos=False)
    (tmp_path / "quickstart").mkdir()
    real.write_h5ad(tmp_path / "quickstart" / "real.h5ad")
    pred.write_h5ad(tmp_path / "quickstart" / "pred.h5ad")
    distgen.evaluate(str(tmp_path / "quickstart" / "pred.h5ad"), str(tmp_path / "quickstart" / "real.h5ad"),
                     tmp_path / "quickstart" / "eval", metric_names=["mse", "pearson_delta", "edistance"], make_plots=False, progress=False)


def report_commands() -> list[list[str]]:
    """The page's ``python -m distgen.report`` lines without ``--screenshot`` (a browser: tests/report/test_browser.py)."""
    out = []
    for body in re.findall(r"```bash\n(.*?)```", PAGE.read_text(), re.S):
        for line in body.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv[:3] == ["python", "-m", "distgen.report"] and "--screenshot" not in argv:
                out.append(argv)
    return out


@pytest.mark.slow  # four pages and the block in a fresh interpreter: 15 s on the loaded 2-core box
def test_the_report_commands_and_python_block_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _quickstart_eval(tmp_path)
    cmds = report_commands()
    assert len(cmds) >= 3, cmds
    for argv in cmds:
        out = "/tmp/headline.html"
        argv = [str(tmp_path / "headline.html") if a == out else a for a in argv]  # the page's /tmp file, kept in tmp_path
        assert main(argv[3:]) == 0, shlex.join(argv)
    assert (tmp_path / "headline.html").exists() and (tmp_path / "quickstart" / "eval" / "report.html").exists()
    (tmp_path / "quickstart" / "eval" / "report.html").unlink()
    (code,) = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    proc = run_block(code, tmp_path, {"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-1000:] + proc.stderr[-3000:]
    assert "<html" in (tmp_path / "quickstart" / "eval" / "report.html").read_text()[:500].lower()


def test_the_page_limits_and_interval_settings_it_states():
    """The numbers report.md gives for labels, long screens, flags and the headline's intervals are the code's."""
    import inspect

    from distgen.evaluation.report import BAR_LABEL_LIMIT
    from distgen.report import explain, figures, page, profile, stats, style

    text = " ".join(PAGE.read_text().split())
    (width,) = re.findall(r"Labels are drawn at most (\d+) characters long \(`distgen\.report\.style\.short_label`\)", text)
    assert int(width) == inspect.signature(style.short_label).parameters["width"].default
    long = "GENE_" + "x" * 100 + "_017"
    assert len(style.short_label(long)) <= int(width) and style.short_label(long).startswith("GENE_") and style.short_label(long).endswith("_017")
    above, strongest, weakest = map(int, re.search(
        r"above (\d+) conditions the per-condition figure draws the (\d+) strongest and the (\d+) weakest \(`distgen\.report\.page\.ROW_LIMIT`", text).groups())
    order = [f"c{i}" for i in range(above + 1)]
    assert page.shown_conditions(order[:above]) == order[:above]
    assert page.shown_conditions(order) == order[:strongest] + order[-weakest:]
    (dots,) = re.findall(r"above (\d+) the advantage figure's dots are one embedded image", text)
    assert int(dots) == figures.VECTOR_DOTS
    (flagged,) = re.findall(r"the flagged table lists the first (\d+) by name", text)
    assert int(flagged) == 2 * page.ROW_LIMIT  # page.py: more than 2 x ROW_LIMIT flagged conditions are cut
    (rows,) = re.findall(r"a profile page repeats the first ([\d,]+) rows of `metrics\.csv` \(`distgen\.report\.profile\.PAGE_ROWS`\)", text)
    assert int(rows.replace(",", "")) == profile.PAGE_ROWS
    (bars,) = re.findall(r"`metrics_per_perturbation\.png` names its bars up to (\d+) perturbations", text)
    assert int(bars) == BAR_LABEL_LIMIT
    (cells,) = re.findall(r"one with fewer than (\d+) real cells \(`distgen\.report\.explain\.MIN_CELLS`", text)
    assert int(cells) == explain.MIN_CELLS
    draws, seed = re.search(r"conditions resampled, ([\d,]+) draws, seed (\d+)", text).groups()
    params = inspect.signature(stats.mean_ci).parameters
    assert params["n_boot"].default == int(draws.replace(",", "")) and params["seed"].default == int(seed)
    (few,) = re.findall(r"the Student t interval at (\d+) conditions or fewer", text)
    from scipy.stats import t as student

    for n in range(2, int(few) + 2):
        values = [0.1 * (i + 1) ** 1.5 for i in range(n)]
        m, lo, hi = stats.mean_ci(values)
        half = float(student.ppf(0.975, n - 1)) * float(np.std(values, ddof=1)) / n ** 0.5
        assert (abs(hi - (m + half)) < 1e-12) == (n <= int(few)), (n, lo, hi, m - half, m + half)
