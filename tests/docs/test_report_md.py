"""docs/report.md: its Python block and its ``python -m distgen.report`` commands run as written on an evaluation
folder at the path they name (``quickstart/eval``, made here from a tiny pair of files instead of a quickstart)."""

import re
import shlex

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
