"""Every option of ``distgen train``, ``predict``, ``evaluate``, ``run`` and ``sweep`` is exercised by some behaviour test
(ablation-settings round, 2026-12-07): an option accepted and dropped on some path is what such a test finds, and a new
option without one fails here. Generated from the argparse parsers; the check is textual (a test file outside
``test_cli_consistency.py``, which only checks help and exit codes, that names both the command and the option, each as
a quoted string), so ``UNTESTED`` lists with a reason any option that no such file names."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from distgen.cli import build_parser

COMMANDS = ("train", "predict", "evaluate", "run", "sweep")
TESTS = Path(__file__).parent
SUB = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))

#: (command, option) -> why no behaviour test names it with this command.
UNTESTED: dict[tuple[str, str], str] = {
    ("sweep", "--debug"): "added to every command by distgen.cli.build_parser and read by distgen.cli.main alone "
                          "(tests/test_error_boundary.py names it with other commands)",
}


def long_options(command: str) -> list[str]:
    return [o for a in SUB.choices[command]._actions for o in a.option_strings if o.startswith("--") and o != "--help"]


CASES = [(c, o) for c in COMMANDS for o in long_options(c)]
_TEXTS: dict[Path, str] = {}


def test_files() -> dict[Path, str]:
    if not _TEXTS:
        _TEXTS.update({p: p.read_text(errors="replace") for p in TESTS.rglob("*.py")
                       if p.name not in ("test_cli_consistency.py", Path(__file__).name)})
    return _TEXTS


test_files.__test__ = False  # type: ignore[attr-defined]  # (a helper, not a test)


@pytest.mark.parametrize("command, option", CASES, ids=[f"{c} {o}" for c, o in CASES])
def test_every_cli_option_is_exercised_by_a_behaviour_test(command: str, option: str) -> None:
    hits = [p for p, text in test_files().items() if f'"{option}"' in text and f'"{command}"' in text]
    if (command, option) in UNTESTED:
        assert not hits, f"distgen {command} {option} is tested now ({hits[0]}): remove it from UNTESTED"
        return
    assert hits, (f"distgen {command} {option}: no test file names both {command!r} and {option!r}; add a test that the "
                  "option changes what the command does (on each path it applies to: in memory and --data, the CLI and "
                  "the Python API), or list it in UNTESTED with the reason")
