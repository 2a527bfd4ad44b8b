"""How config values are typed: a plain ``1e-3`` is a float (files, overrides, lists, grids), a quoted value stays a
string, a config written and read again keeps its types, and a value of the wrong type is refused naming the key."""

import pytest
import yaml

from distgen.config import ConfigError, dump_yaml, load_config, load_yaml, parse_override, save_yaml
from distgen.data.section import data_section
from distgen.pipeline.grid import expand, parse_grid_arg
from distgen.train.options import train_options


def test_a_quoted_override_stays_a_string_and_a_plain_one_is_a_number():
    assert parse_override('data.schema.perturbation_col="1e3"')[1] == "1e3"  # was the float 1000.0
    assert parse_override("data.schema.perturbation_col='nan'")[1] == "nan"  # was the float nan (then refused as NaN)
    assert parse_override("data.schema.perturbation_col=!!str 1e3")[1] == "1e3"
    assert parse_override("train.lr=1e-3")[1] == 0.001
    assert parse_override("train.steps=1e3")[1] == 1000.0
    assert parse_override("train.lr=[1e-3, '1e-4']")[1] == [0.001, "1e-4"]  # inside a list too (was ['1e-3', '1e-4'])
    value = parse_override("train.lr=-inf")[1]
    assert isinstance(value, float) and value == float("-inf")


def test_a_string_parameter_takes_a_quoted_value_that_looks_numeric():
    doc = load_config("scdfm-small", ['data.schema.perturbation_col="1e3"', 'data.schema.control_labels=["1e3", "0"]'])
    schema = data_section(doc["data"]).schema
    assert schema["perturbation_col"] == "1e3" and schema["control_labels"] == ["1e3", "0"]


def test_a_value_the_parameter_cannot_take_is_refused_naming_the_key_and_the_fix():
    with pytest.raises(ConfigError, match=r"train\.steps: expected int, got str '1e3'\. A quoted value stays a string: write 1000"):
        train_options(load_config("scdfm-small", ['train.steps="1e3"'])["train"])
    with pytest.raises(ConfigError, match=r"train\.steps: expected int, got float 1000\.0\. Write the whole number 1000"):
        train_options(load_config("scdfm-small", ["train.steps=1e3"])["train"])
    with pytest.raises(ConfigError, match=r"train\.lr: expected float, got str '1e-3'\. A quoted value stays a string"):
        train_options(load_config("scdfm-small", ['train.lr="1e-3"'])["train"])
    with pytest.raises(ConfigError, match=r"data\.schema\.perturbation_col: expected .*got int 12\. Quote it to give the text: '12'"):
        data_section(load_config("scdfm-small", ["data.schema.perturbation_col=12"])["data"])


def test_a_file_writes_scientific_notation_as_yaml_1_2_does(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("base: scdfm-small\ntrain: {lr: 1e-3, weight_decay: 5E-4}\nx: ['1e-3', 1e3]\n")
    doc = load_config(path)
    assert train_options(doc["train"]).lr == 0.001  # was refused: "expected float, got str '1e-3'"
    assert train_options(doc["train"]).weight_decay == 0.0005
    assert doc["x"] == ["1e-3", 1000.0]
    assert load_yaml(path)["x"][0] == "1e-3"


def test_a_saved_config_reads_back_with_the_same_types(tmp_path):
    doc = {"data": {"schema": {"perturbation_col": "1e3", "control_labels": ["nan", "inf", "0"]}}, "train": {"lr": 1e-3, "steps": 3}}
    path = save_yaml(doc, tmp_path / "experiment.yaml")
    assert load_yaml(path) == doc
    for text in ("1e3", "nan", "-Infinity", "2.5E4", "0"):  # an override written from a value reads back as that value
        assert parse_override(f"k={dump_yaml(text).strip().removesuffix('...').strip()}")[1] == text


def test_a_grid_keeps_numbers_numbers_and_strings_strings(tmp_path):
    assert parse_grid_arg('train.lr=[1e-3, "1e-4"]') == ("train.lr", [0.001, "1e-4"])
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": "scdfm-small"}) + "sweep:\n  grid:\n    train.lr: [1e-3, 1e-4]\n    data.schema.perturbation_col: ['1e3']\n")
    grid = load_config(sweep)["sweep"]["grid"]
    runs = expand(grid)
    values = [{".".join(k): v for k, v in (parse_override(o) for o in r.overrides)} for r in runs]
    assert [v["train.lr"] for v in values] == [0.001, 0.0001]
    assert {v["data.schema.perturbation_col"] for v in values} == {"1e3"}
