"""Docs: the component reference matches the code, and the site builds with no broken reference."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_component_reference_is_generated_from_the_registry():
    from distgen.docgen import render

    committed = (ROOT / "docs" / "components.md").read_text()
    assert committed == render(), "docs/components.md is stale: run `python -m distgen.docgen docs/components.md`"


def test_docgen_help_prints_usage_and_writes_no_file(tmp_path, monkeypatch, capsys):
    """``python -m distgen.docgen --help`` wrote the reference to a file named ``--help`` (any argument was the output path)."""
    from distgen.docgen import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0 and "usage:" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())
    assert main([str(tmp_path / "components.md")]) == 0 and (tmp_path / "components.md").read_text().startswith("# Component reference")


@pytest.mark.skipif(shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists(),
                    reason="mkdocs is not installed (pip install -e '.[dev]')")
def test_docs_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs") or str(Path(sys.executable).parent / "mkdocs")
    out = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "site" / "index.html").exists()
