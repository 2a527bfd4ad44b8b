"""Fixtures for distgen-bayes tests: a tiny seeded population dataset with known effects."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# Reuse XLA compilations between test runs (set before JAX is first imported by a fit).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / "distgen_bayes_jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

# The suite runs with --import-mode=importlib, which does not put test folders on sys.path: make this
# folder importable so the tests share bayes_fixtures.
sys.path.insert(0, str(Path(__file__).parent))

from bayes_fixtures import Truth, population_table

from distgen.types import CellTable


@pytest.fixture(scope="session")
def synthetic() -> tuple[CellTable, Truth]:
    return population_table()


@pytest.fixture(scope="session")
def fitted(synthetic: tuple[CellTable, Truth]):
    """A model fitted once (SVI, few steps) and shared by the tests that only read it."""
    from distgen.models.generator import build_model

    table, _ = synthetic
    model = build_model({"name": "bayes_hier", "reduction": "genes", "steps": 800, "num_samples": 200, "learning_rate": 0.03}, table.info)
    return model.fit(table)
