"""Checkpoints: safetensors weights + JSON state, written atomically, verified and loaded without pickle.

A checkpoint is a directory ``<run>/checkpoints/step_<8-digit step>/`` holding ``model.safetensors``
(the bare model's weights), ``ema.safetensors`` (when EMA is on), ``optimizer.{safetensors,json}``,
``rng.{safetensors,json}`` and ``state.json`` (step, config and its fingerprint, scheduler and
early-stopping state, and the size and sha256 of every other file under ``files``). It is written into a hidden
temp directory and renamed into place, then ``checkpoints/latest`` is replaced atomically: a kill
mid-write never leaves a corrupt latest, and a failed write (a full disk) leaves no temp folder.

Loading checks each file against its recorded digest (a file changed after it was written is an
error naming it) and the step in ``state.json`` against the folder name.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from distgen.config import sci_number
from distgen.errors import EXIT_USAGE, DiskFullError, DistgenError, DistgenWarning, free_space, short, warn

# NonFiniteSamplesError and check_finite_samples are defined in distgen.errors (the streaming predictor uses them too); kept
# importable from here
from distgen.errors import NonFiniteSamplesError as NonFiniteSamplesError
from distgen.errors import check_finite_samples as check_finite_samples
from distgen.train.state_io import atomic_write_text, load_state, publish_dir, read_json, save_state, write_json
from distgen.wording import first_of

FORMAT = 1
FILES = ("model.safetensors", "optimizer.safetensors", "optimizer.json", "rng.safetensors", "rng.json", "state.json")
WEIGHT_FILES = ("model.safetensors", "ema.safetensors")
#: What a prediction from the raw weights reads besides ``state.json`` (``distgen predict --weights raw``).
RAW_WEIGHT_FILES = ("model.safetensors",)
#: Said when the EMA weights of a checkpoint are damaged and its raw weights were read whole.
RAW_WHOLE = "; its raw weights are whole: predict from them with --weights raw (distgen.load_run(..., weights='raw'))"
#: The files a resume reads besides ``state.json`` (``resolve_checkpoint``'s ``reads``).
RESUME_FILES = tuple(f for f in (*FILES, "ema.safetensors") if f != "state.json")
#: Weight keys renamed since they were first written: ``{old: new}``, applied to the model and EMA weights
#: when a checkpoint is read, so that runs trained before a rename still load (the generator's anchor
#: state became the ``Anchor`` module's, ``distgen.models.anchor``, on 2026-12-04).
RENAMED_KEYS = {"anchor_effects": "anchor.effects", "anchor_fitted": "anchor.fitted",
                "anchor_control": "anchor.control", "anchor_control_fitted": "anchor.control_fitted"}
_STEP_DIR = re.compile(r"step_(\d+)")


class CheckpointError(DistgenError, RuntimeError):
    """A checkpoint that is missing, truncated or altered (exit code 1)."""


class CheckpointConfigError(CheckpointError):
    """A checkpoint used under a config other than the one it was trained with (exit code 2: a config problem, not a broken file)."""

    exit_code = EXIT_USAGE


class RunFolderError(CheckpointError):
    """An ``--out`` or ``--resume`` that does not fit the run folder's checkpoints: a folder that already holds
    checkpoints given without ``--resume``, or ``--resume`` on a folder that holds none (exit code 2: a usage error,
    the checkpoints themselves are fine)."""

    exit_code = EXIT_USAGE


def fingerprint(config: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the settings that define a training trajectory."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_diff(a: Any, b: Any, where: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested configs."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += config_diff(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{where}.{k}" if where else str(k))
        return out
    return [] if a == b else [f"{where}: {a!r} -> {b!r}"]


def legacy_strings(saved: Any, now: Any, where: str = "") -> list[tuple[str, str]]:
    """``(dotted key, string)`` where ``saved`` holds a string such as ``'1e3'`` that distgen now reads as a number
    (``distgen.config.sci_number``) and ``now`` holds that number (or its text, in a string field): a config written
    by a distgen that read a plain ``1e3`` as text, compared with the same file read today."""
    if isinstance(saved, Mapping) and isinstance(now, Mapping):
        return [pair for k in sorted(set(saved) & set(now), key=str)
                for pair in legacy_strings(saved[k], now[k], f"{where}.{k}" if where else str(k))]
    if isinstance(saved, list | tuple) and isinstance(now, list | tuple) and len(saved) == len(now):
        return [pair for i, (a, b) in enumerate(zip(saved, now, strict=True)) for pair in legacy_strings(a, b, f"{where}[{i}]")]
    number = sci_number(saved)
    if number is None or saved == now or isinstance(now, bool):
        return []
    try:
        same = isinstance(now, int | float | str) and float(now) == number
    except ValueError:
        same = False
    return [(where, saved)] if same else []


def legacy_hint(saved: Any, now: Any, source: str) -> str:
    """What to do when the only reason a config differs from a checkpoint's is ``legacy_strings`` ("" when not)."""
    pairs = legacy_strings(saved, now)
    if not pairs:
        return ""
    keys = "; ".join(f"{k}: the run has the string {s!r}, read now as the number {sci_number(s)!r}" for k, s in pairs[:6])
    quoted = ", ".join(f"{k.rsplit('.', 1)[-1]}: '{s}'" for k, s in pairs[:6])
    return (f". The run was trained by a distgen that read a plain {pairs[0][1]} as text, which distgen now reads as a number "
            f"({keys}); to continue with the values it was trained with, write them quoted in {source} ({quoted}): a "
            "quoted value stays a string")


def save_checkpoint(
    ckpt_dir: Path,
    step: int,
    model_state: Mapping[str, Tensor],
    optimizer_state: Any,
    rng: Any,
    state: Mapping[str, Any],
    ema_state: Mapping[str, Tensor] | None = None,
    keep: int = 2,
    spare: Path | str | Sequence[Path | str] | None = None,
) -> Path:
    """Write checkpoint ``step`` under ``ckpt_dir`` atomically; prune to the newest ``keep``, sparing ``spare`` (checkpoints
    or their names: the last one written before a training diverged, whose pruning left only checkpoints of the diverged
    model; the best step's under early stopping, ``state.json`` ``best_checkpoint``)."""
    spared = {Path(x).name for x in ([spare] if isinstance(spare, Path | str) else spare or ())}
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    tmp = ckpt_dir / f".{name}.tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in model_state.items()}, str(tmp / "model.safetensors"))
        if ema_state is not None:
            save_file({k: v.detach().cpu().contiguous().clone() for k, v in ema_state.items()}, str(tmp / "ema.safetensors"))
        save_state(optimizer_state, tmp / "optimizer")
        save_state(rng, tmp / "rng")
        files = {f.name: {"sha256": file_digest(f), "bytes": f.stat().st_size} for f in sorted(tmp.iterdir())}
        write_json(tmp / "state.json", {"format": FORMAT, "step": step, "has_ema": ema_state is not None, **state, "files": files})
        final = ckpt_dir / name
        publish_dir(tmp, final)
        atomic_write_text(ckpt_dir / "latest", name + "\n")
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            previous = list_checkpoints(ckpt_dir)
            kept = f"the previous checkpoint {previous[-1].name} is intact" if previous else "no earlier checkpoint exists"
            raise DiskFullError(
                f"no space left to write checkpoint step {step} in {str(ckpt_dir)!r} (free: {free_space(ckpt_dir)}); "
                f"{kept}. Free some space (or lower train.keep_checkpoints) and resume with --resume"
            ) from None
        raise
    # a folder of a later step than this one is one a resume passed over as damaged (resolve_checkpoint): counting it among
    # the kept ones deleted the checkpoints the resume wrote; it stays until this run writes its step over it
    for old in [p for p in list_checkpoints(ckpt_dir) if _step_of(p.name) <= step][:-keep]:
        if old.name not in spared:
            shutil.rmtree(old, ignore_errors=True)
    return final


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_digests(ckpt: Path, state: Mapping[str, Any], files: tuple[str, ...]) -> None:
    """Check ``files`` of checkpoint ``ckpt`` against the sizes and sha256 digests recorded in its ``state.json``.

    A checkpoint written before digests were recorded (no ``files`` key) is accepted as is.
    """
    recorded = state.get("files")
    if recorded is None:
        return
    if not isinstance(recorded, Mapping) or not all(isinstance(v, Mapping) for v in recorded.values()):
        raise CheckpointError(f"checkpoint {str(ckpt)!r} is corrupt: state.json holds a malformed 'files' entry{_others(ckpt)}")
    for name in files:
        path = ckpt / name
        if not path.exists():
            continue
        if name not in recorded:
            raise CheckpointError(f"checkpoint {str(ckpt)!r}: {name} was not part of it when it was written (no digest in state.json){_others(ckpt)}")
        size = path.stat().st_size
        if size != recorded[name].get("bytes"):
            raise CheckpointError(
                f"checkpoint {str(ckpt)!r} is corrupt or truncated: {name} has {size} bytes, {recorded[name].get('bytes')} were "
                f"written; it cannot be used{_others(ckpt)}"
            )
        if file_digest(path) != recorded[name].get("sha256"):
            raise CheckpointError(
                f"checkpoint {str(ckpt)!r} is corrupt: {name} changed after it was written (its sha256 differs from the "
                f"digest in state.json); it cannot be trusted. Restore the file or use another checkpoint{_others(ckpt)}"
            )


def _others(ckpt: Path) -> str:
    """``" (earlier: step_..., ...; pass its path)"`` listing the run's other complete checkpoints."""
    others = [p.name for p in list_checkpoints(ckpt.parent) if p.resolve() != ckpt.resolve()]
    if not others:
        return " (this run has no other checkpoint)"
    return f" (this run also has {', '.join(others[-3:])}: pass its path, e.g. {ckpt.parent / others[-1]})"


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Complete checkpoint directories, oldest first (temp directories of killed writes ignored)."""
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.glob("step_*") if _STEP_DIR.fullmatch(p.name) and p.is_dir() and (p / "state.json").exists())


def check_run_folder(out: Path, resume: object, resume_option: str = "--resume", out_option: str = "--out") -> None:
    """Refuse (``RunFolderError``, exit 2) a training into run folder ``out`` that does not fit its checkpoints.

    A folder that already holds checkpoints, trained into without a resume (``resume`` False or None), would have them
    replaced by those of a new run (and its ``metrics.csv`` restarted); ``resume=True`` on a folder that holds none has
    nothing to continue. The one check of ``distgen train`` (``resume_option="--resume"``, ``out_option="--out"``) and of
    the Python ``fit``/``Trainer.fit`` (``resume=``, ``run_dir``): the message names the caller's own options.
    """
    found = list_checkpoints(out / "checkpoints")
    if found and (resume is False or resume is None):
        raise RunFolderError(f"{out} already holds checkpoints; pass {resume_option} to continue that run or choose a new {out_option}")
    if resume is True and not found:
        raise RunFolderError(f"{resume_option}: {out} holds no checkpoint to resume from")


def resolve_checkpoint(path: str | Path, reads: tuple[str, ...] = WEIGHT_FILES) -> Path:
    """A checkpoint directory from a run directory, its ``checkpoints/`` folder or the directory itself.

    From a run folder, ``checkpoints/latest`` names it, or a newer checkpoint whole in every file (a kill between writing
    it and updating ``latest``: it was written whole, then renamed into place); a newer one with any file missing or of
    another size than ``state.json`` recorded (an interrupted copy) is passed over for ``latest``'s, with a warning naming
    it, whatever the caller reads; the size of each file and its sha256 are compared with ``state.json``'s. Without
    ``latest`` (or with ``latest`` naming a folder that is gone), the newest one whose files in ``reads`` (the weights, as
    prediction reads them; ``RESUME_FILES`` for a resume) are whole, sizes and digests, is chosen,
    passing over, with a warning, the newer ones. The one ``latest`` names is never passed over (its damage is refused
    when it is loaded, naming the others).
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint path {str(p)!r} does not exist")
    if p.is_file():  # was told to train first, with the file as --out
        raise CheckpointError(f"checkpoint path {str(p)!r} is a file: give a checkpoint folder (RUN/checkpoints/step_...) or the "
                              "run folder (its newest checkpoint)")
    if (p / "state.json").exists() or p.name.startswith("step_"):
        return p
    ckpts = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    latest = ckpts / "latest"
    pointed = latest.read_text(encoding="utf-8", errors="replace").strip() if latest.is_file() else ""
    found = list_checkpoints(ckpts)
    if _STEP_DIR.fullmatch(pointed) and (ckpts / pointed).is_dir():
        # every file, not reads: a folder a resume passed over (a cut optimizer state) stays until the resumed run
        # writes its step; taken by a prediction, it would stand in for the checkpoints of the run latest describes
        # and by digests: a preallocating copy cut short leaves every size right (its load would refuse it); read only for a
        # folder newer than latest, or without latest (both rare), as the one latest names is checked when it is loaded
        whole, damaged = _newest_whole([c for c in found if _step_of(c.name) > _step_of(pointed)], RESUME_FILES, digests=True)
        if whole is not None:
            # a kill between renaming a checkpoint into place and replacing latest: the newer one is complete (it has
            # its state.json, written before the rename); going back to the pointer retrained the steps after it
            warn(f"{latest} names {pointed}, but {whole.name} is newer and complete (a kill between writing it and "
                 f"updating latest leaves this); using {whole.name}" + (f"; {_passed_over(damaged)}" if damaged else ""), DistgenWarning)
            return whole
        if damaged:
            warn(f"{_passed_over(damaged)}; using {pointed}, the checkpoint {latest} names", DistgenWarning)
        return ckpts / pointed
    if not found:
        raise CheckpointError(f"no checkpoint found under {str(p)!r}; train first (distgen train ... --out {p})")
    whole, damaged = _newest_whole(found, reads, digests=True)  # no (or a stale) latest: rare; the newest whole is read twice
    if whole is None:  # none is whole: the newest, whose load names its damage
        whole, damaged = found[-1], []
    chosen = whole
    if _STEP_DIR.fullmatch(pointed) and _step_of(pointed) > _step_of(chosen.name):
        # a newest checkpoint deleted, or a copy of the run folder that lacks it: resuming or predicting from an older one
        # was silent (a resume retrains the steps after it; predictions come from the older weights)
        warn(f"{ckpts / 'latest'} names {pointed}, which is gone; using {chosen.name}, the newest checkpoint there that is "
             f"whole (step {_step_of(chosen.name)}): a resume retrains the steps after it" + (f"; {_passed_over(damaged)}" if damaged else ""), DistgenWarning)
    elif damaged:
        warn(f"{_passed_over(damaged)}; using {chosen.name}, the newest checkpoint there that is whole (step "
             f"{_step_of(chosen.name)}): a resume retrains the steps after it", DistgenWarning)
    return chosen


def _newest_whole(ckpts: list[Path], reads: tuple[str, ...], digests: bool = False) -> tuple[Path | None, list[str]]:
    """``(chosen, passed_over)``: the newest of ``ckpts`` (oldest first) whose files in ``reads`` are whole (``_damage``),
    None when none is, and ``"step_... (why)"`` of each newer one passed over, newest first (all of them when none is whole)."""
    passed_over: list[str] = []
    for ckpt in reversed(ckpts):
        reason = _damage(ckpt, reads, digests)
        if reason is None:
            return ckpt, passed_over
        passed_over.append(f"{ckpt.name} ({reason})")
    return None, passed_over


def _passed_over(damaged: list[str]) -> str:
    """``"passed over step_... (why), ...: damaged ..."``, the checkpoints ``resolve_checkpoint`` skipped ("" for none)."""
    if not damaged:
        return ""
    return (f"passed over {', '.join(damaged)}: damaged (an interrupted copy or write); delete "
            f"{'it' if len(damaged) == 1 else 'them'} or copy again")


def _damage(ckpt: Path, reads: tuple[str, ...], digests: bool = False) -> str | None:
    """What is wrong with checkpoint folder ``ckpt`` for reading ``reads`` (None: whole), from file sizes: an unreadable
    ``state.json``, a file it needs missing or of another size than ``state.json`` recorded; with ``digests`` also a file
    whose sha256 differs from the recorded one (it reads the files). Otherwise a same-size alteration is left to the
    digest check of ``load_checkpoint``."""
    try:
        state = read_json(ckpt / "state.json")
    except (OSError, ValueError):
        return "state.json unreadable"
    if not isinstance(state, dict):
        return "state.json malformed"
    recorded = state.get("files")
    for name in reads:
        if name == "ema.safetensors" and not state.get("has_ema"):
            continue
        try:
            found: os.stat_result | None = (ckpt / name).stat()  # one stat: whether it is a file, and its size
        except OSError as e:  # as Path.is_file: absent (or a broken link) is missing; another error is raised
            if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP):
                raise
            found = None
        except ValueError:  # a name the file system cannot encode, as Path.is_file
            found = None
        if found is None or not stat.S_ISREG(found.st_mode):
            return f"{name} missing"
        entry = recorded.get(name) if isinstance(recorded, Mapping) else None
        if isinstance(entry, Mapping) and found.st_size != entry.get("bytes"):
            return f"{name} has {found.st_size} bytes, {entry.get('bytes')} were written"
        if digests and isinstance(entry, Mapping) and entry.get("sha256") and file_digest(ckpt / name) != entry["sha256"]:
            return f"{name} changed after it was written: its sha256 differs from state.json's"
    return None


class NoBestCheckpointError(CheckpointError):
    """``--checkpoint best`` for a run that kept no checkpoint of a best step: it never validated, or was trained before
    distgen kept one (exit code 2: the run is fine, the choice is not available)."""

    exit_code = EXIT_USAGE


#: What ``--checkpoint`` (``distgen predict``) and ``checkpoint=`` (``distgen.load_run``) take besides a folder.
CHECKPOINT_CHOICES = ("last", "best")


def chosen_checkpoint(run_dir: str | Path, checkpoint: str | Path | None) -> str | Path | None:
    """``checkpoint`` as ``load_checkpoint`` takes it: ``"best"`` -> the run's best-step checkpoint (``best_checkpoint``),
    ``"last"`` or None -> None (the newest), anything else (a checkpoint folder) as given."""
    if isinstance(checkpoint, str) and checkpoint in CHECKPOINT_CHOICES:
        return best_checkpoint(run_dir) if checkpoint == "best" else None
    return checkpoint


def best_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint of the best validation step of a run (``train.monitor`` at its best, as early stopping judges it).

    The run's newest checkpoint records it (``state.json`` ``best_checkpoint``); the trainer writes a checkpoint at every
    validation that improves ``train.monitor`` and spares the best one from pruning. A run that never validated, or that
    was trained before such checkpoints were kept, has none: ``NoBestCheckpointError`` says so and what to use (a run
    trained before whose best step fell on ``train.checkpoint_every`` gives that step's checkpoint)."""
    newest, state = read_checkpoint_state(run_dir)
    name = state.get("best_checkpoint")
    if not isinstance(name, str) or not _STEP_DIR.fullmatch(name):
        if state.get("best_step") is None:
            raise NoBestCheckpointError(
                f"{run_dir} has no best checkpoint: its training never validated (train.val_every 0, or no validation cells), "
                "so no step was judged best. Use its last checkpoint (--checkpoint last, the default), or train with "
                "train.val_every set and validation cells (data.split.val_frac)")
        if state.get("best_kept") is False:
            raise NoBestCheckpointError(
                f"{run_dir} has no best checkpoint: its best validation was at step {state['best_step']}, but it was trained "
                "without train.patience, and only early stopping checkpoints the validations that improve (checkpoints "
                f"there: {', '.join(p.name for p in list_checkpoints(newest.parent))}). Use --checkpoint last (the default) or "
                "one of those; to keep the best step's, train with train.patience set (a value larger than the validations "
                "of the run never stops it)")
        on_schedule = newest.parent / f"step_{int(state['best_step']):08d}"
        if (on_schedule / "state.json").is_file():
            # trained before the best step's checkpoint was recorded, but it fell on train.checkpoint_every: the
            # checkpoint of that step holds that step's weights
            return on_schedule
        raise NoBestCheckpointError(
            f"{run_dir} has no best checkpoint: its best validation was at step {state['best_step']}, but it was trained before "
            "distgen kept the best step's checkpoint (2026-12-07), and only one that fell on train.checkpoint_every is there "
            f"({', '.join(p.name for p in list_checkpoints(newest.parent))}). Use --checkpoint last (the default) or one of those")
    best = newest.parent / name
    if not (best / "state.json").is_file():
        raise NoBestCheckpointError(
            f"{run_dir}: its best checkpoint {name} (step {_step_of(name)}, train.monitor at its best) is gone from "
            f"{newest.parent}; training spares it from pruning, so it was deleted or the run folder copied without it. "
            "Use --checkpoint last (the default)")
    return best


def _step_of(name: str) -> int:
    return int(name.rsplit("_", 1)[-1])


@dataclass
class Checkpoint:
    """A loaded checkpoint (tensors on CPU)."""

    path: Path
    state: dict[str, Any]
    model: dict[str, Tensor]
    optimizer: Any
    rng: Any
    ema: dict[str, Tensor] | None

    @property
    def step(self) -> int:
        return int(self.state["step"])


def load_checkpoint(path: str | Path, weights_only: bool = False, ema: bool = True) -> Checkpoint:
    """Load a checkpoint after checking it: missing, truncated or altered files raise ``CheckpointError`` naming the file.

    ``weights_only`` reads (and verifies) only the weights and ``state.json``, as prediction needs; with ``ema`` False
    only the raw weights (``Checkpoint.ema`` None: ``distgen predict --weights raw``, which a damaged EMA file does not
    stop). The checkpoint a run folder resolves to is the same either way (the raw and EMA predictions of a run come from
    one step). A resume reads everything (``ema`` False is for ``weights_only``).
    """
    if not (ema or weights_only):
        raise ValueError("load_checkpoint: ema=False reads no EMA weights, which a resume needs; pass weights_only=True")
    files = (WEIGHT_FILES if ema else RAW_WEIGHT_FILES) if weights_only else RESUME_FILES
    ckpt = resolve_checkpoint(path, WEIGHT_FILES if weights_only else RESUME_FILES)
    needed = ("model.safetensors", "state.json") if weights_only else FILES
    missing = [f for f in needed if not (ckpt / f).exists()]
    if missing:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} is incomplete: missing {', '.join(missing)}{_others(ckpt)}")
    current = "state.json"
    try:
        state = read_json(ckpt / "state.json")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise CheckpointError(f"checkpoint {str(ckpt)!r} has format {found!r}; this distgen reads {FORMAT}")
        if weights_only and ema and state.get("has_ema"):  # the raw weights first: a damaged EMA file then says they are whole
            verify_digests(ckpt, state, RAW_WEIGHT_FILES)
            try:
                verify_digests(ckpt, state, ("ema.safetensors",))
            except CheckpointError as exc:
                raise CheckpointError(f"{exc}{RAW_WHOLE}") from None
        else:
            verify_digests(ckpt, state, files)
        m = _STEP_DIR.fullmatch(ckpt.name)
        if m and int(m.group(1)) != state.get("step"):
            raise CheckpointError(
                f"checkpoint folder {str(ckpt)!r} holds step {short(state.get('step'))} (state.json), not {int(m.group(1))}: "
                "it was renamed or its files were mixed with another checkpoint's; rename it back or use another checkpoint"
            )
        current = "model.safetensors"
        model = load_file(str(ckpt / "model.safetensors"))
        loaded_ema = None
        if state.get("has_ema") and (ema or not weights_only):
            current = "ema.safetensors"
            loaded_ema = load_file(str(ckpt / "ema.safetensors"))
        optimizer = rng = None
        if not weights_only:
            current = "optimizer.safetensors/json"
            optimizer = load_state(ckpt / "optimizer")
            current = "rng.safetensors/json"
            rng = load_state(ckpt / "rng")
    except (SafetensorError, json.JSONDecodeError, UnicodeDecodeError, OSError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"checkpoint {str(ckpt)!r} is corrupt or truncated ({current}: {str(exc)[:200]}); it cannot be used{_others(ckpt)}"
            + (RAW_WHOLE if weights_only and current == "ema.safetensors" else "")  # read after the raw weights
        ) from None
    return Checkpoint(ckpt, state, renamed(model), optimizer, rng, None if loaded_ema is None else renamed(loaded_ema))


def renamed(weights: dict[str, Tensor]) -> dict[str, Tensor]:
    """``weights`` with every key of ``RENAMED_KEYS`` under its current name (a key already current is kept as is)."""
    return {(RENAMED_KEYS[k] if k in RENAMED_KEYS and RENAMED_KEYS[k] not in weights else k): v for k, v in weights.items()}


def check_compatible(ckpt: Checkpoint, config: Mapping[str, Any], fp: str, world_size: int | None = None) -> None:
    """Reject a checkpoint written under a different model/data/train config, naming the keys."""
    check_state_compatible(ckpt.path, ckpt.state, config, fp, world_size)


def shards_of(state: Mapping[str, Any]) -> int | None:
    """``world_size x grad_accum`` a checkpoint was trained with (the shards of each global batch; None when unknown)."""
    accum = (state.get("fingerprint_config") or {}).get("train", {}).get("grad_accum")
    world = state.get("world_size")
    return int(world) * int(accum) if isinstance(world, int) and isinstance(accum, int) else None


#: ``data.dataset`` (as the config gives it) whose content was checked against the run's recorded hash (``same_data_at``).
_CHECKED_DATA: ContextVar[str | None] = ContextVar("checked_data", default=None)


@contextmanager
def same_data_at(dataset: str) -> Iterator[None]:
    """Within the block, a checkpoint whose config differs from the one resumed with only by ``data.dataset`` is the
    same run when that config's ``data.dataset`` is ``dataset``: the caller checked that file's content against the
    run's recorded hash (``distgen.train.manifest.check_same_data``), so the file moved, the data did not (a run copied
    to another machine, or a relative path read from another folder)."""
    token = _CHECKED_DATA.set(dataset)
    try:
        yield
    finally:
        _CHECKED_DATA.reset(token)


def without_data_path(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """``config`` without ``data.dataset``: where the file was read from, which its content hash stands for."""
    data = config.get("data")
    if not isinstance(data, Mapping) or "dataset" not in data:
        return config
    return {**config, "data": {k: v for k, v in data.items() if k != "dataset"}}


def _moved_data_only(saved: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    """Whether ``saved`` and ``config`` differ only by a data path whose content was checked (``same_data_at``)."""
    data = config.get("data")
    checked = _CHECKED_DATA.get()
    return (checked is not None and isinstance(data, Mapping) and data.get("dataset") == checked
            and fingerprint(read_as_now(without_data_path(saved))) == fingerprint(read_as_now(without_data_path(config))))


def check_state_compatible(path: Path, state: Mapping[str, Any], config: Mapping[str, Any], fp: str,
                           world_size: int | None = None) -> None:
    """``check_compatible`` from a checkpoint's ``state.json`` alone (``read_checkpoint_state``), before any tensor is read.

    With ``world_size`` (the resuming job's), ``train.grad_accum`` may change when ``world_size x grad_accum`` stays
    the checkpoint's: the same shards of the same global batch, so the run continues exactly (2 ranks resumed on 1
    process with ``grad_accum`` doubled)."""
    if state.get("fingerprint") == fp:
        return
    saved = state.get("fingerprint_config") or {}
    accum = (config.get("train") or {}).get("grad_accum")
    if (world_size is not None and isinstance(accum, int) and shards_of(state) == world_size * accum
            and isinstance(saved.get("train"), Mapping) and fingerprint({**saved, "train": {**saved["train"], "grad_accum": accum}}) == fp):
        return
    # both as the distgen of now writes them (a run's own config.yaml keeps its spellings)
    if isinstance(saved, Mapping) and fingerprint(read_as_now(saved)) == fingerprint(read_as_now(config)):
        return
    if isinstance(saved, Mapping) and _moved_data_only(saved, config):
        return
    diff = config_diff(state.get("fingerprint_config", {}), config)
    shown = first_of(diff, 8, "; ", enclosed=True)
    legacy = legacy_hint(state.get("fingerprint_config", {}), config, "the config you resume with (and the run's config.yaml)") if diff else ""
    raise CheckpointConfigError(
        f"checkpoint {str(path)!r} was written under a different config ({shown or 'fingerprint differs'}){legacy}. "
        + ("Or start a new run directory." if legacy else "Resume with the run's own config.yaml, or start a new run directory.")
    )


def read_as_now(saved: Mapping[str, Any]) -> Mapping[str, Any]:
    """A config (``saved``: a checkpoint's, a run folder's ``config.yaml``, or the one it is compared with) written as
    distgen writes what computes the same now (``SAME_COMPUTATION``). A resume (``check_state_compatible``) and a
    prediction's check (``check_config_matches``) read both sides through this, so two spellings of one computation
    compare equal whichever side holds which; the model a prediction builds (``distgen.pipeline.predict.load_model``)
    is built from it."""
    model = saved.get("model")
    if isinstance(model, Mapping):
        model = dict(model)
        for entry in SAME_COMPUTATION:
            node = model if not entry.slot else model.get(entry.slot)
            if isinstance(node, Mapping) and entry.applies(node):
                node = {k: v for k, v in node.items() if k != entry.key} | ({} if entry.now is ABSENT else {entry.key: entry.now})
                model = node if not entry.slot else {**model, entry.slot: node}
        saved = {**saved, "model": model}
    return saved


ABSENT: Any = object()  #: a key a run folder did not write (trained before the setting was added)


@dataclass(frozen=True)
class Respelled:
    """A setting whose value in a run folder of an earlier distgen (``then``) computes what today's ``now`` computes.

    ``slot``: the component node under ``model:`` (``""``: the model node itself); ``component``: its registered name
    (None: any); ``where``: a condition on the stored node (``key=value``, the stored value) under which both compute the
    same; ``since``: the commit and date of the change (docs, and the test that proves the equality)."""

    slot: str
    component: str | None
    key: str
    then: Any
    now: Any
    since: str
    where: tuple[str, Any] | None = None

    def applies(self, node: Mapping[str, Any]) -> bool:
        if self.component is not None and node.get("name") != self.component:
            return False
        if self.where is not None and node.get(self.where[0], ABSENT) != self.where[1]:
            return False
        if self.then is ABSENT:
            return self.key not in node
        value = node.get(self.key, ABSENT)
        return value is not ABSENT and type(value) is type(self.then) and value == self.then


#: Every stored spelling the distgen of now reads as another that computes the same (one entry per setting; each has a
#: test proving the equality, named in docs/training.md): settings added since with a default that computes what runs
#: trained without them computed, and defaults written out before that are refused now as having no effect.
SAME_COMPUTATION: tuple[Respelled, ...] = (
    # onehot's dose settings (7383062, 2026-12-06): linear is "as before: same values" (tests/conditioners/test_dose.py)
    Respelled("conditioner", "onehot", "dose", ABSENT, "linear", "7383062 2026-12-06"),
    Respelled("conditioner", "onehot", "dose_scale", ABSENT, 1.0, "7383062 2026-12-06"),
    # the generator's coupling null built the independent coupling, now named (90b1f78, 2026-12-06; tests/models/test_assembly.py)
    Respelled("", None, "coupling", None, {"name": "independent"}, "90b1f78 2026-12-06"),
    # cross_dit read time_scale only under time_input: scaled; since 93d835d (2026-12-05) it is refused under step
    Respelled("backbone", "cross_dit", "time_scale", 1000.0, None, "93d835d 2026-12-05", where=("time_input", "step")),
    # a distribution loss never reads kme's explicit-feature settings; their old defaults build the buffers None builds
    # (8677cd8, 2026-12-05; tests/train/test_resume_earlier_presets.py)
    Respelled("distribution_loss", "kme", "features", 256, None, "8677cd8 2026-12-05"),
    Respelled("distribution_loss", "kme", "feature_map", "auto", None, "8677cd8 2026-12-05"),
    Respelled("distribution_loss", "kme", "seed", 0, None, "8677cd8 2026-12-05"),
    # a population encoder never reads kme's estimator setting (8677cd8)
    Respelled("population_encoder", "kme", "unbiased", True, None, "8677cd8 2026-12-05"),
    # pad_transformer's gene_dropout draws nothing at dropout 0 or without the graph: per_cell and shared are one trajectory
    # (scdfm-small changed per_cell -> shared on 2026-12-07 with bit-identical training;
    # tests/train/test_resume_inert_preset_change.py)
    Respelled("backbone", "pad_transformer", "gene_dropout", "per_cell", "shared", "scdfm-small 2026-12-07", where=("dropout", 0)),
    Respelled("backbone", "pad_transformer", "gene_dropout", "per_cell", "shared", "scdfm-small 2026-12-07", where=("graph", False)),
)


def read_checkpoint_state(path: str | Path, reads: tuple[str, ...] = WEIGHT_FILES) -> tuple[Path, dict[str, Any]]:
    """(checkpoint folder, its ``state.json``) for a run folder, its ``checkpoints/`` or a checkpoint; no tensor is read.

    What a resume checks before it writes anything into the run folder (``distgen.train.run``); the
    tensors are verified when the trainer loads them. ``reads``: as ``resolve_checkpoint``'s (``RESUME_FILES`` for a resume).
    """
    ckpt = resolve_checkpoint(path, reads)
    try:
        state = read_json(ckpt / "state.json")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} is incomplete: missing state.json{_others(ckpt)}") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} is corrupt or truncated (state.json: {str(exc)[:200]}); "
                              f"it cannot be used{_others(ckpt)}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {str(ckpt)!r} is corrupt: state.json holds a {type(state).__name__}{_others(ckpt)}")
    return ckpt, state


def check_config_matches(ckpt: Checkpoint, config: Mapping[str, Any], source: str, sections: tuple[str, ...] = ("model", "data"),
                         data_checked: bool = False) -> None:
    """Reject predicting with a config whose ``sections`` differ from the ones ``ckpt`` was trained with.

    ``config`` is the run's resolved config as read now (``source`` names where from, e.g.
    ``runs/a/config.yaml``); the checkpoint keeps the config it was trained under in ``state.json``.
    An edited ``config.yaml`` would otherwise build a model the weights do not fit (a raw size
    mismatch) or, worse, one they fit silently with other data settings. ``data_checked``: the caller compared the data
    it read with the run's recorded content hash (or read none), so ``data.dataset`` (where the file was) is left out.
    """
    recorded = ckpt.state.get("config")
    if not isinstance(recorded, Mapping):
        return
    # both as the distgen of now writes them: a checkpoint from before a resume that rewrote config.yaml so is the same model
    # ... and where the data file was read from is not the model when the caller compared the data's content with the
    # run's recorded hash (``data_checked``): a run resumed after its file moved predicts from its checkpoints of before
    # the move. Without that comparison (a run copied without manifest.json) the path is all that ties the data to the run
    if data_checked:
        config, recorded = without_data_path(config), without_data_path(recorded)
    config = read_as_now(config)
    recorded = read_as_now(recorded)
    norm = lambda doc: json.loads(json.dumps({k: doc.get(k) for k in sections}, sort_keys=True, default=str))  # noqa: E731
    diff = config_diff(norm(recorded), norm(config))
    if diff:
        shown = first_of(diff, 6, "; ", lambda d: d[:160], enclosed=True)
        legacy = legacy_hint(norm(recorded), norm(config), source)
        raise CheckpointConfigError(
            f"{source} differs from the config checkpoint {str(ckpt.path)!r} was trained with ({shown}){legacy}. "
            + ("Or train a new run" if legacy else
               f"Restore {source} (the training config is under 'config' in {ckpt.path / 'state.json'}) or train a new run")
        )
