"""Every text file distgen writes is UTF-8, and every text file it reads is read as UTF-8, whatever the locale.

The locale-dependent cases run in a subprocess under ``LC_ALL=C`` without UTF-8 mode (``python -X utf8=0``): there
``open()`` without an encoding uses ASCII, as it uses cp1252 on a Windows machine or latin-1 under a latin-1 locale, so a
label such as ``IFN-γ`` or ``Zellen (ä)`` written or read in the locale's encoding fails (or is written in a form that
another machine reads as something else).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from distgen.config import ConfigError, load_yaml, save_yaml

ROOT = Path(__file__).resolve().parents[1]
LABEL = "IFN-γ in Zellen (ä)"


def ascii_locale_python(code: str | None, *args: str, flags: tuple[str, ...] = (), **env_extra: str) -> subprocess.CompletedProcess:
    """Run ``code`` (None: ``-m distgen``) in an interpreter whose locale encoding is ASCII (``LC_ALL=C``, UTF-8 mode
    off). ``LABEL`` in the code is the label as a literal (a non-ASCII command-line argument would reach the child as
    surrogates: its file-system encoding is ASCII too)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONUTF8", "PYTHONIOENCODING", "LANG"))}
    env.update(LC_ALL="C", PYTHONUTF8="0", PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", **env_extra)
    return subprocess.run([sys.executable, "-X", "utf8=0", *flags,
                           *(["-m", "distgen"] if code is None else ["-c", textwrap.dedent(code).replace("LABEL", ascii(LABEL))]), *args], env=env,
                          capture_output=True, text=True, encoding="utf-8", errors="replace", cwd=ROOT)


def test_the_subprocess_locale_is_not_utf8():
    """The other tests of this file probe something only if the child's default encoding is not UTF-8."""
    done = ascii_locale_python("import locale; print(locale.getpreferredencoding(False))")
    assert done.returncode == 0, done.stderr
    assert "utf" not in done.stdout.lower(), done.stdout


def test_an_atomically_written_text_file_is_utf8_under_an_ascii_locale(tmp_path):
    """``atomic_write_text`` (every run-folder CSV, markdown and JSON file) took the locale's encoding: a metrics table
    naming ``IFN-γ`` stopped ``distgen run`` with "'ascii' codec can't encode character"."""
    done = ascii_locale_python("""
        import sys
        from distgen.atomic import atomic_write_text
        atomic_write_text(sys.argv[1], LABEL)
        """, str(tmp_path / "m.csv"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m.csv").read_bytes() == LABEL.encode("utf-8")


def test_a_file_name_the_file_system_gave_as_bytes_is_written_as_those_bytes(tmp_path):
    """Under an ASCII locale a folder named ``dé`` (UTF-8 bytes on disk) reaches Python as ``d\\udcc3\\udca9``: every
    markdown or JSON file naming that path (``summary.md``, ``compare.md``) stopped the command with "surrogates not
    allowed". The name is written as the bytes the file system holds."""
    done = ascii_locale_python("""
        import os, sys
        from distgen.atomic import atomic_write_text
        name = os.fsdecode(b"/data/d\\xc3\\xa9/run")
        assert name != "/data/d\\xe9/run"  # the ASCII file-system encoding leaves the two bytes undecoded
        atomic_write_text(sys.argv[1], "run: " + name + "\\n")
        """, str(tmp_path / "summary.md"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "summary.md").read_bytes() == "run: /data/dé/run\n".encode()


def test_a_metrics_table_in_utf8_is_read_as_utf8_under_an_ascii_locale(tmp_path):
    """``read_table_csv`` (the report's, the sweep's and compare's reader of ``metrics.csv``) decoded with the locale's
    encoding: a table written on a UTF-8 machine was a ``UnicodeDecodeError`` (or, under latin-1, ``IFN-Î³``)."""
    (tmp_path / "metrics.csv").write_bytes(f"perturbation,mse\n{LABEL},0.5\n".encode())
    done = ascii_locale_python("""
        import sys
        from distgen.evaluation.report import read_table_csv
        sys.stdout.buffer.write(read_table_csv(sys.argv[1])[0]["perturbation"].encode("utf-8"))
        """, str(tmp_path / "metrics.csv"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == LABEL


def test_the_training_log_table_is_utf8_and_read_back_on_resume_under_an_ascii_locale(tmp_path):
    """``metrics.csv`` of training (``MetricsLog``: its own ``open`` for appends and rewrites, and its read on resume)."""
    done = ascii_locale_python("""
        import sys
        from pathlib import Path
        from distgen.train.logger import MetricsLog
        path = Path(sys.argv[1])
        log = MetricsLog(path, tensorboard=False)
        log.log(1, {LABEL: 1.5})
        log.log(2, {LABEL: 2.5})
        again = MetricsLog(path, resume_step=1, tensorboard=False)
        assert again.columns == ["step", LABEL], again.columns
        """, str(tmp_path / "metrics.csv"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "metrics.csv").read_bytes().decode("utf-8").splitlines()[0] == f"step,{LABEL}"


def test_a_sweep_runs_log_is_utf8_under_an_ascii_locale(tmp_path):
    """A sweep writes the command of each run at the top of its ``log.txt`` (the sweep's own ``open``): a config or an
    override holding ``IFN-γ`` stopped the sweep before the run started. The run's own output, sent to that file, was in
    the locale's encoding: the run is told to print UTF-8."""
    done = ascii_locale_python("""
        import sys
        from pathlib import Path
        from distgen.pipeline import sweep
        class Run:
            overrides = ["data.split.test_conditions=[" + LABEL + "]"]
        class Stop:
            def popen(self, cmd, **kwargs):
                print(kwargs["env"]["PYTHONIOENCODING"])
                return None
        sweep._STOP = Stop()
        sweep.subprocess_runner(sys.argv[1] + "/cfg.yaml", Run(), Path(sys.argv[1]) / "run")
        """, str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert LABEL in (tmp_path / "run" / "log.txt").read_bytes().decode("utf-8")
    assert done.stdout.split() == ["utf-8:backslashreplace"]  # the run prints into that file in UTF-8


def test_a_yaml_config_in_utf8_round_trips_under_an_ascii_locale(tmp_path):
    """``save_yaml`` (``experiment.yaml``, a sweep's ``sweep.yaml``) and ``load_yaml`` under the ASCII locale: the value
    comes back as written, and the file is UTF-8 (or ASCII, a part of it)."""
    done = ascii_locale_python("""
        import sys
        from distgen.config import load_yaml, save_yaml
        save_yaml({"data": {"split": {"test_conditions": [LABEL]}}}, sys.argv[1])
        assert load_yaml(sys.argv[1]) == {"data": {"split": {"test_conditions": [LABEL]}}}
        """, str(tmp_path / "c.yaml"))
    assert done.returncode == 0, done.stderr
    assert load_yaml(tmp_path / "c.yaml") == {"data": {"split": {"test_conditions": [LABEL]}}}


def test_a_config_that_is_not_utf8_names_the_byte_offset_and_the_fix(tmp_path):
    """A config saved in latin-1 (``ä`` as the byte 0xe4, the 34th of its line) said it was not UTF-8 without saying where: the message names
    the offset and line of the first byte that is not UTF-8, and how to save the file as UTF-8."""
    path = tmp_path / "c.yaml"
    raw = "# Zellen\ndata: {dataset: norman_k562}  # Zähler\n".encode("latin-1")
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as e:
        load_yaml(path)
    said = str(e.value)
    assert f"byte {raw.index(0xe4)} (0xe4, line 2, column 34)" in said, said
    assert "UTF-8" in said and "save it as UTF-8" in said, said


def test_a_gene_list_that_is_not_utf8_names_the_byte_and_the_fix(tmp_path):
    """``distgen predict --genes FILE`` with a file saved in latin-1 was a ``UnicodeDecodeError`` (an internal error)."""
    from distgen.pipeline.predict import gene_panel

    path = tmp_path / "genes.txt"
    path.write_bytes("CD4\nIFN-\xe4\n".encode("latin-1"))
    with pytest.raises(ConfigError) as e:
        gene_panel(None, [], str(path))  # type: ignore[arg-type]  # the file is refused before the data is read
    assert "is not UTF-8 text: byte 8 (0xe4, line 2, column 5) is not UTF-8; save it as UTF-8" in str(e.value), e.value


def test_a_utf8_config_with_a_byte_order_mark_and_non_ascii_comments_is_read(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes("\ufeff# für IFN-γ\ndata: {dataset: norman_k562, split: {test_conditions: [IFN-γ]}}\n".encode())
    assert load_yaml(path)["data"]["split"]["test_conditions"] == ["IFN-γ"]


_WRITERS_AND_READERS = {"open", "read_text", "write_text"}


def _calls_without_an_encoding(path: Path) -> list[str]:
    """``open(...)``, ``X.open(...)``, ``X.read_text()`` and ``X.write_text(...)`` calls in text mode that pass no
    ``encoding``, and ``subprocess`` calls with ``text=True`` and no ``encoding``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        keywords = {k.arg for k in node.keywords}
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name in ("run", "Popen", "check_output") and any(k.arg == "text" for k in node.keywords):
            if "encoding" not in keywords:
                found.append(f"{path}:{node.lineno}")
            continue
        if name not in _WRITERS_AND_READERS or "encoding" in keywords:
            continue
        if name == "read_text" and node.args:
            continue  # Path.read_text's one argument is the encoding; importlib.metadata's read_text(file) is UTF-8
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("os", "Image", "h5py"):
            continue  # os.open takes flags, PIL reads images
        if name == "open":
            where = 1 if isinstance(func, ast.Name) else 0
            mode = node.args[where] if len(node.args) > where else next((k.value for k in node.keywords if k.arg == "mode"), None)
            if isinstance(mode, ast.Constant) and isinstance(mode.value, str) and "b" in mode.value:
                continue
        found.append(f"{path}:{node.lineno}")
    return found


def test_every_text_read_and_write_of_distgen_and_its_plugins_names_its_encoding():
    """Under ``python -X warn_default_encoding -W error`` each of these stopped the command; under a locale that is not
    UTF-8 each read or wrote in that locale's encoding."""
    files = sorted([*(ROOT / "distgen").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")])
    files = [f for f in files if "tests" not in f.relative_to(ROOT).parts]
    found = [where for f in files for where in _calls_without_an_encoding(f)]
    assert found == []


#: Modules of libraries distgen imports that read a file without an encoding when imported (numba: ``/proc/cpuinfo``; matplotlib: its font cache).
LIBRARIES_WITHOUT_AN_ENCODING = ("numba.core.config", "matplotlib.font_manager")


@pytest.mark.slow
def test_distgen_run_completes_under_warn_default_encoding_as_errors_with_non_ascii_labels(tmp_path):
    """``python -X warn_default_encoding -W error::EncodingWarning -m distgen run`` of a tiny config on data whose
    perturbations and context hold non-ASCII letters, under the ASCII locale; its tables hold the labels in UTF-8. The
    console is UTF-8 (``PYTHONIOENCODING``): on an ASCII console pandas' import asks ``locale.getpreferredencoding()``,
    itself an ``EncodingWarning`` of pandas' code, not of a file distgen reads or writes; the libraries' own reads
    (``LIBRARIES_WITHOUT_AN_ENCODING``) are let through, every other one is an error."""
    import anndata as ad

    from distgen.datasets import norman_k562

    data = norman_k562()
    data.obs["condition"] = data.obs["condition"].astype(str).str.replace("KLF1", "IFN-γ")
    data.obs["cell_type"] = "Zellen (ä)"
    ad.AnnData(data.X, obs=data.obs[["condition", "cell_type"]], var=data.var[[]]).write_h5ad(tmp_path / "d.h5ad")
    cfg = save_yaml({"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8},
                               "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                               "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}}},
                     "data": {"dataset": str(tmp_path / "d.h5ad"), "hvg": 32, "set_size": 4,
                              "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}},
                     "train": {"steps": 2, "sets_per_batch": 2, "progress": False}}, tmp_path / "t.yaml")
    done = ascii_locale_python(None, "run", str(cfg), "--out",
                               str(tmp_path / "run"), "--metrics", "mse", "--no-plots", "--no-progress",
                               flags=("-X", "warn_default_encoding", "-W", "error::EncodingWarning",
                                      *(f"-Wignore::EncodingWarning:{m}" for m in LIBRARIES_WITHOUT_AN_ENCODING)),
                               PYTHONIOENCODING="utf-8")
    assert done.returncode == 0, done.stderr[-3000:]
    table = (tmp_path / "run" / "eval" / "metrics.csv").read_bytes().decode("utf-8")
    assert "IFN-γ+MAP2K6" in table, table
    texts = [p for p in (tmp_path / "run").rglob("*") if p.suffix in (".csv", ".json", ".md", ".html", ".yaml", ".txt")]
    assert len(texts) > 8 and all(p.read_bytes().decode("utf-8") for p in texts)

