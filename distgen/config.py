"""Configs: component nodes validated against constructor signatures, YAML, dotted overrides.

A component node is ``{name: <registry key>, **params}``. The constructor signature *is* the
schema: unknown keys, wrong types and missing required parameters fail with a message naming the
key. A parameter annotated with a component base class (``backbone: Backbone``,
``solver: ODESolver | Node``) takes a nested node of that kind; a bare name is shorthand for a node
with default parameters (``solver: rk4`` is ``solver: {name: rk4}``), and a resolved config always
spells the node out. Parameters that assembly injects from the data (``info``, ``n_genes``,
``cond_dim``...) are not part of a config.

Overrides are dotted paths, ``model.backbone.name=mlp train.seed=3``; values are parsed as YAML
(a plain ``1e-3`` is a float, in files too; a quoted ``"1e3"`` stays a string, and a value the
parameter's type cannot take is refused naming the key: no string becomes a number behind your back).
Setting ``name`` to a different value replaces the node; params merge only when the name stays.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import inspect
import itertools
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from distgen.errors import DistgenError, DistgenWarning, UsageError, clip_message, short
from distgen.registry import PluginBuildError, RegistryError, all_registries, registry

#: Parameters filled by assembly from the data and from other components; never set in configs.
#: (Every name here is injected somewhere: a name listed but never filled would leave a plugin's parameter
#: of that name stuck at its default, unsettable and unrecorded.)
INJECTED = frozenset({"info", "n_genes", "cond_dim", "population_dim", "seen_perturbations", "gene_graph"})


#: What a parameter that takes a component accepts besides the object: a node or a bare name.
Node = str | Mapping[str, Any]


class ConfigError(UsageError, ValueError):
    """A config that cannot be built; the message names the key and how to fix it (exit code 2)."""


class InertSettingWarning(DistgenWarning):
    """A setting given a value that has no effect with the rest of the configuration (an ablation of it changes nothing)."""


#: Top-level sections of a config document that must be mappings when present.
SECTIONS = ("model", "data", "train", "sweep", "fit", "evaluate")
#: Most values a config may expand to once YAML aliases are followed (an alias bomb is refused).
MAX_CONFIG_VALUES = 1_000_000
#: Deepest ``base:`` chain followed before giving up.
MAX_BASE_DEPTH = 32


# ---------------------------------------------------------------------------- type checking
def _base_kinds() -> dict[type, str]:
    return {reg.base: kind for kind, reg in all_registries().items()}


def _component_kind(hint: Any) -> str | None:
    """The registry kind of a parameter annotated with a component base class (or Optional of it)."""
    bases = _base_kinds()
    if isinstance(hint, type) and hint in bases:
        return bases[hint]
    for arg in typing.get_args(hint):
        if isinstance(arg, type) and arg in bases:
            return bases[arg]
    return None


def _enum_type(hint: Any) -> type[enum.Enum] | None:
    """The ``enum.Enum`` class of a parameter annotated with one (or Optional of one)."""
    for h in (hint, *typing.get_args(hint)):
        if isinstance(h, type) and issubclass(h, enum.Enum):
            return h
    return None


def enum_member(value: Any, cls: type[enum.Enum]) -> enum.Enum | None:
    """The member of ``cls`` that a config value names: the member itself, its name or its value; else None."""
    if isinstance(value, cls):
        return value
    if isinstance(value, bool):  # YAML's true/false is no member of an int-valued enum
        return None
    if isinstance(value, str) and value in cls.__members__:
        return cls.__members__[value]
    try:
        return cls(value)
    except (ValueError, TypeError):
        return None


def _enum_choices(cls: type[enum.Enum]) -> str:
    return ", ".join(m.name if m.value == m.name else f"{m.name} (or {m.value!r})" for m in cls)


def _type_ok(value: Any, hint: Any) -> bool:
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    if isinstance(hint, type) and issubclass(hint, enum.Enum):  # YAML names a member by its name or its value
        return enum_member(value, hint) is not None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence, typing.Sequence) or hint in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:  # fixed-length tuple[int, str]
            return len(args) == len(value) and all(_type_ok(v, a) for v, a in zip(value, args, strict=True))
        inner = args[0] if args else Any
        return all(_type_ok(v, inner) for v in value)
    if origin in (dict, Mapping, typing.Mapping) or hint in (dict,):
        return isinstance(value, dict)
    if isinstance(hint, type):
        if _component_kind(hint) is not None:
            return isinstance(value, dict | str | hint)
        return isinstance(value, hint)
    return True  # annotations we cannot check (Callable, TypeVars...) are accepted


def _type_hint(value: Any, hint: Any) -> str:
    """How to write ``value`` so that a parameter of type ``hint`` takes it, where that is plain ('' otherwise)."""
    if isinstance(value, str) and _type_ok([value], hint):  # one name where a list belongs (a text is not read as its letters)
        return f" Write a list, even of one item: [{short(value)}]."
    if isinstance(value, str):
        try:
            number: float | int = int(value) if re.fullmatch(r"[-+]?[0-9]+", value.strip()) else float(value)
        except ValueError:
            return ""
        if isinstance(number, float) and number.is_integer() and not _type_ok(number, hint):
            number = int(number)
        if _type_ok(number, hint):
            return f" A quoted value stays a string: write {number} without quotes for the number."
    if isinstance(value, float) and value.is_integer() and _type_ok(int(value), hint):
        return f" Write the whole number {int(value)}."
    if isinstance(value, int | float) and not isinstance(value, bool) and _type_ok(str(value), hint):
        return f" Quote it to give the text: '{value}'."
    if isinstance(value, Mapping) and value and all(str(k).isdigit() for k in value) and _type_ok(list(value.values()), hint):
        return (" An override sets a whole list, not one item by its index (KEY.0=...): give every item, KEY=[...]"
                " (a list the config does not hold yet became a mapping of that index)")
    if isinstance(value, list | tuple) and value and _type_ok([str(v) for v in value], hint):
        return " Quote the items to give text (e.g. ['0', 'ctrl'])."
    return ""


def _hint_name(hint: Any) -> str:
    if typing.get_origin(hint) is not None:  # list[float], dict[str, Any], int | None: say it all
        return str(hint).replace("typing.", "").replace("collections.abc.", "")
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "").replace("collections.abc.", "")


def signature_schema(fn: Callable[..., Any]) -> dict[str, tuple[Any, Any]]:
    """``{param: (type hint, default or inspect.Parameter.empty)}`` of a constructor or function."""
    target = fn.__init__ if inspect.isclass(fn) else fn  # type: ignore[misc]
    sig = inspect.signature(target)
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # one annotation that cannot be resolved (a name imported under TYPE_CHECKING only)
        hints = _hints_one_by_one(target, sig)  # must not leave every other parameter unchecked
    out = {}
    for p in sig.parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[p.name] = (hints.get(p.name, _untyped(p.default)), p.default)
    return out


def _untyped(default: Any) -> Any:
    """The type an unannotated parameter is checked against: its plain default's (a number for a number), else ``Any``.

    A plugin's ``def __init__(self, bandwidth=1.0)`` took ``bandwidth: abc`` from a config and failed inside its first
    ``gram`` ("unsupported operand type(s) for /: 'Tensor' and 'str'", an internal error); a number's default accepts
    any number (an int default may stand for a float parameter), ``None`` and other defaults leave the parameter unchecked.
    """
    if isinstance(default, bool):
        return bool
    if isinstance(default, int | float):
        return int | float
    if isinstance(default, str):
        return str
    return Any


def plain_values(value: Any) -> Any:
    """``value`` with numpy and pandas values made the Python values a YAML config holds, in nested mappings and lists.

    A notebook hands a config mapping or a keyword argument ``np.int64(3)`` (a seed from ``np.arange``), ``np.float32``,
    ``np.bool_`` or an array / ``pd.Index`` of labels (``adata.obs.cell_type.unique()``): the same values as ``3``,
    ``0.5``, ``True`` and a list, which the type checks refused ("expected int, got int64") and a saved config could
    not hold. Only numpy scalars (``np.generic``) and objects with ``tolist`` (arrays, pandas Index and Series) change.
    """
    if isinstance(value, Mapping):
        return {k: plain_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain_values(v) for v in value) if type(value) in (list, tuple) else value
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) or (type(value).__module__.startswith("pandas") and callable(getattr(value, "tolist", None))):
        return plain_values(value.tolist())
    return value


def _positional_only(fn: Callable[..., Any]) -> set[str]:
    """The parameters of ``fn``'s constructor (or of ``fn``) written before ``/``: a config passes each value by keyword."""
    target = fn.__init__ if inspect.isclass(fn) else fn  # type: ignore[misc]
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in params if p.kind is p.POSITIONAL_ONLY and p.name != "self"}


def _catch_all_note(fn: Callable[..., Any]) -> str:
    """A sentence for a constructor taking ``*args``/``**kwargs`` (a plugin's wrapper class), '' for any other.

    A config sets, and assembly fills (``n_genes``...), only the parameters a signature names: a catch-all passes
    neither on, so the wrapped class was built without ``n_genes`` and every key of the node was unknown.
    """
    try:
        target = fn.__init__ if inspect.isclass(fn) else fn  # type: ignore[misc]
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return ""
    if target is object.__init__:  # no constructor of its own: it takes nothing, and says so ("Valid keys: (none)")
        return ""
    if not any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return ""
    return (f" {getattr(fn, '__qualname__', fn)}'s constructor takes *args/**kwargs, which a config cannot set and assembly does "
            f"not fill: name each parameter in its signature ({', '.join(sorted(INJECTED))} are filled from the data where "
            "named; docs/extending.md)")


def _hints_one_by_one(target: Callable[..., Any], sig: inspect.Signature) -> dict[str, Any]:
    """The type hints of ``target``'s parameters, each resolved on its own; one that cannot be resolved is left out (``Any``).

    ``typing.get_type_hints`` gives up on the whole signature when one annotation names something only imported
    under ``TYPE_CHECKING`` (``data: PerturbationData``): the other parameters then went unchecked, so a text where a
    list belongs (``data.split.test_conditions: KLF1+MAP2K6``) was read as a list of its characters.
    """
    namespace = dict(getattr(inspect.unwrap(target), "__globals__", {}))
    hints: dict[str, Any] = {}
    for p in sig.parameters.values():
        ann = p.annotation
        if ann is inspect.Parameter.empty:
            continue
        try:
            hints[p.name] = eval(ann, namespace) if isinstance(ann, str) else ann
        except Exception:
            continue
    return hints


# ---------------------------------------------------------------------------- validation
def validate_params(fn: Callable[..., Any], params: Mapping[str, Any], where: str, injected: frozenset[str] = INJECTED) -> None:
    """Check ``params`` against ``fn``'s signature; raise ``ConfigError`` naming the key."""
    schema = signature_schema(fn)
    allowed = [k for k in schema if k not in injected]
    for key, value in params.items():
        if key in injected and key in schema:
            raise ConfigError(f"{where}.{key}: {key!r} is filled in from the data at assembly and cannot be set in a config")
        if key not in schema:
            from distgen.wording import near

            moved = getattr(fn, "moved_params", {}).get(key) if isinstance(key, str) else None
            if moved:
                raise ConfigError(f"{where}: {key!r} is no longer a parameter here; {moved}.")
            close = near(key, allowed) if isinstance(key, str) else []
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: unknown key {short(key)}.{hint} Valid keys: {', '.join(allowed) or '(none)'}.{_catch_all_note(fn)}")
        if key in _positional_only(fn):
            raise ConfigError(f"{where}.{key}: {getattr(fn, '__qualname__', fn)}'s parameter {key!r} is positional-only (it comes "
                              "before '/' in its signature), which a config cannot set: move it after the '/' (or drop the '/')")
        hint_t, default_t = schema[key]
        kind = _component_kind(hint_t)
        if kind is not None and isinstance(value, dict | str):
            validate_node(kind, _node(_part(value, default_t)), f"{where}.{key}")
        elif kind is not None and value is None:
            if not _type_ok(None, hint_t):
                raise ConfigError(f"{where}.{key}: a {kind} component node is required, got null")
        elif not _type_ok(value, hint_t):
            choices = _enum_type(hint_t)
            if choices is not None:
                raise ConfigError(f"{where}.{key}: {short(value)} is not a {choices.__name__}; choose one of {_enum_choices(choices)}.")
            raise ConfigError(f"{where}.{key}: expected {_hint_name(hint_t)}, got {type(value).__name__} {short(value)}.{_type_hint(value, hint_t)}")
        elif isinstance(value, float) and not math.isfinite(value):
            _, default = schema[key]
            if not (isinstance(default, float) and not math.isfinite(default)):
                raise ConfigError(f"{where}.{key}: {value} is not allowed; give a finite number.")
    missing = [k for k, (_, d) in schema.items() if d is inspect.Parameter.empty and k not in params and k not in injected]
    if missing:
        what = ", ".join(f"{k!r} ({_hint_name(schema[k][0]).replace('NoneType', 'None')})" for k in missing)
        raise ConfigError(f"{where}: missing required parameter(s) {what}; give {'it' if len(missing) == 1 else 'them'} in "
                          "this node (docs/components.md lists each component's parameters).")


def validate_node(kind: str, node: Mapping[str, Any], where: str | None = None) -> None:
    """Validate a component node ``{name, **params}`` of ``kind`` (recursively)."""
    where = where or kind
    if not isinstance(node, Mapping):
        raise ConfigError(f"{where}: expected a component node {{name: ..., ...}}, got {type(node).__name__} {short(node)}")
    if "name" not in node:
        raise ConfigError(f"{where}: component node has no 'name'. Choose one of: {', '.join(registry(kind).names())}.")
    name = node["name"]
    if not isinstance(name, str):
        raise ConfigError(f"{where}.name: expected a string, got {short(name)}")
    try:
        cls = registry(kind).get(name)
    except RegistryError as exc:  # unknown name, a name two packages provide, a plugin that fails to load
        raise ConfigError(f"{where}.name: {exc}") from None
    params = {k: v for k, v in node.items() if k != "name"}
    validate_params(cls, params, f"{where}[{name}]")


def _node(value: Mapping[str, Any] | str) -> Mapping[str, Any]:
    """``{name: value}`` for a bare name (the shorthand), else the node itself."""
    return {"name": value} if isinstance(value, str) else value


def _part(value: Any, default: Any) -> Any:
    """A nested part's node: one that gives parameters but no ``name`` takes the name of the parameter's default part.

    ``model.dynamics.name=flow_matching model.dynamics.solver.steps=3`` sets the steps of flow matching's default solver
    (``rk4``); the node ``{steps: 3}`` was refused, "component node has no 'name'", although the part it sets is known.
    """
    if isinstance(value, Mapping) and "name" not in value and isinstance(default, str | Mapping):
        base = _node(default)
        if "name" in base:
            return {**base, **value}
    return value


# ---------------------------------------------------------------------------- building
def build_component(kind: str, node: Mapping[str, Any] | str, /, **injected: Any) -> Any:
    """Validate and construct a component; ``injected`` values go to parameters that accept them.

    Nested component nodes (parameters annotated with a component base class) are built
    recursively with the same injected values; a bare name stands for ``{name: <name>}``.
    """
    node = _node(node)
    validate_node(kind, node)
    cls = registry(kind).get(node["name"])
    schema = signature_schema(cls)
    kwargs: dict[str, Any] = {}
    for key, value in node.items():
        if key == "name":
            continue
        sub_kind = _component_kind(schema[key][0])
        choices = _enum_type(schema[key][0])
        if sub_kind is not None and isinstance(value, dict | str):
            value = build_component(sub_kind, _part(value, schema[key][1]), **injected)
        elif choices is not None and value is not None:  # a member's name or value from YAML: the member itself
            value = enum_member(value, choices)
        kwargs[key] = value
    for key, value in injected.items():
        if key in schema and key not in kwargs:
            kwargs[key] = value
    if filled := sorted(_positional_only(cls) & kwargs.keys()):  # filled in from the data: validate_node refused a config's
        key = filled[0]
        raise ConfigError(f"{kind}[{node['name']}].{key}: {cls.__qualname__}'s parameter {key!r} is positional-only (it comes "
                          "before '/' in its signature), and distgen fills it from the data by keyword: move it after the "
                          "'/' (or drop the '/')")
    try:
        obj = cls(**kwargs)
    except ValueError as err:  # a component refusing its parameters is a config error (exit 2), whatever class it raised
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(str(err)) from err
    except Exception as err:  # anything else from a plugin's constructor (a missing optional library...): name the plugin
        plugin = registry(kind).plugin(node["name"])
        if plugin is None or isinstance(err, DistgenError):
            raise
        raise PluginBuildError(
            f"{kind} component {node['name']!r} from plugin {plugin} failed to build: {type(err).__name__}: {clip_message(str(err), 300)}. "
            f"Install what it needs, fix the plugin, or use another component.{_catch_all_note(cls)}"
        ) from err
    registry(kind).verify(node["name"])  # a plugin's first build runs the cheap contract checks
    return obj


def as_component(kind: str, value: Any, /, **injected: Any) -> Any:
    """``value`` if it already is a ``kind`` component, else the component built from a node or a bare name.

    Lets a constructor take its parts as objects (Python), nodes or names (configs) alike, e.g.
    ``FlowMatching(solver="euler")``, ``FlowMatching(solver={"name": "rk4", "steps": 5})`` or
    ``FlowMatching(solver=RK4(steps=5))``.
    """
    reg = registry(kind)
    if isinstance(value, reg.base):
        return value
    if isinstance(value, str | Mapping):
        return build_component(kind, value, **injected)
    raise ConfigError(
        f"expected a {kind} component, a node {{name: ...}} or a name ({', '.join(reg.names())}); "
        f"got {type(value).__name__} {value!r}"
    )


def resolve_node(kind: str, node: Mapping[str, Any] | str) -> dict[str, Any]:
    """The node with every default filled in from the signature (injected params left out).

    Nested component nodes are resolved too; a bare name (also as a default) becomes its full node.
    A default that is not plain data (a plugin's ``act: Callable = torch.relu``) is left out: YAML
    cannot write it, and building the node again applies it.
    """
    node = _node(node)
    validate_node(kind, node)
    cls = registry(kind).get(node["name"])
    schema = signature_schema(cls)
    out: dict[str, Any] = {"name": node["name"]}
    for key, (hint, default) in schema.items():
        if key in INJECTED:
            continue
        value = node.get(key, default)
        if value is inspect.Parameter.empty:
            continue
        sub_kind = _component_kind(hint)
        if sub_kind is not None and isinstance(value, dict | str):
            value = resolve_node(sub_kind, _part(value, default))
        elif key not in node and not _is_plain(value):
            continue  # a default no config can hold (a function, a dtype...): the constructor applies it when built again
        out[key] = _plain(value)
    return out


def _is_plain(value: Any) -> bool:
    """Whether YAML can write ``value`` as plain data (what a config holds); an enum member is written by its name."""
    if isinstance(value, enum.Enum):
        return True
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str | int) and _is_plain(v) for k, v in value.items())
    return False


def _plain(value: Any) -> Any:
    """YAML-friendly copy: tuples become lists, an enum member its name (which builds it again)."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------- documents
class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping (YAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` (merged by the base class)
                continue
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {short(key)} appears twice in one mapping (first at line {first.line + 1}); "
                    "YAML would silently keep only the last: merge them", key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


#: A plain (unquoted) scalar in scientific notation without a dot or an exponent sign (``1e-3``, ``1e3``, ``2.5E4``):
#: YAML 1.2 reads it as a float, PyYAML (YAML 1.1) as a string. Configs read it as the float it means, in files,
#: overrides and lists alike; a quoted ``"1e3"`` stays a string.
_SCI_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)[eE][-+]?[0-9]+$")
#: On a command line a plain ``nan``/``inf``/``-infinity`` means the number (a file writes ``.nan``, ``.inf``).
_NON_FINITE = re.compile(r"^[-+]?(?:nan|inf|infinity)$", re.IGNORECASE)
_FLOAT_TAG = "tag:yaml.org,2002:float"
_Loader.add_implicit_resolver(_FLOAT_TAG, _SCI_FLOAT, list("-+0123456789."))


class _OverrideLoader(_Loader):
    """``_Loader`` for the value of a ``key=value`` override: a plain ``nan``/``inf`` is a float too."""


_OverrideLoader.add_implicit_resolver(_FLOAT_TAG, _NON_FINITE, list("-+nNiI"))


class _Dumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that quotes every string ``_OverrideLoader`` would read as something else (``'1e3'``,
    ``'nan'``), so a config written and read again (``experiment.yaml``, a sweep's overrides) keeps its strings."""


_Dumper.add_implicit_resolver(_FLOAT_TAG, _SCI_FLOAT, list("-+0123456789."))
_Dumper.add_implicit_resolver(_FLOAT_TAG, _NON_FINITE, list("-+nNiI"))


def flat_settings(doc: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (lists kept as values; an empty mapping below the top is a value)."""
    if isinstance(doc, Mapping):
        out: dict[str, Any] = {}
        for k, v in doc.items():
            out.update(flat_settings(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: doc}


def settings_diff(config: Mapping[str, Any], preset: Mapping[str, Any], skip: Sequence[str] = ("sweep",),
                  missing: Any = None) -> list[tuple[str, Any, Any]]:
    """``[(dotted key, preset value, config value)]`` where ``config`` differs from ``preset`` (two config documents).

    A component node whose ``name`` changed is one entry (its other keys belong to another component); the top-level
    sections ``skip`` are left out; a key one side does not set shows ``missing`` there (the constructor's default)."""
    run, base = flat_settings(config), flat_settings(preset)
    replaced = {k.removesuffix(".name") for k in run if k.endswith(".name") and k in base and run[k] != base[k]}
    out: list[tuple[str, Any, Any]] = []
    for key in sorted(set(run) | set(base)):
        if any(key.startswith(r + ".") and key != r + ".name" for r in replaced):
            continue
        if key.split(".")[0] in skip:
            continue
        a, b = base.get(key, missing), run.get(key, missing)
        if a != b:
            out.append((key, a, b))
    return out


def result_settings(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` (a run's config document) without what does not change its result (progress bars), as plain values."""
    import json

    plain: dict[str, Any] = json.loads(json.dumps(doc, default=str))
    train = plain.get("train")
    if isinstance(train, dict):
        train.pop("progress", None)
        if not train:
            del plain["train"]
    return plain


def sci_number(text: object) -> float | None:
    """The float a plain (unquoted) ``text`` such as ``1e3`` reads as in a config now, when distgen before 2026-12-05
    (plain PyYAML) read it as the string ``text``; None for any other value.

    A config such a distgen saved writes that string unquoted (``x: 1e3``), and its checkpoints record the string: a
    resume or prediction compares the two and names the key (``distgen.train.checkpoint.legacy_strings``).
    """
    if isinstance(text, str) and _SCI_FLOAT.match(text):
        try:
            return float(text.replace("_", ""))
        except ValueError:
            return None
    return None


def dump_yaml(value: Any, **kwargs: Any) -> str:
    """``value`` as YAML text that ``parse_yaml`` (and an override) reads back as the same value."""
    return str(yaml.dump(value, Dumper=_Dumper, **kwargs))


def _yaml_error(exc: yaml.YAMLError, where: str) -> ConfigError:
    """A ``ConfigError`` for a YAML parse or construction error, with line and column (1-based)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    at = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    if isinstance(exc, yaml.constructor.ConstructorError) and "appears twice" in problem:
        return ConfigError(f"{where}{at}: {problem}")
    if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
        tag = re.search(r"tag '([^']*)'", problem)
        name = tag.group(1).replace("tag:yaml.org,2002:", "!!") if tag else "?"
        return ConfigError(
            f"{where}{at}: YAML tag {name!r} is not allowed; configs hold plain data (mappings, lists, strings, "
            "numbers, booleans, null). Remove the tag"
        )
    return ConfigError(f"{where}{at}: not valid YAML ({problem}); fix the syntax there")


def parse_yaml(text: str, where: str, override: bool = False) -> Any:
    """Parse YAML ``text`` as plain data; ``where`` (a file or an override) prefixes every error.

    Tags that build Python objects (``!!python/...``) or any custom tag are refused, and so are
    aliases that refer to themselves or expand to more than ``MAX_CONFIG_VALUES`` values. A plain
    ``1e-3`` is a float; with ``override`` (a command-line value) so are a plain ``nan`` and ``inf``.
    A quoted scalar is always a string.
    """
    try:
        value = yaml.load(text, Loader=_OverrideLoader if override else _Loader)  # a SafeLoader: plain data only, no Python objects, no custom tags
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, where) from None
    check_expanded_size(value, where)
    return value


def check_expanded_size(value: Any, where: str, limit: int = MAX_CONFIG_VALUES) -> int:
    """Number of values in ``value`` once shared (aliased) parts are counted at every use.

    Counted without expanding anything (each distinct container once, memoised), so an alias bomb
    is measured in microseconds. Raises ``ConfigError`` on a self-reference or above ``limit``.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(v: Any) -> int:
        if not isinstance(v, dict | list | tuple):
            return 1
        key = id(v)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError(f"{where}: a YAML alias refers to the node that contains it (a cycle); configs must be trees")
        active.add(key)
        items = [*v.keys(), *v.values()] if isinstance(v, dict) else v
        total = 1
        for item in items:
            total += size(item)
            if total > limit:
                raise ConfigError(
                    f"{where}: YAML aliases expand to more than {limit:,} values; a config is never that large "
                    "(an alias bomb?). Write the values out or shorten the lists"
                )
        active.discard(key)
        sizes[key] = total
        return total

    return size(value)


def bad_byte(raw: bytes, exc: UnicodeDecodeError) -> str:
    """Where the first byte that is not UTF-8 is: its offset, line and column (``byte 39 (0xe4, line 2, column 30)``)."""
    if exc.encoding.replace("-", "").lower().startswith("utf16"):
        return f"it starts with a UTF-16 byte-order mark, but byte {exc.start} is not UTF-16"
    line = raw.count(b"\n", 0, exc.start) + 1
    column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
    return f"byte {exc.start} (0x{raw[exc.start]:02x}, line {line}, column {column}) is not UTF-8"


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config document (a mapping); every problem is a ``ConfigError`` naming the file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a folder; give a YAML file (or a preset name)")
    try:
        raw = path.read_bytes()
        # UTF-16 with its byte-order mark is what Windows PowerShell's `echo ... > my.yaml` and some editors write: the mark
        # says which, so it is read, not refused as "not a text file"
        text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not a text (YAML) file in UTF-8: {bad_byte(raw, exc)}; if it "
                          "is text in another encoding (latin-1, cp1252), save it as UTF-8 (configs are read as UTF-8 "
                          "whatever the locale)") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read ({exc.strerror or exc})") from None
    doc = parse_yaml(text, f"config file {str(path)!r}")
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level, got {type(doc).__name__}")
    return doc


def save_yaml(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``doc`` as YAML atomically (temp file + rename; no temp file is left on failure)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            yaml.dump(_plain(dict(doc)), fh, Dumper=_Dumper, sort_keys=False)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"model.backbone.depth=4"`` -> (``["model", "backbone", "depth"]``, ``4``)."""
    if "=" not in text:
        raise ConfigError(f"override {short(text)} must look like dotted.key=value (e.g. train.seed=3)")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {short(text)} has an empty key segment")
    # a plain 1e-3, nan or inf is a number; a quoted "1e3" stays a string (e.g. a label that looks numeric)
    value = parse_yaml(raw, f"override {short(text)}", override=True) if raw.strip() else ""
    return parts, value


def apply_overrides(doc: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``doc`` with dotted overrides applied in order.

    Setting ``...name`` to a new value replaces that node with ``{name: value}``, keeping the keys
    that earlier overrides of the same call set inside it (so the order of ``backbone.hidden=32`` and
    ``backbone.name=mlp`` does not matter; a key the new component lacks is then an error, not a
    silent drop); other keys are set (creating intermediate mappings as needed). Setting a key inside a component given by a bare
    name expands the name first: ``solver=euler`` then ``solver.steps=4`` gives ``{name: euler, steps: 4}``.
    A top-level section can be replaced by another
    mapping but not by a plain value: ``train=5`` is refused, naming the keys it would have thrown
    away (deeper keys are checked against their schema, where a string may be valid: ``data.split=split.json``).
    """
    out = copy.deepcopy(dict(doc))
    overrides = check_overrides(overrides)
    done: list[tuple[list[str], str]] = []  # (path, text) of the overrides applied so far
    for text in overrides:
        parts, value = parse_override(text)
        node: dict[str, Any] = out
        for i, p in enumerate(parts[:-1]):
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if isinstance(nxt, str) and i < len(parts) - 1:  # a bare component name: expand to its node
                nxt = node[p] = {"name": nxt}
            if isinstance(nxt, list | tuple) and parts[i + 1].isdigit():  # train.betas.0=0.8: one item of a list
                raise ConfigError(f"override {short(text)}: {'.'.join(parts[: i + 1])} is the list {short(nxt)}; an override sets "
                                  f"a whole list, not one item: {'.'.join(parts[: i + 1])}=[...] with every item")
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {short(text)}: {'.'.join(parts[: i + 1])} is {short(nxt)}, not a mapping")
            node = nxt
        last = parts[-1]
        old = node.get(last)
        if len(parts) == 1 and isinstance(old, dict) and not isinstance(value, dict):
            example = next((k for k in old if k != "name"), next(iter(old), "key"))
            raise ConfigError(
                f"override {short(text)}: {'.'.join(parts)} is a section with keys {short(sorted(map(str, old)))}, "
                f"not a single value; set a key inside it (e.g. {'.'.join(parts)}.{example}=...)"
            )
        if last == "name" and node.get("name") != value:
            node.clear()
            node[last] = value
            # keys set inside this node by earlier overrides of the same call belong to the new component too
            # (`backbone.hidden=32 backbone.name=mlp` is `backbone.name=mlp backbone.hidden=32`, not a silent drop)
            at = parts[:-1]
            again = [t for p, t in done if len(p) > len(at) and p[: len(at)] == at and p[len(at):] != ["name"]]
            out = apply_overrides(out, again)
            done.append((parts, text))
            continue
        node[last] = value
        done.append((parts, text))
    return out


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any], _path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Merge ``update`` into a copy of ``base``; a node whose ``name`` changes is replaced whole.

    Under ``model``, a part the base gives by a bare name (``solver: euler``) and the update by
    parameters (``solver: {steps: 3}``) merge into ``{name: euler, steps: 3}``, as the overrides
    ``solver=euler solver.steps=3`` do (elsewhere a string may be a path that a mapping replaces).
    """
    out = copy.deepcopy(dict(base))
    for k, v in update.items():
        if _path[:1] == ("model",) and isinstance(v, Mapping) and isinstance(out.get(k), str) and "name" not in v:
            out[k] = {"name": out[k]}
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            if "name" in v and v.get("name") != out[k].get("name"):
                out[k] = copy.deepcopy(dict(v))
            else:
                out[k] = deep_merge(out[k], v, (*_path, str(k)))
        else:
            out[k] = copy.deepcopy(v)
    return out


def preset_names() -> list[str]:
    """Names of the bundled presets (``distgen/models/presets/*.yaml``), sorted."""
    return list(_bundled_presets())


@functools.cache
def _bundled_presets() -> tuple[str, ...]:
    """The bundled presets' names, read from the package folder once per process (it does not change while distgen runs;
    every config reference asks, and ``preset_names`` hands out a new list each call)."""
    return tuple(sorted(p.stem for p in _PRESET_DIR.glob("*.yaml")))


_PRESET_DIR = Path(__file__).parent / "models" / "presets"


def preset_of(config: str | os.PathLike[str] | Mapping[str, Any], overrides: Sequence[str] = ()) -> str | None:
    """The preset a config derives from: the preset itself, else the first preset of its ``base:`` chain (None without one).

    The chain is the one ``load_config(config, overrides)`` reads (``_base_chain``): a ``base=NAME`` override replaces
    the document's own ``base``, and a relative ``base`` found next to its config is that file, even one named like a
    preset. A chain ``load_config`` cannot read (a missing file, a cycle, a ``base`` that is no name) is refused here with
    the same ``ConfigError``: such a config derives from no preset one could name.
    """
    return _first_preset(_base_chain(config, check_overrides(overrides))[0])


def load_config(source: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A config document from a preset name, a YAML path or a mapping, with ``base:`` inheritance.

    ``base: <preset or path>`` in a document inherits from it (recursively); then overrides apply.
    A relative ``base`` path in a file is found next to that file (else relative to the working directory).
    The override ``base=<preset or path>`` replaces the document's own ``base`` before inheritance,
    so a sweep can put whole presets on one grid axis (``--grid base=[perturbdiff-small,scdfm-small]``);
    the document's other sections are still merged over that base. A ``sweep.grid`` declared in the
    document replaces the base's grid whole (axes do not merge); without one, the base's grid is inherited.

    A ``base:`` chain that comes back to a document already in it is refused, naming the cycle.
    The result is checked: known sections (``SECTIONS``) are mappings and no value is NaN.
    """
    return read_config(source, overrides).doc


@dataclasses.dataclass(frozen=True)
class LoadedConfig:
    """A config as one read of its ``base:`` chain gives it (``read_config``): ``doc`` is ``load_config``'s document,
    ``preset`` is ``preset_of``'s answer and ``explicit_keys(section)`` is ``explicit_keys``' for that section, from
    ``user_keys`` (section name -> the keys of it the user set)."""

    doc: dict[str, Any]
    preset: str | None
    user_keys: Mapping[str, frozenset[str]]

    def explicit_keys(self, section: str) -> set[str]:
        """The keys of ``section`` the user set (``explicit_keys``)."""
        return set(self.user_keys.get(section, ()))


def read_config(source: str | os.PathLike[str] | Mapping[str, Any], overrides: Sequence[str] = ()) -> LoadedConfig:
    """``load_config(source, overrides)`` with the preset it derives from and the keys the user set, from one read of the
    ``base:`` chain: a config that can be read only once (a named pipe, ``/dev/stdin``, ``<(...)``) gives all three, and
    no file is read twice. ``distgen train`` and ``distgen run`` load their config so."""
    overrides = check_overrides(overrides)
    links, rest = _base_chain(source, overrides)
    doc = _merged(links, rest)
    check_document(doc)
    return LoadedConfig(doc, _first_preset(links), _user_keys(links, overrides))


def explicit_keys(source: str | Path | Mapping[str, Any], overrides: Sequence[str], section: str) -> set[str]:
    """The keys of ``section`` the user set: in the config mapping or files of ``source``'s ``base:`` chain
    above its first preset, or by an override (``train.lr=...``, ``train={...}``); not those a preset supplies.

    Lets a command warn about a setting the user chose that has no effect, without warning about every
    key a preset carries.
    """
    overrides = check_overrides(overrides)
    return set(_user_keys(_base_chain(source, overrides)[0], overrides).get(section, ()))


#: The sections of a run document that ``distgen train`` reads, and those the other commands (and ``distgen.fit``/``run``) read.
RUN_SECTIONS = ("model", "data", "train")
OTHER_SECTIONS = frozenset({"sweep", "fit", "evaluate", "description", "preflight", "predict"})
#: Top-level keys with this prefix hold YAML anchors for the rest of the document and are ignored (as docker compose's ``x-``).
ANCHOR_PREFIX = "x-"


def check_sections(doc: Mapping[str, Any]) -> None:
    """Refuse a top-level key no command reads (a typo such as ``trian:`` would otherwise leave its settings unused)."""
    from distgen.wording import near

    unknown = sorted(str(k) for k in set(doc) - set(RUN_SECTIONS) - OTHER_SECTIONS if not str(k).startswith(ANCHOR_PREFIX))
    if unknown:
        known = [*RUN_SECTIONS, *sorted(OTHER_SECTIONS)]
        close = [m for k in unknown for m in near(k, known)]
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(
            f"unknown top-level section(s) {unknown}.{hint} A run config has {', '.join(RUN_SECTIONS)} (and base:), and the other "
            f"commands read {', '.join(sorted(OTHER_SECTIONS))}; a section only holding YAML anchors must start with "
            f"{ANCHOR_PREFIX!r} (e.g. {ANCHOR_PREFIX}common: &common {{...}}), which is ignored"
        )


def check_repeated_overrides(overrides: Sequence[str]) -> list[str]:
    """The command line's ``overrides``, refused (``ConfigError``) when one key is set twice: ``train.steps=2 train.steps=3``
    applied the last without a word (a typo, or a line pasted onto another). Keys are compared as written (dotted); a
    command's own overrides added to the user's (``quickstart --steps``) are not checked here: the user's win."""
    seen: dict[str, str] = {}
    for text in overrides:
        key = text.split("=", 1)[0].strip() if "=" in text else None
        if key is None:
            continue
        if key in seen:
            raise ConfigError(f"override key {key} is given twice ({short(seen[key])} and {short(text)}): only the last one would "
                              "apply; give it once")
        seen[key] = text
    return list(overrides)


def check_overrides(overrides: Any) -> Sequence[str]:
    """``overrides`` as given when it is a list of ``KEY=VALUE`` strings (a bare string would be read character by character)."""
    if isinstance(overrides, str | bytes):
        raise TypeError(f"overrides must be a list of 'key=value' strings, got the string {short(overrides)}; write [{short(overrides)}]")
    if not isinstance(overrides, Sequence) or not all(isinstance(o, str) for o in overrides):
        raise TypeError(f"overrides must be a list of 'key=value' strings, got {short(overrides)}")
    return overrides


def check_document(doc: Mapping[str, Any]) -> None:
    """Reject a document whose sections are not mappings or that holds NaN anywhere (naming the key)."""
    for key in SECTIONS:
        value = doc.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError(
                f"{key}: expected a section (a mapping of {key} keys), got {type(value).__name__} {short(value)}; "
                f"write e.g. {key}: {{...}} or set single keys with {key}.KEY=VALUE"
            )
    check_expanded_size(doc, "config")
    _reject_nan(doc, "")


def _reject_nan(value: Any, where: str) -> None:
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError(f"{where or 'config'}: NaN is not a valid setting; give a number")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _reject_nan(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _reject_nan(v, f"{where}[{i}]")


#: The recipes of a source checkout (``recipes/*.yaml`` beside the package; absent from a wheel).
_RECIPE_DIR = Path(__file__).parent.parent / "recipes"


def _recipe_hint(text: str) -> str:
    """Where a recipe named like ``text`` lies, when the checkout has one: ``recipes/x.yaml`` is relative to the clone,
    not to the working directory or the config (docs/your_data.md names them so)."""
    name = Path(text).name if Path(text).suffix else f"{Path(text).name}.yaml"
    recipe = _RECIPE_DIR / name
    if recipe.is_file() and name in (p.name for p in _RECIPE_DIR.iterdir()):  # its exact name, whatever the file system
        return f" The recipe {name} is {recipe}: give that path in base: (a relative base: is read next to the config, then from the working directory)."
    return ""


def names_preset(text: str) -> bool:
    """Whether the config reference ``text`` (as typed, or a ``base:``) names a bundled preset: its exact name (not a file
    test: on a case-insensitive file system, macOS' or Windows', presets/X.yaml "exists" for SCDFM-small too), unless a file
    of that exact name is in the working directory (that file is meant). A folder is no config (an official ``scDFM``
    checkout, which such a file system also finds as ``scdfm``), nor is a file in another case.

    The presets' names are read once per process; the working directory is asked each call (it may change), with one
    ``stat``, and listed only when a file of that name (in any case) is there."""
    if text not in _bundled_presets():
        return False
    try:
        return not (Path(text).is_file() and text in os.listdir("."))
    except OSError:  # an unreadable working directory: no file of ours there
        return True


def _source_id(text: str, preset_base: bool = False) -> tuple[str, Path | None]:
    """``(identity, file)`` of a config reference: a preset or a file (resolved path). ``preset_base``: the ``base:`` of a
    preset, which names a preset whatever the working directory holds."""
    if text in _bundled_presets() if preset_base else names_preset(text):
        return f"preset {text}", _PRESET_DIR / f"{text}.yaml"
    if Path(text).exists():
        return str(Path(text).resolve()), Path(text)
    return text, None


def _beside(here: Path, base: str) -> bool:
    """Whether the relative ``base:`` ``base`` of a config in folder ``here`` is a file next to it. A preset's name is such a
    file only in its own case, as in the working directory (``names_preset``): on a case-insensitive file system, macOS' or
    Windows', ``sub/scdfm-small`` "is" a file ``sub/SCDFM-small``."""
    if Path(base).is_absolute() or not (here / base).is_file():
        return False
    if base not in _bundled_presets():
        return True
    try:
        return base in os.listdir(here)
    except OSError:  # an unreadable folder: no file of ours there
        return False


@dataclasses.dataclass(frozen=True)
class _Link:
    """One document of a ``base:`` chain as read: ``doc`` without its ``base:`` key; ``preset`` is the bundled preset's name
    when the document is one (else None); ``ident`` names the document in a refused cycle (a preset, a resolved path or
    ``<mapping>``)."""

    ident: str
    doc: dict[str, Any]
    preset: str | None


def _base_chain(source: str | os.PathLike[str] | Mapping[str, Any], overrides: Sequence[str], chain: tuple[str, ...] = (),
                preset_base: bool = False) -> tuple[list[_Link], list[str]]:
    """The documents of ``source``'s ``base:`` chain, ``source`` first, and the overrides other than ``base=``.

    The one reader of a chain: ``load_config`` merges these documents, ``preset_of`` names the first preset among them and
    ``explicit_keys`` reads the documents above it. A ``base=`` override replaces ``source``'s own ``base``; a relative
    ``base`` found next to the file that names it is that file, else it is a preset name or a path from the working
    directory; a preset's own ``base`` is a preset (``preset_base``) whatever the working directory holds.
    """
    here: Path | None = None
    if isinstance(source, Mapping):
        check_expanded_size(source, "config")
        doc = plain_values(copy.deepcopy(dict(source)))
        ident = "<mapping>"
    else:
        text = str(source)
        ident, file = _source_id(text, preset_base)
        if file is None:
            from distgen.wording import near

            # a preset for a name only: a path or a file name (suffix) is the user's own config, which no preset is
            meant = near(text, preset_names()) if Path(text).name == text and not Path(text).suffix else []
            raise ConfigError(
                f"{text!r} is neither a config file nor a preset.{f' Did you mean {meant[0]!r}?' if meant else ''} "
                f"Presets: {', '.join(preset_names()) or '(none)'}."
                + _recipe_hint(text)
            )
        if ident in chain:
            cycle = [*chain[chain.index(ident):], ident]
            raise ConfigError(f"base: the chain of base configs is circular: {' -> '.join(cycle)}; remove one base: line")
        if len(chain) >= MAX_BASE_DEPTH:
            from distgen.wording import first_of

            raise ConfigError(f"base: chain deeper than {MAX_BASE_DEPTH} configs ({first_of(chain, 4, ' -> ', enclosed=True)})")
        doc = load_yaml(file)
        here = None if ident.startswith("preset ") else file.parent
    rest = []
    base = doc.pop("base", None)
    own_base = ident.startswith("preset ")  # a preset's base: is a preset (one typed in base= is looked up as typed)
    for text in overrides:
        parts, value = parse_override(text)
        if parts == ["base"]:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"override {short(text)}: base must be a preset name or a config path")
            base, own_base = value, False
        else:
            rest.append(text)
    if base is not None and not isinstance(base, str):
        raise ConfigError(f"base: must be a preset name or a config path, got {short(base)}")
    if isinstance(base, str) and here is not None and _beside(here, base):
        base = str(here / base)
    link = _Link(ident, doc, ident.removeprefix("preset ") if ident.startswith("preset ") else None)
    if base is None:
        return [link], rest
    return [link, *_base_chain(base, (), (*chain, ident), preset_base=own_base)[0]], rest


def _merged(links: Sequence[_Link], overrides: Sequence[str]) -> dict[str, Any]:
    """The document of a ``base:`` chain's ``links``: merged, the last base first, then ``overrides`` (the links are not
    changed)."""
    doc = links[-1].doc
    for link in reversed(links[:-1]):
        own = link.doc
        if isinstance(own.get("sweep"), dict) and isinstance(doc.get("sweep"), dict):
            # a declared grid (variants) replaces the inherited one: axes do not merge
            doc = {**doc, "sweep": {k: v for k, v in doc["sweep"].items() if not (k in ("grid", "variants") and k in own["sweep"])}}
        doc = deep_merge(doc, own)
    return apply_overrides(doc, overrides)


def _first_preset(links: Sequence[_Link]) -> str | None:
    """The first bundled preset of a ``base:`` chain (None: the chain has none)."""
    return next((link.preset for link in links if link.preset), None)


def _user_keys(links: Sequence[_Link], overrides: Sequence[str]) -> dict[str, frozenset[str]]:
    """Per section name, the keys the user set in a ``base:`` chain's ``links`` above its first preset, or by an override
    (``train.lr=...``, ``train={...}``; all of ``overrides``, ``base=`` too). A YAML top-level key that is no text
    (``1:``, ``null:``) names no section and is left out (``check_sections`` refuses it)."""
    keys: dict[str, set[str]] = {}
    for text in overrides:
        parts, value = parse_override(text)
        keys.setdefault(parts[0], set()).update(
            {parts[1]} if len(parts) > 1 else {str(k) for k in value} if isinstance(value, Mapping) else set())
    for link in itertools.takewhile(lambda link: link.preset is None, links):
        for section, node in link.doc.items():
            if isinstance(section, str) and isinstance(node, Mapping):
                keys.setdefault(section, set()).update(str(k) for k in node)
    return {section: frozenset(found) for section, found in keys.items()}
