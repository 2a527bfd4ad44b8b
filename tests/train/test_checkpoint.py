import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from distgen.train import CheckpointError, fit, load_checkpoint
from distgen.train.checkpoint import list_checkpoints, resolve_checkpoint

from .conftest import MODEL, same_params

RUN = {"steps": 20, "sets_per_batch": 4, "progress": False, "checkpoint_every": 5, "ema_decay": 0.9, "warmup_steps": 3, "lr": 3e-3}


class Killed(Exception):
    pass


def kill_at(step):
    def cb(trainer, s):
        if s == step:
            raise Killed

    return cb


def test_resume_is_exact(table, make_model, tmp_path):
    straight = make_model()
    fit(straight, table, set_size=4, val=table, val_every=4, run_dir=tmp_path / "a", **RUN)
    killed = make_model()
    with pytest.raises(Killed):
        fit(killed, table, set_size=4, val=table, val_every=4, run_dir=tmp_path / "b", callbacks=[kill_at(12)], **RUN)
    assert not same_params(straight, killed)
    resumed = make_model(seed=123)  # fresh weights: everything must come from the checkpoint
    res = fit(resumed, table, set_size=4, val=table, val_every=4, run_dir=tmp_path / "b", resume=tmp_path / "b", **RUN)
    # resumed at step 10, the last checkpoint of checkpoint_every before the kill: validation without train.patience writes
    # no checkpoint of its own (an improving one at step 12 was written by the first pass of the best checkpoint)
    assert len(res.losses) == 10 and res.best_checkpoint is None
    assert [p.name for p in list_checkpoints(tmp_path / "a" / "checkpoints")] == ["step_00000015", "step_00000020"]
    assert same_params(straight, resumed)
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert all(torch.equal(a.ema[k], b.ema[k]) for k in a.ema)
    rows = (tmp_path / "b" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["4", "8", "10", "12", "16", "20"]


def test_hard_killed_process_resumes_exactly(table, make_model, tmp_path):
    script = textwrap.dedent(f"""
        import os, torch
        torch.set_num_threads(1)
        from distgen.models.generator import build_model
        from distgen.testing.fixtures import tiny_table
        from distgen.train import fit
        t = tiny_table(); torch.manual_seed(0)
        m = build_model({MODEL!r}, t.info)
        def die(trainer, s):
            if s == 7:
                os._exit(137)
        fit(m, t, set_size=4, run_dir={str(tmp_path / "run")!r}, callbacks=[die], **{RUN!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 137, proc.stderr[-2000:]
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["step_00000005"]
    resumed = make_model(seed=5)
    fit(resumed, table, set_size=4, run_dir=tmp_path / "run", resume=tmp_path / "run", **RUN)
    straight = make_model()
    fit(straight, table, set_size=4, **RUN)
    assert same_params(straight, resumed)


def test_checkpoint_files_are_safetensors_and_json(table, make_model, tmp_path):
    fit(make_model(), table, set_size=4, run_dir=tmp_path, **{**RUN, "steps": 5})
    ckpt = resolve_checkpoint(tmp_path)
    names = sorted(p.name for p in ckpt.iterdir())
    assert all(n.endswith((".safetensors", ".json")) for n in names)
    assert {"model.safetensors", "ema.safetensors", "optimizer.safetensors", "state.json"} <= set(names)
    state = json.loads((ckpt / "state.json").read_text())
    assert state["step"] == 5 and state["has_ema"]


def test_other_config_is_rejected_naming_the_key(table, make_model, tmp_path):
    fit(make_model(), table, set_size=4, run_dir=tmp_path, **{**RUN, "steps": 5})
    with pytest.raises(CheckpointError, match=r"train\.lr"):
        fit(make_model(), table, set_size=4, resume=tmp_path, **{**RUN, "lr": 0.5})
    # run-control keys (steps) may change: extending a run is allowed
    fit(make_model(), table, set_size=4, resume=tmp_path, **{**RUN, "steps": 6})


def test_missing_and_truncated_checkpoints_fail_clearly(table, make_model, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        load_checkpoint(tmp_path / "empty")
    fit(make_model(), table, set_size=4, run_dir=tmp_path / "r", **{**RUN, "steps": 5})
    ckpt = resolve_checkpoint(tmp_path / "r")
    data = (ckpt / "optimizer.safetensors").read_bytes()
    (ckpt / "optimizer.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"corrupt or truncated.*optimizer"):
        load_checkpoint(tmp_path / "r")
    os.remove(ckpt / "rng.json")
    with pytest.raises(CheckpointError, match=r"missing rng\.json"):
        load_checkpoint(ckpt)


def test_half_written_checkpoint_is_ignored(table, make_model, tmp_path):
    fit(make_model(), table, set_size=4, run_dir=tmp_path, **{**RUN, "steps": 5})
    tmp = tmp_path / "checkpoints" / ".step_00000010.tmp"  # what a kill mid-write leaves behind
    tmp.mkdir()
    (tmp / "model.safetensors").write_bytes(b"\x00" * 10)
    assert resolve_checkpoint(tmp_path).name == "step_00000005"
    assert load_checkpoint(tmp_path).step == 5


def test_keep_prunes_old_checkpoints(table, make_model, tmp_path):
    fit(make_model(), table, set_size=4, run_dir=tmp_path, **{**RUN, "steps": 20, "keep_checkpoints": 2})
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step_00000015", "step_00000020"]


def _digests(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "run.lock"}


def test_python_fit_into_a_folder_with_checkpoints_is_refused_unless_resumed(table, make_model, tmp_path):
    # distgen train refuses an --out that holds checkpoints (RunFolderError, exit 2); fit(..., run_dir=) and Trainer.fit
    # replaced them with a new run's without a word (step_00000005 overwritten, metrics.csv restarted)
    from distgen.data.batches import TableBatches
    from distgen.train import Trainer, TrainOptions
    from distgen.train.checkpoint import RunFolderError

    fit(make_model(), table, set_size=4, run_dir=tmp_path, **{**RUN, "steps": 5})
    before = _digests(tmp_path)
    assert any(p.parts[0] == "checkpoints" for p in before)
    with pytest.raises(RunFolderError, match=r"already holds checkpoints; pass resume=.* to continue that run or choose a new run_dir") as err:
        fit(make_model(), table, set_size=4, run_dir=tmp_path, **{**RUN, "steps": 5})
    assert err.value.exit_code == 2 and str(tmp_path) in str(err.value)
    assert _digests(tmp_path) == before  # nothing replaced, no warning added to its manifest
    opts = TrainOptions(**{**RUN, "steps": 5})
    trainer = Trainer(make_model(), TableBatches(table, 4, opts.sets_per_batch, "same_context", opts.seed), opts, run_dir=tmp_path)
    with pytest.raises(RunFolderError, match=r"pass resume="):
        trainer.fit()
    assert _digests(tmp_path) == before
    # the folder is left free, and resume= continues it (as the message says)
    res = fit(make_model(), table, set_size=4, run_dir=tmp_path, resume=tmp_path, **{**RUN, "steps": 7})
    assert res.step == 7 and [p.name for p in list_checkpoints(tmp_path / "checkpoints")][-1] == "step_00000007"
