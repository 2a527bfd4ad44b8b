"""Component registries: one ``Registry`` per kind, extended by decorators and entry points.

Built-in components register with ``@kernels.register("rbf")``. Third-party packages declare
entry points in the group ``distgen.<kind>``; the entry-point name is the config name. Discovery
reads names only; a plugin module is imported the first time its component is used, and the
object it provides is checked against the kind's base class.

Conflicts are loud (a duplicate name raises, naming both providers); breakage is gentle (a
plugin that fails to import warns and is skipped, so ``import distgen`` never breaks).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import inspect
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Component kinds, in the order they are listed by ``distgen components``.
KINDS = (
    "kernels",
    "encoders",
    "conditioners",
    "backbones",
    "dynamics",
    "couplings",
    "metrics",
    "models",
    "matchers",
)


class RegistryError(Exception):
    """Base class for registry errors."""


class UnknownComponentError(RegistryError, KeyError):
    """A name that no built-in or plugin provides."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class DuplicateComponentError(RegistryError):
    """Two providers claim the same name in one kind."""


class PluginLoadError(RegistryError):
    """A plugin's entry point could not be imported or is not a valid component."""


@dataclass(frozen=True)
class ComponentInfo:
    """What a registered component says about itself."""

    kind: str
    name: str
    provider: str
    version: str
    summary: str
    capabilities: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _summary(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _capabilities(obj: Any) -> dict[str, Any]:
    caps = getattr(obj, "capabilities", None)
    if caps is None:
        return {}
    if callable(caps) and not isinstance(caps, dict):
        caps = caps()
    return dict(caps)


def _distgen_version() -> str:
    try:
        return md.version("distgen")
    except md.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


@dataclass
class _Entry:
    name: str
    provider: str
    version: str
    obj: Any = None
    entry_point: md.EntryPoint | None = None
    failed: bool = False


class Registry(Generic[T]):
    """Name -> component class for one kind.

    Parameters
    ----------
    kind
        The kind's name (``"encoders"``); the entry-point group is ``distgen.<kind>``.
    base
        The base class every component of this kind must subclass.
    """

    def __init__(self, kind: str, base: Any) -> None:
        self.kind = kind
        self.base = base
        self.group = f"distgen.{kind}"
        self._entries: dict[str, _Entry] = {}
        self._discovered = False

    # ------------------------------------------------------------------ registration
    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator registering a built-in component under ``name``."""

        def deco(cls: type[T]) -> type[T]:
            self.add(name, cls, provider=_provider_of(cls))
            return cls

        return deco

    def add(self, name: str, obj: type[T], provider: str | None = None, version: str | None = None) -> None:
        """Register ``obj`` under ``name`` (raises if the name is taken)."""
        self._check_type(name, obj, provider or _provider_of(obj))
        provider = provider or _provider_of(obj)
        version = version or (_distgen_version() if provider == "distgen" else _package_version(provider))
        self._insert(_Entry(name=name, provider=provider, version=version, obj=obj))

    def _insert(self, entry: _Entry) -> None:
        old = self._entries.get(entry.name)
        if old is not None and not (old.provider == entry.provider and old.obj is entry.obj):
            raise DuplicateComponentError(
                f"{self.kind} name {entry.name!r} is provided twice: by {old.provider!r} and by "
                f"{entry.provider!r}. Uninstall one of them, or rename the plugin's entry point."
            )
        self._entries[entry.name] = entry

    def _check_type(self, name: str, obj: Any, provider: str) -> None:
        if not (inspect.isclass(obj) and issubclass(obj, self.base)):
            raise PluginLoadError(
                f"{self.kind} component {name!r} from {provider!r} is {obj!r}, which is not a subclass "
                f"of {self.base.__module__}.{self.base.__qualname__}."
            )

    # ------------------------------------------------------------------ discovery
    def discover(self, *, refresh: bool = False) -> None:
        """Read the names of entry points in ``distgen.<kind>`` (imports nothing)."""
        if self._discovered and not refresh:
            return
        self._discovered = True
        for ep, provider, version in _entry_points(self.group):
            old = self._entries.get(ep.name)
            if old is not None and old.entry_point is not None and old.entry_point.value == ep.value:
                continue  # the same entry point seen again (refresh, or a path listed twice)
            self._insert(_Entry(name=ep.name, provider=provider, version=version, entry_point=ep))

    def _load(self, entry: _Entry) -> Any:
        if entry.obj is not None:
            return entry.obj
        assert entry.entry_point is not None
        try:
            obj = entry.entry_point.load()
            self._check_type(entry.name, obj, entry.provider)
        except Exception as exc:
            entry.failed = True
            warnings.warn(
                f"distgen plugin {entry.provider!r} failed to load {self.kind} component {entry.name!r} "
                f"({entry.entry_point.value}): {exc!r}. It is skipped.",
                RuntimeWarning,
                stacklevel=3,
            )
            raise PluginLoadError(f"{self.kind} component {entry.name!r} from {entry.provider!r} failed to load: {exc!r}") from exc
        entry.obj = obj
        return obj

    # ------------------------------------------------------------------ lookup
    def names(self) -> list[str]:
        """Every name that is registered and not known to be broken, sorted."""
        self.discover()
        return sorted(n for n, e in self._entries.items() if not e.failed)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> type[T]:
        """The component class registered as ``name``; lists the choices when unknown."""
        self.discover()
        entry = self._entries.get(name)
        if entry is None or entry.failed:
            avail = self.names()
            close = difflib.get_close_matches(name, avail, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownComponentError(
                f"unknown {self.kind} component {name!r}.{hint} Available: {', '.join(avail) or '(none)'}."
            )
        return self._load(entry)

    def info(self, name: str) -> ComponentInfo:
        """Self-description of one component (loads it)."""
        cls = self.get(name)
        entry = self._entries[name]
        return ComponentInfo(
            kind=self.kind,
            name=name,
            provider=entry.provider,
            version=entry.version,
            summary=_summary(cls),
            capabilities=_capabilities(cls),
        )

    def infos(self) -> list[ComponentInfo]:
        """Self-descriptions of every loadable component; broken plugins warn and are skipped."""
        out = []
        for name in self.names():
            try:
                out.append(self.info(name))
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
        return f"Registry({self.kind!r}, {len(self._entries)} components)"


def _entry_points(group: str) -> list[tuple[md.EntryPoint, str, str]]:
    """Every entry point of ``group`` with its distribution's name and version.

    ``importlib.metadata.entry_points(group=...)`` keeps one entry point per name, which would hide
    two distributions claiming the same name; walk the distributions instead (each distribution
    once, the first on ``sys.path`` winning, as the import system does).
    """
    seen: set[str] = set()
    out: list[tuple[md.EntryPoint, str, str]] = []
    for dist in md.distributions():
        name = dist.metadata["Name"] or "unknown"
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        out.extend((ep, name, dist.version) for ep in dist.entry_points if ep.group == group)
    return out


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


_REGISTRIES: dict[str, Registry[Any]] = {}


def make_registry(kind: str, base: Any) -> Registry[Any]:
    """Create (once) the registry of ``kind``; later calls return the same object."""
    if kind not in _REGISTRIES:
        _REGISTRIES[kind] = Registry(kind, base)
    return _REGISTRIES[kind]


def registry(kind: str) -> Registry[Any]:
    """The registry of ``kind`` (``"encoders"``, ``"kernels"``...)."""
    _ensure_builtins()
    if kind not in _REGISTRIES:
        raise UnknownComponentError(f"unknown component kind {kind!r}. Kinds: {', '.join(sorted(_REGISTRIES))}.")
    return _REGISTRIES[kind]


def all_registries() -> dict[str, Registry[Any]]:
    """Every registry, keyed by kind."""
    _ensure_builtins()
    return dict(_REGISTRIES)


_BUILTIN_MODULES = (
    "distgen.kernels",
    "distgen.encoders",
    "distgen.conditioners",
    "distgen.backbones",
    "distgen.dynamics",
    "distgen.couplings",
    "distgen.evaluation.metrics",
    "distgen.models",
    "distgen.data.matching",
)


def _ensure_builtins() -> None:
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)
