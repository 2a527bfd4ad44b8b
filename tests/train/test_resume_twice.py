"""Resumes as a methods developer chains them: two interruptions in a row continue bit for bit (with every trainer state
that a checkpoint carries: EMA with its cadence and epoch-end updates, grad_accum, a warm-up and plateau schedule, decay
groups), and a run folder whose newest checkpoint is gone says which older one it continues (docs/training.md,
"Checkpoints and exact resume")."""

import shutil

import pytest
import torch

from distgen.errors import DistgenWarning
from distgen.train import fit, load_checkpoint
from distgen.train.checkpoint import resolve_checkpoint
from tests.train.test_checkpoint import Killed, kill_at  # a callback that stops the fit after a step

RUN = {"steps": 9, "sets_per_batch": 4, "progress": False, "checkpoint_every": 3, "ema_decay": 0.9, "ema_every": 2,
       "ema_epoch_end": True, "warmup_steps": 2, "schedule": "cosine_floor", "plateau_ratio": 0.1, "weight_decay": 0.01,
       "decay_norm_and_bias": False, "grad_accum": 2}


def test_two_resumes_in_a_row_equal_one_uninterrupted_run(table, make_model, tmp_path):
    straight = fit(make_model(), table, set_size=4, run_dir=tmp_path / "a", **RUN)
    for at, resume in ((3, None), (6, tmp_path / "b")):
        with pytest.raises(Killed):
            fit(make_model(seed=0 if resume is None else at), table, set_size=4, run_dir=tmp_path / "b", resume=resume, callbacks=[kill_at(at)], **RUN)
    last = fit(make_model(seed=99), table, set_size=4, run_dir=tmp_path / "b", resume=tmp_path / "b", **RUN)
    assert last.losses == straight.losses[6:]
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(last.checkpoint)
    assert a.state["ema_updates"] == b.state["ema_updates"] > 0
    for x, y in ((a.model, b.model), (a.ema, b.ema)):
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_a_deleted_newest_checkpoint_is_said_not_skipped_silently(table, make_model, tmp_path):
    fit(make_model(), table, set_size=4, run_dir=tmp_path, **{**RUN, "steps": 6})
    shutil.rmtree(tmp_path / "checkpoints" / "step_00000006")  # latest still names it
    with pytest.warns(DistgenWarning, match=r"latest names step_00000006, which is gone; using step_00000003, .*retrains"):
        assert resolve_checkpoint(tmp_path).name == "step_00000003"
    with pytest.warns(DistgenWarning, match="which is gone"):
        res = fit(make_model(), table, set_size=4, run_dir=tmp_path, resume=tmp_path, **{**RUN, "steps": 6})
    assert len(res.losses) == 3


def test_a_resume_with_fewer_steps_than_the_checkpoint_says_nothing_was_trained(table, make_model, tmp_path):
    """Resuming a step-6 checkpoint with train.steps=4 returned the step-6 model as if it had trained to step 4."""
    fit(make_model(), table, set_size=4, run_dir=tmp_path, **{**RUN, "steps": 6})
    with pytest.warns(DistgenWarning, match=r"resumed at step 6, past train\.steps=4: nothing was trained.*model is the one of step 6"):
        res = fit(make_model(), table, set_size=4, run_dir=tmp_path, resume=tmp_path, **{**RUN, "steps": 4})
    assert res.losses == [] and res.step == 6
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", DistgenWarning)  # a finished run resumed as it is: nothing to say
        assert fit(make_model(), table, set_size=4, run_dir=tmp_path, resume=tmp_path, **{**RUN, "steps": 6}).losses == []


def test_an_extended_run_updates_with_the_new_schedule_from_its_first_resumed_step(table, make_model, tmp_path, monkeypatch):
    """steps 4 -> 8: the first resumed step used the 4-step cosine's last rate (0) while metrics.csv logged the 8-step one's."""
    import distgen.train.trainer as T
    from distgen.train.schedule import lr_factor

    used = []
    real = T.clipped_step
    monkeypatch.setattr(T, "clipped_step", lambda opt, *a, **k: (used.append(opt.param_groups[0]["lr"]), real(opt, *a, **k))[1])
    run = {"sets_per_batch": 4, "progress": False, "log_every": 1, "lr": 1e-3}
    fit(make_model(), table, set_size=4, run_dir=tmp_path, steps=4, **run)
    assert used[-1] == 0.0  # the 4-step cosine ends at 0
    used.clear()
    fit(make_model(), table, set_size=4, run_dir=tmp_path, steps=8, resume=tmp_path, **run)
    assert used == pytest.approx([1e-3 * lr_factor(s, 8) for s in range(4, 8)], rel=1e-12)
    assert used[0] > 0


def test_fit_twice_without_resume_trains_on_from_the_weights_not_the_run(table, make_model):
    """docs/training.md, Python: a second fit starts at step 0 (new optimizer and schedule, the same batches) from the
    weights the first left, so its first loss is the first fit's model's, not a fresh model's."""
    model = make_model()
    first = fit(model, table, set_size=4, **{**RUN, "steps": 3, "ema_decay": None, "ema_every": 1, "ema_epoch_end": False})
    second = fit(model, table, set_size=4, **{**RUN, "steps": 3, "ema_decay": None, "ema_every": 1, "ema_epoch_end": False})
    fresh = fit(make_model(), table, set_size=4, **{**RUN, "steps": 3, "ema_decay": None, "ema_every": 1, "ema_epoch_end": False})
    assert second.step == first.step == 3  # not 6: the step count restarts
    assert fresh.losses == first.losses and second.losses != first.losses  # same batches, other (trained) weights


def test_a_latest_pointer_left_behind_by_a_kill_resumes_from_the_newest_complete_checkpoint(table, make_model, tmp_path):
    """A kill between renaming a checkpoint into place and updating checkpoints/latest left latest naming the one before:
    a resume went back to it and trained the steps after it again (same numbers, redundant work), predict took its weights."""
    fit(make_model(), table, set_size=4, run_dir=tmp_path, **{**RUN, "steps": 6})
    (tmp_path / "checkpoints" / "latest").write_text("step_00000003\n")  # as a kill before the pointer update leaves it
    with pytest.warns(DistgenWarning, match=r"latest names step_00000003, but step_00000006 is newer and complete"):
        assert resolve_checkpoint(tmp_path).name == "step_00000006"
    with pytest.warns(DistgenWarning, match="newer and complete"):
        res = fit(make_model(), table, set_size=4, run_dir=tmp_path, resume=tmp_path, **{**RUN, "steps": 6})
    assert res.losses == [] and res.step == 6
    (tmp_path / "checkpoints" / "latest").write_text("step_00000006\n")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", DistgenWarning)  # a pointer naming the newest: nothing to say
        assert resolve_checkpoint(tmp_path).name == "step_00000006"
