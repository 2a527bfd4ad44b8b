"""The global batch's cut over ranks and micro-batches is said once, at the start of a training that cuts it."""

import yaml

from distgen.train.run import train_run

from .conftest import MODEL

CONFIG = {
    "model": MODEL,
    "data": {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0, "val_frac": 0.0}, "set_size": 8},
    "train": {"steps": 1, "sets_per_batch": 4, "log_every": 1, "progress": False, "check_memory": False},
}


def test_a_cut_global_batch_is_said_with_its_shards(tmp_path, capsys):
    """Until 2026-12-07 nothing said that sets_per_batch is the global batch, cut into world_size x grad_accum shards: a
    user moving from 1 to 2 processes could not tell from the output whether the batch per step had doubled."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    train_run(cfg, tmp_path / "a", ["train.grad_accum=2"])
    assert "batch: 4 sets per step (train.sets_per_batch, the global batch) = 1 process x 2 micro-batches (train.grad_accum) x 2 sets" in capsys.readouterr().err
    train_run(cfg, tmp_path / "b")  # one shard: nothing to say
    assert "batch:" not in capsys.readouterr().err
