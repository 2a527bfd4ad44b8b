"""Prediction: generate every held-out (condition, context, batch) group of a split part, as ``Cells``.

``predict(model, dataset)`` is the one way to predict (``distgen run``, ``distgen predict`` and
``distgen.predict`` all call it). For every group of ``Dataset.groups(part)`` the model generates
as many cells as the group has real cells, from control cells of the same context and batch
(held-out controls when the split has them, else training controls), labelled with that batch, in
sets of ``data.set_size`` cells. A condition in a context is thus generated in the batch mix of its real cells.
Each group is drawn under a seed from ``seed`` and its own labels (``distgen.data.groups.group_seed``), so its
cells do not depend on which other groups are predicted beside it, nor in what order; under torchrun each rank
takes every ``world``-th group and the merged result equals the single-process one.

``predict_run`` is ``distgen predict``: the model of a run directory (config + checkpoint), its
predictions written in the cell-eval layout (``distgen.data.layout``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from distgen.conditioners import table_record
from distgen.config import ConfigError, bad_byte, load_yaml
from distgen.data import layout
from distgen.data.doses import group_doses
from distgen.data.groups import group_seed
from distgen.data.prepared import Dataset, Group, control_draw, refuse_anndata
from distgen.data.record import RECORD_FILE, DataRecord
from distgen.data.section import BUNDLED, DataSection, data_section
from distgen.errors import DistgenRuntimeWarning, DivergenceWarning, InputDataError, UsageError, warn
from distgen.models.base import checked_prediction, is_untrained
from distgen.models.generator import build_model
from distgen.models.preflight import PreflightWarning, check_split, check_vocabulary, preflight_checked, vocabulary_differences
from distgen.pipeline.outputs import check_distinct, check_not_inputs, check_output_file
from distgen.registry import RegistryError
from distgen.train import distributed as D
from distgen.train.checkpoint import (
    CheckpointError,
    check_config_matches,
    check_finite_samples,
    chosen_checkpoint,
    load_checkpoint,
    read_as_now,
    resolve_checkpoint,
)
from distgen.train.device import float32_default, select_device, setup_backends
from distgen.train.lock import RunLock
from distgen.train.manifest import WARNINGS_KEY, check_same_data, plugin_changes, read_manifest, recorded_data_hash
from distgen.types import Cells
from distgen.wording import counted, did_you_mean, first_of

#: Keys of the optional ``predict:`` config section (``distgen run``, ``distgen predict``).
PREDICT_KEYS = ("max_cells_per_condition",)
#: Cells generated and scored per held-out group when a config does not say (``null`` there: every real cell).
#: Generation dominates a diffusion or flow model's prediction time on a CPU, and 500 cells already
#: pin a group's mean and spread far below the differences the metrics resolve.
DEFAULT_MAX_CELLS = 500


def predict_section(doc: Any) -> dict[str, Any]:
    """The ``predict:`` section, checked: ``{max_cells_per_condition: N}`` (at most N real cells per held-out
    group; absent: ``DEFAULT_MAX_CELLS``; ``null``: all)."""
    section = dict((doc or {}).get("predict") or {})
    unknown = sorted(set(section) - set(PREDICT_KEYS))
    if unknown:
        raise ConfigError(f"predict: unknown key(s) {unknown}.{did_you_mean(unknown, PREDICT_KEYS)} Allowed: {', '.join(PREDICT_KEYS)}")
    n = section.setdefault("max_cells_per_condition", DEFAULT_MAX_CELLS)
    if n == "all":
        n = section["max_cells_per_condition"] = None
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigError(f"predict.max_cells_per_condition must be an integer >= 1, null or 'all', got {n!r}")
    return section


def gene_panel(dataset: Dataset, groups: list[Group], spec: str | None) -> np.ndarray | None:
    """Column indices of the genes to predict: ``None``/``"all"`` (every gene), ``"hvg:N"`` or a file of gene names.

    ``hvg:N`` takes the ``N`` most variable genes of the groups' real cells and their control cells
    (scDFM's evaluation panel: the 1,000 most variable genes of test and control cells).
    """
    if spec is None or spec == "all":
        return None
    if spec.startswith("hvg:"):
        from distgen.data.preprocess import hvg_indices

        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            raise ConfigError(f"--genes hvg:N needs an integer N, got {spec!r}") from None
        if n < 1:  # refused here, as a usage error: hvg_indices would fail inside ('needs n_top_genes >= 1')
            raise ConfigError(f"--genes hvg:N needs N >= 1 (the number of most variable genes to predict), got {spec!r}")
        cells = np.unique(np.concatenate([*(g.cells for g in groups), *(g.controls for g in groups)]))
        kept = np.sort(hvg_indices(dataset.data.table.X[torch.from_numpy(cells)].numpy(), n))
        if len(kept) > n:  # scanpy's seurat flavour keeps every gene tied at the cut (genes alone in a dispersion bin tie at 1)
            warn(f"--genes {spec}: {len(kept)} genes are predicted, not {n}: scanpy's highly_variable_genes (flavour seurat, "
                 f"as scDFM's panel) keeps every gene whose normalised dispersion ties the {n}th; give a file of gene names "
                 "for an exact panel")
        return kept
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"--genes must be 'all', 'hvg:N' or a file of gene names, got {spec!r} (no such file)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--genes {spec}: the file is not UTF-8 text: {bad_byte(raw, exc)}; save it as UTF-8, one gene "
                          "name per line") from None
    names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not names:  # refused here: an empty panel fails inside torch ('tensors used as indices must be long...')
        raise ConfigError(f"--genes {spec}: the file lists no gene; give one gene name per line (or --genes all)")
    index = dataset.info.gene_index()
    unknown = [n for n in names if n not in index]
    if unknown:
        raise InputDataError(f"--genes {spec}: {counted(len(unknown), 'gene')} {'is' if len(unknown) == 1 else 'are'} not in the run's "
                             f"genes: {first_of(unknown, 5, render=repr)}")
    return np.array(sorted({index[n] for n in names}))


@torch.no_grad()
def generate_group(model: Any, dataset: Dataset, group: Group, set_size: int, seed: int, device: torch.device,
                   genes: np.ndarray | None = None, weights: str | Path | None = None, dose: torch.Tensor | None = None) -> np.ndarray:
    """``[n_real, G]`` (or ``[n_real, len(genes)]``) generated cells for one group (deterministic in ``seed`` and its labels).

    The control cells it starts from are ``control_draw``'s (fixed per group, shared with the references);
    ``seed`` drives the model's own randomness through ``group_seed(seed, condition, context, batch)``, so
    the group's cells are the same whichever other groups are predicted with it.

    The group is asked at ``dose`` (``[P]`` per atom, as ``Dataset.labels`` resolves it), by default at the dose its cells
    carry (``Dataset.labels``: one per population; data at several doses per condition is a group per dose, ``dex@10``).

    NaN or inf in the generated cells is a ``NonFiniteSamplesError`` naming the group and ``weights``
    (the checkpoint they came from), never a silently written prediction.
    """
    n = len(group.cells)
    k = math.ceil(n / set_size)
    pick = torch.from_numpy(group.controls[control_draw(len(group.controls), k * set_size, group.condition, group.context, group.batch)])
    control = dataset.data.table.X[pick].reshape(k, set_size, -1).to(device)
    # the group's own labels, its recorded dose included (as predict_to_disk reads them), unless asked at another dose
    # asked_doses warned, once for the prediction, of a dose outside the training range (the one asked, or the group's own,
    # a held-out top dose). Not a warnings.catch_warnings per group: leaving one resets Python's once-per-place record, so
    # every warning of the model's generation would be printed once per group
    labels = dataset.labels([group.condition] * k, [group.context] * k, [group.batch] * k, warn_range=False)
    if dose is not None:
        labels = dataclasses.replace(labels, dose=dose[: labels.dose.shape[1]].expand_as(labels.dose).clone())
    labels = labels.to(device)
    torch.manual_seed(group_seed(seed, group.condition, group.context, group.batch, 1))
    mask = torch.ones(k, set_size, dtype=torch.bool, device=device)
    if genes is not None and "genes" in inspect.signature(model.predict).parameters:
        out = model.predict(control, mask, labels, genes=torch.from_numpy(genes).to(device))
    else:  # a model without a gene-panel option generates every gene; keep the panel's columns
        out = checked_prediction(model, model.predict(control, mask, labels), control)
        out = out if genes is None else out[..., torch.from_numpy(genes).to(out.device)]
    cells = out.reshape(k * set_size, -1)[:n].float().cpu().numpy()
    batch = f" (batch {group.batch})" if len(dataset.info.batches) > 1 else ""
    check_finite_samples(cells, f"condition {group.condition} @ {group.context}{batch}", weights)
    return cells  # type: ignore[no-any-return]


def check_whole_model(model: Any) -> None:
    """Refuse a model whose parameters are FSDP shards (``DTensor``: ``distgen.fit`` under torchrun with
    ``train.strategy=fsdp`` trains the caller's model in place, sharded), naming the fix (``UsageError``), before predicting
    with it crashes inside the model ("got mixed torch.Tensor and DTensor"); ``distgen run`` reads the whole
    weights of the checkpoint instead (``load_run_model``), and so can a Python caller (``distgen.load_run``)."""
    parameters = getattr(model, "parameters", None)
    if not callable(parameters):
        return
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # a torch without distributed tensors holds none
        return
    if any(isinstance(p, DTensor) for p in parameters()):
        raise UsageError(
            f"the {type(model).__name__}'s parameters are FSDP shards (DTensor): distgen.fit under torchrun with "
            "train.strategy=fsdp trains the model in place, sharded across the ranks, and predicting needs the whole model. "
            "Read the whole weights that rank 0 wrote at the last step: give fit a run_dir (distgen.fit(model, data, "
            "run_dir=RUN_DIR, ...)), then run = distgen.load_run(RUN_DIR) and distgen.predict(run.model, run.data) on any "
            "rank, as distgen run does; or train with train.strategy=ddp, which leaves every rank the whole model")


#: What ``predict`` (and ``distgen.predict``) take as their data, as their refusals say it.
PREDICT_TAKES = "a Dataset (distgen.load_data: its split says what to predict; a loaded run's: run.data)"


def check_predict_data(dataset: Any) -> None:
    """``TypeError`` unless ``dataset`` is a ``Dataset``, naming the ways in (an AnnData: ``refuse_anndata``)."""
    if isinstance(dataset, Dataset):
        return
    refuse_anndata("predict", dataset, PREDICT_TAKES)
    raise TypeError(f"predict: data must be {PREDICT_TAKES}, got {type(dataset).__name__}; to generate from control cells of your "
                    "own, call model.predict(control, mask, labels) on tensors (Dataset.data.encode(adata) reads an AnnData in the "
                    "model's terms)")


def predict(
    model: Any,
    dataset: Dataset,
    part: str = "test",
    seed: int = 0,
    set_size: int | None = None,
    *,
    allow_unembedded: bool = False,
    preflight: bool = True,
    genes: str | None = None,
    weights: str | Path | None = None,
    max_cells: int | None = None,
    doses: Any = None,
) -> Cells:
    """Generate every perturbed group of split ``part`` with a fitted ``model``: the generated cells, then the control pool.

    Parameters
    ----------
    model
        Any fitted model with ``predict(control, control_mask, labels)``.
    dataset
        The run's ``Dataset`` (``distgen.load_data``).
    part
        ``test`` (default), ``val`` or ``train``.
    seed
        Each group is generated under a seed from ``seed`` and its (condition, context, batch) labels
        (``group_seed``): its cells are the same whichever other groups ``part`` holds.
    set_size
        Cells per generated set (default: the data section's).
    allow_unembedded, preflight
        The model is first checked against the held-out conditions of ``part``
        (``distgen.models.preflight.check_split``): atoms a trained model cannot embed stop here unless
        ``allow_unembedded`` (then a ``PreflightWarning``); ``preflight=False`` skips the check.
    genes
        Predict only a gene panel (``gene_panel``: ``"hvg:N"`` or a file of gene names); the
        returned cells then hold only those genes. Default: every gene.
    weights
        Where the model's weights come from (a checkpoint), named if it generates NaN or inf
        (``distgen.train.checkpoint.NonFiniteSamplesError``).
    max_cells
        At most this many cells per group (``Dataset.capped``: a fixed subset of its real cells;
        score against ``dataset.capped(max_cells).truth(part)``). Default: the dataset's own cap.
    doses
        The doses to ask the groups at (``schema.dose_col``). Default: each group at the dose its cells carry, as
        ``distgen predict`` asks it. A number: every group's atoms at it; a mapping ``{condition: dose}`` (conditions as
        ``part``'s groups write them, ``A+B``): those conditions at a number (each atom) or one number per atom in the
        order the condition writes them, the others at their own. Checked and warned about as ``Dataset.labels`` does
        (``distgen.data.doses``); the truth stays the measured cells, at their own dose.

    Returns
    -------
    Cells
        Per group (in ``dataset.groups(part)`` order) as many generated cells as it has real ones,
        labelled with its condition, context and batch, followed by the real control cells they were
        generated from (``dataset.truth(part)`` has the same layout).
    """
    if not callable(getattr(model, "predict", None)):
        raise TypeError(f"predict: {type(model).__name__} has no predict(control, control_mask, labels) method")
    check_predict_data(dataset)
    check_whole_model(model)
    check_vocabulary(model, dataset.info, "predict")
    if is_untrained(model):  # a model distgen.build made, never fit nor loaded: random weights, scored as a model
        warn(f"predict: this {type(model).__name__} was built (distgen.build) and never trained nor given weights, so its cells "
             "come from its random initial weights; train it first (distgen.fit(model, data, ...)), or predict with a trained "
             "run (distgen.load_run(RUN).model) or after model.load_state_dict(...)", DistgenRuntimeWarning)
    if max_cells is not None:
        dataset = dataset.capped(max_cells)
    groups = dataset.groups(part)
    m = dataset.section.set_size if set_size is None else int(set_size)
    if m < 1:
        raise ValueError(f"predict: set_size must be >= 1, got {m}")
    if preflight:
        for w in check_split(model, dataset, part, allow_unembedded):
            warn(w, PreflightWarning)
    first = next(model.parameters(), None) if isinstance(model, nn.Module) else None
    device = first.device if first is not None else torch.device("cpu")
    if isinstance(model, nn.Module):
        model.eval()
    env = D.init_from_env(device)
    panel = gene_panel(dataset, groups, genes)
    asked = asked_doses(dataset, groups, doses)
    table = None if asked is None else dose_tensor(asked)
    with preflight_checked(model) if preflight else contextlib.nullcontext():  # the model need not say again what pre-flight said
        mine = {i: generate_group(model, dataset, g, m, seed, device, panel, weights, None if table is None else table[i])
                for i, g in enumerate(groups) if i % env.world_size == env.rank}
    gathered = [mine]
    if env.distributed:
        import torch.distributed as dist

        gathered = [None] * env.world_size  # type: ignore[list-item]
        dist.all_gather_object(gathered, mine)
    cells = {i: c for part_ in gathered for i, c in part_.items()}
    return generated_cells(dataset, groups, [cells[i] for i in range(len(groups))], panel, asked_labels(dataset, groups, asked))


def asked_labels(dataset: Dataset, groups: list[Group], asked: list[tuple[float, ...]] | None) -> list[str] | None:
    """For data at several doses per condition asked at other doses: each group's population label at the doses asked
    (``dexa@1000`` asked at 5 is written ``dexa@5``: its label names the dose its cells were generated at, so it is never
    scored against the measured ``dexa@1000``; two groups asked at one dose share one label). None otherwise.

    ``asked`` is ``asked_doses``'s, as resolved (float64), not the model's float32 tensor: ``dexa@0.3`` at its own dose
    stays ``dexa@0.3`` (float32 wrote it ``dexa@0.30000001192092896``, a label the truth does not hold)."""
    if asked is None or not dataset.data.dosed:
        return None
    from distgen.data.conditions import dose_label, parse_dose_label
    from distgen.types import COMBO

    out = []
    for g, row in zip(groups, asked):
        read = parse_dose_label(g.condition, COMBO)
        out.append(g.condition if read is None else dose_label(read[0], row[: len(read[0])], COMBO))
    return out


def said_origin(run_dir: Path) -> dict[str, str]:
    """For a run whose weights distgen imported (``distgen import``): the note saying which official file they came from,
    printed, and the fields a prediction's provenance records of it (``train.run_files.weights_origin``); ``{}`` else."""
    from distgen.train.run_files import weights_origin

    origin = weights_origin(run_dir)
    if origin is None:
        return {}
    print(f"note: {origin[0]}", file=sys.stderr)
    return origin[1]


def asked_doses(dataset: Dataset, groups: list[Group], doses: Any) -> list[tuple[float, ...]] | None:
    """Per group the dose per atom (sorted) it is asked at, or None (each at its own, ``generate_group``'s default).

    ``doses`` is ``predict``'s: None, a number, or a mapping ``{condition: dose}``; resolved in one call to
    ``distgen.data.doses.group_doses`` (what ``predict_to_disk(doses=)`` and ``Dataset.labels`` ask too: checked, and doses
    outside the training range warned about once for the whole prediction).
    """
    if doses is None and dataset.data.dosed:  # each group at its own measured dose: resolved here only to warn, once, of
        from distgen.data.conditions import parse_dose_label  # a held-out dose outside the training range (worded as such)
        from distgen.data.doses import read_tags, resolve_doses
        from distgen.types import COMBO

        read = [parse_dose_label(g.condition, COMBO) for g in groups]
        resolve_doses(dataset.dose_record(), [r[0] if r is not None else () for r in read], [g.context for g in groups], None,
                      None, "predict", read_tags(read))
    return group_doses(dataset.dose_record(), [g.condition for g in groups], [g.context for g in groups], doses,
                       control=dataset.info.control_label, delimiters=[dataset.data.schema.combo_delimiter],
                       dosed=dataset.data.dosed)


def dose_tensor(asked: list[tuple[float, ...]]) -> torch.Tensor:
    """``[len(asked), P]`` ``asked_doses``'s doses as the model reads them (float32, padded with 0)."""
    width = max([len(d) for d in asked] + [1])
    return torch.tensor([list(d) + [0.0] * (width - len(d)) for d in asked], dtype=torch.float32)


def generated_cells(dataset: Dataset, groups: list[Group], cells: list[np.ndarray], genes: np.ndarray | None = None,
                    labels: list[str] | None = None) -> Cells:
    """One generated array per group, labelled (``labels``, default each group's condition), followed by the groups' real
    control pool (``genes``: a panel's columns)."""
    pool = dataset.control_pool(groups)
    data = dataset.data
    n = [len(c) for c in cells]
    controls = data.table.X[torch.from_numpy(pool)]
    names = list(dataset.info.genes)
    if genes is not None:
        controls, names = controls[:, torch.from_numpy(genes)], [names[i] for i in genes]
    return Cells(
        torch.cat([torch.from_numpy(np.concatenate(cells)), controls]),
        [c for c, k in zip(labels or [g.condition for g in groups], n) for _ in range(k)] + [dataset.info.control_label] * len(pool),
        names,
        [g.context for g, k in zip(groups, n) for _ in range(k)] + data.contexts[pool].tolist(),
        [g.batch for g, k in zip(groups, n) for _ in range(k)] + data.batches[pool].tolist(),
        dataset.info.control_label,
    )


def write_cells(dataset: Dataset, cells: Cells, path: str | Path, kind: str, scale: str = "lognorm",
                provenance: dict[str, Any] | None = None) -> Any:
    """``cells`` of ``dataset`` in the cell-eval layout at ``path`` (a context / batch column when the data has several;
    combinations labelled as the data labels them, ``schema.combo_delimiter``); ``provenance`` (``prediction_provenance``)
    is recorded in the file's ``uns["distgen"]["provenance"]``."""
    return layout.write(cells, path, kind, provenance=provenance, **_file_layout(dataset, scale))


def write_pair(dataset: Dataset, pred: Cells, truth: Cells, pred_path: str | Path, real_path: str | Path, scale: str = "lognorm",
               provenance: dict[str, Any] | None = None) -> Any:
    """A prediction and its truth as ``write_cells`` writes them, as one pair (``distgen.data.layout.write_pair``): both
    record the truth's fingerprint, so an evaluation refuses a prediction beside another truth; the prediction records
    ``provenance``."""
    return layout.write_pair(pred, truth, pred_path, real_path, provenance=provenance, **_file_layout(dataset, scale))


def prediction_provenance(seed: int, part: str, max_cells: int | None, **options: Any) -> dict[str, Any]:
    """What a prediction file records of how it was made (``uns["distgen"]["provenance"]``): the sampling seed, the split
    part, the cap of cells per group (``"all"``: none), the distgen version and ``options`` that were given (None and
    empty ones left out; lists joined by spaces). With the run's data and weights, these make the same cells again."""
    from distgen import __version__

    out: dict[str, Any] = {"seed": int(seed), "part": part, "max_cells": "all" if max_cells is None else int(max_cells),
                           "distgen": __version__}
    for key, value in options.items():
        if value is None or value == [] or value == ():
            continue
        out[key] = " ".join(map(str, value)) if isinstance(value, list | tuple) else value if isinstance(value, int | float | str) else str(value)
    return out


def doses_provenance(doses: Any) -> str | None:
    """``doses`` as a prediction file records them (``provenance["doses"]``): None when not asked."""
    return None if doses is None else str(dict(doses) if isinstance(doses, Mapping) else doses)


def _file_layout(dataset: Dataset, scale: str) -> dict[str, Any]:
    return {"with_context": len(dataset.info.contexts) > 1, "with_batch": len(dataset.info.batches) > 1, "scale": scale,
            "combo_delimiter": dataset.data.schema.combo_delimiter, "perturbation_type": dataset.data.schema.perturbation_type}


# ---------------------------------------------------------------------------------------------- distgen predict
#: Config paths a trained model may be sampled with differently (``distgen predict --sampling``): they
#: choose how the dynamics integrate or guide, never a parameter's shape or value.
SAMPLING_PATHS = ("model.dynamics.guidance", "model.dynamics.sampler", "model.dynamics.solver")


def sampling_overrides(overrides: Any) -> list[str]:
    """Check ``KEY=VALUE`` overrides of how a trained model samples (``SAMPLING_PATHS`` and below only)."""
    out = []
    for text in overrides or ():
        key = str(text).split("=", 1)[0].strip()
        if "=" not in str(text) or not any(key == p or key.startswith(p + ".") for p in SAMPLING_PATHS):
            raise ConfigError(f"--sampling changes only how a trained model samples ({', '.join(p + '[.*]' for p in SAMPLING_PATHS)}) "
                              f"as KEY=VALUE; got {text!r}")
        out.append(str(text))
    return out


def _add_to_message(err: Exception, note: str) -> None:
    """``note`` after ``err``'s message, in place: its class (so its exit code), its fields, cause and traceback stay (a
    plugin's subclass may take other constructor arguments than one message, so a new one is not built)."""
    text = f"{str(err).rstrip()} {note}"
    err.args = (text,)
    if str(err) != text:  # a class that words its message from its own fields: the note goes beside it
        err.add_note(note)


def load_run_model(run_dir: Path, dataset: Dataset | DataRecord, checkpoint: str | Path | None, weights: str, device: torch.device,
                   sampling: Any = (), data_checked: bool = False) -> nn.Module:
    """The run's model with checkpoint weights (EMA weights unless ``weights='raw'``).

    ``dataset`` is the run's training data, or its ``DataRecord`` (what the run folder keeps of it: the vocabularies and
    the atoms seen in training are all a model is built from; the rest is in the checkpoint).

    The run's ``config.yaml`` must still describe the model and data the checkpoint was trained
    with (``check_config_matches``): an edited config is an error naming the changed keys.
    ``sampling`` (``KEY=VALUE`` under ``SAMPLING_PATHS``) builds the model with other sampling
    settings (guidance weight, sampler, ODE solver) around the same weights. ``data_checked``: the data was compared with
    the run's recorded content hash (or not read), so a checkpoint naming another ``data.dataset`` path is accepted.
    """
    from distgen.config import apply_overrides

    config = dict(read_as_now(load_yaml(run_dir / "config.yaml")))  # an earlier distgen's spellings of what computes the same
    info_file = run_dir / "info.json"
    if info_file.exists():  # the weights are indexed by the run's genes and by its atom, context and batch ids
        saved = _run_info(info_file)
        if isinstance(dataset, Dataset):
            dataset.data.check_genes(saved["genes"])
        vocab: dict[str, Any] = {k: tuple(saved[k]) for k in ("perturbations", "contexts", "batches") if isinstance(saved.get(k), list)}
        diff = vocabulary_differences(dataclasses.replace(dataset.info, **vocab), dataset.info)
        if diff:
            raise ConfigError(f"{run_dir} was trained on other vocabularies than this data's ({'; '.join(diff)}; from its "
                              "info.json): its label ids would name other atoms, contexts or batches. Predict with the run's data")
    if weights not in ("ema", "raw"):
        raise ConfigError(f"--weights must be ema or raw, got {weights!r}")
    ckpt = load_checkpoint(checkpoint or run_dir, weights_only=True, ema=weights == "ema")  # raw: a damaged EMA file is not read
    check_config_matches(ckpt, config, str(run_dir / "config.yaml"), data_checked=data_checked)
    model_node = apply_overrides(config, sampling_overrides(sampling))["model"] if sampling else config["model"]
    seen = dataset.seen_perturbations() if isinstance(dataset, Dataset) else list(dataset.seen_perturbations)
    with table_record.recorded(table_record.read(run_dir), run_dir) as tables:  # table files: keys from the run, vectors from
        try:  # the checkpoint (a file there is compared with them below)
            model = build_model(model_node, dataset.info, seen)
        except (ConfigError, RegistryError) as err:  # a plugin's component gone or changed: say which version built the run
            note = plugin_changes(read_manifest(run_dir / "manifest.json")) if (run_dir / "manifest.json").is_file() else ""
            if note:
                _add_to_message(err, note)
            raise
    state = ckpt.ema if weights == "ema" and ckpt.ema is not None else ckpt.model
    expected = model.state_dict()  # type: ignore[attr-defined]
    missing = sorted(set(expected) - set(ckpt.model))
    if missing:
        what = f"the run's model with --sampling {' '.join(sampling)}" if sampling else "the run's model"
        raise CheckpointError(f"checkpoint {ckpt.path} does not fit {what}: it lacks {len(missing)} of the model's "
                              f"{counted(len(expected), 'tensor')}: {first_of(missing, 5, render=repr)}")
    check_finite_weights(state, ckpt.path, "EMA" if state is ckpt.ema else "")
    warn_if_diverged(ckpt.state, ckpt.path)
    tables.check(model, {**ckpt.model, **state}, ckpt.path)
    model.load_state_dict({**ckpt.model, **state})  # type: ignore[attr-defined]
    return model.to(device).eval()  # type: ignore[attr-defined,no-any-return]


def check_finite_weights(state: Mapping[str, torch.Tensor], path: Path, kind: str = "") -> None:
    """Refuse weights holding NaN/inf (``CheckpointError``), naming the tensors: training never saves them (it stops
    before such an update), so they come from elsewhere (an imported checkpoint), and would only give NaN cells later."""
    bad = [(k, int((~torch.isfinite(v)).sum())) for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        shown = first_of(bad, 4, render=lambda kn: f"{kn[0]} ({kn[1]} value{'s' if kn[1] > 1 else ''})")
        raise CheckpointError(f"checkpoint {path} holds NaN or inf {kind + ' ' if kind else ''}weights in {len(bad)} tensor(s): "
                              f"{shown}; every prediction from it would be NaN. Use another checkpoint (--checkpoint)"
                              + (" or the raw weights (--weights raw)" if kind == "EMA" else ""))


def warn_if_diverged(state: Mapping[str, Any], path: Path) -> None:
    """A ``DivergenceWarning`` when the checkpoint was written after its run's training loss exploded (``state.json``
    ``diverged``, ``distgen.train.trainer``): its predictions are a diverged model's."""
    d = state.get("diverged")
    step = state.get("step")
    if isinstance(d, Mapping) and isinstance(step, int) and isinstance(d.get("step"), int | float) and step >= d["step"]:
        warn(f"checkpoint {path} was written at step {step}, after the run's training loss diverged at step {d['step']:.0f} "
             f"({d.get('loss', float('nan')):.4g}, first step {d.get('first_loss', float('nan')):.4g}): its predictions are a "
             "diverged model's; use an earlier checkpoint (--checkpoint) or train again with a lower train.lr", DivergenceWarning)


class TrainingDataMissing(ConfigError):
    """The run's training file is not where the run recorded it (moved, renamed, or the run copied elsewhere); the message
    names ``--train-data PATH`` / ``load_run(..., train_data=PATH)``."""


@dataclasses.dataclass
class LoadedRun:
    """A trained run, loaded (``distgen.load_run``): ``model`` with its checkpoint weights (in evaluation mode),
    ``data`` (the run's ``data:`` section and saved split, every cell), ``record`` (what the run keeps of its training data,
    ``distgen.data.record.DataRecord``), ``config`` (its ``config.yaml``) and the defaults ``distgen predict`` applies:
    ``seed`` (``train.seed``) and ``max_cells`` (``predict.max_cells_per_condition``).

    A run whose training file is gone loads without it when it holds a data record: ``model`` and ``record`` are there
    (enough to predict another file), and ``data`` raises ``TrainingDataMissing`` naming the fix (``train_data=PATH``)."""

    model: Any
    loaded_data: Dataset | None
    config: dict[str, Any]
    run_dir: Path
    seed: int
    max_cells: int | None
    record: DataRecord
    missing_data: str = ""  # why loaded_data is None
    checkpoint: Path | None = None  # the checkpoint folder its weights came from (what a prediction's provenance names)

    @property
    def data(self) -> Dataset:
        """The run's training data (its split, every cell): ``TrainingDataMissing`` when it was loaded without its training file."""
        if self.loaded_data is None:
            raise TrainingDataMissing(self.missing_data)
        return self.loaded_data

    @property
    def warnings(self) -> list[str]:
        """What the run's training warned (``manifest.json`` ``warnings``, ``distgen.warned``; empty without a manifest)."""
        path = self.run_dir / "manifest.json"
        recorded = json.loads(path.read_text(encoding="utf-8")).get(WARNINGS_KEY) if path.is_file() else None
        return [str(w) for w in recorded or []]


def run_folder(path: str | Path) -> Path:
    """The training run directory of ``path``: a ``distgen train --out`` folder, or a ``distgen run`` folder's ``train/``.

    Raises ``ConfigError`` naming what the folder holds when it holds no trained model (a fitted model's
    experiment is not saved: it is refitted from its ``experiment.yaml`` and ``split.json``).
    """
    path = Path(path)
    if (path / "config.yaml").exists():
        return path
    if (path / "train" / "config.yaml").exists():
        return path / "train"
    if (path / "experiment.yaml").exists():
        name = (load_yaml(path / "experiment.yaml").get("model") or {}).get("name")
        raise ConfigError(
            f"{path} holds the experiment of model {name!r}, which fits itself (a FittedModel) and is not saved; refit it on the "
            f"run's split: doc = distgen.load_config('{path / 'experiment.yaml'}'); data = distgen.load_data(**{{**doc['data'], "
            f"'split': '{path / 'split.json'}'}}); model = distgen.build(doc, data); distgen.fit(model, data, config=doc). Its "
            "test split in raw counts (for the counts profiles, as distgen predict --counts writes them): add evaluate: "
            "{counts: nb} (or poisson, round) to the experiment and distgen run it again (OUT/pred_counts.h5ad, real_counts.h5ad)"
        )
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; give the --out folder of distgen train or distgen run")
    if (path / "checkpoints").is_dir():  # distgen.fit(..., run_dir=): said "train one with distgen train" of a trained folder
        raise FileNotFoundError(
            f"{path} holds checkpoints but no config.yaml: distgen.fit(..., run_dir=) of a model distgen.build did not make (or "
            "trained on a CellTable), and Trainer, write checkpoints, metrics.csv and manifest.json, not the config, split and "
            "genes a run folder keeps. Load its weights into the model built as "
            f"before: model = distgen.build(doc, data); ckpt = distgen.train.checkpoint.load_checkpoint('{path}', "
            "weights_only=True); model.load_state_dict({**ckpt.model, **(ckpt.ema or {})}). distgen train and distgen.run "
            "write whole run folders"
        )
    raise FileNotFoundError(f"{path} is not a run directory (no config.yaml, nor train/config.yaml): give the --out folder of "
                            f"distgen train or distgen run, or train one with distgen train ... --out {path}")


def _run_info(path: Path) -> dict[str, Any]:
    """A run's ``info.json`` (its genes and vocabularies, which index the weights); ``CheckpointError`` (exit 1) naming the
    file when it is damaged: a list there failed as an internal error (``list indices must be integers``)."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is damaged (not JSON: {exc}); it records the genes and labels the run's weights are "
                              "indexed by: restore it from a copy of the run, or train the run again") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("genes"), list):
        raise CheckpointError(f"{path} is damaged (no list of 'genes' in a JSON object); it records the genes and labels the "
                              "run's weights are indexed by: restore it from a copy of the run, or train the run again")
    return saved


def open_run(run_dir: str | Path, checkpoint: str | Path | None = None, weights: str = "ema", device: str | torch.device | None = None,
             sampling: Any = (), train_data: str | Path | None = None, need_data: bool = True, read_data: bool = True) -> LoadedRun:
    """Load a trained run: its data (checked to be the data it was trained on), model and checkpoint weights.

    ``distgen predict`` and ``distgen.load_run`` both load a run through here. ``device`` defaults to the run's
    ``train.device`` (``auto``: CUDA when present); ``checkpoint``, ``weights`` and ``sampling`` are ``load_run_model``'s, and
    ``checkpoint`` may also be ``"best"`` (the best validation step's checkpoint, ``best_checkpoint``) or ``"last"`` (the newest).
    ``train_data`` is where the training file is now when it moved (its content hash must be the run's). Without the
    training file, a run that holds a data record (``data_record.json``) loads without its cells when not ``need_data``
    (``LoadedRun.data`` then raises); otherwise ``TrainingDataMissing`` names ``--train-data``. ``read_data`` false (with
    ``need_data`` false: ``distgen predict RUN --data FILE``): a run that holds a data record is loaded from it without
    reading its training file even where the file is (the record is what predicting another file reads of it; reading
    and hashing the file doubled the time and peak memory of a small prediction), unless ``train_data`` names it. A run
    without a record reads its training file once for that: the record made from it is kept in the run folder when that is
    safe (``distgen.pipeline.kept_record``).
    """
    run_dir = run_folder(run_dir)
    checkpoint = chosen_checkpoint(run_dir, checkpoint)  # best / last -> a folder / the newest (distgen.load_run's checkpoint=)
    config = load_yaml(run_dir / "config.yaml")
    raw = dict(config.get("data") or {})
    recorded = os.path.expanduser(str(raw.get("dataset", DataSection().dataset)))  # where the training file was
    record = DataRecord.load(run_dir)
    source, missing = training_source(run_dir, recorded, train_data, record)
    cap = predict_section(config)["max_cells_per_condition"]
    if device is None:
        device = select_device((config.get("train") or {}).get("device", "auto"), D.env_from_torchrun().local_rank)
    elif isinstance(device, str):  # load_run(device="cuda") on a CPU build ended in torch's AssertionError
        device = select_device(device, D.env_from_torchrun().local_rank, where="device")
    dataset, checked = None, False
    if not (need_data or read_data) and record is not None and train_data is None:
        source, missing = None, (f"the training file of {run_dir} was not read: it was loaded for predicting another file, which "
                                 f"reads only its {RECORD_FILE}; distgen.load_run(RUN) reads the file")
    if source is None:
        if need_data or record is None:
            raise TrainingDataMissing(missing)
    else:
        split_file = run_dir / "split.json"
        dataset = Dataset.load(data_section({**raw, "dataset": source}), split_file if split_file.exists() else None)
        checked = train_data is not None and check_moved_data(run_dir, dataset.data.hash, str(train_data), recorded, record)
        checked = check_same_data(run_dir, dataset.data.hash, dataset.section.dataset, "predict") or checked
        run_seed = int((config.get("train") or {}).get("seed", 0))
        if record is None and not (need_data or read_data) and train_data is None:  # a run trained before records: made once, kept
            from distgen.pipeline.kept_record import keep_record

            record = keep_record(run_dir, dataset, run_seed)
        else:
            record = DataRecord.from_dataset(dataset, seed=run_seed, fit=False)  # the same record, its dispersions fitted when asked for
    assert record is not None
    folder = resolve_checkpoint(checkpoint or run_dir)  # chosen once (the same for raw and EMA): the one the provenance names
    # where the training file was read from is left out of the config check when its content was compared with the run's
    # recorded hash, or when no training file was read (the run's data record): a run whose file moved predicts
    model = load_run_model(run_dir, dataset if dataset is not None else record, folder, weights, torch.device(device),
                           sampling_overrides(sampling), data_checked=checked or dataset is None)
    return LoadedRun(model, dataset, config, run_dir, int((config.get("train") or {}).get("seed", 0)), cap, record, missing, folder)


def training_source(run_dir: Path, recorded: str, train_data: str | Path | None, record: DataRecord | None) -> tuple[str | None, str]:
    """``(what to load the run's training data from, or None when it is not there; why not, the fix named)``: ``train_data``
    when given, else ``recorded`` (the run's ``data.dataset``)."""
    if train_data is not None:
        if recorded in BUNDLED:
            raise ConfigError(f"--train-data {str(train_data)!r}: {run_dir} was trained on the bundled dataset {recorded!r}, "
                              "which ships with distgen; leave out --train-data")
        path = Path(os.path.expanduser(train_data))  # '~nouser/...' stays as written (Path.expanduser raised RuntimeError)
        if not path.exists():
            raise ConfigError(f"--train-data {str(train_data)!r}: no such file; give the run's training file where it is now "
                              f"(it was {recorded})")
        return str(path), ""
    if recorded in BUNDLED or Path(recorded).exists():
        return recorded, ""
    hash_ = _recorded_hash(run_dir, record)
    why = (f"the training file of {run_dir}, {recorded!r} (its data.dataset), is not there: moved, renamed, or the run was "
           "copied from another machine (a relative path is read from the current directory). Predicting the run's own "
           "split (distgen predict RUN, --real included) reads its cells: give the file's new location with --train-data PATH "
           "(from Python: distgen.load_run(RUN, train_data=PATH))" + (f"; its content must be the run's (hash {hash_})" if hash_ else ""))
    if record is not None:
        why += (f". Predicting another file, distgen predict RUN --data FILE, needs no training file: the run's {RECORD_FILE} "
                "holds what it needs")
    else:
        why += (f". This run holds no data record ({RECORD_FILE}: runs trained, or imported with distgen import, before distgen "
                "kept one), so --data FILE needs the training file too (--train-data PATH); a run trained or imported with this "
                "distgen keeps one, and this one gets it, while its "
                "training file is at hand, from Python: run = distgen.load_run(RUN, train_data=PATH); "
                "distgen.data.record.DataRecord.from_dataset(run.data, seed=run.seed).save(run.run_dir)")
    return None, why


def _recorded_hash(run_dir: Path, record: DataRecord | None) -> str | None:
    return recorded_data_hash(run_dir) or (record.data_hash if record is not None else None)


def check_moved_data(run_dir: Path, data_hash: str, given: str, recorded: str, record: DataRecord | None) -> bool:
    """``ConfigError`` (exit 2) when ``--train-data`` holds other data than the run's training file: both paths and hashes.
    True when a recorded hash was compared (and matched), False when the run records none."""
    want = _recorded_hash(run_dir, record)
    if want and want != data_hash:
        raise ConfigError(
            f"--train-data {given!r} is not the training file of {run_dir}: its data (read with the run's data: section) "
            f"hash {data_hash}, the run's training file {recorded!r} had hash {want} (its manifest.json). Give the file the "
            "run was trained on (a copy of it, unchanged), or train a new run on this one")
    return bool(want)


def predict_run(
    run_dir: str | Path,
    out: str | Path,
    part: str = "test",
    checkpoint: str | Path | None = None,
    weights: str = "ema",
    real: str | Path | None = None,
    seed: int | None = None,
    genes: str | None = None,
    counts: str | None = None,
    overwrite: bool = False,
    max_cells: int | str | None = None,
    sampling: Any = (),
    train_data: str | Path | None = None,
    doses: Any = None,
) -> Cells | None:
    """Generate split ``part`` of a run into ``out`` (cell-eval layout); ``real`` writes the truth too.

    ``run_dir`` is the ``--out`` of ``distgen train`` or of ``distgen run`` (its ``train/`` folder), found by
    ``run_folder`` as ``distgen.load_run`` finds it.

    Neither is written over a run's own files, nor over an existing file that is not a previous
    prediction (truth) unless ``overwrite`` (``distgen.pipeline.outputs``); both are checked before
    any work.

    ``genes`` restricts prediction (and both written files) to a panel (``gene_panel``); ``max_cells``
    caps the cells per group (default: the run config's ``predict.max_cells_per_condition``; ``"all"``: none), the
    truth written to ``real`` holding the same cells. ``sampling`` (``KEY=VALUE`` under ``SAMPLING_PATHS``,
    e.g. ``model.dynamics.guidance=1.0``) samples the trained weights with other sampling settings. ``counts`` (``round``, ``poisson`` or ``nb``)
    writes both files in raw counts instead (``distgen.pipeline.countspace``), as cell-eval2's
    ``vcc2026`` preset scores them. Writing into the run folder itself takes its lock
    (``distgen.train.lock``): not while a training or another prediction writes there.

    ``train_data``: where the run's training file is now, when it moved (``open_run``: its content hash must be the run's).
    ``doses`` (``distgen predict --dose``) is ``predict``'s: the groups asked at other doses than their cells' (the truth
    written to ``real`` stays the measured cells); ``out`` records them.

    Returns the generated cells on rank 0 (None on other ranks).
    """
    sampling = sampling_overrides(sampling)
    if counts is not None:
        from distgen.data.counts import check_model

        check_model(counts)
    run_dir = run_folder(run_dir)  # a distgen run folder -> its train/, as distgen.load_run finds it
    checkpoint = chosen_checkpoint(run_dir, checkpoint)  # best / last -> a folder / the newest
    into_run = checked_outputs(run_dir, out, real, overwrite, read_files(run_dir, train_data))
    with RunLock(run_dir, "predict") if into_run and D.env_from_torchrun().is_main else contextlib.nullcontext(), float32_default():
        return _predict_run(run_dir, out, part, checkpoint, weights, real, seed, genes, counts, max_cells, sampling, train_data, doses)


def checked_outputs(run_dir: Path, out: str | Path, real: str | Path | None, overwrite: bool,
                    inputs: Sequence[tuple[str, str | Path | None]]) -> bool:
    """Check a prediction's ``out`` and ``real`` before any work: two paths, neither one of ``inputs`` (``(what, path)``:
    ``read_files``, ``--data``) nor a run's own file, nor an existing file that is not a previous prediction (truth) unless
    ``overwrite`` (``distgen.pipeline.outputs``). Returns whether either lies in ``run_dir``, whose lock the caller then
    takes. One place for ``predict_run`` and ``predict_file``."""
    check_distinct([out, real], ["--out", "--real"])
    check_not_inputs([("--out", out), ("--real", real)], inputs)
    check_output_file(out, "predict", "pred", overwrite)
    if real is not None:
        check_output_file(real, "predict", "real", overwrite)
    return any(p is not None and _inside(Path(p), run_dir) for p in (out, real))


def read_files(run_dir: Path, train_data: str | Path | None = None) -> list[tuple[str, str | Path | None]]:
    """``(what, path)`` of the data files a prediction from ``run_dir`` may read: ``--train-data`` and the run's training
    file (its ``config.yaml`` ``data.dataset``, a bundled name left out), for ``check_not_inputs``."""
    files: list[tuple[str, str | Path | None]] = [("--train-data", train_data)]
    try:
        recorded = (load_yaml(run_dir / "config.yaml").get("data") or {}).get("dataset")
    except Exception:
        recorded = None
    if isinstance(recorded, str) and recorded not in BUNDLED:
        files.append(("the run's training file", recorded))
    return files


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies in ``folder`` (or below)."""
    return path.absolute().resolve().is_relative_to(folder.absolute().resolve())


def _predict_run(
    run_dir: Path, out: str | Path, part: str, checkpoint: str | Path | None, weights: str, real: str | Path | None,
    seed: int | None, genes: str | None, counts: str | None, max_cells: int | str | None, sampling: list[str],
    train_data: str | Path | None = None, doses: Any = None,
) -> Cells | None:
    config = load_yaml(run_dir / "config.yaml")
    cap = predict_section(config if max_cells is None else {"predict": {"max_cells_per_condition": max_cells}})  # checked first
    env = D.env_from_torchrun()
    device = select_device(config.get("train", {}).get("device", "auto"), env.local_rank)
    setup_backends(device, bool(config.get("train", {}).get("tf32", True)))
    run = open_run(run_dir, checkpoint, weights, device, sampling, train_data=train_data)
    dataset = run.data.capped(cap["max_cells_per_condition"])
    seed = run.seed if seed is None else seed
    model = run.model
    if sampling:
        print(f"predict: sampling the trained weights with {' '.join(sampling)}", file=sys.stderr)
    allow = bool((config.get("preflight") or {}).get("allow_unembedded", False))
    for note in check_split(model, dataset, part, allow, asked=doses is not None):
        print(note, file=sys.stderr)
    with preflight_checked(model):  # the notes above named what it cannot predict: the model need not say it again
        pred = predict(model, dataset, part, seed, preflight=False, genes=genes, weights=run.checkpoint,
                       doses=doses)
    env = D.env_from_torchrun()
    result = None
    if env.is_main:
        for note in run.warnings:  # what its training warned (manifest.json warnings): shown then, and again with its predictions
            print(f"note: the training of this run warned: {note}", file=sys.stderr)
        said = {f"data: {w}" for w in dataset.load_warnings}  # printed as warnings while loading
        for note in dataset.notes(part):  # what distgen run's report says about these cells (borrowed controls, caps, filters)
            if note not in said:
                print(f"note: {note}", file=sys.stderr)
        written, scale = pred, "counts" if dataset.data.table.meta.get("scale") == "counts" else "lognorm"  # schema.normalize: false
        if counts is not None:
            from distgen.pipeline.countspace import prediction_counts

            written, notes = prediction_counts(dataset, pred, part, counts, seed, fit_seed=run.seed)  # the record's dispersions
            scale = "counts"
            for note in notes:
                print(note, file=sys.stderr)
        ckpt = run.checkpoint
        assert ckpt is not None
        sizes = None
        if counts is not None:  # where the counts' depths came from, in the file (stderr said it only)
            from distgen.data.count_fit import dataset_sizes
            from distgen.data.counts import sizes_provenance

            sizes = sizes_provenance(dataset_sizes(dataset)[1])
        provenance = prediction_provenance(seed, part, dataset.max_cells, run=str(run_dir), checkpoint=ckpt.name, weights=weights,
                                           sampling=sampling, genes=genes, counts=counts, doses=doses_provenance(doses),
                                           library_sizes=sizes, **said_origin(run_dir))
        if real is None:
            write_cells(dataset, written, out, "pred", scale, provenance)
        else:
            truth = dataset.truth(part)
            truth = truth if truth.genes == pred.genes else truth.with_genes(pred.genes)
            if counts is not None:
                from distgen.pipeline.countspace import truth_counts

                truth = truth_counts(dataset, truth, part)
            write_pair(dataset, written, truth, out, real, scale, provenance)  # one pair: evaluate refuses a new pred beside an old real
        result = written
    D.shutdown()
    return result
