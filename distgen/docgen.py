"""Generate ``docs/components.md`` from the registries, so the component reference cannot drift.

``python -m distgen.docgen docs/components.md`` rewrites it; a test fails when the committed file
differs from what the installed code generates. Each kind gets its interface, its entry-point
group, the fields of its capabilities (with their documentation) and every built-in component
with its capabilities and config parameters.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from distgen.capabilities import resolve
from distgen.config import INJECTED, preset_names, signature_schema
from distgen.registry import KINDS, all_registries

HEADER = """# Component reference

Generated from the registries by `python -m distgen.docgen docs/components.md`; do not edit by hand
(a test checks that this file matches the code). Only distgen's own components are listed; run
`distgen components` to see installed plugins too. Parameters filled in from the data at assembly
(`info`, `n_genes`, `cond_dim`, ...) are not shown: they are not part of a config. A parameter whose
type names a component interface (`ODESolver | str | Mapping`) takes a nested node of that kind, or a
bare name as shorthand for the node with its defaults. A capability marked *per instance* is decided
by the parameters the component is built with (the built object carries the resolved value).
"""


def _default(v: object) -> str:
    if v is inspect.Parameter.empty:
        return "*required*"
    return f"`{v!r}`"


def _type(h: object) -> str:
    name = getattr(h, "__name__", None) or str(h).replace("typing.", "")
    name = name.replace("collections.abc.", "").replace("distgen.", "").replace("NoneType", "None")
    return name.replace("|", "\\|")


def _capability_fields(base: type) -> list[str]:
    fields = resolve(base).fields_doc()
    if not fields:
        return [f"Capabilities: `{type(resolve(base)).__name__}` (no fields: nothing else reads them).\n"]
    out = [f"Capabilities: `{type(resolve(base)).__name__}`.\n", "| capability | type | meaning |", "|---|---|---|"]
    out += [f"| `{n}` | {t.replace('|', chr(92) + '|')} | {d} |" for n, t, d in fields]
    return out + [""]


def render() -> str:
    """The markdown text of the component reference."""
    regs = all_registries()
    out = [HEADER]
    for kind in KINDS:
        reg = regs[kind]
        infos = [i for i in reg.infos() if i.provider == "distgen"]
        out.append(f"## {kind}\n")
        out.append(f"Interface `{reg.base.__module__}.{reg.base.__qualname__}`; entry-point group `{reg.group}`.\n")
        out += _capability_fields(reg.base)
        for info in infos:
            cls = reg.get(info.name)
            out.append(f"### `{info.name}`\n")
            out.append(f"{info.summary}\n")
            line = f"Class `{cls.__module__}.{cls.__qualname__}`."
            caps = info.capabilities.describe()
            if caps:
                line += " Capabilities: " + ", ".join(f"`{k}={v!r}`" if v != "per instance" else f"`{k}` per instance" for k, v in caps.items()) + "."
            out.append(line + "\n")
            params = [(k, t, d) for k, (t, d) in signature_schema(cls).items() if k not in INJECTED]
            if params:
                out.append("| parameter | type | default |\n|---|---|---|")
                out += [f"| `{k}` | {_type(t)} | {_default(d)} |" for k, t, d in params]
                out.append("")
    out.append("## presets\n")
    out.append("Whole config documents in `distgen/models/presets/`: " + ", ".join(f"`{p}`" for p in preset_names()) + ".\n")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m distgen.docgen", description="Write the component reference (docs/components.md) "
                                     "generated from the registries; without OUT, print it.")
    parser.add_argument("out", nargs="?", help="file to write, e.g. docs/components.md")
    args = parser.parse_args(argv)
    text = render()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
