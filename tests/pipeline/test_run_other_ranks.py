"""Under torchrun, ``distgen run`` on a rank other than 0 writes nothing into the experiment folder and follows rank 0's
decision to skip a finished experiment.

The rank is set through torchrun's variables with a world of one process (``RANK=1``, ``WORLD_SIZE=1``): the code takes
the paths of a rank other than 0 without a process group. The training and the prediction, whose shares need the real
world size, are replaced by a stop (the training's after its ``before_training`` call, where ``distgen run`` records the
experiment): everything ``distgen run`` writes before it is what these tests look at.
"""

import pytest
import yaml

from distgen.pipeline import experiment

from ..train.conftest import MODEL

DATA = {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0, "val_frac": 0.0}, "set_size": 8}
TRAINED = {"model": MODEL, "data": DATA,
           "train": {"steps": 1, "sets_per_batch": 2, "log_every": 1, "progress": False, "check_memory": False}}
FITTED = {"model": {"name": "additive"}, "data": DATA}


class Stop(Exception):
    """Raised in place of the prediction."""


def _stop(*args, **kwargs):
    raise Stop


def _train_then_stop(*args, before_training=None, **kwargs):
    before_training()
    raise Stop


def _as_rank_1(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setattr(experiment, "train_model", _train_then_stop)
    monkeypatch.setattr(experiment, "predict", _stop)


@pytest.mark.parametrize("doc", [TRAINED, FITTED], ids=["trained", "fitted"])
def test_a_rank_other_than_0_writes_nothing_into_the_experiment_folder(tmp_path, monkeypatch, doc):
    """Until 2026-12-07 every rank wrote ``experiment.yaml`` (and, for a fitted model, ``fit.json`` and ``split.json``): two
    ranks renaming one ``.experiment.yaml.tmp`` crashed ``torchrun -m distgen run`` at random ("'.../.experiment.yaml.tmp'
    does not exist"), seen in 1 of 2 runs of the FSDP test. Rank 0 alone writes, as docs/training.md says."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    _as_rank_1(monkeypatch)
    with pytest.raises(Stop):
        experiment.run(cfg, tmp_path / "out", progress=False, metrics=["mse"], plots=False)
    assert not (tmp_path / "out").exists()


def test_a_rank_other_than_0_skips_a_finished_experiment_as_rank_0_does(tmp_path, monkeypatch):
    """Until 2026-12-07 ``torchrun -m distgen run`` of a finished experiment hung: rank 0 said "already holds this
    finished experiment" and returned, while rank 1 resumed the training, deleted the experiment's ``DONE`` and waited
    for rank 0 in the prediction forever. Every rank now reads the same ``DONE`` and skips the run."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(TRAINED))
    out = tmp_path / "out"
    experiment.run(cfg, out, progress=False, metrics=["mse"], plots=False)
    done = (out / experiment.DONE_FILE).read_text()
    _as_rank_1(monkeypatch)
    assert experiment.run(cfg, out, progress=False, metrics=["mse"], plots=False) == {}
    assert (out / experiment.DONE_FILE).read_text() == done


def test_a_resumed_run_says_it_resumes_once(tmp_path, monkeypatch, capsys):
    """``note: resuming the training in ...`` was printed by every rank (twice under ``torchrun --nproc-per-node 2``);
    rank 0 says it, as it says the trainer's resume warning."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(TRAINED))
    out = tmp_path / "out"
    experiment.run(cfg, out, progress=False, metrics=["mse"], plots=False)
    (out / experiment.DONE_FILE).unlink()  # stopped after its training: run again, it resumes
    capsys.readouterr()
    _as_rank_1(monkeypatch)
    with pytest.raises(Stop):
        experiment.run(cfg, out, progress=False, metrics=["mse"], plots=False)
    assert "resuming" not in capsys.readouterr().err


@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_warning_made_an_error_raises_on_every_rank_alike(monkeypatch, rank):
    """Under ``python -W error`` a warning inside ``said_by_main`` (a resume's note, the pre-flight's) raised on
    rank 0 only: the other ranks ignored every warning there and went on, to wait for rank 0 in the training forever. Every
    rank now follows the warning filters (an error is an error on each); a rank other than 0 still shows none."""
    import warnings

    from distgen.train.distributed import env_from_torchrun, said_by_main

    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="a note"), said_by_main(env_from_torchrun()):
            warnings.warn("a note", UserWarning, stacklevel=1)


def test_a_rank_other_than_0_still_shows_no_warning(monkeypatch, capsys):
    import warnings

    from distgen.train.distributed import env_from_torchrun, said_by_main

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "1")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with said_by_main(env_from_torchrun()):
            warnings.warn("a note", UserWarning, stacklevel=1)
            print("said", file=__import__("sys").stderr)
    assert shown == [] and capsys.readouterr().err == ""


@pytest.mark.parametrize("action", ["default", "once", "module"])
def test_a_warning_recorded_on_another_rank_is_shown_there_again_outside(monkeypatch, action):
    """A rank other than 0 records its warnings inside ``said_by_main`` where it
    ignored them. Recording under ``default``/``once``/``module`` marks the warning as shown in the registries that
    hide repeats; the same warning after the block (which every rank shows itself) is still shown, as it was when ignored."""
    import warnings

    from distgen.train.distributed import env_from_torchrun, said_by_main

    def note():
        warnings.warn("a note of this rank", UserWarning, stacklevel=1)

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter(action)
        with said_by_main(env_from_torchrun()):
            note()
        note()
    assert [str(w.message) for w in shown] == ["a note of this rank"]
