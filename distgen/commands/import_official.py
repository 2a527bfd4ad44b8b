"""``distgen import``: an official scDFM or PerturbDiff checkpoint -> a distgen run directory.

The official state dict is mapped parameter by parameter into the preset's model (sizes read from
the checkpoint) on the data of the config's ``data:`` section; the result is written like a run of
``distgen train`` (config.yaml, manifest.json with a ``training`` record saying distgen did not train it: the official
file, its sha256 and step, ``distgen.train.run_files.imported_training``; split.json, info.json, the data record data_record.json and
data_record.safetensors, embedding_tables.json for PerturbDiff's frozen tables, checkpoints/), so ``distgen predict``
(``--data FILE`` without the training file included) and ``distgen evaluate`` use it as any other run. ``import.json`` lists what
was dropped and why. The official file is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from distgen.wording import counted

KINDS = ("scdfm-official", "perturbdiff-official")

EXAMPLE = """examples:
  distgen import scdfm-official result/additive/.../iteration_100000/checkpoint.pt --out runs/scdfm-official \\
      --vocab src/tokenizer/norman_5000_highly_vocab.json --mask data/norman/mask_fold_1topk_30additive_negative_edge.pt \\
      data.dataset=norman_5029_genes.h5ad
  distgen import perturbdiff-official pbmc.ckpt --out runs/pd-official data.dataset=pbmc_hvg2000.h5ad \\
      data.schema.perturbation_col=cytokine data.schema.context_cols=[cell_type] data.schema.batch_col=donor
  distgen predict runs/scdfm-official --out pred.h5ad --real real.h5ad
  distgen evaluate --pred pred.h5ad --real real.h5ad --out eval/

The data section (overrides or --config) must describe the cells the checkpoint was trained on:
the same gene panel (scDFM: the vocabulary's genes; PerturbDiff: the same genes in the same order)
and labels the checkpoint knows (PerturbDiff: names in its pert/cell-type/batch dictionaries).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="turn an official scDFM / PerturbDiff checkpoint into a distgen run directory",
        description="Map the official state dict into distgen's preset model (no pickled code runs) and write a run directory "
        "that distgen predict / evaluate use like any trained run.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=KINDS, help="which official code wrote the checkpoint")
    p.add_argument("checkpoint", help="official checkpoint (.pt of scDFM's run.py, .ckpt of PerturbDiff's Lightning trainer)")
    p.add_argument("overrides", nargs="*", help="dotted overrides of the config (e.g. data.dataset=PATH.h5ad data.split.kind=...)")
    p.add_argument("--out", required=True, help="run directory to write (must not hold checkpoints)")
    p.add_argument("--config", help="preset or YAML to start from (default: scdfm / perturbdiff)")
    p.add_argument("--vocab", help="scDFM: the GeneVocab JSON the checkpoint was trained with (src/tokenizer/*_vocab.json)")
    p.add_argument("--mask", help="scDFM: the co-expression mask .pt (data/<name>/mask_fold_*.pt); default: distgen builds its graph")
    p.add_argument("--covariates", help="PerturbDiff: JSON with pert_dict, cell_type_dict, batch_dict (name -> code) when the "
                   "checkpoint's hyper-parameters cannot be read")
    p.add_argument("--perturbation-ids", help="scDFM drug models: JSON name -> row of the official perturbation table")
    p.add_argument("--genes", help="PerturbDiff: text file with the official gene order (one per line) to check the data against")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from distgen.config import check_repeated_overrides
    from distgen.models.official import OfficialCheckpointError
    from distgen.train.checkpoint import CheckpointError

    try:
        out, report = import_official(args.kind, args.checkpoint, args.out, args.config, check_repeated_overrides(args.overrides), vocab=args.vocab, mask=args.mask,
                                      covariates=args.covariates, perturbation_ids=args.perturbation_ids, genes=args.genes)
    except (OfficialCheckpointError, CheckpointError) as exc:
        print(f"distgen import: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 1))  # 2 for a --out that already holds checkpoints (RunFolderError)
    print(f"imported {args.kind} {args.checkpoint} -> {out} ({counted(len(report['dropped']), 'official parameter')} dropped, see import.json)")
    for note in report["notes"]:
        print(f"  note: {note}")
    return 0


def _read_json(path: str | None, what: str) -> Any:
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} {path!r} does not exist")
    return json.loads(p.read_text(encoding="utf-8"))


def import_official(
    kind: str,
    checkpoint: str | Path,
    out: str | Path,
    config: str | Path | Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    vocab: str | None = None,
    mask: str | None = None,
    covariates: str | None = None,
    perturbation_ids: str | None = None,
    genes: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Write run directory ``out`` from an official checkpoint; returns ``(out, import report)``."""
    import torch

    from distgen.config import ConfigError, load_config
    from distgen.models.official import OfficialCheckpointError, read_official
    from distgen.train.checkpoint import RunFolderError, list_checkpoints

    if kind not in KINDS:
        raise ConfigError(f"distgen import: kind must be one of {KINDS}, got {kind!r}")
    out = Path(out)
    if list_checkpoints(out / "checkpoints"):
        raise RunFolderError(f"{out} already holds checkpoints; import into a new --out")
    ckpt = read_official(checkpoint)
    if kind == "scdfm-official":
        from distgen.models.official import scdfm as sc_map

        raw = sc_map.model_state(ckpt)
        sizes = sc_map.infer_sizes(raw)
        size_overrides = [f"model.backbone.{k}={sizes[k]}" for k in ("d_model", "heads", "layers", "mlp_ratio")]
        doc = load_config(config or "scdfm", [*overrides, *size_overrides])
        rd, model, read_tables = _build(doc)
        voc = _read_json(vocab, "--vocab")
        if voc is None:
            raise OfficialCheckpointError("scDFM needs --vocab (the GeneVocab JSON of the checkpoint: gene -> row of its gene table)")
        sc_map.check_panel(rd.info.genes, voc)
        notes = []
        if mask is not None:
            model.backbone.set_gene_graph(sc_map.graph_from_mask(torch.load(mask, map_location="cpu", weights_only=True), rd.info.genes, voc))
        else:
            model.prepare(rd.train_table)
            notes.append("no --mask: the gene graph was built by distgen from the training cells (top-k |Pearson| without the official "
                         "double log1p), so gene embeddings can differ from the official run's")
        state, report = sc_map.map_state(raw, model, voc, _read_json(perturbation_ids, "--perturbation-ids"), source=str(checkpoint))
        report.notes += notes
        ema_state, step = None, int(ckpt.get("iteration", 0) or 0)
    else:
        from distgen.models.official import perturbdiff as pd_map

        sd = ckpt.get("state_dict", ckpt)
        raw_sd = ckpt.get("current_model_state")
        split = pd_map.split_state(raw_sd if raw_sd is not None else sd)
        sizes = pd_map.infer_sizes(split)
        codes = _codes(ckpt, _read_json(covariates, "--covariates"))
        frozen = pd_map.frozen_tables(split, codes, sizes)
        table_overrides = _write_tables(out, frozen)
        size_overrides = [f"model.backbone.{k}={sizes[k]}" for k in ("dim", "depth", "heads", "mlp_ratio")]
        size_overrides += [f"model.conditioner.part_dim={sizes['part_dim']}", f"model.conditioner.use_batch={sizes['use_batch']}",
                           f"model.conditioner.perturbation={sizes['perturbation']}", "model.conditioner.use_context=true"]
        doc = load_config(config or "perturbdiff", [*overrides, *size_overrides, *table_overrides])
        rd, model, read_tables = _build(doc)
        if rd.info.n_genes != sizes["n_genes"]:
            raise OfficialCheckpointError(f"the checkpoint models {sizes['n_genes']} genes but the data has {rd.info.n_genes}; use the checkpoint's gene panel")
        if genes is not None:
            want = [ln.strip() for ln in Path(genes).read_text(encoding="utf-8").splitlines() if ln.strip()]
            if list(rd.info.genes) != want:
                raise OfficialCheckpointError("the data's genes are not in the order of --genes (the official column order); reorder the .h5ad")
        state, report = pd_map.map_state(split, model, codes, source=str(checkpoint))
        report.notes.append("the gene columns must be in the checkpoint's order (selected_genes/*.pkl); distgen cannot check that without --genes")
        ema_state = None
        if raw_sd is not None:  # the EMA callback moved the averaged weights into state_dict
            ema_state, _ = pd_map.map_state(pd_map.split_state(sd), model, codes, source=str(checkpoint))
            report.notes.append("EMA weights (the checkpoint's state_dict) are the run's EMA weights; current_model_state the raw ones")
        step = int(ckpt.get("global_step", 0) or 0)
    model.load_state_dict(state)  # strict: every key filled
    _write_run(out, doc, rd, model, state, ema_state, step, kind, checkpoint, report.to_dict(), read_tables)
    return out, report.to_dict()


def _codes(ckpt: Mapping[str, Any], given: Any) -> dict[str, dict[str, int]]:
    from distgen.models.official import OfficialCheckpointError
    from distgen.models.official.loading import to_plain

    if given is not None:
        return {k: {str(n): int(c) for n, c in (given.get(k) or {}).items()} for k in ("pert_dict", "cell_type_dict", "batch_dict")}
    cov = to_plain((ckpt.get("hyper_parameters") or {}).get("cov_encoding_cfg") or {})
    if not cov.get("pert_dict"):
        raise OfficialCheckpointError("the checkpoint carries no covariate dictionaries (hyper_parameters.cov_encoding_cfg); pass --covariates JSON")
    return {k: {str(n): int(c) for n, c in (cov.get(k) or {}).items()} for k in ("pert_dict", "cell_type_dict", "batch_dict")}


def _write_tables(out: Path, tables: Mapping[str, Mapping[str, list[float]]]) -> list[str]:
    """Frozen official embedding tables as CSV files in the run directory; the overrides that point the conditioner at them."""
    key = {"perturbation": "model.conditioner.perturbation_table", "context": "model.conditioner.context_table"}
    result = []
    for name, table in tables.items():
        path = (out / "tables" / f"{name}.csv").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        width = len(next(iter(table.values())))
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["name", *[f"v{i}" for i in range(width)]])
            for n, vec in table.items():
                w.writerow([n, *vec])
        result.append(f"{key[name]}={path}")
    return result


def _build(doc: dict[str, Any]) -> tuple[Any, Any, list[Any]]:
    """The data, the preset's model and the embedding-table files it read (``table_record``) of ``doc``, resolved in place."""
    from distgen.conditioners import table_record
    from distgen.data.prepared import Dataset
    from distgen.models.generator import build_model
    from distgen.train.run import resolve_document

    resolved, _, ds = resolve_document(doc)
    rd = Dataset.load(ds)
    with table_record.collecting() as tables:  # PerturbDiff's frozen tables (tables/*.csv): the run records their keys
        model = build_model(resolved["model"], rd.info, rd.seen_perturbations())
    doc.clear()
    doc.update(resolved)
    return rd, model, tables


def _write_run(out: Path, resolved: dict[str, Any], rd: Any, model: Any, state: dict[str, Any], ema_state: dict[str, Any] | None, step: int,
               kind: str, checkpoint: str | Path, report: dict[str, Any], tables: Sequence[Any] = ()) -> None:
    from distgen.conditioners import table_record
    from distgen.config import save_yaml
    from distgen.data.record import DataRecord
    from distgen.train.checkpoint import fingerprint, save_checkpoint
    from distgen.train.manifest import build_manifest
    from distgen.train.options import train_options
    from distgen.train.run_files import imported_training
    from distgen.train.state_io import atomic_write_text, rng_state

    out.mkdir(parents=True, exist_ok=True)
    save_yaml(resolved, out / "config.yaml")
    opts = train_options(resolved["train"])
    with Path(checkpoint).open("rb") as fh:  # in blocks: an official checkpoint can be several GB
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    imported = {"kind": kind, "checkpoint": str(Path(checkpoint).resolve()), "sha256": digest, "bytes": Path(checkpoint).stat().st_size,
                "step": step}
    data = rd.hashes()  # the weights (and a --mask gene graph) were fitted by the official code on its cells, not split.train
    data["provenance"]["fitted_on"]["model"] = (f"imported ({kind}): trained by the official code on its own split, which distgen cannot "
                                                "see; conditions are held out of the weights only if data.split is the official split")
    # the training record distgen train writes (record_training), told truthfully: what was imported, from where, its digest
    manifest = build_manifest(opts.seed, data) | {"imported": imported, "training": imported_training(imported)}
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1, default=str))
    rd.split.save(out / "split.json")
    atomic_write_text(out / "info.json", json.dumps(rd.info.to_dict()))
    # what predicting another file needs of the data (distgen predict RUN --data FILE without it), as training writes it
    DataRecord.from_dataset(rd, opts.seed).save(out)
    table_record.save(out, tables)
    atomic_write_text(out / "import.json", json.dumps({**imported, **report}, indent=1, default=str))
    fp_config = {k: v for k, v in resolved.items() if k != "train"} | {"train": opts.fingerprint_dict()}
    keys = set(model.state_dict())
    save_checkpoint(out / "checkpoints", step, {k: v for k, v in state.items() if k in keys}, {}, rng_state(),
                    {"fingerprint": fingerprint(fp_config), "fingerprint_config": fp_config, "imported": imported}, ema_state=ema_state)
