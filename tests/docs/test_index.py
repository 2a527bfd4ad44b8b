"""The Python block of docs/index.md (the tour's step 3) runs as written, shrunk only by tiny-network overrides."""

import re

import pytest

from .conftest import ROOT, TINY_NET, missing_targets, run_block, shrunk

#: Each text of the block -> its tiny twin; every left side must occur, so a rewording fails here instead of going untested.
SHRINK = {
    '["model.distribution_weight=0.0"]': f'["model.distribution_weight=0.0", {TINY_NET}]',
    "distgen.fit(model, data, config=doc, steps=300)": "distgen.fit(model, data, config=doc, steps=3, progress=False)",
    'distgen.evaluate(pred, data, "runs/py/eval")': 'distgen.evaluate(pred, data, "runs/py/eval", metric_names=["mse"], make_plots=False, progress=False)',
}


def index_python_block() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "index.md").read_text(), re.S)
    assert len(blocks) == 1, f"docs/index.md has {len(blocks)} python blocks; this test runs the first"
    return blocks[0]


def test_the_index_block_is_the_one_this_test_shrinks():
    missing = missing_targets(index_python_block(), SHRINK)
    assert not missing, f"docs/index.md's python block changed; update SHRINK in {__file__}: {missing}"


@pytest.mark.slow  # ~10 s of CPU: a tiny scdfm-small trained 3 steps, predicted and scored
def test_the_index_python_block_runs(tmp_path):
    code = shrunk(index_python_block(), SHRINK) + (
        "\nimport pathlib\n"
        "assert set(pred.conditions[~pred.is_control]) == set(data.split.test_conditions)\n"
        "assert 'mse' in report.metrics and (pathlib.Path('runs/py/eval') / 'summary.md').exists()\n"
        "print('INDEX OK')\n"
    )
    proc = run_block(code, tmp_path, {"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and "INDEX OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]
