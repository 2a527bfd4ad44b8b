"""scDFM's official state dict (``src/models/origin``, ``fusion_method=differential_perceiver``) -> ``pad_transformer``.

Facts of the official code used here: the network is ``model`` of ``src/models/origin/model.py``;
its gene table and the co-expression mask are indexed by the ids of a ``GeneVocab`` JSON (4
specials ``<pad> <cls> <mask> control``, then the genes in alphabetical order); the mask is a
separate ``.pt`` file (``True`` = blocked), not part of the state dict. Where the official code
concatenates ``[a; b]`` before a ``Linear``, distgen holds the two column blocks as two maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from distgen.models.official.common import ImportReport, OfficialCheckpointError, StateBuilder
from distgen.wording import counted, first_of

SPECIALS = ("<pad>", "<cls>", "<mask>", "control")
ATTN = (("q_proj_1", "q1"), ("k_proj_1", "k1"), ("q_proj_2", "q2"), ("k_proj_2", "k2"), ("v_proj", "v"), ("out_proj", "out"))
LAMBDAS = ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2")


def model_state(ckpt: Mapping[str, Any]) -> dict[str, Tensor]:
    """The network's state dict from an official ``checkpoint.pt`` (or a bare state dict)."""
    sd = ckpt.get("model_state_dict", ckpt)
    sd = {k.removeprefix("module."): v for k, v in sd.items() if isinstance(v, Tensor)}
    if "encoder.embedding.weight" not in sd:
        raise OfficialCheckpointError("this is not an scDFM checkpoint: no 'encoder.embedding.weight' (expected checkpoint.pt of src/script/run.py)")
    return sd


def infer_sizes(sd: Mapping[str, Tensor]) -> dict[str, Any]:
    """``d_model``, ``heads``, ``layers``, ``mlp_ratio``, ``ntoken`` read from the shapes."""
    if not any(k.startswith("blocks.0.diff_self_attn.") for k in sd):
        raise OfficialCheckpointError(
            "only fusion_method=differential_perceiver (the released scDFM, run.sh) is mapped; this checkpoint has other blocks"
        )
    ntoken, d = sd["encoder.embedding.weight"].shape
    head_dim = sd["blocks.0.diff_self_attn.attn.lambda_q1"].shape[0]
    layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    hidden = sd["blocks.0.diff_self_attn.mlp.fc1.weight"].shape[0]
    if "encoder.perturbation_interaction.cross_attn.in_proj_weight" not in sd:
        raise OfficialCheckpointError("the checkpoint has no graph gene encoder (use_perturbation_interaction=False); not mapped")
    return {"d_model": int(d), "heads": int(d // head_dim), "layers": int(layers), "mlp_ratio": int(hidden // d), "ntoken": int(ntoken)}


def official_keys(d: int, heads: int, layers: int, ntoken: int, mlp_ratio: int = 4) -> dict[str, tuple[int, ...]]:
    """Every key of the official state dict with its shape (checked against the official module by the parity harness)."""
    hd = d // heads
    keys: dict[str, tuple[int, ...]] = {
        "t_embedder.mlp.0.weight": (d, 256), "t_embedder.mlp.0.bias": (d,), "t_embedder.mlp.2.weight": (d, d), "t_embedder.mlp.2.bias": (d,),
        "perturbation_embedder.embedding.weight": (ntoken, d), "perturbation_embedder.enc_norm.weight": (d,),
        "perturbation_embedder.enc_norm.bias": (d,),
        "fusion_layer.0.weight": (d, 2 * d), "fusion_layer.0.bias": (d,), "fusion_layer.2.weight": (d, d), "fusion_layer.2.bias": (d,),
        "fusion_layer.3.weight": (d,), "fusion_layer.3.bias": (d,),
        "encoder.embedding.weight": (ntoken, d), "encoder.enc_norm.weight": (d,), "encoder.enc_norm.bias": (d,),
        "p_mask_embed": (d,), "p_head.0.weight": (d,), "p_head.0.bias": (d,), "p_head.1.weight": (d, d), "p_head.1.bias": (d,),
        "final_layer.fc.0.weight": (d, 2 * d), "final_layer.fc.0.bias": (d,), "final_layer.fc.2.weight": (d, d),
        "final_layer.fc.2.bias": (d,), "final_layer.fc.4.weight": (1, d), "final_layer.fc.4.bias": (1,),
    }
    for v in ("value_encoder_1", "value_encoder_2"):
        keys |= {f"{v}.linear1.weight": (d, 1), f"{v}.linear1.bias": (d,), f"{v}.linear2.weight": (d, d), f"{v}.linear2.bias": (d,),
                 f"{v}.norm.weight": (d,), f"{v}.norm.bias": (d,)}
    pi = "encoder.perturbation_interaction."
    keys |= {pi + "cross_attn.in_proj_weight": (3 * d, d), pi + "cross_attn.in_proj_bias": (3 * d,), pi + "cross_attn.out_proj.weight": (d, d),
             pi + "cross_attn.out_proj.bias": (d,), pi + "norm1.weight": (d,), pi + "norm1.bias": (d,), pi + "linear1.weight": (4 * d, d),
             pi + "linear1.bias": (4 * d,), pi + "linear2.weight": (d, 4 * d), pi + "linear2.bias": (d,), pi + "norm2.weight": (d,), pi + "norm2.bias": (d,)}
    for i in range(layers):
        for part in ("diff_self_attn", "diff_cross_attn"):
            p = f"blocks.{i}.{part}."
            keys |= {p + f"attn.{o}.weight": (d, d) for o, _ in ATTN}
            keys |= {p + f"attn.{lam}": (hd,) for lam in LAMBDAS}
            keys |= {p + "attn.subln.weight": (hd,), p + "mlp.fc1.weight": (mlp_ratio * d, d), p + "mlp.fc1.bias": (mlp_ratio * d,),
                     p + "mlp.fc2.weight": (d, mlp_ratio * d), p + "mlp.fc2.bias": (d,), p + "adaLN_modulation.1.weight": (6 * d, d),
                     p + "adaLN_modulation.1.bias": (6 * d,)}
        keys |= {f"gene_adaLN.{i}.adaLN_modulation.1.weight": (3 * d, d), f"gene_adaLN.{i}.adaLN_modulation.1.bias": (3 * d,),
                 f"gene_adaLN.{i}.norm.weight": (d,), f"gene_adaLN.{i}.norm.bias": (d,), f"adapter_layer.{i}.0.weight": (d, 2 * d),
                 f"adapter_layer.{i}.0.bias": (d,), f"adapter_layer.{i}.3.weight": (d, d), f"adapter_layer.{i}.3.bias": (d,)}
    return keys


def token_rows(backbone: Any, vocab: Mapping[str, int], ntoken: int) -> list[int]:
    """Official vocabulary row of every distgen gene token (panel genes, extra perturbed genes, control token)."""
    names = [*backbone.info.genes, *backbone.extra_genes]
    missing = [g for g in names if g not in vocab]
    if missing:
        raise OfficialCheckpointError(
            f"{counted(len(missing), 'gene')} of the data {'is' if len(missing) == 1 else 'are'} not in the official vocabulary: "
            f"{first_of(missing, 8, render=repr)}; the gene panel must be the "
            "one the checkpoint was trained on (keep only the vocabulary's genes in the .h5ad)"
        )
    if "control" not in vocab:
        raise OfficialCheckpointError("the vocabulary has no 'control' token; is it scDFM's GeneVocab JSON?")
    rows = [int(vocab[g]) for g in names] + [int(vocab["control"])]
    if max(rows) >= ntoken:
        raise OfficialCheckpointError(f"vocabulary ids reach {max(rows)} but the checkpoint's gene table has {ntoken} rows")
    return rows


def check_panel(info_genes: Sequence[str], vocab: Mapping[str, int]) -> None:
    """The data's genes must be exactly the vocabulary's genes (the gene encoder attends over all of them)."""
    genes = {g for g in vocab if g not in SPECIALS}
    extra = genes - set(info_genes)
    if extra:
        raise OfficialCheckpointError(
            f"the official vocabulary has {counted(len(extra), 'gene')} that the data lacks: {first_of(sorted(extra), 8, render=repr)}; "
            "every official gene "
            "embedding attends over the whole vocabulary, so the data must hold the checkpoint's full gene panel "
            f"({len(genes)} genes) to reproduce it; predict a smaller panel with model.predict_genes instead"
        )


def graph_from_mask(mask: Tensor, info_genes: Sequence[str], vocab: Mapping[str, int]) -> Tensor:
    """``[G, G]`` bool adjacency over the data's genes from the official blocked-attention mask."""
    ids = torch.tensor([int(vocab[g]) for g in info_genes])
    if mask.dim() != 2 or mask.shape[0] != mask.shape[1] or int(ids.max()) >= mask.shape[0]:
        raise OfficialCheckpointError(f"the mask must be square over the vocabulary ids, got shape {tuple(mask.shape)}")
    return ~mask.bool()[ids][:, ids]


def map_state(official: Mapping[str, Tensor], model: Any, vocab: Mapping[str, int], drug_rows: Mapping[str, int] | None = None,
              source: str = "scDFM checkpoint") -> tuple[dict[str, Tensor], ImportReport]:
    """distgen state dict of ``model`` (a generator with a ``pad_transformer``) from the official network's state dict."""
    bb = model.backbone
    if type(bb).__name__ != "PADTransformer":
        raise OfficialCheckpointError(f"scDFM maps into a pad_transformer backbone; the config builds {type(bb).__name__}")
    sizes = infer_sizes(official)
    report = ImportReport(source, sizes)
    if bb.graph is False or bb.pool != "padded_mean":
        raise OfficialCheckpointError("the config must keep scDFM's graph gene encoder (graph: true) and pool: padded_mean")
    target = model.state_dict()
    sb = StateBuilder(official, target, report)
    b, d = "backbone.", sizes["d_model"]
    for i in (0, 2):
        sb.copy(f"t_embedder.mlp.{i}.weight", f"{b}time.mlp.{i}.weight")
        sb.copy(f"t_embedder.mlp.{i}.bias", f"{b}time.mlp.{i}.bias")
    for src, dst in (("value_encoder_1", "value_x"), ("value_encoder_2", "value_c")):
        for s, t in (("linear1", "0"), ("linear2", "2"), ("norm", "3")):
            sb.copy(f"{src}.{s}.weight", f"{b}{dst}.net.{t}.weight")
            sb.copy(f"{src}.{s}.bias", f"{b}{dst}.net.{t}.bias")
    w = sb.get("fusion_layer.0.weight")
    sb.put(f"{b}fusion.wx.weight", w[:, :d])
    sb.put(f"{b}fusion.wc.weight", w[:, d:])
    sb.copy("fusion_layer.0.bias", f"{b}fusion.wx.bias")
    for s, t in (("2", "1"), ("3", "2")):
        sb.copy(f"fusion_layer.{s}.weight", f"{b}fusion.out.{t}.weight")
        sb.copy(f"fusion_layer.{s}.bias", f"{b}fusion.out.{t}.bias")
    # gene encoder: table rows re-indexed from the official vocabulary
    rows = token_rows(bb, vocab, sizes["ntoken"])
    sb.put(f"{b}genes.table.weight", sb.get("encoder.embedding.weight")[torch.tensor(rows)])
    used = len(rows)
    report.notes.append(f"gene table: {used} of the official {sizes['ntoken']} rows are vocabulary tokens the data uses; the other rows are never read")
    for s, t in (("enc_norm", "norm0"),):
        sb.copy(f"encoder.{s}.weight", f"{b}genes.{t}.weight")
        sb.copy(f"encoder.{s}.bias", f"{b}genes.{t}.bias")
    pi = "encoder.perturbation_interaction."
    wqkv, bqkv = sb.get(pi + "cross_attn.in_proj_weight"), sb.get(pi + "cross_attn.in_proj_bias")
    for j, name in enumerate("qkv"):
        sb.put(f"{b}genes.{name}.weight", wqkv[j * d:(j + 1) * d])
        sb.put(f"{b}genes.{name}.bias", bqkv[j * d:(j + 1) * d])
    for s, t in (("cross_attn.out_proj", "o"), ("norm1", "norm_q"), ("linear1", "ff.0"), ("linear2", "ff.3"), ("norm2", "norm_ff")):
        sb.copy(f"{pi}{s}.weight", f"{b}genes.{t}.weight")
        sb.copy(f"{pi}{s}.bias", f"{b}genes.{t}.bias")
    for i in range(sizes["layers"]):
        sb.copy(f"gene_adaLN.{i}.adaLN_modulation.1.weight", f"{b}gene_ada.{i}.mod.1.weight")
        sb.copy(f"gene_adaLN.{i}.adaLN_modulation.1.bias", f"{b}gene_ada.{i}.mod.1.bias")
        sb.copy(f"gene_adaLN.{i}.norm.weight", f"{b}gene_ada.{i}.norm.weight")
        sb.copy(f"gene_adaLN.{i}.norm.bias", f"{b}gene_ada.{i}.norm.bias")
        w = sb.get(f"adapter_layer.{i}.0.weight")
        sb.put(f"{b}adapters.{i}.w1.a.weight", w[:, :d])
        sb.put(f"{b}adapters.{i}.w1.b.weight", w[:, d:])
        sb.copy(f"adapter_layer.{i}.0.bias", f"{b}adapters.{i}.w1.a.bias")
        sb.copy(f"adapter_layer.{i}.3.weight", f"{b}adapters.{i}.rest.2.weight")
        sb.copy(f"adapter_layer.{i}.3.bias", f"{b}adapters.{i}.rest.2.bias")
        # DiffPerceiverBlock: diff_self_attn (Q from the modulated state, K from the raw one) then diff_cross_attn (map 2 from the control)
        for part, dst in (("diff_self_attn", "self_blocks"), ("diff_cross_attn", "cross_blocks")):
            p, q = f"blocks.{i}.{part}.", f"{b}{dst}.{i}."
            for o, t in ATTN:
                sb.copy(f"{p}attn.{o}.weight", f"{q}attn.{t}.weight")
            for lam in LAMBDAS:
                sb.copy(f"{p}attn.{lam}", f"{q}attn.{lam}")
            sb.copy(f"{p}attn.subln.weight", f"{q}attn.head_norm.weight")
            for s, t in (("mlp.fc1", "mlp.0"), ("mlp.fc2", "mlp.2"), ("adaLN_modulation.1", "ada.1")):
                sb.copy(f"{p}{s}.weight", f"{q}{t}.weight")
                sb.copy(f"{p}{s}.bias", f"{q}{t}.bias")
    w = sb.get("final_layer.fc.0.weight")
    sb.put(f"{b}decoder.w3.a.weight", w[:, :d])
    sb.put(f"{b}decoder.w3.b.weight", w[:, d:])
    sb.copy("final_layer.fc.0.bias", f"{b}decoder.w3.a.bias")
    for s, t in (("2", "1"), ("4", "3")):
        sb.copy(f"final_layer.fc.{s}.weight", f"{b}decoder.rest.{t}.weight")
        sb.copy(f"final_layer.fc.{s}.bias", f"{b}decoder.rest.{t}.bias")
    pe = ("perturbation_embedder.embedding.weight", "perturbation_embedder.enc_norm.weight", "perturbation_embedder.enc_norm.bias")
    if bb.encoding == "table":
        if drug_rows is None:
            raise OfficialCheckpointError("drug perturbations need the official perturbation ids (name -> row of perturbation_embedder); pass --perturbation-ids")
        atoms = [*bb.info.perturbations, "control"]
        missing = [a for a in atoms if a not in drug_rows]
        if missing:
            raise OfficialCheckpointError(f"perturbation ids lack {missing[:8]}")
        sb.put(f"{b}pert_table.0.weight", sb.get(pe[0])[torch.tensor([int(drug_rows[a]) for a in atoms])])
        sb.copy(pe[1], f"{b}pert_table.1.weight")
        sb.copy(pe[2], f"{b}pert_table.1.bias")
    else:
        sb.drop(pe, "the label table is read only for drug perturbations (perturbation_function != crisper)")
    sb.drop(["p_mask_embed", "p_head.0.weight", "p_head.0.bias", "p_head.1.weight", "p_head.1.bias"],
            "used only by mode=predict_p (the released runs use predict_y)")
    sb.keep([f"{b}null"], "classifier-free guidance null vector: scDFM trains without condition dropout")
    sb.keep([k for k in target if k.startswith(f"{b}genes.nbr_")], "gene graph buffers: set from the official mask or built by prepare()")
    sb.keep([k for k in target if not k.startswith(b)], "outside the backbone (conditioner unused by pad_transformer, loss-only buffers)")
    extra = [k for k in target if k.startswith(b) and k not in sb.out]
    if extra:
        raise OfficialCheckpointError(f"the config's backbone has parameters without an official counterpart: {extra[:6]}; use the scdfm preset's backbone")
    return sb.finish(), report
