"""The Python block of docs/training.md runs as written (tiny network, a few steps) and its names are what the API returns."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TINY_NET = ('"model.backbone.d_model=16", "model.backbone.heads=2", "model.backbone.layers=1", '
            '"model.genes_per_step=64", "model.dynamics.solver.steps=2", "data.set_size=8"')
#: Each text of the block -> its tiny twin; every left side must occur, so a rewording fails here instead of going untested.
SHRINK = {
    'distgen.load_config("scdfm-small")': f'distgen.load_config("scdfm-small", [{TINY_NET}])',
    "steps=2000, lr=1e-3, val_every=500)": "steps=4, lr=1e-3, val_every=2, val_sets=2, progress=False)",
    'train_options({"steps": 100})': 'train_options({"steps": 2, "progress": False})',
    'train_options({"steps": 200})': 'train_options({"steps": 4, "progress": False})',
}


def python_block() -> str:
    text = (ROOT / "docs" / "training.md").read_text()
    section = text[text.index("\n## Python\n"):]
    return re.findall(r"```python\n(.*?)```", section, re.S)[0]


def test_the_training_python_block_runs_and_reports_its_validations(tmp_path):
    code = python_block()
    missing = [k for k in SHRINK if k not in code]
    assert not missing, f"docs/training.md's Python block changed; update SHRINK in {__file__}: {missing}"
    for old, new in SHRINK.items():
        code = code.replace(old, new)
    code += (
        "\nassert [v['step'] for v in result.validations] == [2, 4], result.validations\n"
        "assert all({'val_loss', 'val_mse'} <= set(v) for v in result.validations), result.validations\n"
        "assert result.best_step in (2, 4) and result.best == min(v['val_loss'] for v in result.validations)\n"
        "assert [int(p.name[5:]) for p in sorted(__import__('pathlib').Path('runs/y/checkpoints').glob('step_*'))] == [2, 4]\n"
        "print('TRAINING OK')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={"OMP_NUM_THREADS": "1", "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
                               "HOME": str(tmp_path), "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and "TRAINING OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]
