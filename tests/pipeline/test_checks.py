"""Issue 17 (CLI): every problem of a run or sweep config is found before any work, in one message:
unknown keys, data.hvg < 1, unknown metrics or baselines, bad grids and grid cells. No folder is
left behind, no data is loaded, no run starts."""

import pytest

from distgen.cli import main
from distgen.config import ConfigError, save_yaml
from distgen.data.prepared import Dataset
from distgen.data.section import data_section
from distgen.pipeline.experiment import run
from distgen.pipeline.grid import parse_grid_arg
from distgen.pipeline.sweep import sweep

TINY = {"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8},
                  "backbone": {"name": "mlp", "hidden": 16, "depth": 1}, "dynamics": {"name": "flow_matching"}},
        "data": {"dataset": "norman_k562", "hvg": 32, "set_size": 4, "split": {"kind": "combo_seen2", "seed": 0}},
        "train": {"steps": 2, "sets_per_batch": 2, "progress": False}}


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if any data is loaded (the checks come first)."""
    monkeypatch.setattr(Dataset, "load", classmethod(lambda cls, *a, **k: pytest.fail("data was loaded before the checks")))


@pytest.fixture
def cfg(tmp_path):
    return str(save_yaml(TINY, tmp_path / "tiny.yaml"))


@pytest.mark.parametrize(("hvg", "words"), [(0, "must be a number of genes >= 1"), (-5, "must be a number of genes >= 1"),
                                             (2.5, "expected int"), (True, "")])
def test_hvg_must_be_a_positive_number_of_genes(hvg, words):
    with pytest.raises(ConfigError, match="data.hvg" + (".*" + words if words else "")):
        data_section({"hvg": hvg})
    assert data_section({"hvg": 1}).hvg == 1 and data_section({}).hvg is None


def test_run_lists_every_problem_at_once_before_any_work(cfg, tmp_path, no_data):
    out = tmp_path / "exp"
    with pytest.raises(ConfigError) as info:
        run(cfg, out, ["data.hvg=0", "model.backbone.foo=1"], metrics=["mse", "pearsn_delta"], progress=False)
    text = str(info.value)
    assert text.startswith("3 problems (found before any work): 1) data.hvg must be")
    assert "backbone[mlp]: unknown key 'foo'" in text and "unknown metric 'pearsn_delta'. Did you mean 'pearson_delta'?" in text
    assert not out.exists()  # no empty run folder left behind


def test_evaluate_section_metrics_and_baselines_are_checked(cfg, tmp_path, no_data):
    with pytest.raises(ConfigError) as info:
        run(cfg, tmp_path / "exp", ["evaluate.metrics=[msee]", "evaluate.baselines=[generator, nope]"], progress=False)
    text = str(info.value)
    assert "evaluate.metrics: unknown metric 'msee'" in text and "'generator' is trained, not fitted" in text
    assert "unknown models component 'nope'" in text


def test_cli_problems_are_one_line_exit_2(cfg, tmp_path, capsys, no_data):
    code = main(["run", cfg, "data.hvg=0", "--metrics", "mse,bogus", "--out", str(tmp_path / "exp")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "2 problems" in err and "data.hvg" in err and "'bogus'" in err
    assert not (tmp_path / "exp").exists()


def _never(*args):
    pytest.fail("a sweep run started although the grid has a problem")


def test_sweep_checks_every_cell_and_names_the_runs_before_any_run(cfg, tmp_path, no_data):
    grid = {"model.backbone.name": ["mlp", "nope"], "train.seed": [0, 1]}
    with pytest.raises(ConfigError) as info:
        sweep(cfg, grid, tmp_path / "sw", metrics=["mse", "msee"], runner=_never, progress=False)
    text = str(info.value)
    assert text.startswith("sweep: 2 problems (found before any run)")
    assert "sweep --metrics: unknown metric 'msee'" in text
    assert "unknown backbones component 'nope'" in text and "(runs name=nope__seed0, name=nope__seed1)" in text
    assert not (tmp_path / "sw").exists()
    with pytest.raises(ConfigError, match=r"data: unknown key 'hvgg'.*\(every run\)"):
        sweep(cfg, {"data.hvgg": [1, 2]}, tmp_path / "sw", runner=_never, progress=False)
    with pytest.raises(ConfigError, match="unknown top-level section"):
        sweep(cfg, {"trian.steps": [1, 2]}, tmp_path / "sw", runner=_never, progress=False)


@pytest.mark.parametrize(("sweep_section", "words"), [
    ({"grid": ["model.x"]}, "must be a mapping"),
    ({"grid": {"train.lr": 0.1}}, "must be a list of values"),
    ({"grid": {"train.lr": []}}, "has no values"),
    ({"seeds": ["a"]}, "seeds must be integers"),
    ({"seeds": []}, "non-empty list of integers"),
])
def test_invalid_sweep_sections_are_refused(tmp_path, sweep_section, words, no_data):
    cfg = save_yaml({**TINY, "sweep": sweep_section}, tmp_path / "s.yaml")
    with pytest.raises(ConfigError, match=words):
        sweep(str(cfg), out=tmp_path / "sw", runner=_never, progress=False)
    assert not (tmp_path / "sw").exists()


def test_grid_arguments():
    assert parse_grid_arg("train.seed=0,1") == ("train.seed", [0, 1])  # as written without brackets
    assert parse_grid_arg("train.seed=[0,1]") == ("train.seed", [0, 1])
    assert parse_grid_arg("model.backbone.name=mlp") == ("model.backbone.name", ["mlp"])
    for bad, words in [("=[1]", "not a dotted config key"), ("train..lr=[1]", "not a dotted config key"), ("train.lr=[]", "no values"),
                       ("train.lr", "must look like")]:
        with pytest.raises(ConfigError, match=words):
            parse_grid_arg(bad)


def test_unbracketed_seeds_run_both_seeds(tmp_path):
    calls = []
    cfg = save_yaml({"model": {"name": "control"}, "data": TINY["data"]}, tmp_path / "c.yaml")
    with pytest.raises(RuntimeError, match="no run finished"):
        sweep(str(cfg), dict([parse_grid_arg("train.seed=0,1")]), tmp_path / "sw", retries=0, progress=False,
              runner=lambda config, r, run_dir: calls.append(r.slug) or 1)
    assert calls == ["base__seed0", "base__seed1"]


@pytest.mark.parametrize("given", [["mse,msee"], ["mse", "msee"], ["mse, msee"], ["mse,", "msee"]])
def test_sweep_metrics_take_spaces_or_commas_as_run_and_evaluate_do(cfg, tmp_path, capsys, no_data, given):
    # 'mse,msee' was one unknown metric named 'mse,msee'; now the two names, and the unknown one is named alone
    code = main(["sweep", cfg, "--grid", "train.seed=[0,1]", "--metrics", *given, "--out", str(tmp_path / "sw")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown metric 'msee'" in err and "'mse," not in err
    assert not (tmp_path / "sw").exists()
