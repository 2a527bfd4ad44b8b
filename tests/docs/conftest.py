"""Running a doc's Python block as written, shrunk only by listed replacements (shared by the README and training.md tests)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Overrides that make a preset's network tiny, for blocks that load one.
TINY_NET = ('"model.backbone.d_model=16", "model.backbone.heads=2", "model.backbone.layers=1", '
            '"model.genes_per_step=64", "model.dynamics.solver.steps=2", "data.set_size=8"')


def missing_targets(code: str, shrink: dict[str, str]) -> list[str]:
    """The left sides of ``shrink`` that ``code`` lacks: a doc edit that drops or rewords a call fails instead of going untested."""
    return [k for k in shrink if k not in code]


def shrunk(code: str, shrink: dict[str, str]) -> str:
    for old, new in shrink.items():
        code = code.replace(old, new)
    return code


def run_block(code: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter in ``cwd``, one thread, a headless plot backend, ``HOME`` at ``cwd``."""
    base = {"OMP_NUM_THREADS": "1", "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(cwd), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=900, env={**base, **(env or {})})
