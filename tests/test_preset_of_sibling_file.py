"""``preset_of`` agrees with ``load_config`` about a ``base:`` that names a preset while a file of that name (no suffix)
lies beside the config: ``load_config`` reads the file, as it reads every relative ``base:`` found next to
its config; ``preset_of`` reported the preset, so the run's manifest and report named a preset the run was not made from."""

from distgen.config import load_config, preset_of


def _beside(tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # no file named like a preset in the working directory
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "scdfm-small").write_text("base: perturbdiff-small\ntrain:\n  steps: 7\n")  # a copy, edited, of another preset
    return sub


def test_a_file_named_like_a_preset_beside_the_config_is_its_base_for_both(tmp_path, monkeypatch):
    sub = _beside(tmp_path, monkeypatch)
    config = sub / "config.yaml"
    config.write_text("base: scdfm-small\n")
    assert load_config(config) == load_config("perturbdiff-small", ["train.steps=7"])  # the file beside it was read
    assert preset_of(config) == "perturbdiff-small"


def test_a_base_override_naming_that_file_is_followed_alike(tmp_path, monkeypatch):
    sub = _beside(tmp_path, monkeypatch)
    config = sub / "config.yaml"
    config.write_text("train:\n  lr: 0.001\n")
    assert load_config(config, ["base=scdfm-small"]) == load_config("perturbdiff-small", ["train.steps=7", "train.lr=0.001"])
    assert preset_of(config, ["base=scdfm-small"]) == "perturbdiff-small"


def test_without_the_file_the_preset_is_the_base_for_both(tmp_path, monkeypatch):
    sub = _beside(tmp_path, monkeypatch)
    (sub / "scdfm-small").unlink()
    config = sub / "config.yaml"
    config.write_text("base: scdfm-small\n")
    assert load_config(config) == load_config("scdfm-small")
    assert preset_of(config) == preset_of(config, ["train.seed=1"]) == "scdfm-small"
    assert preset_of(config, ["base=perturbdiff-small"]) == "perturbdiff-small"
