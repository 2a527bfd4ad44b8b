"""Issue 17 (resource bounds): sizes that cannot fit fail in seconds, before anything is allocated, with
an estimate and the knob to turn; a model estimated above the machine's memory is refused unless
``train.check_memory=false``."""

import copy
import json
import time

import pytest
import torch

from distgen.config import load_config
from distgen.data import TableBatches
from distgen.models.generator import build_model
from distgen.testing.fixtures import tiny_table
from distgen.train import resources as R
from distgen.train.options import train_options
from distgen.train.resources import ResourceError, check_memory, estimate_memory
from distgen.train.run import resolve_document

from .conftest import MODEL

TABLE = tiny_table(n_per_condition=20, n_genes=48)
INFO = TABLE.info
SEEN = list(INFO.perturbations)


def _with(node, dotted, value):
    node = copy.deepcopy(node)
    keys = dotted.split(".")
    target = node
    for k in keys[:-1]:
        target = target[k]
    target[keys[-1]] = value
    return node


PERTURBDIFF_SMALL = resolve_document(load_config("perturbdiff-small"))[0]["model"]
HOSTILE = [  # (model node, set_size, the knob the message must name)
    (_with(MODEL, "backbone.hidden", 100_000), 8, "model.backbone.hidden"),
    (_with(_with(MODEL, "backbone.depth", 100_000), "backbone.hidden", 256), 8, "model.backbone.depth"),
    (_with(PERTURBDIFF_SMALL, "backbone.dim", 100_000), 8, "model.backbone.dim"),
    (_with(PERTURBDIFF_SMALL, "backbone.depth", 100_000), 8, "model.backbone.depth"),
    (_with(MODEL, "population_encoder", {"name": "kme", "kernel": {"name": "rbf"}, "features": 1_000_000_000}), 8,
     "model.population_encoder.features"),
    (MODEL, 2_000_000_000, "data.set_size"),
]


@pytest.mark.parametrize("node,set_size,knob", HOSTILE, ids=[h[2] for h in HOSTILE])
def test_sizes_that_cannot_fit_are_refused_quickly_naming_the_knob(node, set_size, knob):
    t0 = time.perf_counter()
    with pytest.raises(ResourceError) as info:
        check_memory(node, INFO, SEEN, train_options({"sets_per_batch": 8}), set_size)
    assert time.perf_counter() - t0 < 30
    msg = str(info.value)
    assert knob in msg and "more than this machine's" in msg and "train.check_memory=false" in msg
    assert any(unit in msg for unit in ("GB", "TB", "PB"))


def test_a_normal_model_fits_and_is_estimated():
    est = check_memory(PERTURBDIFF_SMALL, INFO, SEEN, train_options({"sets_per_batch": 4}), 16)
    real = build_model(PERTURBDIFF_SMALL, INFO, SEEN)
    assert est.parameters == sum(p.numel() for p in real.parameters())
    assert est.buffers == sum(b.numel() for b in real.buffers())
    assert est.activations is not None and est.activations > 0


def test_refusal_can_be_overridden(monkeypatch):
    monkeypatch.setattr(R, "machine_memory", lambda device="cpu": (1_000_000, "RAM"))  # a 1 MB machine
    with pytest.raises(ResourceError, match=r"more than this machine's 1\.0 MB"):
        check_memory(PERTURBDIFF_SMALL, INFO, SEEN, train_options({"sets_per_batch": 4}), 16)
    est = check_memory(PERTURBDIFF_SMALL, INFO, SEEN, train_options({"sets_per_batch": 4, "check_memory": False}), 16)
    assert est.total > 1_000_000


def test_meta_activation_estimate_matches_the_real_forward_pass():
    """The meta forward counts the same live storages as a real forward of the same batch shape."""
    torch.manual_seed(0)
    model = build_model(PERTURBDIFF_SMALL, INFO, SEEN).train()
    batch = TableBatches(TABLE, 16, 4, "same_context", 0).batch(0, 0, 1)
    with R._PeakStorage(time.perf_counter() + 60) as mode:
        model.loss(batch)
    meta_model, _, _ = R.meta_build(lambda: build_model(PERTURBDIFF_SMALL, INFO, SEEN))
    est = R.activation_bytes(meta_model, R.meta_batch(INFO, 4, 16))
    assert est == pytest.approx(mode.peak, rel=0.1)


@pytest.mark.parametrize("key,value", [("backbone.depth", 5000), ("backbone.hidden", 5000)])
def test_extrapolated_parameter_count_is_exact_for_depth_and_width(key, value):
    node = _with(MODEL, key, value)
    _, params, buffers = R.meta_build(lambda: build_model(node, INFO, SEEN))
    counts = R._extrapolate(lambda x: build_model(_with(MODEL, key, x), INFO, SEEN), value)
    assert counts is not None and counts[0] == pytest.approx(params, rel=1e-6) and counts[1] == pytest.approx(buffers, rel=1e-6)


def test_cli_refuses_a_huge_depth_with_exit_2_and_writes_nothing(tmp_path, capsys):
    from distgen.cli import main

    cfg = tmp_path / "big.yaml"
    cfg.write_text(json.dumps({"model": _with(_with(MODEL, "backbone.depth", 100_000), "backbone.hidden", 256),
                               "data": {"dataset": "norman_k562", "hvg": 32, "set_size": 4, "split": {"kind": "combo_seen2", "seed": 0}},
                               "train": {"steps": 2, "sets_per_batch": 2, "progress": False}}))
    code = main(["train", str(cfg), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "model.backbone.depth=100,000" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_the_estimate_leaves_training_bit_identical(tmp_path):
    from distgen.train.checkpoint import load_checkpoint
    from distgen.train.run import train_run

    doc = {"model": MODEL, "data": {"dataset": "norman_k562", "hvg": 32, "set_size": 4, "split": {"kind": "combo_seen2", "seed": 0}},
           "train": {"steps": 3, "sets_per_batch": 2, "progress": False}}
    train_run(doc, tmp_path / "checked")
    train_run(doc, tmp_path / "unchecked", ["train.check_memory=false"])
    a, b = load_checkpoint(tmp_path / "checked"), load_checkpoint(tmp_path / "unchecked")
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)


def test_estimate_without_meta_support_still_checks_the_batch(monkeypatch):
    def unbuildable(*a, **k):
        raise RuntimeError("cannot build on meta")

    monkeypatch.setattr(R, "meta_build", unbuildable)
    est, problem = estimate_memory(MODEL, INFO, SEEN, sets_per_batch=4, set_size=8)
    assert problem is None and est.parameters is None and "parameters not estimated" in est.notes[0]


def test_check_memory_false_skips_the_estimate(tmp_path, monkeypatch):
    """distgen train ran the estimate (meta builds, a meta forward) with train.check_memory=false too, where
    nothing reads it (it only refuses); a large share of a tiny run on a loaded machine. check_memory() itself still
    returns it (test_refusal_can_be_overridden)."""
    from distgen.train.run import train_run

    calls = []
    real = R.estimate_memory
    monkeypatch.setattr(R, "estimate_memory", lambda *a, **k: calls.append(1) or real(*a, **k))
    doc = {"model": MODEL, "data": {"dataset": "norman_k562", "hvg": 32, "set_size": 4, "split": {"kind": "combo_seen2", "seed": 0}},
           "train": {"steps": 1, "sets_per_batch": 2, "progress": False}}
    train_run(doc, tmp_path / "unchecked", ["train.check_memory=false"])
    assert calls == []
    train_run(doc, tmp_path / "checked")
    assert calls == [1]
