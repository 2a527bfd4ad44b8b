"""Capability checks and shared-weight ties run when a ``Generator`` is assembled, before any compute.

Components declare what they offer and need in ``capabilities`` (the typed dataclasses of
``distgen.capabilities``, resolved per built instance); these functions compare the declarations of
the parts of one model and return every reason the combination cannot work. Read here:

- encoders: ``output_kind``, ``fixed_gene_panel``; the ``dim`` and ``n_genes`` attributes,
  trainable parameters and ``unused_params`` (what the encoder's role never reads);
- backbones: ``population_kind``, ``self_conditioning``, ``output_range``, ``requires_dynamics``,
  ``embeds_perturbations``, ``supports_unseen_perturbations``; the ``population_dim`` and
  ``step_timesteps`` attributes (the latter against a diffusion schedule's ``T``) and
  a ``gene_embedding`` module (gene ids -> vectors) to tie a conditioner to;
- dynamics: ``self_conditioning``, ``guidance``, ``signed_prediction``, ``requires_backbone``;
- conditioners: ``supports_unseen_perturbations``.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:
    from distgen.models.generator import Generator
    from distgen.types import CellTable


def _name(obj: Any) -> str:
    return type(obj).__name__


def _gene_panel(enc: Any, n_genes: int, role: str, genes_per_step: int | None) -> list[str]:
    if not enc.capabilities.fixed_gene_panel:
        return []
    out = []
    built = getattr(enc, "n_genes", None)
    if built is not None and built != n_genes:
        out.append(f"{role} {_name(enc)} was built for {built} genes but the data has {n_genes}")
    if role == "distribution_loss" and genes_per_step is not None and genes_per_step < n_genes:
        out.append(
            f"distribution_loss {_name(enc)} reads the full panel of {n_genes} genes, but genes_per_step={genes_per_step} "
            "trains on gene subsets; use a kernel mean embedding (kme), which works on any gene subset, or drop genes_per_step"
        )
    return out


def _unused(enc: Any, use: str, role: str) -> list[str]:
    """Parameters the encoder was given that its role never reads (``Encoder.unused_params``)."""
    unused = enc.unused_params(use) if callable(getattr(enc, "unused_params", None)) else {}
    return [
        f"{role} {_name(enc)} was given {key}, which has no effect in this role: {why}; remove model.{role}.{key}"
        for key, why in unused.items()
    ]


def population_problems(model: Generator) -> list[str]:
    """Population encoder vs backbone: output kind, width, gene panel."""
    enc, bb = model.population_encoder, model.backbone
    if enc is None:
        return []
    if "population_dim" not in inspect.signature(type(bb).__init__).parameters:
        return [
            f"backbone {_name(bb)} does not read Condition.population (it takes no population_dim), so population_encoder "
            f"{_name(enc)} would be computed and ignored; remove it or use a backbone that takes one (mlp, cross_dit, pad_transformer)"
        ]
    out = _unused(enc, "embedding", "population_encoder")
    kind, want = enc.capabilities.output_kind, bb.capabilities.population_kind
    if kind != want:
        out.append(f"population_encoder {_name(enc)} outputs {kind!r} but backbone {_name(bb)} takes a {want!r} population")
    width = getattr(bb, "population_dim", None)
    if width is not None and width != enc.dim:
        out.append(
            f"backbone {_name(bb)} was built for population_dim={width} but population_encoder {_name(enc)} has dim={enc.dim}; "
            "build the model with Generator.from_config (it injects the width) or pass population_dim=encoder.dim"
        )
    return out + _gene_panel(enc, model.info.n_genes, "population_encoder", None)


def distribution_problems(model: Generator) -> list[str]:
    """Distribution-loss encoder: must not be trainable (a minimised learned distance collapses)."""
    enc = model.distribution_loss
    if enc is None:
        return []
    out = _unused(enc, "distance", "distribution_loss")
    if model.distribution_weight > 0 and any(p.requires_grad for p in enc.parameters()):
        out.append(
            f"distribution_loss {_name(enc)} has trainable parameters: minimising a learned distance jointly with the "
            "generator drives it to zero for any pair of populations; set frozen: true (a fixed random set embedding) or use kme"
        )
    return out + _gene_panel(enc, model.info.n_genes, "distribution_loss", model.genes_per_step)


def _declared(needs: Mapping[str, Any], have: Any, who: str, whom: str) -> list[str]:
    out = []
    fields = {f.name for f in dataclasses.fields(have)}
    for key, value in needs.items():
        if key not in fields:
            out.append(f"{who} requires {whom} capability {key!r}, which {type(have).__name__} does not have (fields: {', '.join(sorted(fields))})")
            continue
        got = getattr(have, key)
        ok = got in value if isinstance(value, list | tuple | set | frozenset) else got == value
        if not ok:
            out.append(f"{who} requires {whom} capability {key}={value!r}, but {whom} has {key}={got!r}")
    return out


def dynamics_backbone_problems(model: Generator) -> list[str]:
    """Dynamics x backbone: self-conditioning (both ways), step time vs schedule, output sign, guidance, declared requirements."""
    dyn, bb = model.dynamics, model.backbone
    dcaps, bcaps = dyn.capabilities, bb.capabilities
    out = []
    if dcaps.self_conditioning and not bcaps.self_conditioning:
        enable = ("enable it on the backbone (model.backbone.self_conditioning=true)"
                  if "self_conditioning" in inspect.signature(type(bb).__init__).parameters
                  else f"use a backbone that takes it ({', '.join(_self_conditioning_backbones()) or 'none is registered'})")
        out.append(
            f"dynamics {_name(dyn)} trains with self-conditioning (self_condition={getattr(dyn, 'self_condition', '?')}) but backbone "
            f"{_name(bb)} does not take the previous estimate; {enable} or train without it (model.dynamics.self_condition=0)"
        )
    if bcaps.self_conditioning and not dcaps.self_conditioning:
        sc = getattr(dyn, "self_condition", None)
        why = f" (self_condition={sc})" if sc is not None else ""
        fix = "set self_conditioning: false on the backbone (model.backbone.self_conditioning=false)"
        if "self_conditioning" not in inspect.signature(type(bb).__init__).parameters:
            fix = "use a backbone that does not take one"
        out.append(
            f"backbone {_name(bb)} takes the previous data estimate (self-conditioning) but dynamics {_name(dyn)} does not "
            f"self-condition{why}, so that input would always be zeros and its weights unused; {fix}"
            + (" or train with self-conditioning (model.dynamics.self_condition > 0, PerturbDiff: 0.5)" if sc is not None else "")
        )
    steps, schedule = getattr(bb, "step_timesteps", None), getattr(dyn, "schedule", None)
    if steps is not None and schedule is not None and getattr(schedule, "T", steps) != steps:
        out.append(
            f"backbone {_name(bb)} embeds time as the diffusion step of a {steps}-step chain (time_input: step, timesteps: "
            f"{steps}) but the dynamics' noise schedule has timesteps={schedule.T}, so every noise level would reach the "
            f"network as another step; set model.backbone.timesteps={schedule.T} (or model.backbone.time_input=scaled)"
        )
    if bcaps.output_range == "nonnegative" and dcaps.signed_prediction:
        pred = getattr(dyn, "prediction", "?")
        out.append(
            f"backbone {_name(bb)} has a non-negative output head but dynamics {_name(dyn)} predicts {pred!r}, which takes "
            "either sign; predict the sample (x0/x1) or use a backbone with a linear head"
        )
    if dcaps.guidance and model.p_drop_condition <= 0:
        out.append(
            f"dynamics {_name(dyn)} samples with classifier-free guidance={getattr(dyn, 'guidance', '?')}, which needs a trained "
            "null condition; set p_drop_condition > 0 (e.g. 0.1) or guidance: 1"
        )
    out += _declared(dcaps.requires_backbone, bcaps, f"dynamics {_name(dyn)}", f"backbone {_name(bb)}")
    out += _declared(bcaps.requires_dynamics, dcaps, f"backbone {_name(bb)}", f"dynamics {_name(dyn)}")
    return out


def _self_conditioning_backbones() -> list[str]:
    """Registered backbones that can take the previous data estimate (capability True, or decided per instance)."""
    from distgen.backbones.base import backbones

    return [i.name for i in backbones.infos() if getattr(i.capabilities, "self_conditioning", False) is not False]


def capability_problems(model: Generator) -> list[str]:
    """Every reason this assembly cannot work (empty when it can)."""
    return population_problems(model) + distribution_problems(model) + dynamics_backbone_problems(model)


#: ``clip_denoised`` warns when it zeroes more than this fraction of the non-zero training values.
CLIP_WARN_FRACTION = 0.01


def clip_denoised_problems(model: Generator, train: CellTable) -> tuple[str | None, str | None]:
    """``(error, warning)`` for a diffusion ``clip_denoised`` cutoff against the training cells.

    The cutoff zeroes every data estimate below it during sampling, in model units (expression
    times ``input_scale``). Above every training value it zeroes all generated cells (an error);
    above more than ``CLIP_WARN_FRACTION`` of the non-zero training values it deletes real
    expression (a warning). PerturbDiff's ``1e-4`` sits below every non-zero log-normalised value.
    """
    c = getattr(model.dynamics, "clip_denoised", None)
    if c is None or train.X.numel() == 0:
        return None, None
    cut = c / model.input_scale  # in the units of train.X
    x_max, nonzero, below = float("-inf"), 0, 0
    for rows in train.X.split(4096):  # counts without an [N, G] temporary
        x_max = max(x_max, float(rows.max()))
        nz = rows != 0
        nonzero += int(nz.sum())
        below += int((nz & (rows < cut)).sum())
    what = f"clip_denoised={c:g} sets every denoised estimate below {c:g} to 0 (in expression units: {cut:g}, input_scale={model.input_scale:g})"
    fix = "use a small cutoff such as PerturbDiff's 1.0e-4, or clip_denoised: null"
    if cut > x_max:
        return f"{what}, but the largest training value is {x_max:g}: every generated value would be 0; {fix}", None
    if nonzero and below > CLIP_WARN_FRACTION * nonzero:
        return None, f"{what}, which deletes {100 * below / nonzero:.1f} % of the non-zero training values; {fix}"
    return None, None


def supports_unseen_perturbations(model: Generator) -> bool:
    """Can ``model`` embed perturbation atoms never seen in training? True iff every part that embeds them can.

    The parts are the backbone when it tokenises perturbations itself (``embeds_perturbations``)
    and the conditioner when the model has one; they are the parts ``can_predict`` asks.
    """
    flags = [model.backbone.capabilities.supports_unseen_perturbations] if model.backbone.capabilities.embeds_perturbations else []
    flags += [model.conditioner.capabilities.supports_unseen_perturbations] if model.conditioner is not None else []
    return bool(flags) and all(bool(f) for f in flags)


def tie_gene_embeddings(model: Generator) -> bool:
    """Share the backbone's gene-token table with a conditioner that embeds perturbations by gene.

    A backbone with gene tokens exposes ``gene_embedding`` (gene ids into ``info.genes`` -> vectors,
    width ``gene_embedding_dim`` or the ``nn.Embedding`` width); a conditioner with
    ``tie_gene_embedding`` then uses that table. Returns whether a tie was made.
    """
    table = getattr(model.backbone, "gene_embedding", None)
    tie = getattr(model.conditioner, "tie_gene_embedding", None)
    if table is None or tie is None or not isinstance(table, nn.Module):
        if tie is not None and getattr(model.conditioner, "share_gene_embedding", True) is False:
            from distgen.config import InertSettingWarning
            from distgen.errors import warn

            warn(f"conditioner {_name(model.conditioner)}: share_gene_embedding=false has no effect with backbone "
                 f"{_name(model.backbone)}, which has no gene-token table to share (the conditioner's own table is used "
                 "either way); remove it", InertSettingWarning)
        return False
    width = getattr(model.backbone, "gene_embedding_dim", None) or getattr(table, "embedding_dim", None)
    if width is None:
        raise ValueError(f"backbone {_name(model.backbone)} exposes gene_embedding but no gene_embedding_dim")
    tie(table, int(width))
    return bool(getattr(model.conditioner, "tied", True))


__all__ = [
    "CLIP_WARN_FRACTION",
    "capability_problems",
    "clip_denoised_problems",
    "distribution_problems",
    "dynamics_backbone_problems",
    "population_problems",
    "supports_unseen_perturbations",
    "tie_gene_embeddings",
]
