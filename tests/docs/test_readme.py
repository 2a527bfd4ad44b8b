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


def test_the_held_out_pairs_the_readme_counts_are_the_splits():
    """'the presets' split ... holds out one pair, `X`' and the quickstart's 'four held-out double perturbations'."""
    import inspect

    import distgen
    from distgen.commands.quickstart import SPLIT
    from distgen.data import make_split

    text = " ".join((ROOT / "README.md").read_text().split())
    ((default, pair),) = re.findall(r"the presets' split \(`combo_seen2` at the default `test_frac` ([\d.]+)\) holds out one pair, `([^`]+)`", text)
    assert inspect.signature(make_split).parameters["test_frac"].default == float(default)
    for preset in ("scdfm-small", "perturbdiff-small"):
        doc = distgen.load_config(preset)
        assert doc["data"]["split"]["kind"] == "combo_seen2" and "test_frac" not in doc["data"]["split"], doc["data"]["split"]
        assert list(distgen.load_data(**doc["data"]).split.test_conditions) == [pair], preset
    assert "generates the four held-out double perturbations" in text
    (frac,) = re.findall(r"the quickstart holds out four \(`data\.split\.test_frac=([\d.]+)`\)", text)
    assert f"test_frac: {frac}" in SPLIT
    test = distgen.load_data(**distgen.load_config("perturbdiff-small", [SPLIT])["data"]).split.test_conditions
    assert len(test) == 4 and all("+" in c for c in test), test


def test_the_readme_ablation_overrides_build_on_the_scdfm_presets_and_attention_not_on_the_cross_dit():
    """'An ablation is a one-line override, e.g. on the scdfm presets `A`, `B` (a PAD-Transformer setting; the Cross-DiT has none), `C`'."""
    import distgen
    from distgen.config import ConfigError

    text = " ".join((ROOT / "README.md").read_text().split())
    span = text[text.index("An ablation is a one-line override, e.g. on the scdfm presets"):]
    span = span[: span.index("\n") if "\n" in span else span.index("## ")]
    overrides = re.findall(r"`(model\.[\w.]+=[\w-]+)`", span)
    assert len(overrides) == 3, overrides
    info = distgen.load_data("norman_k562", split={"kind": "combo_seen2"}).info
    for o in overrides:
        doc = distgen.load_config("scdfm-small", [o])
        assert type(distgen.build(doc, info)).__name__ == "Generator", o
    (attention,) = [o for o in overrides if ".attention=" in o]
    with pytest.raises(ConfigError, match="unknown key 'attention'"):
        distgen.build(distgen.load_config("perturbdiff-small", [attention]), info)
