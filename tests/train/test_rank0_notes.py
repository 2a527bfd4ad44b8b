"""Under torchrun, ``distgen train``'s pre-flight notes and a resume's checkpoint warnings are said by rank 0 alone (helper
189): every rank printed them (twice on 2 ranks, once per rank on more). The rank is set through torchrun's variables
with a world of one process (``RANK=1``, ``WORLD_SIZE=1``), as ``tests/pipeline/test_run_other_ranks.py`` does; the
training itself, whose shares need the real world, is replaced by a stop after every check."""

import warnings

import pytest

from distgen.train import run as train_run

from .conftest import MODEL

DATA = {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0, "val_frac": 0.0}, "set_size": 8}
DOC = {"model": MODEL, "data": DATA, "train": {"steps": 2, "sets_per_batch": 2, "checkpoint_every": 1, "progress": False,
                                              "check_memory": False}}
NOTE = "WARNING pre-flight: a note the check returned"


class Stop(Exception):
    """Raised in place of the training."""


@pytest.fixture(scope="module")
def latest_gone(tmp_path_factory):
    """A 2-step run whose ``checkpoints/latest`` names ``step_00000002``, removed: a resume warns it uses step 1."""
    import shutil

    out = tmp_path_factory.mktemp("r") / "run"
    train_run.train_model(DOC, out)
    shutil.rmtree(out / "checkpoints" / "step_00000002")
    return out


def _resume_as(rank, out, monkeypatch, capsys):
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setattr(train_run, "check_split", lambda *a, **k: [NOTE])
    monkeypatch.setattr(train_run, "fit", lambda *a, **k: (_ for _ in ()).throw(Stop()))
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as seen, pytest.raises(Stop):
        warnings.simplefilter("always")
        train_run.train_model({**DOC, "train": {**DOC["train"], "steps": 4}}, out, resume=True)
    return capsys.readouterr().err, [str(w.message) for w in seen]


def test_rank_0_says_the_preflight_note_and_the_resume_warning(latest_gone, monkeypatch, capsys):
    err, seen = _resume_as(0, latest_gone, monkeypatch, capsys)
    assert NOTE in err
    assert any("which is gone" in m for m in seen)


def test_a_rank_other_than_0_says_neither(latest_gone, monkeypatch, capsys):
    """Before: rank 1 printed the note and showed the warning as rank 0 did."""
    err, seen = _resume_as(1, latest_gone, monkeypatch, capsys)
    assert NOTE not in err
    assert not any("which is gone" in m for m in seen)


@pytest.mark.parametrize("rank", [0, 1])
def test_distgen_fit_warns_its_preflight_note_on_rank_0_alone(rank, monkeypatch):
    """``distgen.fit`` from Python under torchrun warned its pre-flight notes (``PreflightWarning``)
    on every rank, as ``distgen train`` printed them before 573405d. Rank 0 still warns; rank 1 did too before."""
    import distgen
    from distgen.models.preflight import PreflightWarning
    from distgen.train import loop

    data = distgen.load_data(**DATA)
    model = distgen.build({"model": MODEL}, data)
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setattr(loop, "check_split", lambda *a, **k: [NOTE])
    monkeypatch.setattr(loop, "Trainer", lambda *a, **k: (_ for _ in ()).throw(Stop()))
    with warnings.catch_warnings(record=True) as seen, pytest.raises(Stop):
        warnings.simplefilter("always")
        distgen.fit(model, data, options=DOC["train"])
    said = [w for w in seen if issubclass(w.category, PreflightWarning) and NOTE in str(w.message)]
    assert len(said) == (1 if rank == 0 else 0)
