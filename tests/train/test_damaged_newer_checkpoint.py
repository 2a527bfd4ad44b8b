"""A checkpoint folder newer than ``checkpoints/latest`` (or, with no pointer, the newest) whose files are cut short (an
interrupted copy, not a kill: its ``state.json`` is there) was chosen by ``resolve_checkpoint`` and then refused by the
digest check, so resume and predict failed although an earlier checkpoint was whole. Now the newest whole one is used
with a warning naming the damaged folder; what counts as damaged depends on what the caller reads (weights for predict,
everything for a resume)."""

import json
import shutil

import pytest

from distgen.errors import DistgenWarning
from distgen.train import fit, load_checkpoint
from distgen.train.checkpoint import RESUME_FILES, list_checkpoints, read_checkpoint_state, resolve_checkpoint

from .conftest import MODEL

RUN = {"steps": 10, "sets_per_batch": 4, "progress": False, "checkpoint_every": 5, "ema_decay": 0.9, "lr": 3e-3}
CONFIG = {"model": MODEL, "data": {"set_size": 4}}


@pytest.fixture
def run(table, make_model, tmp_path):
    fit(make_model(), table, set_size=4, run_dir=tmp_path, config=CONFIG, **RUN)
    return tmp_path


def _copy_as_step_15(run, truncate):
    """A step_00000015 folder as an interrupted copy leaves it: state.json whole, ``truncate`` cut to half its bytes."""
    src, dst = run / "checkpoints" / "step_00000010", run / "checkpoints" / "step_00000015"
    shutil.copytree(src, dst)
    state = json.loads((dst / "state.json").read_text())
    (dst / "state.json").write_text(json.dumps({**state, "step": 15}))
    data = (dst / truncate).read_bytes()
    (dst / truncate).write_bytes(data[: len(data) // 2])
    return dst


def test_a_truncated_checkpoint_newer_than_latest_is_passed_over_for_predict_and_resume(run, table, make_model):
    _copy_as_step_15(run, "model.safetensors")
    with pytest.warns(DistgenWarning, match=r"passed over step_00000015 \(model\.safetensors has \d+ bytes, \d+ were written\)"):
        assert load_checkpoint(run, weights_only=True).step == 10
    with pytest.warns(DistgenWarning, match="step_00000015"):
        res = fit(make_model(), table, set_size=4, run_dir=run, resume=run, config=CONFIG, **{**RUN, "steps": 15})
    assert res.step == 15 and len(res.losses) == 5  # steps 11..15 trained from step 10
    assert load_checkpoint(run).step == 15  # the damaged folder was replaced by the resumed run's own step 15


def test_without_a_pointer_the_newest_whole_checkpoint_is_used(run):
    _copy_as_step_15(run, "ema.safetensors")
    (run / "checkpoints" / "latest").unlink()
    with pytest.warns(DistgenWarning, match=r"passed over step_00000015 \(ema\.safetensors has"):
        assert resolve_checkpoint(run).name == "step_00000010"


def test_what_is_damaged_depends_on_what_is_read(run):
    """Without latest, a truncated optimizer state does not stop a prediction (it reads the weights); it stops a resume
    from it. (Newer than latest, it is passed over by both: test_after_a_resume_past_a_folder_with_a_cut_optimizer_state...)"""
    _copy_as_step_15(run, "optimizer.safetensors")
    (run / "checkpoints" / "latest").unlink()
    assert load_checkpoint(run, weights_only=True).step == 15
    with pytest.warns(DistgenWarning, match=r"passed over step_00000015 \(optimizer\.safetensors has"):
        assert read_checkpoint_state(run, RESUME_FILES)[0].name == "step_00000010"


def test_a_resume_keeping_one_checkpoint_does_not_prune_the_one_it_just_wrote(run, table, make_model):
    """Resuming from step 10 to step 14 past a damaged step 15 with keep_checkpoints 1: the pruning counted the damaged
    newer folder as the one to keep and deleted each checkpoint the resume wrote (the run's last one included)."""
    _copy_as_step_15(run, "model.safetensors")
    with pytest.warns(DistgenWarning, match="step_00000015"):
        fit(make_model(), table, set_size=4, run_dir=run, resume=run, config=CONFIG,
            **{**RUN, "steps": 14, "checkpoint_every": 3, "keep_checkpoints": 1})
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step_00000014", "step_00000015"]
    with pytest.warns(DistgenWarning, match="passed over step_00000015"):
        assert load_checkpoint(run).step == 14


# A folder newer than latest that is damaged in a file a prediction does not read (the optimizer
# state) was passed over by a resume and kept (pruning counts only steps up to the one written), then chosen by every
# prediction as "newer and complete": the resumed run's own last checkpoint, the one latest, metrics.csv and the manifest
# describe, was never predicted from. A kill between writing a checkpoint and updating latest leaves a folder whole in
# every file (it is written whole, then renamed), so only such a folder is taken over latest.
def test_after_a_resume_past_a_folder_with_a_cut_optimizer_state_predictions_come_from_the_resumed_run(run, table, make_model):
    _copy_as_step_15(run, "optimizer.safetensors")
    with pytest.warns(DistgenWarning, match="passed over step_00000015"):
        fit(make_model(), table, set_size=4, run_dir=run, resume=run, config=CONFIG, **{**RUN, "steps": 14, "checkpoint_every": 2})
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000014"
    with pytest.warns(DistgenWarning, match=r"passed over step_00000015 \(optimizer\.safetensors has .*using step_00000014"):
        assert load_checkpoint(run, weights_only=True).step == 14
    with pytest.warns(DistgenWarning, match="passed over step_00000015"):
        assert resolve_checkpoint(run).name == read_checkpoint_state(run, RESUME_FILES)[0].name == "step_00000014"


def _zero_tail_copy_as_step_15(run):
    """A step_00000015 folder as a preallocating copy cut short leaves it: every size right, the weights' tail zeros."""
    src, dst = run / "checkpoints" / "step_00000010", run / "checkpoints" / "step_00000015"
    shutil.copytree(src, dst)
    (dst / "state.json").write_text(json.dumps({**json.loads((dst / "state.json").read_text()), "step": 15}))
    data = bytearray((dst / "model.safetensors").read_bytes())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)
    (dst / "model.safetensors").write_bytes(bytes(data))


def test_a_same_size_damaged_checkpoint_newer_than_latest_is_passed_over(run, table, make_model):
    """An interrupted copy by a tool that sets each file's size first (a preallocating copy: the tail left zeros) has every
    size right: the size-only check took step_15 as "newer and complete", and its load then refused it (digest), so predict
    and resume failed although latest's step 10 was whole. A folder newer than latest is now checked by its
    digests too (the one latest names is loaded and checked anyway)."""
    _zero_tail_copy_as_step_15(run)
    with pytest.warns(DistgenWarning, match=r"passed over step_00000015 \(model\.safetensors changed after it was written"):
        assert load_checkpoint(run, weights_only=True).step == 10
    with pytest.warns(DistgenWarning, match="step_00000015"):
        res = fit(make_model(), table, set_size=4, run_dir=run, resume=run, config=CONFIG, **{**RUN, "steps": 15})
    assert res.step == 15 and len(res.losses) == 5  # trained on from step 10


def test_without_a_pointer_a_same_size_damaged_newest_checkpoint_is_passed_over(run):
    """With ``latest`` gone, the newest folder was still judged by sizes alone: a preallocating copy cut short (every size
    right) was chosen and its load refused it, though step 10 was whole (digests were checked only for a
    folder newer than ``latest``). That path is as rare, so the newest candidate is read once more there too."""
    _zero_tail_copy_as_step_15(run)
    (run / "checkpoints" / "latest").unlink()
    with pytest.warns(DistgenWarning, match=r"passed over step_00000015 \(model\.safetensors changed after it was written"):
        assert load_checkpoint(run, weights_only=True).step == 10
