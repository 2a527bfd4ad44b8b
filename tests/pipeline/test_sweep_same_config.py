"""A sweep variant that resolves to another's config is said before its runs, not only after (comparison round,
2026-12-06: ``--variant a --variant b`` ran the same config twice and said so in summary.md alone)."""

import csv

import pytest

from distgen.config import save_yaml
from distgen.pipeline.sweep import METRICS_FILE, sweep


def runner(config, run, run_dir):
    (run_dir / METRICS_FILE).parent.mkdir(parents=True, exist_ok=True)
    with (run_dir / METRICS_FILE).open("w", newline="") as fh:
        csv.writer(fh).writerows([["perturbation", "mse"], ["P0", 1.0], ["P1", 2.0]])
    return 0


@pytest.fixture
def base(tmp_path):
    return str(save_yaml({"model": {"name": "control"}, "train": {"lr": 0.001}}, tmp_path / "base.yaml"))


@pytest.mark.parametrize("variants, said", [
    ({"a": [], "b": []}, "sweep variant b resolves to the same config as a"),
    ({"a": [], "same_lr": ["train.lr=0.001"], "other": ["train.lr=0.01"]}, "sweep variant same_lr resolves to the same config as a"),
])
def test_a_variant_with_the_config_of_another_is_said_before_its_runs(tmp_path, base, capsys, variants, said):
    calls = []

    def counting(config, run, run_dir):
        if not calls:  # the warning came before the first run started
            calls.append(capsys.readouterr().err)
        return runner(config, run, run_dir)

    sweep(base, None, tmp_path / "sw", variants=variants, seeds=[0, 1], runner=counting, metrics=["mse"], progress=False)
    assert said in calls[0]
    assert calls[0].count("resolves to the same config") == 1  # 'other' changes the rate


def test_variants_that_differ_say_nothing(tmp_path, base, capsys):
    sweep(base, None, tmp_path / "sw", variants={"a": [], "b": ["train.lr=0.01"]}, seeds=[0], runner=runner, metrics=["mse"],
          progress=False)
    assert "resolves to the same config" not in capsys.readouterr().err
