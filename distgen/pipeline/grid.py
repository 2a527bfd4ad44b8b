"""Ablation grids: dotted config keys x value lists -> named variants x seeds."""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from distgen.config import ConfigError, dump_yaml, parse_yaml, plain_values
from distgen.errors import short
from distgen.wording import first_of

SEED_KEY = "train.seed"


@dataclass(frozen=True)
class Run:
    """One cell of a grid: a variant (non-seed overrides) at one seed."""

    variant: str
    seed: int
    overrides: tuple[str, ...]
    former: str = ""  # the variant's name under the folder naming before 2026-12-05 ("": the same name)

    @property
    def slug(self) -> str:
        return f"{self.variant}__seed{self.seed}"

    @property
    def former_slug(self) -> str:
        """The run's folder name before 2026-12-05 (values written as YAML: ``'nan'``, ``[64, 64]``, ``1.0e-05``)."""
        return f"{self.former or self.variant}__seed{self.seed}"


def parse_grid_arg(text: str) -> tuple[str, list[Any]]:
    """``"model.encoder.name=[kme,set_transformer]"`` -> (``"model.encoder.name"``, ``["kme", "set_transformer"]``)."""
    if "=" not in text:
        raise ConfigError(f"--grid {text!r} must look like dotted.key=[v1,v2,...]")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--grid {text!r}: {key!r} is not a dotted config key like train.seed")
    if "," in raw and not raw.strip().startswith(("[", "{", "'", '"')):
        raw = f"[{raw}]"  # train.seed=0,1 is the list [0, 1], as written without brackets
    values = parse_yaml(raw, f"--grid {text!r}", override=True)  # as an override reads its value: 1e-3 a float, "1e3" a string
    if not isinstance(values, list):
        values = [values]
    if not values:
        raise ConfigError(f"--grid {text!r} has no values")
    return key, values


def _fmt(value: Any) -> str:
    return dump_yaml(value, default_flow_style=True).strip().removesuffix("...").strip()  # read back as the same value


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python numbers and lists (``np.linspace`` values), recursively."""
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _label(value: Any) -> str:
    """How a value reads in a run folder's name: a string as written (``nan``, not the quoted ``'nan'``), a number in
    Python's spelling (``inf``, ``-0.5``), a list as its items joined by ``+`` (``64+64``: its brackets would become
    ``-`` and read as minus signs), anything else as in the override. Values whose names coincide are refused by
    ``expand``."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list) and value:
        return "+".join(_label(v) for v in value)
    return _fmt(value)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.,=+-]+", "-", text).strip("-") or "base"


#: The longest variant name (bytes, ASCII after ``_slug``): its run folder ``{variant}__seed{seed}`` must fit in a file name
#: (``distgen.pipeline.outputs.MAX_FILE_NAME``, 241 bytes) with a seed of up to 10 digits.
MAX_VARIANT = 241 - len("__seed") - 10


def _bounded(variant: str) -> str:
    """``variant`` as it is when its folder name fits, else its start and a digest of the whole (``...~1a2b3c4d5e``): a
    grid value of hundreds of characters (a long label in ``data.split.test_conditions``) made a folder name the file
    system refused (``File name too long``) after the sweep had started. The digest keeps two such names apart."""
    if len(variant) <= MAX_VARIANT:
        return variant
    digest = hashlib.sha1(variant.encode()).hexdigest()[:10]
    return f"{variant[:MAX_VARIANT - 11]}~{digest}"


def expand(grid: Mapping[str, Sequence[Any]], seeds: Sequence[int] | None = None,
           variants: Mapping[str, Any] | None = None) -> list[Run]:
    """All runs of a grid: the Cartesian product of the non-seed axes, each at every seed.

    The seed axis is ``train.seed`` in the grid, or ``seeds``; a variant's name joins the last key
    segment and value of each non-seed axis (``name=kme,depth=2``). Numpy values (``np.arange(3)``) are their Python values.

    ``variants`` (``{name: [override, ...]}``, see ``parse_variants``) are named sets of overrides, one factor at a time:
    each is crossed with the grid's axes (none: each variant alone) and run at every seed; its runs are named ``name``
    (``name,depth=2`` with an axis). ``[]`` is the config as written (the reference of an ablation).
    """
    if variants is not None:
        named = parse_variants(variants)
        varied = [k for k in grid if k != SEED_KEY]
        for name, overrides in named.items():  # applied first, so an axis over the same setting replaced it in every run
            for x in overrides:
                key = x.split("=", 1)[0].strip()
                hit = next((a for a in varied if a == key or key.startswith(a + ".")), None)  # one below it refines it: kept
                if hit is not None:
                    raise ConfigError(f"sweep.variants.{name}: {x!r} sets what the grid axis {hit} varies, so the axis would "
                                      f"replace it in every run of {name}; vary it in the variants only (a variant per "
                                      "value), or drop the axis")
        runs = []
        for name, overrides in named.items():
            for r in expand(grid, seeds):
                label = name if r.variant == "base" else f"{name},{r.variant}"
                runs.append(Run(variant=_bounded(label), seed=r.seed, overrides=(*overrides, *r.overrides)))
        _refuse_shared_folders(runs)
        return runs
    grid, seeds = plain_values(dict(grid)), plain_values(seeds)
    for k, v in grid.items():
        if not isinstance(k, str) or not k:
            raise ConfigError(f"grid: axis {k!r} is not a dotted config key like model.backbone.depth")
        if isinstance(v, str | bytes) or not isinstance(v, Sequence):
            raise ConfigError(f"grid axis {k!r} must be a list of values like [1, 2], got {v!r}")
    axes = {k: list(v) for k, v in grid.items() if k != SEED_KEY}
    seed_values = grid.get(SEED_KEY, seeds if seeds is not None else [0])
    if isinstance(seed_values, str | bytes) or not isinstance(seed_values, Sequence) or not seed_values:
        raise ConfigError(f"grid: the seeds ({SEED_KEY} or sweep.seeds) must be a non-empty list of integers, got {seed_values!r}")
    bad = [s for s in seed_values if isinstance(s, bool) or not isinstance(s, int)]
    if bad:
        raise ConfigError(f"grid: seeds must be integers, got {bad[:3]!r} in {SEED_KEY}={list(seed_values)!r}")
    seed_list = [int(s) for s in seed_values]
    _refuse_repeats(SEED_KEY, seed_list)
    for k, v in axes.items():
        if not v:
            raise ConfigError(f"grid axis {k!r} has no values")
        axes[k] = v = [_plain(x) for x in v]
        _refuse_repeats(k, v)
        if any(isinstance(x, float) and math.isnan(x) for x in v):
            raise ConfigError(f"grid axis {k!r} holds NaN ({short(v)}): no config value may be NaN; "
                              "leave the value out, or use null where the setting means 'none'")
    runs = []
    keys = list(axes)
    for combo in itertools.product(*(axes[k] for k in keys)) if keys else [()]:
        overrides = tuple(f"{k}={_fmt(v)}" for k, v in zip(keys, combo))
        label_parts = [f"{_label_key(k, keys)}={_label(v)}" for k, v in zip(keys, combo)]
        variant = _bounded(_slug(",".join(label_parts))) if label_parts else "base"
        former = _bounded(_slug(",".join(f"{_label_key(k, keys)}={_fmt(v)}" for k, v in zip(keys, combo)))) if keys else "base"
        for s in seed_list:
            runs.append(Run(variant=variant, seed=s, overrides=(*overrides, f"{SEED_KEY}={s}"),
                            former=former if former != variant else ""))
    _refuse_shared_folders(runs)
    return runs


def _refuse_shared_folders(runs: Sequence[Run]) -> None:
    folders: dict[str, list[Run]] = {}
    for r in runs:  # case folded: on a case-insensitive file system (macOS, Windows) name=A and name=a are one folder
        folders.setdefault(r.slug.casefold(), []).append(r)
    clashes = [group for group in folders.values() if len(group) > 1]
    if clashes:
        def said(group: Sequence[Run]) -> str:
            runs = first_of(group, 2, " and ", lambda r: " ".join(r.overrides[:-1]) or "base", noun="run")
            return f"{runs} -> runs/{group[0].slug}"

        shown = first_of(clashes, 3, "; ", said, noun="shared folder", enclosed=True)
        raise ConfigError(f"grid: different runs would share one run folder ({shown}): their names differ only in characters "
                          "a folder name cannot keep, or in case; make the axis values distinct")


def parse_variants(variants: Any) -> dict[str, tuple[str, ...]]:
    """``sweep.variants`` checked: ``{name: "key=value"}`` or ``{name: [key=value, ...]}`` -> ``{name: (override, ...)}``.

    Each name becomes a run folder, so it must be a folder name already (letters, digits, ``_.,=+-``), not hidden (no
    leading dot) and no Windows device (``windows_device``); an entry that is no
    ``key=value`` override, or that sets ``train.seed`` (the seeds are the sweep's ``seeds``), is refused naming it.
    """
    if not isinstance(variants, Mapping) or not variants:
        raise ConfigError("sweep.variants must be a non-empty mapping of a name to its overrides, e.g. "
                          "{preset: [], mlp: [model.backbone.name=mlp, 'model.conditioner={name: onehot}']}, "
                          f"got {short(variants)}")
    out: dict[str, tuple[str, ...]] = {}
    for name, value in variants.items():
        if not isinstance(name, str) or not name or _slug(name) != name:
            raise ConfigError(f"sweep.variants: the name {name!r} names a run folder: use letters, digits and _ . , = + - "
                              f"only (e.g. {_slug(str(name))!r})")
        if name.startswith("."):  # .x__seed0 is a hidden folder: ls and the file browsers leave it out of runs/
            raise ConfigError(f"sweep.variants: the name {name!r} names a run folder ({name}__seed0) that starts with a dot, a "
                              f"hidden folder: rename the variant (e.g. {('v' + name).rstrip('.')!r}; in a sweep folder made before, rename its "
                              f"runs/{name}__seed* folders alike)")
        from distgen.pipeline.outputs import windows_device

        if windows_device(f"{name}__seed0"):  # con.1__seed0 is the device CON there: the folder cannot be made or copied
            raise ConfigError(f"sweep.variants: the name {name!r} names a run folder ({name}__seed0) that Windows reads as its "
                              f"device {name.split('.', 1)[0].upper()!r} (the name up to the first dot counts): rename the variant "
                              f"(e.g. {name.replace('.', '_', 1)!r})")
        items = [] if value is None else [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise ConfigError(f"sweep.variants.{name}: expected an override 'key=value' or a list of them ([] for the "
                              f"config as written), got {short(value)}")
        for x in items:
            key = x.split("=", 1)[0].strip()
            if "=" not in x or not key or any(not part for part in key.split(".")):
                raise ConfigError(f"sweep.variants.{name}: {x!r} is not an override like model.coupling.name=exact_ot")
            if key == SEED_KEY:
                raise ConfigError(f"sweep.variants.{name}: {x!r} sets the seed; the seeds are the sweep's (sweep.seeds), "
                                  "shared by every variant so that each comparison pairs runs of the same seed")
        out[name] = tuple(items)
    return out


def _refuse_repeats(key: str, values: Sequence[Any]) -> None:
    """A grid axis that lists one value twice (``train.seed=[0,0]``): one run, asked for twice (the folder-clash message named
    'characters a folder name cannot keep'). Values compared as the override writes them (``1`` and ``1.0`` differ)."""
    seen: dict[str, Any] = {}
    for v in values:
        text = f"{type(v).__name__}:{_fmt(v)}"
        if text in seen:
            raise ConfigError(f"grid axis {key!r} lists the value {_fmt(v)} more than once ({short(list(values))}): each value "
                              "is one run per seed; list it once")
        seen[text] = v


def parse_grid_args(texts: Sequence[str]) -> dict[str, list[Any]]:
    """The ``--grid`` options of ``distgen sweep`` as one grid; a key given twice is refused (the last one replaced the
    others without a word: ``--grid train.seed=[0,1] --grid train.seed=[2,3]`` ran seeds 2 and 3 only)."""
    grid: dict[str, list[Any]] = {}
    for text in texts:
        key, values = parse_grid_arg(text)
        if key in grid:
            raise ConfigError(f"--grid {key} is given twice ({short(grid[key])} and {short(values)}); give one axis with every "
                              f"value, e.g. --grid '{key}=[{', '.join(_fmt(v) for v in [*grid[key], *values])}]'")
        grid[key] = values
    return grid


def _label_key(key: str, keys: Sequence[str]) -> str:
    """Shortest dotted suffix of ``key`` that tells it apart from the other axes."""
    parts = key.split(".")
    for n in range(1, len(parts) + 1):
        cand = ".".join(parts[-n:])
        if sum(1 for k in keys if k.endswith(cand)) == 1:
            return cand
    return key
