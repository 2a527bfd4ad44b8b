"""Model-side measurements: training speed per preset, sampling speed against NFE, cost scaling.

Models are built with ``distgen.api.build(preset, info)`` on a synthetic ``DataInfo`` and trained on
in-memory random set batches (so these numbers are the model's, not the data pipeline's).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import torch

from benchmarks.harness.measure import count_flops, current_rss_mb, loglog_exponent, peak_flops, timed
from distgen.types import CellTable, ConditionLabels, DataInfo, SetBatch

#: Overrides that set the number of sampling steps, per dynamics name.
NFE_OVERRIDES = {"flow_matching": ["model.dynamics.solver={{name: euler, steps: {k}}}"],
                 "diffusion": ["model.dynamics.sampler={{name: ddim, steps: {k}}}"]}


def synthetic_info(n_genes: int, n_perturbations: int = 16, n_contexts: int = 2, n_batches: int = 2) -> DataInfo:
    genes = tuple(f"GENE{i:05d}" for i in range(n_genes))
    return DataInfo(genes, genes[:n_perturbations], tuple(f"ctx{i}" for i in range(n_contexts)), tuple(f"b{i}" for i in range(n_batches)))


def random_batch(info: DataInfo, sets: int, m: int, seed: int = 0, device: str | torch.device = "cpu") -> SetBatch:
    """``[sets, m, G]`` sparse-ish non-negative log-expression with single-gene conditions."""
    g = torch.Generator().manual_seed(seed)

    def cells() -> torch.Tensor:
        x = torch.rand(sets, m, info.n_genes, generator=g) * 3
        return x * (torch.rand(sets, m, info.n_genes, generator=g) < 0.3)

    labels = ConditionLabels.make(
        torch.randint(info.n_perturbations, (sets, 1), generator=g),
        context=torch.randint(len(info.contexts), (sets,), generator=g),
        batch=torch.randint(len(info.batches), (sets,), generator=g),
    )
    ones = torch.ones(sets, m, dtype=torch.bool)
    return SetBatch(cells(), ones, cells(), ones.clone(), labels, torch.arange(info.n_genes)).to(device)


def preset_shape(name: str) -> tuple[int, int]:
    """``(set_size, sets_per_batch)`` a preset trains with (its ``data`` / ``train`` sections)."""
    from distgen.config import load_config

    doc = load_config(name)
    return int(doc.get("data", {}).get("set_size", 32)), int(doc.get("train", {}).get("sets_per_batch", 4))


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def random_table(info: DataInfo, n: int = 256, seed: int = 0) -> CellTable:
    """``n`` random cells (a quarter controls) for components that fit structure to training data."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, info.n_genes, generator=g) * 3 * (torch.rand(n, info.n_genes, generator=g) < 0.3)
    pert = torch.randint(info.n_perturbations, (n, 1), generator=g)
    pert[: n // 4] = -1
    labels = ConditionLabels.make(pert, context=torch.randint(len(info.contexts), (n,), generator=g), batch=torch.randint(len(info.batches), (n,), generator=g))
    return CellTable(x, labels, info)


def build(name: str, info: DataInfo, overrides: list[str] | None = None, device: torch.device | None = None, train: CellTable | None = None) -> Any:
    """Preset ``name`` for ``info``, prepared on ``train`` (random cells by default: e.g. a gene graph)."""
    from distgen.api import build as api_build
    from distgen.train.loop import prepare

    torch.manual_seed(0)
    model = api_build(name, info, overrides or [])
    if hasattr(model, "modules"):
        prepare(model, train if train is not None else random_table(info))
    return model.to(device) if device is not None and hasattr(model, "to") else model


def training_step(model: Any, batches: list[SetBatch], device: torch.device) -> tuple[Callable[[int], None], torch.optim.Optimizer]:
    """``(step, optimizer)``, ``step(i)`` one training step of ``model`` on ``batches[i % len(batches)]`` (forward and loss under bf16 autocast
    on CUDA, backward, and the optimizer distgen trains with: ``make_optimizer``'s AdamW, fused where the device has it), which it returns beside ``step``."""
    from distgen.train.optim import make_optimizer

    opt = make_optimizer(model.named_parameters(), "adamw", lr=1e-4)

    def step(i: int) -> None:
        with _autocast(device):
            out = model.loss(batches[i % len(batches)])
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    return step, opt


def train_speed(
    name: str, info: DataInfo, sets: int, m: int, device: torch.device, warmup: int = 1, repeats: int = 3, steps: int = 2,
    max_step_s: float | None = None, flops: bool = True,
) -> dict[str, Any]:
    """Optimizer steps/s and cells/s of preset ``name`` on ``[sets, m, G]`` batches (bf16 on CUDA)."""
    model = build(name, info, device=device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = random_batch(info, sets, m, device=device)

    def step() -> None:
        with _autocast(device):
            out = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    out: dict[str, Any] = {"preset": name, "genes": info.n_genes, "sets": sets, "set_size": m, "cells_per_step": sets * m,
                           "params": sum(p.numel() for p in model.parameters()), "precision": "bf16" if device.type == "cuda" else "fp32"}
    t0 = time.perf_counter()
    step()  # a first probe: skip sizes this machine cannot run in reasonable time
    first = time.perf_counter() - t0
    if max_step_s is not None and first > max_step_s:
        return {**out, "skipped": f"one step took {first:.1f} s > {max_step_s} s on this machine"}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t = timed(lambda: [step() for _ in range(steps)], warmup=max(0, warmup - 1), repeats=repeats, sync=device.type == "cuda")
    sps = steps / t["median_s"]
    out.update(steps_per_s=sps, cells_per_s=sps * sets * m, step_s=t["median_s"] / steps, rss_mb=current_rss_mb())
    if device.type == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    if flops:
        f = count_flops(step)
        out["flops_per_step"] = f
        out["achieved_tflops"] = f * sps / 1e12
        peak = peak_flops(device)
        out["mfu"] = f * sps / peak if peak else None
    return out


def sampling_speed(name: str, info: DataInfo, sets: int, m: int, nfes: list[int], device: torch.device, repeats: int = 3) -> list[dict[str, Any]]:
    """Generated cells/s of ``predict`` against the number of function evaluations."""
    from distgen.config import load_config

    dyn = load_config(name)["model"]["dynamics"]["name"]
    if dyn not in NFE_OVERRIDES:
        return [{"preset": name, "skipped": f"no NFE override known for dynamics {dyn!r}"}]
    batch = random_batch(info, sets, m, seed=1, device=device)
    rows = []
    for k in nfes:
        model = build(name, info, [o.format(k=k) for o in NFE_OVERRIDES[dyn]], device)
        model.eval()

        def gen(model: Any = model) -> None:
            with _autocast(device):
                model.predict(batch.control, batch.control_mask, batch.labels)

        t = timed(gen, warmup=1, repeats=repeats, sync=device.type == "cuda")
        rows.append({"preset": name, "steps": k, "nfe": int(getattr(model, "last_nfe", k)), "seconds": t["median_s"], "cells_per_s": sets * m / t["median_s"]})
    return rows


def scaling(name: str, device: torch.device, genes: list[int], set_sizes: list[int], sets: int, base_genes: int, base_m: int, repeats: int = 3) -> dict[str, Any]:
    """Training step time against gene count and set size, with fitted log-log exponents."""
    out: dict[str, Any] = {"preset": name}
    for key, values in (("genes", genes), ("set_size", set_sizes)):
        rows = []
        for v in values:
            g, m = (v, base_m) if key == "genes" else (base_genes, v)
            r = train_speed(name, synthetic_info(g), sets, m, device, warmup=1, repeats=repeats, steps=1, flops=False)
            rows.append({key: v, "step_s": r["step_s"]})
        out[key] = {"points": rows, "exponent": loglog_exponent([r[key] for r in rows], [r["step_s"] for r in rows])}
    return out
