"""Load the official repositories' modules in-process without their heavy or unavailable imports.

Nothing here is distgen. Three tricks, all harness-side:

1. ``timm`` stand-in. Both official networks import timm's ``Attention``, ``Mlp`` and
   ``get_norm_layer`` (timm hard-imports torchvision, which has only a CUDA wheel for this
   torch on PyPI). ``install_timm_standin`` registers a tiny ``timm`` package holding
   stand-ins written for this harness from timm's documented behaviour (timm 1.0.x):
   ``Attention``: ``qkv`` Linear, per-head ``q_norm``/``k_norm``, scaled dot-product attention,
   ``proj`` Linear; ``Mlp``: ``fc1``, activation, ``fc2`` (dropout 0); ``RMSNorm``:
   ``x / sqrt(mean(x^2) + eps) * weight`` with eps 1e-6. Parameter names and shapes are timm's,
   so official state dicts keep their keys.
2. Package stubs: a package whose ``__init__`` pulls in training-only dependencies (Lightning,
   Hydra, plotting) is registered as an empty package with the right ``__path__``, so its
   submodules import from the checkout without running that ``__init__``.
3. ``function_from(file, names, namespace)``: executes only the named top-level functions of a
   script (scDFM's losses and sampler live in ``src/script/run.py``, whose module body parses
   command-line arguments and starts training).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


class RMSNormStandin(nn.Module):
    """timm's ``RMSNorm(channels, eps=1e-6, affine=True)``."""

    def __init__(self, channels: int, eps: float = 1e-6, affine: bool = True, **_: Any) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return y * self.weight if self.weight is not None else y


class AttentionStandin(nn.Module):
    """timm's ``vision_transformer.Attention`` (fused path, no dropout at evaluation)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, qk_norm: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, norm_layer: Any = nn.LayerNorm, **_: Any) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.q_norm = norm_layer(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = norm_layer(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        w = (q @ k.transpose(-2, -1) * self.head_dim**-0.5).softmax(-1)  # explicit map: independent of SDPA
        return self.proj((w @ v).transpose(1, 2).reshape(b, n, c))


class MlpStandin(nn.Module):
    """timm's ``layers.Mlp`` (``fc1 -> act -> fc2``)."""

    def __init__(self, in_features: int, hidden_features: int | None = None, out_features: int | None = None,
                 act_layer: Any = nn.GELU, drop: float = 0.0, **_: Any) -> None:
        super().__init__()
        hidden, out = hidden_features or in_features, out_features or in_features
        self.fc1, self.act, self.fc2 = nn.Linear(in_features, hidden), act_layer(), nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PatchEmbedStandin(nn.Module):
    """Imported by scDFM's model file, never built."""

    def __init__(self, *_: Any, **__: Any) -> None:
        raise RuntimeError("PatchEmbed is not part of the parity harness's timm stand-in")


def _norm_layer(name: str) -> Any:
    if name != "rmsnorm":
        raise ValueError(f"timm stand-in: only get_norm_layer('rmsnorm') is provided, got {name!r}")
    return RMSNormStandin


def _module(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


def standin_modules() -> dict[str, types.ModuleType]:
    """``timm`` (three blocks) and ``triton`` (imported by an unused rotary kernel file) stand-ins."""
    vit = _module("timm.models.vision_transformer", Attention=AttentionStandin, Mlp=MlpStandin, PatchEmbed=PatchEmbedStandin)
    norm = _module("timm.layers.create_norm", get_norm_layer=_norm_layer)
    triton = _module("triton", jit=lambda *a, **k: (a[0] if a and callable(a[0]) else (lambda f: f)), heuristics=lambda *a, **k: (lambda f: f))
    mods = {
        "timm": _module("timm", __path__=[]), "timm.models": _module("timm.models", __path__=[]), "timm.models.vision_transformer": vit,
        "timm.layers": _module("timm.layers", __path__=[], Mlp=MlpStandin, RMSNorm=RMSNormStandin), "timm.layers.create_norm": norm,
    }
    if importlib.util.find_spec("triton") is None:  # a real triton (CUDA machines) must stay: torch.cuda initialises through it
        mods |= {"triton": triton, "triton.language": _module("triton.language", constexpr=int)}
    return mods


class CallbackStandin:
    """``pytorch_lightning.callbacks.callback.Callback``: the hooks the official EMA callback overrides, nothing more."""


def lightning_standins() -> dict[str, types.ModuleType]:
    """The ``pytorch_lightning`` names PerturbDiff's ``weight_averaging_callback.py`` imports (the ``Callback`` base,
    ``is_overridden``, rank-zero logging, ``STEP_OUTPUT``), for driving that callback by hand without Lightning."""
    def quiet(*_: Any, **__: Any) -> None:
        return None

    names = ("pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.utilities")
    mods = {n: _module(n, __path__=[]) for n in names}
    mods |= {
        "pytorch_lightning.callbacks.callback": _module("pytorch_lightning.callbacks.callback", Callback=CallbackStandin),
        "pytorch_lightning.utilities.model_helpers": _module("pytorch_lightning.utilities.model_helpers", is_overridden=lambda *a, **k: False),
        "pytorch_lightning.utilities.rank_zero": _module("pytorch_lightning.utilities.rank_zero", rank_zero_info=quiet, rank_zero_warn=quiet),
        "pytorch_lightning.utilities.types": _module("pytorch_lightning.utilities.types", STEP_OUTPUT=Any),
    }
    return mods


@contextlib.contextmanager
def official_tree(src_root: Path, stub_packages: tuple[str, ...] = (), lightning: bool = False) -> Iterator[Any]:
    """Import from an official checkout's ``src`` package; every ``src*`` and stand-in module is removed on exit.

    ``stub_packages`` (dotted names under ``src``) are registered empty so their ``__init__`` does not run.
    ``lightning``: also register ``lightning_standins``, whether or not ``pytorch_lightning`` is installed (the installed
    one, if imported, is put back on exit): the harness drives the official callback by hand with a distgen model,
    which the real ``is_overridden`` refuses ("Expected a parent").
    """
    root = Path(src_root).resolve()
    if not (root / "src").is_dir():
        raise FileNotFoundError(f"{root} is not an official checkout (no src/ folder)")
    saved = {k: v for k, v in sys.modules.items() if k == "src" or k.startswith("src.")}
    for k in saved:
        del sys.modules[k]
    added = standin_modules()
    if lightning:  # also where Lightning is installed: its is_overridden refuses a module that is no LightningModule
        added |= lightning_standins()
    for name in ("src", *stub_packages):
        added[name] = _module(name, __path__=[str(root / name.replace(".", "/"))])
    clash = [k for k in added if k in sys.modules and not k.startswith("src")]
    old = {k: sys.modules[k] for k in clash}
    sys.modules.update(added)
    sys.path.insert(0, str(root))
    _pandas_compat()
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(str(root))
        for k in [k for k in sys.modules if k == "src" or k.startswith("src.")]:
            del sys.modules[k]
        for k in added:
            sys.modules.pop(k, None)
        sys.modules.update(old)
        sys.modules.update(saved)


def _pandas_compat() -> None:
    """PerturbDiff's ``src/common/utils.py`` imports ``pandas.errors.SettingWithCopyWarning``, which pandas 3
    removed (copy-on-write made it moot); it is only silenced there, so an alias keeps that import working."""
    import pandas.errors

    if not hasattr(pandas.errors, "SettingWithCopyWarning"):
        pandas.errors.SettingWithCopyWarning = type("SettingWithCopyWarning", (Warning,), {})  # type: ignore[attr-defined]


def function_from(path: Path, names: tuple[str, ...], namespace: dict[str, Any]) -> dict[str, Any]:
    """Execute only the top-level ``def``s and ``class``es ``names`` of a script in ``namespace``; returns the namespace."""
    tree = ast.parse(Path(path).read_text())
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name in names]
    missing = set(names) - {n.name for n in defs}
    if missing:
        raise LookupError(f"{path} defines no {sorted(missing)}")
    namespace.setdefault("torch", torch)
    namespace.setdefault("F", F)
    exec(compile(ast.Module(body=defs, type_ignores=[]), str(path), "exec"), namespace)
    return namespace
