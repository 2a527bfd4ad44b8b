"""Base-config overrides given to a sweep (``distgen sweep grid.yaml train.steps=50``, ``sweep(..., overrides=)``): every
run gets them before its own, ``sweep.yaml`` records them, and an extended sweep without them is refused as a changed base
config is (fake runner: no training)."""

import pytest

from distgen.cli import main
from distgen.config import ConfigError, load_yaml, save_yaml
from distgen.pipeline.sweep import sweep
from tests.pipeline.test_sweep import FakeRunner


class Recorder(FakeRunner):
    """Records each run's overrides and writes its ``experiment.yaml`` as ``distgen run`` does (the resolved config)."""

    def __init__(self):
        super().__init__()
        self.overrides = {}

    def __call__(self, config, run, run_dir):
        from distgen.pipeline.experiment import experiment_document

        self.overrides[run.slug] = run.overrides
        run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(experiment_document(config, run.overrides, progress=False), run_dir / "experiment.yaml")
        return super().__call__(config, run, run_dir)


@pytest.fixture
def base(tmp_path):
    return str(save_yaml({"model": {"name": "control"}, "train": {"steps": 7}}, tmp_path / "base.yaml"))


def test_each_run_gets_the_base_overrides_before_its_own_and_the_sweep_records_them(tmp_path, base):
    runner = Recorder()
    sweep(base, {"description": ["good", "bad"]}, tmp_path / "sw", seeds=[0], progress=False, runner=runner,
          overrides=["train.steps=50"])
    assert runner.overrides == {"description=good__seed0": ("train.steps=50", "description=good", "train.seed=0"),
                                "description=bad__seed0": ("train.steps=50", "description=bad", "train.seed=0")}
    assert load_yaml(tmp_path / "sw" / "sweep.yaml")["overrides"] == ["train.steps=50"]


def test_an_extended_sweep_without_the_base_overrides_is_refused_naming_the_setting(tmp_path, base):
    sweep(base, {"description": ["good"]}, tmp_path / "sw", seeds=[0], progress=False, runner=Recorder(),
          overrides=["train.steps=50"])
    runner = Recorder()
    with pytest.raises(ConfigError, match=r"steps.*started with the base override\(s\) train.steps=50"):
        sweep(base, {"description": ["good"]}, tmp_path / "sw", seeds=[0, 1], progress=False, runner=runner)
    assert runner.overrides == {}
    sweep(base, {"description": ["good"]}, tmp_path / "sw", seeds=[0, 1], progress=False, runner=runner, overrides=["train.steps=50"])
    assert list(runner.overrides) == ["description=good__seed1"]  # the same overrides again: only the new seed runs


def test_a_base_override_of_a_setting_an_axis_or_variant_varies_is_refused(tmp_path, base):
    with pytest.raises(ConfigError, match="description"):
        sweep(base, {"description": ["good", "bad"]}, tmp_path / "a", seeds=[0], progress=False, runner=FakeRunner(),
              overrides=["description=x"])
    with pytest.raises(ConfigError, match=r"train\.seed"):
        sweep(base, {"description": ["good"]}, tmp_path / "b", seeds=[0, 1], progress=False, runner=FakeRunner(),
              overrides=["train.seed=3"])
    with pytest.raises(ConfigError, match="sweep"):
        sweep(base, {"description": ["good"]}, tmp_path / "c", seeds=[0], progress=False, runner=FakeRunner(),
              overrides=["sweep.seeds=[0,1]"])


def test_the_command_line_takes_base_overrides_after_the_config(tmp_path, base, monkeypatch):
    import distgen.pipeline.sweep as S

    seen = {}

    def fake(config, grid=None, out="sweep", **kw):
        seen.update(kw, config=config)
        raise SystemExit(0)

    monkeypatch.setattr(S, "sweep", fake)
    with pytest.raises(SystemExit):
        main(["sweep", base, "train.steps=50", "--grid", "description=[a,b]", "--out", str(tmp_path / "sw")])
    assert seen["config"] == base and seen["overrides"] == ["train.steps=50"]


def test_base_overrides_given_as_one_string_are_refused_saying_to_give_a_list(tmp_path, base):
    """Review: ``sweep(..., overrides="train.steps=50")`` was read character by character ("override 't' must look like
    dotted.key=value"); refused as ``distgen.run`` refuses it, naming the list to give."""
    with pytest.raises(TypeError, match=r"\['train.steps=50'\]"):
        sweep(base, {"description": ["good"]}, tmp_path / "sw", seeds=[0], progress=False, runner=FakeRunner(),
              overrides="train.steps=50")


def test_sweep_yaml_records_the_seeds_the_runs_use(tmp_path):
    """Left by the leftovers round: ``sweep.yaml`` recorded the config's ``sweep.seeds`` beside a grid whose ``train.seed``
    axis replaced them (the runs used [5], the record said [0, 1]); it records the seeds its runs use."""
    config = str(save_yaml({"model": {"name": "control"}, "sweep": {"seeds": [0, 1]}}, tmp_path / "base.yaml"))
    runner = Recorder()
    sweep(config, {"description": ["good"], "train.seed": [5]}, tmp_path / "sw", progress=False, runner=runner)
    assert list(runner.overrides) == ["description=good__seed5"]
    assert load_yaml(tmp_path / "sw" / "sweep.yaml")["seeds"] == [5]
    sweep(config, {"description": ["good"]}, tmp_path / "sw2", progress=False, runner=Recorder())
    assert load_yaml(tmp_path / "sw2" / "sweep.yaml")["seeds"] == [0, 1]  # no axis: the config's, as before


def test_a_base_override_of_a_whole_section_the_sweep_varies_inside_says_so(tmp_path, base):
    """Review: ``train={steps: 3}`` beside the seeds (``train.seed``, set by every run after it) was refused saying "each
    run's own value would replace it", which it would not (the run's ``train.seed`` is set inside the replaced section);
    refused still, saying that it replaces the section holding what the sweep varies and to set its keys one by one."""
    with pytest.raises(ConfigError, match=r"replaces the whole train section.*train\.seed.*train\.steps=3") as exc:
        sweep(base, {"description": ["good"]}, tmp_path / "a", seeds=[0], progress=False, runner=FakeRunner(),
              overrides=["train={steps: 3}"])
    assert "would replace it" not in str(exc.value)


def _parsed(monkeypatch, argv):
    import distgen.pipeline.sweep as S

    seen = {}

    def fake(config, grid=None, out="sweep", **kw):
        seen.update(kw, config=config, grid=grid)
        raise SystemExit(0)

    monkeypatch.setattr(S, "sweep", fake)
    with pytest.raises(SystemExit):
        main(argv)
    return seen


def test_base_overrides_after_an_option_are_the_sweeps_and_a_variants_own_stay_the_variants(tmp_path, base, monkeypatch):
    """Once refused with "unrecognized arguments: train.steps=3": a base
    override written after --grid or --out is the sweep's; one written after a --variant's overrides is that variant's."""
    out = str(tmp_path / "sw")
    seen = _parsed(monkeypatch, ["sweep", base, "--grid", "description=[a,b]", "train.steps=3", "--out", out])
    assert seen["overrides"] == ["train.steps=3"] and seen["grid"] == {"description": ["a", "b"]}
    seen = _parsed(monkeypatch, ["sweep", base, "--out", out, "train.steps=3"])
    assert seen["overrides"] == ["train.steps=3"]
    seen = _parsed(monkeypatch, ["sweep", base, "--variant", "a", "description=x", "train.steps=3", "--out", out, "model.name=mean"])
    assert seen["variants"] == {"a": ["description=x", "train.steps=3"]} and seen["overrides"] == ["model.name=mean"]


def test_an_override_read_as_a_metric_name_says_where_to_write_it(tmp_path, base, capsys):
    """``--metrics mse train.steps=3``: --metrics takes every word up to the next option, so the override was read as a
    metric ("unknown metric 'train.steps=3'"); now the message says it is an override and where to write it."""
    code = main(["sweep", base, "--grid", "description=[a,b]", "--metrics", "mse", "train.steps=3", "--out", str(tmp_path / "sw")])
    err = capsys.readouterr().err
    assert code == 2
    assert "'train.steps=3'" in err and "override" in err and "right after the config" in err
    assert not (tmp_path / "sw").exists()


def test_where_to_write_an_override_read_as_a_metric_is_advice_that_works(tmp_path, base, capsys, monkeypatch):
    """The message said to write the override "right after the config ... or
    after another option"; after a --variant's overrides it is that variant's (``nargs="+"``), not the sweep's. The advice
    now names an option of one value, and following it gives the sweep the override."""
    out = str(tmp_path / "sw")
    code = main(["sweep", base, "--variant", "a", "description=x", "--metrics", "mse", "train.steps=3", "--out", out])
    err = capsys.readouterr().err
    assert code == 2
    assert "after another option" not in err and "--out DIR train.steps=50" in err and "--variant" in err
    seen = _parsed(monkeypatch, ["sweep", base, "--variant", "a", "description=x", "--metrics", "mse", "--out", out, "train.steps=3"])
    assert seen["overrides"] == ["train.steps=3"] and seen["variants"] == {"a": ["description=x"]}


def test_a_config_read_as_a_metric_is_named_as_such(tmp_path, base, capsys):
    """``distgen sweep --metrics mse CONFIG`` (the config after --metrics, which
    takes every word up to the next option) said "give it before the first --variant", an option not given."""
    assert main(["sweep", "--metrics", "mse", base, "--out", str(tmp_path / "sw")]) == 2
    err = capsys.readouterr().err
    assert f"{base!r} was read as a metric of --metrics" in err and "before the first --variant or --metrics" in err
    assert not (tmp_path / "sw").exists()
