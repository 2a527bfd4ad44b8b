"""The README's Python API block runs as written, shrunk only by tiny-network overrides (slow stage)."""

import re

import pytest

from .conftest import ROOT, TINY_NET, missing_targets, run_block, shrunk

#: Each README text -> its tiny twin. Every left side must occur in the block, so a README edit that
#: drops or rewords a call fails here instead of silently going untested.
SHRINK = {
    '["model.distribution_loss.kernel.name=energy"]': f'["model.distribution_loss.kernel.name=energy", {TINY_NET}]',
    "distgen.fit(model, data, config=doc, steps=300)": "distgen.fit(model, data, config=doc, steps=3, progress=False)",
    '["train.steps=300"]': f'["train.steps=3", {TINY_NET}], progress=False, metrics=["mse", "pearson_delta"], plots=False',
    '"examples/ablation_grid.yaml"': f'"{ROOT / "examples" / "ablation_grid_tiny.yaml"}", progress=False',
    'distgen.evaluate(pred, data, "runs/py/eval")': 'distgen.evaluate(pred, data, "runs/py/eval", metric_names=["mse"], make_plots=False, progress=False)',
    '"runs/a/eval2")': '"runs/a/eval2", metric_names=["mse"], make_plots=False, progress=False)',
}


def readme_python_block() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README.md has no python block"
    return blocks[0]


def test_every_shrink_target_is_in_the_readme():
    block = readme_python_block()
    missing = missing_targets(block, SHRINK)
    assert not missing, f"README's python block changed; update SHRINK in {__file__}: {missing}"


@pytest.mark.slow
def test_readme_python_block_runs(tmp_path):
    code = shrunk(readme_python_block(), SHRINK) + (
        "\nimport json, pathlib\n"
        "assert cells.shape == (1, 32, data.info.n_genes)\n"
        "assert set(pred.conditions[~pred.is_control]) == set(data.split.test_conditions)\n"
        "assert 'mse' in report.metrics and (pathlib.Path('runs/py/eval') / 'summary.md').exists()\n"
        "assert 'mse' in summary['metrics'] and (pathlib.Path('sweeps/coupling') / 'summary.md').exists()\n"
        "assert (pathlib.Path('runs/a/eval2') / 'summary.json').exists()\n"
        "assert set(pred_a.conditions[~pred_a.is_control]) == set(run.data.split.test_conditions)\n"
        "print('README OK')\n"
    )
    proc = run_block(code, tmp_path)
    assert proc.returncode == 0 and "README OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]
