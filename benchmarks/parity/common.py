"""Rows of the parity table: what was compared, the max |difference| relative to the official scale."""

from __future__ import annotations

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
