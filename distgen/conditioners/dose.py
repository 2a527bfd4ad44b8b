"""Dose encodings: how an atom's dose scales its embedding before combinations are pooled.

``none`` ignores dose (genetic screens); ``linear`` multiplies by the dose; ``log`` by
``log1p(dose / scale)`` (the chemCPA-style log-dose scaling); ``learned`` by a monotone Hill
curve ``d^k / (d^k + EC50^k)`` whose slope ``k`` and ``EC50`` are predicted from the atom's
embedding, so an atom never seen in training still gets a dose-response curve.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DOSE_MODES = ("none", "linear", "log", "learned")


def log_dose(dose: Tensor, scale: float = 1.0) -> Tensor:
    """``[B, P] -> [B, P]`` ``log1p(dose / scale)`` (0 at dose 0, monotone increasing)."""
    return torch.log1p(dose.clamp_min(0.0) / scale)


def hill(dose: Tensor, slope: Tensor, log_ec50: Tensor) -> Tensor:
    """``[B, P]`` Hill response ``sigmoid(slope (log dose - log EC50))``; exactly 0 at dose <= 0."""
    z = slope * (torch.log(dose.clamp_min(1e-12)) - log_ec50)
    return torch.where(dose > 0, torch.sigmoid(z), torch.zeros_like(z))


class DoseEncoding(nn.Module):
    """``emb [B, P, D], dose [B, P] -> [B, P, D]``: scale each atom's embedding by its dose response.

    Parameters
    ----------
    dim
        Atom embedding width ``D`` (the learned mode reads the curve's parameters from it).
    mode
        One of ``none``, ``linear``, ``log``, ``learned``.
    scale
        Dose unit for ``log`` (``log1p(dose / scale)``) and the initial EC50 of ``learned``.
    owner
        The conditioner's registered name, for the warning about a ``dose_scale`` that has no effect (an ablation
        grid names the component whose setting it is).
    """

    def __init__(self, dim: int, mode: str = "none", scale: float = 1.0, *, owner: str = "") -> None:
        super().__init__()
        if mode not in DOSE_MODES:
            raise ValueError(f"dose: mode must be one of {DOSE_MODES}, got {mode!r}")
        if scale <= 0:
            raise ValueError(f"dose: scale must be > 0, got {scale}")
        if scale != 1.0 and mode in ("none", "linear"):  # an ablation over dose_scale would measure nothing
            from distgen.config import InertSettingWarning
            from distgen.errors import warn

            warn(f"{owner + ': ' if owner else ''}dose_scale={scale} has no effect with dose: {mode} (it is the dose unit of dose: log and the initial EC50 of "
                 "dose: learned); remove it, or set dose: log or learned", InertSettingWarning)
        self.mode = mode
        self.scale = float(scale)
        self.curve = nn.Linear(dim, 2) if mode == "learned" else None
        if self.curve is not None:
            nn.init.zeros_(self.curve.weight)
            with torch.no_grad():  # start at slope 1, EC50 = scale
                self.curve.bias.copy_(torch.tensor([0.5413, float(torch.log(torch.tensor(self.scale)))]))

    def weight(self, emb: Tensor, dose: Tensor) -> Tensor:
        """``[B, P]`` multiplicative dose weight of each atom."""
        if self.mode == "none":
            return torch.ones_like(dose)
        if self.mode == "linear":
            return dose
        if self.mode == "log":
            return log_dose(dose, self.scale)
        assert self.curve is not None
        raw = self.curve(emb)
        return hill(dose, F.softplus(raw[..., 0]), raw[..., 1])

    def forward(self, emb: Tensor, dose: Tensor) -> Tensor:
        return emb * self.weight(emb, dose)[..., None]


def dose_blind(model: object) -> list[str] | None:
    """The names of the parts of ``model`` that embed perturbations when none of them reads doses, else None.

    Those parts are its conditioners (``capabilities.reads_dose``) and backbones that tokenise perturbations themselves
    (``capabilities.embeds_perturbations``: scDFM's ``pad_transformer``; no backbone reads a dose). None too when
    ``model`` holds neither (a baseline, a plugin model: its own business). What the pre-flight
    (``distgen.models.preflight.check_split``) reads to say that a model trained on doses ignores them.
    """
    from distgen.conditioners.base import Conditioner

    modules = list(model.modules()) if isinstance(model, nn.Module) else []
    found = [m for m in modules if isinstance(m, Conditioner)]
    tokens = [m for m in modules if not isinstance(m, Conditioner) and getattr(getattr(m, "capabilities", None), "embeds_perturbations", False) is True]
    if not found + tokens or any(m.capabilities.reads_dose is not False for m in found):
        return None
    modes = [_dose_mode(m) for m in found]
    return [type(m).__name__ + (f" (dose: {mode})" if mode else "") for m, mode in zip(found, modes)] + [
        f"{type(m).__name__} (perturbation tokens)" for m in tokens]


def _dose_mode(conditioner: nn.Module) -> str | None:
    """The ``mode`` of a conditioner's ``DoseEncoding``: its own (``onehot``: ``.dose``) or its combiner's (``.combine.dose``)."""
    for owner in (conditioner, getattr(conditioner, "combine", None)):
        enc = getattr(owner, "dose", None)
        if isinstance(enc, DoseEncoding):
            return enc.mode
    return None


__all__ = ["DOSE_MODES", "DoseEncoding", "dose_blind", "hill", "log_dose"]
