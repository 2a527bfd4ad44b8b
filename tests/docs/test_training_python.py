"""The Python block of docs/training.md runs as written (tiny network, a few steps) and its names are what the API returns."""

import re

from .conftest import ROOT, TINY_NET, missing_targets, run_block, shrunk

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
    missing = missing_targets(code, SHRINK)
    assert not missing, f"docs/training.md's Python block changed; update SHRINK in {__file__}: {missing}"
    code = shrunk(code, SHRINK) + (
        "\nassert [v['step'] for v in result.validations] == [2, 4], result.validations\n"
        "assert all({'val_loss', 'val_mse'} <= set(v) for v in result.validations), result.validations\n"
        "assert result.best_step in (2, 4) and result.best == min(v['val_loss'] for v in result.validations)\n"
        "assert [int(p.name[5:]) for p in sorted(__import__('pathlib').Path('runs/y/checkpoints').glob('step_*'))] == [2, 4]\n"
        "print('TRAINING OK')\n"
    )
    proc = run_block(code, tmp_path, {"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and "TRAINING OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]
