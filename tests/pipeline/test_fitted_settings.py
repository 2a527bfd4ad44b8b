"""A fitted model's settings: a ``fit:`` key nothing takes is refused; ``train:`` and set-sampling keys the user set warn."""

import warnings

import pytest
import yaml

from distgen.cli import main
from distgen.config import ConfigError, InertSettingWarning, explicit_keys, load_config, read_config
from distgen.models import models
from distgen.models.base import FittedModel
from distgen.pipeline.checks import config_problems
from distgen.pipeline.experiment import fitted_inert_settings
from distgen.testing.fixtures import tiny_table
from distgen.train import fit
from distgen.train.loop import fit_option_problems


class Rounds(FittedModel):
    """A test fitted model with one fit: option; it records what it was fitted with."""

    def __init__(self) -> None:
        self.rounds = None

    def fit(self, train, rounds: int = 1):
        self.rounds = rounds
        return self

    def predict(self, control, control_mask, labels):
        return control


@pytest.fixture
def rounds():
    models.add("test_rounds", Rounds)
    yield "test_rounds"
    models.unregister("test_rounds")


def test_a_typo_names_the_model_the_key_and_the_keys_it_takes(rounds):
    errors, inert = fit_option_problems(models.get("additive"), {"rouns": 2})
    assert inert == [] and len(errors) == 1
    assert "'rouns'" in errors[0] and "'additive'" in errors[0] and "takes no fit: keys" in errors[0]
    assert "Did you mean 'rounds'?" in errors[0]
    errors, _ = fit_option_problems(Rounds, {"rouns": 2}, rounds)
    assert "'test_rounds', which takes rounds" in errors[0]


def test_a_key_another_fitted_model_takes_is_inert_not_an_error(rounds):
    """A sweep may share one fit: section between models; the key must still be some fitted model's."""
    errors, inert = fit_option_problems(models.get("additive"), {"rounds": 2})
    assert errors == [] and "fit.rounds has no effect on model 'additive'" in inert[0] and "test_rounds" in inert[0]
    errors, inert = fit_option_problems(models.get("generator"), {"rounds": 2}, "generator")
    assert errors == [] and "train: section" in inert[0]
    assert fit_option_problems(Rounds, {"rounds": 2}) == ([], [])


def test_fit_passes_its_keys_and_refuses_unknown_ones(rounds):
    table = tiny_table()
    model = Rounds()
    fit(model, table, {"rounds": 3})
    assert model.rounds == 3
    with pytest.raises(ConfigError, match="'rouns'"):
        fit(Rounds(), table, {"rouns": 3})
    with pytest.raises(ConfigError, match=r"'stpes'.*'additive'"):
        fit(models.get("additive")(), table, config={"fit": {"stpes": 3}})
    with pytest.warns(InertSettingWarning, match=r"fit\.rounds"):
        fit(models.get("additive")(), table, {"rounds": 3})  # another model's key: fitted all the same


def test_the_checks_before_any_work_catch_a_fit_typo_for_either_kind_of_model():
    assert any("'stpes'" in p for p in config_problems({"model": {"name": "additive"}, "fit": {"stpes": 3}}))
    assert any("'stpes'" in p for p in config_problems(load_config("scdfm-small", ["fit.stpes=3"])))
    assert not any("fit" in p for p in config_problems({"model": {"name": "additive"}, "fit": {}}))


def test_distgen_run_refuses_a_fit_typo_with_exit_2_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "scdfm-small", "model.name=additive", "fit.stpes=3", "--out", str(out)]) == 2
    assert "unknown key 'stpes' for model 'additive'" in capsys.readouterr().err
    assert not out.exists()


def test_explicit_keys_are_the_users_not_the_presets(tmp_path):
    assert explicit_keys("scdfm-small", [], "train") == set()
    assert explicit_keys("scdfm-small", ["train.lr=0.1", "model.name=additive"], "train") == {"lr"}
    mid = tmp_path / "mid.yaml"
    mid.write_text(yaml.safe_dump({"base": "scdfm-small", "train": {"steps": 3}}))
    top = tmp_path / "top.yaml"
    top.write_text(yaml.safe_dump({"base": "mid.yaml", "train": {"lr": 0.1}, "data": {"sampling": "cell"}}))
    assert explicit_keys(top, ["train={ema_decay: 0.9}"], "train") == {"steps", "lr", "ema_decay"}
    assert explicit_keys(top, ["base=scdfm-small"], "train") == {"lr"}  # the override replaces mid.yaml
    assert explicit_keys({"base": "scdfm-small", "data": {"set_size": 4}}, [], "data") == {"set_size"}


def test_a_fitted_model_warns_about_the_training_keys_the_user_set():
    doc = load_config("scdfm-small", ["model.name=additive", "train.steps=5", "train.seed=3", "data.sampling=cell", "data.set_size=8"])
    notes = fitted_inert_settings(read_config("scdfm-small", ["model.name=additive", "train.steps=5", "train.seed=3",
                                                              "data.sampling=cell", "data.set_size=8"]), doc)
    assert len(notes) == 1 and "train.steps, data.sampling have no effect" in notes[0] and "'additive'" in notes[0]
    assert "seed" not in notes[0] and "set_size" not in notes[0]  # the prediction's seed and sets still use them
    only_preset = load_config("scdfm-small", ["model.name=additive"])
    assert fitted_inert_settings(read_config("scdfm-small", ["model.name=additive"]), only_preset) == []  # the preset's train: is not the user's
    trained = load_config("scdfm-small", ["train.steps=5"])
    assert fitted_inert_settings(read_config("scdfm-small", ["train.steps=5"]), trained) == []


def test_distgen_run_warns_before_fitting(tmp_path, monkeypatch):
    """The warning is given by the run itself (stopped right after, at the data load, to stay cheap)."""
    import distgen.pipeline.experiment as experiment

    def stop(*args, **kwargs):
        raise RuntimeError("stopped")

    monkeypatch.setattr(experiment, "_run", stop)
    with warnings.catch_warnings(record=True) as seen, pytest.raises(RuntimeError, match="stopped"):
        warnings.simplefilter("always")
        experiment.run("scdfm-small", tmp_path / "r", ["model.name=additive", "train.lr=0.1"])
    assert any(issubclass(w.category, InertSettingWarning) and "train.lr has no effect" in str(w.message) for w in seen)


class Seeded(FittedModel):
    """A test fitted model with a stochastic fit: it records the seed it was fitted with."""

    def __init__(self) -> None:
        self.seed = None

    def fit(self, train, seed: int | None = None):
        self.seed = seed
        return self

    def predict(self, control, control_mask, labels):
        return control


def test_python_fit_passes_train_seed_to_a_fitted_model_as_distgen_run_does():
    """``distgen.fit(model, data, config=doc)`` follows ``distgen run``'s rule: train.seed seeds a fit that takes a seed."""
    import distgen

    table = tiny_table()
    fits = [Seeded(), Seeded()]
    for seed, model in zip((1, 2), fits, strict=True):
        distgen.fit(model, table, config={"train": {"seed": seed}})
    assert [m.seed for m in fits] == [1, 2]  # two train.seeds: two fits (both were fitted at None before)
    model = Seeded()
    distgen.fit(model, table, config={"train": {"seed": 1}, "fit": {"seed": 7}})
    assert model.seed == 7  # fit: wins over train.seed
    distgen.fit(model, table, {"seed": 9}, config={"train": {"seed": 1}})
    assert model.seed == 9  # and options given in Python win over both
    distgen.fit(model, table, config={"train": {"lr": 0.1}})
    assert model.seed is None  # without train.seed the model keeps its own seed
    rounds = Rounds()
    distgen.fit(rounds, table, config={"train": {"seed": 1}})  # a fit without a seed parameter gets none (no unknown-key error)
    assert rounds.rounds == 1


def test_distgen_run_fits_through_the_same_rule(monkeypatch, tmp_path):
    """The experiment hands its whole config to ``fit`` (no second copy of the rule): the seed arrives there."""
    import distgen.pipeline.experiment as experiment

    seen = {}

    def record(model, data, options=None, run_dir=None, *, config=None, **kwargs):
        seen["config"] = config
        raise RuntimeError("stopped")

    monkeypatch.setattr(experiment, "fit", record)
    with pytest.raises(RuntimeError, match="stopped"):
        experiment.run("scdfm-small", tmp_path / "r", ["model.name=additive", "train.seed=4", "data.hvg=32"], progress=False)
    assert seen["config"]["train"]["seed"] == 4


def test_a_model_seed_that_train_seed_overrides_is_named():
    """``model.seed: 5`` beside ``train.seed: 0`` (every run of a sweep sets train.seed, its replicate axis): the fit ran at
    0 without a word, so a sweep grid over ``model.seed`` gave identical runs, told only after they ran ("Settings
    without effect"). Now an ``InertSettingWarning`` names both keys and ``fit: {seed: ...}``; equal seeds say nothing."""
    import distgen

    table = tiny_table()
    model = Seeded()
    with pytest.warns(InertSettingWarning, match=r"model\.seed=5 .*train\.seed=0.*fit: \{seed: 5\}"):
        distgen.fit(model, table, config={"model": {"seed": 5}, "train": {"seed": 0}})
    assert model.seed == 0  # the rule is unchanged: train.seed seeds the fit
    for doc in ({"model": {"seed": 3}, "train": {"seed": 3}}, {"model": {"seed": 5}, "train": {"seed": 0}, "fit": {"seed": 5}},
                {"model": {"seed": 5}}):
        with warnings.catch_warnings():
            warnings.simplefilter("error", InertSettingWarning)
            distgen.fit(Seeded(), table, config=doc)


def test_a_seed_the_caller_gives_is_not_called_overridden_by_train_seed():
    """Review of the warning above: ``distgen.fit(model, data, {"seed": 5}, config=doc)`` or ``fit(..., seed=5)`` fits at
    the caller's 5 (``options`` and keyword overrides win over the config), yet the warning said ``model.seed=5 has no
    effect on the fit: train.seed=0 seeds it``, which was untrue: the fit ran at model.seed's value."""
    import distgen

    table = tiny_table()
    doc = {"model": {"seed": 5}, "train": {"seed": 0}}
    for options, overrides in (({"seed": 5}, {}), (None, {"seed": 5}), ({"seed": 9}, {})):
        model = Seeded()
        with warnings.catch_warnings():
            warnings.simplefilter("error", InertSettingWarning)
            distgen.fit(model, table, options, config=doc, **overrides)
        assert model.seed == (options or overrides)["seed"]
