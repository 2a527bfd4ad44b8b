"""Names distgen writes as files, as a run folder copied to Windows or to a case-insensitive macOS volume sees them
(three kinds): Windows' reserved device names, presets looked up independently of the file system's case rules, and a
misspelt validation metric caught by the config check."""

from __future__ import annotations

import pytest

from distgen.config import ConfigError
from distgen.train.options import train_options

#: Windows' device names: a file whose name up to its first dot (trailing spaces dropped) is one of these, in any case,
#: cannot be created there (``NUL.txt`` is the device ``NUL``).
RESERVED = ["CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10)), "COM\u00b9", "LPT\u00b3"]


def _stem(file_name: str) -> str:
    """What Windows compares with its device names: the name up to its first dot, trailing spaces dropped, in upper case."""
    return file_name.split(".", 1)[0].rstrip(" ").upper()


@pytest.mark.parametrize("label", ["CON.x", "nul.1", "Aux .b", "com1.", "LPT9.tar.gz", "prn . ", "COM\u00b9.a", "con ..x"])
def test_a_context_named_like_a_windows_device_gets_a_file_windows_can_create(label):
    """Before, ``CON.x`` wrote ``CON.x_metrics.csv``: Windows reads it as the console device ``CON`` (only the name up to its
    first dot counts), so a copied run folder lost the table (or a copy failed). Now the first dot is written %2E."""
    from distgen.pipeline.outputs import CONTEXT_SUFFIXES, context_prefix

    for suffix in CONTEXT_SUFFIXES:
        name = context_prefix(label) + suffix
        assert _stem(name) not in {r.upper() for r in RESERVED}, name
    assert "%2E" in context_prefix(label)


@pytest.mark.parametrize("label", [*RESERVED, "con", "Nul", "CON ", "T.", "T ", "x.CON", "CONSOLE.x", "COM10.x", "LPT.x", "CON_x.y",
                                   "a.b", "T..", " CON.x"])
def test_other_context_names_are_unchanged(label):
    """``CON`` alone writes ``CON_metrics.csv`` (its name up to the first dot is ``CON_metrics``, no device), a label ending in
    a space or dot is never a file name's end (the suffix follows): cell-eval's names are kept for all of them."""
    from distgen.pipeline.outputs import context_prefix

    assert context_prefix(label) == label


def test_contexts_that_meet_after_encoding_or_in_case_are_refused_before_scoring():
    """``CON.x`` and a literal ``CON%2Ex`` (or ``con%2ex``), like ``T`` and ``t``, would be one file on a case-insensitive
    file system: refused by the check that refuses ``a|b`` and ``a%7Cb`` (names compared case-folded)."""
    from distgen.pipeline.outputs import context_prefix

    for a, b in (("CON.x", "CON%2Ex"), ("CON.x", "con%2ex"), ("CD4", "cd4")):
        assert context_prefix(a).casefold() == context_prefix(b).casefold()


@pytest.mark.parametrize("label", ["CONIN$.x", "conout$.1", "ConIn$ .a", "CONOUT$.tar.gz"])
def test_conin_and_conout_are_windows_devices_as_con_is(label):
    """``CONIN$`` and ``CONOUT$`` name the console's input and output on Windows as ``CON`` names the console (Python's
    ``ntpath.isreserved`` lists them with ``CON``): ``CONIN$.x_metrics.csv`` was written as is. Now its first dot is %2E."""
    from distgen.pipeline.outputs import CONTEXT_SUFFIXES, context_prefix

    for suffix in CONTEXT_SUFFIXES:
        assert _stem(context_prefix(label) + suffix) not in {"CONIN$", "CONOUT$"}, context_prefix(label)
    assert context_prefix(label) == label.replace(".", "%2E", 1)
    assert context_prefix("CONIN$") == "CONIN$" and context_prefix("CONINx.1") == "CONINx.1"  # no device: kept


@pytest.mark.parametrize(("label", "prefix"), [(".x", "%2Ex"), (".", "%2E"), ("..", "%2E."), ("...", "%2E.."), ("._x", "%2E_x"),
                                               (".CON.x", "%2ECON.x"), (".a|b", "%2Ea%7Cb")])
def test_a_context_starting_with_a_dot_gets_a_file_that_is_not_hidden(label, prefix):
    """``.x`` wrote ``.x_metrics.csv``, a hidden file (``ls``, Finder and Explorer's default view leave it out), and ``.``
    wrote ``._metrics.csv``, which macOS takes for the AppleDouble companion of ``metrics.csv`` when copying to a volume
    without its metadata. Now the leading dot is written %2E, as the other characters a file name may not start with."""
    from distgen.pipeline.outputs import context_prefix

    assert context_prefix(label) == prefix
    assert not (context_prefix(label) + "_metrics.csv").startswith(".")


@pytest.mark.parametrize(("a", "b"), [("\u00c9", "e\u0301"), ("\u00c5", "a\u030a"), ("\u1e9e", "ss"), ("stra\u00dfe", "STRASSE"),
                                      (".x", "%2Ex"), ("CONIN$.x", "conin$%2Ex")])
def test_contexts_one_file_system_stores_as_one_name_share_a_file_key(a, b):
    """macOS' file systems keep names in one Unicode form and compare them case-blind, so ``\u00c9`` (one character) and
    ``e`` + a combining accent (two, lower case) are one file there: their file keys were apart (only case was folded). A
    case-insensitive file system that folds case fully (Unicode's CaseFolding, as ``str.casefold``: Linux's casefold
    folders) stores ``stra\u00dfe`` and ``STRASSE`` as one name too, so that pair stays refused."""
    from distgen.pipeline.outputs import context_prefix, file_name_key

    assert file_name_key(context_prefix(a)) == file_name_key(context_prefix(b))
    assert file_name_key("T") != file_name_key("U")


@pytest.mark.parametrize(("a", "b"), [("T\u200ccell", "tcell"), ("B\u00adcells", "bcells"), ("\U0001F9EC\ufe0f cells", "\U0001F9EC cells"),
                                      ("NK\u200d", "nk"), ("\ufeffx", "X")])
def test_names_that_differ_in_invisible_characters_share_a_file_key(a, b):
    """A Linux case-insensitive (casefold) folder ignores Unicode's default-ignorable code points (zero-width joiners and
    spaces, soft hyphens, direction marks, variation selectors: ``fs/unicode/mkutf8data.c``'s ``ignore_init``) as it
    folds case, so ``T`` + a zero-width non-joiner + ``cell`` and ``tcell`` are one file there: two tables were written,
    one over the other in such a folder. Same-case twins are refused earlier by the label check; these differ in case
    too, or in a variation selector, which that check keeps."""
    from distgen.pipeline.outputs import context_prefix, file_name_key, one_file_reason

    assert file_name_key(context_prefix(a)) == file_name_key(context_prefix(b))
    assert "invisible" in one_file_reason(context_prefix(a), context_prefix(b))
    assert file_name_key("T\u0600x") != file_name_key("Tx")  # a visible format sign (Arabic number sign) is not ignored


@pytest.mark.parametrize(("a", "b", "said", "not_said"), [
    ("Stra\u00dfe", "STRA\u1e9eE", "folds case fully", "Windows'"),  # neither letter has a one-letter upper case Windows maps
    ("\u00df", "\u1e9e", "folds case fully", "Windows'"),
    ("T", "t", "macOS' and Windows'", "Unicode form"),
    ("\u03c3 T", "\u03a3 T", "macOS' and Windows'", "fully"),
    ("a-\u00e9", "a-e\u0301", "Unicode form", ", and case"),  # same case: no case difference is named
    ("\u00c9", "e\u0301", "Unicode form", "fully"),
    ("\u01c5x", "\u01c4x", "folds case fully", "Windows'"),  # title case Dz-caron: Windows upper-cases lower-case letters alone
])
def test_the_reason_two_names_are_one_file_says_only_what_holds(a, b, said, not_said):
    """``one_file_reason`` names the file systems that join the pair: ``\u00df`` and ``\u1e9e`` fold to one name only where
    case is folded fully (a Linux casefold folder); Windows upper-cases letter by letter and neither has a one-letter
    upper case, so they are two files there, and the reason must not say "macOS' and Windows'". A pair of one case
    differing in Unicode form alone is not said to differ in case."""
    from distgen.pipeline.outputs import file_name_key, one_file_reason

    assert file_name_key(a) == file_name_key(b)
    reason = one_file_reason(a, b)
    assert said in reason and not_said not in reason, reason
    assert one_file_reason(b, a) == reason


@pytest.mark.parametrize("name", ["con.1", "NUL.v2", "Aux.a,b"])
def test_a_sweep_variant_named_like_a_windows_device_is_refused(name):
    """A variant names a run folder ``{name}__seed0``: ``con.1__seed0`` is the device ``CON`` on Windows."""
    from distgen.pipeline.grid import parse_variants

    with pytest.raises(ConfigError, match="Windows"):
        parse_variants({name: []})
    assert parse_variants({"con": [], "console.1": []})  # no device: kept


@pytest.mark.parametrize("typed", ["SCDFM-small", "Scdfm-Small", "PERTURBDIFF"])
def test_a_preset_in_another_case_is_refused_on_every_file_system(typed, monkeypatch, tmp_path):
    """Presets were looked up as files (``presets/{name}.yaml`` exists): on a case-insensitive file system (macOS, Windows)
    ``SCDFM-small`` loaded the preset, on Linux it was refused. Simulated here by a file-existence check that ignores case."""
    import pathlib

    from distgen import config as cfg

    real_exists = pathlib.Path.exists

    def case_blind_exists(self, *a, **k):
        if self.parent == cfg._PRESET_DIR:
            return any(p.name.casefold() == self.name.casefold() for p in cfg._PRESET_DIR.iterdir())
        return real_exists(self, *a, **k)

    monkeypatch.setattr(pathlib.Path, "exists", case_blind_exists)
    monkeypatch.setattr(pathlib.Path, "is_file", case_blind_exists)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=f"Did you mean '{typed.lower()}'"):
        cfg.load_config(typed)
    assert cfg.load_config(typed.lower())  # the preset's own name still loads


@pytest.mark.parametrize(("key", "value", "meant"), [("val_metrics", ["MSE"], "mse"), ("val_metrics", ["pearson-delta"], "pearson_delta"),
                                                     ("monitor", "val_MSE", "val_mse")])
def test_a_misspelt_validation_metric_is_caught_by_the_config_check(key, value, meant):
    """``train.val_metrics: [MSE]`` passed ``check_experiment`` and was refused by ``resolve_metrics`` when the trainer was
    built: after the data was loaded and the run folder written (``experiment.yaml``, ``train/config.yaml``...)."""
    from distgen.config import load_config
    from distgen.pipeline.checks import check_experiment

    doc = load_config("scdfm-small", [f"train.{key}={value}"])
    with pytest.raises(ConfigError, match=f"train.{key}.*Did you mean '{meant}'"):
        check_experiment(doc)
    with pytest.raises(ConfigError, match=f"Did you mean '{meant}'"):  # the Python API's options alike
        train_options({key: value})


def test_labels_for_a_context_the_data_lacks_says_what_predicts_it():
    """docs/your_data.md had ``encode(adata, model=)`` admit a new context and then ``labels_for([...], contexts=[...])``
    ask for it: that was refused saying only that the run has no id for it. The refusal stays (the data has no
    id for it); it now says what a model that reads no context predicts it with, and where the encoded cells' labels are."""
    import anndata as ad
    import numpy as np
    import pandas as pd

    from distgen.data import PerturbationData, PerturbationSchema
    from distgen.errors import InputKeyError

    obs = pd.DataFrame({"pert": ["ctrl", "A", "ctrl", "A"] * 2, "ct": ["K", "K", "R", "R"] * 2})
    adata = ad.AnnData(np.random.default_rng(0).poisson(3, (8, 3)).astype(np.float32), obs=obs)
    data = PerturbationData.from_anndata(adata, PerturbationSchema(perturbation_col="pert", control_labels=("ctrl",),
                                                                   context_cols=("ct",)))
    with pytest.raises(InputKeyError, match=r"unknown context 'D'.*encode\(adata, model=model\).*contexts=\['K'\]"):
        data.labels_for(["A"], contexts=["D"])


# what an earlier pass left file-system dependent


def _clean_preset(name):
    """``name`` loaded from a working directory that holds nothing."""
    from distgen.config import load_config

    return load_config(name)


def test_a_folder_named_like_a_preset_does_not_hide_it(monkeypatch, tmp_path):
    """A folder ``scdfm`` in the working directory (a checkout of the official code) was taken for the config the name
    ``scdfm`` means, also as ``scdfm-small``'s own ``base: scdfm``: ``distgen run scdfm-small`` was refused "config file
    'scdfm' is a folder". On macOS and Windows the official checkout ``scDFM`` is that folder."""
    from distgen.config import load_config, preset_of

    expected = {n: _clean_preset(n) for n in ("scdfm", "scdfm-small")}
    (tmp_path / "scdfm").mkdir()
    monkeypatch.chdir(tmp_path)
    for name, doc in expected.items():
        assert load_config(name) == doc
        assert preset_of(name) == name


def test_a_presets_own_base_is_the_preset_whatever_the_working_directory_holds(monkeypatch, tmp_path):
    """A file named ``scdfm`` in the working directory is the config ``distgen run scdfm`` means (docs/configs.md), but
    ``scdfm-small``'s own ``base: scdfm`` names the shipped preset: it read that file instead."""
    from distgen.config import load_config

    expected = _clean_preset("scdfm-small")
    (tmp_path / "scdfm").write_text("train: {steps: 7}\n")
    monkeypatch.chdir(tmp_path)
    assert load_config("scdfm-small") == expected
    assert load_config("scdfm") == {"train": {"steps": 7}}  # the name typed: the file, as documented


def test_a_preset_name_is_a_file_only_in_its_own_case(monkeypatch, tmp_path):
    """On a case-insensitive file system a file ``SCDFM`` "exists" as ``scdfm``: ``distgen run scdfm`` read it there and the
    preset on Linux. A file shadows a preset only under the preset's exact name (simulated: a case-blind file test)."""
    import pathlib

    from distgen.config import load_config

    expected = _clean_preset("scdfm")
    (tmp_path / "SCDFM").write_text("train: {steps: 7}\n")
    real_exists, real_is_file = pathlib.Path.exists, pathlib.Path.is_file

    def case_blind(real):
        def test(self, *a, **k):
            here = (tmp_path / self) if not self.is_absolute() else self
            if here.parent == tmp_path and not real(here):
                return any(p.name.casefold() == here.name.casefold() and real(p) for p in tmp_path.iterdir())
            return real(self, *a, **k)
        return test

    monkeypatch.setattr(pathlib.Path, "exists", case_blind(real_exists))
    monkeypatch.setattr(pathlib.Path, "is_file", case_blind(real_is_file))
    monkeypatch.chdir(tmp_path)
    assert pathlib.Path("scdfm").is_file()  # the simulation: the file system answers for any case
    assert load_config("scdfm") == expected


def test_a_validation_metric_named_as_the_monitor_names_it_is_told_to_drop_val():
    """``train.val_metrics: [val_mse]`` (as ``train.monitor`` and metrics.csv name it) got "Did you mean 'delta_mse'?", another
    metric."""
    with pytest.raises(ConfigError, match=r"unknown metric 'val_mse'\. Did you mean 'mse'\?") as caught:
        train_options({"val_metrics": ["val_mse"]})
    assert "delta_mse" not in str(caught.value)


def test_the_trainer_refuses_options_changed_after_their_check_with_the_same_words():
    """``TrainOptions`` fields can be set after the check (a dataclass): the trainer's own check says what the config check
    says, from one function (the two had been written twice)."""
    from distgen.train.validation import higher_is_better, resolve_metrics

    with pytest.raises(ConfigError, match=r"train\.val_metrics: unknown metric 'MSE'\. Did you mean 'mse'\?"):
        resolve_metrics(["MSE"])
    with pytest.raises(ConfigError, match=r"train\.monitor='val_MSE' is neither val_loss.*Did you mean 'val_mse'\?"):
        higher_is_better("val_MSE", resolve_metrics(["mse"]))


def test_labels_for_a_miscased_context_gets_the_case_hint_alone():
    """``labels_for(contexts=['k'])`` with a trained ``K``: the case hint says the fix; the first pass appended the hint for
    cells of a new context as well (ask any trained context), noise for a typo."""
    import anndata as ad
    import numpy as np
    import pandas as pd

    from distgen.data import PerturbationData, PerturbationSchema
    from distgen.errors import InputKeyError

    obs = pd.DataFrame({"pert": ["ctrl", "A", "ctrl", "A"] * 2, "ct": ["K", "K", "R", "R"] * 2})
    adata = ad.AnnData(np.random.default_rng(0).poisson(3, (8, 3)).astype(np.float32), obs=obs)
    data = PerturbationData.from_anndata(adata, PerturbationSchema(perturbation_col="pert", control_labels=("ctrl",),
                                                                   context_cols=("ct",)))
    with pytest.raises(InputKeyError, match=r"'k' is 'K' in the training file") as caught:
        data.labels_for(["A"], contexts=["k"])
    assert "encode(adata" not in str(caught.value)
    with pytest.raises(InputKeyError, match=r"'k' is 'K'.*encode\(adata, model=model\)"):  # a new one beside it: both said
        data.labels_for(["A", "A"], contexts=["k", "D"])


@pytest.mark.parametrize("name", [".x", ".", "..", ".hidden.v2"])
def test_a_sweep_variant_starting_with_a_dot_is_refused(name):
    """A variant names a run folder ``{name}__seed0``: ``.x__seed0`` was made as a hidden folder (``ls`` and the file
    browsers leave it out of the sweep's ``runs/``). Refused now, naming a rename, as a device name is."""
    from distgen.pipeline.grid import parse_variants

    with pytest.raises(ConfigError, match="hidden"):
        parse_variants({name: []})
    assert parse_variants({"x.": [], "a.b": []})  # a dot elsewhere: kept


#: Labels a cell-type column may hold that are hostile to file names: empty-looking, dots, trailing dot/space, separators,
#: control characters, device names, Unicode twins, emoji, long ones.
HOSTILE = ["x", ".", "..", "...", ".x", "._x", "T.", "T ", " .x", "a/b", "a\\b", "a\x00b", "a\tb", "a|b", "a:b", "CON", "CON.x",
           "CONIN$.x", "conout$", "nul .1", "\u00c9", "E\u0301x", "stra\u00dfe", "\U0001F9EC cells", "-x", "50%", "\u00e9" * 100,
           "x" * 223, "x" * 224]


def test_hostile_context_labels_get_names_every_system_writes_and_read_back_as_written(tmp_path):
    """Each label's table name is one every system can create and lists (no leading dot, no device up to the first dot,
    no character Windows refuses, no control character, no trailing dot or space) or is refused as too long; written
    side by side here, each file holds its own label (none written over another): the label is read back from the
    file, as distgen reads it from the ``context`` column."""
    from distgen.pipeline.outputs import CONTEXT_SUFFIXES, MAX_FILE_NAME, UNSAFE_IN_FILE_NAMES, context_prefix, long_context_names

    too_long = set(long_context_names(HOSTILE))
    assert too_long == {"x" * 224}  # 223 bytes of context fit: 241 less the 18 of _vcc2026_score.csv
    kept = [label for label in HOSTILE if label not in too_long]
    for label in kept:
        for suffix in CONTEXT_SUFFIXES:
            name = context_prefix(label) + suffix
            assert not name.startswith(".") and name[-1] not in ". " and len(name.encode()) <= MAX_FILE_NAME, name
            assert _stem(name) not in {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}, name
            assert not set(name) & set(UNSAFE_IN_FILE_NAMES + "/\x00\t"), name
    for label in kept:
        (tmp_path / (context_prefix(label) + CONTEXT_SUFFIXES[0])).write_bytes(label.encode())
    read = {p.name: p.read_bytes().decode() for p in tmp_path.iterdir()}
    assert sorted(read.values()) == sorted(kept)
    assert not [n for n in read if n.startswith(".")]


def test_hostile_context_labels_meet_in_one_file_key_only_where_a_file_system_joins_them():
    """Pairs of the hostile list sharing a ``file_name_key`` are exactly those some file system stores as one file:
    refused before scoring (``load_contexts``); every other pair keeps two files everywhere."""
    from itertools import combinations

    from distgen.pipeline.outputs import context_prefix, file_name_key

    shared = {(a, b) for a, b in combinations(HOSTILE, 2) if file_name_key(context_prefix(a)) == file_name_key(context_prefix(b))}
    assert shared == set()
    extra = {"STRASSE": "stra\u00dfe", "e\u0301": "\u00c9", "%2Ex": ".x", "CONIN$%2Ex": "CONIN$.x", "a-b": "a/b", "t.": "T."}
    for other, label in extra.items():
        assert file_name_key(context_prefix(other)) == file_name_key(context_prefix(label)), (other, label)
