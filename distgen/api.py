"""The Python API: the calls the CLI makes, one or two lines each.

``load_data`` -> ``Dataset``; ``build`` -> model; ``fit`` (``distgen.train.fit``) trains it;
``predict`` -> ``Cells``; ``evaluate`` -> ``Report``; ``run`` does all of it into a folder;
``load_run`` loads a trained run folder back (model, data, config).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distgen.config import check_sections, load_config
from distgen.data.prepared import Dataset
from distgen.evaluation.report import Report
from distgen.models.base import PerturbationModel, mark_untrained, record_build
from distgen.models.generator import build_model
from distgen.registry import KINDS, ComponentInfo, all_registries, registry
from distgen.runtime import apply_threads
from distgen.types import Cells, DataInfo

if TYPE_CHECKING:
    from distgen.pipeline.predict import LoadedRun


def components(kind: str | None = None) -> list[ComponentInfo]:
    """Self-descriptions of every registered component (of one ``kind`` if given), plugins included.

    Warns (``DistgenRuntimeWarning``) about each plugin that failed to load, each name two packages provide, and each
    entry point declared in a ``distgen.*`` group that no kind reads (a typo such as ``distgen.kernel``), which is never listed.
    """
    from distgen.errors import DistgenRuntimeWarning, warn
    from distgen.registry import misdeclared

    regs = [registry(kind)] if kind else [r for k, r in sorted(all_registries().items(), key=lambda kv: _order(kv[0]))]
    infos = [info for reg in regs for info in reg.infos()]
    for line in misdeclared(kind):
        warn(line, DistgenRuntimeWarning)
    return infos


def build(
    config: str | Path | Mapping[str, Any],
    data: DataInfo | Dataset,
    overrides: Sequence[str] = (),
    seen_perturbations: Sequence[str] | None = None,
    seed: int | None = None,
) -> PerturbationModel:
    """Build the model of a preset name, YAML path or config mapping for a dataset (or its ``DataInfo``).

    ``config`` may be a whole document (with a ``model`` section; a top-level key no command reads, such as
    ``trian:``, is refused as ``distgen train`` refuses it) or a bare model node. Given a
    ``Dataset``, the atoms seen in its training cells are the default ``seen_perturbations``. The
    initial weights depend on ``seed`` only (default: the document's ``train.seed``, else 0), drawn as
    ``distgen train`` draws them, so the same config and seed build the same weights in Python and on
    the command line; the caller's random state is left as it was. The model keeps the node it was built from
    (``distgen.models.base.built_from``): ``distgen.fit(model, data, run_dir=...)`` then writes a run folder that
    ``distgen.load_run`` reads back.
    """
    import torch

    from distgen.train.batches import mix_seed
    from distgen.train.run import INIT_KEY

    if not isinstance(data, Dataset | DataInfo):
        raise TypeError(f"build: data must be a Dataset (distgen.load_data) or its DataInfo, got {type(data).__name__}")
    if isinstance(seen_perturbations, str):  # 'KLF1' was read as the atoms 'K', 'L', 'F', '1'
        from distgen.config import ConfigError

        raise ConfigError(f"build: seen_perturbations is a list of atoms, got the text {seen_perturbations!r}; write [{seen_perturbations!r}]")
    doc = load_config(config, overrides)
    if "model" in doc:
        check_sections(doc)  # a whole document: a misspelt section (trian:) would leave its settings unused
    node = doc.get("model", doc)
    seen: Sequence[str] | None = seen_perturbations
    if isinstance(data, Dataset):
        info = data.info
        seen = data.seen_perturbations() if seen is None else seen
    else:
        info = data
    if seed is None:
        train = doc.get("train") if "model" in doc else None
        seed = _seed((train or {}).get("seed", 0), "build: the config's train.seed")
    else:
        seed = _seed(seed, "build: seed")
    from distgen.conditioners import table_record
    from distgen.train.device import float32_default

    with torch.random.fork_rng(devices=[]), float32_default(), table_record.collecting() as tables:  # float32 weights
        torch.manual_seed(mix_seed(seed, INIT_KEY))  # whatever the caller's default dtype; the table files it reads are kept
        model = build_model(node, info, seen)
    mark_untrained(model)  # distgen.predict warns about random initial weights until fit or load_state_dict
    record_build(model, node, tables)  # distgen.fit(..., run_dir=) writes a run folder distgen.load_run reads back
    return model


def load_data(dataset: str = "norman_k562", split: Mapping[str, Any] | str | None = None, **data: Any) -> Dataset:
    """A dataset with its split and train-fitted preprocessing, loaded once: ``.info``, ``.train_table``, ``.split``...

    ``dataset`` is a bundled name (``norman_k562``, ``kang_pbmc``) or an ``.h5ad`` path; ``split``
    holds ``make_split`` arguments (e.g. ``{"kind": "combo_seen2"}``) or a saved split file; other
    keyword arguments are the ``data:`` config section (``schema``, ``hvg``, ``set_size``...).
    """
    if not isinstance(dataset, str | Path):
        from distgen.config import ConfigError

        kind = "an AnnData" if type(dataset).__name__ == "AnnData" else f"a {type(dataset).__name__}"
        if getattr(dataset, "isbacked", False) and not getattr(dataset, "is_view", True) and getattr(dataset, "filename", None):
            raise ConfigError(f"load_data: dataset is a bundled name or an .h5ad path, got a backed AnnData; give the path of its "
                              f"file instead: distgen.load_data({str(dataset.filename)!r}, ...) (adata.filename)")
        raise ConfigError(
            f"load_data: dataset is a bundled name or an .h5ad path, got {kind}: a run records the file its cells came from "
            "(path and content hash). Write it first, adata.write_h5ad('cells.h5ad') (a view: adata[mask].copy().write_h5ad(...)), "
            "then distgen.load_data('cells.h5ad', ...); cells of an AnnData in a loaded dataset's terms: data.data.encode(adata)"
        )
    return Dataset.load({"dataset": str(dataset), "split": split, **data})


def load_run(
    run_dir: str | Path, checkpoint: str | Path | None = None, weights: str = "ema", device: str | None = None,
    sampling: Sequence[str] = (), train_data: str | Path | None = None,
) -> LoadedRun:
    """A trained run folder, loaded as ``distgen predict`` loads it: ``.model``, ``.data``, ``.config``, ``.seed``, ``.max_cells``.

    ``run_dir`` is the ``--out`` of ``distgen train`` or of ``distgen run`` (its ``train/`` folder). The data is read
    again from the run's ``data:`` section and saved split, and refused when it changed since training (content hash)
    or its genes or label vocabularies differ. ``train_data`` is where the training file is now when it moved (its
    content hash must be the run's; ``distgen predict --train-data``). Without the training file, a run that holds a data
    record (``data_record.json``, written at training) loads its model and ``.record`` (enough to predict another file:
    ``distgen predict RUN --data FILE``), and ``.data`` raises, naming ``train_data=``; a run without one is refused. ``checkpoint`` (default ``"last"``: the newest; ``"best"``: the best validation step's, kept by early stopping's
    ``train.monitor``; or a checkpoint folder), ``weights`` (``"ema"`` when the run
    kept an average, else ``"raw"``), ``device`` (default: the run's ``train.device``) and ``sampling`` (``KEY=VALUE``
    under ``model.dynamics.{guidance,sampler,solver}``) are ``distgen predict``'s options. The predictions that
    ``distgen predict RUN`` writes are ``predict(run.model, run.data, seed=run.seed, max_cells=run.max_cells)``.
    A fitted model's experiment (``model: additive``...) holds no saved model: the error says how to refit it.
    """
    from distgen.pipeline.predict import open_run

    _lists_of_names("load_run", {"sampling": sampling}, ("sampling",))  # 'KEY=VALUE' alone was refused as "got 'm'"
    apply_threads()
    return open_run(run_dir, checkpoint, weights, device, sampling, train_data=train_data, need_data=False)


def predict(
    model: Any, data: Dataset, part: str = "test", seed: int = 0, out: str | Path | None = None, real: str | Path | None = None,
    allow_unembedded: bool = False, max_cells: int | str | None = None, doses: Any = None, overwrite: bool = False,
) -> Cells:
    """Generate every held-out (condition, context) group of ``data``'s split ``part``: ``Cells`` for ``evaluate``.

    ``model`` is fitted (``build`` + ``fit``, or any model with ``predict``); ``data`` comes from
    ``load_data``. Each group gets as many cells as were measured, generated from control cells of
    its context, followed by those controls. ``out``/``real`` also write the prediction and its truth
    as ``.h5ad`` files (cell-eval layout). A trained model that cannot embed a held-out atom is refused
    unless ``allow_unembedded``. ``max_cells`` caps the cells per group (a fixed subset of its real
    cells; ``real`` then holds the same cells: evaluate against ``data.capped(max_cells)``); ``None`` or ``"all"``: no cap.
    The written prediction records ``seed``, ``part`` and the cap in ``uns["distgen"]["provenance"]``.

    Each group is asked at the dose its cells carry (``schema.dose_col``), as ``distgen predict`` asks it. ``doses`` asks
    others: a number (every group), or ``{condition: dose}`` (a number per condition, or one per atom in the order the
    condition writes them; the other conditions at their own), e.g. a dose-response curve, one call per dose. A dose
    outside those the atom was trained at warns (``DoseExtrapolationWarning``); the truth (``real``) stays the measured
    cells at their own dose, and the prediction file records the doses asked.

    ``out`` and ``real`` are checked before any work, as ``distgen predict`` checks ``--out`` and ``--real``: never the
    data file (or split file) ``data`` was read from, nor a run folder's own file, nor a folder, nor one path for both; an
    earlier output of the same kind is replaced (a re-run cell), another existing file only with ``overwrite``. The
    caller's torch random state is left as it was (the cells depend on ``seed`` only).
    """
    from distgen.pipeline.predict import check_predict_data, prediction_provenance, write_cells, write_pair
    from distgen.pipeline.predict import predict as _predict
    from distgen.train.device import caller_random_state, float32_default

    apply_threads()
    check_predict_data(data)  # before data.capped: an AnnData ended in "AttributeError: ... no attribute 'capped'"
    seed = _seed(seed, "predict: seed")
    if isinstance(max_cells, str):  # "all" as distgen predict --max-cells all and predict.max_cells_per_condition: all
        if max_cells != "all":
            from distgen.config import ConfigError

            raise ConfigError(f"predict: max_cells must be a number of cells >= 1, None or 'all', got {max_cells!r}")
        max_cells = None
    data = data.capped(max_cells) if max_cells is not None else data
    _check_outputs(data, out, real, overwrite)  # before the work: the data file itself was replaced by its prediction
    # float32: the data and weights are float32 whatever the caller's default dtype; the forked random state: each group
    # seeds torch's global generator (group_seed), which left the caller's stream at the last group's seed
    with caller_random_state(), float32_default():
        cells = _predict(model, data, part, seed, allow_unembedded=allow_unembedded, doses=doses)
    asked = None if doses is None else str(dict(doses) if isinstance(doses, Mapping) else doses)
    provenance = prediction_provenance(seed, part, data.max_cells, model=type(model).__name__, doses=asked)
    if out is not None and real is not None:  # one pair (both record the truth): evaluate refuses a pred beside another truth
        write_pair(data, cells, data.truth(part), out, real, provenance=provenance)
    elif out is not None:
        write_cells(data, cells, out, "pred", provenance=provenance)
    elif real is not None:
        write_cells(data, data.truth(part), real, "real")
    return cells


def _check_outputs(data: Any, out: str | Path | None, real: str | Path | None, overwrite: bool) -> None:
    """``predict``'s ``out``/``real`` checked as ``distgen predict`` checks ``--out``/``--real`` (``OutputPathError``)."""
    if out is None and real is None:
        return
    from distgen.pipeline.outputs import check_distinct, check_not_inputs, check_output_file

    check_distinct([out, real], ["out", "real"])
    # the files as load read them, made absolute then: the section keeps a relative path as written, which after a chdir
    # named another file (out='../a/cells.h5ad', overwrite=True replaced the training file). A bundled name is no file
    # (as distgen predict's read_files): out='norman_k562', once written, was refused on the cell's re-run as the data file
    inputs = [(f"the {what} file", path) for what, path in getattr(data, "read_from", ())]
    check_not_inputs([("out", out), ("real", real)], inputs, "distgen.predict")
    for path, kind in ((out, "pred"), (real, "real")):
        if path is not None:
            check_output_file(path, "predict", kind, overwrite)


def evaluate(pred: Any, truth: Any, out: str | Path | None = None, **kwargs: Any) -> Report:
    """Score a prediction against its truth next to the baselines and the ceiling; ``out`` gets the report files.

    ``pred``: ``Cells`` (``predict``) or an ``.h5ad`` path/AnnData; ``truth``: the ``Dataset`` (its
    held-out cells; baselines fitted on its training cells), ``Cells`` or a path/AnnData (then
    ``train=`` fits the baselines, as ``distgen evaluate --train``). Keyword arguments: ``train``,
    ``baselines``, ``metric_names``, ``ceiling``, ``seed``, ``make_plots``, ``progress``,
    ``by_context``, ``part``, ``spread`` (``auto``, ``on``, ``off``: the spread scores across batches), and for files
    ``pert_col``, ``control``, ``celltype_col``, ``batch_col``.
    """
    from distgen.pipeline.evaluate import evaluate as _evaluate

    # metric_names / baselines given as one text: refused by the pipeline's evaluate (names_arg), with the same words
    apply_threads()
    return _evaluate(pred, truth, out, **kwargs)


def run(config: str | Path | Mapping[str, Any], out: str | Path, overrides: Sequence[str] = (), **kwargs: Any) -> dict[str, Any]:
    """Load the data once, train (or fit), predict the test split and evaluate, into ``out`` (``distgen run``); returns the summary."""
    from distgen.pipeline.experiment import run as _run

    apply_threads()
    return _run(config, out, overrides, **kwargs)


def sweep(config: str | Path, grid: Mapping[str, Sequence[Any]] | None = None, out: str | Path = "sweep", **kwargs: Any) -> Any:
    """Run an ablation grid and aggregate it (``distgen sweep``); returns a ``SweepResult``."""
    from distgen.pipeline.sweep import sweep as _sweep

    _lists_of_names("sweep", kwargs, ("metrics",))
    apply_threads()
    return _sweep(config, grid, out, **kwargs)


def _lists_of_names(call: str, kwargs: Mapping[str, Any], keys: Sequence[str]) -> None:
    """Refuse one text where ``call`` takes a list (of names, of ``KEY=VALUE``): ``metric_names="mse"`` was read as metrics 'm', 's', 'e'."""
    for key in keys:
        value = kwargs.get(key)
        if isinstance(value, str):
            from distgen.config import ConfigError

            raise ConfigError(f"{call}: {key} is a list, got the text {value!r}; write [{value!r}]")


def _seed(value: Any, where: str) -> int:
    """``value`` as a seed: a whole number (``int`` or a numpy integer), else a ``ConfigError`` naming ``where``.

    ``int()`` read ``3.7`` as seed 3 and ``"3"`` as 3 (where ``fit`` refuses both), and a seed ``"abc"`` in the
    config ended in a ``ValueError`` from ``int``; ``True`` is not a seed either.
    """
    import numbers

    from distgen.config import ConfigError

    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if not -(2**63) <= int(value) < 2**63:  # written into the prediction's provenance (HDF5 int64): failed there, after the work
            raise ConfigError(f"{where} must fit a 64-bit integer (from -2**63 to 2**63 - 1), got {int(value)}")
        return int(value)

    hint = f" Write {int(value)}." if isinstance(value, float) and value.is_integer() else ""
    raise ConfigError(f"{where} must be a whole number, got {type(value).__name__} {value!r}.{hint}")


def _order(kind: str) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)
