"""Early stopping keeps the best step's checkpoint: written when a validation improves ``train.monitor``, spared from
pruning, recorded in ``state.json`` (``best_checkpoint``) and the manifest, kept across resumes, and chosen by
``distgen predict RUN --checkpoint best`` / ``distgen.load_run(RUN, checkpoint="best")`` (docs/training.md, "Early
stopping")."""

import json

import pytest
import torch

from distgen.train import fit, load_checkpoint
from distgen.train.checkpoint import NoBestCheckpointError, best_checkpoint, chosen_checkpoint, list_checkpoints
from tests.train.test_checkpoint import Killed, kill_at

# lr 0.01: the validation loss of the tiny model is best at step 6 and higher at 8 and 10; patience 2 stops at step 10
RUN = {"steps": 60, "sets_per_batch": 4, "progress": False, "val_every": 2, "patience": 2, "lr": 0.01, "keep_checkpoints": 1,
       "checkpoint_every": 1}


def weights_by_step(store):
    def cb(trainer, step):
        store[step] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

    return cb


def test_the_best_step_is_checkpointed_spared_from_pruning_and_loads_its_weights(table, make_model, tmp_path):
    seen: dict[int, dict[str, torch.Tensor]] = {}
    res = fit(make_model(), table, set_size=4, val=table, run_dir=tmp_path, callbacks=[weights_by_step(seen)], **RUN)
    assert res.stopped_early and res.best_step is not None and res.best_step < res.step
    assert res.best_checkpoint == tmp_path / "checkpoints" / f"step_{res.best_step:08d}"
    # keep_checkpoints 1 with a checkpoint every step: only the newest and the best are left
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == [f"step_{res.best_step:08d}", f"step_{res.step:08d}"]
    assert best_checkpoint(tmp_path) == res.best_checkpoint == chosen_checkpoint(tmp_path, "best")
    assert chosen_checkpoint(tmp_path, "last") is None
    best = load_checkpoint(best_checkpoint(tmp_path))
    assert best.step == res.best_step and best.state["best"] == res.best
    want = seen[res.best_step]
    assert best.model.keys() == want.keys() and all(torch.equal(best.model[k], want[k]) for k in want)
    assert not all(torch.equal(best.model[k], seen[res.step][k]) for k in want)  # not the last step's
    assert load_checkpoint(tmp_path).state["best_checkpoint"] == res.best_checkpoint.name


@pytest.mark.parametrize(("lr", "at", "beaten"), [(0.01, 7, False), (0.03, 3, True)])
def test_a_resume_keeps_the_earlier_best_unless_beaten(table, make_model, tmp_path, lr, at, beaten):
    """Killed after a best validation (step 6 of lr 0.01, kept to the end; step 2 of lr 0.03, beaten from step 6 on)."""
    run = {**RUN, "lr": lr}
    straight = fit(make_model(), table, set_size=4, val=table, run_dir=tmp_path / "a", **run)
    with pytest.raises(Killed):
        fit(make_model(), table, set_size=4, val=table, run_dir=tmp_path / "b", callbacks=[kill_at(at)], **run)
    before = load_checkpoint(tmp_path / "b").state["best_checkpoint"]
    assert (before != f"step_{straight.best_step:08d}") == beaten and before == f"step_{at - 1:08d}"
    res = fit(make_model(seed=5), table, set_size=4, val=table, run_dir=tmp_path / "b", resume=tmp_path / "b", **run)
    assert (tmp_path / "b" / "checkpoints" / before).exists() != beaten  # a beaten best is pruned like any checkpoint
    assert (res.step, res.best_step, res.best) == (straight.step, straight.best_step, straight.best)
    assert res.best_checkpoint == tmp_path / "b" / "checkpoints" / f"step_{straight.best_step:08d}"
    a, b = load_checkpoint(straight.best_checkpoint), load_checkpoint(best_checkpoint(tmp_path / "b"))
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)


def test_best_is_refused_for_a_run_that_never_validated(table, make_model, tmp_path):
    fit(make_model(), table, set_size=4, run_dir=tmp_path, steps=3, sets_per_batch=4, progress=False)
    with pytest.raises(NoBestCheckpointError, match=r"never validated.*--checkpoint last.*train\.val_every") as err:
        best_checkpoint(tmp_path)
    assert err.value.exit_code == 2


def test_a_best_checkpoint_that_is_gone_is_refused_naming_it(table, make_model, tmp_path):
    res = fit(make_model(), table, set_size=4, val=table, run_dir=tmp_path, **RUN)
    import shutil

    shutil.rmtree(res.best_checkpoint)
    with pytest.raises(NoBestCheckpointError, match=rf"best checkpoint {res.best_checkpoint.name} .* is gone"):
        best_checkpoint(tmp_path)


def test_the_manifest_records_the_best(table, make_model, tmp_path):
    """fit of a CellTable writes no training record; distgen train's manifest is tested in test_run_cli.py."""
    res = fit(make_model(), table, set_size=4, val=table, run_dir=tmp_path, **RUN)
    state = json.loads((res.checkpoint / "state.json").read_text())
    assert (state["best_step"], state["best_checkpoint"]) == (res.best_step, res.best_checkpoint.name)


def test_validation_without_patience_writes_no_checkpoint_of_its_own_and_best_says_why(table, make_model, tmp_path):
    """Validation alone (no train.patience) monitors; it does not pay a full checkpoint (optimizer state, digests; a gather
    of every shard under FSDP) at each validation that improves, nor move the resume points off checkpoint_every. The
    best is still recorded; --checkpoint best names train.patience as the way to keep its checkpoint."""
    run = {**RUN, "steps": 10, "patience": None, "checkpoint_every": 5, "keep_checkpoints": 2}
    res = fit(make_model(), table, set_size=4, val=table, run_dir=tmp_path, **run)
    assert res.best_step is not None and res.best_checkpoint is None  # recorded, not checkpointed on its own
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step_00000005", "step_00000010"]
    with pytest.raises(NoBestCheckpointError, match=rf"best validation was at step {res.best_step}.*without train\.patience.*train\.patience") as err:
        best_checkpoint(tmp_path)
    assert err.value.exit_code == 2


def test_a_resume_without_patience_never_names_a_beaten_best(table, make_model, tmp_path):
    """Trained under train.patience, resumed without it: a later validation that beats the best writes no checkpoint, so
    the carried-on best_checkpoint named a step that was no longer the best (--checkpoint best loaded the wrong weights)."""
    fit(make_model(), table, set_size=4, val=table, run_dir=tmp_path, **{**RUN, "steps": 2, "patience": 100, "checkpoint_every": 100})
    before = load_checkpoint(tmp_path).state
    assert before["best_checkpoint"] == "step_00000002"
    res = fit(make_model(), table, set_size=4, val=table, run_dir=tmp_path, resume=tmp_path,
              **{**RUN, "steps": 10, "patience": None, "checkpoint_every": 100})
    assert res.best_step != 2  # beaten after the resume (lr 0.01: best at step 6)
    state = load_checkpoint(tmp_path).state
    assert state["best_checkpoint"] is None and res.best_checkpoint is None
    with pytest.raises(NoBestCheckpointError, match=r"without train\.patience"):
        best_checkpoint(tmp_path)


def _as_before_best_checkpoints(run_dir):
    """Edit the newest checkpoint's state.json as distgen wrote it before it kept the best step's checkpoint (before
    2026-12-07: ``best``/``best_step`` recorded, no ``best_checkpoint``/``best_kept``)."""
    newest = load_checkpoint(run_dir).path
    state = json.loads((newest / "state.json").read_text())
    del state["best_checkpoint"], state["best_kept"]
    (newest / "state.json").write_text(json.dumps(state))
    return state["best_step"]


def test_an_earlier_run_whose_best_step_fell_on_a_checkpoint_gives_that_checkpoint(table, make_model, tmp_path):
    """An earlier run folder (old-versions round): its best step is recorded and, on a checkpoint_every step, its
    checkpoint is there with that step's weights; --checkpoint best refused it as 'trained before distgen kept' one."""
    res = fit(make_model(), table, set_size=4, val=table, run_dir=tmp_path, **RUN)
    step = _as_before_best_checkpoints(tmp_path)
    assert step == res.best_step
    best = best_checkpoint(tmp_path)
    assert best == tmp_path / "checkpoints" / f"step_{step:08d}" and load_checkpoint(best).step == step


def test_an_earlier_run_whose_best_step_has_no_checkpoint_is_refused_naming_those_there(table, make_model, tmp_path):
    res = fit(make_model(), table, set_size=4, val=table, run_dir=tmp_path, **{**RUN, "checkpoint_every": 5})
    step = _as_before_best_checkpoints(tmp_path)
    assert step % 5 != 0 and step == res.best_step
    import shutil

    shutil.rmtree(res.best_checkpoint)  # an earlier distgen checkpointed on train.checkpoint_every only
    with pytest.raises(NoBestCheckpointError, match=rf"step {step}, but it was trained before distgen kept"):
        best_checkpoint(tmp_path)


def test_an_earlier_run_resumed_keeps_its_best_steps_checkpoint_from_pruning(table, make_model, tmp_path):
    """Review of the old run folders round: an earlier run whose best step (6) fell on a checkpoint gives it for
    --checkpoint best, but once resumed by the distgen of now (which that round allowed), the resumed trainer did not
    know that checkpoint was the best step's and pruned it with the others (keep_checkpoints), so --checkpoint best of
    the same run was refused afterwards. The resume adopts it as the best checkpoint while it is the best."""
    run = {**RUN, "keep_checkpoints": 5}
    straight = fit(make_model(), table, set_size=4, val=table, run_dir=tmp_path / "a", **RUN)
    with pytest.raises(Killed):
        fit(make_model(), table, set_size=4, val=table, run_dir=tmp_path / "b", callbacks=[kill_at(7)], **run)
    assert _as_before_best_checkpoints(tmp_path / "b") == straight.best_step == 6
    assert best_checkpoint(tmp_path / "b").name == "step_00000006"  # before the resume: the on-schedule checkpoint
    res = fit(make_model(seed=5), table, set_size=4, val=table, run_dir=tmp_path / "b", resume=tmp_path / "b", **RUN)
    assert (res.step, res.best_step) == (straight.step, straight.best_step)
    assert res.best_checkpoint == tmp_path / "b" / "checkpoints" / "step_00000006"
    assert best_checkpoint(tmp_path / "b") == res.best_checkpoint  # was: pruned, "trained before distgen kept"
    a, b = load_checkpoint(straight.best_checkpoint), load_checkpoint(best_checkpoint(tmp_path / "b"))
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)


def test_a_resume_of_a_copy_without_its_best_checkpoint_does_not_name_it(table, make_model, tmp_path, capsys):
    """Left by the portability round (not reproduced there): a run copied without its best step's checkpoint (killed at
    step 9, after its best at 6), resumed, stopped early saying "the best step's is checkpoint COPY/checkpoints/step_6 (distgen predict
    RUN --checkpoint best)", a folder not in the copy, and gave it as ``best_checkpoint``. Now the line says the best
    step's checkpoint is not in the run folder, and ``best_checkpoint`` is None."""
    import shutil

    with pytest.raises(Killed):
        fit(make_model(), table, set_size=4, val=table, run_dir=tmp_path / "a", callbacks=[kill_at(9)], **RUN)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    best = load_checkpoint(tmp_path / "b").state["best_checkpoint"]
    assert best == "step_00000006"
    shutil.rmtree(tmp_path / "b" / "checkpoints" / best)
    capsys.readouterr()
    res = fit(make_model(seed=5), table, set_size=4, val=table, run_dir=tmp_path / "b", resume=tmp_path / "b", **RUN)
    err = capsys.readouterr().err
    assert res.stopped_early and res.best_step == 6
    assert res.best_checkpoint is None
    assert f"checkpoint {tmp_path / 'b' / 'checkpoints' / best} (" not in err and "--checkpoint best" not in err
    assert "stopped early" in err and f"step 6's checkpoint ({best}) is not in {tmp_path / 'b' / 'checkpoints'}" in err
