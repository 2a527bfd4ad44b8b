"""bayes_hier passes distgen's models contract and is discovered through its entry point."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from typing import ClassVar

from distgen.registry import registry
from distgen.testing import ModelContract


class TestBayesContract(ModelContract):
    names: ClassVar[Sequence[str] | None] = ["bayes_hier"]


def test_discovered_through_entry_point() -> None:
    info = registry("models").info("bayes_hier")
    assert info.provider == "distgen-bayes"
    assert info.capabilities.posterior_intervals is True


def test_discovery_and_distgen_import_do_not_import_jax() -> None:
    code = (
        "import sys, distgen; from distgen.registry import registry; "
        "registry('models').get('bayes_hier'); "
        "print('jax' in sys.modules, 'numpyro' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_listed_by_distgen_components() -> None:
    code = "from distgen.cli import main; main(['components', '--kind', 'models'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "bayes_hier" in out and "distgen-bayes" in out
