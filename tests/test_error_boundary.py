"""Issue 17: every command runs inside one error boundary. Known errors print one or two lines (what,
where, how to fix) and exit 1 (runtime) or 2 (usage/config); unexpected ones print a one-line summary
and the traceback only with --debug or DISTGEN_DEBUG=1. Options and overrides may be intermixed."""

import argparse
import errno
import importlib
import pickle
import re
import zipfile

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen import cli
from distgen.cli import EXIT_FAILURE, EXIT_USAGE, build_parser, classify, main, parse

PARSER = build_parser()
SUB = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction))
WITH_OVERRIDES = sorted(name for name, p in SUB.choices.items() if any(a.dest == "overrides" for a in p._actions))


def run_cli(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.err


def assert_short(err, *words):
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 2, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, f"{w!r} not in {err!r}"


# ---------------------------------------------------------------------------------------------- parsing
def test_commands_with_overrides_exist():
    assert {"train", "run", "quickstart"} <= set(WITH_OVERRIDES)


@pytest.mark.parametrize("command", WITH_OVERRIDES)
def test_overrides_may_follow_options(command):
    """`distgen train PRESET --out DIR key=value`, exactly as the README writes it."""
    positional = {"quickstart": [], "import": ["scdfm-official", "checkpoint.pt"]}.get(command, ["scdfm-small"])
    argv = [command, *positional, "--out", "somewhere", "train.seed=3", "train.steps=2"]
    args = parse(PARSER, argv)
    assert args.overrides == ["train.seed=3", "train.steps=2"] and args.out == "somewhere" and args.command == command


def test_overrides_before_and_after_options_keep_their_order():
    args = parse(PARSER, ["train", "scdfm-small", "a.b=1", "--out", "d", "c.d=2"])
    assert args.overrides == ["a.b=1", "c.d=2"] and args.config == "scdfm-small"


def test_an_unknown_option_after_overrides_is_still_a_usage_error(capsys):
    code, err = run_cli(["train", "scdfm-small", "--out", "d", "train.seed=1", "--bogus"], capsys)
    assert code == EXIT_USAGE and "--bogus" in err


def test_intermixed_override_reaches_the_config(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(["train", "scdfm-small", "--out", "o", "model.backbone.nope=1"], capsys)
    assert code == EXIT_USAGE and "unknown key 'nope'" in err


def test_resume_followed_by_an_override_is_not_taken_for_a_checkpoint():
    args = parse(PARSER, ["train", "scdfm-small", "--out", "d", "--resume", "train.steps=20"])
    from distgen.commands.train import resume_and_overrides

    resume, overrides = resume_and_overrides(args)
    assert resume is True and overrides == ["train.steps=20"]


# ---------------------------------------------------------------------------------------------- unexpected errors
@pytest.fixture
def crashing(monkeypatch):
    import distgen.commands.components as comp

    def boom(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(comp, "run", boom)


def test_unexpected_error_is_one_summary_line_without_traceback(crashing, capsys, monkeypatch):
    monkeypatch.delenv("DISTGEN_DEBUG", raising=False)
    code, err = run_cli(["components"], capsys)
    assert code == EXIT_FAILURE
    assert_short(err, "internal error: ZeroDivisionError: division by zero", "--debug")


@pytest.mark.parametrize("how", ["flag-before", "flag-after", "env"])
def test_debug_shows_the_traceback(crashing, capsys, monkeypatch, how):
    monkeypatch.delenv("DISTGEN_DEBUG", raising=False)
    argv = {"flag-before": ["--debug", "components"], "flag-after": ["components", "--debug"], "env": ["components"]}[how]
    if how == "env":
        monkeypatch.setenv("DISTGEN_DEBUG", "1")
    code, err = run_cli(argv, capsys)
    assert code == EXIT_FAILURE and "Traceback" in err and "ZeroDivisionError" in err
    assert err.splitlines()[0].startswith("distgen components: internal error")


def test_every_known_class_name_still_exists():
    """The boundary matches other modules' exceptions by name; a rename must update cli.KNOWN."""
    for qualname in [*cli.KNOWN, *cli.HINTS]:
        module, _, name = qualname.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), name), type), qualname


def _origin_module_warning(module: str, code: str) -> Warning:
    """The warning that ``code``, run as if it were a line of ``module``, raises under ``warnings.simplefilter("error")``."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            exec(compile(code, module.replace(".", "/") + ".py", "exec"), {"__name__": module})
        except Warning as w:
            return w
    raise AssertionError(f"{code!r} warned nothing")


def _evaluate_under_w_error(tmp_path, capsys):
    """``distgen evaluate --pred pred.h5ad --real real.h5ad`` in ``tmp_path`` under ``warnings.simplefilter("error")``."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return run_cli(["evaluate", "--pred", str(tmp_path / "pred.h5ad"), "--real", str(tmp_path / "real.h5ad"),
                        "--out", str(tmp_path / "e"), "--no-plots"], capsys)


def test_a_third_party_warning_made_an_error_is_worded_as_one(tmp_path, capsys):
    """Under ``python -W error`` anndata's "Variable names are not unique" (a ``UserWarning`` raised while reading a file
    whose genes repeat a name) ended as "internal error: UserWarning: ... this is a bug in distgen". It is a warning the
    user's filters made an error: said so, with where it came from and how to let it through, exit 1."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the same warning, said while the files are made
        for name in ("pred", "real"):
            ad.AnnData(np.ones((4, 2), dtype=np.float32), var=pd.DataFrame(index=["g", "g"])).write_h5ad(tmp_path / f"{name}.h5ad")
    code, err = _evaluate_under_w_error(tmp_path, capsys)
    assert code == EXIT_FAILURE
    assert "called from distgen (distgen.data." in err, err  # distgen's reader called anndata
    assert_short(err, "distgen evaluate: error: UserWarning from anndata", "Variable names are not unique",
                 "made an error by the warning filters", "python -W error", "PYTHONWARNINGS", "not a bug in distgen",
                 '-W "default::UserWarning"')
    assert "internal error" not in err and "this is a bug" not in err


@pytest.mark.parametrize("module,code,words", [
    ("numpy.fake", "import numpy as np\nnp.log(np.zeros(1))", ["RuntimeWarning from numpy", "divide by zero",
                                                                "not a bug in distgen", '-W "default::RuntimeWarning"']),
    ("anndata.fake", "import anndata\nimport warnings\nwarnings.warn('old', anndata.OldFormatWarning)",
     ["anndata._warnings.OldFormatWarning from anndata (anndata.fake, line 3): old", "not a bug in distgen", '-W "default::PendingDeprecationWarning"']),
    ("pandas.fake", "import warnings\nwarnings.warn('Moving element.\\nThis is where', FutureWarning)",
     ["FutureWarning from pandas (pandas.fake, line 2): Moving element. This is where (a warning", '"default::FutureWarning"']),
    ("distgen.evaluation.fake", "import numpy as np\nnp.log(np.zeros(1))",
     ["RuntimeWarning from distgen (distgen.evaluation.fake, line 2)", "divide by zero", "--debug", "report it"]),
])
def test_a_warning_made_an_error_names_its_class_and_the_code_it_came_from(module, code, words):
    """The class (module-qualified unless built in), the package whose code raised it, and the nearest built-in class for
    a ``-W default::`` filter that lets it print (Python reads only built-in classes from ``-W`` at start-up), in two
    lines whatever line breaks the warning holds. One raised in distgen's own code is not called someone else's: the user
    is asked to report it."""
    exc = _origin_module_warning(module, code)
    got, message = classify(exc, "run")
    assert got == EXIT_FAILURE and message is not None and message.startswith("error: ")
    for w in words:
        assert w in message, (w, message)
    assert ("not a bug in distgen" in message) == (not module.startswith("distgen"))
    assert message.count("\n") == 1, message  # two lines, a warning's own line breaks (anndata's FutureWarning) joined


def _module(name: str, code: str) -> dict:
    """The globals of ``code`` run as the module ``name`` (its frames report that module name and file)."""
    space = {"__name__": name}
    exec(compile(code, name.replace(".", "/") + ".py", "exec"), space)
    return space


_LIBRARY = ("import warnings\n"
            "def old(category):\n"
            "    warnings.warn('old() is deprecated, call new()', category, stacklevel=2)\n")


@pytest.mark.parametrize("category", [FutureWarning, DeprecationWarning, PendingDeprecationWarning, EncodingWarning])
def test_a_library_warning_about_distgens_call_is_not_called_someone_elses_bug(category):
    """A library's deprecation or future-change warning about HOW distgen calls it (its ``stacklevel`` points at
    distgen's line) is raised in the library's code, the innermost frame: the message said "raised by fakelib's code,
    not a bug in distgen", untrue when distgen's call is what must change. It names distgen's line that called the
    library and asks for a report when the warning is not about the user's input."""
    library = _module("fakelib.api", _LIBRARY)
    caller = _module("distgen.evaluation.fake", "def call(old, category):\n    old(category)\n")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(category) as e:
            caller["call"](library["old"], category)
    got, message = classify(e.value, "run")
    assert got == EXIT_FAILURE and message is not None
    assert f"{category.__name__} from fakelib (fakelib.api, line 3): old() is deprecated" in message, message
    assert "called from distgen (distgen.evaluation.fake, line 2)" in message, message
    assert "not a bug in distgen" not in message.replace("not a bug in distgen if", ""), message
    assert "distgen's call needs changing" in message and "report it" in message and "--debug" in message, message
    assert message.count("\n") == 1, message


def test_a_library_warning_reached_from_distgen_names_distgens_line_and_asks_for_a_report_if_not_the_input():
    """numpy's own "Mean of empty slice" (a ``RuntimeWarning`` raised in numpy's code, about the array distgen passed)
    is not called "not a bug in distgen" flatly: distgen's line that called numpy is named, and a report asked for
    when the warning is not about the user's input."""
    caller = _module("distgen.evaluation.fake", "import numpy as np\ndef call():\n    return np.mean(np.zeros(0))\n")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning) as e:
            caller["call"]()
    got, message = classify(e.value, "run")
    assert got == EXIT_FAILURE
    assert message is not None and "RuntimeWarning from numpy" in message and "Mean of empty slice" in message, message
    assert "called from distgen (distgen.evaluation.fake, line 3)" in message, message
    assert "report it" in message and "your input" in message, message


@pytest.mark.skipif(not hasattr(pd.DataFrame, "applymap"), reason="pandas without the deprecated DataFrame.applymap")
def test_a_real_pandas_deprecation_from_a_distgen_call_ends_the_command_naming_distgens_call(tmp_path, capsys, monkeypatch):
    """``distgen evaluate`` under ``-W error`` whose evaluation calls pandas' deprecated ``DataFrame.applymap`` (a
    ``FutureWarning`` pandas raises about its caller's use): exit 1, the pandas module named, distgen's calling line
    named, and no "not a bug in distgen"."""

    fake = _module("distgen.pipeline.fake", "import pandas as pd\ndef evaluate_files(*args, **kwargs):\n"
                                            "    return pd.DataFrame({'a': [1]}).applymap(str)\n")
    monkeypatch.setattr(importlib.import_module("distgen.pipeline.evaluate"), "evaluate_files", fake["evaluate_files"])
    code, err = _evaluate_under_w_error(tmp_path, capsys)
    assert code == EXIT_FAILURE
    assert_short(err, "distgen evaluate: error: FutureWarning from pandas (pandas.", "applymap has been deprecated",
                 "called from distgen (distgen.pipeline.fake, line 3)", "distgen's call needs changing", "report it",
                 '-W "default::FutureWarning"')
    assert "internal error" not in err and "not a bug in distgen;" not in err


def test_the_filter_given_for_a_class_deriving_from_warning_alone_keeps_other_warnings_errors():
    """A library class that derives from ``Warning`` alone (pandas' ``PerformanceWarning``, torch's ``TracerWarning``):
    its nearest built-in class is ``Warning``, and ``-W "default::Warning"`` lets EVERY warning through, while the
    message said it keeps other warnings errors. The filter given matches the warning's message instead; it is run
    here, in a fresh interpreter, as printed: this warning prints and the program goes on, another still raises."""
    import re
    import subprocess
    import sys
    import warnings

    library = _module("fakelib.perf", "import warnings\nclass PerformanceWarning(Warning):\n    pass\n"
                                      "def slow():\n    warnings.warn('DataFrame is highly fragmented, a: b', PerformanceWarning)\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Warning) as e:
            library["slow"]()
    _, message = classify(e.value, "run")
    assert message is not None and '"default::Warning"' not in message, message
    given = re.search(r'python -W error -W "([^"]+)" -m distgen', message)
    assert given is not None, message
    env = re.search(r'PYTHONWARNINGS="error,([^"]+)"', message)
    assert env is not None and env.group(1) == given.group(1), message
    code = ("import warnings\nclass PerformanceWarning(Warning):\n    pass\n"
            "warnings.warn('DataFrame is highly fragmented, a: b', PerformanceWarning)\nprint('went on')\n"
            "warnings.warn('another', PerformanceWarning)\n")
    done = subprocess.run([sys.executable, "-W", "error", "-W", given.group(1), "-c", code], capture_output=True, text=True)
    assert "went on" in done.stdout and "highly fragmented" in done.stderr, done
    assert done.returncode == 1 and "PerformanceWarning: another" in done.stderr, done


@pytest.mark.parametrize("exc", [AssertionError("x"), TypeError("f() takes 1 argument"), ZeroDivisionError("division")])
def test_a_real_internal_error_is_still_called_one(exc):
    assert classify(exc, "run") == (EXIT_FAILURE, None)


@pytest.mark.parametrize("exc,code,words", [
    (OSError(errno.ENOSPC, "No space left on device", "/data/run/x.csv"), 1, ["no space left", "/data/run", "free:"]),
    (PermissionError(errno.EACCES, "Permission denied", "/ro/out"), 1, ["permission denied", "/ro/out"]),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/out"), 1, ["read-only", "/mnt/ro/out"]),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/x/pred.h5ad"), 1, ["is a folder", "/x/pred.h5ad"]),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/x/file/out"), 1, ["a folder is needed", "/x/file/out"]),
    (FileExistsError(errno.EEXIST, "File exists", "/x/out"), 1, ["already exists", "/x/out"]),
    (MemoryError(), 1, ["out of memory", "train.sets_per_batch"]),
    (KeyError("unknown perturbation 'X'"), 1, ["unknown perturbation 'X'"]),
])
def test_known_errors_are_classified(exc, code, words):
    got, message = classify(exc, "train")
    assert got == code and message is not None
    for w in words:
        assert w in message


# ---------------------------------------------------------------------------------------------- bad files
def _h5ad_variants(tmp_path):
    good = tmp_path / "good.h5ad"
    obs = pd.DataFrame({"target_gene": ["non-targeting", "A"] * 5}, index=[f"c{i}" for i in range(10)])
    ad.AnnData(X=np.ones((10, 3), np.float32), obs=obs, var=pd.DataFrame(index=["g1", "g2", "g3"])).write_h5ad(good)
    data = good.read_bytes()
    (tmp_path / "truncated.h5ad").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.h5ad").write_bytes(b"this is not hdf5 at all\n")
    (tmp_path / "empty.h5ad").write_bytes(b"")
    with zipfile.ZipFile(tmp_path / "zipped.h5ad", "w") as z:
        z.writestr("x.h5ad", data)
    (tmp_path / "pickled.h5ad").write_bytes(pickle.dumps({"X": [1, 2, 3]}))
    (tmp_path / "folder.h5ad").mkdir()
    return good


BAD = {"truncated": "HDF5 file, but truncated", "garbage": "text file", "empty": "empty file", "zipped": "zip archive",
       "pickled": "Python pickle", "folder": "is a folder"}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_pred_file_for_evaluate(kind, tmp_path, capsys):
    good = _h5ad_variants(tmp_path)
    bad = tmp_path / f"{kind}.h5ad"
    code, err = run_cli(["evaluate", "--pred", str(bad), "--real", str(good), "--out", str(tmp_path / "e")], capsys)
    assert code == EXIT_FAILURE
    assert_short(err, str(bad), BAD[kind], "prediction file")
    if kind != "folder":
        assert "not a readable .h5ad" in err


@pytest.mark.parametrize("kind", ["truncated", "pickled", "folder"])
def test_bad_training_data_file(kind, tmp_path, capsys):
    _h5ad_variants(tmp_path)
    bad = tmp_path / f"{kind}.h5ad"
    code, err = run_cli(["train", "scdfm-small", "--out", str(tmp_path / "r"), f"data.dataset={bad}"], capsys)
    assert code in (EXIT_FAILURE, EXIT_USAGE)
    assert_short(err, str(bad), BAD[kind], "data.dataset")


def test_out_that_is_an_existing_file(tmp_path, capsys):
    good = _h5ad_variants(tmp_path)
    target = tmp_path / "taken"
    target.write_text("precious")
    code, err = run_cli(["evaluate", "--pred", str(good), "--real", str(good), "--out", str(target), "--no-plots"], capsys)
    assert code == EXIT_FAILURE
    assert_short(err, str(target))
    assert target.read_text() == "precious"


@pytest.mark.parametrize("out", ["/sys/distgen_cannot_create", "/sys/kernel"], ids=["uncreatable", "read-only"])
def test_unwritable_out(out, tmp_path, capsys):
    """/sys refuses writes even to root (permission bits alone would not stop a root test run)."""
    good = _h5ad_variants(tmp_path)
    code, err = run_cli(["evaluate", "--pred", str(good), "--real", str(good), "--out", out, "--no-plots", "--quiet"], capsys)
    assert code == EXIT_FAILURE
    assert_short(err, "permission denied", out)


def test_non_finite_samples_point_at_the_checkpoint():
    from distgen.dynamics.diffusion_samplers import NonFiniteSampleError
    from distgen.train.checkpoint import NonFiniteSamplesError, check_finite_samples

    code, message = classify(NonFiniteSampleError("ddim: 3 non-finite value(s) at solver step 4"), "predict")
    assert code == EXIT_FAILURE and "check its checkpoint" in message and "--checkpoint" in message
    check_finite_samples(np.ones((3, 2)), "A @ K562")
    with pytest.raises(NonFiniteSamplesError, match=re.escape("1 of 6 generated values are NaN or inf for A @ K562. Check checkpoint 'r/c'")):
        check_finite_samples(np.array([[1, np.nan], [1, 1], [2, 2]]), "A @ K562", "r/c")


_RAISES = "import warnings\ndef say(category):\n    warnings.warn('said', category)\n"


@pytest.mark.parametrize("package", ["distgenx", "distgen_myplugin", "distgen_tools"])
def test_a_package_whose_name_starts_with_distgen_is_not_distgen(package):
    """Any top-level module whose name started with ``distgen`` was taken for distgen's: a user's ``distgenx`` or a
    third-party plugin ``distgen_myplugin`` raising its own warning was called "raised by distgen's own code", and the
    user asked to report it to distgen. It is that package's code: not a bug in distgen."""
    library = _module(f"{package}.core", _RAISES)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning) as e:
            library["say"](UserWarning)
    _, message = classify(e.value, "run")
    assert message is not None and f"UserWarning from {package} ({package}.core, line 3): said" in message, message
    assert "distgen's own code" not in message and "not a bug in distgen" in message, message


def test_a_library_warning_about_a_third_party_plugins_call_is_the_plugins(monkeypatch):
    """A library's deprecation warning about how a third-party plugin (a package named by a distgen entry point) calls
    it, the plugin called from distgen: the nearest distgen frame was named and "distgen's call needs changing" said.
    It is the plugin's call: named, not a bug in distgen."""
    from distgen import warning_errors

    monkeypatch.setattr(warning_errors, "_plugin_packages", lambda: {"thirdparty_plugin"})
    library = _module("fakelib.api", _LIBRARY)
    plugin = _module("thirdparty_plugin.model", "def fit(old, category):\n    old(category)\n")
    caller = _module("distgen.train.fake", "def call(fit, old, category):\n    fit(old, category)\n")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FutureWarning) as e:
            caller["call"](plugin["fit"], library["old"], FutureWarning)
    _, message = classify(e.value, "run")
    assert message is not None and "FutureWarning from fakelib (fakelib.api, line 3)" in message, message
    assert "thirdparty_plugin (thirdparty_plugin.model, line 2)" in message, message
    assert "distgen's call needs changing" not in message and "not a bug in distgen" in message, message
    assert "distgen.train.fake" not in message, message


def test_the_bundled_bayes_plugins_own_warning_is_reported_to_distgen():
    """``distgen_bayes`` is a separate package shipped with distgen (``plugins/distgen-bayes``): its own warning is
    named as the bundled plugin's and a report asked for, as for distgen's own code."""
    plugin = _module("distgen_bayes.fake", _RAISES)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning) as e:
            plugin["say"](UserWarning)
    _, message = classify(e.value, "run")
    assert message is not None and "raised by the distgen-bayes plugin's own code (bundled with distgen)" in message, message
    assert "report it" in message and "not a bug in distgen" not in message, message


def test_a_library_warning_recorded_while_loading_names_the_library_and_distgens_call_when_made_an_error(tmp_path):
    """``Dataset.load`` records the warnings said while it reads the cells and replays them (``warn_explicit``). Under
    ``-W error`` the replay raised scanpy's warning (data.hvg on cells where one gene varies) at distgen's replay line:
    "RuntimeWarning from distgen (distgen.data.prepared, line N) ... raised by distgen's own code". It names scanpy's
    line and distgen's call of scanpy."""
    import warnings

    from distgen.data import bundled
    from distgen.data.prepared import Dataset

    adata = bundled.norman_k562()
    x = np.zeros(adata.shape, dtype=np.float32)
    x[:, 0], x[:, 1], x[:, 2] = np.linspace(0, 3, adata.n_obs), np.linspace(3, 0, adata.n_obs) ** 2, 1.0
    adata.X = x
    adata.write_h5ad(tmp_path / "flat.h5ad")
    section = {"dataset": str(tmp_path / "flat.h5ad"), "hvg": 3, "schema": bundled.NORMAN_SCHEMA.to_dict()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Warning) as e:
            Dataset.load(section)
    _, message = classify(e.value, "run")
    assert message is not None and "from scanpy (scanpy.preprocessing." in message, message
    assert "called from distgen (distgen.data.preprocess, line" in message, message
    assert "distgen.data.prepared" not in message and "distgen's own code" not in message, message
    with warnings.catch_warnings(record=True) as shown:  # without -W error: each printed once, where the library said it
        warnings.simplefilter("default")
        Dataset.load(section)
    said = [(w.category, w.filename) for w in shown if not issubclass(w.category, DeprecationWarning)]
    assert len(said) == len(set(said)) and said and all("scanpy" in f or "legacy_api_wrap" in f for _, f in said), said


def test_distgen_imports_under_warn_default_encoding_as_errors():
    """``python -X warn_default_encoding -W error -m distgen ...`` stopped at ``import distgen`` with a traceback (the
    cgroup CPU quota read with ``read_text()`` and no encoding: an ``EncodingWarning`` made an error before any
    command's error boundary). The import reads its files with an encoding."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-X", "warn_default_encoding", "-W", "error", "-c", "import distgen"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


_FROZEN = ("import warnings\n"
           "class FrozenWarning(UserWarning):\n"
           "    def __setattr__(self, name, value):\n"
           "        raise AttributeError('frozen')\n"
           "def say():\n"
           "    warnings.warn(FrozenWarning('said by a frozen class'))\n")


def test_a_warning_whose_class_refuses_attributes_is_recorded_and_named_where_it_was_said():
    """``recorded`` set an attribute on each warning while the library was saying it: a warning class that refuses
    attributes (a frozen ``__setattr__``) made the library's ``warnings.warn`` call raise ``AttributeError`` while
    distgen read the data (``catch_warnings(record=True)`` recorded it). It is recorded; made an error on replay, it
    names the library's line."""
    import warnings

    from distgen.warning_errors import recorded, replay

    library = _module("frozenlib.core", _FROZEN)
    with recorded() as said:
        library["say"]()
    assert [str(w.message) for w in said] == ["said by a frozen class"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning) as e:
            replay(said)
    _, message = classify(e.value, "run")
    assert message is not None and "from frozenlib (frozenlib.core, line 6): said by a frozen class" in message, message


def test_a_warning_replayed_then_raised_elsewhere_is_named_where_it_was_raised():
    """A library that says one warning instance again and again (kept at module level): recorded and replayed once
    (shown, not an error), then raised live by another library under ``-W error``. The frames kept from the recording
    stayed on the instance, and the message named where it was first said, not where it was raised."""
    import warnings

    from distgen.warning_errors import recorded, replay

    first = _module("firstlib.core", "import warnings\nSHARED = RuntimeWarning('one instance')\ndef say():\n"
                                     "    warnings.warn(SHARED)\n")
    second = _module("secondlib.core", "import warnings\n\n\ndef say(w):\n    warnings.warn(w)\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with recorded() as said:
            first["say"]()
        replay(said)
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning) as e:
            second["say"](first["SHARED"])
    _, message = classify(e.value, "run")
    assert message is not None and "from secondlib (secondlib.core, line 5): one instance" in message, message
    assert "firstlib" not in message, message


def _installed(site, dist, files, entry_points=""):
    """A distribution ``dist`` installed in ``site``: its ``files`` (path -> text) and its ``.dist-info`` (its top-level
    packages, and ``entry_points.txt`` when given)."""
    for path, text in files.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_text(text, encoding="utf-8")
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n\n", encoding="utf-8")
    tops = sorted({path.split("/")[0] for path in files})
    (info / "top_level.txt").write_text("".join(f"{top}\n" for top in tops), encoding="utf-8")
    if entry_points:
        (info / "entry_points.txt").write_text(entry_points, encoding="utf-8")


def test_a_library_an_entry_point_names_is_not_taken_for_a_plugin(tmp_path, monkeypatch):
    """A plugin distribution whose entry point names a module of a library it does not install (``namedlib.api:Thing``,
    as for ``numpy.linalg:norm``) made that library "a plugin": its warning about distgen's call was worded "raised by
    the plugin namedlib's own code, not distgen's: not a bug in distgen ... report it to namedlib's authors". A package
    counts as a plugin's where the plugin's distribution installs it; a real plugin is still named as one."""
    import warnings

    site = tmp_path / "site"
    site.mkdir()
    library_code = "import warnings\ndef old():\n    warnings.warn('old() is deprecated', UserWarning)\n"
    _installed(site, "namedlib", {"namedlib/__init__.py": "", "namedlib/api.py": library_code})
    _installed(site, "realplug", {"realplug/__init__.py": "", "realplug/model.py": library_code},
               "[distgen.models]\nreal = realplug.model:Model\n")
    _installed(site, "aliasplug", {"aliasplug/__init__.py": ""}, "[distgen.models]\nalias = namedlib.api:Thing\n")
    monkeypatch.syspath_prepend(str(site))
    library, plugin = _module("namedlib.api", library_code), _module("realplug.model", library_code)
    caller = _module("distgen.train.fake", "def call(old):\n    old()\n")
    messages = []
    for old in (library["old"], plugin["old"]):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(UserWarning) as e:
                caller["call"](old)
        messages.append(classify(e.value, "run")[1])
    assert messages[0] is not None and "raised by namedlib's code called from distgen (distgen.train.fake, line 2)" in messages[0], messages[0]
    assert "plugin" not in messages[0], messages[0]
    assert messages[1] is not None and "raised by the plugin realplug's own code" in messages[1], messages[1]


def test_a_recorded_warning_replayed_is_said_in_its_module_so_a_module_filter_applies():
    """``Dataset.load`` records the libraries' warnings and says them again: said again without its module, a filter
    naming the module (``-W ignore::EncodingWarning:numba.core.config``, numba's read of ``/proc/cpuinfo`` without an
    encoding when scanpy imports it) did not apply, and under ``-W error::EncodingWarning`` the command stopped."""
    import warnings

    from distgen.warning_errors import recorded, replay

    space = {"__name__": "fakelib.core"}
    exec(compile("import warnings\ndef read():\n    warnings.warn('no encoding', EncodingWarning)\n", "/opt/site-packages/fakelib/core.py",
                 "exec"), space)
    with recorded() as said:
        space["read"]()
    with warnings.catch_warnings():
        warnings.simplefilter("error", EncodingWarning)
        warnings.filterwarnings("ignore", category=EncodingWarning, module="fakelib.core")
        replay(said)  # let through, as said live
        warnings.filterwarnings("error", category=EncodingWarning, module="otherlib")
        replay(said)
        warnings.resetwarnings()
        warnings.simplefilter("error", EncodingWarning)
        with pytest.raises(EncodingWarning):
            replay(said)
