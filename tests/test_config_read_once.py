"""``distgen train`` and ``distgen run`` read their config's ``base:`` chain once (``config.read_config``): the document,
the preset it derives from and the keys the user set come from that one read. A config that can be read only once (a
named pipe, ``/dev/stdin``) read again waited for another writer forever, or gave an empty document whose preset is
None."""

import os
import threading
import warnings

import pytest

from distgen import config as cfg
from distgen.config import InertSettingWarning, explicit_keys, load_config, preset_of
from distgen.pipeline import experiment
from distgen.train import run as train_run_module

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes (os.mkfifo) are POSIX")

TRAINED = "base: scdfm-small\ntrain:\n  lr: 0.0005\n  steps: 3\n"
FITTED = "base: scdfm-small\nmodel:\n  name: additive\ntrain:\n  steps: 5\ndata:\n  sampling: cell\n"


def _written_once(tmp_path, text):
    """A named pipe that one writer fills with ``text`` once, as ``mkfifo c; cat my.yaml > c &`` does."""
    fifo = tmp_path / "config"
    os.mkfifo(fifo)

    def write():
        with open(fifo, "w") as f:
            f.write(text)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return fifo, writer


def _within(pipe, fn):
    """``fn()``; a second read of the pipe waits for a writer forever: give it an empty one and fail."""
    fifo, writer = pipe
    done: dict = {}

    def call():
        try:
            done["value"] = fn()
        except BaseException as exc:  # handed to the test's thread
            done["error"] = exc

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(5)
    while worker.is_alive():
        if not writer.is_alive():  # the config was written whole: a reader of the pipe now is a second one
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader waits on the pipe: the call is only slow
                pass
            else:
                os.close(fd)  # the waiting reader sees an empty config and goes on
                worker.join(30)
                pytest.fail("the config was read a second time: the pipe waited for another writer")
        worker.join(2)
    if "error" in done:
        raise done["error"]
    return done["value"]


def test_train_reads_a_piped_config_once_and_records_its_preset(tmp_path, monkeypatch):
    seen = {}

    def train_model(doc, out, resume=False, preset=None):
        seen.update(doc=doc, preset=preset)
        return train_run_module.TrainedRun(None, None, "result", [])

    monkeypatch.setattr(train_run_module, "train_model", train_model)
    pipe = _written_once(tmp_path, TRAINED)
    assert _within(pipe, lambda: train_run_module.train_run(pipe[0], tmp_path / "out")) == "result"
    assert seen["preset"] == "scdfm-small"  # was None: the second read found the pipe empty
    assert seen["doc"] == load_config("scdfm-small", ["train.lr=0.0005", "train.steps=3"])


@pytest.mark.parametrize(("text", "inert"), [(TRAINED, None), (FITTED, "train.steps, data.sampling have no effect")])
def test_run_reads_a_piped_config_once_and_records_its_preset_and_the_users_keys(tmp_path, monkeypatch, text, inert):
    seen = {}

    def run(doc, out, ev, allow, metrics, plots, progress, preset, warned):
        seen.update(doc=doc, preset=preset)
        return {"done": True}

    monkeypatch.setattr(experiment, "_run", run)
    pipe = _written_once(tmp_path, text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _within(pipe, lambda: experiment.run(pipe[0], tmp_path / "out", progress=False)) == {"done": True}
    assert seen["preset"] == "scdfm-small"
    notes = [str(w.message) for w in caught if issubclass(w.category, InertSettingWarning)]
    if inert is None:
        assert notes == []
    else:  # a fitted model: the train:/data: keys the piped file set (read from the pipe again: none, or a wait)
        assert len(notes) == 1 and inert in notes[0], notes


def test_read_config_is_load_config_preset_of_and_explicit_keys_in_one_read(tmp_path, monkeypatch):
    from distgen.config import read_config

    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "c1.yaml").write_text("base: perturbdiff-small\ntrain:\n  lr: 0.01\nsweep:\n  grid:\n    train.seed: [1, 2]\n")
    (sub / "c2.yaml").write_text("base: c1.yaml\ntrain:\n  steps: 3\ndata:\n  set_size: 8\nsweep:\n  grid:\n    train.lr: [1]\n")
    monkeypatch.chdir(tmp_path)
    config, overrides = sub / "c2.yaml", ["train.seed=4", "data={sampling: cell}"]
    reads = []
    real = cfg.load_yaml

    def load_yaml(path):
        reads.append(str(path))
        return real(path)

    monkeypatch.setattr(cfg, "load_yaml", load_yaml)
    loaded = read_config(config, overrides)
    assert sorted(reads) == sorted([str(sub / "c2.yaml"), str(sub / "c1.yaml"), str(cfg._PRESET_DIR / "perturbdiff-small.yaml"),
                                    *(str(cfg._PRESET_DIR / f"{p}.yaml") for p in _presets_below("perturbdiff-small"))])
    assert loaded.doc == load_config(config, overrides)
    assert loaded.doc["sweep"]["grid"] == {"train.lr": [1]}  # a declared grid replaces the inherited one
    assert loaded.preset == preset_of(config, overrides) == "perturbdiff-small"
    for section in ("train", "data", "model", "sweep"):
        assert loaded.explicit_keys(section) == explicit_keys(config, overrides, section), section
    assert loaded.explicit_keys("train") == {"lr", "steps", "seed"}
    assert loaded.explicit_keys("data") == {"set_size", "sampling"}
    assert loaded.explicit_keys("model") == set()


def _presets_below(name):
    """The presets a preset's own ``base:`` chain names (read from the files, not from distgen)."""
    import yaml

    out = []
    while True:
        base = yaml.safe_load((cfg._PRESET_DIR / f"{name}.yaml").read_text()).get("base")
        if base is None:
            return out
        out.append(base)
        name = base


def test_the_users_keys_are_kept_per_section_name_only(tmp_path):
    """A YAML top-level key that is no text (``1:``, ``null:``) names no section: ``user_keys`` holds section names only
    (the run refuses such a key as an unknown section, ``check_sections``)."""
    from distgen.config import read_config

    path = tmp_path / "c.yaml"
    path.write_text("1: {a: 1}\nnull: {b: 2}\ntrain: {lr: 0.001}\n")
    loaded = read_config(path, ["data.set_size=8"])
    assert loaded.user_keys == {"train": frozenset({"lr"}), "data": frozenset({"set_size"})}
    assert loaded.explicit_keys("train") == {"lr"} and loaded.explicit_keys("1") == set()
