"""Component registries: one ``Registry`` per kind, filled from static tables and entry points.

Each kind's registry is created beside its interface (``distgen/kernels/base.py`` holds ``Kernel``
and ``kernels``). Built-ins are declared the way plugins are: a static table ``name ->
"module:attr"`` per kind, loaded on first use, so no package imports its submodules back to
register them. Third-party packages declare entry points in the group ``distgen.<kind>``; the
entry-point name is the config name. Discovery reads names only; a module is imported the first
time its component is used, and the object it provides is checked against the kind's base class.

Conflicts are reported where they matter: a name provided twice (a plugin reusing a built-in's
name, or two plugins) fails when, and only when, a config uses it, with both providers named;
``distgen components`` lists both with a warning. Breakage is gentle: a plugin that fails to
import (even one that calls ``sys.exit``) warns and is skipped, so ``import distgen`` never breaks.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import inspect
import re
import sys
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Generic, TypeVar

from distgen.capabilities import Capabilities, resolve
from distgen.errors import DistgenRuntimeWarning, warn
from distgen.wording import counted, near

T = TypeVar("T")

#: Where each kind's registry lives (``"module:attr"``), in the order ``distgen components`` lists them.
#: A kind's module is imported the first time the kind is asked for.
HOMES: dict[str, str] = {
    "kernels": "distgen.kernels.base:kernels",
    "encoders": "distgen.encoders.base:encoders",
    "conditioners": "distgen.conditioners.base:conditioners",
    "backbones": "distgen.backbones.base:backbones",
    "dynamics": "distgen.dynamics.base:dynamics",
    "paths": "distgen.dynamics.paths:paths",
    "time_samplers": "distgen.dynamics.time_samplers:time_samplers",
    "ode_solvers": "distgen.dynamics.ode_solvers:ode_solvers",
    "sde_solvers": "distgen.dynamics.sde_solvers:sde_solvers",
    "noise_schedules": "distgen.dynamics.noise_schedules:noise_schedules",
    "diffusion_samplers": "distgen.dynamics.diffusion_samplers:diffusion_samplers",
    "couplings": "distgen.couplings.base:couplings",
    "metrics": "distgen.evaluation.metrics.base:metrics",
    "models": "distgen.models.base:models",
    "matchers": "distgen.data.matching:matchers",
}

#: Component kinds, in listing order.
KINDS = tuple(HOMES)


class RegistryError(Exception):
    """Base class for registry errors."""


class UnknownComponentError(RegistryError, KeyError):
    """A name that no built-in or plugin provides."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class DuplicateComponentError(RegistryError):
    """Two providers claim the same name in one kind, and a config asked for that name."""


class PluginLoadError(RegistryError):
    """A plugin's entry point could not be imported or is not a valid component."""


class PluginCheckError(RegistryError):
    """A plugin's component failed distgen's cheap contract checks when it was first built."""


class PluginBuildError(RegistryError):
    """A plugin's component raised an unexpected error in its constructor (a missing optional library...)."""


#: The cheap checks run on a plugin's component when it is first built (``Registry.verify``).
CHECKS = "distgen.testing.checks:check_component"


@dataclass(frozen=True)
class ComponentInfo:
    """What a registered component says about itself.

    ``conflicts`` names the other providers of the same name (a config that uses the name fails
    until all but one are uninstalled or renamed).
    """

    kind: str
    name: str
    provider: str
    version: str
    summary: str
    capabilities: Capabilities = field(default_factory=Capabilities)
    conflicts: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "provider": self.provider,
            "version": self.version,
            "summary": self.summary,
            "capabilities": self.capabilities.describe(),
            "capabilities_type": type(self.capabilities).__name__,
            "conflicts": list(self.conflicts),
        }


def _summary(obj: Any) -> str:
    """The first line of ``obj``'s own docstring: a class without one has no summary, not its base class's
    (a plugin subclassing ``MeanEmbedding`` was listed as "Mean expression of the set ...")."""
    own = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    doc = inspect.cleandoc(own) if isinstance(own, str) else ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


@lru_cache(maxsize=1)
def _distgen_version() -> str:
    try:
        return md.version("distgen")
    except md.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


@dataclass
class _Entry:
    """One provider of one name: a built-in target, an entry point, or an object added in code."""

    name: str
    provider: str
    version: str = ""
    target: str | None = None
    entry_point: md.EntryPoint | None = None
    obj: Any = None
    failed: bool = False
    error: str = ""  #: why it failed to load
    verified: bool = False

    @property
    def where(self) -> str:
        if self.entry_point is not None:
            return str(self.entry_point.value)
        return self.target or f"{getattr(self.obj, '__module__', '?')}:{getattr(self.obj, '__qualname__', '?')}"


class Registry(Generic[T]):
    """Name -> component class for one kind.

    Parameters
    ----------
    kind
        The kind's name (``"encoders"``); the entry-point group is ``distgen.<kind>``.
    base
        The base class every component of this kind must subclass.
    builtins
        distgen's own components, ``{name: "module:attr"}``; imported on first use, like entry points.
    """

    def __init__(self, kind: str, base: Any, builtins: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self.base = base
        self.group = f"distgen.{kind}"
        self._entries: dict[str, list[_Entry]] = {}
        for name, target in (builtins or {}).items():
            self._entries[name] = [_Entry(name=name, provider="distgen", target=target)]
        self._discovered = False

    # ------------------------------------------------------------------ registration in code
    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator adding a component under ``name`` (interactive use and tests)."""

        def deco(cls: type[T]) -> type[T]:
            self.add(name, cls)
            return cls

        return deco

    def add(self, name: str, obj: type[T], provider: str | None = None, version: str | None = None) -> None:
        """Add ``obj`` under ``name`` (raises ``DuplicateComponentError`` if the name is taken)."""
        if not valid_name(name):
            raise RegistryError(
                f"{self.kind} name {name!r} is not a valid component name: give a non-empty string without leading or "
                "trailing spaces (configs and command-line overrides spell it, e.g. model.backbone.name=my_backbone)"
            )
        provider = provider or _provider_of(obj)
        self._check_type(name, obj, provider)
        old = [e for e in self._entries.get(name, []) if not e.failed]
        if old and not any(e.obj is obj for e in old):
            raise DuplicateComponentError(
                f"{self.kind} name {name!r} is already provided by {old[0].provider!r} ({old[0].where}); "
                f"choose another name for {obj!r}"
            )
        version = version or (_distgen_version() if provider == "distgen" else _package_version(provider))
        self._entries[name] = [_Entry(name=name, provider=provider, version=version, obj=obj)]

    def _check_type(self, name: str, obj: Any, provider: str) -> None:
        if not (inspect.isclass(obj) and issubclass(obj, self.base)):
            raise PluginLoadError(
                f"{self.kind} component {name!r} from {provider!r} is {obj!r}, which is not a subclass "
                f"of {self.base.__module__}.{self.base.__qualname__}: make its entry point name a class that subclasses "
                f"it (docs/extending.md lists each kind's interface)."
            )
        try:
            resolve(obj)
        except TypeError as exc:
            raise PluginLoadError(f"{self.kind} component {name!r} from {provider!r}: {exc}") from None

    def _check_concrete(self, name: str, obj: Any, provider: str) -> None:
        """A component loaded by name must be buildable: an abstract class fails here, naming what it lacks."""
        if inspect.isabstract(obj):
            missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
            raise PluginLoadError(
                f"{self.kind} component {name!r} from {provider!r} ({obj.__module__}.{obj.__qualname__}) is abstract: it does "
                f"not implement {missing}, which {self.base.__qualname__} requires."
            )

    # ------------------------------------------------------------------ discovery
    def discover(self, *, refresh: bool = False) -> None:
        """Read the names of entry points in ``distgen.<kind>`` (imports nothing)."""
        if self._discovered and not refresh:
            return
        self._discovered = True
        if refresh:
            _all_entry_points.cache_clear()
        for ep, provider, version in _entry_points(self.group):
            entries = self._entries.setdefault(ep.name, [])
            if any(e.entry_point is not None and e.entry_point.value == ep.value and e.provider == provider for e in entries):
                continue  # the same entry point seen again (refresh, or a path listed twice)
            entries.append(_Entry(name=ep.name, provider=provider, version=version, entry_point=ep))

    def _load(self, entry: _Entry) -> Any:
        if entry.obj is not None:
            return entry.obj
        if entry.target is not None:  # a built-in: a failure is a bug in distgen, so it is not swallowed
            module, _, attr = entry.target.partition(":")
            obj = getattr(importlib.import_module(module), attr)
            self._check_type(entry.name, obj, entry.provider)
            entry.obj, entry.version = obj, _distgen_version()
            return obj
        assert entry.entry_point is not None
        try:
            obj = entry.entry_point.load()
            self._check_type(entry.name, obj, entry.provider)
            self._check_concrete(entry.name, obj, entry.provider)
        except (Exception, SystemExit) as exc:  # a plugin calling sys.exit() on import must not end distgen
            if entry.failed and isinstance(exc, PluginLoadError) and str(exc) == entry.error:
                raise  # a load of this entry inside this one (the module asked for it while imported) failed and said why
            entry.failed = True
            if isinstance(exc, SystemExit):
                why = f"it called sys.exit({exc.code!r}) while being imported"
            elif isinstance(exc, PluginLoadError):
                why = str(exc).rstrip(".")
            else:
                why = f"{exc!r}{_import_fix(exc, entry.entry_point, entry.provider)}"
            warn(
                f"distgen plugin {entry.provider!r} failed to load {self.kind} component {entry.name!r} "
                f"({entry.entry_point.value}): {why}. It is skipped.",
                DistgenRuntimeWarning,
            )
            if not isinstance(exc, PluginLoadError):  # a check's message already names the component and the plugin
                why = f"{self.kind} component {entry.name!r} from {entry.provider!r} failed to load: {why}"
            entry.error = why
            raise PluginLoadError(why) from None
        entry.obj = obj
        twins = [n for n, entries in self._entries.items() if n != entry.name and _folded(n) == _folded(entry.name)
                 and any(e.provider == "distgen" for e in entries)]
        if twins:  # a config that means the built-in and spells it another way gets the plugin's, unlike a plain typo
            warn(f"{self.kind} component {entry.name!r} from plugin {entry.provider!r} differs from the built-in {twins[0]!r} only "
                 f"by case or separators: a config that writes {entry.name!r} gets the plugin's, not the built-in; rename the "
                 f"entry point in its pyproject.toml [project.entry-points.\"{self.group}\"] to a name of its own.",
                 DistgenRuntimeWarning)
        return obj

    # ------------------------------------------------------------------ lookup
    def _live(self, name: str) -> list[_Entry]:
        return [e for e in self._entries.get(name, []) if not e.failed]

    def names(self) -> list[str]:
        """Every name with a provider that is not known to be broken, sorted."""
        self.discover()
        return sorted(n for n in self._entries if self._live(n))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def plugin(self, name: str) -> str | None:
        """``"provider (module:attr)"`` when ``name`` comes from a plugin (an entry point or code outside distgen), else None."""
        entries = self._live(name)
        if len(entries) != 1 or entries[0].provider == "distgen":
            return None
        return f"{entries[0].provider!r} ({entries[0].where})"

    def plugin_of(self, obj: Any) -> str | None:
        """``"'name' from plugin 'provider' (module:attr)"`` when ``obj`` (a class or an instance) is a plugin's component of
        this kind, loaded by name; None for a built-in or an object the registry did not load."""
        cls = obj if isinstance(obj, type) else type(obj)
        for entries in self._entries.values():
            for e in entries:
                if e.obj is cls and e.provider != "distgen" and not e.failed:
                    return f"{e.name!r} from plugin {e.provider!r} ({e.where})"
        return None

    def providers(self, name: str) -> list[str]:
        """Who provides ``name`` (more than one: a conflict, reported when the name is used)."""
        self.discover()
        return [e.provider for e in self._live(name)]

    def get(self, name: str) -> type[T]:
        """The component class registered as ``name``; lists the choices when unknown."""
        self.discover()
        entries = self._live(name)
        broken = [e for e in self._entries.get(name, []) if e.failed]
        if not entries and broken:  # asked again after it failed: the same reason, not "unknown"
            raise PluginLoadError(broken[0].error)
        if not entries:
            avail = self.names()
            close = near(name, avail)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            hint += self._declared_elsewhere(name)
            if not hint:  # neither a typo nor a misdeclared plugin: perhaps a plugin that is not installed here
                hint = (f" If {name!r} comes from a plugin (e.g. bayes_hier from plugins/distgen-bayes), install that package "
                        f"in this Python environment ({sys.executable}); `distgen components` lists what is installed.")
            raise UnknownComponentError(
                f"unknown {self.kind} component {name!r}.{hint} Available: {', '.join(avail) or '(none)'}."
            )
        if len(entries) > 1:
            who = " and ".join(f"{e.provider!r} ({e.where})" for e in entries)
            plugins = [e.provider for e in entries if e.provider != "distgen"]
            if len(plugins) < len(entries):  # a built-in's name: only the plugins can give it up
                fix = (f"{name!r} is a built-in name, which a plugin cannot replace: rename the entry point of "
                       f"{' and '.join(map(repr, plugins))} in its pyproject.toml [project.entry-points.\"{self.group}\"] and "
                       f"reinstall it, or uninstall it (pip uninstall {' '.join(plugins)})")
            else:
                fix = (f"uninstall all but one of them (pip uninstall <package>), or rename the entry point in a plugin's "
                       f"pyproject.toml [project.entry-points.\"{self.group}\"]")
            raise DuplicateComponentError(
                f"{self.kind} name {name!r} is provided by {who}, so it is ambiguous: {fix}; `distgen components` lists both."
            )
        return self._load(entries[0])  # type: ignore[no-any-return]

    def _declared_elsewhere(self, name: str) -> str:
        """Where plugins declare ``name`` in another ``distgen.*`` entry-point group (a typo in the group, or another kind)."""
        groups = [f"distgen.{k}" for k in HOMES]
        out = []
        for ep, provider, _ in _all_entry_points(tuple(sys.path)):
            if ep.name != name or ep.group == self.group:
                continue
            if ep.group in groups:
                out.append(f" Plugin {provider!r} provides {name!r} as a {ep.group.removeprefix('distgen.')} component, not {self.kind}.")
            else:
                meant = near(ep.group, groups)
                out.append(f" Plugin {provider!r} declares {name!r} in the entry-point group {ep.group!r}, which distgen does not "
                           f"read{f' (did you mean {meant[0]!r}?)' if meant else ''}: fix [project.entry-points] in its pyproject.toml "
                           "and reinstall it.")
        return "".join(out)

    def verify(self, name: str) -> None:
        """Run distgen's cheap contract checks the first time a plugin's component ``name`` is built.

        Only entry-point plugins are checked (built-ins are tested with the package), once per
        process, on a separate tiny instance under a forked random state (a seeded run is not
        changed). A wrong shape, NaN/inf or a crash on tiny inputs raises ``PluginCheckError``
        naming the plugin and the component.
        """
        entries = self._live(name)
        if len(entries) != 1 or entries[0].entry_point is None or entries[0].verified:
            return
        entry = entries[0]
        entry.verified = True  # set first: the check builds the component again
        module, _, attr = CHECKS.partition(":")
        found = getattr(importlib.import_module(module), attr)(self.kind, name)
        if found:
            entry.verified = False
            raise PluginCheckError(
                f"{self.kind} component {name!r} from plugin {entry.provider!r} ({entry.where}) failed distgen's cheap "
                f"checks on tiny data: {'; '.join(found)}. Fix the plugin (its tests should subclass the contract suite "
                f"in distgen.testing), or uninstall it (pip uninstall {entry.provider})."
            )

    def info(self, name: str) -> ComponentInfo:
        """Self-description of one component (loads it; raises on a conflict)."""
        self.get(name)
        return self._info(self._live(name)[0], ())

    def _info(self, entry: _Entry, conflicts: tuple[str, ...]) -> ComponentInfo:
        cls = self._load(entry)
        return ComponentInfo(
            kind=self.kind,
            name=entry.name,
            provider=entry.provider,
            version=entry.version or (_distgen_version() if entry.provider == "distgen" else "unknown"),
            summary=_summary(cls),
            capabilities=resolve(cls),
            conflicts=conflicts,
        )

    def infos(self) -> list[ComponentInfo]:
        """Self-descriptions of every loadable component, one per provider of a conflicting name.

        A broken plugin warns and is skipped; a name with several providers warns and lists each.
        """
        out = []
        for name in self.names():
            entries = self._live(name)
            if len(entries) > 1:
                plugins = [e.provider for e in entries if e.provider != "distgen"]
                builtin = (f" ({name!r} is a built-in name: rename the entry point of {' and '.join(map(repr, plugins))} or "
                           f"uninstall it)") if len(plugins) < len(entries) else ""
                warn(
                    f"{self.kind} name {name!r} is provided by {', '.join(repr(e.provider) for e in entries)}; a config "
                    f"that uses it fails until all but one are uninstalled or renamed{builtin}",
                    DistgenRuntimeWarning,
                )
            for entry in entries:
                others = tuple(e.provider for e in entries if e is not entry)
                try:
                    out.append(self._info(entry, others))
                except PluginLoadError:
                    continue
        return out

    def build(self, name: str, /, **kwargs: Any) -> T:
        """Construct ``name`` with keyword arguments (no validation; see ``distgen.config``)."""
        return self.get(name)(**kwargs)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and interactive use)."""
        self._entries.pop(name, None)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {counted(len(self._entries), 'name')})"


def _import_fix(exc: BaseException, entry_point: md.EntryPoint, provider: str) -> str:
    """What to do about ``exc``, raised while ``entry_point`` of the plugin ``provider`` was loaded."""
    module, _, attr = str(entry_point.value).partition(":")
    pyproject = "fix [project.entry-points] in its pyproject.toml and reinstall it"
    partial = re.search(r"partially initialized module '([^']+)'", str(exc)) if isinstance(exc, ImportError | AttributeError) else None
    if partial and partial[1].partition(".")[0] != module.partition(".")[0]:  # a library's own cycle, not the plugin's
        return (f"; module {partial[1]!r}, which the plugin imports, was asked for again while it is being imported (a circular "
                f"import inside that library): fix or update it, or uninstall the plugin (pip uninstall {provider})")
    if partial:
        return (f"; module {partial[1]!r} was asked for again while it is being imported (a circular import: at import time the "
                "plugin asks distgen for one of its own components, e.g. registry(...).get or build_component, or imports a "
                "module that imports it): move that call into a function or method, which runs after the import has finished")
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        if module == exc.name or module.startswith(exc.name + "."):
            return f"; the entry point names a module {module!r} that is not installed: {pyproject}"
        return (f"; the plugin imports {exc.name.split('.')[0]!r}, which is not installed in this environment ({sys.executable}): "
                f"install it, or uninstall the plugin (pip uninstall {provider})")
    if isinstance(exc, AttributeError) and attr and attr.split(".")[-1] in str(exc):
        return f"; the entry point names {attr!r}, which module {module!r} does not define: {pyproject}"
    return f"; fix the plugin's module, or uninstall the plugin (pip uninstall {provider})"


def _folded(name: str) -> str:
    """``name`` as a reader may confuse it: case and the separators ``-``/``_``/``.`` left out."""
    return name.casefold().replace("-", "").replace("_", "").replace(".", "")


def misdeclared(kind: str | None = None) -> list[str]:
    """One line per entry point in a ``distgen.*`` group that no kind reads (``distgen.kernel``, ``distgen.metric``,
    ``distgen_kernels``...),
    with the group it was probably meant for; only those meant for ``kind`` when given. ``distgen components`` warns with
    them: such a component is never listed, and without the warning its author sees only that it is missing."""
    groups = [f"distgen.{k}" for k in HOMES]
    out = []
    for ep, provider, _ in _all_entry_points(tuple(sys.path)):
        if ep.group in groups:
            continue
        close = near(ep.group, groups)
        if kind is not None and (not close or close[0] != f"distgen.{kind}"):
            continue
        meant = f" (did you mean {close[0]!r}?)" if close else f" (the groups are {', '.join(groups)})"
        out.append(f"plugin {provider!r} declares {ep.name!r} = {ep.value!r} in the entry-point group {ep.group!r}, which distgen "
                   f"does not read{meant}: fix [project.entry-points] in its pyproject.toml and reinstall it")
    return out


def entry_point_packages(but: Collection[str] = ()) -> set[str]:
    """The top-level packages of the modules that ``distgen.*`` entry points on ``sys.path`` name, but those in ``but``,
    each one the distribution declaring the entry point installs: a package that only other distributions install (an
    entry point naming a library's module, ``numpy.linalg:norm``) is that library's, not the plugin's. A package no
    installed distribution lists (a plugin installed as a bare folder) counts as the declaring one's. Reading every
    distribution's file list takes about a second: done only when some entry point's package is not in ``but``."""
    named: dict[str, set[str]] = {}
    for ep, provider, _ in _all_entry_points(tuple(sys.path)):
        package = ep.value.partition(":")[0].strip().partition(".")[0]
        if package not in but:
            named.setdefault(package, set()).add(_normal_name(provider))
    if not named:
        return set()
    installs = md.packages_distributions()
    return {package for package, providers in named.items()
            if not installs.get(package) or providers & {_normal_name(name) for name in installs[package]}}


def _normal_name(name: str) -> str:
    """A distribution's name as its installations compare it (PEP 503: case and runs of ``-_.`` ignored)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _entry_points(group: str) -> list[tuple[md.EntryPoint, str, str]]:
    """Every entry point of ``group`` with its distribution's name and version."""
    return [(ep, name, version) for ep, name, version in _all_entry_points(tuple(sys.path)) if ep.group == group]


#: Entry-point group prefixes scanned: ``distgen.`` (the kinds' groups) and the spellings a plugin author may write for it.
GROUP_PREFIXES = ("distgen.", "distgen_", "distgen-")


@lru_cache(maxsize=4)
def _all_entry_points(path_key: tuple[str, ...]) -> list[tuple[md.EntryPoint, str, str]]:
    """Every ``distgen.*`` entry point on ``sys.path`` (one scan, cached per ``sys.path``), and those of groups spelt
    ``distgen_*`` / ``distgen-*`` (read by no kind: ``misdeclared`` names them).

    ``importlib.metadata.entry_points(group=...)`` keeps one entry point per name, which would hide
    two distributions claiming the same name; walk the distributions instead (each distribution
    once, the first on ``sys.path`` winning, as the import system does).
    """
    seen: set[str] = set()
    out: list[tuple[md.EntryPoint, str, str]] = []
    for dist in md.distributions(path=list(path_key)):
        name = _dist_name(dist)
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        out.extend((ep, name, dist.version) for ep in dist.entry_points if ep.group.startswith(GROUP_PREFIXES))
    return out


def plugin_distributions() -> dict[str, str]:
    """``{distribution: version}`` of each distribution on ``sys.path`` with a ``distgen.*`` entry point, the one whose
    entry points the registries read (the first of a name found twice), as a run's manifest records them."""
    return {name: version for ep, name, version in _all_entry_points(tuple(sys.path)) if ep.group.startswith("distgen.")}


def _dist_name(dist: md.Distribution) -> str:
    """The ``Name`` field of ``dist``'s metadata, read from its header lines (``dist.metadata`` parses the whole
    file as an e-mail message: ~30 ms per process over ~100 installed distributions)."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    for line in (text or "").splitlines():
        if not line.strip():
            break  # end of the header block
        if line[:5].lower() == "name:":
            return line[5:].strip() or "unknown"
    return dist.metadata["Name"] or "unknown"  # type: ignore[no-any-return]  # unusual metadata: the full parser


def valid_name(name: Any) -> bool:
    """A name a config can spell and ``names()`` can sort: a non-empty string without surrounding whitespace."""
    return isinstance(name, str) and bool(name) and name == name.strip()


def _provider_of(obj: Any) -> str:
    module = getattr(obj, "__module__", "") or ""
    return module.split(".")[0] or "unknown"


def _package_version(top_module: str) -> str:
    for dist_name in md.packages_distributions().get(top_module, [top_module]):
        try:
            return md.version(dist_name)
        except md.PackageNotFoundError:
            continue
    return "unknown"


def registry(kind: str) -> Registry[Any]:
    """The registry of ``kind`` (``"encoders"``, ``"kernels"``...); imports the kind's interface module."""
    home = HOMES.get(kind)
    if home is None:
        close = near(kind, KINDS)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownComponentError(f"unknown component kind {kind!r}.{hint} Kinds: {', '.join(KINDS)}.")
    module, _, attr = home.partition(":")
    reg = getattr(importlib.import_module(module), attr)
    assert isinstance(reg, Registry) and reg.kind == kind, f"{home} is not the registry of {kind!r}"
    return reg


def all_registries() -> dict[str, Registry[Any]]:
    """Every registry, keyed by kind, in listing order (imports the interface modules, not the components)."""
    return {kind: registry(kind) for kind in KINDS}
