"""The plugin's example configs, as ``distgen run`` and ``distgen sweep`` read them (no fit: that is the benchmarks')."""

from __future__ import annotations

from pathlib import Path

import pytest

from distgen.config import load_yaml, read_config
from distgen.pipeline.experiment import experiment_document, fitted_inert_settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _cells() -> list[tuple[str, tuple[str, ...]]]:
    """Each example with the overrides of each of its sweep's ``base`` values (a seed as the sweep passes it)."""
    out = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        bases = ((load_yaml(path).get("sweep") or {}).get("grid") or {}).get("base")
        out += [(path.name, (f"base={b}", "train.seed=0")) for b in bases] if bases else [(path.name, ())]
    return out


@pytest.mark.parametrize("name, overrides", _cells(), ids=lambda v: v if isinstance(v, str) else "+".join(v) or "as-is")
def test_no_example_run_sets_a_setting_with_no_effect(name, overrides):
    """models_sweep.yaml set ``train: {val_metrics: []}`` (as the quickstart's override skips validation), so every
    bayes_hier run of that sweep warned 'train.val_metrics has no effect'. Its trained runs (perturbdiff-small) never
    validate either (``val_frac: 0.0`` and ``train.val_every`` 0, the default since the file was written), so the key
    changed no run of it. No example sets a key its run ignores."""
    config = str(EXAMPLES / name)
    doc = experiment_document(config, list(overrides), progress=False)
    assert fitted_inert_settings(read_config(config, list(overrides)), doc) == []


@pytest.mark.parametrize("name, overrides", _cells(), ids=lambda v: v if isinstance(v, str) else "+".join(v) or "as-is")
def test_no_example_sets_a_model_seed_that_a_sweep_seed_overrides(name, overrides):
    """norman_combo.yaml set ``model.seed: 0``, which every seed of a sweep but 0 (models_sweep.yaml's 1 and 2) overrides
    with its ``train.seed``: each such run warned 'model.seed=0 has no effect on the fit'. The default seed is 0 as well."""
    import warnings

    from distgen.config import InertSettingWarning
    from distgen.train.loop import fit_options
    from distgen_bayes.model import BayesHierarchicalModel

    doc = experiment_document(str(EXAMPLES / name), [*overrides, "train.seed=1"], progress=False)
    if (doc.get("model") or {}).get("name") != "bayes_hier":
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error", InertSettingWarning)
        assert fit_options(BayesHierarchicalModel, doc)["seed"] == 1
