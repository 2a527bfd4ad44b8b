"""One experiment: load the data once, build, pre-flight, train (or fit), predict, score.

``distgen run`` and every cell of ``distgen sweep`` call ``run``. The stages hand each other
objects, never files::

    config --> Dataset.load (once) --> build_model --> check_split (pre-flight)
           --> train_model / fit --> predict --> Cells (pred) --+
               Dataset.truth -----------------> Cells (truth) -+--> score --> Report
               dataset_references (baselines) -> {name: Cells} -+

``pred.h5ad``, ``real.h5ad`` (cell-eval layout) and the report are written as outputs; nothing is
read back within the run.

Rerunning the same command on the same ``out`` is safe: a finished experiment (``DONE`` marker,
written last) is not run again (its summary is returned), an unfinished one continues training from
the newest checkpoint of ``out/train`` and then predicts and evaluates again. ``out`` must hold an
experiment of the same config (``experiment.yaml``); another config is refused before any work, as
is a config with any problem (``distgen.pipeline.checks``: all listed at once). The folder is locked for the duration (``distgen.train.lock``): a second process is refused. A
finished experiment is read before the lock, by every rank (``run_folder.finished_unlocked``): printing its summary only
reads, so a folder that cannot be locked (read-only, another user's) is read too. What a run folder holds and how it is
read is ``distgen.pipeline.run_folder``; this module writes it.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distgen.config import (
    ConfigError,
    InertSettingWarning,
    LoadedConfig,
    read_config,
    save_yaml,
)
from distgen.data import layout
from distgen.data.prepared import Dataset
from distgen.errors import InputDataError, warn
from distgen.evaluation.calibration import REPLICATES
from distgen.evaluation.io import MIN_CELLS
from distgen.evaluation.score import score
from distgen.evaluation.uncertainty import CEILING_SPLITS, CLAIM_MODEL, runner_up_notes, small_unshown
from distgen.models import models
from distgen.models.base import is_trainable as _is_trainable
from distgen.models.generator import build_model
from distgen.models.preflight import check_split, preflight_checked
from distgen.pipeline import pages
from distgen.pipeline.checks import check_experiment
from distgen.pipeline.outputs import clear_evaluation
from distgen.pipeline.predict import load_run_model, predict, predict_section, prediction_provenance, write_pair
from distgen.pipeline.references import DEFAULT_BASELINES, dataset_references
from distgen.pipeline.run_folder import (
    DONE_FILE,
    MOVED_RECORD,
    damaged_finished_file,
    finished_unlocked,
    read_finished,
    recorded_timings,
)
from distgen.train import distributed as D
from distgen.train.checkpoint import list_checkpoints
from distgen.train.device import float32_default, select_device
from distgen.train.lock import RunLock
from distgen.train.loop import fit
from distgen.train.run import preflight_section, train_model
from distgen.train.state_io import atomic_write_text
from distgen.train.trainer import divergence_message
from distgen.warned import recorded_warnings
from distgen.wording import counted, did_you_mean, row_noun

#: Keys of a config's optional ``evaluate:`` section (the evaluation every run makes).
EVALUATE_KEYS = ("metrics", "baselines", "ceiling", "plots", "seed", "by_context", "counts", "ceiling_splits", "interpolated",
                 "replicate", "spread")


def evaluate_section(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The ``evaluate:`` section of a run config (e.g. ``{metrics: [mse, pearson_delta], plots: false}``)."""
    ev = dict(doc.get("evaluate") or {})
    unknown = sorted(set(ev) - set(EVALUATE_KEYS))
    if unknown:
        raise ConfigError(f"evaluate: unknown key(s) {unknown}.{did_you_mean(unknown, EVALUATE_KEYS)} Allowed: {', '.join(EVALUATE_KEYS)}")
    if ev.get("counts"):
        from distgen.data.counts import COUNT_MODELS

        if ev["counts"] not in COUNT_MODELS:
            raise ConfigError(f"evaluate.counts must be one of {', '.join(COUNT_MODELS)}, got {ev['counts']!r}.{did_you_mean(ev['counts'], COUNT_MODELS)}")
    if not isinstance(ev.get("interpolated", False), bool):
        raise ConfigError(f"evaluate.interpolated must be true or false, got {ev['interpolated']!r}")
    if "spread" in ev:  # auto | on | off (YAML reads on/off as true/false: taken as such)
        from distgen.evaluation.spread import spread_mode

        try:
            ev["spread"] = spread_mode(ev["spread"], "evaluate.spread")
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if ev.get("replicate", "half-split") not in REPLICATES:
        raise ConfigError(f"evaluate.replicate must be one of {', '.join(REPLICATES)}, got {ev['replicate']!r}.{did_you_mean(ev['replicate'], REPLICATES)}")
    return ev


def is_trainable(model_node: Mapping[str, Any]) -> bool:
    """True when the model of a config node is trained by distgen's trainer (a ``TrainableModel``)."""
    return _is_trainable(models.get(model_node["name"]))


def run(
    config: str | Path | Mapping[str, Any],
    out: str | Path,
    overrides: Sequence[str] = (),
    progress: bool = True,
    metrics: Sequence[str] | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Train -> predict the test split -> evaluate, into ``out``; returns the evaluation summary.

    ``out`` receives ``experiment.yaml``, ``train/`` (the run directory, for trainable models) or
    ``split.json`` (and, for a fitted model with ``diagnostics``, ``fit.json``), ``pred.h5ad`` and
    ``real.h5ad`` (cell-eval layout; with ``evaluate: {counts: MODEL}`` also ``pred_counts.h5ad`` and ``real_counts.h5ad`` in raw counts), ``eval/`` (``metrics.csv``,
    ``calibration.csv``, ``summary.md``, ``summary.json``, plots) and ``timings.json``. The config's
    optional ``evaluate:`` section (``EVALUATE_KEYS``) sets the evaluation (``metrics``/``plots`` given
    here win); its ``preflight:`` section may set ``allow_unembedded: true``. Nothing is written before the
    data, the model and the pre-flight check pass: a refused run leaves ``out`` as it was (a folder it had to
    create is removed again).
    """
    with recorded_warnings() as warned:  # every UserWarning the run shows goes to its report's notes too
        return _checked_run(config, out, overrides, progress, metrics, plots, warned)


def _checked_run(
    config: str | Path | Mapping[str, Any], out: str | Path, overrides: Sequence[str], progress: bool, metrics: Sequence[str] | None,
    plots: bool, warned: list[str],
) -> dict[str, Any]:
    out = Path(out)
    loaded = read_config(config, overrides)  # one read of the chain: a piped config gives its preset and keys too
    doc = _experiment_document(loaded.doc, progress)
    check_experiment(doc, metrics)  # every problem of the config, before a folder is made or data loaded
    for note in fitted_inert_settings(loaded, doc):
        warn(note, InertSettingWarning)
    ev = evaluate_section(doc)
    allow = bool(preflight_section(doc).get("allow_unembedded", False))
    preset = loaded.preset
    main = D.env_from_torchrun().is_main
    # every rank reads a finished experiment the same way, before any lock: rank 0 prints its summary, the others return
    # (a rank that trained on would wait for rank 0 in the prediction forever, and its start() removed the DONE); a
    # read-only folder, or one whose lock file is another user's, is read so too (not refused at its lock); another
    # config's experiment is refused here (ConfigError), as it is under the lock
    read = finished_unlocked(out, doc, metrics)
    if read.summary is not None:
        if main:
            print(f"note: {out} already holds this finished experiment ({DONE_FILE}); not run again", file=sys.stderr)
            # the data file it found at a new path, for the next run to read, not hash; written without the folder's lock
            # (taken for that moment, it would refuse a `distgen run` started then, and take over a stale lock file)
            record_moved(out, read.moved)
        return read.summary if main else {}
    if not main:  # under torchrun: the same steps as rank 0, which alone writes (and locks)
        with float32_default():
            return _run(doc, out, ev, allow, metrics, plots, progress, preset, warned)
    created = not out.exists()
    try:
        with RunLock(out, "run"), float32_default():  # whatever the caller's torch default dtype
            # DONE read a second time, by design: the rewritten-meanwhile check. The reading above was taken without the
            # lock; another process may have finished, re-run or removed the experiment before this one got the lock, so
            # what is decided here is from the folder as the lock holds it (read.moved: not hashed again)
            locked = read_finished(out, doc, metrics, read.moved)
            record_moved(out, locked.moved)  # under the lock it holds (the check only reads)
            if locked.summary is not None:  # finished by another process between the read above and the lock
                print(f"note: {out} already holds this finished experiment ({DONE_FILE}); not run again", file=sys.stderr)
                return locked.summary
            # said under the lock (before it, a read-only folder or one another process holds would say so and then be
            # refused), from its reading there; a damaged DONE is said as the sweep says it of such a run (RunFolder.removed_part)
            folder = locked.folder
            if folder is not None and folder.has_done and (damaged := folder.damaged or damaged_finished_file(out)):
                print(f"note: {out} holds this experiment finished ({DONE_FILE}) but {damaged}: it is predicted and evaluated "
                      "again (no step trained again)", file=sys.stderr)
            return _run(doc, out, ev, allow, metrics, plots, progress, preset, warned)
    except BaseException:  # FolderNotWritableError included: an unfinished experiment in a folder that cannot be written
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # refused before anything was written: no folder that looks like a run
        raise


#: ``train:`` keys a fitted model's run still reads (the prediction's seed; the progress display changes no result).
FITTED_TRAIN_KEYS = frozenset({"seed", "progress"})
#: ``data:`` keys that only sample training sets (a fitted model fits on all training cells; prediction groups
#: controls by context and batch): ``set_size`` is not here, it also cuts the controls into prediction sets.
TRAINING_SAMPLING_KEYS = ("matcher", "matcher_params", "sampling", "sets_per_epoch", "replacement", "control_sets")


def fitted_inert_settings(loaded: LoadedConfig, doc: Mapping[str, Any]) -> list[str]:
    """For a fitted model: the ``train:`` and set-sampling ``data:`` keys the user set (in their config or an override,
    not inherited from a preset; ``loaded``: the config as ``distgen.config.read_config`` read it) that have no effect,
    as one message (empty for a trained model or none set). ``doc``: the experiment's document."""
    if is_trainable(doc["model"]):
        return []
    train = sorted(loaded.explicit_keys("train") - FITTED_TRAIN_KEYS)
    data = sorted(loaded.explicit_keys("data") & set(TRAINING_SAMPLING_KEYS))
    keys = [f"train.{k}" for k in train] + [f"data.{k}" for k in data]
    if not keys:
        return []
    return [f"{', '.join(keys)} {'has' if len(keys) == 1 else 'have'} no effect: model {doc['model']['name']!r} fits itself "
            "(a FittedModel) on all training cells and is not trained on sampled sets; its options are the fit: section"]


def experiment_document(config: str | Path | Mapping[str, Any], overrides: Sequence[str] = (), progress: bool = True) -> dict[str, Any]:
    """The config document ``run`` records in ``experiment.yaml`` (loaded, overridden, without ``sweep:``)."""
    return _experiment_document(read_config(config, overrides).doc, progress)


def _experiment_document(doc: dict[str, Any], progress: bool) -> dict[str, Any]:
    """``experiment_document`` of a loaded config document ``doc`` (changed in place)."""
    doc.pop("sweep", None)
    if not progress:
        doc.setdefault("train", {})["progress"] = False
    if "model" not in doc:
        raise ConfigError("the config has no 'model' section; start from a preset (base: scdfm-small) or add model: {name: generator, ...}")
    return doc


def _dtensor() -> type:
    from torch.distributed.tensor import DTensor

    return DTensor


def _run(
    doc: dict[str, Any], out: Path, ev: Mapping[str, Any], allow: bool, metrics: Sequence[str] | None, plots: bool, progress: bool,
    preset: str | None, warned: Sequence[str] = (),
) -> dict[str, Any]:
    """The run itself; ``warned``: the warnings shown so far (``recorded_warnings``, filled as the run goes), for the notes."""
    clock = _StageClock()
    writer = D.env_from_torchrun().is_main  # under torchrun every rank trains and predicts its share; rank 0 writes
    earlier = recorded_timings(out)  # a finished experiment's, kept for the stages not run again

    def start() -> None:
        """Every check passed: ``out`` becomes this experiment's folder (``experiment.yaml``, no ``DONE`` yet). Rank 0's
        alone under torchrun: two ranks renaming one temporary file crashed one of them."""
        if not writer:
            return
        out.mkdir(parents=True, exist_ok=True)
        save_yaml(doc, out / "experiment.yaml")
        (out / DONE_FILE).unlink(missing_ok=True)

    # a resumed training continues on the split it began with (train/split.json, as distgen train --resume reads it): the
    # split the config's settings draw now can differ where an earlier distgen's splitter drew another
    stored = out / "train" / "split.json"
    resuming = is_trainable(doc["model"]) and stored.is_file() and bool(list_checkpoints(out / "train" / "checkpoints"))
    dataset = Dataset.load(doc.get("data"), stored if resuming else None).capped(predict_section(doc)["max_cells_per_condition"])  # the cap: prediction and scoring only
    if dataset.data.table.meta.get("scale") == "counts":
        raise ConfigError(
            "data.schema.normalize: false keeps the raw counts, but distgen run scores log-normalised expression (every metric "
            "and baseline of its evaluation); set normalize: true (the model trains on log1p(normalize_total) values; "
            "evaluate: {counts: nb} or distgen predict --counts also writes counts), or train with distgen train and score "
            "the counts with distgen evaluate --profile vcc2026"
        )
    check_scorable_truth(dataset)  # the evaluation's rules, before any training instead of after it
    if ev.get("counts"):
        check_counts_depths(dataset)
    seed = int((doc.get("train") or {}).get("seed", 0))
    if is_trainable(doc["model"]):
        resume = bool(list_checkpoints(out / "train" / "checkpoints"))  # an earlier attempt got this far: continue it
        made = [f for f in ("pred.h5ad", "eval/summary.json") if (out / f).exists()]
        if not resume and made:  # its model made these, and is gone: training again would put another model in its place
            raise ConfigError(
                f"{out} holds results ({', '.join(made)}) of a model whose checkpoints are gone from {out / 'train' / 'checkpoints'}: "
                "running it again would train a new model from scratch and replace them (and train/metrics.csv). Restore the "
                "checkpoints, or run into a new --out"
            )
        if resume and writer:  # once under torchrun
            print(f"note: resuming the training in {out / 'train'} from its newest checkpoint", file=sys.stderr)
        trained = train_model(doc, out / "train", dataset, resume=resume, before_training=start, preset=preset, keep_group=True)
        model, notes = trained.model, trained.notes
        diverged = trained.result.diverged
        if diverged:  # also when the warning was shown before a checkpoint this run resumed from
            notes = [*notes, divergence_message(diverged)]
        clock.lap("train" if trained.result.losses else "reload")  # no step trained: the final checkpoint read, no training
        if trained.result.losses:  # resumed: the training before the checkpoint (0 from scratch; None: not recorded)
            clock.carry("train", trained.result.seconds_before)
        elif trained.result.seconds_before is not None:  # the final checkpoint reloaded: the training it records
            clock.recorded["train"] = trained.result.seconds_before
        trained_result = trained.result
        if D.env_from_torchrun().distributed and any(isinstance(p, _dtensor()) for p in model.parameters()):  # FSDP left each rank its shards; each predicts its own groups
            D.barrier()  # rank 0 wrote the last checkpoint (the gathered weights): every rank reads the whole model from it
            device = select_device((doc.get("train") or {}).get("device", "auto"), D.env_from_torchrun().local_rank)
            model = load_run_model(out / "train", dataset, trained.result.checkpoint, "ema", device)
        pred = predict(model, dataset, "test", seed, preflight=False, weights=trained.result.checkpoint)
        provenance = prediction_provenance(seed, "test", dataset.max_cells,  # the run is the train/ folder beside the file
                                           checkpoint=Path(trained.result.checkpoint).name if trained.result.checkpoint else None,
                                           weights="ema")
        stage = "predict"
    else:
        diverged, trained_result = None, None
        model = build_model(doc["model"], dataset.info, dataset.seen_perturbations())
        fit(model, dataset, config=doc, preflight=False)  # fit: options, seed from train.seed (fit_options)
        notes = check_split(model, dataset, "test", allow)  # a fitted model answers can_predict once fitted
        for note in notes:  # as distgen train and distgen predict print them (the model's predict no longer says it here)
            print(note, file=sys.stderr)
        start()
        if writer:
            write_fit_diagnostics(model, out / FIT_FILE)
            dataset.split.save(out / "split.json")
        with preflight_checked(model):  # check_split named what it cannot predict (the notes): the model need not say it again
            pred = predict(model, dataset, "test", seed, preflight=False)
        provenance = prediction_provenance(seed, "test", dataset.max_cells, model=str(doc["model"].get("name")))
        stage = "fit_predict"
    D.shutdown()  # every rank has its share of the prediction (the training's group, kept for it); rank 0 writes and scores
    if not writer:
        return {}
    truth = dataset.truth("test")
    write_pair(dataset, pred, truth, out / "pred.h5ad", out / "real.h5ad", provenance=provenance)  # one pair: never a new pred beside an old real
    if ev.get("counts"):  # evaluate: {counts: poisson|nb|round}: also the pair in raw counts, for cell-eval2's vcc2026
        from distgen.pipeline.countspace import prediction_counts, truth_counts

        pred_counts, count_notes = prediction_counts(dataset, pred, "test", str(ev["counts"]), seed)
        notes = [*notes, *count_notes]
        from distgen.data.count_fit import dataset_sizes
        from distgen.data.counts import SIZES_KEY, sizes_provenance

        write_pair(dataset, pred_counts, truth_counts(dataset, truth), out / "pred_counts.h5ad", out / "real_counts.h5ad", "counts",
                   {**provenance, "counts": str(ev["counts"]), SIZES_KEY: sizes_provenance(dataset_sizes(dataset)[1])})
    clock.lap(stage)
    ev_seed = int(ev.get("seed", 0))
    refs, ref_notes = dataset_references(dataset, truth, ev.get("baselines", DEFAULT_BASELINES))
    report = score(
        pred, truth, refs, by_context=bool(ev.get("by_context", True)), ceiling=bool(ev.get("ceiling", True)), seed=ev_seed,
        ceiling_splits=int(ev.get("ceiling_splits", CEILING_SPLITS)), interpolated=bool(ev.get("interpolated", False)), generated=True,
        replicate=str(ev.get("replicate", "half-split")), spread=ev.get("spread", "auto"),
        metrics=metrics if metrics is not None else ev.get("metrics"), progress=progress, notes=_unique([*notes, *ref_notes, *dataset.notes(), *(w for w in warned if w not in dataset.load_warnings)]),
        sources={"pred": str(out / "pred.h5ad"), "real": str(out / "real.h5ad"), "pert_col": layout.PERT_COL, "control": layout.CONTROL},
    )
    report.summary.update(pages.run_facts(preset, model, dataset))  # preset, unembeddable atoms
    report.summary["training_diverged"] = diverged  # TrainResult.diverged: where the loss exploded (distgen sweep marks the run)
    if trained_result is not None:  # which weights these scores are of (the last step's, also under early stopping)
        report.summary["weights"] = evaluated_weights(trained_result, (doc.get("train") or {}).get("ema_decay") is not None)
    make_plots = plots and bool(ev.get("plots", True))
    clear_evaluation(out / "eval")  # evaluating again (other --metrics, no plots): none of the earlier files stay
    summary = report.write(out / "eval", make_plots)
    clock.lap("evaluate")
    summary["timings_s"] = timings = stage_timings(earlier, clock.laps, clock.partial, clock.recorded)
    (out / "timings.json").write_text(json.dumps(timings, indent=1) + "\n", encoding="utf-8")
    if make_plots:  # eval/report.html: the evaluation and the training story of this run
        pages.write_run_page(out, report)
    atomic_write_text(out / DONE_FILE, json.dumps({"metrics": list(metrics) if metrics is not None else None}) + "\n")
    return summary


def evaluated_weights(result: Any, ema: bool) -> dict[str, Any]:
    """``summary.json`` ``weights``: the step whose weights ``distgen run`` scored (the training's last: the model it holds,
    also when ``train.patience`` stopped it), its checkpoint, whether they are the EMA average, and the best validation
    (``train.monitor``'s value, step and checkpoint: ``distgen predict OUT --checkpoint best`` predicts from it)."""
    name = lambda p: Path(p).name if p else None  # noqa: E731
    return {"which": "last", "step": result.step, "checkpoint": name(result.checkpoint), "ema": ema,
            "stopped_early": result.stopped_early, "best": result.best, "best_step": result.best_step,
            "best_checkpoint": name(result.best_checkpoint)}


def weights_line(w: Mapping[str, Any]) -> str:
    """The printed summary's line saying which weights were scored (``evaluated_weights``)."""
    line = (f"weights: step {w['step']}'s (the last{', stopped early' if w.get('stopped_early') else ''}"
            f"{', EMA average' if w.get('ema') else ''}; checkpoint {w.get('checkpoint') or 'none'})")
    if w.get("best_step") is not None and w["best_step"] != w["step"]:
        best = w.get("best")
        line += (f"; the best validation ({'' if best is None else f'{best:.4g} '}at step {w['best_step']}) is not these"
                 + (": distgen predict OUT --checkpoint best predicts from it" if w.get("best_checkpoint") else ""))
    return line


#: a fitted model's ``diagnostics`` in a run folder (``FittedModel``)
FIT_FILE = "fit.json"


def check_scorable_truth(dataset: Dataset) -> None:
    """Refuse, before training, held-out cells the evaluation cannot score (``InputDataError``): a context whose truth holds a
    single control cell (``distgen.evaluation.io.check_controls`` refuses it), or held-out groups of one cell each (each
    scored NaN: a population needs ``MIN_CELLS``). Both came after the whole training; only a ``data.schema.min_cells``
    of 1 lets such a file load."""
    truth = dataset.truth("test")
    contexts, is_control = np.asarray(truth.contexts), np.asarray(truth.is_control)
    min_cells = dataset.data.schema.min_cells
    for ctx in sorted(set(contexts.tolist())):
        n = int(is_control[contexts == ctx].sum())
        if 0 < n < MIN_CELLS:
            raise InputDataError(
                f"context {ctx!r} has {n} control cell(s) for its held-out groups (data.schema.min_cells={min_cells} let the "
                f"file load); the evaluation needs at least {MIN_CELLS} per context: every perturbation's delta is taken from "
                "the control mean, which one cell cannot give. Add control cells, drop the context (data.filter), or hold out "
                "groups of other contexts")
    sizes = pd.Series(list(zip(np.asarray(truth.conditions)[~is_control], contexts[~is_control]))).value_counts()
    if len(sizes) and int(sizes.max()) < MIN_CELLS:
        capped = dataset.max_cells is not None and dataset.max_cells < MIN_CELLS
        raise InputDataError(
            f"every held-out group has fewer than {MIN_CELLS} cells (e.g. "
            f"{', '.join(f'{c} @ {x}: {n}' for (c, x), n in list(sizes.items())[:3])}): each would be scored NaN, since a "
            "population needs several cells. "
            + (f"predict.max_cells_per_condition={dataset.max_cells} (--max-cells) keeps that many per group: set it to "
               f"{MIN_CELLS} or more" if capped else
               f"data.schema.min_cells={min_cells} let the file load: hold out groups with more cells, or add cells"))


def check_counts_depths(dataset: Dataset) -> None:
    """Warn, before training, where ``evaluate: {counts: MODEL}`` would write cells past the counts profiles' limit
    (``distgen.evaluation.io.MAX_COUNTS_PER_CELL``, cell-eval2's ``max_counts_per_cell``): a held-out cell, or a control a
    generated cell draws its library size from, recorded at more than 1,000,000 counts. ``real_counts.h5ad`` and
    ``pred_counts.h5ad`` are written at those sizes, and ``distgen evaluate --profile vcc2026`` refuses them, as cell-eval2
    does; the run itself, scored on log values, is unaffected."""
    from distgen.data.count_fit import dataset_sizes
    from distgen.evaluation.io import MAX_COUNTS_PER_CELL

    groups = dataset.groups("test")
    rows = np.unique(np.concatenate([np.zeros(0, dtype=np.int64), *(g.cells for g in groups), dataset.control_pool(groups),
                                     *(g.controls for g in groups)]).astype(np.int64))
    sizes, source = dataset_sizes(dataset)
    over = rows[sizes[rows] > MAX_COUNTS_PER_CELL]
    if len(over):
        warn(f"evaluate.counts: {counted(len(over), 'cell')} of the held-out cells and the controls generated cells draw their "
             f"depth from hold{'s' if len(over) == 1 else ''} more than {MAX_COUNTS_PER_CELL:,.0f} counts ({source}; the largest {float(sizes[over].max()):,.12g}): "
             "real_counts.h5ad and pred_counts.h5ad will hold them at that depth, and distgen evaluate --profile vcc2026 "
             "(or celleval2) refuses such files, as cell-eval2 does (max_counts_per_cell); no cell holds a million molecules: "
             "check that these are the raw counts of single cells and their library sizes, or drop evaluate.counts")


def write_fit_diagnostics(model: Any, path: Path) -> bool:
    """Write a fitted model's ``diagnostics`` mapping (when it has a non-empty one) to ``path`` as JSON; whether written."""
    diagnostics = getattr(model, "diagnostics", None)
    path.unlink(missing_ok=True)  # a file of an earlier run in this folder is not this fit's
    if not isinstance(diagnostics, Mapping) or not diagnostics:
        return False
    atomic_write_text(path, json.dumps(dict(diagnostics), indent=1, default=str) + "\n")
    return True


def _unique(notes: Sequence[str]) -> list[str]:
    """``notes`` in order, each once (a pre-flight note printed and also warned is one note)."""
    return list(dict.fromkeys(notes))


def record_moved(out: Path, record: Mapping[str, Any] | None) -> None:
    """Write ``data_moved.json`` (``same_data_moved``'s record, None: nothing to write): ``distgen run`` (``_checked_run``:
    under ``out``'s lock, or without it for a finished experiment it only reads), ``distgen sweep`` under its own lock
    (``_sweep``, for its run folders). No lock is needed: the record is true of the file whoever writes it (its path, stamp
    and the hash it matched; read only where all three still hold) and is published whole, so two writers leave a true
    one, and a folder's holder never reads it. A folder that cannot be written keeps no record: the file is hashed again
    next time. Taking the folder's lock for a moment to write it would refuse a ``distgen run`` started into the folder
    then, and take over a stale lock file beside a finished experiment."""
    if record is not None:
        with contextlib.suppress(OSError):
            atomic_write_text(out / MOVED_RECORD, json.dumps(record, indent=1) + "\n")


#: Stages every run of an experiment runs (an earlier run's seconds for them are replaced, never kept).
STAGES_RUN_AGAIN = ("predict", "fit_predict", "evaluate")


#: ``timings.json``'s flag that its ``train`` seconds are only those since a resume: the checkpoint resumed from was
#: written before checkpoints recorded the seconds trained (``state.json`` ``train_seconds``).
TRAIN_PARTIAL = "train_partial"


def stage_timings(
    earlier: Mapping[str, Any], laps: Mapping[str, float], partial: Collection[str] = (), recorded: Mapping[str, float] | None = None,
) -> dict[str, float | bool]:
    """``timings.json`` of a run whose stages took ``laps`` (``partial``: the stages whose earlier seconds are unknown,
    flagged ``<stage>_partial: true``): the stages it did not run again (the training, when it resumed at its last step:
    its lap is ``reload``, the data and the final checkpoint read) keep their ``earlier`` seconds (those of a finished
    experiment evaluated again) and flags, so a re-evaluation does not record the reload's seconds as the training's;
    where ``earlier`` has none (no ``timings.json``: the run stopped after its training), the seconds the reloaded
    checkpoint records (``recorded``: the training loop's, ``state.json`` ``train_seconds``).
    Only a run that reloaded the trained model (its lap ``reload``) keeps an earlier ``train``: a fitted model run into a
    folder whose replaced experiment (another config, that left nothing but its files) left ``timings.json`` does not
    record that experiment's training."""
    flags: dict[str, float | bool] = {f"{stage}_partial": True for stage in partial}
    if "reload" not in laps:
        return {**laps, **flags}
    kept: dict[str, float | bool] = {k: v for k, v in earlier.items() if k not in laps and k not in ("reload", *STAGES_RUN_AGAIN)
                                     and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if "train" in kept and earlier.get(TRAIN_PARTIAL) is True:  # the kept seconds stay flagged
        kept[TRAIN_PARTIAL] = True
    kept |= {k: round(v, 2) for k, v in (recorded or {}).items() if k not in kept and k not in laps}
    return {**kept, **laps, **flags}


class _StageClock:
    """Wall seconds per stage of an experiment (written to ``timings.json``)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.laps: dict[str, float] = {}
        self.partial: set[str] = set()  #: stages whose seconds before this run are unknown (``stage_timings``)
        self.recorded: dict[str, float] = {}  #: seconds of stages not run again, as a reloaded checkpoint records them

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round(now - self._last, 2)
        self._last = now

    def carry(self, stage: str, before: float | None) -> None:
        """Add to ``stage``'s lap the seconds an earlier, interrupted run spent on it (a resumed training's, from its
        checkpoint); ``None``: they are not recorded, and the stage is flagged partial."""
        if before is None:
            self.partial.add(stage)
        else:
            self.laps[stage] = round(self.laps[stage] + before, 2)


def _verdict_words(test: Mapping[str, Any], level: float = 0.95) -> str:
    """``vs control: model better, and than each of the 3 baselines (p 0.003, Holm 0.01)``: the paired verdict against the
    strongest baseline, in words, with the p of its claim (``claim_p``: every baseline, or Holm over them) and Holm's over
    the metrics."""
    said = {"model": "model better", "baseline": "baseline better", "negligible": "no practical difference",
            "inconclusive": "not shown either way"}.get(str(test["verdict"]), str(test["verdict"]))
    width = test.get("margin")
    if (test["verdict"] == "inconclusive" and isinstance(width, int | float) and isinstance(test.get("ci"), list | tuple)
            and small_unshown(_numbers(test), float(width), 1.0 - level)):
        said = "a real difference, within the margin by its estimate only (not shown to be negligible)"
    family = test.get("family") or []
    if test["verdict"] == "model" and test.get("claim") == CLAIM_MODEL and len(family) > 1:
        said = f"model better, and than each of the {len(family)} baselines"
    p, q = test.get("claim_p", test.get("wilcoxon_p")), test.get("holm_p")  # the p of the claim made (baseline_claim)
    ps = [f"{k} {float(v):.2g}" for k, v in (("p", p), ("Holm", q)) if isinstance(v, int | float) and v == v]
    return f"vs {test.get('baseline')}: {said}" + (f" ({', '.join(ps)})" if ps else "")


def _numbers(test: Mapping[str, Any]) -> dict[str, Any]:
    """``test``'s ``mean_difference``, ``wilcoxon_p`` and ``ci`` as floats (a summary.json read back holds null for NaN)."""
    f = lambda v: float("nan") if v is None else float(v)  # noqa: E731
    return {"mean_difference": f(test.get("mean_difference")), "wilcoxon_p": f(test.get("wilcoxon_p")),
            "ci": [f(v) for v in test.get("ci") or (None, None)]}


HEADLINE = ("mse", "pearson_delta", "discrimination_score_l1", "overlap_at_N")


def headline(summary: Mapping[str, Any], names: Sequence[str] | None = None) -> str:
    """A short plain-text table of the model next to its baselines and ceiling.

    ``names`` defaults to ``HEADLINE`` followed by each scored metric outside distgen's default suite (a plugin's
    metric, or an opt-in one that ``evaluate.metrics`` named): a run that scored a plugin's metric printed only the
    four headline metrics, and the metric its author had just written was found only in ``summary.md``.

    Each row ends with the paired verdict against the strongest baseline (``vs_strongest_baseline``: ``model better`` only
    where summary.md names the model, with its p and Holm p; ``not shown either way`` where a larger mean is all there is);
    a normalised score whose scale is noise (``normalised_caution``) is marked ``(no scale)`` with the reason, and a
    strongest baseline not told apart from the runner-up (``runner_up.told_apart`` false) is said on the line below.
    A baseline that stands for others (``baseline_aliases``: identical predictions) is labelled as in ``summary.md``,
    ``mean_perturbation (= linear)``. Every undefined value is shown (``nan``, or ``normalised undefined``) and followed by an indented line with its
    reason from the summary (``model_note``, ``baseline_notes``, ``ceiling_note``, ``normalised_note``). ``summary`` may
    be the one ``run`` returned (NaN) or one read back from ``summary.json`` (null).
    """
    rows = []
    metrics = summary.get("metrics", {})
    levels = [float(m["ci_level"]) for m in metrics.values() if isinstance(m, Mapping) and m.get("ci_level")]
    level = levels[0] if levels else 0.95
    if names is None:
        from distgen.evaluation.suite import DEFAULT_METRICS

        names = [*HEADLINE, *(m for m in metrics if m not in DEFAULT_METRICS and m not in HEADLINE)]
    aliases: dict[str, list[str]] = {}  # a baseline shown once for several (summary.md's "mean_perturbation (= linear)")
    for alias, why in (summary.get("baseline_aliases") or {}).items():
        if isinstance(why, Mapping) and why.get("same_as"):
            aliases.setdefault(str(why["same_as"]), []).append(str(alias))
    sentences, grouped = runner_up_notes({n: metrics[n] for n in names if isinstance(metrics.get(n), Mapping)}, level,
                                         row_noun(summary.get("contexts")))
    for name in names:
        m = metrics.get(name)
        if not m:
            continue
        notes: list[str] = []

        def said(label: str, value: Any, why: Any, notes: list[str] = notes) -> str:
            v = float("nan") if value is None else float(value)
            if v != v:
                notes.append(f"{label} nan: {why or 'undefined'}")
                return f"{label} nan"
            return f"{label} {v:.4g}"

        cells = [f"{name:<26}", said("model", m.get("model"), m.get("model_note"))]
        for b, v in (m.get("baselines") or {}).items():
            label = f"{b} (= {', '.join(aliases[b])})" if b in aliases else b
            cells.append(said(label, v, (m.get("baseline_notes") or {}).get(b)))
        if "ceiling" in m:
            cells.append(said("ceiling", m["ceiling"], m.get("ceiling_note")))
        if "normalised" in m:
            norm = m["normalised"]
            if norm is None or norm != norm:
                cells.append("normalised undefined")
                notes.append(f"normalised undefined: {m.get('normalised_note') or 'no reason recorded'}")
            elif m.get("normalised_caution"):
                cells.append(f"normalised {norm:.3g} (no scale)")
                notes.append(f"normalised without a scale: {m['normalised_caution']}")
            else:
                cells.append(f"normalised {norm:.3g}")
        test = m.get("vs_strongest_baseline")
        if isinstance(test, Mapping) and test.get("verdict"):
            level = float(m.get("ci_level") or 0.95)
            cells.append(_verdict_words(test, float(m.get("ci_level") or 0.95)))
            if name in sentences:
                notes.append(sentences[name])
        rows.append("  ".join(cells))
        rows += [f"    {n}" for n in dict.fromkeys(notes)]
    rows += grouped
    w = summary.get("weights")
    if isinstance(w, Mapping) and w.get("step") is not None:  # which weights were scored: said where the scores are read
        rows.append(weights_line(w))
    d = summary.get("training_diverged")
    if d:  # the scores above are a diverged model's: said where they are read, not only in the notes
        rows.append(f"DIVERGED: the training loss exploded at step {d['step']:.0f} ({d['loss']:.4g}, first step {d['first_loss']:.4g}); "
                    "these scores are a diverged model's (see the notes in eval/summary.md)")
    return "\n".join(rows) if rows else json.dumps(metrics)[:500]
