"""The files of a run folder besides its checkpoints: ``config.yaml``, ``manifest.json``, ``split.json``, ``info.json``, the
data record and the embedding-table record (what ``distgen.load_run`` and ``distgen predict`` read back).

``distgen train`` (``distgen.train.run``) and ``distgen.fit(..., run_dir=)`` for a model ``distgen.build`` made
(``distgen.train.loop``) write them through ``write_run_files``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from distgen.conditioners import table_record
from distgen.conditioners.table_record import TableRecord
from distgen.config import resolve_node, save_yaml
from distgen.data.prepared import Dataset
from distgen.data.record import DataRecord
from distgen.train.checkpoint import config_diff
from distgen.train.manifest import build_manifest, check_same_data, read_manifest
from distgen.train.options import TrainOptions
from distgen.train.state_io import atomic_write_text
from distgen.train.trainer import TrainResult


def resolved_model(node: Mapping[str, Any]) -> dict[str, Any]:
    """The ``model:`` node a run folder's config.yaml keeps: resolved against the registry (defaults written out), or as
    given when it does not resolve (building the model reports the problem; ``distgen train`` and ``fit`` alike)."""
    try:
        return resolve_node("models", node)
    except (TypeError, ValueError, KeyError):
        return dict(node)


def run_folder_of(path: Path) -> Path:
    """The run folder of a resume source: the folder itself, or the run folder of a checkpoint in its ``checkpoints/``
    (a checkpoint folder kept anywhere else is its own folder: no run's records are next to it)."""
    if not (path / "checkpoints").is_dir() and path.parent.name == "checkpoints":
        return path.parent.parent
    return path


def resumed_on_same_data(out: Path | None, source: Path, data_hash: str, dataset: str) -> bool:
    """Refuse a resume from ``source`` (a checkpoint or run folder) into ``out`` on data other than the run's (``ValueError``,
    ``check_same_data``: each folder's recorded hash); True when a recorded hash matched ``data_hash``, so the data is the
    run's wherever ``dataset`` now names it (``checkpoint.same_data_at``: a moved file). ``distgen train --resume`` and
    ``distgen.fit(..., resume=)`` both read it (the recorded hash, not the data's path, decides)."""
    checked = False
    for folder in dict.fromkeys(f for f in (out, run_folder_of(source)) if f is not None):
        checked = check_same_data(folder, data_hash, dataset, "resume") or checked
    return checked


def resume_record(source: Path, state: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """What a resume continues (the manifest's ``resumes`` entry): the checkpoint, its step, and the settings changed since
    (only keys that may change, e.g. ``train.steps: 400 -> 500``; any other change was refused)."""
    trained = state.get("config")
    changed = config_diff(trained, config) if isinstance(trained, Mapping) else []
    return {"checkpoint": str(source), "step": state.get("step"), "changed": changed}


def write_run_files(
    out: Path, resolved: dict[str, Any], dataset: Dataset, opts: TrainOptions, world_size: int, device: str,
    resumed: Mapping[str, Any] | bool | None = None, notes: Sequence[str] = (), tables: Sequence[TableRecord] = (),
    preset: str | None = None,
) -> None:
    """config.yaml, manifest.json, split.json, info.json, the data record (``DataRecord``) and the record of the embedding
    tables the model read (``tables``, ``distgen.conditioners.table_record``) (rank 0).

    ``resumed`` is the record of a resume (``resume_record``): appended to the manifest's ``resumes``, or, in a
    new folder continuing another run's checkpoint, kept as its ``resumed_from``. ``preset``: the preset the config derives
    from, kept as the manifest's ``preset`` (the report compares the run's config with it).
    """
    out.mkdir(parents=True, exist_ok=True)
    save_yaml(resolved, out / "config.yaml")
    manifest = build_manifest(opts.seed, dataset.hashes(), world_size, device)
    manifest["tensorboard"] = "tensorboard/" if _has_tensorboard() else "off: the 'tensorboard' package is not installed"
    if notes:
        manifest["preflight"] = list(notes)
    if preset is not None:
        manifest["preset"] = preset
    record = dict(resumed) if isinstance(resumed, Mapping) else {}
    if resumed and (out / "manifest.json").exists():
        first = read_manifest(out / "manifest.json")
        manifest = {**first, "resumes": [*first.get("resumes", []), {**manifest, **record}]}
    elif record:
        manifest["resumed_from"] = record
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1, default=str))
    dataset.split.save(out / "split.json")
    atomic_write_text(out / "info.json", json.dumps(dataset.info.to_dict()))
    DataRecord.from_dataset(dataset, opts.seed).save(out)  # what predicting another file needs of the training file
    table_record.save(out, tables)  # what loading the run needs of its table files (their vectors are in the checkpoint)


def _has_tensorboard() -> bool:
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def record_training(path: Path, result: TrainResult, opts: TrainOptions) -> None:
    """Add what the training did (steps reached, wall time, estimate, whether the budget stopped it, where the loss
    diverged: ``TrainResult.diverged``, null when it did not; the best validation, its step and checkpoint, whether
    ``train.patience`` stopped it) to the manifest. ``seconds`` is the whole training's (a resume's and the seconds its
    checkpoint records before it); ``seconds_partial``: the checkpoint resumed from records none, so ``seconds`` holds
    only the training since (``seconds_this_run``: this process's training)."""
    manifest = json.loads(path.read_text(encoding="utf-8"))
    total = result.seconds_total
    manifest["training"] = {"steps": opts.steps, "steps_done": result.step,
                            "seconds": round(result.seconds if total is None else total, 1),
                            "seconds_this_run": round(result.seconds, 1), "seconds_partial": total is None,
                            "estimate_s": None if result.estimate_s is None else round(result.estimate_s, 1),
                            "minutes": opts.minutes, "stopped_by_budget": result.stopped_by_budget,
                            "checkpoint": str(result.checkpoint) if result.checkpoint else None,
                            "diverged": result.diverged,
                            # early stopping's judge: the best train.monitor, its step and checkpoint (--checkpoint best)
                            "monitor": opts.monitor if result.best_step is not None else None, "best": result.best,
                            "best_step": result.best_step, "stopped_early": result.stopped_early,
                            "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None}
    atomic_write_text(path, json.dumps(manifest, indent=1, default=str))


#: Which code trained the weights ``distgen import`` brings in, by its ``kind``.
OFFICIAL_CODE = {"scdfm-official": "the official scDFM code (run.py)", "perturbdiff-official": "the official PerturbDiff code (Lightning)"}


def imported_training(imported: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest's ``training`` of a run written by ``distgen import`` (``imported``: its ``kind``, ``checkpoint``,
    ``sha256``, ``bytes``, ``step``): distgen trained nothing (no steps, no time, no loss); the weights were trained by the
    official code, the file and its digest say which. ``distgen train`` writes ``record_training``'s instead."""
    kind = str(imported.get("kind"))
    return {"by": "distgen import", "trained_by_distgen": False, "trained_by": OFFICIAL_CODE.get(kind, kind),
            "kind": kind, "checkpoint": imported.get("checkpoint"), "sha256": imported.get("sha256"), "bytes": imported.get("bytes"),
            "official_step": imported.get("step"), "steps_done": 0, "seconds": 0.0, "diverged": None,
            "note": "the weights were mapped from the official checkpoint, not trained by distgen: no metrics.csv, no loss curve"}


def weights_origin(run_dir: str | Path) -> tuple[str, dict[str, str]] | None:
    """Where the weights of the run in ``run_dir`` came from when distgen did not train them (its manifest's ``training``
    from ``imported_training``): ``(a sentence for the user, what a prediction file records of it)``; None for a run
    distgen trained, or without a manifest."""
    path = Path(run_dir) / "manifest.json"
    try:
        manifest = read_manifest(path) if path.is_file() else None
    except (OSError, ValueError, RuntimeError):  # a damaged manifest (CheckpointError) is said where the data check reads it
        return None
    return imported_origin(manifest, run_dir)


def imported_origin(manifest: Mapping[str, Any] | None, run_dir: str | Path) -> tuple[str, dict[str, str]] | None:
    """``weights_origin`` of a manifest already read (the report's)."""
    training = (manifest or {}).get("training")
    if not isinstance(training, Mapping) or training.get("trained_by_distgen") is not False:
        return None
    digest = str(training.get("sha256") or "")
    sentence = (f"the weights of {run_dir} were imported by distgen import from the {training.get('kind')} checkpoint "
                f"{training.get('checkpoint')!s} (sha256 {digest[:16]}..., step {training.get('official_step')}), trained by "
                f"{training.get('trained_by')}; distgen did not train them")
    return sentence, {"imported_from": f"{training.get('kind')} {training.get('checkpoint')}", "imported_sha256": digest}
