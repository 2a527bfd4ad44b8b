"""The run manifest: what produced a run (versions, plugins, git commit, data, seed, hardware)."""

from __future__ import annotations

import datetime as _dt
import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from distgen.atomic import atomic_write_text
from distgen.train.device import hardware


def git_commit(path: str | Path) -> str | None:
    """The commit of the git work tree containing ``path`` (``+dirty`` when modified), or None."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, encoding="utf-8",
                              errors="replace", timeout=5, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path, capture_output=True,
                               text=True, encoding="utf-8", errors="replace", timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def plugin_versions() -> dict[str, str]:
    """``{distribution: version}`` of every installed package that provides distgen entry points: of a distribution found
    twice on ``sys.path``, the first, whose components the registries load (``registry.plugin_distributions``)."""
    from distgen.registry import plugin_distributions

    return dict(sorted(plugin_distributions().items()))


def plugin_changes(manifest: Mapping[str, Any] | None) -> str:
    """A sentence naming each plugin whose version recorded at training (``versions.plugins``) is not the one installed
    now, or '' when none changed: a run built from a plugin's component that was uninstalled, or whose next version
    renamed a parameter, fails to load with a message about the component alone."""
    versions = (manifest or {}).get("versions")
    recorded = versions.get("plugins") if isinstance(versions, Mapping) else None
    if not isinstance(recorded, Mapping):
        return ""
    now = {_project(name): version for name, version in plugin_versions().items()}
    changed = {str(name): str(version) for name, version in recorded.items() if now.get(_project(str(name))) != str(version)}
    if not changed:
        return ""
    said = ", ".join(f"{name} {version} ({f'{now[_project(name)]} installed now' if _project(name) in now else 'not installed now'})"
                     for name, version in changed.items())
    pins = " ".join(f"'{name}=={version}'" for name, version in changed.items())
    return (f"The run was trained with plugin(s) {said}, as its manifest.json records: if the component above is one of "
            f"theirs, install the version(s) it was trained with (pip install {pins}) to load it.")


def _project(name: str) -> str:
    """A distribution's name as pip compares it (``Fake_Lap``, ``fake.lap`` and ``fake-lap`` are one project)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def build_manifest(seed: int, data: dict[str, Any] | None = None, world_size: int = 1, device: str = "cpu") -> dict[str, Any]:
    """The manifest dictionary (JSON-ready)."""
    import distgen

    return {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": {"distgen": distgen.__version__, "torch": torch.__version__, "plugins": plugin_versions()},
        "git_commit": {"cwd": git_commit(Path.cwd()), "distgen": git_commit(Path(distgen.__file__).parent)},
        "seed": seed,
        "data": data or {},
        "world_size": world_size,
        "device": device,
        "hardware": hardware(),
    }


#: The manifest key of what a run warned (``distgen.warned``): every ``UserWarning`` its training showed, each once.
WARNINGS_KEY = "warnings"


def add_warnings(path: str | Path, warned: Sequence[str]) -> None:
    """Add the messages ``warned`` to the ``warnings`` list of manifest ``path`` (each once, in the order first shown).

    A resumed run adds its session's warnings to the run's list. Nothing is written when there is nothing new.
    """
    path = Path(path)
    manifest = json.loads(path.read_text(encoding="utf-8"))
    known = list(manifest.get(WARNINGS_KEY) or [])
    new = [w for w in dict.fromkeys(warned) if w not in known]
    if not new:
        return
    manifest[WARNINGS_KEY] = [*known, *new]
    atomic_write_text(path, json.dumps(manifest, indent=1, default=str))


def run_notes(manifest: Mapping[str, Any] | None) -> list[str]:
    """What a run's manifest says a reader of its results should know, each once: the pre-flight notes, what loading
    its data warned (``data: ...``, as ``Dataset.notes`` words it) and the warnings its training showed."""
    if not manifest:
        return []
    data = manifest.get("data") or {}
    notes = [*(manifest.get("preflight") or []), *(f"data: {w}" for w in (data.get("warnings") or [])),
             *(manifest.get(WARNINGS_KEY) or [])]
    return list(dict.fromkeys(str(n) for n in notes))


def read_manifest(path: str | Path) -> dict[str, Any]:
    """A run's ``manifest.json`` as a mapping; ``CheckpointError`` (exit 1) naming the file when it is not a JSON object.

    A damaged manifest ended ``distgen predict`` and ``--resume`` in "error: Expecting property name enclosed in double
    quotes: line 1 column 2" (which file?) and a list there in an internal error (``'list' object has no attribute 'get'``).
    """
    from distgen.train.checkpoint import CheckpointError

    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        manifest = exc
    if not isinstance(manifest, dict):
        what = f"not JSON: {manifest}" if isinstance(manifest, Exception) else f"a JSON {type(manifest).__name__}, not an object"
        raise CheckpointError(f"{path} is damaged ({what}); it records the data hash, versions and resumes of the run: restore "
                              "it from a copy of the run, or train the run again")
    return manifest


def recorded_data_hash(run_dir: str | Path) -> str | None:
    """The content hash of the data ``run_dir`` was trained on (its ``manifest.json``; None without one, or without a hash)."""
    manifest = Path(run_dir) / "manifest.json"
    want = (read_manifest(manifest).get("data") or {}).get("data_hash") if manifest.is_file() else None
    return str(want) if want else None


def check_same_data(run_dir: str | Path, data_hash: str, dataset: str, doing: str) -> bool:
    """Refuse to ``doing`` (``"predict"``, ``"resume"``) a run on data other than the data it was trained on.

    ``data_hash`` is the content hash of the data now loaded (``PerturbationData.hash``: cells, labels and
    values); the run's is in its ``manifest.json`` (no manifest: nothing to compare). True when the run records a hash
    and it is ``data_hash`` (the data is the run's whatever path it was read from), False when nothing was compared.
    """
    want = recorded_data_hash(run_dir)
    if want and want != data_hash:
        raise ValueError(
            f"the data of {dataset!r} changed since this run was trained (hash {data_hash} != {want}): cannot {doing} it on other "
            f"data (a changed file, gene order, filter or preprocessing); {doing} with the training data, or train a new run"
            + (". To predict another file's cells with this run, leave its data: section as trained and give the file as "
               "distgen predict RUN --data FILE --out OUT (or from Python: run = distgen.load_run(RUN), then "
               "distgen.data.streaming.predict_to_disk(run.model, FILE, OUT, schema=run.data.data.schema) or "
               "run.data.data.encode(adata); docs/your_data.md, section 7)" if doing == "predict" else "")
        )
    return bool(want)
