"""The commands and names the docs give exist as written.

* every ``distgen ...`` line of a code block (also under ``torchrun ... -m distgen``) parses with the CLI's
  own parser, options, positionals and all;
* every ``--flag`` of an inline ``distgen COMMAND ...`` span is an option of that command;
* every dotted ``distgen.x.y`` name in backticks imports (a module, or an attribute of one);
* every ``name:`` of a YAML block and every ``...name=VALUE`` override names a registered component;
* (slow) every ``--flag`` of a ``python -m MODULE`` / ``python benchmarks/SCRIPT.py`` command is in
  that program's ``--help``.

A page can show a command that must fail on purpose; such lines are listed in ``FAILS_ON_PURPOSE``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
#: Backticked ``distgen.<group>`` names that are entry-point groups (``distgen.encoders``), not modules,
#: and the misspelt groups that extending.md and reliability.md name as the typos they are.
NOT_MODULES = {"distgen.encoder", "distgen.kernel", "distgen.metric"}
FAILS_ON_PURPOSE: set[str] = set()


def _blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w*)\n(.*?)```", text, re.S)]


def _inline(text: str) -> list[str]:
    return re.findall(r"(?<!`)`([^`\n]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))


def _lines(body: str) -> list[str]:
    """Commands of a shell block: continuation lines joined, comments cut."""
    out = []
    for line in body.replace("\\\n", " ").splitlines():
        line = re.split(r"\s#\s|^#", line, maxsplit=1)[0].strip()
        if line:
            out.append(line)
    return out


def doc_commands() -> list[tuple[str, str]]:
    cmds = []
    for page in PAGES:
        for lang, body in _blocks(page.read_text()):
            if lang not in ("", "bash", "sh", "console", "shell"):
                continue
            for line in _lines(body):
                line = re.sub(r"^(?:\S+=\S+\s+)*", "", line)  # VAR=value prefixes
                line = re.sub(r"^(?:torchrun|python -m torch\.distributed\.run)\b.*?-m distgen\s", "distgen ", line)
                line = re.sub(r"^python3? -m distgen\s", "distgen ", line)
                if line.startswith("distgen ") and line not in FAILS_ON_PURPOSE:
                    cmds.append((page.name, line))
    return cmds


def _parse(argv: list[str]) -> str:
    """'' when ``distgen ARGV`` parses, else argparse's message."""
    from distgen.cli import build_parser, parse

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parse(build_parser(), argv)
    except SystemExit as exc:
        if exc.code:
            return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {exc.code}"
    return ""


def test_the_docs_have_commands_to_check():
    pages = {p for p, _ in doc_commands()}
    assert {"index.md", "training.md", "your_data.md", "README.md"} <= pages, pages


@pytest.mark.parametrize("page,command", doc_commands(), ids=lambda v: v if len(v) < 60 else v[:57] + "...")
def test_every_distgen_command_of_a_code_block_parses(page, command):
    problem = _parse(shlex.split(command)[1:])
    assert not problem, f"docs/{page}: `{command}`: {problem}"


def test_every_flag_of_an_inline_distgen_command_exists():
    from distgen.cli import _subparsers, build_parser

    commands = _subparsers(build_parser())
    bad = []
    for page in PAGES:
        for span in _inline(page.read_text()):
            words = span.split()
            if len(words) < 2 or words[0] != "distgen" or words[1] not in commands:
                continue
            known = commands[words[1]]._option_string_actions
            for word in words[2:]:
                flag = word.strip("[]").split("=")[0]
                if flag.startswith("--") and flag not in known:
                    bad.append(f"{page.name}: `{span}`: {flag}")
    assert not bad, "\n".join(bad)


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for part in parts[i:]:
                obj = getattr(obj, part)
        except AttributeError:
            return False
        return True
    return False


def test_every_dotted_distgen_name_resolves():
    from distgen.registry import all_registries

    groups = {f"distgen.{kind}" for kind in all_registries()}
    bad = []
    for page in PAGES:
        for span in _inline(page.read_text()):
            name = re.sub(r"\(.*$", "", span.split()[0]) if span.split() else ""
            if not re.fullmatch(r"distgen(\.\w+)+", name) or name in groups | NOT_MODULES:
                continue
            if not _resolves(name):
                bad.append(f"{page.name}: `{span}`")
    assert not bad, "names that do not import:\n" + "\n".join(bad)


def test_every_component_name_in_yaml_blocks_and_overrides_is_registered():
    from distgen.config import preset_names
    from distgen.registry import all_registries

    names = set().union(*(set(r.names()) for r in all_registries().values())) | set(preset_names())
    bad = []
    for page in PAGES:
        text = page.read_text()
        for lang, body in _blocks(text):
            if lang == "yaml":
                body = re.sub(r"\s#.*", "", body)  # comments
                bad += [f"{page.name}: name: {n}" for n in re.findall(r"\bname: ([\w-]+)", body) if n not in names]
        bad += [f"{page.name}: .name={n}" for n in re.findall(r"\.name=([\w-]+)", text) if n not in names]
        bad += [f"{page.name}: --kind {k}" for k in re.findall(r"--kind ([\w-]+)", text) if k not in all_registries()]
    assert not bad, "\n".join(bad)


def _programs() -> dict[tuple[str, ...], set[str]]:
    """Each ``python -m M`` / ``python benchmarks/S.py`` program of the docs -> the flags the docs give it."""
    out: dict[tuple[str, ...], set[str]] = {}
    spans = []
    for page in PAGES:
        text = page.read_text()
        spans += [ln for lang, body in _blocks(text) if lang in ("", "bash", "sh") for ln in _lines(body)]
        spans += _inline(text)
    for span in spans:
        m = re.search(r"python3? (-m (?:distgen\.[\w.]+|benchmarks[\w.]*)(?: run(?=\s|$))?|benchmarks/\w+\.py)((?:\s+\S+)*)", span)
        if not m:
            continue
        prog = tuple(m.group(1).split())
        if prog[-1] == "benchmarks":  # python -m benchmarks without a subcommand
            continue
        flags = {w.split("=")[0] for w in m.group(2).split() if re.fullmatch(r"--[\w-]+(=.*)?", w)}
        out.setdefault(prog, set()).update(flags)
    return out


@pytest.mark.slow
def test_every_flag_of_a_python_program_in_the_docs_is_in_its_help():
    bad = []
    for prog, flags in sorted(_programs().items()):
        if not flags:
            continue
        argv = [sys.executable, *(prog if prog[0] == "-m" else [str(ROOT / prog[0])]), "--help"]
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            bad.append(f"{' '.join(prog)} --help: exit {proc.returncode}: {proc.stderr[-300:]}")
            continue
        bad += [f"{' '.join(prog)}: {f}" for f in sorted(flags) if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", proc.stdout)]
    assert not bad, "\n".join(bad)


def test_training_md_lists_every_train_and_data_key_with_its_default():
    """The run-config listing of docs/training.md is the whole ``train:`` and ``data:`` schema, with the code's defaults."""
    import dataclasses

    import yaml

    from distgen.data.section import DataSection
    from distgen.train.options import TrainOptions

    text = (ROOT / "docs" / "training.md").read_text()
    listing = next(body for lang, body in _blocks(text) if lang == "yaml" and "\ntrain:" in body)
    doc = yaml.safe_load(re.sub(r"^model: .*$", "", listing, flags=re.M))
    examples = {"data": {"schema", "split"}}  # shown with an example value, not the default (None)
    for section, cls in (("train", TrainOptions), ("data", DataSection)):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        assert set(doc[section]) == set(fields), f"training.md {section}: missing {set(fields) - set(doc[section])}, unknown {set(doc[section]) - set(fields)}"
        for key, value in doc[section].items():
            if key in examples.get(section, ()):
                continue
            f = fields[key]
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
            default = list(default) if isinstance(default, tuple) else default
            assert value == default, f"training.md: {section}.{key}: {value!r}, the code's default is {default!r}"


#: Paths the docs name as files to create, not files that exist.
NEW_FILES = {"distgen/encoders/max_pool.py"}


def test_every_repository_path_and_test_the_docs_name_exists():
    """``tests/x.py::test_y``, ``distgen/...``, ``benchmarks/...``, ``recipes/...``: the file (and test) is there."""
    bad = []
    top = r"(?:tests|distgen|benchmarks|recipes|examples|plugins|docs|scripts|constraints)"
    for page in PAGES:
        for m in re.finditer(rf"(?<![\w/.-])({top}/[\w./{{}},-]*\w}}?)(?:::(\w+))?", page.read_text()):
            path, test = m.group(1), m.group(2)
            brace = re.search(r"\{([^}]*)\}", path)
            paths = [path[: brace.start()] + alt + path[brace.end():] for alt in brace.group(1).split(",")] if brace else [path]
            for p in paths:
                if p in NEW_FILES or "*" in p:
                    continue
                if not (ROOT / p).exists():
                    bad.append(f"{page.name}: {p} does not exist")
                elif test and not re.search(rf"def {test}\b", (ROOT / p).read_text()):
                    bad.append(f"{page.name}: {p} has no {test}")
    assert not bad, "\n".join(bad)
