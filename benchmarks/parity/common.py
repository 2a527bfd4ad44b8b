"""Rows of the parity table: what was compared, the max |difference| relative to the official scale."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

TOLERANCE = 1e-5  #: pass when max |distgen - official| / max |official| is below this


@dataclass
class Row:
    model: str
    check: str
    max_abs: float
    scale: float
    note: str = ""

    @property
    def rel(self) -> float:
        return self.max_abs / max(self.scale, 1e-12)

    @property
    def ok(self) -> bool:
        return self.rel < TOLERANCE


def compare(model: str, check: str, ours: torch.Tensor, official: torch.Tensor, note: str = "") -> Row:
    """Row for two tensors of one shape (compared in float64)."""
    a, b = ours.detach().double(), official.detach().double()
    if a.shape != b.shape:
        raise AssertionError(f"{model} / {check}: shape {tuple(a.shape)} vs official {tuple(b.shape)}")
    return Row(model, check, float((a - b).abs().max()), float(b.abs().max()), note)


def exact(model: str, check: str, ok: bool, note: str = "") -> Row:
    """Row for a discrete comparison (0 = identical)."""
    return Row(model, check, 0.0 if ok else 1.0, 1.0, note)


def jitter_(module: torch.nn.Module, scale: float = 0.05, seed: int = 0) -> None:
    """Add noise to every parameter so zero biases, identity norms and zero-initialised gates are exercised too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def table(rows: list[Row]) -> str:
    """Markdown table of the rows."""
    head = f"| model | check | max abs diff | official scale | relative | pass (< {TOLERANCE:g}) |\n|---|---|---|---|---|---|"
    body = [f"| {r.model} | {r.check}{' (' + r.note + ')' if r.note else ''} | {r.max_abs:.2e} | {r.scale:.3g} | {r.rel:.2e} | "
            f"{'yes' if r.ok else 'NO'} |" for r in rows]
    return "\n".join([head, *body])


def init_law(model: str, ours: torch.nn.Module, official: dict[str, torch.Tensor], documented: dict[str, str] | None = None,
             min_numel: int = 64, extra: Sequence[tuple[torch.nn.Module, dict[str, torch.Tensor]]] = (),
             pool: Callable[[str], str] | None = None) -> Row:
    """Row for the initialisation law: each freshly built distgen parameter against the freshly built official one
    mapped onto it (``official``: the mapping's state for ``ours``). A constant official tensor (zero biases, unit
    gains, zero-initialised gates) must come out identical; any other must not be constant and must have the same
    standard deviation and mean magnitude within sampling noise, ``4 / sqrt(numel)`` relative (the mean magnitude
    over the standard deviation is 0.87 for a uniform law, 0.80 for a normal one: a coarse check of the law's shape).
    Tensors under ``min_numel`` elements are checked for being non-constant, and compared by the same law once pooled:
    over the further fresh builds ``extra`` (pairs like ``ours`` and ``official``), and across the names that ``pool``
    maps to one key (e.g. the four lambda vectors of every layer); a pool still under ``min_numel`` is named in the
    note as checked for randomness only. ``documented``: parameters whose initialisation differs on purpose (name ->
    where it is documented); they are reported, not failed."""
    documented = documented or {}
    key = pool or (lambda name: name)
    bad, known, checked = [], [], 0
    pooled: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
    for name, p in ours.named_parameters():
        if name in documented:
            known.append(f"{name} ({documented[name]})")
            continue
        o, d = official[name].detach().double(), p.detach().double()
        if o.shape != d.shape:
            raise AssertionError(f"{model} / {name}: shape {tuple(d.shape)} vs official {tuple(o.shape)}")
        if bool((o == o.flatten()[0]).all()):
            if not torch.equal(o, d):
                bad.append(f"{name} (official constant {float(o.flatten()[0]):g})")
            continue
        if bool((d == d.flatten()[0]).all()):
            bad.append(f"{name} (constant, official random)")
            continue
        if d.numel() < min_numel:
            mine, theirs = pooled.setdefault(key(name), ([], []))
            for module, state in ((ours, official), *extra):
                mine.append(dict(module.named_parameters())[name].detach().double().flatten())
                theirs.append(state[name].detach().double().flatten())
            continue
        checked += 1
        bad += _law_differs(name, d, o)
    few = []
    for name, (mine, theirs) in pooled.items():
        d, o = torch.cat(mine), torch.cat(theirs)
        if d.numel() < min_numel:
            few.append(f"{name} ({d.numel()})")
            continue
        checked += 1
        bad += _law_differs(f"{name} (pooled, {d.numel()} values)", d, o)
    note = (f"{checked} random tensors compared, {len(list(ours.parameters()))} in all"
            + (f"; {len(pooled) - len(few)} of them pools of small tensors over {1 + len(extra)} builds" if pooled else "")
            + (f"; randomness only: {', '.join(few)}" if few else "") + (f"; documented: {', '.join(known)}" if known else "")
            + (f"; differ: {', '.join(bad)}" if bad else ""))
    return exact(model, "initialisation law, every parameter (constants exact; std and mean |w| within 4/sqrt(n))", not bad, note)


def _law_differs(name: str, d: torch.Tensor, o: torch.Tensor) -> list[str]:
    """``init_law``'s comparison of one random tensor (or pool) ``d`` with the official ``o``: what differs."""
    tol = 4 / d.numel() ** 0.5
    return [f"{name} ({what} {float(a):.3g} vs official {float(b):.3g})"
            for what, a, b in (("std", d.std(), o.std()), ("mean |w|", d.abs().mean(), o.abs().mean())) if abs(float(a / b) - 1) > tol]


def lr_schedule(model: str, check: str, ours: list[float], official: list[float], note: str = "") -> Row:
    """Row for two learning-rate sequences, one value per optimizer step."""
    return compare(model, check, torch.tensor(ours, dtype=torch.float64), torch.tensor(official, dtype=torch.float64), note)


def lrs(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    """The learning rate each of ``steps`` optimizer steps uses (a scheduler stepped once per optimizer step)."""
    out = []
    for _ in range(steps):
        out.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        scheduler.step()
    return out


def discrete_law(model: str, check: str, draws: torch.Tensor, p: torch.Tensor, note: str = "") -> Row:
    """Row for draws of integers against a law ``p`` on ``0..len(p) - 1``: no draw outside it, no value the law expects
    20+ times left undrawn (probability below e^-20 each), and Pearson's chi-square of the counts below its mean plus 6
    standard deviations (``k - 1`` degrees of freedom: mean ``k - 1``, sd ``sqrt(2 (k - 1))``; fixed seeds make the row
    deterministic)."""
    k, n = len(p), draws.numel()
    outside = int(((draws < 0) | (draws >= k)).sum())
    counts = torch.bincount(draws.clamp(0, k - 1).flatten(), minlength=k).double()
    expected = n * p.double()
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    limit = (k - 1) + 6 * (2 * (k - 1)) ** 0.5
    missing = int(((counts == 0) & (expected >= 20)).sum())
    ok = outside == 0 and missing == 0 and chi2 < limit
    detail = f"{n} draws, {outside} outside 0..{k - 1}, {missing} values never drawn, chi2 {chi2:.0f} on {k - 1} df (pass below {limit:.0f})"
    return exact(model, check, ok, detail + (f"; {note}" if note else ""))


def same_law(model: str, check: str, ours: torch.Tensor, official: torch.Tensor, k: int, note: str = "") -> Row:
    """Row for two samples of outcomes on ``0..k - 1`` (distgen's and the official code's, drawn by running each):
    no outcome outside ``0..k - 1`` on either side (the callers code an impossible step so), and the chi-square
    test of homogeneity of the ``2 x k`` counts below its mean plus 6 standard deviations (``k - 1`` degrees of
    freedom; fixed seeds make the row deterministic). For ``k = 2`` the statistic is the square of the two-sample
    z of the two rates: a rate off by 0.1 at 2,000 draws a side (z 6.3) fails."""
    outside = int(((ours < 0) | (ours >= k)).sum() + ((official < 0) | (official >= k)).sum())
    counts = torch.stack([torch.bincount(x[(x >= 0) & (x < k)].flatten(), minlength=k).double() for x in (ours, official)])
    expected = counts.sum(1, keepdim=True) * counts.sum(0, keepdim=True) / counts.sum()
    used = expected > 0
    chi2 = float(((counts - expected)[used] ** 2 / expected[used]).sum())
    limit = (k - 1) + 6 * (2 * (k - 1)) ** 0.5
    rates = "; ".join(f"{side} " + "/".join(f"{c / max(float(row.sum()), 1):.3f}" for c in row.tolist())
                      for side, row in (("distgen", counts[0]), ("official", counts[1])))
    detail = (f"{ours.numel()} vs {official.numel()} draws, {outside} impossible, shares {rates}, chi2 {chi2:.1f} on {k - 1} df "
              f"(pass below {limit:.1f})")
    return exact(model, check, outside == 0 and chi2 < limit, detail + (f"; {note}" if note else ""))
