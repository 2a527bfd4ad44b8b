"""PerturbDiff's official state dict (Lightning ``PlModel``: ``model.*`` Cross_DiT, ``cov_encoder.*``) -> distgen.

Facts of the official code used here: ``Cross_DiT`` (``src/models/cross_dit``) embeds ``[x ; x0_sc]``
and ``[x_ctrl ; 0]`` (the control's second half is always zero), adds its gene-embedding null
vector ``gene_embedding.null_emb`` to every token of both streams (``use_gene_embedding: False``),
conditions on ``t_emb + class_embedding(cov)`` where ``class_embedding`` is SiLU + Linear(G -> d)
with a null vector for dropped conditions; ``MM_DiTBlock`` modulates each stream with 6 chunks
(shift, scale, gate for attention, then for the MLP); timm's ``Attention`` holds ``qkv``,
``q_norm``, ``k_norm``, ``proj``; ``Mlp`` holds ``fc1``, ``fc2``. ``CovEncoder`` concatenates the
perturbation (one-hot row ``code + 1``; or a frozen table + Linear), cell type (one-hot or frozen
table + Linear) and batch embeddings and maps them by ``transform`` (Linear, no activation).
The checkpoint's ``state_dict`` holds the EMA weights when the EMA callback ran (the raw ones are
then in ``current_model_state``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from distgen.models.official.common import ImportReport, OfficialCheckpointError, StateBuilder
from distgen.wording import counted, first_of

COV_KINDS = ("onehot", "table")


def split_state(sd: Mapping[str, Any]) -> dict[str, Tensor]:
    """``model.*`` and ``cov_encoder.*`` tensors of a Lightning state dict (prefix kept)."""
    out = {k: v for k, v in sd.items() if isinstance(v, Tensor) and (k.startswith("model.") or k.startswith("cov_encoder."))}
    if "model.x_embedder.weight" not in out:
        if any(k.startswith("model.x_embedder.") for k in out):
            raise OfficialCheckpointError("separate_embedder checkpoints (per-dataset input layers, pre-training) are not mapped")
        raise OfficialCheckpointError("this is not a PerturbDiff checkpoint: no 'model.x_embedder.weight' (expected a PlModel .ckpt)")
    return out


def infer_sizes(sd: Mapping[str, Tensor]) -> dict[str, Any]:
    """Network and covariate sizes read from the shapes."""
    d, two_g = sd["model.x_embedder.weight"].shape
    if sd["model.gene_embedding.null_emb.weight"].shape[-1] != d:
        raise OfficialCheckpointError("use_gene_embedding=True checkpoints (GenePT gene tokens added to the input) are not mapped")
    depth = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("model.blocks."))
    head_dim = sd["model.blocks.0.block.attn.q_norm.weight"].shape[0]
    hidden = sd["model.blocks.0.block.mlp.fc1.weight"].shape[0]
    sizes: dict[str, Any] = {"n_genes": int(two_g // 2), "dim": int(d), "depth": int(depth), "heads": int(2 * d // head_dim),
                             "mlp_ratio": float(hidden / d)}
    if "cov_encoder.drug_encoder.0.weight" in sd or "cov_encoder.dose_encoder.weight" in sd:
        raise OfficialCheckpointError("ChemBERTa drug + dose covariates (Tahoe) are not mapped: distgen's covariate conditioner has no dose table part")
    sizes["perturbation"] = "table" if "cov_encoder.pert_encoder.0.weight" in sd else "onehot"
    sizes["context"] = "table" if "cov_encoder.celltype_encoder.0.weight" in sd else "onehot"
    sizes["use_batch"] = "cov_encoder.batch_encoder.weight" in sd
    sizes["part_dim"] = int(sd["cov_encoder.transform.weight"].shape[1] // (2 + int(sizes["use_batch"])))
    return sizes


def official_keys(n_genes: int, dim: int, depth: int, heads: int, n_pert: int, n_context: int, n_batch: int,
                  part_dim: int = 128, mlp_ratio: float = 4.0) -> dict[str, tuple[int, ...]]:
    """Every key of the official one-hot ``PlModel`` state dict with its shape (the harness checks it against the code)."""
    d, g, hid, hd = dim, n_genes, int(dim * mlp_ratio), 2 * dim // heads
    m = "model."
    keys: dict[str, tuple[int, ...]] = {
        m + "x_embedder.weight": (d, 2 * g), m + "x_embedder.bias": (d,), m + "x_control_embedder.weight": (d, 2 * g),
        m + "x_control_embedder.bias": (d,), m + "t_embedder.mlp.0.weight": (d, 256), m + "t_embedder.mlp.0.bias": (d,),
        m + "t_embedder.mlp.2.weight": (d, d), m + "t_embedder.mlp.2.bias": (d,),
        m + "gene_embedding.gene_embedding.weight": (d, 5120), m + "gene_embedding.gene_embedding.bias": (d,),
        m + "gene_embedding.null_emb.weight": (1, d), m + "gene_embedding.layer_norm.weight": (d,), m + "gene_embedding.layer_norm.bias": (d,),
        m + "class_embedding.emb.weight": (d, g), m + "class_embedding.emb.bias": (d,), m + "class_embedding.null_emb.weight": (1, d),
    }
    for head in ("final_layer", "control_final_layer"):
        keys |= {m + f"{head}.linear.weight": (g, d), m + f"{head}.linear.bias": (g,), m + f"{head}.adaLN_modulation.1.weight": (2 * d, d),
                 m + f"{head}.adaLN_modulation.1.bias": (2 * d,)}
    for i in range(depth):
        p = m + f"blocks.{i}.block."
        keys |= {p + "attn.qkv.weight": (6 * d, 2 * d), p + "attn.qkv.bias": (6 * d,), p + "attn.q_norm.weight": (hd,),
                 p + "attn.k_norm.weight": (hd,), p + "attn.proj.weight": (2 * d, 2 * d), p + "attn.proj.bias": (2 * d,)}
        for mlp in ("mlp", "control_mlp"):
            keys |= {p + f"{mlp}.fc1.weight": (hid, d), p + f"{mlp}.fc1.bias": (hid,), p + f"{mlp}.fc2.weight": (d, hid), p + f"{mlp}.fc2.bias": (d,)}
        for ada in ("adaLN_modulation", "control_adaLN_modulation"):
            keys |= {p + f"{ada}.1.weight": (6 * d, d), p + f"{ada}.1.bias": (6 * d,)}
    c = "cov_encoder."
    keys |= {c + "pert_encoder.weight": (n_pert + 1, part_dim), c + "celltype_encoder.weight": (n_context, part_dim),
             c + "batch_encoder.weight": (n_batch, part_dim), c + "transform.weight": (g, 3 * part_dim), c + "transform.bias": (g,)}
    return keys


def _rows(codes: Mapping[str, int], names: list[str], what: str, offset: int = 0) -> Tensor:
    missing = [n for n in names if n not in codes]
    if missing:
        raise OfficialCheckpointError(
            f"the official {what} codes lack {counted(len(missing), 'name')} of the data: {first_of(missing, 6, render=repr)}; the data's "
            f"labels must be ones the checkpoint was trained with (codes known: {first_of(sorted(codes), 6, render=repr, enclosed=True)})"
        )
    return torch.tensor([int(codes[n]) + offset for n in names])


def map_state(official: Mapping[str, Tensor], model: Any, codes: Mapping[str, Mapping[str, int]],
              source: str = "PerturbDiff checkpoint") -> tuple[dict[str, Tensor], ImportReport]:
    """distgen state dict of ``model`` (generator: ``covariate`` conditioner + ``cross_dit``) from the official one.

    ``codes`` holds the official ``pert_dict``, ``cell_type_dict`` and ``batch_dict`` (name -> code).
    """
    sizes = infer_sizes(official)
    report = ImportReport(source, sizes)
    bb, cond = model.backbone, model.conditioner
    if type(bb).__name__ != "CrossDiT" or type(cond).__name__ != "CovariateConditioner":
        raise OfficialCheckpointError("PerturbDiff maps into a covariate conditioner + cross_dit backbone (the perturbdiff preset)")
    if bb.time_input != "step" or bb.null is None or not all(blk.parallel for blk in bb.blocks):
        raise OfficialCheckpointError("the official network needs cross_dit with block: parallel, time_input: step and null_condition: true")
    if model.population_encoder is not None:
        raise OfficialCheckpointError("the official network has no population encoder; remove model.population_encoder")
    target = model.state_dict()
    sb = StateBuilder(official, target, report)
    m, b, g, d = "model.", "backbone.", sizes["n_genes"], sizes["dim"]
    token_null = sb.get(m + "gene_embedding.null_emb.weight")[0]
    sb.put(b + "in_p.weight", sb.get(m + "x_embedder.weight"))
    folded = bb.token is None  # cross_dit token_bias: folded (default) or shared
    sb.put(b + "in_p.bias", sb.get(m + "x_embedder.bias") + (token_null if folded else 0))
    sb.put(b + "in_c.weight", sb.get(m + "x_control_embedder.weight")[:, :g])
    sb.put(b + "in_c.bias", sb.get(m + "x_control_embedder.bias") + (token_null if folded else 0))
    if folded:
        report.notes.append("the official gene-embedding null vector (added to every token of both streams) is folded into both input biases")
    else:
        sb.put(b + "token", token_null)
    report.notes.append("x_control_embedder: the columns of the always-zero second half of the control input [x_ctrl ; 0] are dropped")
    sb.drop([m + "gene_embedding.gene_embedding.weight", m + "gene_embedding.gene_embedding.bias", m + "gene_embedding.layer_norm.weight",
             m + "gene_embedding.layer_norm.bias"], "gene-embedding path, off in the released runs (use_gene_embedding: False)")
    for i in (0, 2):
        sb.copy(m + f"t_embedder.mlp.{i}.weight", b + f"time.mlp.{i}.weight")
        sb.copy(m + f"t_embedder.mlp.{i}.bias", b + f"time.mlp.{i}.bias")
    sb.copy(m + "class_embedding.emb.weight", b + "cov.weight")
    sb.copy(m + "class_embedding.emb.bias", b + "cov.bias")
    sb.put(b + "null", sb.get(m + "class_embedding.null_emb.weight")[0])
    depth = sizes["depth"]
    for i in range(depth):
        p, q = m + f"blocks.{i}.block.", b + f"blocks.{i}."
        for s in ("qkv.weight", "qkv.bias", "q_norm.weight", "k_norm.weight", "proj.weight", "proj.bias"):
            sb.copy(p + "attn." + s, q + "attn." + s)
        for s, t in (("fc1", "0"), ("fc2", "2")):
            sb.copy(p + f"mlp.{s}.weight", q + f"mlp_p.{t}.weight")
            sb.copy(p + f"mlp.{s}.bias", q + f"mlp_p.{t}.bias")
        sb.copy(p + "adaLN_modulation.1.weight", q + "ada_p.lin.weight")
        sb.copy(p + "adaLN_modulation.1.bias", q + "ada_p.lin.bias")
        wc, bc = sb.get(p + "control_adaLN_modulation.1.weight"), sb.get(p + "control_adaLN_modulation.1.bias")
        if i < depth - 1:
            sb.put(q + "ada_c.lin.weight", wc)
            sb.put(q + "ada_c.lin.bias", bc)
            for s, t in (("fc1", "0"), ("fc2", "2")):
                sb.copy(p + f"control_mlp.{s}.weight", q + f"mlp_c.{t}.weight")
                sb.copy(p + f"control_mlp.{s}.bias", q + f"mlp_c.{t}.bias")
        else:  # the last control-stream state is never read: only its attention-input modulation matters
            sb.put(q + "ada_c.lin.weight", wc[: 2 * d])
            sb.put(q + "ada_c.lin.bias", bc[: 2 * d])
            sb.drop([p + f"control_mlp.fc{j}.{s}" for j in (1, 2) for s in ("weight", "bias")],
                    "the last block's control-stream MLP: its output is never read (only the perturbed head enters the loss)")
            report.notes.append(f"block {i}: the control stream's attention-gate and MLP modulation rows are dropped (never read)")
    sb.copy(m + "final_layer.linear.weight", b + "head.lin.weight")
    sb.copy(m + "final_layer.linear.bias", b + "head.lin.bias")
    sb.copy(m + "final_layer.adaLN_modulation.1.weight", b + "head.ada.lin.weight")
    sb.copy(m + "final_layer.adaLN_modulation.1.bias", b + "head.ada.lin.bias")
    sb.drop([m + f"control_final_layer.{s}" for s in ("linear.weight", "linear.bias", "adaLN_modulation.1.weight", "adaLN_modulation.1.bias")],
            "the control head: its output is never used (learn_control is fixed off)")
    _map_covariates(sb, cond, model.info, codes, sizes, report)
    sb.keep([k for k in target if not k.startswith(("backbone.", "conditioner."))], "outside the network (loss-only buffers)")
    return sb.finish(), report


def _map_covariates(sb: StateBuilder, cond: Any, info: Any, codes: Mapping[str, Mapping[str, int]], sizes: dict[str, Any],
                    report: ImportReport) -> None:
    c, k = "cov_encoder.", "conditioner."
    atoms = list(info.perturbations)
    pert_codes = codes.get("pert_dict") or {}
    if cond.mode != sizes["perturbation"]:
        raise OfficialCheckpointError(f"the checkpoint's perturbation encoder is {sizes['perturbation']!r}; set model.conditioner.perturbation to it")
    if cond.mode == "onehot":
        table = sb.get(c + "pert_encoder.weight")  # row code + 1; row 0 = no perturbation
        sb.put(k + "pert.weight", table[_rows(pert_codes, atoms, "perturbation", offset=1)])
        sb.put(k + "control", table[0])
        report.notes.append("perturbations: one-hot rows re-indexed by pert_dict (row code + 1); the 'no perturbation' row 0 is distgen's control vector")
    else:
        sb.drop([c + "pert_encoder.0.weight"], "frozen perturbation vectors: written to the run's perturbation table and read from there")
        sb.copy(c + "pert_encoder.1.weight", k + "pert_proj.weight")
        sb.copy(c + "pert_encoder.1.bias", k + "pert_proj.bias")
        sb.keep([k + "control"], "no 'no perturbation' row in table mode (control sets are never trained or predicted)")
    for key in ("atom_vectors", "atom_found", "context_vectors"):
        if k + key in sb.target:
            sb.keep([k + key], "frozen table buffer, built from the run's table files")
    contexts = list(info.contexts)
    ctx_codes = codes.get("cell_type_dict") or {}
    if isinstance(cond.context, torch.nn.Embedding):
        sb.put(k + "context.weight", sb.get(c + "celltype_encoder.weight")[_rows(ctx_codes, contexts, "cell type")])
    elif cond.context is not None:
        sb.drop([c + "celltype_encoder.0.weight"], "frozen cell-type vectors: written to the run's context table and read from there")
        sb.copy(c + "celltype_encoder.1.weight", k + "context.weight")
        sb.copy(c + "celltype_encoder.1.bias", k + "context.bias")
    else:
        raise OfficialCheckpointError("the official covariate encoder always embeds the cell type; set model.conditioner.use_context: true")
    if sizes["use_batch"] != (cond.batch is not None):
        raise OfficialCheckpointError(f"the checkpoint {'has' if sizes['use_batch'] else 'has no'} batch encoder; set model.conditioner.use_batch accordingly")
    if cond.batch is not None:
        sb.put(k + "batch.weight", sb.get(c + "batch_encoder.weight")[_rows(codes.get("batch_dict") or {}, list(info.batches), "batch")])
    sb.copy(c + "transform.weight", k + "out.weight")
    sb.copy(c + "transform.bias", k + "out.bias")
    sb.keep([k + "null"], "the conditioner's null embedding: cross_dit's null_condition replaces the projected condition instead")
    if "cov_encoder.dose_indices" in sb.src:
        sb.drop(["cov_encoder.dose_indices"], "dose buffer")


def frozen_tables(official: Mapping[str, Tensor], codes: Mapping[str, Mapping[str, int]], sizes: Mapping[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Name -> vector tables of the official frozen embeddings (written next to the run's config)."""
    out: dict[str, dict[str, list[float]]] = {}
    if sizes["perturbation"] == "table":
        t = official["cov_encoder.pert_encoder.0.weight"]
        offset = 1 if t.shape[0] == len(codes.get("pert_dict") or {}) + 1 else 0  # ESM2 tables carry a zero row 0
        out["perturbation"] = {n: t[int(c) + offset].tolist() for n, c in (codes.get("pert_dict") or {}).items()}
    if sizes["context"] == "table":
        t = official["cov_encoder.celltype_encoder.0.weight"]
        out["context"] = {n: t[int(c)].tolist() for n, c in (codes.get("cell_type_dict") or {}).items()}
    return out
