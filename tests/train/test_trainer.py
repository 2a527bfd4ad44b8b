import math

import pytest
import torch

from distgen.config import ConfigError
from distgen.data.batches import TableBatches
from distgen.train import NonFiniteLossError, fit
from distgen.train.options import train_options
from distgen.train.trainer import Trainer

from .conftest import same_params

BASE = {"steps": 6, "sets_per_batch": 4, "progress": False, "lr": 3e-3}


def test_loss_decreases_and_history_is_returned(table, make_model):
    model = make_model()
    res = fit(model, table, set_size=8, **{**BASE, "steps": 60, "lr": 1e-2, "schedule": "constant"})
    assert len(res.losses) == 60 and all(math.isfinite(v) for v in res.losses)
    assert sum(res.losses[-10:]) < sum(res.losses[:10])
    assert not model.training


def test_same_seed_same_result_different_seed_different(table, make_model):
    a, b, c = make_model(), make_model(), make_model()
    fit(a, table, set_size=4, **BASE)
    fit(b, table, set_size=4, **BASE)
    fit(c, table, set_size=4, **{**BASE, "seed": 1})
    assert same_params(a, b) and not same_params(a, c)


def test_ema_differs_from_raw_weights_and_is_used_in_validation(table, make_model):
    model = make_model()
    opts = train_options({**BASE, "ema_decay": 0.5, "val_every": 3})
    tr = Trainer(model, TableBatches(table, 4, 4), opts, val=TableBatches(table, 4, 4, seed=9), info=table.info)
    res = tr.fit()
    raw = model.state_dict()["backbone.inp.weight"]
    assert not torch.equal(tr.ema.shadow["backbone.inp.weight"], raw)
    assert [v["step"] for v in res.validations] == [3, 6]
    assert {"val_loss", "val_mse"} <= set(res.validations[0])
    with tr.ema.swapped_in(model):
        assert torch.equal(model.state_dict()["backbone.inp.weight"], tr.ema.shadow["backbone.inp.weight"])
    assert torch.equal(model.state_dict()["backbone.inp.weight"], raw)


def test_validation_does_not_change_training_trajectory(table, make_model):
    a, b = make_model(), make_model()
    fit(a, table, set_size=4, **BASE)
    fit(b, table, val=table, set_size=4, val_every=2, **BASE)
    assert same_params(a, b)


def test_early_stopping_stops_after_patience(table, make_model):
    # lr so small that validation loss cannot improve after the first check
    res = fit(make_model(), table, val=table, set_size=4, **{**BASE, "steps": 50, "lr": 1e-12, "val_every": 1, "patience": 2, "monitor": "val_loss"})
    assert res.stopped_early and res.step < 50 and res.best_step is not None


def test_unknown_metric_is_a_config_error(table, make_model):
    from distgen.config import ConfigError

    with pytest.raises(ConfigError, match="unknown metric"):
        fit(make_model(), table, val=table, set_size=4, val_metrics=["nope"], **BASE)


def test_nan_loss_names_step_conditions_and_checkpoint(table, make_model, tmp_path):
    model = make_model()

    def poison(trainer, step):
        if step == 3:
            with torch.no_grad():
                trainer.model.backbone.inp.weight.fill_(float("nan"))

    with pytest.raises(NonFiniteLossError) as err:
        fit(model, table, set_size=4, run_dir=tmp_path, checkpoint_every=2, callbacks=[poison], **BASE)
    msg = str(err.value)
    assert "step 4" in msg and "step_00000002" in msg and "@ ctxA" in msg


def test_sets_per_batch_must_split_into_shards(table, make_model):
    from distgen.config import ConfigError

    with pytest.raises(ConfigError, match="multiple"):
        fit(make_model(), table, set_size=4, **{**BASE, "sets_per_batch": 3, "grad_accum": 2})


@pytest.mark.parametrize("precision", ["bf16"])
def test_bf16_autocast_runs_on_cpu(table, make_model, precision):
    res = fit(make_model(), table, set_size=4, precision=precision, **BASE)
    assert all(math.isfinite(v) for v in res.losses)


@pytest.mark.gpu
def test_cuda_bf16_tf32_training(table, make_model):
    model = make_model()
    res = fit(model, table, set_size=4, device="cuda", **BASE)
    assert next(model.parameters()).is_cuda and torch.backends.cuda.matmul.allow_tf32
    assert all(math.isfinite(v) for v in res.losses)


@pytest.mark.slow
def test_compiled_backbone_trains_and_keeps_checkpoint_keys(table, make_model, tmp_path):
    model = make_model()
    keys = set(model.state_dict())
    res = fit(model, table, set_size=4, compile=True, run_dir=tmp_path, **{**BASE, "steps": 2})
    from distgen.train import load_checkpoint

    assert all(math.isfinite(v) for v in res.losses) and set(load_checkpoint(tmp_path).model) == keys


def test_compile_mode_reaches_torch_compile_and_an_unknown_mode_is_refused(table, make_model, monkeypatch):
    seen = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **kw: seen.append(kw.get("mode", "absent")))
    for value, mode in ((True, None), ("default", None), ("reduce-overhead", "reduce-overhead"), ("max-autotune", "max-autotune")):
        Trainer(make_model(), TableBatches(table, 4, 4), train_options({**BASE, "steps": 1, "compile": value}))
        assert seen.pop() == mode
    Trainer(make_model(), TableBatches(table, 4, 4), train_options({**BASE, "steps": 1, "compile": False}))
    assert seen == []  # false compiles nothing
    with pytest.raises(ConfigError, match=r"train\.compile: expected one of default, reduce-overhead"):
        train_options({**BASE, "compile": "fast"})


def test_config_supplies_train_and_set_options_and_keywords_win(table, make_model):
    doc = {"train": {**BASE, "steps": 7, "seed": 3}, "data": {"set_size": 4, "matcher": "random", "dataset": "ignored.h5ad"}}
    a, b = make_model(), make_model()
    res = fit(a, table, config=doc)
    fit(b, table, set_size=4, matcher="random", **{**BASE, "steps": 7, "seed": 3})
    assert len(res.losses) == 7 and same_params(a, b)  # the config is exactly the keyword arguments
    c = make_model()
    assert len(fit(c, table, config=doc, steps=2).losses) == 2  # an explicit keyword overrides the config
    d = make_model()
    fit(d, table, config=doc, set_size=6)
    assert not same_params(a, d)  # so does an explicit set size
    with pytest.raises(TypeError, match="config must be a config mapping"):
        fit(make_model(), table, config="scdfm-small")


def test_ema_every_k_steps(table, make_model):
    tr = Trainer(make_model(), TableBatches(table, 4, 4), train_options({**BASE, "steps": 7, "ema_decay": 0.9, "ema_every": 3}))
    tr.fit()
    assert tr.ema is not None and tr.ema.updates == 3  # after steps 1, 4 and 7


def test_ema_epoch_end_adds_an_update_after_the_last_step_of_every_epoch(table, make_model):
    source = TableBatches(table, 4, 4, sampling="partition")
    n = source.steps_per_epoch
    steps = 2 * n + 1
    tr = Trainer(make_model(), source, train_options({**BASE, "steps": steps, "ema_decay": 0.9, "ema_every": 3, "ema_epoch_end": True}))
    tr.fit()
    cadence = len(range(0, steps, 3))  # after zero-based steps 0, 3, 6, ...
    assert tr.ema is not None and tr.ema.updates == cadence + 2  # plus one at the end of each of the two full epochs
    off = Trainer(make_model(), source, train_options({**BASE, "steps": steps, "ema_decay": 0.9, "ema_every": 3}))
    off.fit()
    assert off.ema is not None and off.ema.updates == cadence


def test_ema_epoch_end_needs_a_source_with_epochs(table, make_model):
    class NoEpochs:
        def __init__(self, inner):
            self.inner = inner

        def batch(self, step, shard, n_shards):
            return self.inner.batch(step, shard, n_shards)

    with pytest.raises(ConfigError, match="ema_epoch_end needs a batch source with epochs"):
        Trainer(make_model(), NoEpochs(TableBatches(table, 4, 4)), train_options({**BASE, "ema_decay": 0.9, "ema_epoch_end": True}))


def test_decay_norm_and_bias_false_decays_only_matrices(table, make_model):
    tr = Trainer(make_model(), TableBatches(table, 4, 4), train_options({**BASE, "weight_decay": 0.1, "decay_norm_and_bias": False}))
    decayed, plain = tr.optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() < 2 for p in plain["params"]) and plain["params"]
    all_params = [p for p in tr.wrapped.parameters() if p.requires_grad]
    assert len(decayed["params"]) + len(plain["params"]) == len(all_params)
    one = Trainer(make_model(), TableBatches(table, 4, 4), train_options({**BASE, "weight_decay": 0.1}))
    assert len(one.optimizer.param_groups) == 1
