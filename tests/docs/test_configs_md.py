"""docs/configs.md's examples are what the code takes: its Python block runs, the documents it shows load and
validate, the model node at the top builds, and the errors it quotes are the ones raised."""

import re

import pytest
import yaml

from distgen.config import ConfigError, load_config

from .conftest import ROOT, run_block

PAGE = ROOT / "docs" / "configs.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", PAGE.read_text(), re.S)


def test_the_python_block_runs(tmp_path):
    (code,) = blocks("python")
    proc = run_block(code + "\nprint(type(kernel).__name__, doc['model']['distribution_weight'])\n", tmp_path, {"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and "RBFKernel 0" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]


def test_the_whole_documents_load(tmp_path):
    """The blocks that start with ``base:`` or an ``x-`` anchor section are run configs: they load as written."""
    docs = [b for b in blocks("yaml") if re.match(r"(base: [\w-]+\n|x-)", b) and "..." not in b]
    assert len(docs) >= 2, docs
    for i, text in enumerate(docs):
        (tmp_path / f"d{i}.yaml").write_text(text)
        doc = load_config(str(tmp_path / f"d{i}.yaml"))
        assert doc["model"]["name"] == "generator"
        if text.startswith("x-"):  # the anchor's keys reach the backbone, beside the block's own
            assert doc["model"]["backbone"]["d_model"] == 64 and doc["model"]["backbone"]["dropout"] == 0.0


def test_the_model_node_at_the_top_builds_on_the_bundled_data():
    import distgen

    top = yaml.safe_load(blocks("yaml")[0])
    data = distgen.load_data("norman_k562", split={"kind": "combo_seen2"})
    model = distgen.build(top, data)
    assert type(model).__name__ == "Generator"


def test_the_quoted_errors_are_raised():
    text = PAGE.read_text()
    import distgen
    from distgen.train.options import train_options

    doc = load_config("perturbdiff-small", ["model.dynamics.start_step=9"])
    with pytest.raises(ConfigError, match="'start_step' is no longer a parameter here; set it on the sampler"):
        distgen.build(doc, distgen.load_data("norman_k562", split={"kind": "combo_seen2"}).info)
    assert "'start_step' is no longer a parameter here; set it on the\nsampler" in text
    quoted = "expected int, got str '1e3'. A quoted\nvalue stays a string: write 1000 without quotes"
    with pytest.raises(ConfigError, match=re.escape(quoted.replace("\n", " "))):
        train_options(load_config("scdfm-small", ['train.steps="1e3"'])["train"])
    assert quoted in text


def test_the_shorter_diffusion_chain_builds_as_written_and_not_without_its_parts():
    """'shortening the chain takes both ...: `OVERRIDES`' builds on the PerturbDiff preset; leaving any part out is refused."""
    import distgen

    text = " ".join(PAGE.read_text().split())
    (line,) = re.findall(r"`(model\.dynamics\.schedule\.timesteps=\d+ [^`]+)`", text)
    overrides = line.split()
    assert len(overrides) == 3, overrides
    info = distgen.load_data("norman_k562", split={"kind": "combo_seen2"}).info
    assert type(distgen.build(load_config("perturbdiff-small", overrides), info)).__name__ == "Generator"
    for i in range(1, 3):
        with pytest.raises(ConfigError):
            distgen.build(load_config("perturbdiff-small", overrides[:i] + overrides[i + 1:]), info)


def test_the_evaluate_section_lists_every_key_and_its_defaults():
    """The ``evaluate:`` block names every key the section takes, and its values are the defaults where no comment
    says otherwise (``metrics``, ``counts``: examples; ``baselines``: the comment names the default)."""
    import inspect

    from distgen.evaluation.score import score
    from distgen.pipeline.experiment import EVALUATE_KEYS
    from distgen.pipeline.references import DEFAULT_BASELINES

    (block,) = [b for b in blocks("yaml") if b.startswith("evaluate:")]
    ev = yaml.safe_load(block)["evaluate"]
    assert set(ev) == set(EVALUATE_KEYS), set(ev) ^ set(EVALUATE_KEYS)
    (comment,) = re.findall(r"baselines: .*# default: all but (\w+)", block)
    assert tuple(b for b in ev["baselines"] if b != comment) == DEFAULT_BASELINES
    defaults = {k: p.default for k, p in inspect.signature(score).parameters.items()}
    for key in ("ceiling", "ceiling_splits", "replicate", "interpolated", "seed", "by_context", "spread"):
        assert ev[key] == defaults[key], f"configs.md evaluate.{key}: {ev[key]!r}, score()'s default is {defaults[key]!r}"
    assert ev["plots"] is True
    from distgen.data.counts import COUNT_MODELS

    (models,) = re.findall(r"counts: \w+ .*\(([\w |]+)\)", block)
    assert set(models.split(" | ")) == set(COUNT_MODELS) and ev["counts"] in COUNT_MODELS


def test_the_preset_lists_are_the_shipped_presets():
    """configs.md ('shipped in `distgen/models/presets/*.yaml` (...)') and the README ('Presets: ...') name every preset."""
    from distgen.config import preset_names

    configs = " ".join(PAGE.read_text().split())
    (listed,) = re.findall(r"shipped in `distgen/models/presets/\*\.yaml` \(([^)]*)\)", configs)
    readme = " ".join((ROOT / "README.md").read_text().split())
    (listed_readme,) = re.findall(r"Presets: ((?:`[\w-]+`,? (?:and )?)+)\(", readme)
    for names in (listed, listed_readme):
        assert sorted(re.findall(r"`([\w-]+)`", names)) == sorted(preset_names()), names
