"""Capabilities are typed, documented, read, resolved per built instance, and shown as such."""

import dataclasses
import json
import re
from pathlib import Path

from distgen import capabilities as caps_module
from distgen.capabilities import PER_INSTANCE, Capabilities, ModelCapabilities
from distgen.cli import main
from distgen.registry import KINDS, registry

ROOT = Path(__file__).resolve().parents[1]


def _kinds_dataclasses() -> list[type[Capabilities]]:
    return [c for c in vars(caps_module).values() if isinstance(c, type) and issubclass(c, Capabilities) and c is not Capabilities]


def test_every_field_is_documented_and_read_somewhere():
    """A capability nobody reads is documentation that can silently lie: each field is read by distgen's code."""
    source = "\n".join(p.read_text() for p in (ROOT / "distgen").rglob("*.py") if p.name != "capabilities.py")
    for cls in _kinds_dataclasses():
        for f in dataclasses.fields(cls):
            assert f.metadata.get("doc"), f"{cls.__name__}.{f.name} has no documentation"
            assert re.search(rf"\.{f.name}\b|\"{f.name}\"", source), f"{cls.__name__}.{f.name} is never read"


def test_every_kind_declares_its_own_dataclass():
    for kind in KINDS:
        reg = registry(kind)
        declared = reg.base.capabilities
        assert isinstance(declared, Capabilities)
        for name in reg.names():
            assert isinstance(reg.get(name).capabilities, type(declared)), f"{kind}/{name}"


def test_components_json_shows_typed_and_per_instance_capabilities(capsys):
    assert main(["components", "--json", "--kind", "models"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    gen = rows["generator"]
    assert gen["capabilities_type"] == "ModelCapabilities"
    assert gen["capabilities"] == {"supports_unseen_perturbations": PER_INSTANCE, "needs_control_cells": True}
    assert rows["control"]["capabilities"]["supports_unseen_perturbations"] is True
    assert main(["components", "--kind", "backbones"]) == 0
    out = capsys.readouterr().out
    assert "capabilities: gene_subsampling=True, self_conditioning=False" in out  # pad_transformer
    assert "self_conditioning=per instance" in out  # mlp, cross_dit: the self_conditioning parameter decides


def test_resolved_values_replace_per_instance_ones():
    assert ModelCapabilities(supports_unseen_perturbations=None).describe()["supports_unseen_perturbations"] == PER_INSTANCE
    assert ModelCapabilities(supports_unseen_perturbations=None).replace(supports_unseen_perturbations=True).describe() == {
        "supports_unseen_perturbations": True, "needs_control_cells": True}


def test_a_metric_without_a_cell_eval_name_is_listed_as_none_not_per_instance():
    """``celleval=None`` means "cell-eval has no such metric"; the listing showed it as decided per instance (69 metrics)."""
    from distgen.evaluation.metrics import metrics

    caps = metrics.get("de_wilcoxon_direction_coverage").capabilities
    assert caps.celleval is None and caps.describe()["celleval"] is None
    assert metrics.get("mse").capabilities.describe()["celleval"] == "mse"
