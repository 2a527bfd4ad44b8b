"""Issue 17: config files and overrides that are malformed or hostile end in one clear ``ConfigError``
(exit 2 from the CLI): YAML syntax (file, line, column), unsafe tags, alias bombs (item 7), circular
``base:`` chains, sections replaced by scalars, NaN/inf values."""

import time
from pathlib import Path

import pytest

from distgen.cli import EXIT_USAGE, main
from distgen.config import ConfigError, apply_overrides, load_config, load_yaml, parse_override
from distgen.train.options import train_options

BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")
)


def _cli(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- YAML
def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("base: scdfm-small\ntrain:\n  steps: [1, 2\n  lr: 3\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(p)
    msg = str(info.value)
    assert "bad.yaml" in msg and "line 4" in msg and "column" in msg and "not valid YAML" in msg


def test_yaml_syntax_error_from_the_cli_is_exit_2_without_traceback(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text("train: {steps: 3\n")
    code, err = _cli(["train", str(p), "--out", str(tmp_path / "run")], capsys)
    assert code == EXIT_USAGE and "line 2" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['echo hacked']", "!!python/name:os.system", "!custom 3"])
def test_unsafe_tags_in_files_are_refused_like_overrides(tmp_path, tag):
    p = tmp_path / "evil.yaml"
    p.write_text(f"base: scdfm-small\ntrain:\n  seed: {tag}\n")
    with pytest.raises(ConfigError) as from_file:
        load_config(p)
    with pytest.raises(ConfigError) as from_override:
        parse_override(f"train.seed={tag}")
    for info in (from_file, from_override):
        assert "is not allowed; configs hold plain data" in str(info.value)
    assert "line 3" in str(from_file.value)
    assert str(from_file.value).split(": YAML tag", 1)[1] == str(from_override.value).split(": YAML tag", 1)[1]


def test_alias_bomb_in_a_file_is_refused_quickly_with_a_short_message(tmp_path):
    p = tmp_path / "bomb.yaml"
    p.write_text(BOMB + "base: scdfm-small\ntrain: {seed: *i}\n")
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert time.perf_counter() - t0 < 5
    assert "alias" in str(info.value) and len(str(info.value)) < 400


def test_alias_bomb_as_an_override_value_is_refused_quickly():
    flow = BOMB.replace("\n", ", ").rstrip(", ")
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="alias"):
        parse_override("train.seed={" + flow + "}")
    assert time.perf_counter() - t0 < 5


def test_moderate_aliases_still_work(tmp_path):
    p = tmp_path / "ok.yaml"
    p.write_text("base: scdfm-small\nsweep:\n  grid: {train.seed: &s [0, 1]}\nextra_seeds: *s\n")
    doc = load_config(p)
    assert doc["extra_seeds"] == [0, 1]


def test_self_referencing_alias_is_refused(tmp_path):
    p = tmp_path / "loop.yaml"
    p.write_text("train: &t {seed: 1, again: *t}\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(p)


def test_a_huge_value_in_a_type_error_is_printed_bounded(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_text("base: scdfm-small\ntrain:\n  seed: [" + ", ".join(["1"] * 50000) + "]\n")
    with pytest.raises(ConfigError) as info:
        train_options(load_config(p)["train"])
    assert "train.seed" in str(info.value) and len(str(info.value)) < 300


# ---------------------------------------------------------------------------------------------- base: chains
def test_circular_base_chain_names_the_cycle(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\ntrain: {seed: 1}\n")
    (tmp_path / "b.yaml").write_text("base: c.yaml\n")
    (tmp_path / "c.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "a.yaml")
    msg = str(info.value)
    assert "circular" in msg and msg.count("a.yaml") == 2 and "b.yaml" in msg and "c.yaml" in msg


def test_a_config_that_is_its_own_base(tmp_path, capsys):
    (tmp_path / "self.yaml").write_text("base: self.yaml\n")
    code, err = _cli(["train", str(tmp_path / "self.yaml"), "--out", str(tmp_path / "r")], capsys)
    assert code == EXIT_USAGE and "circular" in err and "Traceback" not in err


def test_shared_base_is_not_a_cycle(tmp_path):
    (tmp_path / "common.yaml").write_text("base: scdfm-small\ntrain: {seed: 5}\n")
    (tmp_path / "mid.yaml").write_text("base: common.yaml\n")
    (tmp_path / "top.yaml").write_text("base: mid.yaml\n")
    assert load_config(tmp_path / "top.yaml")["train"]["seed"] == 5


# ---------------------------------------------------------------------------------------------- sections and values
def test_duplicate_keys_are_refused_not_silently_dropped(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("base: scdfm-small\ntrain: {lr: 0.1}\nmodel: {}\ntrain: {steps: 5}\n")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert "line 4" in str(info.value) and "'train' appears twice" in str(info.value) and "first at line 2" in str(info.value)
    with pytest.raises(ConfigError, match="'seed' appears twice"):
        parse_override("train={seed: 1, seed: 2}")


def test_yaml_merge_keys_still_work(tmp_path):
    p = tmp_path / "merge.yaml"
    p.write_text("base: scdfm-small\ndefaults: &d {seed: 1, steps: 7}\ntrain: {<<: *d, steps: 9}\n")
    assert load_config(p)["train"]["steps"] == 9 and load_config(p)["train"]["seed"] == 1


@pytest.mark.parametrize("override", ["train=5", "model=scdfm", "data=[1,2]", "train=null"])
def test_override_replacing_a_section_with_a_value_is_refused(override):
    with pytest.raises(ConfigError) as info:
        load_config("scdfm-small", [override])
    key = override.split("=")[0]
    assert f"{key} is a section" in str(info.value) and f"{key}." in str(info.value)


def test_a_nested_mapping_may_become_a_value_its_schema_accepts():
    """data.split is a mapping of make_split arguments or the path of a saved split."""
    assert load_config("scdfm-small", ["data.split=split.json"])["data"]["split"] == "split.json"


def test_type_errors_name_the_full_expected_type():
    with pytest.raises(ConfigError, match=r"train.betas: expected list\[float\]"):
        train_options({"betas": ["x", 1]})


def test_override_may_still_replace_a_node_by_a_mapping_or_clear_an_optional_node():
    doc = apply_overrides({"model": {"backbone": {"name": "a", "x": 1}, "cond": {"name": "c"}}},
                          ["model.backbone={name: b}", "model.cond=null"])
    assert doc["model"] == {"backbone": {"name": "b"}, "cond": None}


def test_section_written_as_a_scalar_in_a_file(tmp_path):
    (tmp_path / "s.yaml").write_text("base: scdfm-small\ntrain: 5\n")
    with pytest.raises(ConfigError, match="train: expected a section"):
        load_config(tmp_path / "s.yaml")


@pytest.mark.parametrize("override", ["train.lr=nan", "train.lr=.nan", "model.backbone.dropout=.NaN", "data.set_size=nan"])
def test_nan_anywhere_is_a_config_error(override):
    with pytest.raises(ConfigError, match="NaN is not a valid setting"):
        load_config("scdfm-small", [override])


@pytest.mark.parametrize("key", ["lr", "eps", "weight_decay", "grad_clip"])
def test_infinite_train_values_are_refused(key):
    with pytest.raises(ConfigError, match=f"train.{key}: inf is not allowed"):
        train_options({key: float("inf")})


def test_lr_nan_from_the_cli_is_exit_2(tmp_path, capsys):
    code, err = _cli(["train", "scdfm-small", "--out", str(tmp_path / "r"), "train.lr=nan"], capsys)
    assert code == EXIT_USAGE and "train.lr" in err and "NaN" in err
    assert not (tmp_path / "r").exists()


def test_config_path_that_is_a_folder(tmp_path, capsys):
    (tmp_path / "cfg.yaml").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path / "cfg.yaml")
    code, err = _cli(["train", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "r")], capsys)
    assert code == EXIT_USAGE and "is a folder" in err


def test_binary_config_file(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_bytes(b"\x80\x04\x95\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not a text"):
        load_yaml(p)


@pytest.mark.parametrize("override, words", [
    ("train.betas.0=0.8", r"train\.betas is the list \[0\.9, 0\.98\]; an override sets a whole list, not one item: train\.betas=\[\.\.\.\]"),
    # a list the preset does not hold became {'0': 'ctrl'}: 'expected tuple[str, ...], got dict' said no more
    ("data.schema.control_labels.0=ctrl", r"data\.schema\.control_labels: expected .*got dict.*An override sets a whole list, not one item"),
])
def test_an_override_of_one_list_item_says_to_give_the_whole_list(override, words):
    """Hostile-input round, 2026-12-06: 'train.betas is [0.9, 0.98], not a mapping' did not say what to write instead."""
    from distgen.data.section import data_section

    with pytest.raises(ConfigError, match=words):
        doc = load_config("perturbdiff-small", [override])
        train_options(doc["train"])
        data_section(doc["data"])


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path, encoding):
    """Windows PowerShell's `echo ... > my.yaml` writes UTF-16 with a byte-order mark: it was refused as 'not a text (YAML)
    file' (hostile-input round, 2026-12-06)."""
    text = "base: perturbdiff-small\ntrain: {steps: 3}\ndescription: café\n"
    raw = text.encode(encoding)
    if encoding == "utf-16-be":
        raw = b"\xfe\xff" + raw  # the big-endian mark (the codec itself writes none)
    path = tmp_path / "c.yaml"
    path.write_bytes(raw)
    doc = load_yaml(path)
    assert doc == {"base": "perturbdiff-small", "train": {"steps": 3}, "description": "café"}
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"is not a text \(YAML\) file in UTF-8: byte 58 \(0xe9, line 3, column 17\) is not UTF-8; "
                                          r"if it is text in another encoding \(latin-1, cp1252\), save it as UTF-8"):
        load_yaml(path)


def test_a_recipe_named_from_elsewhere_gets_its_path(tmp_path, monkeypatch):
    """docs/your_data.md says "start from recipes/combination_additive.yaml"; from a project folder that base: was
    'neither a config file nor a preset' with the presets listed and no word of where the recipes are."""
    recipes = Path(__file__).resolve().parents[1] / "recipes"
    monkeypatch.chdir(tmp_path)
    for base in ("recipes/combination_additive.yaml", "combination_additive"):
        (tmp_path / "mine.yaml").write_text(f"base: {base}\n")
        with pytest.raises(ConfigError, match="neither a config file nor a preset") as err:
            load_config("mine.yaml")
        assert str(recipes / "combination_additive.yaml") in str(err.value)
    (tmp_path / "mine.yaml").write_text(f"base: {recipes / 'combination_additive.yaml'}\n")
    assert load_config("mine.yaml")["model"]["anchor"] == "additive"  # the path the message gives loads
    with pytest.raises(ConfigError) as err:
        load_config("no_such_thing")
    assert "recipe" not in str(err.value)
