"""Run folders of ``perturbdiff-small`` and ``scdfm-small`` trained before 2026-12-05 (review of the old run folders round).

Their resolved ``config.yaml`` and checkpoints record defaults that distgen refuses since as settings with no effect:
``cross_dit``'s ``time_scale: 1000.0`` under ``time_input: step`` (93d835d) and ``kme``'s ``feature_map: auto``,
``features: 256``, ``seed: 0`` as a distribution loss (8677cd8; today's default ``None`` builds the same buffers). Such a
run could be neither predicted (``distgen predict`` built the model of its config.yaml: "cross_dit: time_scale=1000.0
... would have no effect; remove time_scale", and removing it was refused as another config than the checkpoint's) nor
resumed (under the preset: "written under a different config (model.backbone.time_scale: 1000.0 -> None; ...)"; with
its own config.yaml: the same assembly refusal). Probe: ``resolve_document`` of both presets (``data.hvg: 64``) at
5b0d71f and now differ in exactly these keys (and scdfm-small's ``gene_dropout``, ``same_draws``); 4-step runs of
both made at 5b0d71f now predict and resume.
"""

from __future__ import annotations

import copy

import pytest
import torch

from distgen.config import ConfigError, load_config
from distgen.encoders.kme import KernelMeanEmbedding
from distgen.models.generator import build_model
from distgen.train.checkpoint import CheckpointConfigError, check_state_compatible, fingerprint, read_as_now
from distgen.train.run import resolve_document
from distgen.types import DataInfo

#: what 5b0d71f's resolved config wrote where today's writes None (per preset: component slot -> keys)
EARLIER = {
    "perturbdiff-small": {"backbone": {"time_scale": 1000.0},
                          "distribution_loss": {"feature_map": "auto", "features": 256, "seed": 0}},
    "scdfm-small": {"backbone": {"gene_dropout": "per_cell"},
                    "distribution_loss": {"feature_map": "auto", "features": 256, "seed": 0}},
}


def _now(preset: str) -> dict:
    resolved, opts, _ = resolve_document(load_config(preset, ["data.hvg=64"]))
    return {"model": resolved["model"], "data": resolved["data"], "train": opts.fingerprint_dict()}


def _earlier(preset: str) -> dict:
    old = copy.deepcopy(_now(preset))
    for slot, keys in EARLIER[preset].items():
        old["model"][slot].update(keys)
    return old


@pytest.mark.parametrize("preset", sorted(EARLIER))
def test_an_earlier_presets_run_resumes_under_the_preset(tmp_path, preset):
    now, old = _now(preset), _earlier(preset)
    assert fingerprint(old) != fingerprint(now)
    check_state_compatible(tmp_path, {"fingerprint": fingerprint(old), "fingerprint_config": old}, now, fingerprint(now))
    changed = copy.deepcopy(now)
    changed["model"]["distribution_loss"]["features"] = 512  # a value other than the old default: still refused
    with pytest.raises(CheckpointConfigError, match=r"distribution_loss\.features: 256 -> 512"):
        check_state_compatible(tmp_path, {"fingerprint": fingerprint(old), "fingerprint_config": old}, changed, fingerprint(changed))


@pytest.mark.filterwarnings("ignore:pad_transformer. gene_dropout=per_cell has no effect")  # scdfm-small's, as before
@pytest.mark.parametrize("preset", sorted(EARLIER))
def test_an_earlier_presets_config_yaml_builds_the_model_it_trained(preset):
    info = DataInfo(genes=tuple(f"G{i}" for i in range(16)), perturbations=("G0", "G1", "G2"), contexts=("k562",),
                    batches=("b0",))
    with pytest.raises(ConfigError, match="no effect"):  # the stored node as it is: refused now as a setting without effect
        build_model(_earlier(preset)["model"], info, ["G0", "G1"])
    model = build_model(read_as_now(_earlier(preset))["model"], info, ["G0", "G1"])
    torch.manual_seed(0)
    again = build_model(_now(preset)["model"], info, ["G0", "G1"])
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {k: tuple(v.shape) for k, v in again.state_dict().items()}


def test_kme_with_the_earlier_defaults_written_out_is_the_kme_of_none():
    """The rewrite's premise: ``features: 256, feature_map: auto, seed: 0`` build the buffers and distance ``None`` builds."""
    kernel = {"name": "energy", "exponent": 1.0}
    then, now = KernelMeanEmbedding(16, kernel, False, 256, "auto", 0), KernelMeanEmbedding(16, kernel, False)
    a, b = then.state_dict(), now.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    p, q = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    pm, qm = torch.ones(2, 5, dtype=torch.bool), torch.ones(2, 7, dtype=torch.bool)
    assert torch.equal(then.distance(p, pm, q, qm), now.distance(p, pm, q, qm))


#: what a54a3de's CPU-sized presets resolved to where later commits changed their bases (``scdfm``, ``perturbdiff``):
#: TF32 allowed (``train.tf32``'s default) and, for scdfm-small, the ``random`` matcher's own control draw
BEFORE_FP32 = {"perturbdiff-small": {"train": {"tf32": True}},
               "scdfm-small": {"train": {"tf32": True}, "data": {"matcher_params": None}}}


@pytest.mark.parametrize("preset", sorted(BEFORE_FP32))
def test_a_small_presets_run_from_before_the_faithful_presets_changed_resumes_under_the_preset(tmp_path, preset):
    """A later commit set ``tf32: false`` in ``scdfm``/``perturbdiff`` and scDFM's controls with replacement; the ``-small``
    presets inherited both (its docs said they keep TF32), so every ``-small`` run folder made before was refused by
    ``distgen train scdfm-small --resume`` ("written under a different config (data.matcher_params: None ->
    {'replacement': True}; train.tf32: True -> False)") and every documented ``-small`` number was of another config.
    The ``-small`` presets keep their own settings: an earlier run resumes under the preset's name."""
    now = _now(preset)
    old = copy.deepcopy(now)
    for section, keys in BEFORE_FP32[preset].items():
        old[section].update(keys)
    check_state_compatible(tmp_path, {"fingerprint": fingerprint(old), "fingerprint_config": old}, now, fingerprint(now))
