"""Evaluation time against Arc Institute's cell-eval, through the evaluation suite's own script.

``benchmarks/eval_speed.py`` (owned by the evaluation suite) times ``cell-eval run`` and
``distgen evaluate`` on the same prediction/truth pair, cold (CLI) and warm (in-process), and reports
their largest disagreement. The harness runs it as a subprocess and parses its summary lines.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[1] / "eval_speed.py"
PATTERNS = {
    "cold": r"cold.*?cell-eval ([\d.]+) s, distgen ([\d.]+) s",
    "warm": r"warm.*?cell-eval ([\d.]+) s, distgen ([\d.]+) s",
}


def eval_speed(mode: str, workdir: str | Path = "/tmp/distgen-bench", timeout: float = 1800) -> dict[str, Any]:
    """Seconds of cell-eval and distgen on the Norman pair (skipped in ``tiny`` mode: imports alone take ~1 min)."""
    if mode == "tiny":
        return {"skipped": "not run in tiny mode (cell-eval's imports and numba compilation alone take about a minute); run --mode small"}
    if not SCRIPT.exists():
        return {"skipped": f"{SCRIPT.name} is not present"}
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, str(SCRIPT), "--out", str(Path(workdir) / "eval_norman"), "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        return {"error": f"eval_speed.py exited {proc.returncode}: {proc.stderr[-1500:]}"}
    rows = []
    for kind, pat in PATTERNS.items():
        m = re.search(pat, proc.stdout)
        if m:
            ce, dg = float(m.group(1)), float(m.group(2))
            rows.append({"run": kind, "cell_eval_s": ce, "distgen_s": dg, "speedup": ce / dg})
    return {"results": rows, "output": proc.stdout.strip().splitlines(), "command": "python benchmarks/eval_speed.py --threads 1"}
