"""The reads from device to host in one training step (what stalls an accelerator's queue).

Each ``.item()``, ``float(t)``, ``bool(t)``, ``int(t)``, ``.tolist()`` of a tensor, and each op whose output size
depends on the data (``nonzero``, ``unique``, boolean-mask indexing, ``repeat_interleave`` by a tensor) makes the host
wait for the device. A training step needs one: the micro-batches' losses and the gradient norm, read together, so a
NaN/inf stops training before the optimizer applies it and every step's loss is reported. The loss parts
(``LossOutput.parts``, 0-dim tensors) are read when a row is logged, not every step; the Cross-DiT's "are all control
cells real" comes from the host's record of the batch (``SetBatch.control_full``).

On the CPU every tensor is a host tensor, so the counter attributes each read to the innermost distgen frame that
made it. Leaving aside the batch building (it reads the host's cell table; the batch moves to the device after),
reads that touch only host tensors by construction are listed with the reason (``HOST_ONLY``).
"""

from __future__ import annotations

import collections
import csv
import linecache
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import distgen
from distgen.api import build
from distgen.testing import tiny_batch, tiny_info, tiny_table
from distgen.train import fit
from distgen.train.trainer import detached_parts, host_floats
from distgen.types import LossOutput
from distgen.types.tensors import nothing_padded

ROOT = Path(distgen.__file__).resolve().parent.parent
aten = torch.ops.aten
READS = {aten._local_scalar_dense.default: "scalar read", aten.nonzero.default: "nonzero", aten.masked_select.default: "masked_select",
         aten._unique2.default: "unique", aten.unique_dim.default: "unique", aten.unique_consecutive.default: "unique",
         aten.repeat_interleave.Tensor: "repeat_interleave", aten.masked_scatter.default: "masked_scatter"}

#: (file, what the line holds): reads of host tensors only, whatever the training device.
HOST_ONLY = {
    ("distgen/types/tensors.py", "return mask.device.type == \"cpu\" and bool(mask.all())"):
        "nothing_padded reads a CPU mask only (on an accelerator it answers False without reading: test below)",
    ("distgen/dynamics/diffusion.py", "float(torch.rand(())) < self.self_condition"):
        "the self-conditioning coin, drawn from the CPU generator whatever the model's device",
    ("distgen/encoders/kme.py", "elif bool((n_real < 2).any()):"):
        "the unbiased MMD's '>= 2 real cells per set' check reads a CPU mask only (on a device: torch._assert_async)",
}

#: Reads of scDFM's step besides the trainer's. None: the PAD-Transformer sizes its token and edge lists from the
#: host's copy of the gene and perturbation ids (``SetBatch.host_ids``, numpy) and checks the gene ids there; the
#: unbiased MMD's set-size check is in ``HOST_ONLY``. (Before: a gene-id bound check, two ``unique`` and two
#: ``repeat_interleave`` by tensor in the PAD-Transformer, and that MMD check: 6 reads a step.)
SCDFM_KNOWN: dict[tuple[str, str, str], int] = {}


def _site() -> tuple[str, str, str] | None:
    """(file, function, line) of the innermost distgen frame on the stack (None: none, e.g. torch's own)."""
    f = sys._getframe(2)
    while f is not None:
        path = Path(f.f_code.co_filename)
        if path.is_relative_to(ROOT / "distgen") and not path.is_relative_to(Path(__file__).parent):
            rel = str(path.relative_to(ROOT))
            return rel, f.f_code.co_name, linecache.getline(f.f_code.co_filename, f.f_lineno).strip()
        f = f.f_back
    return None


class Reads(TorchDispatchMode):
    """Counts the device reads made while ``on`` (and not inside batch building)."""

    def __init__(self) -> None:
        super().__init__()
        self.on = False
        self.paused = 0
        self.seen: collections.Counter[tuple[str, str, str, str]] = collections.Counter()

    def record(self, what: str) -> None:
        if self.on and not self.paused:
            site = _site()
            if site is not None and not any(site[0] == f and line in site[2] for f, line in HOST_ONLY):
                self.seen[(*site, what)] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        what = READS.get(func)
        if what is None and func is aten.index.Tensor and any(i is not None and i.dtype == torch.bool for i in args[1]):
            what = "boolean-mask indexing"
        if what is not None:
            self.record(what)
        return func(*args, **(kwargs or {}))


@pytest.fixture
def reads(monkeypatch):
    mode = Reads()
    tolist = torch.Tensor.tolist

    def counted_tolist(self):
        mode.record("tolist")  # on CPU tolist reads the memory without a dispatched op
        return tolist(self)

    monkeypatch.setattr(torch.Tensor, "tolist", counted_tolist)
    with mode:
        yield mode


def _one_step(preset: str, overrides: list[str], reads: Reads, **options) -> None:
    """Three optimizer steps of ``preset`` through ``distgen.fit``; counts the second, which neither logs nor
    checkpoints, from the end of the first step's callbacks to the end of its own."""

    def callback(trainer, step):
        if step == 1:
            source = trainer.train_source
            build_batch = source.batch

            def batch(*a, **k):  # the host's cell table: read on the host, moved to the device after
                reads.paused += 1
                try:
                    return build_batch(*a, **k)
                finally:
                    reads.paused -= 1

            source.batch = batch
        reads.on = step == 1

    torch.manual_seed(0)
    model = build(preset, tiny_info(), overrides=overrides)
    opts = {"steps": 3, "log_every": 100, "checkpoint_every": 100, "progress": False, "sets_per_batch": 2, **options}
    fit(model, tiny_table(), opts, set_size=4, callbacks=[callback])


TRAINER_READ = ("distgen/train/trainer.py", "train_step", "tolist")  # the losses and the gradient norm, together


@pytest.mark.parametrize("options", [{}, {"grad_accum": 2, "grad_clip": 1.0}], ids=["plain", "accumulated-clipped"])
def test_a_perturbdiff_step_reads_the_device_once(reads, options):
    small = ["model.backbone.dim=16", "model.backbone.heads=2", "model.conditioner.part_dim=4", "model.conditioner.dim=8"]
    _one_step("perturbdiff-small", small, reads, **options)
    sites = {(f, fn, what): n for (f, fn, _line, what), n in reads.seen.items()}
    assert sites == {TRAINER_READ: 1}, reads.seen


def _scdfm_step_sites(reads):
    """The device reads of one small ``scdfm-small`` step by (file, function, kind), the trainer's one read checked and removed."""
    _one_step("scdfm-small", ["model.backbone.d_model=16", "model.genes_per_step=8", "model.predict_genes=8"], reads)
    sites = collections.Counter()
    for (f, fn, _line, what), n in reads.seen.items():
        sites[(f, fn, what)] += n
    assert sites.pop(TRAINER_READ) == 1, reads.seen
    return sites


def test_a_scdfm_step_reads_only_the_trainers_and_the_pad_transformers_known_reads(reads):
    sites = _scdfm_step_sites(reads)
    assert sites == SCDFM_KNOWN, reads.seen  # no loss part, no control mask, no id list of the PAD-Transformer


def test_without_the_hosts_ids_the_pad_transformer_reads_the_device(reads, monkeypatch):
    # the fallback (ids known only on the device, e.g. a Condition built by hand) still works out its lists there:
    # what the counter sees once the host's record is withheld shows that the test above counts these reads
    from distgen.backbones.base import Condition

    monkeypatch.setattr(Condition, "host_tokens", lambda self: None)
    sites = _scdfm_step_sites(reads)
    assert sites == {("distgen/backbones/pad_transformer.py", "_check_gene_ids", "scalar read"): 1,
                     ("distgen/backbones/pad_transformer.py", "_compute_terms", "unique"): 1,
                     ("distgen/backbones/gene_encoder.py", "_edges", "unique"): 1,
                     ("distgen/backbones/gene_encoder.py", "gather_edges", "repeat_interleave"): 2}, reads.seen


def test_nothing_padded_reads_no_device_mask():
    # a meta tensor has no data: reading it would raise, so answering proves nothing was read
    assert nothing_padded(torch.ones(2, 3, dtype=torch.bool, device="meta")) is False
    assert nothing_padded(torch.ones(2, 3, dtype=torch.bool)) is True


def test_the_generators_loss_parts_are_detached_tensors():
    model = build("perturbdiff-small", tiny_info(), overrides=["model.backbone.dim=16", "model.backbone.heads=2",
                                                               "model.conditioner.part_dim=4", "model.conditioner.dim=8"])
    model.train()
    out = model.loss(tiny_batch(pad_last=0))
    assert set(out.parts) == {"diffusion_mse", "distribution", "loss"}
    for v in out.parts.values():
        assert isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad
    assert float(out.parts["loss"]) == out.loss.item()


def test_float_parts_of_a_plugins_loss_are_accepted_and_bad_ones_named():
    t = torch.tensor(0.25)
    kept = detached_parts({"a": 1.5, "b": t.requires_grad_(), "c": torch.tensor([2.0])}, "MyModel")
    assert kept["a"] == 1.5 and not kept["b"].requires_grad
    assert host_floats(list(kept.values())) == [1.5, 0.25, 2.0]
    with pytest.raises(TypeError, match=r"MyModel.loss returned LossOutput.parts\['v'\] of shape \(3,\)"):
        detached_parts({"v": torch.zeros(3)}, "MyModel")
    with pytest.raises(TypeError, match=r"parts\['s'\] = 'x'"):
        detached_parts({"s": "x"}, "MyModel")


class FloatParts(torch.nn.Module):
    """A plugin-style model whose loss parts are floats (as before parts could be tensors)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def loss(self, batch):
        loss = ((batch.target * self.w) ** 2).mean()
        return LossOutput(loss, {"square": float(loss.detach()), "half": 0.5})


def test_float_parts_reach_the_metrics_log(tmp_path):
    result = fit(FloatParts(), tiny_table(), {"steps": 4, "log_every": 2, "progress": False, "sets_per_batch": 2}, run_dir=tmp_path,
                 set_size=4)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [2, 4]
    for r, pair in zip(rows, (result.losses[:2], result.losses[2:]), strict=True):
        assert float(r["loss_half"]) == 0.5
        assert float(r["loss_square"]) == pytest.approx(sum(pair) / 2, rel=1e-5)  # the part is the loss itself


def test_part_means_average_micro_batches_ranks_and_steps():
    from distgen.train.trainer import Trainer

    trainer = Trainer.__new__(Trainer)  # only part_means: the window's mean over micro-batches, ranks and steps
    trainer.opts = type("O", (), {"grad_accum": 2})()
    trainer.env = type("E", (), {"distributed": False, "world_size": 1})()
    steps = [[{"square": 1.0, "half": 0.5}, {"square": torch.tensor(3.0), "half": 0.5}],
             [{"square": torch.tensor(5.0)}, {"square": 7.0, "half": torch.tensor(0.5)}]]
    means = trainer.part_means(steps)
    # step 1: square (1 + 3) / 2 = 2, half 0.5; step 2: square 6, half 0.25 (one micro-batch without it)
    assert means == {"half": (0.5 + 0.25) / 2, "square": (2 + 6) / 2}
    assert list(means) == ["half", "square"]
