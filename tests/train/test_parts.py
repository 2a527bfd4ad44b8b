"""Small pieces of the engine: device selection, EMA, the metrics log, the manifest, the data section."""

import csv

import pytest
import torch

from distgen.config import ConfigError
from distgen.data import Dataset, data_section
from distgen.train.device import OOM_HINT, resolve_precision, select_device
from distgen.train.ema import EMA
from distgen.train.logger import TENSORBOARD_NOTE, MetricsLog
from distgen.train.manifest import build_manifest


def test_device_selection_and_precision():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="not a device"):
        select_device("tpu9")
    assert select_device("CPU").type == "cpu" and select_device(" Cpu:0 ") == torch.device("cpu:0")  # refused before: 'CPU' is not a device
    for other in ("mps", "meta", "xla"):  # failed later inside torch (meta: "Cannot copy out of meta tensor; no data!")
        with pytest.raises(ConfigError, match=rf"train\.device='{other}': distgen trains and predicts on the CPU or CUDA GPUs only"):
            select_device(other)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            select_device("cuda")
    assert resolve_precision("auto", torch.device("cpu")) is None
    assert resolve_precision("bf16", torch.device("cpu")) is torch.bfloat16
    assert resolve_precision("auto", torch.device("cuda")) is torch.bfloat16
    assert "grad_accum" in OOM_HINT and "sets_per_batch" in OOM_HINT


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_native_bfloat16_warns_that_it_will_be_slow(monkeypatch, native):
    import warnings

    from distgen.train import device as dev

    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: native)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert resolve_precision("bf16", torch.device("cpu")) is torch.bfloat16
        assert resolve_precision("auto", torch.device("cpu")) is None  # auto stays fp32 on every CPU
    slow = [w for w in seen if "without native bfloat16" in str(w.message)]
    assert len(slow) == (0 if native else 1) and all(issubclass(w.category, UserWarning) for w in slow)


def test_native_bf16_probe_agrees_with_the_cpu_flags():
    from pathlib import Path

    from distgen.train.device import cpu_has_native_bf16

    info = Path("/proc/cpuinfo")
    if not info.exists():
        pytest.skip("no /proc/cpuinfo")
    flags = next((ln.split(":", 1)[1].split() for ln in info.read_text().splitlines() if ln.startswith("flags")), [])
    assert cpu_has_native_bf16() == bool({"avx512_bf16", "amx_tile"} & set(flags))


def test_ema_tracks_a_moving_average():
    lin = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.zero_()
    ema = EMA(lin, decay=0.5)
    for _ in range(50):
        with torch.no_grad():
            lin.weight.fill_(1.0)
        ema.update(lin)
    assert torch.allclose(ema.shadow["weight"], torch.ones(1, 2), atol=1e-6)
    ema2 = EMA(lin, decay=0.5)
    ema2.load_state_dict({"weight": torch.full((1, 2), 3.0)}, updates=7)
    assert ema2.updates == 7 and torch.equal(ema2.shadow["weight"], torch.full((1, 2), 3.0))
    with pytest.raises(KeyError, match="different model"):
        ema2.load_state_dict({}, 0)


def test_metrics_log_grows_columns_and_trims_on_resume(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path)
    log.log(1, {"loss": 1.0})
    log.log(2, {"loss": 0.5, "val_loss": 0.7})
    log.log(3, {"loss": 0.25})
    rows = list(csv.DictReader(path.open()))
    assert [r["step"] for r in rows] == ["1", "2", "3"] and rows[0]["val_loss"] == "" and rows[1]["val_loss"] == "0.7"
    MetricsLog(path, resume_step=2).log(3, {"loss": 0.3})
    rows = list(csv.DictReader(path.open()))
    assert [(r["step"], r["loss"]) for r in rows] == [("1", "1"), ("2", "0.5"), ("3", "0.3")]
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        assert log.note == TENSORBOARD_NOTE


def test_manifest_names_versions_hardware_and_seed():
    m = build_manifest(seed=7, data={"data_hash": "abc"})
    assert m["seed"] == 7 and m["data"]["data_hash"] == "abc"
    assert m["versions"]["torch"] == torch.__version__ and "distgen" in m["versions"]
    assert m["hardware"]["cpu_count"] >= 1 and "git_commit" in m


def test_data_section_validates_and_loads_bundled_data():
    with pytest.raises(ConfigError, match="set_size must be"):
        data_section({"set_size": 0})
    with pytest.raises(ConfigError, match="Did you mean 'kind'"):
        data_section({"split": {"knd": "x"}})
    rd = Dataset.load(data_section({"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0}, "set_size": 4}))
    train, val = rd.sources(sets_per_batch=4, val_sets=2, seed=0)
    b = train.batch(0)
    assert b.shape == (4, 4, rd.info.n_genes) and not b.labels.is_control.any()
    assert val is not None and val.batch(0).shape[0] == 2
    test_conds = set(rd.split.test_conditions)
    train_conds = {str(c) for c in rd.data.conditions[rd.split.train.numpy()]}
    assert test_conds and not test_conds & train_conds
    assert set(rd.seen_perturbations()) <= set(rd.info.perturbations)


def test_ema_without_warmup_copies_first_then_uses_the_decay():
    lin = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(4.0)
    ema = EMA(lin, decay=0.9, warmup=False)
    with torch.no_grad():
        lin.weight.fill_(2.0)
    ema.update(lin)
    assert ema.shadow["weight"].item() == pytest.approx(2.0)  # a copy, whatever the initial shadow
    with torch.no_grad():
        lin.weight.fill_(12.0)
    ema.update(lin)
    assert ema.shadow["weight"].item() == pytest.approx(0.9 * 2.0 + 0.1 * 12.0)


def test_an_ema_state_lacking_tensors_counts_the_ones_the_ema_averages_not_the_models():
    """An EMA averages the floating-point tensors only: a BatchNorm's integer step counter is in the model's state but not
    the EMA's, so the refusal's total is the EMA's 4 tensors, not "the model's" (which holds 5)."""
    bn = torch.nn.BatchNorm1d(3)
    assert len(bn.state_dict()) == 5
    ema = EMA(bn, 0.9)
    with pytest.raises(KeyError) as info:
        ema.load_state_dict({"weight": torch.ones(3)}, 0)
    text = str(info.value)
    assert "lacks 3 of the 4 floating-point tensors it averages ('bias', 'running_mean', 'running_var')" in text, text
    assert "model's" not in text.split(";")[0]
