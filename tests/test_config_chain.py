"""One reader of a ``base:`` chain (``config._base_chain``): ``load_config`` merges its documents, ``preset_of`` names the
first preset among them and ``explicit_keys`` reads the documents above it, so the three cannot follow different files.
The bundled presets' names are read once per process; the working directory is asked on each reference."""

import pathlib

import pytest

from distgen import config as cfg
from distgen.config import ConfigError, explicit_keys, load_config, names_preset, preset_names, preset_of


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """``sub/`` with configs, ``cwd/`` (empty) as the working directory."""
    sub = tmp_path / "sub"
    sub.mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    (sub / "c1.yaml").write_text("base: scdfm-small\ntrain:\n  lr: 0.01\n")
    (sub / "c2.yaml").write_text("base: c1.yaml\ntrain:\n  steps: 3\n")
    (sub / "c3.yaml").write_text("base: c2.yaml\ndata:\n  set_size: 8\n")
    (sub / "own.yaml").write_text("model:\n  name: additive\ndata:\n  dataset: norman\n")
    return tmp_path


@pytest.mark.parametrize(("config", "overrides", "preset", "same_as"), [
    ("sub/c1.yaml", [], "scdfm-small", ("scdfm-small", ["train.lr=0.01"])),
    ("sub/c2.yaml", [], "scdfm-small", ("scdfm-small", ["train.lr=0.01", "train.steps=3"])),
    ("sub/c3.yaml", [], "scdfm-small", ("scdfm-small", ["train.lr=0.01", "train.steps=3", "data.set_size=8"])),
    ("sub/c3.yaml", ["base=perturbdiff-small"], "perturbdiff-small", ("perturbdiff-small", ["data.set_size=8"])),
    ("sub/c2.yaml", ["base=c1.yaml"], "scdfm-small", ("scdfm-small", ["train.lr=0.01", "train.steps=3"])),  # beside c2
    ("sub/own.yaml", [], None, None),
    ("link/c3.yaml", [], "scdfm-small", ("scdfm-small", ["train.lr=0.01", "train.steps=3", "data.set_size=8"])),
])
def test_preset_of_names_the_first_preset_of_the_chain_load_config_reads(tree, config, overrides, preset, same_as):
    (tree / "link").symlink_to(tree / "sub")  # a symlinked folder: relative bases are read beside the link
    path = tree / config
    assert preset_of(path, overrides) == preset_of(str(path), overrides) == preset
    if same_as is not None:
        assert load_config(path, overrides) == load_config(*same_as)


def test_a_relative_base_is_read_beside_its_config_before_the_working_directory(tree):
    (tree / "cwd" / "c1.yaml").write_text("base: perturbdiff\n")  # another c1.yaml where the command runs
    assert preset_of(tree / "sub" / "c2.yaml") == "scdfm-small"  # the one beside c2.yaml
    assert preset_of({"base": "c1.yaml"}) == "perturbdiff"  # a mapping has no folder: the working directory's
    assert load_config({"base": "c1.yaml"}) == load_config("perturbdiff")


def _symlink_cycle(tree):
    """c1.yaml's base is the file beside it named like a preset, whose base names the other preset; in the working
    directory a symlink of that name leads back to c1.yaml."""
    (tree / "sub" / "scdfm-small").write_text("base: perturbdiff-small\n")
    (tree / "cwd" / "perturbdiff-small").symlink_to(tree / "sub" / "c1.yaml")
    return tree / "sub" / "c1.yaml", []


def _missing_base(tree):
    (tree / "sub" / "gone.yaml").write_text("base: nowhere.yaml\n")
    return tree / "sub" / "gone.yaml", []


def _preset_on_itself(tree):
    return "perturbdiff", ["base=perturbdiff"]


def _base_override_no_name(tree):
    return tree / "sub" / "c2.yaml", ["base=[1]"]


@pytest.mark.parametrize("make", [_symlink_cycle, _missing_base, _preset_on_itself, _base_override_no_name])
def test_a_chain_load_config_refuses_is_refused_alike_by_preset_of_and_explicit_keys(tree, make):
    """The separate walk of ``preset_of`` answered for chains ``load_config`` refuses: 'scdfm-small' for the symlink cycle
    (it followed the link by its name, ``load_config`` by its target), 'perturbdiff' for a preset made its own base,
    'scdfm-small' past an unusable ``base=`` override, None (no preset) for a missing base file."""
    config, overrides = make(tree)
    with pytest.raises(ConfigError) as refused:
        load_config(config, overrides)
    with pytest.raises(ConfigError) as named:
        preset_of(config, overrides)
    assert str(named.value) == str(refused.value)
    with pytest.raises(ConfigError) as keys:
        explicit_keys(config, overrides, "train")
    assert str(keys.value) == str(refused.value)


def test_explicit_keys_reads_the_files_above_the_first_preset_of_that_chain(tree):
    (tree / "sub" / "scdfm-small").write_text("base: perturbdiff-small\ntrain:\n  seed: 7\n")  # beside c1.yaml: its base
    assert preset_of(tree / "sub" / "c3.yaml") == "perturbdiff-small"
    assert explicit_keys(tree / "sub" / "c3.yaml", [], "train") == {"lr", "steps", "seed"}
    assert explicit_keys(tree / "sub" / "c3.yaml", ["base=scdfm-small"], "train") == {"seed"}  # beside c3.yaml: the file
    assert explicit_keys(tree / "sub" / "c3.yaml", ["base=perturbdiff-small"], "train") == set()


def test_the_presets_folder_is_read_once_per_process(tree, monkeypatch):
    preset_names()
    real_glob = pathlib.Path.glob

    def glob(self, pattern, *a, **k):
        if self == cfg._PRESET_DIR:
            raise AssertionError("the presets folder was listed again")
        return real_glob(self, pattern, *a, **k)

    monkeypatch.setattr(pathlib.Path, "glob", glob)
    names = preset_names()
    assert names == sorted(p.stem for p in real_glob(cfg._PRESET_DIR, "*.yaml")) and "scdfm-small" in names
    names.clear()  # each call hands out its own list
    assert preset_names() == sorted(p.stem for p in real_glob(cfg._PRESET_DIR, "*.yaml"))
    assert preset_of(tree / "sub" / "c3.yaml") == "scdfm-small" and names_preset("scdfm")
    with pytest.raises(ConfigError, match="Did you mean 'scdfm'"):
        load_config("scdfmm")


def test_a_file_named_like_a_preset_is_seen_when_the_working_directory_changes(tree, monkeypatch):
    """The presets' names are kept; whether the working directory holds a file of that name is asked each time."""
    holder = tree / "holder"
    holder.mkdir()
    (holder / "scdfm-small").write_text("base: perturbdiff\ntrain:\n  seed: 5\n")
    assert names_preset("scdfm-small") and preset_of("scdfm-small") == "scdfm-small"
    monkeypatch.chdir(holder)
    assert not names_preset("scdfm-small")
    assert preset_of("scdfm-small") == "perturbdiff"
    assert load_config("scdfm-small") == load_config("perturbdiff", ["train.seed=5"])
    monkeypatch.chdir(tree / "cwd")
    assert names_preset("scdfm-small") and preset_of("scdfm-small") == "scdfm-small"
    assert load_config("scdfm-small") != load_config("perturbdiff", ["train.seed=5"])


def test_a_file_beside_the_config_in_another_case_is_not_the_preset_its_base_names(tree, monkeypatch):
    """On a case-insensitive file system (macOS', Windows'; simulated) ``sub/scdfm-small`` "is" a file ``SCDFM-small``: a
    ``base: scdfm-small`` read the preset when the config was given as ``uses.yaml`` from its folder (the working
    directory is listed by exact name) and that other file when given by any other path. A preset's name is a file beside
    the config only in its own case, as in the working directory."""
    import os

    sub = tree / "sub"
    (sub / "uses.yaml").write_text("base: scdfm-small\n")
    (sub / "SCDFM-small").write_text("base: perturbdiff\n")
    expected = load_config("scdfm-small")
    real = {name: getattr(pathlib.Path, name) for name in ("exists", "is_file")}

    def case_blind(name):
        def check(self, *a, **k):
            path = pathlib.Path(os.path.abspath(self))
            if path.parent == sub:
                return any(p.name.casefold() == path.name.casefold() for p in sub.iterdir())
            return real[name](self, *a, **k)
        return check

    for name in real:
        monkeypatch.setattr(pathlib.Path, name, case_blind(name))
    for where, config in ((tree / "cwd", sub / "uses.yaml"), (tree, "sub/uses.yaml"), (sub, "uses.yaml")):
        monkeypatch.chdir(where)
        assert preset_of(config) == "scdfm-small", (where, config)
        assert load_config(config) == expected, (where, config)
