"""Walk the component matrix an ablation user can write on the two small presets.

distgen promises that an ablation is a one-line change: a config names components, and swapping one
name measures that component. This walk enumerates, from the registries (plugins included), every
component a config can put at each place of ``perturbdiff-small`` and ``scdfm-small`` (conditioner,
backbone, dynamics and its parts: path, time sampler, ODE solver, noise schedule, diffusion sampler
and its solver; coupling, population encoder, distribution loss and its kernel; ``Literal`` options of
those components such as ``prediction`` or ``source``, and the flip of each ``bool`` option; whole models, fitted baselines included), one
swap at a time, then pairs of swaps where the kinds interact (dynamics x backbone, coupling x
dynamics, population encoder x backbone, kernel x dynamics, conditioner x backbone), then the fixes
that refusals name (``ADVICE``). For each combination, on a tiny synthetic dataset (seconds on a CPU):

1. load the config (overrides), build, pre-flight, train 2 steps into a run folder (``train_model``,
   what ``distgen train`` does), predict the test split;
2. load the run folder back (``distgen.load_run``: the model rebuilt from the saved ``config.yaml``
   and checkpoint) and predict again: the cells must be identical;
3. train again from the saved ``config.yaml`` into a second folder: losses and cells must be
   identical (an option dropped from ``config.yaml`` would make a re-run differ);
4. compare with the unswapped preset under the same seed: the losses or the cells must differ (a
   swap that changes neither measured nothing).

Outcomes: ``works`` (all of the above), ``refused`` (a ``ConfigError``/``AssemblyError`` before
training whose message names a fix) and findings: ``INERT``, ``UNREAD`` (a conditioner or population encoder whose
output, shifted, leaves the predicted cells as they were), ``RELOAD-DIFFERS``, ``RERUN-DIFFERS``,
``NON-FINITE``, ``CRASH@<stage>`` (an error after training started, or not a ``ConfigError``),
``REFUSED-NO-FIX`` (a refusal that does not say what to do). A fitted model has no run folder
(``load_run`` says how to refit it): its "reload" is a fit from its resolved config.

Components are shrunk to CPU size by ``TINY`` (names kept; a parameter set by the combination wins).

Usage::

    python benchmarks/component_matrix.py                    # the full walk (a few minutes on one core)
    python benchmarks/component_matrix.py --fast             # the subset the default test suite runs
    python benchmarks/component_matrix.py --only 'coupling|kernel' --markdown
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import itertools
import math
import re
import shutil
import sys
import tempfile
import time
import typing
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repository root holds the benchmarks package
    sys.path.insert(0, str(ROOT))

PRESETS = ("perturbdiff-small", "scdfm-small")

#: The tiny dataset's ``data:`` keys (the preset's own sampling keys are kept).
SCHEMA = {"perturbation_col": "condition", "context_cols": ["cell_type"], "batch_col": "population"}
SPLIT = {"kind": "combo_seen2", "seed": 0}

#: Four 4-d vectors for the synthetic atoms (an ``embedding_table`` needs a table).
TABLE = {f"g{i}": [float(math.cos(i + k)) for k in range(4)] for i in range(4)}

#: (kind, name) -> parameters that make a component CPU-seconds small (its name and everything else kept).
TINY: dict[tuple[str, str], dict[str, Any]] = {
    ("backbones", "cross_dit"): {"dim": 16, "depth": 1, "heads": 2},
    ("backbones", "pad_transformer"): {"d_model": 16, "heads": 2, "layers": 1, "graph_k": 3},
    ("backbones", "mlp"): {"hidden": 16, "depth": 1},
    ("conditioners", "covariate"): {"part_dim": 8},
    ("conditioners", "onehot"): {"dim": 8},
    ("conditioners", "gene_vocab"): {"dim": 8},
    ("conditioners", "embedding_table"): {"table": TABLE, "dim": 8, "hidden": 16},
    ("encoders", "set_transformer"): {"dim": 8, "hidden": 8, "heads": 2, "n_inducing": 4},
    ("encoders", "deepsets"): {"dim": 8, "hidden": 16, "heads": 2},
    ("encoders", "sliced_wasserstein"): {"n_projections": 8, "n_quantiles": 4},
    ("diffusion_samplers", "ddim_official_truncated"): {"start_step": 3},
    ("models", "bayes_hier"): {"steps": 20, "n_components": 4, "num_samples": 8, "guide_rank": 2, "num_warmup": 10, "num_chains": 1},
    ("models", "linear"): {"n_components": 3},
}
#: Any component with a ``steps`` parameter (solvers, samplers) runs this many; adaptive solvers get loose tolerances.
TINY_STEPS = 3
#: ``genes_per_step`` and ``predict_genes``, where set, are cut to this (of the tiny data's 24 genes).
TINY_GENES = 10
TINY_ADAPTIVE = {"rtol": 1e-2, "atol": 1e-2, "max_nfe": 200}
TRAIN = ["train.steps=2", "train.sets_per_batch=2", "train.warmup_steps=0", "train.val_every=0", "train.progress=false",
         "data.set_size=8"]

#: Pairs of places whose kinds interact (each pair's cross product of alternatives is walked).
PAIRS = (("dynamics", "backbone"), ("coupling", "dynamics"), ("population_encoder", "backbone"),
         ("distribution_loss.kernel", "dynamics"), ("conditioner", "backbone"))

#: The fixes that refusals name, applied: (preset, single swap label) -> the overrides that follow the refusal's advice.
#: Each swap is walked as is (refused) and with its fix ("(fixed)": it must then work), and a pair that holds the swap
#: is walked with the fix (less any fix of a place the pair's other swap replaces): the pair then measures the interaction.
ADVICE: dict[tuple[str, str], tuple[str, ...]] = {
    ("perturbdiff-small", "backbone=mlp"): ("model.dynamics.self_condition=0",),
    ("perturbdiff-small", "backbone=pad_transformer"): ("model.backbone.use_condition_embedding=true", "model.dynamics.self_condition=0"),
    ("perturbdiff-small", "backbone.self_conditioning=false"): ("model.dynamics.self_condition=0",),
    ("perturbdiff-small", "dynamics=flow_matching"): ("model.backbone.output=identity", "model.backbone.self_conditioning=false"),
    ("perturbdiff-small", "dynamics.prediction=noise"): ("model.backbone.output=identity",),
    ("perturbdiff-small", "dynamics.prediction=velocity"): ("model.backbone.output=identity",),
    ("perturbdiff-small", "distribution_loss=set_transformer"): ("model.distribution_loss.frozen=true",),
    ("perturbdiff-small", "distribution_loss=deepsets"): ("model.distribution_loss.frozen=true",),
    ("scdfm-small", "backbone=cross_dit"): ("model.conditioner={name: onehot}", "model.genes_per_step=null", "model.predict_genes=null",
                                            "model.backbone.output=identity", "model.backbone.self_conditioning=false"),
    ("scdfm-small", "backbone=mlp"): ("model.conditioner={name: onehot}", "model.genes_per_step=null", "model.predict_genes=null"),
    **{("scdfm-small", f"conditioner={c}"): ("model.backbone.use_condition_embedding=true",)
       for c in ("covariate", "embedding_table", "gene_vocab", "onehot")},
    ("scdfm-small", "distribution_loss=set_transformer"): ("model.distribution_loss.frozen=true", "model.genes_per_step=null"),
    ("scdfm-small", "distribution_loss=deepsets"): ("model.distribution_loss.frozen=true", "model.genes_per_step=null"),
    ("scdfm-small", "distribution_loss=sliced_wasserstein"): ("model.genes_per_step=null",),
}

#: The subset the default test suite walks (labels as printed), about one per kind.
FAST = (
    "perturbdiff-small | (preset)",
    "scdfm-small | (preset)",
    "perturbdiff-small | dynamics=flow_matching",
    "perturbdiff-small | distribution_loss.kernel=rbf",
    "perturbdiff-small | dynamics.sampler=ddpm",
    "perturbdiff-small | conditioner=onehot",
    "perturbdiff-small | population_encoder=kme",
    "perturbdiff-small | coupling=exact_ot",
    "scdfm-small | dynamics.solver=euler",
    "scdfm-small | dynamics.path=cosine",
    "scdfm-small | dynamics.time_sampler=logit_normal",
    "scdfm-small | dynamics=diffusion",
    "scdfm-small | model=additive",
    "perturbdiff-small | dynamics=flow_matching (fixed)",
    "scdfm-small | population_encoder=kme + backbone=mlp (fixed)",
)

#: Words a refusal uses when it says what to do instead.
FIX_WORDS = re.compile(r"\b(use|set|remove|add|drop|give|enable|disable|choose|write|one of|expected|allowed|available|known)\b", re.I)
OK = ("works", "refused")


@dataclass(frozen=True)
class Combination:
    """One config: a preset and the dotted overrides that swap its components."""

    preset: str
    label: str  #: e.g. ``dynamics=flow_matching`` or ``dynamics=flow_matching + backbone=mlp``
    overrides: tuple[str, ...]
    group: str  #: ``single``, ``pair`` or ``advice``

    @property
    def key(self) -> str:
        return f"{self.preset} | {self.label}"


@dataclass
class Result:
    """What walking one combination gave."""

    combination: Combination
    outcome: str
    seconds: float
    detail: str = ""
    losses: list[float] = field(default_factory=list)
    cells: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in OK


# ---------------------------------------------------------------------------------------------- places and swaps
def _hints(cls: type) -> dict[str, Any]:
    from distgen.config import signature_schema

    return {k: hint for k, (hint, _) in signature_schema(cls).items()}


def places(model: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(dotted place under ``model``, kind, current node or None) of every component slot of a model node (resolved: every slot)."""
    from distgen.config import INJECTED, _component_kind
    from distgen.registry import registry

    def walk(node: Mapping[str, Any], kind: str, at: str) -> Iterator[tuple[str, str, Any]]:
        cls = registry(kind).get(node["name"])
        for key, hint in _hints(cls).items():
            sub = _component_kind(hint)
            if key in INJECTED or sub is None:
                continue
            value = node.get(key)
            where = f"{at}.{key}" if at else key
            yield where, sub, value
            if isinstance(value, Mapping) and value.get("name") in registry(sub):
                yield from walk(value, sub, where)

    yield from walk(model, "models", "")


def literal_options(model: Mapping[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """(dotted key, current value, other value) of every option of the model's components whose values the signature
    lists: each other value of a ``Literal`` parameter, and the flip of a ``bool`` one."""
    from distgen.registry import registry

    for where, kind, node in places(model):
        if not isinstance(node, Mapping) or "name" not in node:
            continue
        cls = registry(kind).get(node["name"])
        for key, hint in _hints(cls).items():
            for v in _choices(hint, node.get(key)):
                yield f"{where}.{key}", node.get(key), v


def _choices(hint: Any, current: Any) -> tuple[Any, ...]:
    """The values other than ``current`` that a parameter annotated ``hint`` lists (``Literal`` values, or ``bool``)."""
    if typing.get_origin(hint) is typing.Literal:
        return tuple(v for v in typing.get_args(hint) if v != current)
    if (hint is bool or bool in typing.get_args(hint)) and isinstance(current, bool):
        return (not current,)
    return ()


def _get(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _name(node: Any) -> str | None:
    return node.get("name") if isinstance(node, Mapping) else node if isinstance(node, str) else None


def resolved_model(preset: str) -> dict[str, Any]:
    from distgen.config import load_config, resolve_node

    return resolve_node("models", load_config(preset)["model"])


def alternatives(model: Mapping[str, Any], place: str, kind: str) -> list[str]:
    """Registered names of ``kind`` other than the one at ``place``."""
    from distgen.registry import registry

    return [n for n in registry(kind).names() if n != _name(_get(model, place))]


def _swap(place: str, name: str, model: Mapping[str, Any]) -> str:
    """The override that puts component ``name`` at ``place`` (a new node where there was none)."""
    if isinstance(_get(model, place), Mapping):
        return f"model.{place}.name={name}"
    return f"model.{place}={{name: {name}}}"


def combinations(presets: Sequence[str] = PRESETS, fitted_options: bool = False) -> list[Combination]:
    """Every combination the walk covers, from the registries: per preset, the preset, single swaps, the swaps with
    the fix their refusal names (``ADVICE``), then pairs. ``fitted_options``: also each ``Literal`` value and ``bool``
    flip of each whole model's own options (on the first preset only: a fitted model reads no other part of it; off by
    default, ``bayes_hier`` spends some 35 s compiling with XLA per fit on a 2-core AMD EPYC box, 2026-12-07)."""
    from distgen.config import resolve_node
    from distgen.registry import registry

    out: list[Combination] = []
    for preset in presets:
        model = resolved_model(preset)
        slots = {where: kind for where, kind, _ in places(model)}
        singles = [Combination(preset, "(preset)", (), "single")]
        for where, kind in slots.items():
            for name in alternatives(model, where, kind):
                swap = _swap(where, name, model)
                singles.append(Combination(preset, f"{where}={name}", (swap,), "single"))
                if "." in where or kind == "encoders":  # a sampler's solver, an encoder's kernel: its parts and options too
                    singles += _nested(preset, where, name, swap)
        for key, _, value in literal_options(model):
            singles.append(Combination(preset, f"{key}={_yaml(value)}", (f"model.{key}={_yaml(value)}",), "single"))
        for name in registry("models").names():
            if name != model["name"]:
                swap = f"model={{name: {name}}}"
                singles.append(Combination(preset, f"model={name}", (swap,), "single"))
                node = resolve_node("models", {"name": name}) if fitted_options and preset == presets[0] else {}
                for key, hint in (_hints(registry("models").get(name)).items() if node else ()):
                    for value in _choices(hint, node.get(key)):
                        singles.append(Combination(preset, f"model={name} + {key}={_yaml(value)}", (swap, f"model.{key}={_yaml(value)}"), "single"))
        fixed = [Combination(preset, f"{c.label} (fixed)", (*c.overrides, *ADVICE[(preset, c.label)]), "advice")
                 for c in singles if (preset, c.label) in ADVICE]
        out += singles + fixed
        for a, b in PAIRS:
            if a not in slots or b not in slots:
                continue
            for x, y in itertools.product(alternatives(model, a, slots[a]), alternatives(model, b, slots[b])):
                out.append(_pair(preset, (a, x, _swap(a, x, model)), (b, y, _swap(b, y, model))))
    # one config once: a pair whose fix already makes the other swap (scdfm's cross_dit fix adds onehot), an option that is a
    # swap's fix (distribution_loss=deepsets + frozen=true), is walked under the fix's label
    advised = {(c.preset, frozenset(c.overrides)) for c in out if c.group == "advice"}
    seen: set[tuple[str, frozenset[str]]] = set()
    unique = []
    for c in out:
        key = (c.preset, frozenset(c.overrides))
        if key not in seen and (c.group == "advice" or key not in advised):
            seen.add(key)
            unique.append(c)
    return unique


def _pair(preset: str, *swaps: tuple[str, str, str]) -> Combination:
    """Two swaps (place, name, override), each with its ``ADVICE`` fix less what touches the other's place."""
    overrides: list[str] = []
    fixed = False
    for i, (where, name, swap) in enumerate(reversed(swaps)):  # the later place first, as a user adds a swap to a config
        other = swaps[len(swaps) - 1 - i - 1] if len(swaps) > 1 else None
        fix = [o for o in ADVICE.get((preset, f"{where}={name}"), ()) if other is None or not _touches(o, other[0])]
        fixed = fixed or bool(fix)
        overrides += [swap, *fix]
    label = " + ".join(f"{w}={n}" for w, n, _ in swaps) + (" (fixed)" if fixed else "")
    return Combination(preset, label, tuple(overrides), "pair")


def _touches(override: str, place: str) -> bool:
    key = override.split("=", 1)[0]
    return key == f"model.{place}" or key.startswith(f"model.{place}.")


def _nested(preset: str, where: str, name: str, swap: str) -> list[Combination]:
    """Swaps inside the component just put at ``where`` (``dynamics.sampler=ode`` -> each ODE solver, each option)."""
    from distgen.config import load_config, resolve_node

    model = resolve_node("models", load_config(preset, [swap])["model"])
    out = []
    for inner, kind, _ in places(model):
        if inner.startswith(where + "."):
            for alt in alternatives(model, inner, kind):
                out.append(Combination(preset, f"{where}={name} + {inner[len(where) + 1:]}={alt}", (swap, _swap(inner, alt, model)), "single"))
    for key, _, value in literal_options(model):
        if key.startswith(where + "."):
            out.append(Combination(preset, f"{where}={name} + {key[len(where) + 1:]}={_yaml(value)}", (swap, f"model.{key}={_yaml(value)}"), "single"))
    return out


# ---------------------------------------------------------------------------------------------- sizing
def tiny_overrides(model: Mapping[str, Any], given: Sequence[str]) -> list[str]:
    """Overrides that shrink every component of (resolved) ``model`` to CPU size, except keys ``given`` sets."""
    from distgen.registry import registry

    set_keys = {o.split("=", 1)[0] for o in given}
    out = []
    nodes = [("", "models", model), *[(w, k, n) for w, k, n in places(model) if isinstance(n, Mapping) and "name" in n]]
    for where, kind, node in nodes:
        if node["name"] not in registry(kind):
            continue
        cls = registry(kind).get(node["name"])
        params = set(inspect.signature(cls.__init__).parameters)
        size = dict(TINY.get((kind, node["name"]), {}))
        if "steps" in params and kind != "models":
            size.setdefault("steps", TINY_STEPS)
        if {"rtol", "atol"} <= params:
            size = {**TINY_ADAPTIVE, **size}
        if not where and kind == "models":  # gene subsets smaller than the tiny panel, so that subsampling happens
            size.update({k: TINY_GENES for k in ("genes_per_step", "predict_genes") if node.get(k) is not None})
        prefix = f"model.{where}." if where else "model."
        for key, value in size.items():
            if key in params and f"{prefix}{key}" not in set_keys:
                out.append(f"{prefix}{key}={_yaml(value)}")
    return out


def _yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


# ---------------------------------------------------------------------------------------------- running
class Walk:
    """The tiny dataset, the presets' reference results, and the runs of each combination under ``root``."""

    def __init__(self, root: str | Path, rerun: bool = True) -> None:
        from distgen.data.synthetic import populations_dataset

        self.root = Path(root)
        self.rerun = rerun
        self.root.mkdir(parents=True, exist_ok=True)
        self.h5ad = self.root / "tiny.h5ad"
        if not self.h5ad.exists():
            a, _ = populations_dataset(n_genes=24, n_atoms=4, n_combos=4, n_populations=2, n_contexts=2, cells_per_group=12, seed=0)
            a.write_h5ad(self.h5ad)
        self._datasets: dict[str, Any] = {}
        self.done: dict[tuple[str, frozenset[str]], Result] = {}  #: (preset, overrides) -> a result that works
        self._n = 0

    # -- documents and data
    def document(self, c: Combination) -> dict[str, Any]:
        """The combination's config: preset + swaps, then sizes, the tiny data and 2 training steps."""
        from distgen.config import load_config, resolve_node

        doc = load_config(c.preset, list(c.overrides))
        sizes = tiny_overrides(doc["model"], c.overrides)  # as written: a required parameter (a table) first ...
        try:  # ... then the parts the resolved node holds by default (a default solver's steps)
            model = resolve_node("models", load_config(c.preset, [*c.overrides, *sizes])["model"])
            sizes += [o for o in tiny_overrides(model, [*c.overrides, *sizes]) if o not in sizes]
        except Exception:  # the swap itself is invalid: the full load below reports it
            pass
        doc = load_config(c.preset, [*c.overrides, *sizes, *TRAIN, f"data.dataset={self.h5ad}"])
        doc["data"] = {**doc["data"], "schema": dict(SCHEMA), "split": dict(SPLIT)}
        doc["data"].pop("hvg", None)
        return doc

    def dataset(self, doc: Mapping[str, Any]) -> Any:
        import distgen

        key = repr(sorted(doc["data"].items()))
        if key not in self._datasets:
            self._datasets[key] = distgen.load_data(**doc["data"])
        return self._datasets[key]

    # -- one combination
    def run(self, c: Combination) -> Result:
        from distgen.config import ConfigError

        t0 = time.perf_counter()
        stage = ["config"]
        try:
            with _quiet():
                res = self._run(c, stage)
        except ConfigError as e:  # before training: a refusal; after: a crash (the combination passed every check)
            if stage[0] in ("config", "build"):
                text = " ".join(str(e).split())
                outcome = "refused" if FIX_WORDS.search(text) else "REFUSED-NO-FIX"
                return Result(c, outcome, time.perf_counter() - t0, f"{type(e).__name__}: {text}")
            return Result(c, f"CRASH@{stage[0]}", time.perf_counter() - t0, f"{type(e).__name__}: {_short(e)}")
        except Exception as e:  # any other error is a finding, reported with its stage
            return Result(c, f"CRASH@{stage[0]}", time.perf_counter() - t0, f"{type(e).__name__}: {_short(e)}")
        res.seconds = time.perf_counter() - t0
        if res.outcome == "works":
            parents = [r for k, r in self.done.items() if k[0] == c.preset and k[1] < frozenset(c.overrides)]
            self._check_live(res, parents)
            self.done[(c.preset, frozenset(c.overrides))] = res
        return res

    def _run(self, c: Combination, stage: list[str]) -> Result:
        import distgen
        from distgen.config import load_config
        from distgen.models.base import is_trainable
        from distgen.train.run import train_model

        doc = self.document(c)
        data = self.dataset(doc)
        stage[0] = "build"
        if not is_trainable(distgen.build(doc, data)):
            return self._run_fitted(c, doc, data, stage)
        self._n += 1
        out = self.root / f"run{self._n}"
        shutil.rmtree(out, ignore_errors=True)

        def started() -> None:
            stage[0] = "train"

        trained = train_model(doc, out, data, before_training=started)
        stage[0] = "predict"
        cells = _cells(distgen.predict(trained.model, data, seed=0))
        losses = list(trained.result.losses)
        if not np.isfinite(cells).all() or not all(map(math.isfinite, losses)):
            return Result(c, "NON-FINITE", 0.0, f"losses {losses}", losses, cells)
        dead = unread_parts(trained.model, data, cells)
        if dead:
            return Result(c, "UNREAD", 0.0, f"the predicted cells do not depend on the output of {', '.join(dead)}", losses, cells)
        stage[0] = "load"
        run = distgen.load_run(out)
        again = _cells(distgen.predict(run.model, run.data, seed=0))
        if again.shape != cells.shape or not np.array_equal(again, cells):
            return Result(c, "RELOAD-DIFFERS", 0.0, _diff(cells, again), losses, cells)
        if self.rerun:
            stage[0] = "rerun"
            second = train_model(load_config(out / "config.yaml"), self.root / f"run{self._n}b", data)
            rerun_cells = _cells(distgen.predict(second.model, data, seed=0))
            if list(second.result.losses) != losses or not np.array_equal(rerun_cells, cells):
                return Result(c, "RERUN-DIFFERS", 0.0, f"losses {losses} vs {list(second.result.losses)}; {_diff(cells, rerun_cells)}",
                              losses, cells)
            shutil.rmtree(self.root / f"run{self._n}b", ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        return Result(c, "works", 0.0, f"losses {', '.join(f'{v:.4g}' for v in losses)}", losses, cells)

    def _run_fitted(self, c: Combination, doc: dict[str, Any], data: Any, stage: list[str]) -> Result:
        """A fitted model: fit, predict; its "reload" is a fit from its resolved config (it has no run folder)."""
        import distgen
        from distgen.config import resolve_node

        model = distgen.build(doc, data)
        stage[0] = "train"
        distgen.fit(model, data, config=doc)
        stage[0] = "predict"
        cells = _cells(distgen.predict(model, data, seed=0))
        if not np.isfinite(cells).all():
            return Result(c, "NON-FINITE", 0.0, "", [], cells)
        stage[0] = "load"
        again_doc = {**doc, "model": resolve_node("models", doc["model"])}
        again = distgen.build(again_doc, data)
        distgen.fit(again, data, config=again_doc)
        again_cells = _cells(distgen.predict(again, data, seed=0))
        if not np.array_equal(again_cells, cells):
            return Result(c, "RELOAD-DIFFERS", 0.0, "a fit from the resolved config predicts otherwise: " + _diff(cells, again_cells), [], cells)
        return Result(c, "works", 0.0, "fitted (no run folder)", [], cells)

    @staticmethod
    def _check_live(res: Result, parents: Sequence[Result]) -> None:
        """``INERT`` when the losses and the cells equal those of a walked combination with a subset of the swaps (the
        preset, or for a pair each of its single swaps): the last swap changed nothing."""
        note = ""
        for ref in sorted(parents, key=lambda r: -len(r.combination.overrides)):  # the nearest first
            same_loss = res.losses == ref.losses
            same_cells = ref.cells is not None and res.cells is not None and res.cells.shape == ref.cells.shape and np.array_equal(res.cells, ref.cells)
            what = ref.combination.label
            if same_loss and same_cells:
                res.outcome = "INERT"
                res.detail = f"the losses and the predicted cells equal those of {what}: the swap changed nothing"
                return
            if not note and same_cells:
                note = f" (cells as {what}'s: acts in training only)"
            elif not note and same_loss and res.losses:  # a fitted model has no losses
                note = f" (losses as {what}'s: acts in sampling only)"
        res.detail += note


#: Optional parts of a generator whose output must reach the predicted cells when the model has them.
READ_PARTS = ("conditioner", "population_encoder")


def unread_parts(model: Any, data: Any, cells: np.ndarray) -> list[str]:
    """The parts in ``READ_PARTS`` whose output, shifted by 1, leaves the predicted cells as they were: computed and
    ignored. (Training for 2 steps cannot tell: PerturbDiff's adaLN-Zero modulations pass no gradient to the condition
    in the first step, and a dropped batch none in the second; a part's initial draws alone change the losses.)"""
    import distgen

    out = []
    for name in READ_PARTS:
        part = getattr(model, name, None)
        if not isinstance(part, torch.nn.Module):
            continue
        handle = part.register_forward_hook(lambda _m, _i, o: o + 1.0)
        try:
            shifted = _cells(distgen.predict(model, data, seed=0))
        finally:
            handle.remove()
        if np.array_equal(shifted, cells):
            out.append(f"{name} {type(part).__name__}")
    return out


def _cells(cells: Any) -> np.ndarray:
    return np.asarray(cells.X, dtype=np.float64)


def _diff(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"shapes {a.shape} vs {b.shape}"
    return f"max |difference| of the cells {float(np.abs(a - b).max()):.3g}"


def _short(e: BaseException, n: int = 300) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= n else text[: n - 3] + "..."


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The runs' notes and warnings off the table's stream."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def walk(combos: Sequence[Combination], root: str | Path | None = None, rerun: bool = True, progress: Any = None) -> list[Result]:
    """Run ``combos`` in order (each preset's reference first); ``root``: a scratch folder (default: a temporary one)."""
    refs = [Combination(p, "(preset)", (), "single") for p in dict.fromkeys(c.preset for c in combos)]
    todo = [r for r in refs if r not in combos] + list(combos)
    with contextlib.ExitStack() as stack:
        where = Path(root) if root is not None else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="distgen-matrix-")))
        w = Walk(where, rerun)
        results = []
        for c in todo:
            r = w.run(c)
            if c in combos:
                results.append(r)
                if progress is not None:
                    progress(r)
        return results


def table(results: Sequence[Result], markdown: bool = False, detail: int = 160) -> str:
    """The matrix as text: combination, outcome, seconds, detail."""
    rows = [(r.combination.preset, r.combination.label, r.outcome, f"{r.seconds:.1f}", _cut(r.detail, detail)) for r in results]
    head = ("preset", "combination", "outcome", "s", "detail")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(x.replace("|", "\\|") for x in row) + " |" for row in rows])
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(4)]
    fmt = "  ".join(f"{{:{w}}}" for w in widths) + "  {}"
    return "\n".join(fmt.format(*row) for row in [head, *rows])


def summary(results: Sequence[Result]) -> str:
    """The walk as one markdown row per place: each name's outcome per preset (``refused -> works``: refused as
    written, works with the fix its refusal names), then the pairs' counts."""
    presets = list(dict.fromkeys(r.combination.preset for r in results))
    by_key = {r.combination.key: r for r in results}
    cells: dict[str, dict[str, list[str]]] = {}
    for r in results:
        c = r.combination
        if c.group != "single" or c.label == "(preset)":
            continue
        place, _, name = c.label.partition("=")
        if " + " in name:  # a part of a part (sampler=ode + solver=euler): under the inner place
            outer, _, inner = c.label.partition(" + ")
            place, _, name = inner.partition("=")
            place, name = f"{outer}: {place}", name
        fixed = by_key.get(f"{c.key} (fixed)")
        word = r.outcome if fixed is None else f"{r.outcome} -> {fixed.outcome}"
        cells.setdefault(place, {}).setdefault(c.preset, []).append(f"{name} {word}")
    lines = ["| place | " + " | ".join(presets) + " |", "|---|" + "---|" * len(presets)]
    for place, row in cells.items():
        lines.append(f"| `{place}` | " + " | ".join("; ".join(row.get(p, [])) or "" for p in presets) + " |")
    pairs = [r for r in results if r.combination.group == "pair"]
    for a, b in PAIRS:
        row = []
        for p in presets:
            mine = [r for r in pairs if r.combination.preset == p and r.combination.label.startswith(f"{a}=") and f" + {b}=" in r.combination.label]
            counts: dict[str, int] = {}
            for r in mine:
                counts[r.outcome] = counts.get(r.outcome, 0) + 1
            row.append(", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
        lines.append(f"| `{a}` x `{b}` (pairs) | " + " | ".join(row) + " |")
    return "\n".join(lines)


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help="only the subset the default test suite walks (FAST)")
    p.add_argument("--only", help="regular expression: walk the combinations whose 'preset | label' matches")
    p.add_argument("--preset", action="append", choices=PRESETS, help="walk this preset only (repeatable)")
    p.add_argument("--no-rerun", action="store_true", help="skip the re-run from the saved config.yaml (half the time)")
    p.add_argument("--fitted-options", action="store_true", help="also each option of each whole model (bayes_hier: ~1.5 min each, two fits)")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    p.add_argument("--summary", action="store_true", help="also print one markdown row per place (docs/concepts.md)")
    p.add_argument("--detail", type=int, default=160, help="characters of each row's detail (default 160)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    combos = combinations(tuple(args.preset or PRESETS), args.fitted_options)
    if args.fast:
        combos = [c for c in combos if c.key in FAST]
    if args.only:
        combos = [c for c in combos if re.search(args.only, c.key)]
    t0 = time.perf_counter()
    results = walk(combos, rerun=not args.no_rerun,
                   progress=lambda r: print(f"{r.outcome:>14}  {r.seconds:5.1f}s  {r.combination.key}", file=sys.stderr, flush=True))
    print(table(results, args.markdown, args.detail))
    if args.summary:
        print("\n" + summary(results))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome.split("@")[0]] = counts.get(r.outcome.split("@")[0], 0) + 1
    print(f"\n{len(results)} combinations in {time.perf_counter() - t0:.0f} s: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
