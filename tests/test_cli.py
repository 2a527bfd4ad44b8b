"""The `distgen` command: listing, JSON output, exit codes."""

import json
import subprocess
import sys

from distgen.cli import EXIT_USAGE, main


def test_components_json_lists_builtins_and_plugin(capsys):
    assert main(["components", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {(r["kind"], r["name"]): r for r in rows}
    assert ("encoders", "mean") in by_name and ("models", "generator") in by_name
    for r in rows:
        assert set(r) >= {"kind", "name", "provider", "version", "summary", "capabilities"}
    plugin = by_name.get(("encoders", "sliced_wasserstein"))
    assert plugin is not None, "install plugins/distgen-example (scripts/setup.sh does)"
    assert plugin["provider"] == "distgen-example"


def test_components_kind_filter(capsys):
    assert main(["components", "--kind", "kernels"]) == 0
    out = capsys.readouterr().out
    assert "rbf" in out and "generator" not in out


def test_no_command_prints_help_and_usage_code(capsys):
    assert main([]) == EXIT_USAGE
    assert "COMMAND" in capsys.readouterr().out


def test_console_script_and_module_entry():
    out = subprocess.run([sys.executable, "-m", "distgen", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("distgen ")
